"""Simulation-based calibration (SBC) of every model family.

What it is for: checking that a model's posterior means what it says.  If
parameters are drawn from the prior, data are simulated from them, and the
model is fitted to those data, then the rank of each true parameter among
(independent) posterior draws is uniform, and a central q interval covers
the truth in a fraction q of the simulations (Talts et al. 2018).  Any
departure is a property of the whole pipeline: the summary-statistic
likelihood (an approximation for log-normal animals and Beta samples), the
rounding of a printed table, summing out the unknown n, and the sampler.

One simulation (:func:`sbc_one`), for a family (``factorial`` per endpoint
kind, ``joint``, ``link``) and a simulation index:

1. draw every parameter from the model's own prior (forward sampling of the
   PyMC model the fit uses; compiled once per process and reseeded);
2. draw the true n per cohort from the model's n prior (uniform 3..20);
3. simulate individual animals or samples from those truths with
   :mod:`bayes.simulate` (log-normal values, Beta fractions, binomial
   events), summarise them as a paper would (means, SDs, percentages,
   rounded to :data:`bayes.simulate.PAPER_DIGITS`) and leave n unreported;
4. fit the family's model to that table with :func:`bayes.sampling.sample_spec`
   and one :class:`~bayes.sampling.ModelCache` per process (compiled once per
   structure, never per simulation), n summed out;
5. record, per checked parameter, the rank of the truth among ``thin_to``
   thinned posterior draws, the posterior CDF at the truth (PIT, from all
   draws) and whether the 50/80/95 % central intervals cover it; and the
   fit's diagnostics.  n itself is checked too (discrete: randomised ranks).

Every random step has its own seed derived from (seed, family, index), so a
simulation's result does not depend on which worker ran it or in what order.

:func:`run_sbc` builds one :class:`bayes.batch.Task` per simulation and runs
them through :func:`bayes.batch.run` (each result is written as it finishes;
an interrupted run resumes), then writes the summary: ``uniformity.csv``
(per parameter: arviz-stats' ``pot_c`` uniformity p-value and whether the
rank ECDF stays inside the 95 % simultaneous band of Säilynoja et al. 2022),
``coverage.csv`` (nominal vs observed coverage with the binomial 95 % range
expected from the number of simulations), ``ranks.csv``, ``ecdf.png``
(ECDF-difference plots with the simultaneous band), ``ranks.png`` (rank
histograms) and ``summary.json`` (version, seeds, settings, verdicts).

A caveat that is part of the design, not a bug: positive values are divided
by the reported control mean before fitting (:mod:`bayes.models.cells`), so
the baseline of a positive endpoint lives in data-dependent units and its
truth is converted into them (``log(true control median / reported control
mean)``).  Its check is then the flat-prior (frequentist) calibration of a
location parameter, not exact SBC; every other parameter is scale-free.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bayes import config
from bayes._version import __version__
from bayes.errors import BayesError

if TYPE_CHECKING:       # pandas is imported where it is used: `bayes --help` stays fast
    import pandas as pd

FAMILIES = ("factorial", "joint", "link")
KINDS = ("positive", "percent", "rate")
LEVELS = (0.5, 0.8, 0.95)
ALPHA = 0.05                      # level of every uniformity / coverage flag
DEFAULT_SIMS = 200
DEFAULT_DRAWS = 250               # per chain, after DEFAULT_TUNE tuning steps
DEFAULT_TUNE = 250
DEFAULT_CHAINS = 4
DEFAULT_THIN = 99                 # posterior draws kept per simulation: ranks 0..99
BAND_SIMULATIONS = 2000           # simulations behind the simultaneous ECDF band
# Positive endpoints are simulated with the control near 1000 (mm3, pg/mL), so rounding to
# whole units (PAPER_DIGITS) is as coarse as in a real table.
UNIT_SCALE = 1000.0
N_LOW, N_HIGH = 3, 20             # the model's default n prior (NPrior()); see n_prior()
AGENTS = ("A", "B")
ROLES = ("synergy", "effect", "nuisance", "n")


@dataclass(frozen=True)
class Endpoint:
    """One simulated endpoint: name, kind, benefit direction, cohort, unit."""

    name: str
    kind: str
    better: str
    cohort: str
    unit: str


_TUMOR = Endpoint("tumor_volume", "positive", "lower", "in_vivo", "mm3")
_SURVIVAL = Endpoint("survival", "rate", "higher", "in_vivo", "%")
_LYSIS = Endpoint("nk_lysis", "percent", "higher", "splenocytes", "% lysis")
_IFN = Endpoint("ifn_gamma", "positive", "higher", "splenocytes", "pg/mL")
# The joint and link families are checked on the seed's layout: a 2x2
# factorial with four endpoints in two cohorts (tumour volume and survival on
# the same animals, NK lysis and IFN-gamma on splenocytes).
LAYOUTS = {
    "factorial-positive": (_TUMOR,),
    "factorial-percent": (_LYSIS,),
    "factorial-rate": (_SURVIVAL,),
    "joint": (_TUMOR, _SURVIVAL, _LYSIS, _IFN),
    "link": (_TUMOR, _SURVIVAL, _LYSIS, _IFN),
}

# Per process: compiled models (bayes.sampling.DEFAULT_CACHE unless set) and prior forward samplers.
_CACHE = None
_FORWARD: dict = {}
_TEMPLATES: dict = {}
FITS = 0                          # fits run in this process (tests count refits with it)


def family_tag(family: str, kind: str | None = None) -> str:
    """``factorial-<kind>``, ``joint`` or ``link``; refuses what is not a family."""
    if family not in FAMILIES:
        raise BayesError(f"unknown model family {family!r} for SBC (valid: {', '.join(FAMILIES)})")
    if family == "factorial":
        if kind not in KINDS:
            raise BayesError(f"the factorial family needs an endpoint kind (--kind; valid: {', '.join(KINDS)})"
                             + ("" if kind is None else f", not {kind!r}"))
        return f"factorial-{kind}"
    if kind is not None:
        raise BayesError(f"the {family} family fits all four seed-layout endpoints together; "
                         "--kind applies to the factorial family only")
    return family


def derived_seeds(seed: int, tag: str, index: int) -> dict[str, int]:
    """One 32-bit seed per random step of one simulation, from (seed, family, index)."""
    steps = ("prior", "n", "data", "sampler", "ranks")
    children = np.random.SeedSequence([int(seed), zlib.crc32(tag.encode()), int(index)]).spawn(len(steps))
    return {step: int(child.generate_state(1)[0]) for step, child in zip(steps, children)}


# --------------------------------------------------------------------------- simulation

def _cache():
    """The process-wide ModelCache: one compilation per structure per worker process (shared with
    every other fit in the process, e.g. the test suite's)."""
    from bayes.sampling import DEFAULT_CACHE

    return _CACHE if _CACHE is not None else DEFAULT_CACHE


def _csv_arm(agents: tuple[str, ...]) -> str:
    return "+".join(agents)


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-15), 1.0 - 1e-15)
    return math.log(p) - math.log1p(-p)


