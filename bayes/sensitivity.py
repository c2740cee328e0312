"""Sensitivity: the key results under each assumption the paper leaves open.

A conclusion is only as good as what it leans on.  Three sweeps refit the
same model under different assumptions and put the key results side by side
(per endpoint, Bliss, and the pooled synergy of the joint model: mean,
interval and P(synergy)):

* ``n_sensitivity``: each assumed n per arm, and n marginalised.  Every
  assumed n is the same model (a one-value n grid, :mod:`bayes.nprior`)
  with other data, so the sweep compiles (or loads) one model for all of
  them;
* ``prior_sensitivity``: each named prior set (``bayes/priors/*.yaml``);
* ``se_what_if``: the paper's "±" read as the standard error of the mean
  instead of the SD, one cohort at a time and all at once.  SEM = SD /
  sqrt(n), so an SE reading makes the arms noisier by sqrt(n) at every n,
  and n stays unknown.

Reweighting instead of refitting: given the headline fit (``base``), each
variant is first tried by Pareto-smoothed importance sampling (PSIS; Vehtari
et al. 2024) of the headline fit's draws.  A variant changes only the data
(an assumed n, a "±" read as SEM) or the prior set's numbers, not the
model's free variables, so every draw is a point of the variant's model too:
its weight is the ratio of the two models' log densities there, both
evaluated with the compiled models (nothing is sampled), and the variant's
stored variables (arm means, scores) are recomputed from the draw with the
variant's own expand function.  The variant's key results are then the
weighted summaries.  This is used only where it is reliable: Pareto k-hat
at most :data:`PARETO_K_MAX` (0.7) and an importance-sampling effective
sample size (1 / sum of squared weights, which does not count the draws'
autocorrelation: the headline fit's own ESS passed the gate) of at least
the diagnostics gate's (100 per chain); otherwise the variant is refitted.
A refit starts its chains at the headline fit's draws (the variant's
density is finite at every one of them, or it would not have been weighed)
and tunes for :data:`bayes.config.WARM_TUNE_FRACTION` of the usual steps:
the chains start in or near the variant's typical set, so the most costly
part of warm-up (long trajectories from a far start, with a step size and
mass matrix not yet adapted) is mostly skipped; the gate still judges the
result.  The ``method`` column says which ("reweighted", "warm refit", or
"refit" when the variant's free variables differ), with k-hat and that ESS.

``psense_table`` adds ArviZ's power-scaling diagnosis (prior and likelihood
sensitivity of each synergy parameter) for one fitted joint model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes.analysis import as_nprior, model_specs, start_fit, synergy_rows
from bayes.data import Study
from bayes.nprior import NPrior
from bayes.priors import PriorSet, load_prior_set
from bayes.results import FitResult, retry_text
from bayes.sampling import Pending

DEFAULT_VALUES = (3, 5, 8, 10, 15, 20)
KEY_REFERENCES = ("bliss", "pooled")
KEY_COLUMNS = ["study", "endpoint", "reference", "arm", "mean", "ci_low", "ci_high", "ci_prob",
               "p_synergy", "diagnostics"]


def key_results(synergy: pd.DataFrame) -> pd.DataFrame:
    """The rows a sensitivity table compares: Bliss per endpoint and the pooled synergy."""
    return synergy[synergy["reference"].isin(KEY_REFERENCES)][KEY_COLUMNS]


PARETO_K_MAX = 0.7
METHOD_COLUMNS = ["method", "pareto_k", "is_ess", "retried"]
REWEIGHT_KWARGS = ("model", "n", "priors", "ci_prob", "cache")


@dataclass
class Reweighted:
    """A variant's key results from the headline fit's draws, or why not (``synergy`` None)."""

    synergy: pd.DataFrame | None
    pareto_k: float
    is_ess: float
    reason: str = ""
    init: list | None = None    # refused on k or ESS: the draws, unconstrained, for a refit to start from


def _expanded_posterior(compiled, spec, x: np.ndarray, names: list[str], shape: tuple[int, int]) -> xr.Dataset:
    """The stored variables ``names`` of the compiled model (its data set) at the
    unconstrained points ``x`` (chain x draw, flattened), as a posterior dataset."""
    from bayes.compiled import expanded_values
    from bayes.sampling import relabel

    values = expanded_values(compiled, x)
    where = {name: (sl, tuple(shp)) for name, sl, shp in zip(*compiled.shape_info)}
    coords = compiled.coords or {}
    data = {}
    for name in names:
        sl, shp = where[name]
        dims = ["chain", "draw", *(compiled.dims or {}).get(name, [f"{name}_dim_{i}" for i in range(len(shp))])]
        data[name] = xr.DataArray(values[:, sl].reshape(*shape, *shp), dims=dims,
                                  coords={d: coords[d] for d in dims[2:] if d in coords})
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(data)})
    return relabel(tree, spec)["posterior"].to_dataset()


def _fixed_transforms(model) -> list[tuple[str, str]] | None:
    """(value variable, transform) of each free variable when every transform is
    one without parameters (the same map in every model), else None."""
    from pymc.logprob.transforms import LogOddsTransform, LogTransform

    out = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None and type(transform) not in (LogTransform, LogOddsTransform):
            return None
        out.append((model.rvs_to_values[rv].name, type(transform).__name__))
    return out


def reweight(base: FitResult, base_priors: PriorSet, study: Study, *, model: str, n=None,
             priors: PriorSet | str = "default", ci_prob: float = config.CI_PROB, cache=None,
             memo: dict | None = None) -> Reweighted:
    """The variant (``study``, ``n``, ``priors``) of ``base`` by PSIS of its draws;
    see the module docstring.  Refused (``synergy`` None, with the reason) when
    the models' free variables or transforms differ, or k-hat or the ESS fail;
    in the last case the draws are still points of the variant's model, and
    ``init`` holds them (unconstrained, one array per sampled model) for a
    refit to start from.  ``memo``: a dict kept across calls with the same
    ``base``, which then maps its draws to the unconstrained space and
    evaluates their log density once, and reads each variant structure's
    transforms once.
    """
    from bayes.compare import sampled_logp, unconstrained_draws
    from bayes.compiled import log_densities
    from bayes.models.builder import build_model
    from bayes.sampling import DEFAULT_CACHE, compiled_with_data

    cache = cache or DEFAULT_CACHE
    memo = {} if memo is None else memo
    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    specs = model_specs(study, model, as_nprior(n))
    if base.metadata.get("model") != model or len(specs) != len(base.fits):
        return Reweighted(None, np.nan, np.nan, "a different model")
    need = config.ESS_PER_CHAIN_MIN * base.fits[0][1]["posterior"].sizes["chain"]
    weighed, ks, esss = [], [], []     # per sampled model: what its summary needs; k-hat; ESS
    for i, ((base_spec, raw), spec) in enumerate(zip(base.fits, specs)):
        if [c.key for c in spec.cells] != [c.key for c in base_spec.cells]:
            return Reweighted(None, np.nan, np.nan, "different cells")
        if i not in memo:
            base_model = build_model(base_spec, base_priors)
            _, x = unconstrained_draws(base_model, raw)
            compiled0, _ = compiled_with_data(base_spec, base_priors, cache)
            flat = x.reshape(-1, x.shape[-1])
            lp0 = sampled_logp(raw, x)          # nutpie's, else evaluated
            lp0 = log_densities(compiled0, flat) if lp0 is None else lp0.reshape(-1)
            memo[i] = (_fixed_transforms(base_model), x.shape[:2], flat, lp0, compiled0.shapes)
        transforms, shape, flat, lp0, shapes0 = memo[i]
        compiled_v, _ = compiled_with_data(spec, prior_set, cache)
        kind = ("transforms", spec.structure, prior_set.shape_hash)      # the same for every such variant
        if kind not in memo:
            memo[kind] = _fixed_transforms(build_model(spec, prior_set))
        variant_transforms = memo[kind]
        same = transforms is not None and variant_transforms == transforms
        if transforms is None or variant_transforms is None:
            # transforms with parameters (bounds): compare where the draws land
            _, x_v = unconstrained_draws(build_model(spec, prior_set), raw)
            same = np.allclose(x_v.reshape(flat.shape), flat, rtol=1e-12, atol=0, equal_nan=True)
        names0 = [name for name, _ in (transforms or [])]
        if not same or any(compiled_v.shapes.get(name) != shapes0.get(name) for name in names0):
            return Reweighted(None, np.nan, np.nan, "different free variables or transforms")
        log_ratio = log_densities(compiled_v, flat) - lp0
        if not np.all(np.isfinite(log_ratio)):
            return Reweighted(None, np.nan, np.nan, "draws outside the variant's support")
        log_ratio = xr.DataArray(log_ratio.reshape(shape), dims=("chain", "draw"))
        if np.ptp(log_ratio.values) < 1e-10:       # the same density up to a constant: equal weights
            log_w, k = log_ratio * 0.0, -np.inf
        else:   # arviz-stats smooths the weights exp(-ary) (its convention for PSIS-LOO)
            log_w, k = (-log_ratio).azstats.psislw(dim=["chain", "draw"])
        weights = np.exp(log_w - log_w.max())
        weights = weights / weights.sum()
        weighed.append((spec, compiled_v, raw, flat, shape, weights))
        ks.append(float(k))
        esss.append(float(1.0 / (weights**2).sum()))
    for k, ess in zip(ks, esss):
        if not (k <= PARETO_K_MAX and ess >= need):
            return Reweighted(None, max(ks), min(esss), f"Pareto k {k:.2f}, ESS {ess:.0f}: needs k <= "
                                                        f"{PARETO_K_MAX} and ESS >= {need}",
                              init=[flat for _, _, _, flat, _, _ in weighed])
    passed = list(base.diagnostics["passed"])          # one row per sampled model, in base.fits order
    tables = []
    for i, (spec, compiled_v, raw, flat, shape, weights) in enumerate(weighed):
        post = _expanded_posterior(compiled_v, spec, flat, list(raw["posterior"].data_vars), shape)
        variant_raw = xr.DataTree.from_dict({"posterior": post, "sample_stats": raw["sample_stats"].to_dataset()})
        tables.append(synergy_rows(spec, variant_raw, model=model, passed=bool(passed[i]), ci_prob=ci_prob,
                                   weights=weights))
    return Reweighted(pd.concat(tables, ignore_index=True), max(ks), min(esss))


def sweep(variants: list[tuple[str, Study, dict]], *, column: str, progress=None,
          reuse: dict[str, pd.DataFrame] | None = None, base: tuple[FitResult, PriorSet] | None = None,
          **fit_kwargs) -> pd.DataFrame:
    """Key results of each ``(label, study, extra fit kwargs)`` variant, labelled in ``column``.

    ``reuse`` maps a label to a synergy table already computed for exactly
    that variant (the headline fit), which is then not refitted.  ``base``:
    the headline fit and its prior set, from which each variant is first
    tried by importance reweighting (:func:`reweight`); a variant it cannot
    serve reliably is refitted.  ``method`` says which was used.
    """
    return start_sweep(variants, column=column, progress=progress, reuse=reuse, base=base,
                       **fit_kwargs).result()


def start_sweep(variants: list[tuple[str, Study, dict]], *, column: str, progress=None,
                reuse: dict[str, pd.DataFrame] | None = None, base: tuple[FitResult, PriorSet] | None = None,
                **fit_kwargs) -> Pending:
    """:func:`sweep`, started: the reweighting is done here and every refit set
    sampling in the background (:func:`bayes.analysis.start_fit`), so the
    caller can do other work while they sample; ``result()`` waits and
    returns the table."""
    reuse = reuse or {}
    rows, memo = [], {}
    for label, study, extra in variants:
        kwargs = {**fit_kwargs, **extra}
        method = {"method": "refit", "pareto_k": np.nan, "is_ess": np.nan, "retried": ""}
        if label in reuse:
            synergy, method["method"] = reuse[label], "headline fit"
        else:
            result = None
            if base is not None:
                result = reweight(*base, study, memo=memo,
                                  **{k: v for k, v in kwargs.items() if k in REWEIGHT_KWARGS})
                method.update(pareto_k=result.pareto_k, is_ess=result.is_ess)
            if result is not None and result.synergy is not None:
                synergy, method["method"] = result.synergy, "reweighted"
                if progress:
                    progress(f"{column.replace('_', ' ')}: {label}: reweighted the headline fit's draws "
                             f"(Pareto k {result.pareto_k:.2f}, ESS {result.is_ess:.0f})")
            else:
                init = result.init if result is not None else None
                if init is not None:
                    method["method"] = "warm refit"
                if progress:
                    why = f" (not reweighted: {result.reason})" if result is not None else ""
                    start = " from the headline fit's draws" if init is not None else ""
                    progress(f"{column.replace('_', ' ')}: {label}: refitting{start}{why}")
                synergy = start_fit(study, init=init, **kwargs)
        rows.append((label, synergy, method))

    def finish() -> pd.DataFrame:
        frames = []
        for label, synergy, method in rows:
            table = synergy
            if isinstance(synergy, Pending):
                fitted = synergy.result()
                table = fitted.synergy
                method = {**method, "retried": "; ".join(fitted.metadata.get("retried", {}).values())}
            frames.append(key_results(table).assign(**{column: label}, **method))
        frame = pd.concat(frames, ignore_index=True)
        return frame[[column] + KEY_COLUMNS + METHOD_COLUMNS]

    return Pending(finish)


def n_variants(study: Study, *, values=DEFAULT_VALUES, low: int = 3, high: int = 20,
               main: pd.DataFrame | None = None) -> dict:
    """The variants of :func:`n_sensitivity`, as keyword arguments of :func:`sweep`."""
    wide_low, wide_high = min(low, *values), max(high, *values)
    variants = [(str(v), study, {"n": NPrior.fixed(v, wide_low, wide_high)}) for v in values]
    variants.append(("marginal", study, {"n": NPrior("marginal", None, wide_low, wide_high)}))
    reuse = {"marginal": main} if main is not None and (wide_low, wide_high) == (low, high) else None
    return {"variants": variants, "column": "n_treatment", "reuse": reuse}


def n_sensitivity(study: Study, *, model: str, values=DEFAULT_VALUES, low: int = 3, high: int = 20,
                  progress=None, main: pd.DataFrame | None = None, base=None, **fit_kwargs) -> pd.DataFrame:
    """One row per n treatment x key result; ``fit_kwargs`` go to :func:`bayes.fit`.

    ``main``: the synergy table of a fit with n marginalised over
    ``low..high``, reused as the 'marginal' column when ``values`` do not
    widen that range.  ``base``: see :func:`sweep`.
    """
    return sweep(**n_variants(study, values=values, low=low, high=high, main=main), progress=progress,
                 base=base, model=model, **fit_kwargs)


def prior_variants(study: Study, *, prior_sets=("default", "sceptical", "optimistic"),
                   main: pd.DataFrame | None = None, main_priors: str | None = None) -> dict:
    """The variants of :func:`prior_sensitivity`, as keyword arguments of :func:`sweep`."""
    names = [str(p) for p in prior_sets]
    reuse = None
    if main is not None and main_priors is not None:
        reuse = {main_priors: main}
        if main_priors not in names:
            names.insert(0, main_priors)
    return {"variants": [(name, study, {"priors": name}) for name in names], "column": "prior_set",
            "reuse": reuse}


def prior_sensitivity(study: Study, *, prior_sets=("default", "sceptical", "optimistic"), model: str = "joint",
                      progress=None, main: pd.DataFrame | None = None, main_priors: str | None = None,
                      base=None, **fit_kwargs) -> pd.DataFrame:
    """One row per prior set x key result.  ``main`` (the synergy table of a fit
    under the prior set named ``main_priors``) is reused, listed first when
    that set is not among ``prior_sets``.  ``base``: see :func:`sweep`."""
    return sweep(**prior_variants(study, prior_sets=prior_sets, main=main, main_priors=main_priors),
                 progress=progress, base=base, model=model, **fit_kwargs)


def read_as_se(study: Study, cohorts=None) -> Study:
    """``study`` with the "±" of the given cohorts (default: all) read as SEM instead of SD.

    Only rows that report an SD and no SE change; a reported n stays, so SD
    follows from it; rates and rows with both SD and SE are left alone.
    """
    table = study.table.copy()
    mask = table["sd"].notna() & table["se"].isna()
    if cohorts is not None:
        mask &= table["cohort"].isin(list(cohorts))
    table.loc[mask, "se"] = table.loc[mask, "sd"]
    table.loc[mask, "sd"] = np.nan
    which = "all cohorts" if cohorts is None else ", ".join(cohorts)
    return Study(table, f"{study.source} [± read as SEM: {which}]",
                 f"{study.data_hash}+se:{which}", study.provenance)


def sem_cohorts(study: Study) -> list[str]:
    """Cohorts with a "±" that could be read either way (SD given, no SE)."""
    table = study.table
    return list(dict.fromkeys(table.loc[table["sd"].notna() & table["se"].isna(), "cohort"]))


def se_variants(study: Study, *, main: pd.DataFrame | None = None) -> dict:
    """The variants of :func:`se_what_if`, as keyword arguments of :func:`sweep`."""
    cohorts = sem_cohorts(study)
    variants = [("as entered (SD)", study, {})]
    variants += [(f"SEM in {c}", read_as_se(study, [c]), {}) for c in cohorts]
    if len(cohorts) > 1:
        variants.append(("SEM everywhere", read_as_se(study), {}))
    reuse = {"as entered (SD)": main} if main is not None else None
    return {"variants": variants, "column": "reading", "reuse": reuse}


def se_what_if(study: Study, *, model: str = "joint", progress=None, main: pd.DataFrame | None = None,
               base=None, **fit_kwargs) -> pd.DataFrame:
    """Key results with "±" as entered (SD), as SEM per cohort, and as SEM everywhere.

    ``main``: the synergy table of the fit as entered, reused instead of refitted.
    ``base``: see :func:`sweep`.
    """
    return sweep(**se_variants(study, main=main), progress=progress, base=base, model=model, **fit_kwargs)


def wide(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows = endpoint x score x arm, columns = the sweep's labels, cells 'mean (P>0)'."""
    frame = frame.assign(cell=frame["mean"].map("{:.2f}".format) + " (" +
                         frame["p_synergy"].map("{:.2f}".format) + ")" +
                         np.where(frame["diagnostics"] == "ok", "", " !"))
    out = frame.pivot_table(index=["endpoint", "reference", "arm"], columns=column, values="cell",
                            aggfunc="first", sort=False)
    return out[list(frame[column].drop_duplicates())]


