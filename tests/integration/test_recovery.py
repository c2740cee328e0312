"""Recovery: simulate animals with a known interaction (and with none),
summarise them as a paper would, fit, and check the answer."""

from __future__ import annotations

import numpy as np
import pytest

import bayes
from bayes.simulate import factorial_table, lognormal_arm_mean, simulate_summaries

pytestmark = pytest.mark.integration

ARMS = ["", "A", "B", "A+B"]
X = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)


def _truth(interaction: float, sd_log: float = 0.25):
    log_median = np.log(1000.0) + X @ np.array([-0.2, -0.4]) + np.array([0, 0, 0, interaction])
    sd = np.full(4, sd_log)
    arm_mean = lognormal_arm_mean(log_median, sd)
    bliss = np.log(arm_mean[1]) + np.log(arm_mean[2]) - np.log(arm_mean[0]) - np.log(arm_mean[3])
    return log_median, sd, bliss


def _fit_replicates(interaction, reps, cache, quick, seed):
    rng = np.random.default_rng(seed)
    log_median, sd, bliss_true = _truth(interaction)
    rows = []
    for r in range(reps):
        means, sds = simulate_summaries(log_median, sd, 10, rng)
        study = bayes.study_from_frame(factorial_table(ARMS, means, sds, n=10, digits=0),
                                       name=f"sim{r}")
        result = bayes.fit(study, model="factorial", settings=quick, seed=seed + r, cache=cache)
        bliss = result.synergy.query("reference == 'bliss'").iloc[0]
        rows.append((bliss, bliss_true, result.passed))
    return rows


def test_known_synergy_is_recovered(cache, quick):
    rows = _fit_replicates(-0.6, 8, cache, quick, seed=100)
    covered = sum(b["ci_low"] <= truth <= b["ci_high"] for b, truth, _ in rows)
    called = sum(b["p_synergy"] > 0.975 for b, _, _ in rows)
    assert all(ok for _, _, ok in rows)
    assert covered >= 7, [(b["ci_low"], b["ci_high"], truth) for b, truth, _ in rows]
    assert called >= 7, [b["p_synergy"] for b, _, _ in rows]
    # the posterior mean tracks the truth (0.6 on the median scale; means differ slightly)
    assert abs(np.mean([b["mean"] for b, _, _ in rows]) - rows[0][1]) < 0.1


def test_no_interaction_is_not_called_synergistic(cache, quick):
    rows = _fit_replicates(0.0, 8, cache, quick, seed=200)
    covered = sum(b["ci_low"] <= truth <= b["ci_high"] for b, truth, _ in rows)
    called = sum(b["p_synergy"] > 0.975 for b, _, _ in rows)
    assert covered >= 7
    assert called == 0, [b["p_synergy"] for b, _, _ in rows]
    assert abs(np.mean([b["mean"] for b, _, _ in rows])) < 0.1
