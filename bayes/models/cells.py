"""Cells: one study x endpoint, turned into the numbers a model needs.

A :class:`Cell` wraps the canonical rows of one study x endpoint with its
design and the transformation of its reported numbers to the model's scale:
positive values are divided by the reported control mean (``scale``), so
priors are unit-free; percentages become fractions; rates become counts at
each candidate n.  Nothing here builds a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes.design import Design, make_design
from bayes.endpoints import KINDS


@dataclass(frozen=True, eq=False)
class Cell:
    study: str
    endpoint: str
    kind: str
    better: str
    cohort: str
    design: Design
    rows: pd.DataFrame

    @property
    def key(self) -> str:
        return f"{self.study}/{self.endpoint}"

    @property
    def link(self) -> str:
        return KINDS[self.kind].link

    @property
    def sign(self) -> float:
        """+1 when lower is better, -1 when higher is better."""
        return 1.0 if self.better == "lower" else -1.0

    @property
    def scale(self) -> float:
        """Divisor that makes the data unit-free (control mean for positive values)."""
        if self.kind == "positive":
            return float(self.rows["mean"].iloc[0])
        return 100.0 if self.kind == "percent" else 1.0

    @property
    def display(self) -> float:
        """Multiplier from ``arm_mean`` (model scale) to the reported unit (mm3, %, ...)."""
        return self.scale if self.kind == "positive" else 100.0

    @property
    def structure(self) -> tuple:
        """Cells with equal structure can share one compiled single-cell model."""
        return (self.kind, self.design.structure)

    def inputs(self, n: np.ndarray) -> dict[str, np.ndarray]:
        """Model data for an (G, arm) matrix of n: obs_mean, obs_var or k, and n."""
        rows = self.rows
        if self.kind == "rate":
            k = np.round(rows["percent"].to_numpy(float)[None, :] * n / 100.0)
            return {"k": k, "n": n}
        h = self.print_step
        mean, sd, se = (rows[c].to_numpy(float) for c in ("mean", "sd", "se"))
        mean_step, sd_step, se_step = (rounding_width(v, h) for v in (mean, sd, se))
        from_se = np.isnan(sd)
        # An arm that reports an SE is modelled through s^2 = n SE^2 (its step, sqrt(n) times
        # the SE's); the data are the SE, so its density carries the Jacobian
        # d(s^2)/d(SE^2) = n, which depends on n and must be kept for the mixture over n
        # to compare like with like.
        sd = np.where(from_se, se[None, :] * np.sqrt(n), sd[None, :] * np.ones_like(n))
        sd_step = np.where(from_se, se_step[None, :] * np.sqrt(n), sd_step[None, :] * np.ones_like(n))
        return {"obs_mean": mean / self.scale,
                "obs_var": (sd / self.scale) ** 2, "n": n,
                "log_jacobian": np.where(from_se, np.log(n), 0.0),
                "mean_step2": (mean_step / self.scale) ** 2,
                "sd_step2": (sd_step / self.scale) ** 2}

    @property
    def print_step(self) -> float:
        """The step the cell's means, SDs and SEs are printed to (0 for a rate; see :func:`print_step`)."""
        if self.kind == "rate":
            return 0.0
        return print_step(self.rows[["mean", "sd", "se"]].to_numpy(float).ravel())

    def reported(self) -> pd.DataFrame:
        """Reported arm values on the scale of ``arm_mean`` times ``scale`` (data units)."""
        rows = self.rows
        value = rows["percent"] if self.kind == "rate" else rows["mean"]
        sd = rows["sd"] if self.kind != "rate" else np.nan
        return pd.DataFrame({"arm": list(self.design.arms), "reported": value.to_numpy(float),
                             "reported_sd": np.asarray(sd, float) * np.ones(len(rows)),
                             "reported_se": rows["se"].to_numpy(float)})


def print_step(values, lowest: int = -6, highest: int = 6) -> float:
    """The step a table printed ``values`` to: the largest power of ten, from
    10^lowest to 10^highest, of which every non-zero finite value is a whole
    multiple; 0.0 when there is none (printed to more digits: taken as exact).

    Mean, SD and SE of one endpoint are read together (a paper prints them
    alike), which makes a spuriously coarse step from a few round numbers
    less likely: the seed's tumour volumes (1500 +/- 250, 1350 +/- 200, ...)
    give 10, its % lysis (15 +/- 3, ...) 1.  The step is a lower bound on
    how coarsely a value was printed: "1500" may have been rounded to 100.
    """
    x = np.asarray(values, float)
    x = np.abs(x[np.isfinite(x) & (x != 0)])
    if not x.size:
        return 0.0
    for k in range(highest, lowest - 1, -1):
        q = x / 10.0**k
        if np.all(np.abs(q - np.round(q)) <= np.maximum(1e-6, 1e-12 * q)):   # float noise only
            return 10.0**k
    return 0.0


def rounding_width(values: np.ndarray, step: float) -> np.ndarray:
    """Width of the uniform rounding error of each value printed to ``step``.

    A value printed as v stands for v +/- step/2.  One printed as a single step
    (an SD of 1 when whole units are printed) may also be a smaller positive
    value that a table showed as one step rather than as 0: it gets the width
    of two steps (v +/- step), which covers (0, 1.5 step) without moving the
    centre of an SD that really is about one step.  ``step`` = 0: exact.
    """
    values = np.asarray(values, float)
    width = np.full(values.shape, float(step))
    if step > 0:
        width = np.where(np.isclose(values, step, rtol=1e-9, atol=0.0), 2.0 * step, width)
    return width


def make_cell(rows: pd.DataFrame) -> Cell:
    """A Cell from the canonical rows of one study x endpoint (``Study.cell``)."""
    first = rows.iloc[0]
    design = make_design([tuple(a) for a in rows["agents"]])
    return Cell(first["study"], first["endpoint"], first["kind"], first["better"], first["cohort"],
                design, rows.reset_index(drop=True))


def cohort_rows(table: pd.DataFrame, study: str, cohort: str) -> pd.DataFrame:
    return table[(table["study"] == study) & (table["cohort"] == cohort)]