def format_sensitivity(frame: pd.DataFrame, column: str = "n_treatment") -> list[str]:
    """Wide text table of a sweep (mean and P>0 per label); '!' marks a failed fit."""
    if frame.empty:
        return []
    headers = {"n_treatment": "n-sensitivity: score mean (P > 0) under each n per arm; "
                              "'marginal' = n unknown, summed out",
               "prior_set": "prior sensitivity: score mean (P > 0) under each prior set",
               "reading": "SD-vs-SE what-if: score mean (P > 0) with the '±' read as SD or as SEM"}
    lines = ["", headers.get(column, column), wide(frame, column).to_string()]
    failed = sorted(set(frame.loc[frame["diagnostics"] != "ok", column]))
    if failed:
        lines.append(f"  '!' = diagnostics FAILED ({', '.join(failed)}): treat those columns with caution")
    note = method_note(frame, column)
    if note:
        lines.append(f"  {note}")
    return lines


def method_note(frame: pd.DataFrame, column: str) -> str:
    """Which columns of a sweep were reweighted from the headline fit (with Pareto k
    and ESS) and which refitted; empty for a table without a ``method`` column."""
    if "method" not in frame.columns:
        return ""
    per = frame.drop_duplicates(column).set_index(column)
    reweighted = [f"{label} (k {row.pareto_k:.2f}, ESS {row.is_ess:.0f})"
                  for label, row in per.iterrows() if row.method == "reweighted"]
    refitted = [str(label) for label, row in per.iterrows() if row.method == "refit"]
    warm = [str(label) for label, row in per.iterrows() if row.method == "warm refit"]
    parts = []
    if reweighted:
        parts.append("reweighted from the headline fit's draws by PSIS (Pareto k, ESS): " + ", ".join(reweighted))
    if warm:
        parts.append("refitted, chains started at the headline fit's draws: " + ", ".join(warm))
    if refitted:
        parts.append("refitted: " + ", ".join(refitted))
    if "retried" in per.columns:
        parts += [f"{label}: {retry_text(row.retried)}" for label, row in per.iterrows()
                  if retry_text(row.retried)]
    return "; ".join(parts)


def psense_table(tree, var_names: list[str]) -> pd.DataFrame:
    """ArviZ power-scaling sensitivity (Kallioniemi et al. 2024) of ``var_names``.

    ``tree`` needs ``log_prior`` and ``log_likelihood`` groups
    (:func:`bayes.compare.with_log_groups`).  Columns: prior and likelihood
    sensitivity (CJS distance per unit log power-scaling) and ArviZ's
    diagnosis; values above 0.05 are flagged by ArviZ as sensitive.
    """
    import logging

    import arviz as az

    log = logging.getLogger("arviz_stats.psense")   # it logs a generic "potential issues" hint; the table says it
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        table = az.psense_summary(tree, var_names=var_names)
    finally:
        log.setLevel(level)
    return table.reset_index().rename(columns={"index": "parameter"})
