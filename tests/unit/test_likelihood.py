"""Unit tests for bayes.likelihoods and the likelihood part of bayes.models.builder.

No MCMC.  The tensor functions are evaluated on constants and compared with
closed forms computed independently with scipy; the sampling laws they assume
are checked against seeded simulations; and the built models' potentials (n
summed out with logsumexp) are recomputed by hand at chosen parameter points.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import special, stats

import bayes
from bayes import likelihoods as lik
from bayes.analysis import model_specs
from bayes.models.builder import MODEL_NAMES, build_model
from bayes.nprior import NPrior
from bayes.priors import load_prior_set


def ev(x) -> np.ndarray:
    return np.asarray(x.eval(), float)


def const(x) -> pt.TensorVariable:
    return pt.as_tensor_variable(np.asarray(x, float))


def lognormal_closed(m, s):
    """(E, V, excess kurtosis) of LogNormal(m, s), from scipy."""
    mean, var, _, kurt = stats.lognorm(s=s, scale=np.exp(m)).stats(moments="mvsk")
    return np.asarray(mean, float), np.asarray(var, float), np.asarray(kurt, float)


def summary_closed(obs_mean, obs_var, E, V, n):
    """Normal(E, sqrt(V/n)) logpdf of the mean + Gamma((n-1)/2, rate (n-1)/(2V)) of the variance."""
    alpha = (n - 1) / 2
    return (stats.norm(loc=E, scale=np.sqrt(V / n)).logpdf(obs_mean)
            + stats.gamma(a=alpha, scale=V / alpha).logpdf(obs_var))


# --------------------------------------------------------------------------- (a) summary_loglik

@pytest.mark.parametrize("m, s", [
    ([0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]),
    ([-0.02, -0.12, -0.32, -1.02], [0.17, 0.15, 0.16, 0.22]),
    ([0.3, 0.7, -0.5, 0.1], [0.05, 0.9, 0.3, 1.4]),
])
def test_summary_loglik_equals_scipy_closed_form(m, s):
    m, s = np.array(m), np.array(s)
    obs_mean = np.array([1.0, 0.9, 0.733, 0.3])
    n = np.array([[3.0, 3.0, 3.0, 3.0], [10.0, 8.0, 12.0, 6.0], [20.0, 15.0, 5.0, 4.0]])   # (G=3, arm=4)
    obs_var = np.array([0.0278, 0.0178, 0.0144, 0.0044])[None, :] * np.array([[1.0], [1.3], [0.7]])
    E, V, _ = lognormal_closed(m, s)
    got = ev(lik.summary_loglik(const(obs_mean), const(obs_var), const(E), const(V), const(n)))
    want = summary_closed(obs_mean[None, :], obs_var, E[None, :], V[None, :], n)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_reported_sd_rules_out_a_large_log_sd():
    # Why the normal-theory Gamma (and not one matched to the larger, kurtosis-inflated
    # variance of s^2): log-normal samples with s = 0.6 almost never show a CV below 0.2,
    # and the likelihood must say so.  At the seed's control arm (CV 0.167, n = 10) the
    # log-likelihood of s = 0.17 beats s = 0.6 by a wide margin.
    rng = np.random.default_rng(5)
    x = rng.lognormal(0.0, 0.6, size=(100_000, 10))
    cv = x.std(axis=1, ddof=1) / x.mean(axis=1)
    assert (cv < 0.2).mean() < 0.005
    obs_mean, obs_var, n = np.array([1.0]), np.array([[0.167**2]]), np.array([[10.0]])

    def loglik(s):
        E, V, _ = lognormal_closed(np.array([-s**2 / 2]), np.array([s]))
        return float(ev(lik.summary_loglik(const(obs_mean), const(obs_var), const(E), const(V), const(n)))[0, 0])

    assert loglik(0.17) - loglik(0.6) > 5.0


# --------------------------------------------------------------------------- (b) moments

@pytest.mark.parametrize("m, s", [(0.0, 0.2), (-0.7, 0.5), (1.3, 0.9)])
def test_lognormal_moments_match_scipy(m, s):
    mean, var = (ev(x) for x in lik.lognormal_moments(const(m), const(s)))
    E, V, _ = lognormal_closed(m, s)
    np.testing.assert_allclose([mean, var], [E, V], rtol=1e-10)


@pytest.mark.parametrize("mu, phi", [(0.15, 20.0), (0.5, 3.0), (0.75, 40.0), (0.97, 8.0)])
def test_beta_moments_match_scipy(mu, phi):
    mean, var = (ev(x) for x in lik.beta_moments(const(mu), const(phi)))
    M, V = (float(v) for v in stats.beta(mu * phi, (1 - mu) * phi).stats(moments="mv"))
    np.testing.assert_allclose([mean, var], [M, V], rtol=1e-10)


# --------------------------------------------------------------------------- (c) simulation

def var_of_s2(V, kurt, n):
    return V**2 * (2 / (n - 1) + kurt / n)


@pytest.mark.parametrize("sd_log", [0.2, 0.5])
def test_lognormal_sample_variance_has_mean_V_and_kurtosis_corrected_variance(sd_log):
    n, reps, m = 10, 200_000, 0.3
    x = np.random.default_rng(11).lognormal(m, sd_log, size=(reps, n))
    s2 = x.var(axis=1, ddof=1)
    _, V, kurt = lognormal_closed(m, sd_log)
    assert abs(s2.mean() - V) < 4 * s2.std(ddof=1) / np.sqrt(reps)
    assert s2.var(ddof=1) == pytest.approx(var_of_s2(V, kurt, n), rel=0.10)
    # the kurtosis term is real: the normal-theory 2 V^2 / (n - 1) that the likelihood uses
    # understates it by more than 10% (a documented approximation, see bayes/likelihoods.py)
    assert s2.var(ddof=1) > 1.10 * 2 * V**2 / (n - 1)


@pytest.mark.parametrize("mu, phi", [(0.3, 10.0), (0.85, 30.0)])
def test_beta_sample_variance_has_mean_V_and_kurtosis_corrected_variance(mu, phi):
    n, reps = 10, 200_000
    x = np.random.default_rng(12).beta(mu * phi, (1 - mu) * phi, size=(reps, n))
    s2 = x.var(axis=1, ddof=1)
    _, V, _, kurt = (float(v) for v in stats.beta(mu * phi, (1 - mu) * phi).stats(moments="mvsk"))
    assert abs(s2.mean() - V) < 4 * s2.std(ddof=1) / np.sqrt(reps)
    assert s2.var(ddof=1) == pytest.approx(var_of_s2(V, kurt, n), rel=0.10)


# --------------------------------------------------------------------------- (d) binomial

def test_binomial_loglik_equals_scipy_including_zero_and_all_events():
    n = np.array([[5.0, 5.0, 5.0, 5.0], [10.0, 10.0, 10.0, 10.0]])
    k = np.round(np.array([0.0, 0.0, 20.0, 100.0])[None, :] * n / 100)       # 0/0/1/5 and 0/0/2/10
    eta = np.array([-2.0, 0.0, -1.2, 1.7])
    got = ev(lik.binomial_loglik(const(k), const(n), const(eta)))
    want = stats.binom.logpmf(k, n, special.expit(eta)[None, :])
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_binomial_loglik_is_finite_and_exact_at_extreme_logits():
    n = np.full((1, 4), 10.0)
    k = np.array([[0.0, 10.0, 0.0, 10.0]])
    eta = np.array([-30.0, 30.0, 30.0, -30.0])
    got = ev(lik.binomial_loglik(const(k), const(n), const(eta)))
    assert np.all(np.isfinite(got))
    # independent: log C(n, k) + k log sigmoid(eta) + (n - k) log sigmoid(-eta)
    want = (special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
            + k * special.log_expit(eta) + (n - k) * special.log_expit(-eta))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got[0, 0] == pytest.approx(-10 * np.exp(-30), abs=1e-15)   # 0 of 10 at p ~ 1e-13: ~certain
    assert got[0, 2] == pytest.approx(-300.0, rel=1e-6)                # 0 of 10 at p ~ 1 - 1e-13


# --------------------------------------------------------------------------- models on the seed

@pytest.fixture(scope="module")
def priors():
    return load_prior_set()


@pytest.fixture(scope="module")
def seed():
    return bayes.load_builtin()


@pytest.fixture(scope="module")
def models(seed, priors):
    out = {}
    for family in MODEL_NAMES:
        for spec in model_specs(seed, family, NPrior()):
            out[(family, spec.cells[0].endpoint if family != "joint" else "all")] = (spec, build_model(spec, priors))
    return out


def test_model_names():
    assert MODEL_NAMES == ("factorial", "additive", "joint", "link")


@pytest.mark.parametrize("family", MODEL_NAMES)
def test_every_seed_model_has_finite_logp_and_gradient(models, family):
    built = {k: v for k, v in models.items() if k[0] == family}
    assert len(built) == (1 if family in ("joint", "link") else 4)
    for key, (spec, model) in built.items():
        ip = model.initial_point()
        # one compiled function for both (compiling logp and dlogp separately doubles the time)
        logp, grad = model.compile_fn([model.logp(), model.dlogp()], inputs=model.value_vars)(ip)
        assert np.isfinite(logp), key
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), key
        assert {p.name for p in model.potentials} == {f"loglik_{j}" for j in range(len(spec.groups))}
        names = set(model.named_vars)
        if family == "additive":
            # the factorial graph with the interaction switched off: the likelihood ignores it
            assert spec.switched_off() == ["c0_interaction"] and float(model["c0_interaction_on"].get_value()) == 0
            loglik = model.compile_fn(model.logp(vars=model.potentials), inputs=model.value_vars,
                                      on_unused_input="ignore")
            moved = {**ip, "c0_interaction": ip["c0_interaction"] + 2.0}
            assert np.isfinite(loglik(ip)) and loglik(moved) == loglik(ip)
            assert {v.name for v in model.free_RVs} - {"c0_interaction"} <= {
                "c0_baseline", "c0_agent_effect", "c0_sd_log", "c0_precision"}
        elif family == "factorial":
            assert "c0_interaction" in names and model["c0_interaction"] in model.free_RVs
        elif family == "joint":
            assert {"synergy_mean", "synergy_sd", "c0_interaction", "c3_interaction"} <= names
            assert model["c0_interaction"] not in model.free_RVs        # a Deterministic of the synergy
        else:  # link: a latent activation measured by the NK readouts, linked to the outcomes
            assert {"activation", "link", "loading_free", "residual_sd"} <= names
            assert "synergy_mean" not in names


def values_at(model, names, point):
    """Values of named model variables (random or deterministic) at a point of the value variables."""
    outs = model.replace_rvs_by_values([model[n] for n in names])
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)


TUMOUR_MEAN = np.array([1500.0, 1350.0, 1100.0, 450.0])
TUMOUR_SD = np.array([250.0, 200.0, 180.0, 100.0])


def tumour_point(model):
    b, a, g, s = 0.05, np.array([-0.12, -0.3]), np.array([-0.55]), np.array([0.18, 0.15, 0.2, 0.3])
    p = model.initial_point()
    p.update(c0_baseline=np.array(b), c0_agent_effect=a, c0_interaction=g, c0_sd_log_log__=np.log(s))
    eta = b + np.array([0.0, a[0], a[1], a[0] + a[1] + g[0]])
    return p, eta, s


def tumour_loglik_per_n(eta, s, grid):
    """Independent per-n log-likelihood of the seed's tumour table (summed over arms)."""
    E, V, _ = lognormal_closed(eta, s)
    obs_mean, obs_var = TUMOUR_MEAN / 1500.0, (TUMOUR_SD / 1500.0) ** 2
    return np.array([summary_closed(obs_mean, obs_var, E, V, n).sum() for n in grid])