def simulate_table(tag: str, cells, values: dict, n: dict[str, int], rng: np.random.Generator, *,
                   report_n: bool = False):
    """A study table (CSV layout, n unreported, rounded like a paper) from one draw of a model's parameters.

    ``cells`` are the model's cells (their order and arm order define the
    arrays in ``values``); ``values`` maps model variable names to one prior
    draw; ``n`` is the true n per cohort, printed in the table only with
    ``report_n`` (a control run: n known to the model).  Each arm has its own dispersion
    (log-sd or Beta precision), so each arm is one single-arm
    :class:`bayes.simulate.EndpointTruth`; :func:`bayes.simulate.simulate_study`
    does the animals, the summaries and the rounding.
    """
    from bayes.models.builder import prefix
    from bayes.simulate import PAPER_DIGITS, EndpointTruth, simulate_study

    layout = {e.name: e for e in LAYOUTS[tag]}
    truths = []
    for i, cell in enumerate(cells):
        ep, p = layout[cell.endpoint], prefix(i)
        mean = np.asarray(values[p + "arm_mean"], float)
        for j, agents in enumerate(cell.design.arm_agents):
            if ep.kind == "positive":
                s = float(np.asarray(values[p + "sd_log"])[j])
                eta, dispersion = math.log(mean[j]) - s * s / 2 + math.log(UNIT_SCALE), s
            elif ep.kind == "percent":
                eta, dispersion = _logit(mean[j]), float(np.asarray(values[p + "precision"])[j])
            else:
                eta, dispersion = _logit(mean[j]), None
            truths.append(EndpointTruth(ep.name, ep.kind, ep.better, (_csv_arm(agents),), (eta,), dispersion,
                                        cohort=ep.cohort, unit=ep.unit))
    return simulate_study(truths, n, rng, study="sim", report_n=report_n, digits=PAPER_DIGITS)


def n_prior():
    """The n prior every simulation is fitted with: the default range, padded, so that
    every simulated table shares one compiled model whatever n its percentages allow."""
    from bayes.nprior import NPrior

    return NPrior(low=N_LOW, high=N_HIGH, pad=True)


def sampler_settings(family: str, *, draws: int = DEFAULT_DRAWS, tune: int = DEFAULT_TUNE,
                     chains: int = DEFAULT_CHAINS, seed: int = config.DEFAULT_SEED):
    """What every SBC fit samples with: the counts given, one core, the family's
    target_accept and mass-matrix adaptation (recorded in each run's settings)."""
    from bayes.sampling import SamplerSettings

    # short SBC chains rarely pass the gate's ESS, and need not (ranks are thinned): no longer second fit
    return SamplerSettings(draws=draws, tune=tune, chains=chains, cores=1, seed=seed,
                           retry_longer=False).for_family(family)


def _template_spec(tag: str, report_n: bool = False):
    """The family's model spec on a fixed simulated table (for structure and forward draws).

    ``report_n``: the table prints n, as a control run's tables do.  A reported n
    is a one-value grid, so such tables have their own structure (the model's
    parameters, and so its forward draws, are the same)."""
    key = (tag, bool(report_n))
    if key not in _TEMPLATES:
        from bayes.analysis import model_specs
        from bayes.data import study_from_frame
        from bayes.simulate import PAPER_DIGITS, endpoint_truth, simulate_study

        truths = []
        for ep in LAYOUTS[tag]:
            base = math.log(UNIT_SCALE) if ep.kind == "positive" else 0.0
            dispersion = {"positive": 0.3, "percent": 20.0, "rate": None}[ep.kind]
            truths.append(endpoint_truth(ep.name, ep.kind, ep.better, baseline=base,
                                         effects={a: 0.0 for a in AGENTS}, dispersion=dispersion,
                                         cohort=ep.cohort, unit=ep.unit))
        frame = simulate_study(truths, 10, np.random.default_rng(0), report_n=report_n, digits=PAPER_DIGITS)
        study = study_from_frame(frame, name=f"SBC template {tag}")
        _TEMPLATES[key] = model_specs(study, tag.split("-")[0], n_prior())[0]
    return _TEMPLATES[key]


