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

``psense_table`` adds ArviZ's power-scaling diagnosis (prior and likelihood
sensitivity of each synergy parameter) for one fitted joint model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes.analysis import fit
from bayes.data import Study
from bayes.nprior import NPrior

DEFAULT_VALUES = (3, 5, 8, 10, 15, 20)
KEY_REFERENCES = ("bliss", "pooled")
KEY_COLUMNS = ["study", "endpoint", "reference", "arm", "mean", "ci_low", "ci_high", "ci_prob",
               "p_synergy", "diagnostics"]


def key_results(synergy: pd.DataFrame) -> pd.DataFrame:
    """The rows a sensitivity table compares: Bliss per endpoint and the pooled synergy."""
    return synergy[synergy["reference"].isin(KEY_REFERENCES)][KEY_COLUMNS]


def sweep(variants: list[tuple[str, Study, dict]], *, column: str, progress=None,
          reuse: dict[str, pd.DataFrame] | None = None, **fit_kwargs) -> pd.DataFrame:
    """Fit each ``(label, study, extra fit kwargs)`` variant; key results with a ``column`` label.

    ``reuse`` maps a label to a synergy table already computed for exactly
    that variant (the headline fit), which is then not refitted.
    """
    reuse = reuse or {}
    frames = []
    for label, study, extra in variants:
        if label in reuse:
            synergy = reuse[label]
        else:
            if progress:
                progress(f"{column.replace('_', ' ')}: {label}")
            synergy = fit(study, **{**fit_kwargs, **extra}).synergy
        frames.append(key_results(synergy).assign(**{column: label}))
    frame = pd.concat(frames, ignore_index=True)
    return frame[[column] + KEY_COLUMNS]


def n_sensitivity(study: Study, *, model: str, values=DEFAULT_VALUES, low: int = 3, high: int = 20,
                  progress=None, main: pd.DataFrame | None = None, **fit_kwargs) -> pd.DataFrame:
    """One row per n treatment x key result; ``fit_kwargs`` go to :func:`bayes.fit`.

    ``main``: the synergy table of a fit with n marginalised over
    ``low..high``, reused as the 'marginal' column when ``values`` do not
    widen that range.
    """
    wide_low, wide_high = min(low, *values), max(high, *values)
    variants = [(str(v), study, {"n": NPrior.fixed(v, wide_low, wide_high)}) for v in values]
    variants.append(("marginal", study, {"n": NPrior("marginal", None, wide_low, wide_high)}))
    reuse = {"marginal": main} if main is not None and (wide_low, wide_high) == (low, high) else None
    return sweep(variants, column="n_treatment", progress=progress, reuse=reuse, model=model, **fit_kwargs)


def prior_sensitivity(study: Study, *, prior_sets=("default", "sceptical", "optimistic"), model: str = "joint",
                      progress=None, main: pd.DataFrame | None = None, main_priors: str | None = None,
                      **fit_kwargs) -> pd.DataFrame:
    """One row per prior set x key result.  ``main`` (the synergy table of a fit
    under the prior set named ``main_priors``) is reused, listed first when
    that set is not among ``prior_sets``."""
    names = [str(p) for p in prior_sets]
    reuse = None
    if main is not None and main_priors is not None:
        reuse = {main_priors: main}
        if main_priors not in names:
            names.insert(0, main_priors)
    variants = [(name, study, {"priors": name}) for name in names]
    return sweep(variants, column="prior_set", progress=progress, reuse=reuse, model=model, **fit_kwargs)


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


def se_what_if(study: Study, *, model: str = "joint", progress=None, main: pd.DataFrame | None = None,
               **fit_kwargs) -> pd.DataFrame:
    """Key results with "±" as entered (SD), as SEM per cohort, and as SEM everywhere.

    ``main``: the synergy table of the fit as entered, reused instead of refitted.
    """
    cohorts = sem_cohorts(study)
    variants = [("as entered (SD)", study, {})]
    variants += [(f"SEM in {c}", read_as_se(study, [c]), {}) for c in cohorts]
    if len(cohorts) > 1:
        variants.append(("SEM everywhere", read_as_se(study), {}))
    reuse = {"as entered (SD)": main} if main is not None else None
    return sweep(variants, column="reading", progress=progress, reuse=reuse, model=model, **fit_kwargs)


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
    return lines


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
