"""Shared cases for the evidence estimators' tests (SMC, bridge sampling, Savage-Dickey).

``conjugate_normal``: a normal mean with known sd, prior Normal(m0, s0),
likelihood written as a Potential (as bayes' models write theirs), whose
evidence is exactly the multivariate normal density of the data,
N(y; m0, sigma^2 I + s0^2 11').  ``simulated_cell_fits``: one simulated cell
fitted with and without its interaction.
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


def simulated_cell_fits(quick, cache):
    """Additive and factorial fits (one core) of one simulated tumour-volume cell with a
    modest interaction: Savage-Dickey's BF10 must equal ML(factorial) / ML(additive)."""
    import dataclasses
    import math

    import bayes
    from bayes.simulate import endpoint_truth, simulate_study

    truth = endpoint_truth("tumor_volume", "positive", "lower", baseline=math.log(1000.0),
                           effects={"A": -0.2, "B": -0.3}, synergy=0.25, dispersion=0.25)
    frame = simulate_study([truth], 8, np.random.default_rng(3), digits=0)
    study = bayes.study_from_frame(frame, name="simulated cell")
    settings = dataclasses.replace(quick, cores=1)
    return {m: bayes.fit(study, model=m, settings=settings, cache=cache).fits for m in ("additive", "factorial")}
