"""Unit tests for bayes.models.cells: a study x endpoint turned into model inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bayes
from bayes.models.cells import Cell, cohort_rows, make_cell, print_step, rounding_width
from bayes.nprior import n_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STUDY = "imatinib_il2_melanoma"
GRID = np.array([3.0, 5.0, 10.0, 20.0])


@pytest.fixture(scope="module")
def seed():
    return bayes.load_builtin()


@pytest.fixture(scope="module")
def other():
    return bayes.read_study(FIXTURES / "two_agent_other.csv")


def cell(study, name, endpoint) -> Cell:
    return make_cell(study.cell(name, endpoint))


# --------------------------------------------------------------------------- attributes

@pytest.mark.parametrize("endpoint, kind, better, cohort, scale, display, sign, link", [
    ("tumor_volume", "positive", "lower", "in_vivo", 1500.0, 1500.0, 1.0, "log"),
    ("ifn_gamma", "positive", "higher", "splenocytes", 50.0, 50.0, -1.0, "log"),
    ("nk_lysis", "percent", "higher", "splenocytes", 100.0, 100.0, -1.0, "logit"),
    ("survival", "rate", "higher", "in_vivo", 1.0, 100.0, -1.0, "logit"),
])
def test_cell_attributes_on_the_seed(seed, endpoint, kind, better, cohort, scale, display, sign, link):
    c = cell(seed, STUDY, endpoint)
    assert (c.study, c.endpoint, c.kind, c.better, c.cohort) == (STUDY, endpoint, kind, better, cohort)
    assert c.key == f"{STUDY}/{endpoint}"
    assert c.scale == scale and c.display == display and c.sign == sign and c.link == link
    assert c.design.arms == ("control", "imatinib", "IL-2", "imatinib+IL-2")
    assert c.design.combos == ("imatinib+IL-2",)
    assert list(c.rows.index) == [0, 1, 2, 3]


def test_cells_of_one_kind_and_design_share_a_structure(seed):
    tumour, ifn, lysis, survival = (cell(seed, STUDY, e) for e in
                                    ("tumor_volume", "ifn_gamma", "nk_lysis", "survival"))
    assert tumour.structure == ifn.structure
    assert len({tumour.structure, lysis.structure, survival.structure}) == 3


# --------------------------------------------------------------------------- inputs

def test_positive_inputs_are_divided_by_the_control_mean(seed):
    c = cell(seed, STUDY, "tumor_volume")
    n = n_matrix(c.rows, GRID)
    inp = c.inputs(n)
    assert set(inp) == {"obs_mean", "obs_var", "n", "log_jacobian", "mean_step2", "sd_step2"}
    np.testing.assert_array_equal(inp["log_jacobian"], np.zeros((4, 4)))    # SDs reported: no Jacobian
    np.testing.assert_allclose(inp["obs_mean"], [1.0, 0.9, 1100 / 1500, 0.3], rtol=1e-12)
    assert inp["obs_mean"].shape == (4,)
    assert inp["obs_var"].shape == (4, 4)
    want = (np.array([250.0, 200.0, 180.0, 100.0]) / 1500) ** 2
    np.testing.assert_allclose(inp["obs_var"], np.tile(want, (4, 1)), rtol=1e-12)   # SD given: same at every n
    np.testing.assert_array_equal(inp["n"], np.repeat(GRID[:, None], 4, axis=1))


def test_higher_is_better_positive_inputs(seed):
    inp = cell(seed, STUDY, "ifn_gamma").inputs(np.full((1, 4), 7.0))
    np.testing.assert_allclose(inp["obs_mean"], [1.0, 3.0, 10.0, 24.0], rtol=1e-12)
    np.testing.assert_allclose(inp["obs_var"], [[0.04, 0.36, 2.56, 9.0]], rtol=1e-12)


def test_percent_inputs_are_fractions(seed):
    inp = cell(seed, STUDY, "nk_lysis").inputs(np.array([[4.0] * 4, [12.0] * 4]))
    np.testing.assert_allclose(inp["obs_mean"], [0.15, 0.25, 0.40, 0.75], rtol=1e-12)
    np.testing.assert_allclose(inp["obs_var"], np.tile([0.0009, 0.0025, 0.0064, 0.01], (2, 1)), rtol=1e-12)


def test_rate_inputs_are_whole_counts_per_n(seed):
    c = cell(seed, STUDY, "survival")
    n = n_matrix(c.rows, GRID)
    inp = c.inputs(n)
    assert set(inp) == {"k", "n"}
    # 0, 0, 20, 80 %: k = round(percent * n / 100)
    np.testing.assert_array_equal(inp["k"], [[0, 0, 1, 2],      # n = 3: 0.6 -> 1, 2.4 -> 2
                                             [0, 0, 1, 4],
                                             [0, 0, 2, 8],
                                             [0, 0, 4, 16]])
    assert np.all(inp["k"][:, :2] == 0)                          # 0% arms have no events at any n
    np.testing.assert_array_equal(inp["n"], n)
    assert np.all(inp["k"] <= inp["n"])


def test_se_becomes_sd_with_the_reported_n(other):
    c = cell(other, "other_study", "tumor_weight")
    assert c.design.arms == ("control", "drugB", "drugA", "drugB+drugA")
    assert c.scale == 2.4
    n = n_matrix(c.rows, GRID)
    np.testing.assert_array_equal(n, np.full((4, 4), 8.0))      # reported n wins over the grid
    inp = c.inputs(n)
    se = np.array([0.21, 0.18, 0.15, 0.10])
    np.testing.assert_allclose(inp["obs_var"], np.tile((se * np.sqrt(8) / 2.4) ** 2, (4, 1)), rtol=1e-12)
    np.testing.assert_allclose(inp["obs_mean"], np.array([2.4, 2.0, 1.6, 0.9]) / 2.4, rtol=1e-12)
    # printed to 0.01: the SD = sqrt(8) SE is known to sqrt(8) times that step
    assert c.print_step == 0.01
    np.testing.assert_allclose(inp["sd_step2"], np.full((4, 4), 8 * (0.01 / 2.4) ** 2), rtol=1e-12)
    np.testing.assert_allclose(inp["mean_step2"], np.full(4, (0.01 / 2.4) ** 2), rtol=1e-12)


def test_se_becomes_sd_with_the_grid_n_when_n_is_unknown(other):
    rows = other.cell("other_study", "tumor_weight").assign(n=np.nan)
    rows.loc[2, "n"] = 16.0                                     # one arm reports n
    c = make_cell(rows)
    n = n_matrix(c.rows, np.array([4.0, 9.0]))
    np.testing.assert_array_equal(n, [[4, 4, 16, 4], [9, 9, 16, 9]])
    se = np.array([0.21, 0.18, 0.15, 0.10])
    want = (se[None, :] * np.sqrt(n) / 2.4) ** 2
    np.testing.assert_allclose(c.inputs(n)["obs_var"], want, rtol=1e-12)
    # sd = se * sqrt(n): at n = 9 the control's sd is 0.63
    assert np.sqrt(c.inputs(n)["obs_var"][1, 0]) * 2.4 == pytest.approx(0.63, rel=1e-12)
    # the data are SE^2 = s^2 / n: each arm's density carries log n, n the arm's own
    np.testing.assert_allclose(c.inputs(n)["log_jacobian"], np.log(n), rtol=1e-12)


def test_sd_wins_over_se_where_both_are_given(other):
    rows = other.cell("other_study", "tumor_weight").copy()
    rows.loc[1, "sd"] = 0.5
    c = make_cell(rows)
    var = c.inputs(np.full((1, 4), 8.0))["obs_var"]
    np.testing.assert_allclose(c.inputs(np.full((1, 4), 8.0))["log_jacobian"],
                               [[np.log(8), 0.0, np.log(8), np.log(8)]], rtol=1e-12)   # SD arm: none
    assert var[0, 1] == pytest.approx((0.5 / 2.4) ** 2, rel=1e-12)
    assert var[0, 0] == pytest.approx((0.21 * np.sqrt(8) / 2.4) ** 2, rel=1e-12)


def test_percent_with_reported_n_in_another_fixture(other):
    c = cell(other, "other_study", "ki67")
    assert (c.kind, c.better, c.scale, c.sign) == ("percent", "lower", 100.0, 1.0)
    inp = c.inputs(n_matrix(c.rows, GRID))
    np.testing.assert_array_equal(inp["n"], np.full((4, 4), 6.0))
    np.testing.assert_allclose(inp["obs_mean"], [0.60, 0.50, 0.45, 0.30], rtol=1e-12)


def test_shared_cohort_n_gives_whole_survival_counts(other):
    c = cell(other, "other_study", "survival")
    inp = c.inputs(n_matrix(c.rows, GRID))
    np.testing.assert_array_equal(inp["k"], np.tile([1, 2, 4, 7], (4, 1)))   # 12.5/25/50/87.5% of 8


def test_reported_frame(seed):
    tumour = cell(seed, STUDY, "tumor_volume").reported()
    assert list(tumour.columns) == ["arm", "reported", "reported_sd", "reported_se"]
    assert list(tumour["reported"]) == [1500.0, 1350.0, 1100.0, 450.0]
    assert list(tumour["reported_sd"]) == [250.0, 200.0, 180.0, 100.0]
    survival = cell(seed, STUDY, "survival").reported()
    assert list(survival["reported"]) == [0.0, 0.0, 20.0, 80.0]
    assert survival["reported_sd"].isna().all()


def test_cohort_rows_selects_every_endpoint_of_a_cohort(seed):
    got = cohort_rows(seed.table, STUDY, "in_vivo")
    assert sorted(set(got["endpoint"])) == ["survival", "tumor_volume"]
    assert len(got) == 8


# --------------------------------------------------------------------------- printed steps (rounding)

@pytest.mark.parametrize("values, step", [
    ([1500, 1350, 1100, 450, 250, 200, 180, 100], 10.0),   # the seed's tumour volumes
    ([15, 25, 40, 75, 3, 5, 8, 10], 1.0),                   # its % lysis
    ([1205.0, 15.0, 3.0, 1.0, 227.0, 4.0, 1.0, 1.0], 1.0),
    ([73.0, 90.6, 18.4, 10.8, 2.9], 0.1),
    ([2.4, 2.0, 1.6, 0.9, 0.21, 0.18, 0.15, 0.10], 0.01),
    ([0.1 + 0.2, 1.7], 0.1),                                # float noise is not a digit
    ([790.5694150420949, 1500.0], 0.0),                     # more digits than 10^-6: exact
    ([0.0, 3000.0, np.nan], 1000.0),                        # zeros and gaps say nothing
    ([np.nan, 0.0], 0.0),
])
def test_print_step_is_the_coarsest_power_of_ten_every_value_is_a_multiple_of(values, step):
    assert print_step(values) == pytest.approx(step, rel=1e-12)


def test_a_value_printed_as_one_step_may_have_been_smaller():
    width = rounding_width(np.array([1.0, 3.0, np.nan, 15.0]), 1.0)
    np.testing.assert_allclose(width, [2.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(rounding_width(np.array([1.0, 3.0]), 0.0), [0.0, 0.0])   # exact


@pytest.mark.parametrize("endpoint, step", [("tumor_volume", 10 / 1500), ("ifn_gamma", 10 / 50),
                                            ("nk_lysis", 1 / 100)])
def test_inputs_carry_the_printed_steps_on_the_model_scale(seed, endpoint, step):
    c = cell(seed, STUDY, endpoint)
    inp = c.inputs(n_matrix(c.rows, GRID))
    assert inp["mean_step2"].shape == (4,) and inp["sd_step2"].shape == (4, 4)
    np.testing.assert_allclose(inp["mean_step2"], np.full(4, step**2), rtol=1e-12)
    want = np.full(4, step**2)
    if endpoint == "ifn_gamma":          # the control's SD is printed as one step, 10: 10 +/- 10
        want[0] = (2 * step) ** 2
        assert inp["obs_var"][0, 0] == pytest.approx((10 / 50) ** 2, rel=1e-12)
    np.testing.assert_allclose(inp["sd_step2"], np.tile(want, (4, 1)), rtol=1e-12)


def test_rate_cells_have_no_printed_step(seed):
    assert cell(seed, STUDY, "survival").print_step == 0.0
