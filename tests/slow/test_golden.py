"""Slow tier (opt in with --run-slow): the built-in study at full settings
against golden values, with tolerances from Monte Carlo standard errors.

The golden values are the delta-method point estimates from the reported
means (they do not depend on the sampler), so the test checks that the full
posterior is centred where the data put it: |posterior mean - golden| must
be within 4 Monte Carlo standard errors plus the posterior's own shrinkage
allowance (a quarter of its sd: the priors pull a little).
"""

from __future__ import annotations

import numpy as np
import pytest

import bayes

pytestmark = pytest.mark.slow

STUDY = "imatinib_il2_melanoma"


def delta_bliss(c, a, b, ab, sign=1.0):
    return sign * (np.log(a) + np.log(b) - np.log(c) - np.log(ab))


@pytest.mark.parametrize("endpoint, means, sign", [
    ("tumor_volume", (1500, 1350, 1100, 450), 1.0),
    ("ifn_gamma", (50, 150, 500, 1200), -1.0),
])
def test_factorial_bliss_at_n10_matches_the_means(endpoint, means, sign):
    result = bayes.fit(bayes.load_builtin(), model="factorial", n=10)
    assert result.passed
    row = result.synergy.query("endpoint == @endpoint and reference == 'bliss'").iloc[0]
    ess = float(result.diagnostics.query("endpoint == @endpoint")["ess_bulk_min"].iloc[0])
    mcse = row["sd"] / np.sqrt(ess)
    golden = delta_bliss(*means, sign=sign)
    assert abs(row["mean"] - golden) < 4 * mcse + 0.25 * row["sd"], (row["mean"], golden)


def test_joint_model_on_the_seed_passes_its_gate_for_three_seeds():
    study = bayes.load_builtin()
    for seed in (1, 2, 3):
        result = bayes.fit(study, seed=seed)
        assert result.passed, result.diagnostics.to_dict("records")
        pooled = result.synergy.query("reference == 'pooled'").iloc[0]
        assert 0.2 < pooled["mean"] < 0.9
