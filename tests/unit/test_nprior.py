"""Unit tests for bayes.nprior: how unreported n becomes a grid with weights.

Hand-worked cases: which n make a cohort's percentages whole animals, what a
fixed n says, reported n, and which cells of a model share one n.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes
from bayes.analysis import model_specs
from bayes.models.cells import cohort_rows
from bayes.nprior import CohortN, NPrior, cohort_n, n_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STUDY = "imatinib_il2_melanoma"
NAN = np.nan


@pytest.fixture(scope="module")
def seed():
    return bayes.load_builtin()


def rows(kind, percent=None, n=None, cohort="c", study="s"):
    k = len(kind)
    return pd.DataFrame({"study": study, "cohort": cohort, "kind": kind,
                         "percent": percent if percent is not None else [NAN] * k,
                         "n": n if n is not None else [NAN] * k})


def probs(group: CohortN) -> np.ndarray:
    return np.exp(group.log_weight)


# --------------------------------------------------------------------------- NPrior

def test_nprior_defaults_and_grid():
    default = NPrior()
    assert (default.mode, default.value, default.low, default.high) == ("marginal", None, 3, 20)
    np.testing.assert_array_equal(default.grid, np.arange(3, 21, dtype=float))
    assert "marginalised over n = 3..20" in default.describe()
    assert default.to_dict() == {"mode": "marginal", "value": None, "low": 3, "high": 20, "pad": False}


def test_nprior_fixed_widens_the_range_to_include_the_value():
    assert NPrior.fixed(10).to_dict() == {"mode": "fixed", "value": 10, "low": 3, "high": 20, "pad": False}
    assert NPrior.fixed(25).high == 25 and NPrior.fixed(25).grid[-1] == 25
    assert NPrior.fixed(2).low == 2
    assert NPrior.fixed(10).describe() == "ASSUMED n = 10 per arm where not reported"


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "guess"}, "unknown n treatment 'guess'; valid: marginal, fixed"),
    ({"low": 1}, r"n range 1\.\.20 is not valid"),
    ({"low": 10, "high": 5}, r"n range 10\.\.5 is not valid"),
    ({"mode": "fixed"}, "a fixed n needs a whole number >= 2"),
    ({"mode": "fixed", "value": 1}, "a fixed n needs a whole number >= 2"),
])
def test_nprior_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NPrior(**kwargs)


def test_nprior_fixed_below_two_is_refused():
    with pytest.raises(ValueError):
        NPrior.fixed(1)


# --------------------------------------------------------------------------- cohort_n

def test_seed_in_vivo_cohort_marginal_allows_multiples_of_five(seed):
    group = cohort_n(NPrior(), cohort_rows(seed.table, STUDY, "in_vivo"))
    assert (group.study, group.cohort, group.reported) == (STUDY, "in_vivo", False)
    # 0, 0, 20, 80 % of whole animals: 20% = 1/5 needs n in 5, 10, 15, 20
    assert group.allowed == [5, 10, 15, 20]
    # the grid holds only the allowed values (the likelihood is evaluated at each grid value)
    np.testing.assert_array_equal(group.grid, [5, 10, 15, 20])
    np.testing.assert_allclose(probs(group), 0.25, rtol=1e-12)
    # padded: the whole range, the excluded values at weight 0 (one compiled model for any table)
    padded = cohort_n(NPrior(pad=True), cohort_rows(seed.table, STUDY, "in_vivo"))
    np.testing.assert_array_equal(padded.grid, np.arange(3, 21))
    p = probs(padded)
    assert p.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(p[np.isin(padded.grid, [5, 10, 15, 20])], 0.25, rtol=1e-12)
    assert np.all(p[~np.isin(padded.grid, [5, 10, 15, 20])] == 0.0)
    assert padded.note == group.note
    assert group.note == ("n unknown, marginalised over {5, 10, 15, 20} (the n in 3..20 for which "
                          "0, 0, 20, 80% are whole animals)")


def test_narrower_range_narrows_the_allowed_set(seed):
    group = cohort_n(NPrior(low=3, high=12), cohort_rows(seed.table, STUDY, "in_vivo"))
    assert group.allowed == [5, 10]
    np.testing.assert_array_equal(group.grid, [5, 10])
    assert probs(group).sum() == pytest.approx(1.0)


def test_cohort_without_rates_is_uniform_over_the_range(seed):
    group = cohort_n(NPrior(), cohort_rows(seed.table, STUDY, "splenocytes"))
    assert group.allowed == list(range(3, 21))
    np.testing.assert_allclose(probs(group), 1 / 18, rtol=1e-12)
    assert group.note == "n unknown, marginalised over 3..20 (uniform)"
    assert group.reported is False


def test_fixed_n_compatible_with_the_rates(seed):
    group = cohort_n(NPrior.fixed(10), cohort_rows(seed.table, STUDY, "in_vivo"))
    assert group.allowed == [10]
    # a known n is a one-value grid: the likelihood is evaluated once per arm, not 18 times
    np.testing.assert_array_equal(group.grid, [10.0])
    np.testing.assert_array_equal(group.log_weight, [0.0])
    assert probs(group).sum() == pytest.approx(1.0)
    assert group.note == "ASSUMED n = 10 per arm"
    assert "NOT" not in group.note


def test_fixed_n_incompatible_with_the_rates_says_so(seed):
    group = cohort_n(NPrior.fixed(8), cohort_rows(seed.table, STUDY, "in_vivo"))
    assert group.allowed == [8]               # the assumption is kept, and flagged
    assert group.note == "ASSUMED n = 8 per arm (NOT whole animals for the reported 0, 0, 20, 80%)"


def test_fixed_n_on_a_cohort_without_rates(seed):
    group = cohort_n(NPrior.fixed(6), cohort_rows(seed.table, STUDY, "splenocytes"))
    assert group.allowed == [6] and group.note == "ASSUMED n = 6 per arm"


def test_fully_reported_cohort_ignores_the_n_treatment():
    study = bayes.read_study(FIXTURES / "two_agent_other.csv")
    mice = cohort_rows(study.table, "other_study", "mice")
    assert len(mice) == 8                        # tumour weight and survival rows
    for nprior in (NPrior(), NPrior.fixed(5)):
        group = cohort_n(nprior, mice)
        assert group.reported is True
        assert group.note == "n = 8 per arm, as reported"
        # a one-value grid; n_matrix puts the reported n in it
        assert len(group.grid) == 1 and group.log_weight.tolist() == [0.0]
        assert probs(group).sum() == pytest.approx(1.0)
        np.testing.assert_array_equal(n_matrix(mice, group.grid), np.full((len(group.grid), 8), 8.0))


def test_reported_note_lists_distinct_values():
    group = cohort_n(NPrior(), rows(["positive"] * 3, n=[6.0, 8.0, 6.0]))
    assert group.reported and group.note == "n = 6/8 per arm, as reported"


def test_percentages_no_n_in_range_can_make_whole_fall_back_to_uniform():
    # 33.3% needs a multiple of 3, 12.5% a multiple of 8: the first common n is 24 > 20
    group = cohort_n(NPrior(), rows(["rate", "rate", "rate", "rate"], percent=[0.0, 33.3, 12.5, 50.0]))
    assert group.allowed == list(range(3, 21))
    np.testing.assert_allclose(probs(group), 1 / 18, rtol=1e-12)
    assert group.note == ("n unknown, marginalised over 3..20 (uniform); no n in that range makes "
                          "every percentage whole, so counts are rounded")
    # widening the range to 24 finds it
    assert cohort_n(NPrior(high=24), rows(["rate"] * 2, percent=[33.3, 12.5])).allowed == [24]


def test_rates_with_reported_n_do_not_restrict_the_other_arms():
    # the 33.3% arm reports n = 3; only the unreported 25% arm constrains the grid
    r = rows(["rate", "rate"], percent=[33.3, 25.0], n=[3.0, NAN])
    group = cohort_n(NPrior(), r)
    assert group.reported is False
    assert group.allowed == [4, 8, 12, 16, 20]


# --------------------------------------------------------------------------- n_matrix

def test_n_matrix_keeps_reported_n_and_fills_the_rest_from_the_grid():
    r = rows(["positive"] * 4, n=[NAN, 6.0, NAN, 9.0])
    got = n_matrix(r, np.array([5.0, 10.0, 15.0]))
    np.testing.assert_array_equal(got, [[5, 6, 5, 9], [10, 6, 10, 9], [15, 6, 15, 9]])
    assert got.shape == (3, 4) and got.dtype == float


# --------------------------------------------------------------------------- groups in model specs

def test_joint_spec_shares_n_within_a_cohort(seed):
    (spec,) = model_specs(seed, "joint", NPrior())
    by = {c.endpoint: spec.group_of(c) for c in spec.cells}
    assert by["tumor_volume"] == by["survival"]
    assert by["nk_lysis"] == by["ifn_gamma"]
    assert by["tumor_volume"] != by["nk_lysis"]
    assert len(spec.groups) == 2
    assert spec.groups[by["tumor_volume"]].allowed == [5, 10, 15, 20]
    assert spec.groups[by["nk_lysis"]].allowed == list(range(3, 21))


def test_factorial_specs_use_the_cohort_rates_for_every_cell(seed):
    specs = {s.cells[0].endpoint: s for s in model_specs(seed, "factorial", NPrior())}
    assert set(specs) == {"tumor_volume", "survival", "nk_lysis", "ifn_gamma"}
    for endpoint, spec in specs.items():
        assert len(spec.cells) == 1 and len(spec.groups) == 1
        assert spec.group_of(spec.cells[0]) == 0
    # tumour volume has no percentages itself; its cohort's survival rows restrict n
    assert specs["tumor_volume"].groups[0].allowed == [5, 10, 15, 20]
    assert specs["survival"].groups[0].allowed == [5, 10, 15, 20]
    assert specs["ifn_gamma"].groups[0].allowed == list(range(3, 21))


def test_spec_data_holds_the_weights_and_n_matrices(seed):
    (spec,) = model_specs(seed, "joint", NPrior.fixed(10))
    data = spec.data()
    steps = {f"c{i}_{name}" for i in (0, 2, 3) for name in ("mean_step2", "sd_step2")}   # rounding
    assert set(data) == {"c0_obs_mean", "c0_obs_var", "c0_n", "c0_log_jacobian", "c1_k", "c1_n",
                         "c2_obs_mean", "c2_obs_var", "c2_n", "c2_log_jacobian", "c3_obs_mean", "c3_obs_var",
                         "c3_n", "c3_log_jacobian", "n_log_weight_0", "n_log_weight_1"} | steps
    for name in ("c0_log_jacobian", "c2_log_jacobian", "c3_log_jacobian"):   # SDs reported: no Jacobian
        np.testing.assert_array_equal(data[name], 0.0)
    grid = spec.groups[0].grid
    for name in ("c0_n", "c1_n", "c2_n", "c3_n"):
        np.testing.assert_array_equal(data[name], np.repeat(grid[:, None], 4, axis=1))
    assert np.isfinite(data["n_log_weight_0"]).sum() == 1
    assert data["n_log_weight_0"][list(grid).index(10.0)] == 0.0


# --------------------------------------------------------------------------- the n_posterior table

def test_n_posterior_table_of_a_reported_cohort_shows_the_reported_n():
    # n_posterior.csv is read on its own; for a cohort that reports n = 8 it must not claim n = 3.
    # (Known bug when written: analysis._n_table lists the grid with the one-hot weight that
    # cohort_n puts on grid[0] for reported cohorts, so the row says n = 3, prior 1, posterior 1.)
    import xarray as xr

    from bayes.analysis import _n_table

    study = bayes.read_study(FIXTURES / "two_agent_other.csv")
    group = cohort_n(NPrior(), cohort_rows(study.table, "other_study", "mice"))
    weight = np.exp(group.log_weight)[None, None, :] * np.ones((2, 5, 1))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"n_weight": (("chain", "draw", "n"), weight)})})
    table = _n_table(tree, "other_study", "mice", "tumor_weight", group)
    assert table["reported"].all()
    claimed = set(table.loc[(table["prior"] > 0) | (table["posterior"] > 0), "n"])
    assert claimed <= {8}, f"n_posterior claims n in {sorted(claimed)} for a cohort reporting n = 8"


def test_n_posterior_table_of_a_marginal_cohort(seed):
    import xarray as xr

    from bayes.analysis import _n_table

    group = cohort_n(NPrior(pad=True), cohort_rows(seed.table, STUDY, "in_vivo"))
    post = np.zeros((2, 3, 18))
    post[..., [2, 7, 12, 17]] = [0.1, 0.5, 0.3, 0.1]          # n = 5, 10, 15, 20
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"n_weight": (("chain", "draw", "n"), post)})})
    table = _n_table(tree, STUDY, "in_vivo", "tumor_volume", group)
    assert list(table["n"]) == list(range(3, 21))
    by = table.set_index("n")
    np.testing.assert_allclose(by.loc[[5, 10, 15, 20], "prior"], 0.25)
    np.testing.assert_allclose(by.loc[[5, 10, 15, 20], "posterior"], [0.1, 0.5, 0.3, 0.1])
    assert by["prior"].sum() == pytest.approx(1.0) and not table["reported"].any()