class _Forward:
    """Seeded forward draws of every parameter of one model, from its priors (compiled once)."""

    def __init__(self, spec, priors):
        import pymc as pm
        from pymc.pytensorf import reseed_rngs

        from bayes.models.builder import build_model

        model = build_model(spec, priors)
        self.names = [rv.name for rv in model.free_RVs] + [
            d.name for d in model.deterministics if not d.name.startswith("n_weight")]
        with model:
            self._fn, updates = pm.compile([], [model[n] for n in self.names], random_seed=False,
                                           mode="FAST_COMPILE", return_updates=True)
        self._rngs = list(updates)
        self._reseed = reseed_rngs

    def __call__(self, seed: int) -> dict[str, np.ndarray]:
        self._reseed(self._rngs, seed)
        return {n: np.asarray(v) for n, v in zip(self.names, self._fn())}


def _forward(tag: str, priors) -> _Forward:
    key = (tag, priors.hash)
    if key not in _FORWARD:
        _FORWARD[key] = _Forward(_template_spec(tag), priors)
    return _FORWARD[key]


# --------------------------------------------------------------------------- checked parameters

@dataclass(frozen=True)
class Checked:
    """One scalar to check: its label, model variable, flat index and role."""

    label: str
    var: str
    index: int
    role: str


def _cell_roles(tag: str, spec) -> list[tuple[str, str, str]]:
    """(model variable, label prefix, role) of every checked variable."""
    from bayes.models.builder import prefix

    family = tag.split("-")[0]
    multi = len(spec.cells) > 1
    out = []
    if family == "joint":
        out += [("synergy_mean", "", "synergy"), ("synergy", "", "synergy"), ("synergy_sd", "", "nuisance"),
                ("agent_effect_mean", "", "effect")]
    if family == "link":
        out += [("link", "", "synergy"), ("alpha_combo", "", "synergy"), ("total_interaction", "", "synergy"),
                ("alpha_agent", "", "effect"), ("loading_free", "", "nuisance"), ("residual_sd", "", "nuisance")]
    for i, cell in enumerate(spec.cells):
        p = prefix(i)
        label = f"{cell.endpoint}: " if multi else ""
        if family == "factorial":
            out += [(p + "interaction", label, "synergy"), (p + "agent_effect", label, "effect")]
        elif family == "link" and cell.endpoint in ("tumor_volume", "survival"):
            out += [(p + "interaction", label + "direct ", "synergy")]
        out += [(p + "baseline", label, "effect")]
        if family == "factorial":
            out += [(p + ("sd_log" if cell.kind == "positive" else "precision"), label, "nuisance")]
    return out


def checked_parameters(tag: str, spec, posterior) -> list[Checked]:
    """The scalars SBC checks for a family, labelled with their coordinates."""
    from bayes.models.builder import prefix

    out = []
    for var, label, role in _cell_roles(tag, spec):
        if var not in posterior:
            continue
        da = posterior[var]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        shape = [da.sizes[d] for d in dims]
        name = var
        for i in range(len(spec.cells)):
            if var.startswith(prefix(i)):
                name = var[len(prefix(i)):]
        for flat, idx in enumerate(np.ndindex(*shape)):
            coords = [str(da[d].values[k]) for d, k in zip(dims, idx)]
            suffix = f"[{', '.join(coords)}]" if coords else ""
            out.append(Checked(f"{label}{name}{suffix}", var, flat, role))
    return out


def _truth_in_model_units(var: str, value: float, spec) -> float:
    """A positive endpoint's baseline is relative to the reported control mean (see the module docstring)."""
    from bayes.models.builder import prefix

    for i, cell in enumerate(spec.cells):
        if var == prefix(i) + "baseline" and cell.kind == "positive":
            return float(value) + math.log(UNIT_SCALE) - math.log(cell.scale)
    return float(value)


# --------------------------------------------------------------------------- ranks and coverage

