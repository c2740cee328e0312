"""Unit tests for bayes.models.factorial: the summary-statistics likelihood.

No MCMC.  The model's log-density at chosen parameter points is compared with
the closed form computed independently with scipy, and the sampling
distributions the likelihood assumes are checked against simulated studies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes.design import make_design
from bayes.models.factorial import MODEL_NAMES, CellData, build_factorial, cell_data
from bayes.priors import load_prior_set

DESIGN = make_design([(), ("A",), ("B",), ("A", "B")])
MEAN = np.array([1500.0, 1350.0, 1100.0, 450.0])
SD = np.array([250.0, 200.0, 180.0, 100.0])
N = np.array([10.0, 8.0, 12.0, 6.0])


@pytest.fixture(scope="module")
def priors():
    return load_prior_set()


@pytest.fixture(scope="module")
def data() -> CellData:
    return CellData(DESIGN, MEAN, SD, N, float(MEAN[0]))


@pytest.fixture(scope="module")
def model(data, priors):
    return build_factorial(data, priors)


def closed_form(obs_mean, obs_var, n, m, s):
    """Independent log-densities of the scaled reported means and variances."""
    E = np.exp(m + s**2 / 2)
    V = (np.exp(s**2) - 1) * E**2
    lp_mean = stats.norm(loc=E, scale=np.sqrt(V / n)).logpdf(obs_mean)
    lp_var = stats.gamma(a=(n - 1) / 2, scale=1 / ((n - 1) / (2 * V))).logpdf(obs_var)
    return lp_mean, lp_var


def point(model, baseline, effects, gamma, sd_log):
    p = model.initial_point()
    p["baseline"] = np.asarray(baseline, float)
    p["agent_effect"] = np.asarray(effects, float)
    if gamma is not None:
        p["interaction"] = np.asarray(gamma, float)
    p["sd_log_log__"] = np.log(np.asarray(sd_log, float))
    return p


def deterministics(model, names, p):
    """Values of Deterministics at a point of the value variables."""
    outs = model.replace_rvs_by_values([model[n] for n in names])
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(p)


# --------------------------------------------------------------------------- (a) closed form

@pytest.mark.parametrize("baseline, effects, gamma, sd_log", [
    (0.0, [0.0, 0.0], [0.0], [0.5, 0.5, 0.5, 0.5]),
    (-0.02, [-0.1, -0.3], [-0.6], [0.17, 0.15, 0.16, 0.22]),
    (0.3, [0.4, -0.8], [1.1], [0.05, 0.9, 0.3, 1.4]),
])
def test_observed_logp_equals_closed_form(model, data, baseline, effects, gamma, sd_log):
    p = point(model, baseline, effects, gamma, sd_log)
    lp_mean, lp_var = model.compile_logp(vars=[model["mean_obs"], model["var_obs"]], sum=False)(p)

    # linear predictor computed by hand (control, A, B, A+B)
    a, b = effects
    m = baseline + np.array([0.0, a, b, a + b + gamma[0]])
    s = np.asarray(sd_log)
    obs_mean = MEAN / MEAN[0]
    obs_var = (SD / MEAN[0]) ** 2
    want_mean, want_var = closed_form(obs_mean, obs_var, N, m, s)
    np.testing.assert_allclose(lp_mean, want_mean, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(lp_var, want_var, rtol=1e-8, atol=1e-8)


def test_deterministics_match_closed_form(model):
    p = point(model, 0.1, [-0.2, -0.5], [-0.4], [0.3, 0.2, 0.25, 0.4])
    log_median, arm_mean = deterministics(model, ["log_median", "arm_mean"], p)
    m = 0.1 + np.array([0.0, -0.2, -0.5, -0.2 - 0.5 - 0.4])
    np.testing.assert_allclose(log_median, m, rtol=1e-12)
    np.testing.assert_allclose(arm_mean, np.exp(m + np.array([0.3, 0.2, 0.25, 0.4]) ** 2 / 2), rtol=1e-12)


def test_scaled_and_unscaled_density_differ_by_a_constant(model):
    """Scaling the data by 1/scale changes the density only by the Jacobian, a constant."""
    scale = MEAN[0]
    n, obs_mean, obs_var = N, MEAN / scale, (SD / scale) ** 2
    diffs = []
    for m, s in [(np.zeros(4), np.full(4, 0.3)), (np.array([0.1, -0.2, 0.0, -1.0]), np.full(4, 0.6))]:
        scaled = sum(x.sum() for x in closed_form(obs_mean, obs_var, n, m, s))
        raw = sum(x.sum() for x in closed_form(MEAN, SD**2, n, m + np.log(scale), s))
        diffs.append(scaled - raw)
    np.testing.assert_allclose(diffs[0], diffs[1], rtol=1e-10)
    np.testing.assert_allclose(diffs[0], 4 * (np.log(scale) + 2 * np.log(scale)), rtol=1e-10)


def test_gamma_uses_rate_not_scale(model):
    """Swapping rate and scale would move the variance density's mode; pin it."""
    p = point(model, 0.0, [0.0, 0.0], [0.0], [0.2, 0.2, 0.2, 0.2])
    lp_var = model.compile_logp(vars=[model["var_obs"]], sum=False)(p)[0]
    _, V = moments(N, 0.2)
    obs_var = (SD / MEAN[0]) ** 2
    right = stats.gamma(a=(N - 1) / 2, scale=2 * V / (N - 1)).logpdf(obs_var)
    wrong = stats.gamma(a=(N - 1) / 2, scale=(N - 1) / (2 * V)).logpdf(obs_var)
    np.testing.assert_allclose(lp_var, right, rtol=1e-8)
    assert not np.allclose(lp_var, wrong)


