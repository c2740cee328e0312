"""Simulate animals and summarise them the way a paper would.

Used to check the models against known truths (recovery tests now,
simulation-based calibration later): draw individual log-normal values per
arm, then report each arm's sample mean and SD (optionally rounded, as
papers do) in the study-table format that :func:`bayes.data.read_study`
accepts.  Every function takes an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
