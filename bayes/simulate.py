"""Simulate animals and summarise them the way a paper would.

Used to check the models against known truths (recovery tests now,
simulation-based calibration later).  Two levels:

* one positive endpoint, arm by arm (:func:`simulate_summaries`,
  :func:`factorial_table`): draw individual log-normal values per arm and
  report each arm's sample mean and SD;
* a whole multi-endpoint study (:func:`endpoint_truth`,
  :func:`simulate_study`): every endpoint is given by its link-scale truth
  per arm, ``eta = baseline + sum(agent effects) + interaction``, on the same
  scales the models use:

  - ``positive`` (log link): each animal's value is log-normal with
    log-median ``eta`` and log-sd ``dispersion``; the arm reports the sample
    mean and SD;
  - ``percent`` (logit link): each sample's fraction is
    Beta(mu * phi, (1 - mu) * phi) with ``mu = invlogit(eta)`` and precision
    ``phi = dispersion``; the arm reports mean and SD in percent;
  - ``rate`` (logit link): k ~ Binomial(n, invlogit(eta)) animals have the
    event; the arm reports ``100 k / n`` percent.

  Endpoints of one cohort (tumour volume and survival measured on the same
  mice) share one n per arm.  Their values are drawn independently given
  the truths, as the models assume.  Rounding mimics a printed table and the
  n column can be left empty (``report_n=False``), as many papers do.

The output is a DataFrame in the CSV layout that
:func:`bayes.data.study_from_frame` accepts.  Every function that draws
takes an explicit ``numpy.random.Generator``; nothing uses global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

KIND_LINKS = {"positive": "log", "percent": "logit", "rate": "logit"}
CSV_COLUMNS = ("study", "endpoint", "agents", "mean", "sd", "se", "n", "percent", "day", "unit",
               "kind", "better", "cohort")
# Rounding of a printed table per kind (decimals): volumes as whole numbers,
# percentages with one decimal; rates are whole-animal fractions, kept to one
# decimal (e.g. 6.7% of 15) so that the implied n stays checkable.
PAPER_DIGITS = {"positive": 0, "percent": 1, "rate": 1}


def lognormal_arm_mean(log_median: np.ndarray, sd_log: np.ndarray) -> np.ndarray:
    """Population mean of log-normal values: exp(m + s^2 / 2)."""
    return np.exp(np.asarray(log_median) + np.asarray(sd_log) ** 2 / 2)


def simulate_summaries(log_median, sd_log, n, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and SD per arm from ``n`` log-normal animals per arm."""
    log_median, sd_log = np.broadcast_arrays(np.asarray(log_median, float), np.asarray(sd_log, float))
    n = np.broadcast_to(np.asarray(n, int), log_median.shape)
    means, sds = np.empty(log_median.shape), np.empty(log_median.shape)
    for j, (m, s, k) in enumerate(zip(log_median, sd_log, n)):
        values = rng.lognormal(m, s, size=int(k))
        means[j], sds[j] = values.mean(), values.std(ddof=1)
    return means, sds


def factorial_table(arms: list[str], means, sds, *, study: str = "sim", endpoint: str = "tumor_volume",
                    n=None, digits: int | None = None) -> pd.DataFrame:
    """A study table (one row per arm) as a paper would print it.

    ``arms`` use the CSV convention (``""`` for control, ``"A+B"`` for a
    combination); ``digits`` rounds means and SDs like a printed table.
    """
    means, sds = np.asarray(means, float), np.asarray(sds, float)
    if digits is not None:
        means, sds = np.round(means, digits), np.round(sds, digits)
    frame = pd.DataFrame({"study": study, "endpoint": endpoint, "agents": arms,
                          "mean": means, "sd": sds})
    if n is not None:
        frame["n"] = np.broadcast_to(np.asarray(n, int), means.shape)
    return frame


# --------------------------------------------------------------------------- whole studies