def potential_parts(model, p):
    total = model.compile_logp()(p)
    prior = model.compile_logp(vars=model.free_RVs)(p)
    return total, prior


def test_fixed_n_potential_is_the_single_n_loglik(seed, priors):
    (spec,) = [s for s in model_specs(seed, "factorial", NPrior.fixed(10)) if s.cells[0].endpoint == "tumor_volume"]
    assert spec.groups[0].allowed == [10]
    model = build_model(spec, priors)
    p, eta, s = tumour_point(model)
    total, prior = potential_parts(model, p)
    want = tumour_loglik_per_n(eta, s, [10.0])[0]
    assert total - prior == pytest.approx(want, rel=1e-9, abs=1e-9)
    weight, arm_mean = values_at(model, ["n_weight_0", "c0_arm_mean"], p)
    np.testing.assert_array_equal(weight, (spec.groups[0].grid == 10).astype(float))
    np.testing.assert_allclose(arm_mean, lognormal_closed(eta, s)[0], rtol=1e-12)


def test_marginal_n_potential_is_logsumexp_over_allowed_grid(models):
    spec, model = models[("factorial", "tumor_volume")]
    group = spec.groups[0]
    assert group.allowed == [5, 10, 15, 20]
    p, eta, s = tumour_point(model)
    total, prior = potential_parts(model, p)
    allowed = np.array(group.allowed, float)
    per_n = tumour_loglik_per_n(eta, s, allowed)
    want = special.logsumexp(np.log(0.25) + per_n)
    assert total - prior == pytest.approx(want, rel=1e-9, abs=1e-9)
    # and the n weights are the posterior of n given these parameters
    (weight,) = values_at(model, ["n_weight_0"], p)
    expected = np.zeros(len(group.grid))
    expected[np.isin(group.grid, allowed)] = np.exp(per_n - special.logsumexp(per_n))
    np.testing.assert_allclose(weight, expected, rtol=1e-9, atol=1e-15)
    assert weight.sum() == pytest.approx(1.0)


