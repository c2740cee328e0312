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
        sd = rows["sd"].to_numpy(float)[None, :] * np.ones_like(n)
        se = rows["se"].to_numpy(float)[None, :] * np.sqrt(n)
        from_se = np.isnan(sd)
        sd = np.where(from_se, se, sd)
        # An arm that reports an SE is modelled through s^2 = n SE^2; the data are the
        # SE, so its density carries the Jacobian d(s^2)/d(SE^2) = n, which depends on
        # n and must be kept for the mixture over n to compare like with like.
        return {"obs_mean": rows["mean"].to_numpy(float) / self.scale,
                "obs_var": (sd / self.scale) ** 2, "n": n,
                "log_jacobian": np.where(from_se, np.log(n), 0.0)}

    def reported(self) -> pd.DataFrame:
        """Reported arm values on the scale of ``arm_mean`` times ``scale`` (data units)."""
        rows = self.rows
        value = rows["percent"] if self.kind == "rate" else rows["mean"]
        sd = rows["sd"] if self.kind != "rate" else np.nan
        return pd.DataFrame({"arm": list(self.design.arms), "reported": value.to_numpy(float),
                             "reported_sd": np.asarray(sd, float) * np.ones(len(rows)),
                             "reported_se": rows["se"].to_numpy(float)})


def make_cell(rows: pd.DataFrame) -> Cell:
    """A Cell from the canonical rows of one study x endpoint (``Study.cell``)."""
    first = rows.iloc[0]
    design = make_design([tuple(a) for a in rows["agents"]])
    return Cell(first["study"], first["endpoint"], first["kind"], first["better"], first["cohort"],
                design, rows.reset_index(drop=True))


def cohort_rows(table: pd.DataFrame, study: str, cohort: str) -> pd.DataFrame:
    return table[(table["study"] == study) & (table["cohort"] == cohort)]
