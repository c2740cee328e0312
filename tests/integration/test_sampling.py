"""Sampling: seeds, compiled-model reuse, the PyMC fallback, the Python API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import bayes
from bayes.sampling import ModelCache, cell_seed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seed_study():
    return bayes.load_builtin()


def test_same_seed_same_numbers_other_seed_other_numbers(seed_study, cache, quick):
    a = bayes.fit(seed_study, settings=quick, cache=cache)
    b = bayes.fit(seed_study, settings=quick, cache=cache)
    c = bayes.fit(seed_study, settings=quick, cache=cache, seed=quick.seed + 1)
    cols = ["mean", "sd", "ci_low", "ci_high", "p_synergy"]
    assert np.array_equal(a.synergy[cols].to_numpy(), b.synergy[cols].to_numpy())
    assert not np.allclose(a.synergy["mean"].to_numpy(), c.synergy["mean"].to_numpy())


def test_one_compilation_serves_every_cell_of_the_same_shape(seed_study, quick):
    fresh = ModelCache()
    result = bayes.fit(seed_study, settings=quick, cache=fresh)
    assert len(result.diagnostics) == 2  # tumour volume and IFN-gamma
    assert fresh.compilations == 1
    bayes.fit(seed_study, settings=quick, cache=fresh, model="additive")
    assert fresh.compilations == 2
    # coordinates are the cell's own, not the first compiled cell's
    ifn = result.cell("imatinib_il2_melanoma", "ifn_gamma")["posterior"]
    assert list(ifn["agent"].values) == ["imatinib", "IL-2"]
    assert float(ifn["arm_mean"].sel(arm="imatinib+IL-2").mean()) * 50 == pytest.approx(1200, rel=0.1)


def test_cell_seeds_depend_on_key_not_order():
    assert cell_seed(1, "s/tumor") == cell_seed(1, "s/tumor")
    assert cell_seed(1, "s/tumor") != cell_seed(1, "s/ifn")
    assert cell_seed(1, "s/tumor") != cell_seed(2, "s/tumor")


def test_additive_model_has_no_interaction_and_misfits_the_seed(seed_study, cache, quick):
    additive = bayes.fit(seed_study, settings=quick, cache=cache, model="additive")
    factorial = bayes.fit(seed_study, settings=quick, cache=cache)
    assert "interaction" not in additive.cell("imatinib_il2_melanoma", "tumor_volume")["posterior"]
    refs = set(additive.synergy["reference"])
    assert "interaction" not in refs and {"bliss", "hsa", "ra", "tgi"} <= refs

    def worst_misfit(result):
        arms = result.arms.query("endpoint == 'tumor_volume'")
        se = arms["reported_sd"] / np.sqrt(arms["n_used"])
        return float(((arms["posterior_mean"] - arms["reported_mean"]).abs() / se).max())

    # no additive model can put four arm means where the seed reports them
    assert worst_misfit(additive) > 2.5
    assert worst_misfit(factorial) < 1.0


def test_pymc_fallback_agrees_with_nutpie(seed_study, cache, quick):
    pymc_settings = dataclasses.replace(quick, sampler="pymc", cores=1, chains=2, draws=500, tune=500)
    ours = bayes.fit(seed_study, settings=quick, cache=cache).synergy.set_index(["endpoint", "reference", "arm"])
    theirs = bayes.fit(seed_study, settings=pymc_settings).synergy.set_index(["endpoint", "reference", "arm"])
    diff = (ours["mean"] - theirs["mean"]).abs()
    # both estimate the same posterior; allow 4 Monte Carlo standard errors of the smaller run
    mcse = ours["sd"] / np.sqrt(400)
    assert (diff < 4 * mcse * np.sqrt(1 + 400 / 500) + 1e-9).all(), diff[diff >= 4 * mcse]


def test_n_assumption_changes_the_uncertainty(seed_study, cache, quick):
    small = bayes.fit(seed_study, settings=quick, cache=cache, n=4).synergy
    large = bayes.fit(seed_study, settings=quick, cache=cache, n=20).synergy
    pick = lambda t: t.query("endpoint == 'tumor_volume' and reference == 'bliss'").iloc[0]  # noqa: E731
    assert pick(small)["sd"] > 1.5 * pick(large)["sd"]
    assert "4 (assumed)" in pick(small)["n_per_arm"]