def test_data_containers_hold_scaled_inputs(model):
    np.testing.assert_allclose(model["obs_mean"].get_value(), MEAN / 1500.0)
    np.testing.assert_allclose(model["obs_var"].get_value(), (SD / 1500.0) ** 2)
    np.testing.assert_array_equal(model["n_animals"].get_value(), N)
    assert model.coords["arm"] == ("control", "A", "B", "A+B")
    assert model.coords["agent"] == ("A", "B")
    assert model.coords["combo"] == ("A+B",)
    assert model.named_vars_to_dims["mean_obs"] == ("arm",)
    assert model.named_vars_to_dims["sd_log"] == ("arm",)
    assert model.named_vars_to_dims["interaction"] == ("combo",)


# --------------------------------------------------------------------------- (b) simulation

def simulate(n: int, sd_log: float, m: float = 0.0, reps: int = 40_000, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=m, sigma=sd_log, size=(reps, n))
    return x.mean(axis=1), x.var(axis=1, ddof=1)


def moments(n, s, m=0.0):
    E = np.exp(m + s**2 / 2)
    V = (np.exp(s**2) - 1) * E**2
    return E, V


@pytest.mark.parametrize("n, sd_log", [(5, 0.2), (10, 0.2), (10, 0.8)])
def test_sampling_distribution_of_the_mean(n, sd_log):
    means, _ = simulate(n, sd_log, m=0.4)
    E, V = moments(n, sd_log, m=0.4)
    se = np.sqrt(V / n)
    reps = len(means)
    assert abs(means.mean() - E) < 4 * se / np.sqrt(reps)          # within MC error
    assert means.std(ddof=1) == pytest.approx(se, rel=0.05)        # Normal(E, sqrt(V/n)) scale


@pytest.mark.parametrize("n, sd_log", [(5, 0.2), (10, 0.2), (10, 0.8)])
def test_sample_variance_is_unbiased_for_V(n, sd_log):
    _, variances = simulate(n, sd_log, m=-0.3)
    E, V = moments(n, sd_log, m=-0.3)
    reps = len(variances)
    assert abs(variances.mean() - V) < 4 * variances.std(ddof=1) / np.sqrt(reps)
    # the Gamma's mean alpha/beta is V too
    alpha, beta = (n - 1) / 2, (n - 1) / (2 * V)
    assert alpha / beta == pytest.approx(V, rel=1e-12)


def lognormal_excess_kurtosis(s):
    return np.exp(4 * s**2) + 2 * np.exp(3 * s**2) + 3 * np.exp(2 * s**2) - 6


@pytest.mark.parametrize("n, sd_log", [(5, 0.1), (10, 0.1), (10, 0.2), (10, 0.8)])
def test_simulated_variance_of_s2_matches_exact_formula(n, sd_log):
    """Sanity of the simulation: Var(s^2) = V^2 (2/(n-1) + kappa/n) for any distribution."""
    _, variances = simulate(n, sd_log, reps=200_000 if sd_log > 0.5 else 40_000)
    _, V = moments(n, sd_log)
    exact = V**2 * (2 / (n - 1) + lognormal_excess_kurtosis(sd_log) / n)
    # heavy tails at sd_log 0.8 make the sample variance of s^2 noisy
    assert variances.var(ddof=1) == pytest.approx(exact, rel=0.05 if sd_log < 0.5 else 0.35)