def invlogit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def sign_of(better: str) -> float:
    """+1 when lower is better, -1 when higher is better (the models' ``s``)."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
    return 1.0 if better == "lower" else -1.0


@dataclass(frozen=True)
class EndpointTruth:
    """The true link-scale value of every arm of one endpoint.

    ``arms`` are CSV arm labels (``""`` control, ``"A"``, ``"A+B"``) in
    canonical order; ``eta`` the link-scale truth per arm (log-median for
    positive endpoints, logit of the probability otherwise); ``dispersion``
    the per-animal log-sd (positive) or Beta precision phi (percent), unused
    for rates; ``interaction`` the true link-scale interaction per
    combination arm (as the models' ``interaction`` parameter).
    """

    endpoint: str
    kind: str
    better: str
    arms: tuple[str, ...]
    eta: tuple[float, ...]
    dispersion: float | None = None
    interaction: dict[str, float] = field(default_factory=dict)
    cohort: str = ""
    unit: str = ""
    day: float | None = None

    def __post_init__(self):
        if self.kind not in KIND_LINKS:
            raise ValueError(f"kind must be one of {', '.join(KIND_LINKS)}, not {self.kind!r}")
        sign_of(self.better)
        if len(self.arms) != len(self.eta):
            raise ValueError("one eta per arm")
        if self.kind != "rate" and not (self.dispersion and self.dispersion > 0):
            raise ValueError(f"a {self.kind} endpoint needs a positive dispersion")

    @property
    def link(self) -> str:
        return KIND_LINKS[self.kind]

    def aligned_interaction(self, combo: str) -> float:
        """The sign-aligned interaction ``-s * interaction`` (positive = synergy), link scale."""
        return -sign_of(self.better) * self.interaction[combo]

    def probability(self) -> np.ndarray:
        """Arm probabilities (percent and rate endpoints)."""
        return invlogit(self.eta)

    def arm_mean(self) -> np.ndarray:
        """Population arm means: log-normal mean (positive) or probability."""
        if self.kind == "positive":
            return lognormal_arm_mean(np.array(self.eta), self.dispersion)
        return self.probability()


def endpoint_truth(endpoint: str, kind: str, better: str, *, baseline: float,
                   effects: dict[str, float], interaction: float | dict[str, float] | None = None,
                   synergy: float | dict[str, float] | None = None, dispersion: float | None = None,
                   cohort: str = "", unit: str = "", day: float | None = None) -> EndpointTruth:
    """Truths of a full factorial from baseline, agent effects and interaction(s).

    Arms: control, each agent alone (in the order of ``effects``) and every
    combination of two or more agents.  Give the interaction either on the
    models' scale (``interaction``, link-scale gamma) or sign-aligned
    (``synergy`` = ``-s * gamma``, positive = synergy); a number applies to
    every combination, a dict maps ``"A+B"`` labels to values; missing
    combinations get 0.  All values are on the endpoint's link scale.
    """
    if interaction is not None and synergy is not None:
        raise ValueError("give interaction or synergy, not both")
    agents = list(effects)
    combos = ["+".join(c) for k in range(2, len(agents) + 1) for c in combinations(agents, k)]
    s = sign_of(better)
    given = interaction if interaction is not None else synergy
    given = 0.0 if given is None else given
    values = given if isinstance(given, dict) else {c: float(given) for c in combos}
    unknown = set(values) - set(combos)
    if unknown:
        raise ValueError(f"no combination arm {sorted(unknown)}; arms are {combos}")
    gamma = {c: float(values.get(c, 0.0)) * (1.0 if interaction is not None else -s) + 0.0 for c in combos}
    arms = ["", *agents, *combos]
    eta = [baseline + sum(effects[a] for a in arm.split("+") if a) + gamma.get(arm, 0.0) for arm in arms]
    return EndpointTruth(endpoint, kind, better, tuple(arms), tuple(float(e) for e in eta),
                         dispersion, gamma, cohort or endpoint, unit, day)


def _round(value: float, digits: int | None, *, positive: bool) -> float:
    """Round like a printed table; a positive quantity never rounds down to 0."""
    if digits is None:
        return float(value)
    out = round(float(value), digits)
    if positive and out <= 0:
        out = 10.0 ** -digits
    return out


def simulate_endpoint(truth: EndpointTruth, n, rng: np.random.Generator, *,
                      digits: int | None = None) -> pd.DataFrame:
    """One endpoint's reported rows (agents, mean, sd, percent) from ``n`` per arm.

    ``n`` is one number or one per arm.  ``digits`` rounds means, SDs and
    percentages to that many decimals (``None``: no rounding).
    """
    n = np.broadcast_to(np.asarray(n, int), (len(truth.arms),))
    if (n < 2).any():
        raise ValueError("n must be >= 2 per arm (an SD needs two values)")
    rows = []
    for arm, eta, k in zip(truth.arms, truth.eta, n):
        mean = sd = percent = math.nan
        if truth.kind == "positive":
            values = rng.lognormal(eta, truth.dispersion, size=int(k))
            mean, sd = values.mean(), values.std(ddof=1)
        elif truth.kind == "percent":
            mu, phi = float(invlogit(eta)), truth.dispersion
            values = 100.0 * rng.beta(mu * phi, (1.0 - mu) * phi, size=int(k))
            mean, sd = values.mean(), values.std(ddof=1)
        else:
            percent = 100.0 * rng.binomial(int(k), float(invlogit(eta))) / int(k)
        if truth.kind == "rate":
            percent = _round(percent, digits, positive=False)
        else:
            mean = _round(mean, digits, positive=True)
            sd = _round(sd, digits, positive=True)
        rows.append({"agents": arm, "mean": mean, "sd": sd, "percent": percent})
    return pd.DataFrame(rows)


def simulate_study(truths: list[EndpointTruth], n: int | dict[str, int], rng: np.random.Generator, *,
                   study: str = "sim", report_n: bool | dict[str, bool] = True,
                   digits: dict[str, int | None] | int | None = None) -> pd.DataFrame:
    """A whole study table (CSV layout) simulated from per-endpoint truths.

    ``n`` is animals (or samples) per arm, one number for every cohort or a
    dict cohort -> n; endpoints of one cohort share it.  ``report_n`` says
    whether the table prints n (``False``: the n column is empty), for all
    endpoints or per endpoint name (a dict; missing endpoints report it).
    ``digits`` rounds like a paper: ``None`` (exact), one number for every
    kind, or a dict kind -> decimals (see :data:`PAPER_DIGITS`).
    """
    frames = []
    for truth in truths:
        cohort_n = n[truth.cohort] if isinstance(n, dict) else n
        kind_digits = digits.get(truth.kind) if isinstance(digits, dict) else digits
        frame = simulate_endpoint(truth, cohort_n, rng, digits=kind_digits)
        shown = report_n.get(truth.endpoint, True) if isinstance(report_n, dict) else report_n
        frame["n"] = float(cohort_n) if shown else math.nan
        frame["se"] = math.nan
        frame["day"] = math.nan if truth.day is None else float(truth.day)
        frame = frame.assign(study=study, endpoint=truth.endpoint, unit=truth.unit, kind=truth.kind,
                             better=truth.better, cohort=truth.cohort)
        frames.append(frame[list(CSV_COLUMNS)])
    return pd.concat(frames, ignore_index=True)


def stack_studies(*tables: pd.DataFrame) -> pd.DataFrame:
    """Several simulated study tables as one multi-study table."""
    return pd.concat(tables, ignore_index=True)[list(CSV_COLUMNS)]