def thin(values: np.ndarray, keep: int) -> np.ndarray:
    """``keep`` draws from a (chain, draw) array, every k-th draw of each chain (reduces autocorrelation)."""
    values = np.asarray(values)
    chains, draws = values.shape
    if chains * draws < keep:
        raise ValueError(f"{chains} x {draws} draws cannot be thinned to {keep}")
    per_chain = math.ceil(keep / chains)
    stride = max(1, draws // per_chain)
    return values[:, ::stride][:, :per_chain].reshape(-1)[:keep]


def thin_stride(chains: int, draws: int, keep: int) -> int:
    return max(1, draws // math.ceil(keep / chains))


def rank_of(truth: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    """Number of draws below the truth, ties broken at random (0..len(draws))."""
    draws = np.asarray(draws)
    less, equal = int((draws < truth).sum()), int((draws == truth).sum())
    return less + int(rng.integers(0, equal + 1))


def pit_of(truth: float, draws: np.ndarray, rng: np.random.Generator) -> float:
    """Posterior CDF at the truth from all draws, ties randomised."""
    draws = np.asarray(draws)
    return float((draws < truth).mean() + rng.uniform() * (draws == truth).mean())


def covered(pit: float, levels=LEVELS) -> dict[str, bool]:
    """Whether each central interval covers the truth: the posterior CDF at the truth lies within
    ((1 - q) / 2, (1 + q) / 2)."""
    return {level_key(q): bool((1 - q) / 2 <= pit <= (1 + q) / 2) for q in levels}


def level_key(q: float) -> str:
    return f"{round(100 * q):d}"


def rank_pit(ranks, thin_to: int, seed: int = 0) -> np.ndarray:
    """Ranks 0..L as PIT values (rank + U) / (L + 1): exactly uniform on (0, 1) when the ranks are uniform."""
    ranks = np.asarray(ranks, float)
    if ranks.size and (ranks.min() < 0 or ranks.max() > thin_to):
        raise ValueError(f"ranks must lie in 0..{thin_to}")
    return (ranks + np.random.default_rng(seed).uniform(size=ranks.shape)) / (thin_to + 1)


def ecdf_band(sims: int, prob: float = 1 - ALPHA, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, lower, upper): the simultaneous ``prob`` band of the ECDF of ``sims`` uniform values
    (arviz-stats' simulation method, Säilynoja et al. 2022)."""
    from arviz_stats.ecdf_utils import ecdf_pit

    x, _, lower, upper = ecdf_pit(np.linspace(0, 1, sims), prob, BAND_SIMULATIONS,
                                  rng=np.random.default_rng(seed))
    return x, lower, upper


def uniformity(pit: np.ndarray, band=None) -> dict:
    """Uniformity of PIT values: arviz-stats' ``pot_c`` p-value and the simultaneous ECDF band check."""
    from arviz_stats.base import array_stats
    from arviz_stats.ecdf_utils import compute_ecdf

    pit = np.asarray(pit, float)
    p_value = float(array_stats.uniformity_test(pit, method="pot_c")[0])
    x, lower, upper = band if band is not None else ecdf_band(len(pit))
    ecdf = compute_ecdf(pit, x)
    inside = bool(np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)))
    return {"p_value": p_value, "inside_band": inside, "max_ecdf_diff": float(np.max(np.abs(ecdf - x)))}


def binomial_range(sims: int, q: float, prob: float = 1 - ALPHA) -> tuple[float, float]:
    """Coverage range expected from ``sims`` simulations at nominal ``q`` (central ``prob`` binomial interval)."""
    from scipy.stats import binom

    lo, hi = binom.ppf([(1 - prob) / 2, (1 + prob) / 2], sims, q)
    return float(lo) / sims, float(hi) / sims


def coverage_table(flags: pd.DataFrame) -> pd.DataFrame:
    """Nominal vs observed coverage per parameter and level, flagged when outside the binomial range.

    ``flags``: one row per simulation x parameter with ``parameter``, ``role``
    and a boolean column per level key (``"50"``, ``"80"``, ``"95"``).
    """
    import pandas as pd

    rows = []
    for (param, role), part in flags.groupby(["parameter", "role"], sort=False):
        sims = len(part)
        for q in LEVELS:
            hits = int(part[level_key(q)].sum())
            lo, hi = binomial_range(sims, q)
            observed = hits / sims
            rows.append({"parameter": param, "role": role, "nominal": q, "observed": observed,
                         "covered": hits, "sims": sims, "expected_low": lo, "expected_high": hi,
                         "flag": bool(observed < lo or observed > hi)})
    return pd.DataFrame(rows)


def uniformity_table(ranks: pd.DataFrame, thin_to: int, seed: int = 0) -> pd.DataFrame:
    """Per parameter: pot_c p-value, simultaneous-band check and the Bonferroni verdict.

    ``ranks``: one row per simulation x parameter with ``parameter``,
    ``role`` and ``rank`` (0..thin_to).  A parameter is flagged when its
    p-value is below 0.05; the family's verdict uses the Bonferroni level
    0.05 / (number of parameters), since many parameters are tested at once.
    """
    import pandas as pd

    groups = list(ranks.groupby(["parameter", "role"], sort=False))
    bands = {}
    rows = []
    for k, ((param, role), part) in enumerate(groups):
        sims = len(part)
        if sims not in bands:
            bands[sims] = ecdf_band(sims, seed=seed)
        pit = rank_pit(part["rank"].to_numpy(), thin_to, seed=seed + k)
        test = uniformity(pit, bands[sims])
        rows.append({"parameter": param, "role": role, "sims": sims, **test,
                     "flag": bool(test["p_value"] < ALPHA)})
    table = pd.DataFrame(rows)
    if len(table):
        table["bonferroni_fail"] = table["p_value"] < ALPHA / len(table)
    return table


def verdict(uniform, coverage) -> dict:
    """The family's verdicts in numbers (what the docs and tests quote).

    Rank uniformity passes when no parameter's p-value is below the
    Bonferroni level 0.05 / m *and* the number of parameters flagged at 0.05
    is not more than chance allows (binomial tail probability >= 0.05): a
    deviation shared by several parameters (e.g. every arm's dispersion) can
    stay above the Bonferroni level in each and still be systematic.
    """
    from scipy.stats import binom

    m = len(uniform)
    cells = len(coverage)
    flags = int(uniform["flag"].sum()) if m else 0
    count_p = float(binom.sf(flags - 1, m, ALPHA)) if m else math.nan
    return {
        "parameters": m,
        "uniformity_pass": bool(m and not uniform["bonferroni_fail"].any() and count_p >= ALPHA),
        "bonferroni_pass": bool(m and not uniform["bonferroni_fail"].any()),
        "flag_count_p": count_p,
        "uniformity_flags_at_0.05": flags,
        "expected_false_flags_at_0.05": ALPHA * m,
        "outside_band": int((~uniform["inside_band"]).sum()) if m else 0,
        "min_p_value": float(uniform["p_value"].min()) if m else math.nan,
        "bonferroni_level": ALPHA / m if m else math.nan,
        "coverage_flags": int(coverage["flag"].sum()) if cells else 0,
        "coverage_cells": cells,
        "expected_false_coverage_flags": ALPHA * cells,
    }


# --------------------------------------------------------------------------- one simulation

def sbc_one(family: str, kind: str | None = None, index: int = 0, seed: int = config.DEFAULT_SEED, *,
            draws: int = DEFAULT_DRAWS, tune: int = DEFAULT_TUNE, chains: int = DEFAULT_CHAINS,
            thin_to: int = DEFAULT_THIN, priors: str = "default", report_n: bool = False) -> dict:
    """One SBC simulation of ``family`` (see the module docstring); a JSON-serialisable dict.

    Keys: ``family``, ``kind``, ``tag``, ``index``, ``seed``, ``seeds`` (per
    random step), ``thin_to`` and ``stride``, ``n_true`` (per cohort),
    ``parameters`` (label -> ``role``, ``truth``, ``rank`` in 0..thin_to,
    ``pit``, posterior ``mean`` and ``sd``, ``covered`` per level "50"/"80"/"95"),
    ``diagnostics`` (R-hat, ESS, divergences, passed), ``seconds``, ``pid``,
    ``finished`` and ``bayes_version``.  ``report_n=True`` is a control run
    in which the table prints n (the model then uses it and n is not checked);
    by default n is unreported and summed out.
    """
    global FITS
    from bayes.analysis import model_specs
    from bayes.data import study_from_frame
    from bayes.priors import load_prior_set
    from bayes.sampling import diagnose, sample_spec

    start = time.perf_counter()
    tag = family_tag(family, kind)
    if draws * chains < thin_to:
        raise BayesError(f"{chains} chains x {draws} draws are fewer than the {thin_to} draws ranks need")
    seeds = derived_seeds(seed, tag, index)
    prior_set = load_prior_set(priors)
    template = _template_spec(tag, report_n)
    values = _forward(tag, prior_set)(seeds["prior"])
    n_rng = np.random.default_rng(seeds["n"])
    cohorts = list(dict.fromkeys(e.cohort for e in LAYOUTS[tag]))
    n_true = {c: int(n_rng.integers(N_LOW, N_HIGH + 1)) for c in cohorts}
    frame = simulate_table(tag, template.cells, values, n_true, np.random.default_rng(seeds["data"]),
                           report_n=report_n)
    study = study_from_frame(frame, name=f"SBC {tag} #{index}")
    spec = model_specs(study, family, n_prior())[0]
    if spec.structure != template.structure:
        raise RuntimeError(f"simulated table of {tag} #{index} does not have the family's layout")

    settings = sampler_settings(family, draws=draws, tune=tune, chains=chains, seed=seeds["sampler"])
    raw, free = sample_spec(spec, prior_set, settings=settings, key=f"sbc/{tag}/{index}", cache=_cache())
    FITS += 1
    diag = diagnose(raw, free)
    post = raw["posterior"].to_dataset()
    rng = np.random.default_rng(seeds["ranks"])

    params = {}
    for item in checked_parameters(tag, spec, post):
        da = post[item.var]
        samples = da.to_numpy().reshape(da.sizes["chain"], da.sizes["draw"], -1)[:, :, item.index]
        truth = _truth_in_model_units(item.var, np.asarray(values[item.var]).reshape(-1)[item.index], spec)
        pit = pit_of(truth, samples, rng)
        params[item.label] = {"role": item.role, "truth": truth, "rank": rank_of(truth, thin(samples, thin_to), rng),
                              "pit": pit, "mean": float(samples.mean()), "sd": float(samples.std()),
                              "covered": covered(pit)}
    for j, group in enumerate(spec.groups):
        if group.reported:
            continue
        params[f"n[{group.cohort}]"] = _n_check(post[f"n_weight_{j}"].to_numpy(), group.grid,
                                                n_true[group.cohort], thin_to, rng)

    return {
        "family": family, "kind": kind, "tag": tag, "index": int(index), "seed": int(seed), "seeds": seeds,
        "priors": prior_set.name, "draws": int(draws), "tune": int(tune), "chains": int(chains),
        "target_accept": diag.target_accept, "first_divergences": diag.first_divergences,
        "adaptation": settings.adaptation,
        "thin_to": int(thin_to), "stride": thin_stride(chains, draws, thin_to), "n_true": n_true,
        "report_n": bool(report_n),
        "parameters": params,
        "diagnostics": {"rhat_max": _finite(diag.rhat_max), "ess_bulk_min": _finite(diag.ess_bulk_min),
                        "ess_tail_min": _finite(diag.ess_tail_min), "divergences": int(diag.divergences),
                        "passed": bool(diag.passed), "problems": diag.problems},
        "seconds": round(time.perf_counter() - start, 3), "pid": os.getpid(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bayes_version": __version__,
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _n_check(weights: np.ndarray, grid: np.ndarray, truth: int, thin_to: int, rng: np.random.Generator) -> dict:
    """Discrete n: each posterior draw's conditional P(n | parameters, data) gives one n draw for the
    rank; the PIT uses the averaged weights (Rao-Blackwellised), ties randomised."""
    chains, draws, size = weights.shape
    w = weights.reshape(chains, draws, size)
    picked = thin(np.arange(chains * draws).reshape(chains, draws), thin_to)
    flat = w.reshape(-1, size)[picked]
    flat = flat / flat.sum(axis=1, keepdims=True)
    cum = flat.cumsum(axis=1)
    u = rng.uniform(size=(len(flat), 1))
    n_draws = grid[np.minimum((cum < u).sum(axis=1), size - 1)]
    mean_w = w.reshape(-1, size).mean(axis=0)
    mean_w = mean_w / mean_w.sum()
    pit = float(mean_w[grid < truth].sum() + rng.uniform() * mean_w[grid == truth].sum())
    post_mean = float((mean_w * grid).sum())
    return {"role": "n", "truth": float(truth), "rank": rank_of(float(truth), n_draws, rng), "pit": pit,
            "mean": post_mean, "sd": float(np.sqrt((mean_w * (grid - post_mean) ** 2).sum())),
            "covered": covered(pit)}


# --------------------------------------------------------------------------- a run

def make_tasks(family: str, kind: str | None, sims: int, seed: int, *, draws: int, tune: int,
               chains: int, thin_to: int, priors: str = "default", report_n: bool = False) -> list:
    """One batch task per simulation (key ``<tag>-<index>``, function ``bayes.validate:sbc_one``)."""
    from bayes.batch import Task

    tag = family_tag(family, kind)
    kwargs = {"family": family, "kind": kind, "seed": int(seed), "draws": int(draws), "tune": int(tune),
              "chains": int(chains), "thin_to": int(thin_to), "priors": priors}
    if report_n:
        kwargs["report_n"] = True
    return [Task(f"{tag}-{i:04d}", "bayes.validate:sbc_one", {**kwargs, "index": i}) for i in range(sims)]


def run_sbc(family: str, kind: str | None = None, *, sims: int = DEFAULT_SIMS, seed: int = config.DEFAULT_SEED,
            out_dir: str | os.PathLike = "sbc", draws: int = DEFAULT_DRAWS, tune: int = DEFAULT_TUNE,
            chains: int = DEFAULT_CHAINS, thin_to: int = DEFAULT_THIN, priors: str = "default",
            scheduler=None, workers: int | None = None, progress=None, overwrite: bool = False,
            report_n: bool = False) -> dict:
    """Run ``sims`` SBC simulations of a family through :func:`bayes.batch.run` and summarise them.

    Per-simulation results go to ``out_dir/sims/`` as they finish (a rerun
    resumes and refits nothing already there; more ``sims`` with the same
    settings extend it); the summary files go to ``out_dir`` (see the module
    docstring).  Results made with other settings (seed, draws, tune,
    chains, thin_to, priors, report_n, version) are refused unless
    ``overwrite``, which deletes them first.  ``report_n=True`` is a
    control run with n printed in every table (known to the model).
    Returns the summary dict that is also written to ``summary.json``.
    """
    tag = family_tag(family, kind)
    if sims < 2:
        raise BayesError(f"SBC needs at least 2 simulations, not {sims}")
    if draws * chains < thin_to:
        raise BayesError(f"{chains} chains x {draws} draws are fewer than the {thin_to} draws ranks need")
    out = Path(out_dir)
    sampler = sampler_settings(family, draws=draws, tune=tune, chains=chains, seed=seed)
    settings = {"tag": tag, "seed": int(seed), "draws": int(draws), "tune": int(tune), "chains": int(chains),
                "thin_to": int(thin_to), "priors": priors, "bayes_version": __version__,
                "sampler": sampler.sampler, "target_accept": sampler.target_accept,
                "adaptation": sampler.adaptation}
    if report_n:
        settings["report_n"] = True
    _claim(out, settings, overwrite=overwrite)
    tasks = make_tasks(family, kind, sims, seed, draws=draws, tune=tune, chains=chains, thin_to=thin_to,
                       priors=priors, report_n=report_n)
    from bayes import batch

    resumed = sum(batch.result_path(out / "sims", t.key).exists() for t in tasks)
    start = time.perf_counter()
    try:
        results = batch.run(tasks, out / "sims", scheduler=scheduler, workers=workers, progress=progress)
        failures = {}
    except batch.BatchError as error:    # summarise what finished; the failures are named in the summary
        results, failures = error.results, error.failures
    wall = time.perf_counter() - start
    ordered = [results[t.key] for t in tasks if t.key in results]
    settings = {**settings, "sims": sims, "stride": thin_stride(chains, draws, thin_to),
                "n_prior": f"uniform {N_LOW}..{N_HIGH} per cohort, "
                           + ("REPORTED in the table (control run)" if report_n else "not reported"),
                "rounding": "bayes.simulate.PAPER_DIGITS", "cores_per_fit": 1,
                "scheduler": scheduler or "local", "workers": workers, "resumed": resumed}
    return summarise(ordered, out, tag=tag, settings=settings, wall_seconds=wall, failures=failures)


RUN_FILE = "sbc_run.json"
SUMMARY_FILES = ("ranks.csv", "uniformity.csv", "coverage.csv", "ecdf.png", "ranks.png", "summary.json")


def _claim(out: Path, settings: dict, *, overwrite: bool) -> None:
    """Record the run's settings in ``out``; refuse (or with ``overwrite`` clear) results made with others."""
    import shutil

    from bayes.results import write_atomic

    run_file = out / RUN_FILE
    has_results = any((out / "sims").glob("*.json"))
    if run_file.exists() and has_results and not overwrite:
        earlier = json.loads(run_file.read_text())
        if earlier != settings:
            changed = ", ".join(f"{k} {earlier.get(k)!r} -> {settings[k]!r}" for k in settings
                                if earlier.get(k) != settings[k])
            raise BayesError(f"{out} holds SBC results made with other settings ({changed}); "
                             "pass --force (overwrite=True) to replace them, or choose another --out")
    if overwrite:
        shutil.rmtree(out / "sims", ignore_errors=True)
        for name in (RUN_FILE, *SUMMARY_FILES):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings, indent=2)
    write_atomic(run_file, lambda tmp: Path(tmp).write_text(text + "\n"))


def summarise(results: list[dict], out_dir: str | os.PathLike, *, tag: str, settings: dict,
              wall_seconds: float | None = None, failures: dict[str, str] | None = None) -> dict:
    """Write ranks.csv, uniformity.csv, coverage.csv, ecdf.png, ranks.png and summary.json."""
    import pandas as pd

    from bayes.results import write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not results:
        raise BayesError(f"no SBC results to summarise in {out}")
    thin_to = int(results[0]["thin_to"])
    rows = []
    for r in results:
        for name, p in r["parameters"].items():
            rows.append({"sim": r["index"], "parameter": name, "role": p["role"], "truth": p["truth"],
                         "rank": p["rank"], "pit": p["pit"], "mean": p["mean"], "sd": p["sd"],
                         **{k: v for k, v in p["covered"].items()}})
    ranks = pd.DataFrame(rows)
    uniform = uniformity_table(ranks, thin_to, seed=int(settings.get("seed", 0)) % 2**31)
    coverage = coverage_table(ranks)
    diag = pd.DataFrame([r["diagnostics"] for r in results])
    diagnostics = {"fits": len(diag), "passed": int(diag["passed"].sum()),
                   "with_divergences": int((diag["divergences"] > 0).sum()),
                   "divergences_total": int(diag["divergences"].sum()),
                   # first fits with divergences, sampled again at RETRY_TARGET_ACCEPT (bayes.sampling)
                   "retried": int(sum(r.get("first_divergences", 0) > 0 for r in results)),
                   "rhat_max": float(diag["rhat_max"].max()),
                   "ess_bulk_min": float(diag["ess_bulk_min"].min()),
                   "fit_seconds_total": float(sum(r["seconds"] for r in results)),
                   "fit_seconds_median": float(np.median([r["seconds"] for r in results]))}
    for name, frame in (("ranks.csv", ranks), ("uniformity.csv", uniform), ("coverage.csv", coverage)):
        write_atomic(out / name, lambda tmp, frame=frame: frame.to_csv(tmp, index=False, float_format="%.6g"))
    title = f"SBC {tag}: {len(results)} simulations, ranks among {thin_to} thinned draws"
    for name, fig in (("ecdf.png", ecdf_figure(ranks, uniform, thin_to, title)),
                      ("ranks.png", rank_figure(ranks, thin_to, title))):
        from bayes.figures import to_png

        png = to_png(fig)
        write_atomic(out / name, lambda tmp, png=png: Path(tmp).write_bytes(png))
    summary = {
        "bayes_version": __version__, "tag": tag,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings, "simulations": len(results), "failed": failures or {},
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "verdict": verdict(uniform, coverage), "diagnostics": diagnostics,
        "seeds": {"master": settings.get("seed"), "per_simulation": "derived_seeds(seed, tag, index)"},
        "files": list(SUMMARY_FILES),
        "uniformity": uniform.to_dict(orient="records"),
        "coverage": coverage.to_dict(orient="records"),
    }
    text = json.dumps(summary, indent=2, default=_json_default)
    write_atomic(out / "summary.json", lambda tmp: Path(tmp).write_text(text + "\n"))
    return json.loads(text)


def _json_default(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# --------------------------------------------------------------------------- figures

def _grid(n: int, width: float = 10.0, panel_height: float = 1.9, cols: int = 4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = max(1, math.ceil(n / cols))
    height = 1.15 + panel_height * rows
    fig = Figure(figsize=(width, height), dpi=100)     # fixed margins: constrained layout is slow here
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.45 / height, top=1 - 1.0 / height,
                        wspace=0.3, hspace=0.75)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.tick_params(labelsize=6.5)
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_locator(MaxNLocator(5))
    return fig, axes[:n]


def ecdf_figure(ranks: pd.DataFrame, uniform: pd.DataFrame, thin_to: int, title: str):
    """ECDF of the rank PIT minus the uniform CDF per parameter, with the 95 % simultaneous band."""
    params = list(dict.fromkeys(ranks["parameter"]))
    fig, axes = _grid(len(params))
    tests = uniform.set_index("parameter")
    bands = {}
    for k, (ax, param) in enumerate(zip(axes, params)):
        part = ranks[ranks["parameter"] == param]
        sims = len(part)
        if sims not in bands:
            bands[sims] = ecdf_band(sims)
        x, lower, upper = bands[sims]
        pit = np.sort(rank_pit(part["rank"].to_numpy(), thin_to, seed=k))
        ecdf = np.searchsorted(pit, x, side="right") / sims
        test = tests.loc[param]
        bad = bool(test["flag"])
        ax.fill_between(x, lower - x, upper - x, step="post", color="#d0d0d0", linewidth=0)
        ax.axhline(0, color="#7f7f7f", linewidth=0.6)
        ax.step(x, ecdf - x, where="post", color="#d62728" if bad else "#1f77b4", linewidth=1.1)
        ax.set_title(f"{param}\np = {test['p_value']:.3f}", fontsize=7.5,
                     color="#d62728" if bad else "black")
        ax.set_xlim(0, 1)
    for ax in axes[-4:]:
        ax.set_xlabel("fractional rank", fontsize=7)
    fig.suptitle(f"{title}\nECDF - uniform CDF with the 95% simultaneous band (grey); "
                 "red: pot_c p < 0.05", fontsize=8.5)
    return fig


def rank_figure(ranks: pd.DataFrame, thin_to: int, title: str, bins: int = 10):
    """Rank histograms with the binomial 99 % range of a bin's count under uniformity (Talts et al. 2018)."""
    from scipy.stats import binom

    params = list(dict.fromkeys(ranks["parameter"]))
    fig, axes = _grid(len(params))
    edges = np.linspace(0, thin_to + 1, bins + 1)
    for ax, param in zip(axes, params):
        r = ranks.loc[ranks["parameter"] == param, "rank"].to_numpy()
        sims = len(r)
        lo, hi = binom.ppf([0.005, 0.995], sims, 1 / bins)
        ax.axhspan(lo, hi, color="#d0d0d0", linewidth=0)
        ax.axhline(sims / bins, color="#7f7f7f", linewidth=0.6)
        ax.hist(r, bins=edges, color="#1f77b4", edgecolor="white", linewidth=0.4)
        ax.set_title(param, fontsize=7.5)
        ax.set_xlim(0, thin_to + 1)
    for ax in axes[-4:]:
        ax.set_xlabel(f"rank (0..{thin_to})", fontsize=7)
    fig.suptitle(f"{title}\nrank histograms; grey: 99% range of a bin's count under uniformity", fontsize=8.5)
    return fig


# --------------------------------------------------------------------------- text

def format_summary(summary: dict) -> str:
    """The printed SBC report: settings, fits, rank uniformity and coverage per parameter, verdict."""
    st, v, d = summary["settings"], summary["verdict"], summary["diagnostics"]
    wall = summary.get("wall_seconds")
    resumed = st.get("resumed") or 0
    lines = [f"SBC {summary['tag']}: {summary['simulations']} simulations ({st['chains']} chains x {st['draws']} "
             f"draws after {st['tune']} tuning"
             + (f", target_accept {st['target_accept']}" if "target_accept" in st else "")
             + f", ranks among {st['thin_to']} draws thinned every {st['stride']}), "
             f"seed {st['seed']}, priors {st['priors']}, n {st['n_prior']}"
             + ("" if wall is None else f"; wall time {wall:.0f} s")
             + (f" ({resumed} simulations read back from an earlier run)" if resumed else ""),
             f"Fits: {d['fits']}, diagnostics passed {d['passed']}, with divergences {d['with_divergences']} "
             f"(total {d['divergences_total']})"
             + (f" after {d['retried']} sampled again at a higher target_accept" if d.get("retried") else "")
             + f", worst R-hat {d['rhat_max']:.3f}, lowest bulk ESS "
             f"{d['ess_bulk_min']:.0f}, median {d['fit_seconds_median']:.1f} s per simulation",
             "", "Rank uniformity (pot_c p-value; band: rank ECDF inside the 95% simultaneous band) and coverage "
             "of central intervals (observed; * outside the binomial 95% range for this many simulations)",
             f"  {'parameter':<34} {'role':<9} {'p':>6} {'band':>5}   " + "   ".join(
                 f"{level_key(q) + '%':>6}" for q in LEVELS)]
    cover = {}
    for row in summary["coverage"]:
        cover.setdefault(row["parameter"], {})[row["nominal"]] = row
    for row in summary["uniformity"]:
        cells = []
        for q in LEVELS:
            c = cover.get(row["parameter"], {}).get(q)
            cells.append("" if c is None else f"{c['observed']:.2f}{'*' if c['flag'] else ' '}")
        mark = "!" if row["bonferroni_fail"] else ("*" if row["flag"] else " ")
        lines.append(f"  {row['parameter']:<34} {row['role']:<9} {row['p_value']:6.3f}{mark}"
                     f"{'ok' if row['inside_band'] else 'OUT':>5}   " + "   ".join(f"{c:>6}" for c in cells))
    lines.append("  (* p < 0.05; ! below the Bonferroni level)")
    if summary.get("failed"):
        lines.append(f"FAILED simulations (left out of every number above): {', '.join(summary['failed'])}")
    verdict_text = ("passes" if v["uniformity_pass"] else "FAILS")
    lines.append("")
    lines.append(f"Verdict: rank uniformity {verdict_text} (smallest p {v['min_p_value']:.3g} vs Bonferroni level "
                 f"{v['bonferroni_level']:.3g} for {v['parameters']} parameters; {v['uniformity_flags_at_0.05']} "
                 f"flagged at 0.05, {v['expected_false_flags_at_0.05']:.1f} expected by chance, "
                 f"P(as many by chance) = {v['flag_count_p']:.3g}); "
                 f"{v['coverage_flags']} of {v['coverage_cells']} coverage cells outside their binomial range "
                 f"({v['expected_false_coverage_flags']:.1f} expected by chance)")
    return "\n".join(lines)