@pytest.mark.parametrize("n", [5, 10])
def test_gamma_variance_of_s2_is_close_for_small_sd_log(n):
    # The Gamma((n-1)/2, rate (n-1)/(2V)) law of s^2 is exact for normal data;
    # for log-normal data Var(s^2) has an extra V^2 * kappa / n (kappa =
    # excess kurtosis, ~16 sd_log^2 for small sd_log).  At sd_log = 0.1 the
    # Gamma's 2 V^2 / (n - 1) is within 15% of the truth.
    sd_log = 0.1
    _, variances = simulate(n, sd_log)
    _, V = moments(n, sd_log)
    gamma_var = 2 * V**2 / (n - 1)
    assert variances.var(ddof=1) == pytest.approx(gamma_var, rel=0.15)


@pytest.mark.parametrize("n, sd_log, at_least", [(5, 0.2, 1.15), (10, 0.2, 1.2), (10, 0.8, 5.0)])
def test_gamma_understates_variance_of_s2_as_sd_log_grows(n, sd_log, at_least):
    # Known approximation of the design (DESIGN.md section 3): the Gamma law of
    # the reported variance ignores the log-normal's excess kurtosis, so it
    # understates how much s^2 varies between studies.  Already at sd_log 0.2
    # the shortfall is ~25-30% (ratio 1 + (n-1) kappa / (2n)); at sd_log 0.8 the
    # true Var(s^2) is ~15x the Gamma's (n = 10).  The likelihood therefore
    # treats a reported SD as more informative than it is for noisy arms.
    _, variances = simulate(n, sd_log, reps=200_000)
    _, V = moments(n, sd_log)
    gamma_var = 2 * V**2 / (n - 1)
    ratio = variances.var(ddof=1) / gamma_var
    assert ratio > at_least
    predicted = 1 + (n - 1) * lognormal_excess_kurtosis(sd_log) / (2 * n)
    assert ratio == pytest.approx(predicted, rel=0.05 if sd_log < 0.5 else 0.35)


# --------------------------------------------------------------------------- (c) cell_data

def rows(mean, sd, se, n):
    return pd.DataFrame({"agents": [(), ("A",), ("B",), ("A", "B")], "mean": mean,
                         "sd": sd, "se": se, "n": n})


def test_cell_data_turns_se_into_sd_with_the_rows_own_n():
    nan = np.nan
    r = rows([100.0, 80.0, 60.0, 20.0], [10.0, nan, nan, 4.0], [nan, 3.0, 2.0, nan], [9, 16, 4, 25])
    cd = cell_data(r, n_assumed=100)
    np.testing.assert_allclose(cd.sd, [10.0, 3.0 * 4, 2.0 * 2, 4.0])
    np.testing.assert_array_equal(cd.n, [9, 16, 4, 25])          # row n wins over assumption
    assert cd.scale == 100.0
    np.testing.assert_array_equal(cd.mean, [100.0, 80.0, 60.0, 20.0])
    assert cd.design.arms == ("control", "A", "B", "A+B")


def test_cell_data_uses_the_assumption_only_where_n_is_missing():
    nan = np.nan
    r = rows([100.0, 80.0, 60.0, 20.0], [nan, nan, 5.0, 4.0], [2.0, 3.0, nan, nan], [nan, 16, nan, 5])
    cd = cell_data(r, n_assumed=9)
    np.testing.assert_array_equal(cd.n, [9.0, 16.0, 9.0, 5.0])
    np.testing.assert_allclose(cd.sd, [2.0 * 3, 3.0 * 4, 5.0, 4.0])


def test_cell_data_does_not_modify_the_table():
    nan = np.nan
    r = rows([100.0, 80.0, 60.0, 20.0], [nan, 1.0, 1.0, 1.0], [2.0, nan, nan, nan], [nan, 4, 4, 4])
    before = r.copy()
    cell_data(r, n_assumed=9)
    pd.testing.assert_frame_equal(r, before)


