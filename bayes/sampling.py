"""Sampling: backends, seeds, the diagnostics gate and compiled-model reuse.

nutpie is the default sampler.  A model is compiled once per *structure*
(model family, arm layout, prior set) and re-used for every cell with the
same structure by swapping its ``pm.Data`` values (``CompiledModel.with_data``),
so fitting many tables costs one compilation.  PyMC's own NUTS is the
fallback (``sampler="pymc"``); it recompiles per fit and is slower.

Every fit gets a seed derived from the run's master seed and the cell's key,
so results do not depend on the order cells are fitted in.  Diagnostics
(R-hat, bulk/tail ESS, divergences) are computed for every fit and gate the
result: a failing fit is flagged, never silently summarised.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes.models.factorial import CellData, build_factorial
from bayes.priors import PriorSet

SAMPLERS = ("nutpie", "pymc")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample; recorded verbatim in every output."""

    sampler: str = "nutpie"
    draws: int = config.DEFAULT_DRAWS
    tune: int = config.DEFAULT_TUNE
    chains: int = config.DEFAULT_CHAINS
    cores: int = field(default_factory=config.default_cores)
    seed: int = config.DEFAULT_SEED
    target_accept: float = 0.9
    adaptation: str = "low_rank"    # nutpie mass matrix: "diag" | "low_rank"

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.draws < 1 or self.tune < 0 or self.chains < 1:
            raise ValueError("draws and chains must be >= 1 and tune >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def cell_seed(master_seed: int, key: str) -> int:
    """A 32-bit seed for one fit, from the run's seed and the cell's key."""
    state = np.random.SeedSequence([int(master_seed), zlib.crc32(key.encode())]).generate_state(1)
    return int(state[0])


class ModelCache:
    """Compiled nutpie models keyed by structure; re-used with new data."""

    def __init__(self):
        self._compiled: dict[tuple, object] = {}
        self.compilations = 0

    def compiled(self, key: tuple, build):
        if key not in self._compiled:
            import nutpie

            self._compiled[key] = nutpie.compile_pymc_model(build())
            self.compilations += 1
        return self._compiled[key]


DEFAULT_CACHE = ModelCache()


def _relabel(tree: xr.DataTree, data: CellData) -> xr.DataTree:
    """Put this cell's arm/agent/combination names on a re-used model's output."""
    labels = {"arm": list(data.design.arms), "agent": list(data.design.agents),
              "combo": list(data.design.combos)}

    def relabel(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords({k: v for k, v in labels.items() if k in ds.dims})

    return tree.map_over_datasets(relabel)


def _add_data_groups(tree: xr.DataTree, data: CellData) -> xr.DataTree:
    arms = list(data.design.arms)
    inputs = data.model_inputs()
    tree["observed_data"] = xr.DataTree(xr.Dataset(
        {"mean_obs": ("arm", inputs["obs_mean"]), "var_obs": ("arm", inputs["obs_var"])},
        coords={"arm": arms}))
    tree["constant_data"] = xr.DataTree(xr.Dataset(
        {"n_animals": ("arm", inputs["n_animals"]), "scale": data.scale,
         "reported_mean": ("arm", data.mean), "reported_sd": ("arm", data.sd)},
        coords={"arm": arms}))
    return tree


def _drop_object_stats(tree: xr.DataTree) -> xr.DataTree:
    """nutpie stores divergence messages as Python objects, which NetCDF cannot hold."""
    stats = tree["sample_stats"].to_dataset()
    objects = [v for v in stats.data_vars if stats[v].dtype == object]
    tree["sample_stats"] = xr.DataTree(stats.drop_vars(objects))
    return tree


def sample_cell(data: CellData, priors: PriorSet, *, model: str, settings: SamplerSettings,
                key: str, cache: ModelCache | None = None) -> xr.DataTree:
    """Fit one cell; returns an ArviZ DataTree with this cell's coordinate labels."""
    interaction = model == "factorial"
    seed = cell_seed(settings.seed, key)
    build = lambda: build_factorial(data, priors, interaction=interaction)  # noqa: E731
    if settings.sampler == "nutpie":
        import nutpie

        cache = cache or DEFAULT_CACHE
        compiled = cache.compiled((model, data.design.structure, priors.hash), build)
        tree = nutpie.sample(compiled.with_data(**data.model_inputs()), draws=settings.draws,
                             tune=settings.tune, chains=settings.chains, cores=settings.cores,
                             seed=seed, target_accept=settings.target_accept, adaptation=settings.adaptation,
                             progress_bar=False, save_warmup=False)
        tree = _relabel(tree, data)
    else:
        import pymc as pm

        with build():
            tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                             cores=settings.cores, random_seed=seed, nuts_sampler="pymc",
                             target_accept=settings.target_accept, progressbar=False,
                             compute_convergence_checks=False)
        tree = xr.DataTree.from_dict({g: tree[g].to_dataset() for g in ("posterior", "sample_stats")})
    return _add_data_groups(_drop_object_stats(tree), data)


@dataclass(frozen=True)
class Diagnostics:
    """The gate's verdict on one fit, with the numbers behind it."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    draws: int
    chains: int

    @property
    def problems(self) -> list[str]:
        out = []
        need = config.ESS_PER_CHAIN_MIN * self.chains
        if not self.rhat_max <= config.RHAT_MAX:
            out.append(f"R-hat {self.rhat_max:.3f} > {config.RHAT_MAX}")
        if not self.ess_bulk_min >= need:
            out.append(f"bulk ESS {self.ess_bulk_min:.0f} < {need}")
        if not self.ess_tail_min >= need:
            out.append(f"tail ESS {self.ess_tail_min:.0f} < {need}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        return out

    @property
    def passed(self) -> bool:
        return not self.problems


def diagnose(tree: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """R-hat, bulk/tail ESS over the free parameters, and divergences."""
    import arviz as az

    post = tree["posterior"].to_dataset()
    names = var_names or [v for v in ("baseline", "agent_effect", "interaction", "sd_log") if v in post]
    table = az.summary(tree, var_names=names, kind="diagnostics")
    chains = post.sizes["chain"]
    diverging = tree["sample_stats"].to_dataset()["diverging"]
    return Diagnostics(
        rhat_max=float(np.nanmax(table["r_hat"].to_numpy(float))),
        ess_bulk_min=float(np.nanmin(table["ess_bulk"].to_numpy(float))),
        ess_tail_min=float(np.nanmin(table["ess_tail"].to_numpy(float))),
        divergences=int(diverging.sum()),
        draws=int(post.sizes["draw"]), chains=int(chains))


def diagnostics_frame(rows: list[tuple[str, str, Diagnostics]]) -> pd.DataFrame:
    return pd.DataFrame([{"study": s, "endpoint": e, **asdict(d), "passed": d.passed,
                          "problems": "; ".join(d.problems)} for s, e, d in rows])