def test_marginal_potential_differs_from_every_single_n(models):
    # guards against a potential that silently used one grid value
    spec, model = models[("factorial", "tumor_volume")]
    p, eta, s = tumour_point(model)
    total, prior = potential_parts(model, p)
    per_n = tumour_loglik_per_n(eta, s, spec.groups[0].grid)
    assert np.min(np.abs(per_n - (total - prior))) > 1e-3


def test_survival_potential_is_the_binomial_mixture(models):
    spec, model = models[("factorial", "survival")]
    b, a, g = -1.0, np.array([-0.4, 0.6]), np.array([1.5])
    p = model.initial_point()
    p.update(c0_baseline=np.array(b), c0_agent_effect=a, c0_interaction=g)
    eta = b + np.array([0.0, a[0], a[1], a[0] + a[1] + g[0]])
    total, prior = potential_parts(model, p)
    pct = np.array([0.0, 0.0, 20.0, 80.0])
    per_n = np.array([stats.binom.logpmf(np.round(pct * n / 100), n, special.expit(eta)).sum()
                      for n in (5.0, 10.0, 15.0, 20.0)])
    assert total - prior == pytest.approx(special.logsumexp(np.log(0.25) + per_n), rel=1e-9)


def test_nk_lysis_potential_is_the_beta_two_moment_mixture(models):
    spec, model = models[("factorial", "nk_lysis")]
    b, a, g, phi = -1.6, np.array([0.6, 1.3]), np.array([1.1]), np.array([40.0, 25.0, 30.0, 15.0])
    p = model.initial_point()
    p.update(c0_baseline=np.array(b), c0_agent_effect=a, c0_interaction=g, c0_precision_log__=np.log(phi))
    mu = special.expit(b + np.array([0.0, a[0], a[1], a[0] + a[1] + g[0]]))
    total, prior = potential_parts(model, p)
    M, V, _, K = (np.asarray(v, float) for v in stats.beta(mu * phi, (1 - mu) * phi).stats(moments="mvsk"))
    obs_mean, obs_var = np.array([15.0, 25.0, 40.0, 75.0]) / 100, (np.array([3.0, 5.0, 8.0, 10.0]) / 100) ** 2
    grid = spec.groups[0].grid
    assert list(grid) == list(range(3, 21))
    per_n = np.array([summary_closed(obs_mean, obs_var, M, V, n).sum() for n in grid])
    assert total - prior == pytest.approx(special.logsumexp(per_n - np.log(18)), rel=1e-9)


