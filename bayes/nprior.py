"""How the number of animals per arm (n) enters a model when a paper omits it.

Three treatments, always stated in the output:

* ``reported``: a row's own n is used as data (always, when present);
* ``fixed``: an explicit assumption, one n for every arm lacking it;
* ``marginal`` (the default): n is an unknown shared by every arm of a
  cohort (the animals an endpoint was measured on), with a uniform prior over
  ``low..high`` restricted to the values under which every reported
  percentage of the cohort is a whole number of animals.  The likelihood is
  summed over that grid exactly (``logsumexp``), so no discrete parameter is
  sampled and the posterior over n comes out as weights.

Every treatment is expressed as a grid of candidate n with log prior
weights, holding only the values the treatment allows: one value when n is
known (reported, or fixed by assumption), the values the percentages allow
when they restrict n.  The likelihood is evaluated once per arm and grid
value, so a short grid is a fast model: an 18-point grid padded with
``-inf`` weights cost 5x as much per gradient on the seed's tumour cell as
the one value it allowed.  The grid's length is part of a compiled model's
structure, so all fixed-n fits share one compiled model (an n-sensitivity
sweep swaps data, not the model).  ``NPrior(pad=True)`` keeps the whole
``low..high`` range with ``-inf`` for excluded values instead, so that
tables whose percentages allow different n still share one compiled model
(simulation studies: :mod:`bayes.validate`).  This module builds numbers; it
imports no modelling library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes.checks import compatible_n

MODES = ("marginal", "fixed")


@dataclass(frozen=True)
class NPrior:
    """The run-wide treatment of unreported n."""

    mode: str = "marginal"
    value: int | None = None
    low: int = 3
    high: int = 20
    pad: bool = False       # marginal grids keep all of low..high (see the module docstring)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown n treatment {self.mode!r}; valid: {', '.join(MODES)}")
        if self.low < 2 or self.high < self.low:
            raise ValueError(f"n range {self.low}..{self.high} is not valid (need 2 <= low <= high)")
        if self.mode == "fixed" and (self.value is None or self.value < 2):
            raise ValueError("a fixed n needs a whole number >= 2")

    @classmethod
    def fixed(cls, value: int, low: int = 3, high: int = 20) -> "NPrior":
        if value != int(value) or value < 2:
            raise ValueError(f"a fixed n needs a whole number >= 2, not {value!r}")
        return cls("fixed", int(value), min(low, int(value)), max(high, int(value)))

    @property
    def grid(self) -> np.ndarray:
        return np.arange(self.low, self.high + 1, dtype=float)

    def describe(self) -> str:
        if self.mode == "fixed":
            return f"ASSUMED n = {self.value} per arm where not reported"
        return (f"n not reported: marginalised over n = {self.low}..{self.high} per arm "
                "(uniform, restricted to values consistent with the reported percentages)")

    def to_dict(self) -> dict:
        return {"mode": self.mode, "value": self.value, "low": self.low, "high": self.high, "pad": self.pad}


@dataclass(frozen=True)
class CohortN:
    """The n grid of one study x cohort: values, log prior weights, and why."""

    study: str
    cohort: str
    grid: np.ndarray        # (G,) candidate n for arms without a reported n
    log_weight: np.ndarray  # (G,) log prior weight; -inf = excluded
    reported: bool          # every row of the cohort reports n
    note: str               # one sentence for the output
    reported_values: tuple[int, ...] = ()   # the distinct reported n, when ``reported``

    @property
    def allowed(self) -> list[int]:
        return [int(v) for v, w in zip(self.grid, self.log_weight) if np.isfinite(w)]


def cohort_n(nprior: NPrior, rows: pd.DataFrame) -> CohortN:
    """The grid and weights for one cohort's rows (all its endpoints)."""
    study, cohort = rows["study"].iloc[0], rows["cohort"].iloc[0]
    grid = nprior.grid
    known = np.zeros(1)           # the log-weight of a one-value grid
    if rows["n"].notna().all():
        # the grid value is never used: every arm's n comes from its row (n_matrix)
        values = sorted({int(v) for v in rows["n"]})
        return CohortN(study, cohort, np.array([float(values[0])]), known, True,
                       f"n = {'/'.join(map(str, values))} per arm, as reported", tuple(values))
    percents = rows.loc[(rows["kind"] == "rate") & rows["n"].isna(), "percent"].to_list()
    compatible = compatible_n(percents, n_range=range(nprior.low, nprior.high + 1)) if percents else []
    if nprior.mode == "fixed":
        note = f"ASSUMED n = {nprior.value} per arm"
        if percents and nprior.value not in compatible:
            note += f" (NOT whole animals for the reported {', '.join(f'{p:g}' for p in percents)}%)"
        return CohortN(study, cohort, np.array([float(nprior.value)]), known, False, note)
    if percents and compatible:
        weight = np.where(np.isin(grid, compatible), 0.0, -np.inf)
        note = (f"n unknown, marginalised over {{{', '.join(map(str, compatible))}}} "
                f"(the n in {nprior.low}..{nprior.high} for which {', '.join(f'{p:g}' for p in percents)}% "
                "are whole animals)")
    else:
        weight = np.zeros_like(grid)
        note = f"n unknown, marginalised over {nprior.low}..{nprior.high} (uniform)"
        if percents:
            note += "; no n in that range makes every percentage whole, so counts are rounded"
    weight = weight - np.log(np.isfinite(weight).sum())
    if not nprior.pad:
        grid, weight = grid[np.isfinite(weight)], weight[np.isfinite(weight)]
    return CohortN(study, cohort, grid, weight, False, note)


def n_matrix(rows: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """(G, arm) n per grid point: the reported n where given, else the grid value."""
    reported = rows["n"].to_numpy(float)
    out = np.repeat(grid[:, None], len(reported), axis=1)
    known = ~np.isnan(reported)
    out[:, known] = reported[known]
    return out
