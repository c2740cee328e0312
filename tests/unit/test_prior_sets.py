"""Unit tests for the built-in prior sets (default, sceptical, optimistic) and
bayes.prior_predictive (forward draws only, no MCMC).

Expected values are computed independently where possible: prior P(synergy)
of a Normal from scipy, interval widths compared between sets drawn with the
same seed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from bayes.data import load_builtin, read_study
from bayes.priors import REQUIRED_PARAMETERS, builtin_prior_sets, load_prior_set
from bayes.prior_predictive import (PriorCheck, compare_prior_sets, format_check, prior_draws,
                                    prior_predictive, prior_synergy)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SETS = ("default", "sceptical", "optimistic")
INTERACTION_PARAMETERS = ("interaction", "interaction_logit", "synergy_mean")
DRAWS = 1000


@pytest.fixture(scope="module")
def seed():
    return load_builtin("seed")


@pytest.fixture(scope="module")
def factorial(seed) -> PriorCheck:
    return compare_prior_sets(seed, SETS, model="factorial", draws=DRAWS, seed=3)


@pytest.fixture(scope="module")
def joint(seed) -> PriorCheck:
    return compare_prior_sets(seed, SETS, model="joint", draws=DRAWS, seed=3)


def rows(table: pd.DataFrame, prior_set: str, reference: str) -> pd.DataFrame:
    return table[(table["prior_set"] == prior_set) & (table["reference"] == reference)].set_index("endpoint")


# --------------------------------------------------------------------------- the files

def test_all_builtin_sets_load_with_every_parameter_justified():
    assert set(SETS) <= set(builtin_prior_sets())
    for name in SETS:
        prior_set = load_prior_set(name)
        assert prior_set.name == name and prior_set.description
        assert set(REQUIRED_PARAMETERS) <= set(prior_set.priors)
        for key in REQUIRED_PARAMETERS:
            assert len(prior_set.why[key].split()) >= 8, f"{name}.{key} lacks a justification"


def test_new_sets_differ_from_default_only_in_interaction_priors():
    default = load_prior_set("default")
    for name in ("sceptical", "optimistic"):
        other = load_prior_set(name)
        same = [k for k in REQUIRED_PARAMETERS if other[k] == default[k]]
        assert set(REQUIRED_PARAMETERS) - set(same) <= set(INTERACTION_PARAMETERS)
        assert other["interaction"] != default["interaction"]


def test_interaction_spreads_are_ordered_and_optimism_is_sign_aligned():
    sets = {name: load_prior_set(name) for name in SETS}
    sd = {name: s["interaction"].kwargs["sigma"] for name, s in sets.items()}
    sd_logit = {name: s["interaction_logit"].kwargs["sigma"] for name, s in sets.items()}
    assert sd["sceptical"] < sd["default"] <= sd["optimistic"]
    assert sd_logit["sceptical"] < sd_logit["default"] <= sd_logit["optimistic"]
    # sceptical: 95% of departures within about x0.6 .. x1.6 of additive
    low, high = np.exp(stats.norm(0, sd["sceptical"]).ppf([0.025, 0.975]))
    assert 0.55 < low < 0.65 and 1.55 < high < 1.7
    for name in ("default", "sceptical"):
        assert all(sets[name][k].kwargs["mu"] == 0.0 for k in INTERACTION_PARAMETERS)
    opt = sets["optimistic"]
    for key in INTERACTION_PARAMETERS:
        mu, sigma = opt[key].kwargs["mu"], opt[key].kwargs["sigma"]
        assert mu > 0   # sign-aligned: positive = synergy
        assert stats.norm(mu, sigma).sf(0) == pytest.approx(0.69, abs=0.005)


def test_prior_files_read_independently_match_the_loader():
    for name in ("sceptical", "optimistic"):
        raw = yaml.safe_load((resources.files("bayes") / "priors" / f"{name}.yaml").read_text())
        assert raw["schema_version"] == 1 and raw["name"] == name
        loaded = load_prior_set(name)
        for key, entry in raw["priors"].items():
            assert loaded[key].to_dict()["dist"] == entry["prior"]["dist"]
            assert loaded[key].kwargs == {k: float(v) for k, v in entry["prior"]["kwargs"].items()}


# --------------------------------------------------------------------------- prior P(synergy)

@pytest.mark.parametrize("check", ["factorial", "joint"])
def test_prior_p_synergy_for_bliss_follows_the_prior_set(check, request):
    table = request.getfixturevalue(check).synergy
    endpoints = ["tumor_volume", "survival", "nk_lysis", "ifn_gamma"]
    default, sceptical, optimistic = (rows(table, s, "bliss") for s in SETS)
    assert set(endpoints) <= set(default.index)
    kinds = default["scale"]
    for endpoint in endpoints:
        # Bliss on positive values is symmetric about 0 under a symmetric prior; on the
        # probability of the unfavourable outcome it is not quite (0.53 with 20000 draws)
        tolerance = 0.05 if kinds[endpoint].startswith("log ratio of arm") else 0.08
        assert default.loc[endpoint, "p_synergy"] == pytest.approx(0.5, abs=tolerance)
        assert optimistic.loc[endpoint, "p_synergy"] > 0.62
        width = {name: t.loc[endpoint, "ci_high"] - t.loc[endpoint, "ci_low"]
                 for name, t in zip(SETS, (default, sceptical, optimistic))}
        assert width["sceptical"] < 0.6 * width["default"]
    # the log-scale interaction itself has exactly the prior's P(synergy)
    for endpoint in ("tumor_volume", "ifn_gamma"):
        assert rows(table, "optimistic", "interaction").loc[endpoint, "p_synergy"] == pytest.approx(
            stats.norm(0.5, 1).sf(0), abs=0.04)


def test_sceptical_means_the_same_in_both_model_families(factorial, joint):
    """The joint model's interaction prior sd is close to the factorial one under every set."""
    for name in SETS:
        f = rows(factorial.synergy, name, "interaction")
        j = rows(joint.synergy, name, "interaction")
        for endpoint in ("tumor_volume", "ifn_gamma"):
            ratio = (j.loc[endpoint, "ci_high"] - j.loc[endpoint, "ci_low"]) / (
                f.loc[endpoint, "ci_high"] - f.loc[endpoint, "ci_low"])
            assert 0.9 < ratio < 1.35, (name, endpoint, ratio)