def test_joint_model_sums_tumour_and_survival_at_the_same_n(models):
    spec, model = models[("joint", "all")]
    keys = [c.endpoint for c in spec.cells]
    assert keys == ["tumor_volume", "survival", "nk_lysis", "ifn_gamma"]
    p = model.initial_point()
    rng = np.random.default_rng(5)
    p = {k: v + rng.normal(0, 0.2, size=np.shape(v)) for k, v in p.items()}
    tm, sd_log, sm, loglik0 = values_at(model, ["c0_arm_mean", "c0_sd_log", "c1_arm_mean", "loglik_0"], p)
    # tumour: recover log-medians from the arm means, E = exp(m + s^2/2)
    eta = np.log(tm) - sd_log**2 / 2
    tumour = tumour_loglik_per_n(eta, sd_log, [5.0, 10.0, 15.0, 20.0])
    pct = np.array([0.0, 0.0, 20.0, 80.0])
    survival = np.array([stats.binom.logpmf(np.round(pct * n / 100), n, sm).sum() for n in (5.0, 10.0, 15.0, 20.0)])
    assert float(loglik0) == pytest.approx(special.logsumexp(np.log(0.25) + tumour + survival), rel=1e-9)
    # one shared n: not the sum of two separate mixtures
    separate = special.logsumexp(np.log(0.25) + tumour) + special.logsumexp(np.log(0.25) + survival)
    assert abs(float(loglik0) - separate) > 1e-6
