"""A model whose marginal likelihood is known exactly, for the evidence estimators' tests.

Normal mean with known sd, prior Normal(m0, s0), likelihood written as a
Potential (as bayes' models write theirs): the evidence is the multivariate
normal density of the data, N(y; m0, sigma^2 I + s0^2 11').
"""

import numpy as np
import pymc as pm
from scipy import stats


def conjugate_normal():
    """(model, exact log marginal likelihood); the exact value is -14.30."""
    rng = np.random.default_rng(11)
    sigma, m0, s0 = 1.5, 1.0, 2.0
    y = rng.normal(2.5, sigma, size=8)
    with pm.Model() as model:
        mu = pm.Normal("mu", m0, s0)
        pm.Potential("lik", pm.logp(pm.Normal.dist(mu, sigma), y).sum())
    exact = stats.multivariate_normal.logpdf(y, np.full(y.size, m0),
                                             sigma**2 * np.eye(y.size) + s0**2 * np.ones((y.size, y.size)))
    return model, float(exact)