def test_joint_check_reports_the_pooled_synergy(joint):
    pooled = joint.synergy[joint.synergy["reference"] == "pooled"].set_index("prior_set")
    assert list(pooled.index) == list(SETS)
    assert pooled.loc["default", "p_synergy"] == pytest.approx(0.5, abs=0.05)
    assert pooled.loc["optimistic", "p_synergy"] == pytest.approx(stats.norm(0.5, 1).sf(0), abs=0.05)


# --------------------------------------------------------------------------- data scale

@pytest.mark.parametrize("check", ["factorial", "joint"])
def test_prior_predictive_contains_the_reported_control_values(check, request, seed):
    arms = request.getfixturevalue(check).arms
    controls = arms[arms["arm"] == arms.groupby(["prior_set", "endpoint"])["arm"].transform("first")]
    assert len(controls) == 3 * len(seed.cells())
    for r in controls.itertuples():
        assert r.predicted_q05 <= r.reported <= r.predicted_q95, r
        if r.kind != "rate":   # 0% survival is a count of animals, not a population mean
            assert r.prior_q05 <= r.reported <= r.prior_q95, r
    # data units: tumour volume in mm3 around the reported 1500, percentages in 0..100
    tv = controls[controls["endpoint"] == "tumor_volume"].iloc[0]
    assert tv["unit"] == "mm3" and 500 < tv["prior_median"] < 5000
    pct = arms[arms["kind"] != "positive"]
    assert pct[["prior_q05", "prior_q95", "predicted_q05", "predicted_q95"]].stack().between(0, 100).all()
    assert arms["reported_quantile"].between(0, 1).all()


