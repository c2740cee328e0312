"""Bridge sampling (bayes.compare.bridge_sampling / bridge_log_ml) on densities
whose normalising constant is known, with exact (iid) draws: no MCMC."""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy import special, stats

from bayes.compare import BridgeEstimate, bridge_log_ml, bridge_sampling, unconstrained_draws


def _mvn(dim: int = 5, seed: int = 1):
    """An unnormalised multivariate normal exp(-q/2 + 3): log Z = 3 + log((2 pi)^(d/2) |S|^(1/2))."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T + dim * np.eye(dim)
    mean = rng.normal(size=dim)
    inv = np.linalg.inv(cov)
    log_z = 3.0 + 0.5 * dim * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(cov)[1]

    def log_density(x):
        d = np.atleast_2d(x) - mean
        return -0.5 * np.einsum("ni,ij,nj->n", d, inv, d) + 3.0

    return mean, cov, log_density, log_z


def test_unnormalised_multivariate_normal():
    mean, cov, log_density, log_z = _mvn()
    draws = stats.multivariate_normal(mean, cov).rvs((4, 1000), random_state=2)
    est = bridge_sampling(log_density, draws, seed=3, vectorised=True)
    assert isinstance(est, BridgeEstimate) and est.estimates.shape == (3,)
    assert est.n_posterior == est.n_proposal == 2000 and est.dimension == 5
    # an exact normal proposal: the error is tiny, and the estimate within it
    assert est.sd < 0.01
    assert abs(est.log_ml - log_z) <= 4 * est.sd
    log_ml, sd = est                       # unpacks as (log_ml, sd)
    assert (log_ml, sd) == (est.log_ml, est.sd)


def test_a_skewed_target_and_a_scalar_density():
    """y = log x with x ~ Gamma(k, 1) per coordinate: density exp(k y - e^y) / Gamma(k),
    far from normal for small k; the callable takes one point at a time."""
    k = np.array([2.0, 0.7, 5.0])
    log_z = float(special.gammaln(k).sum())
    draws = np.log(np.random.default_rng(4).gamma(k, size=(4, 1000, 3)))
    est = bridge_sampling(lambda y: float(np.sum(k * y - np.exp(y))), draws, seed=5)
    assert abs(est.log_ml - log_z) <= 4 * est.sd
    assert est.sd_rmse > 0 and est.sd >= est.sd_rmse


def test_seeded_and_the_error_estimate_is_calibrated():
    """Same seed, same estimate; over fresh posterior draws the estimates scatter
    about as much as the reported sd says (within a factor of 2), and centre on log Z."""
    k = np.array([1.5, 0.8])
    log_z = float(special.gammaln(k).sum())

    def log_density(y):
        return (k * y - np.exp(y)).sum(axis=-1)

    rng = np.random.default_rng(6)
    estimates, sds = [], []
    for i in range(40):
        draws = np.log(rng.gamma(k, size=(2, 100, 2)))
        est = bridge_sampling(log_density, draws, seed=i, vectorised=True, repetitions=1)
        again = bridge_sampling(log_density, draws, seed=i, vectorised=True, repetitions=1)
        assert again.log_ml == est.log_ml
        estimates.append(est.log_ml)
        sds.append(est.sd_rmse)
    estimates, typical = np.asarray(estimates), float(np.sqrt(np.mean(np.square(sds))))
    spread = float(estimates.std(ddof=1))
    print(f"spread of estimates {spread:.4f}, reported sd {typical:.4f}, mean error {estimates.mean() - log_z:+.4f}")
    assert 0.5 < spread / typical < 2.0
    assert abs(estimates.mean() - log_z) <= 4 * spread / math.sqrt(len(estimates))


def test_refuses_bad_draws():
    _, _, log_density, _ = _mvn(2)
    with pytest.raises(ValueError, match="chain, draw, dim"):
        bridge_sampling(log_density, np.zeros((10, 2)), seed=1, vectorised=True)
    draws = np.random.default_rng(1).normal(size=(2, 50, 2))
    draws[0, 3, 1] = np.nan
    with pytest.raises(Exception, match="not finite"):
        bridge_sampling(log_density, draws, seed=1, vectorised=True)


def _conjugate(y, sigma, m0, s0):
    """Normal mean with known sd (likelihood as a Potential, as the package's models
    write it) plus a positive parameter switched off by data (the additive model's
    interaction): the evidence is the normal marginal density of y."""
    with pm.Model() as model:
        mu = pm.Normal("mu", m0, s0)
        off = pm.Data("switch", 0.0)
        scale = pm.HalfNormal("scale", 1.0, shape=2)
        pm.Potential("lik", pm.logp(pm.Normal.dist(mu + off * scale.sum(), sigma), y).sum())
    exact = stats.multivariate_normal.logpdf(y, np.full(y.size, m0),
                                             sigma**2 * np.eye(y.size) + s0**2 * np.ones((y.size, y.size)))
    return model, exact


def test_bridge_log_ml_on_exact_posterior_draws_of_a_conjugate_model():
    rng = np.random.default_rng(11)
    sigma, m0, s0 = 1.5, 1.0, 2.0
    y = rng.normal(2.5, sigma, size=8)
    model, exact = _conjugate(y, sigma, m0, s0)
    precision = 1 / s0**2 + y.size / sigma**2
    post_mean = (m0 / s0**2 + y.sum() / sigma**2) / precision
    mu = rng.normal(post_mean, precision**-0.5, size=(4, 1000))
    scale = np.abs(rng.normal(0, 1, size=(4, 1000, 2)))          # its posterior is its prior
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"mu": (("chain", "draw"), mu), "scale": (("chain", "draw", "scale_dim_0"), scale)})})
    layout, draws = unconstrained_draws(model, tree)
    assert [v.name for v, _ in layout] == ["mu", "scale_log__"] and draws.shape == (4, 1000, 3)
    np.testing.assert_allclose(draws[..., 1:], np.log(scale))  # the log transform, per element
    est = bridge_log_ml(model, tree, seed=7)
    print(f"analytic {exact:.4f}; bridge {est.log_ml:.4f} (sd {est.sd:.4f}, repetitions {est.estimates})")
    assert abs(est.log_ml - exact) <= 4 * est.sd
    assert est.seconds > 0
    # without the switched-off parameter's draws the density is incomplete: refused
    with pytest.raises(Exception, match="no draws of 'scale'"):
        bridge_log_ml(model, xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()[["mu"]]}), seed=1)


def test_report_cli_chooses_the_evidence_method():
    from bayes.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["report"]).evidence == "bridge"
    assert parser.parse_args(["report", "--evidence", "smc"]).evidence == "smc"
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--evidence", "laplace"])


def test_evidence_labels_of_old_and_new_tables():
    import pandas as pd

    from bayes.compare import evidence_label
    from bayes.report import evidence_text

    assert evidence_label(pd.DataFrame({"evidence": ["bridge sampling", None]})) == "bridge sampling"
    assert evidence_label(pd.DataFrame({"smc_draws": [200]})) == "SMC"       # saved before bridge sampling
    assert evidence_text({"smc_draws": 200, "smc_chains": 2}).startswith("SMC, 2 chains × 200 particles")
    assert evidence_text({"evidence": "bridge", "bridge_reps": 3}).startswith("bridge sampling on the posterior")
