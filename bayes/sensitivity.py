"""n-sensitivity: the key results under each assumed n and marginalised.

The paper did not say how many animals each arm had, so the answer must be
shown to depend on it (or not).  Every n treatment is the same model with
different prior weights on the n grid (:mod:`bayes.nprior`), so the whole
sweep re-uses one compiled model per structure.  Key results: per endpoint,
Bliss (and the pooled synergy for the joint model), with mean, interval and
P(synergy).
"""

from __future__ import annotations

import pandas as pd

from bayes.analysis import fit
from bayes.data import Study
from bayes.nprior import NPrior

DEFAULT_VALUES = (3, 5, 8, 10, 15, 20)
KEY_REFERENCES = ("bliss", "pooled")


def n_sensitivity(study: Study, *, model: str, values=DEFAULT_VALUES, low: int = 3, high: int = 20,
                  progress=None, **fit_kwargs) -> pd.DataFrame:
    """One row per n treatment x key result; ``fit_kwargs`` go to :func:`bayes.fit`."""
    low, high = min(low, *values), max(high, *values)
    treatments = [(str(v), NPrior.fixed(v, low, high)) for v in values]
    treatments.append(("marginal", NPrior("marginal", None, low, high)))
    frames = []
    for label, nprior in treatments:
        if progress:
            progress(f"n-sensitivity: n = {label}")
        result = fit(study, model=model, n=nprior, **fit_kwargs)
        key = result.synergy[result.synergy["reference"].isin(KEY_REFERENCES)]
        frames.append(key.assign(n_treatment=label, diagnostics=key["diagnostics"])[
            ["n_treatment", "study", "endpoint", "reference", "arm", "mean", "ci_low", "ci_high",
             "ci_prob", "p_synergy", "diagnostics"]])
    return pd.concat(frames, ignore_index=True)


def format_sensitivity(frame: pd.DataFrame) -> list[str]:
    """Wide text table: rows = endpoint x score, columns = n treatment (mean and P>0)."""
    if frame.empty:
        return []
    frame = frame.assign(cell=frame["mean"].map("{:.2f}".format) + " (" +
                         frame["p_synergy"].map("{:.2f}".format) + ")")
    wide = frame.pivot_table(index=["endpoint", "reference", "arm"], columns="n_treatment",
                             values="cell", aggfunc="first", sort=False)
    order = [c for c in frame["n_treatment"].drop_duplicates()]
    wide = wide[order]
    failed = set(frame.loc[frame["diagnostics"] != "ok", "n_treatment"])
    header = "n-sensitivity: score mean (P > 0) under each n per arm; 'marginal' = n unknown, summed out"
    lines = ["", header, wide.to_string()]
    if failed:
        lines.append(f"  diagnostics FAILED for n = {', '.join(sorted(failed))}: treat those columns with caution")
    return lines