def test_prior_predictive_is_reproducible_and_seed_dependent(seed):
    one = prior_predictive(seed, "default", draws=200, seed=11)
    two = prior_predictive(seed, load_prior_set("default"), draws=200, seed=11)
    other = prior_predictive(seed, "default", draws=200, seed=12)
    pd.testing.assert_frame_equal(one, two)
    assert not np.allclose(one["prior_median"], other["prior_median"])
    assert list(one.columns[:6]) == ["prior_set", "model", "study", "endpoint", "arm", "kind"]
    assert len(one) == len(seed.table)


@pytest.mark.parametrize("fixture", ["two_studies.csv", "two_agent_other.csv"])
@pytest.mark.parametrize("model", ["factorial", "joint"])
def test_works_on_other_tables(fixture, model):
    study = read_study(FIXTURES / fixture)
    arms = prior_predictive(study, "sceptical", model=model, draws=100, seed=1)
    assert len(arms) == len(study.table)
    assert set(arms["study"]) == set(study.table["study"])
    assert np.isfinite(arms[["prior_median", "predicted_median"]].to_numpy()).all()
    syn = prior_synergy(study, "optimistic", model=model, draws=100, seed=1)
    bliss = syn[syn["reference"] == "bliss"]
    assert len(bliss) == len(study.cells())
    assert bliss["p_synergy"].between(0, 1).all()


def test_prior_draws_strip_the_cell_prefix(seed):
    cells, level = prior_draws(seed, "default", model="joint", draws=50, seed=0)
    assert [c.cell.endpoint for c in cells] == [e for _, e in seed.cells()]
    ds = cells[0].draws
    assert {"arm_mean", "interaction", "sd_log"} <= set(ds.data_vars)
    assert ds["arm_mean"].dims == ("chain", "draw", "arm") and ds.sizes["draw"] == 50
    assert {"synergy_mean", "synergy_sd"} <= set(level.data_vars)


def test_format_check_and_bad_arguments(seed, factorial):
    text = format_check(factorial)
    assert "imatinib_il2_melanoma / tumor_volume (mm3)" in text and "optimistic" in text
    with pytest.raises(ValueError, match="factorial or joint"):
        prior_predictive(seed, model="additive")
    with pytest.raises(ValueError, match="draws"):
        prior_synergy(seed, draws=3)


def test_prior_parameters_are_data_so_one_graph_serves_every_prior_set():
    """Setting a built model's prior data to another set's values gives that set's log density."""
    import pymc as pm

    from bayes.analysis import as_nprior, model_specs
    from bayes.models.builder import build_model
    from bayes.priors import PRIOR_DATA_SUFFIX, prior_values

    study = load_builtin("seed")
    default = load_prior_set("default")
    for family in ("joint", "factorial", "link"):
        spec = model_specs(study, family, as_nprior(None))[0]
        model = build_model(spec, default)
        logp = model.compile_logp()        # reads the shared prior data at each call: compiled once
        point = {k: v + 0.3 for k, v in model.initial_point().items()}   # away from 0, where scales act
        base, defaults = logp(point), prior_values(model)
        for name in ("sceptical", "optimistic"):
            other = load_prior_set(name)
            assert default.shape_hash == other.shape_hash and default.hash != other.hash
            target = build_model(spec, other)
            values = prior_values(target)
            assert values and all(key.endswith(PRIOR_DATA_SUFFIX) for key in values)
            assert any(not np.array_equal(v, defaults[k]) for k, v in values.items())
            want = target.compile_logp()(point)
            assert base != pytest.approx(want), (family, name)
            with model:
                pm.set_data(values)
            assert logp(point) == pytest.approx(want, rel=1e-12), (family, name)
            with model:
                pm.set_data(defaults)
            assert logp(point) == base
