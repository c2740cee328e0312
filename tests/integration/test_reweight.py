"""Sensitivity variants by importance reweighting of the headline fit's draws
(:func:`bayes.sensitivity.reweight`) against refitting them.

One joint fit of the built-in study (4 x 500 draws) is the base.  A variant
that changes nothing must give back the base's own numbers (every weight
equal, every stored variable recomputed by the variant's expand function
equal to the sampled one); a variant close to the base (the optimistic
prior set) must agree with a refit within Monte Carlo error; one far from
it (every "±" read as SEM) must be refused, not approximated, and hand over
the draws for its refit to start from.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayes import load_builtin
from bayes.analysis import fit
from bayes.priors import load_prior_set
from bayes.sensitivity import key_results, read_as_se, reweight

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def study():
    return load_builtin("seed")


@pytest.fixture(scope="module")
def settings(quick):
    return dataclasses.replace(quick, draws=500, tune=300)


@pytest.fixture(scope="module")
def base(study, settings, cache):
    return fit(study, model="joint", settings=settings, cache=cache)


def test_an_unchanged_variant_gives_back_the_base_numbers(study, base, cache):
    priors = load_prior_set("default")
    result = reweight(base, priors, study, model="joint", priors=priors, cache=cache)
    assert result.synergy is not None and result.is_ess == pytest.approx(2000.0)
    ours, theirs = key_results(result.synergy), key_results(base.synergy)
    np.testing.assert_allclose(ours["mean"], theirs["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours["p_synergy"], theirs["p_synergy"], rtol=1e-9, atol=1e-12)


def test_a_nearby_prior_set_agrees_with_its_refit(study, base, settings, cache):
    result = reweight(base, load_prior_set("default"), study, model="joint", priors="optimistic", cache=cache)
    assert result.synergy is not None, result.reason
    assert result.pareto_k <= 0.7 and result.is_ess >= 400
    ours = key_results(result.synergy).reset_index(drop=True)
    refit = key_results(fit(study, model="joint", priors="optimistic", settings=settings,
                            cache=cache).synergy).reset_index(drop=True)
    assert list(ours["endpoint"]) == list(refit["endpoint"])
    # Monte Carlo error of each (ESS of several hundred): a quarter of a posterior sd, 0.06 in P
    assert (abs(ours["mean"] - refit["mean"]) <= 0.25 * refit["ci_high"].sub(refit["ci_low"]) / 3.92).all()
    assert (abs(ours["p_synergy"] - refit["p_synergy"]) <= 0.06).all()


def test_a_far_variant_is_refused_not_approximated(study, base, cache):
    result = reweight(base, load_prior_set("default"), read_as_se(study), model="joint", cache=cache)
    assert result.synergy is None
    assert result.pareto_k > 0.7 and "Pareto k" in result.reason
    # the draws are handed over for the refit to start from: the base's, unconstrained
    from bayes.compare import unconstrained_draws
    from bayes.models.builder import build_model

    (spec, raw), = base.fits
    _, x = unconstrained_draws(build_model(spec, load_prior_set("default")), raw)
    assert len(result.init) == 1
    np.testing.assert_array_equal(result.init[0], x.reshape(-1, x.shape[-1]))
    assert result.init[0].shape == (2000, x.shape[-1])