def test_cell_data_without_n_or_assumption_raises():
    nan = np.nan
    r = rows([100.0, 80.0, 60.0, 20.0], [10.0, 8.0, 6.0, 2.0], [nan] * 4, [10, nan, 10, 10])
    with pytest.raises(ValueError, match="n is not reported for every arm and no n assumption"):
        cell_data(r)
    # fully reported n needs no assumption
    full = rows([100.0, 80.0, 60.0, 20.0], [10.0, 8.0, 6.0, 2.0], [nan] * 4, [10, 7, 10, 10])
    np.testing.assert_array_equal(cell_data(full).n, [10, 7, 10, 10])


def test_model_inputs_values():
    cd = CellData(DESIGN, np.array([200.0, 100.0, 50.0, 20.0]), np.array([20.0, 30.0, 10.0, 4.0]),
                  np.array([5, 6, 7, 8]), 200.0)
    inp = cd.model_inputs()
    assert set(inp) == {"obs_mean", "obs_var", "n_animals"}
    np.testing.assert_allclose(inp["obs_mean"], [1.0, 0.5, 0.25, 0.1])
    np.testing.assert_allclose(inp["obs_var"], [0.01, 0.0225, 0.0025, 0.0004])
    assert inp["n_animals"].dtype == float
    np.testing.assert_array_equal(inp["n_animals"], [5.0, 6.0, 7.0, 8.0])


# --------------------------------------------------------------------------- (d) variants

def test_model_names():
    assert MODEL_NAMES == ("factorial", "additive")


@pytest.mark.parametrize("interaction", [True, False])
def test_every_variant_has_finite_logp_and_gradient(data, priors, interaction):
    model = build_factorial(data, priors, interaction=interaction)
    ip = model.initial_point()
    logp = model.compile_logp()(ip)
    grad = model.compile_dlogp()(ip)
    assert np.isfinite(logp)
    assert np.all(np.isfinite(grad))
    n_free = 1 + 2 + 4 + (1 if interaction else 0)
    assert grad.shape == (n_free,)
    assert np.any(grad != 0)
    assert all(np.isfinite(v) for v in model.point_logps(ip).values())


def test_three_agent_variants_have_finite_logp_and_gradient(priors):
    design = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "B", "C")])
    cd = CellData(design, np.array([10.0, 9, 8, 7, 5, 2]), np.array([2.0, 2, 1, 1, 1, 0.5]),
                  np.full(6, 6.0), 10.0)
    for interaction in (True, False):
        model = build_factorial(cd, priors, interaction=interaction)
        ip = model.initial_point()
        assert np.isfinite(model.compile_logp()(ip))
        assert np.all(np.isfinite(model.compile_dlogp()(ip)))
        if interaction:
            assert model.coords["combo"] == ("A+B", "A+B+C")
            assert ip["interaction"].shape == (2,)


def test_additive_variant_has_no_interaction(data, priors):
    model = build_factorial(data, priors, interaction=False)
    names = {v.name for v in model.free_RVs}
    assert names == {"baseline", "agent_effect", "sd_log"}
    assert "interaction" not in model.named_vars
    assert "combo" not in model.coords
    # its combination arm is exactly additive on the log-median scale
    p = point(model, 0.1, [-0.2, -0.5], None, [0.3, 0.3, 0.3, 0.3])
    (log_median,) = deterministics(model, ["log_median"], p)
    np.testing.assert_allclose(log_median, [0.1, -0.1, -0.4, -0.6], rtol=1e-12)
    lp_mean, lp_var = model.compile_logp(vars=[model["mean_obs"], model["var_obs"]], sum=False)(p)
    want_mean, want_var = closed_form(MEAN / MEAN[0], (SD / MEAN[0]) ** 2, N,
                                      np.array([0.1, -0.1, -0.4, -0.6]), np.full(4, 0.3))
    np.testing.assert_allclose(lp_mean, want_mean, rtol=1e-8)
    np.testing.assert_allclose(lp_var, want_var, rtol=1e-8)


def test_factorial_free_variables(model):
    assert {v.name for v in model.free_RVs} == {"baseline", "agent_effect", "interaction", "sd_log"}
    assert {v.name for v in model.observed_RVs} == {"mean_obs", "var_obs"}
    assert type(model["var_obs"].owner.op).__name__ == "GammaRV"
    assert type(model["mean_obs"].owner.op).__name__ == "NormalRV"
