"""Latent effects of the joint hierarchical model (all cells in one model).

Units of pooling:

* agent units ``(endpoint, agent)``: one mean effect each, with independent
  priors from the prior set; when the unit appears in two or more studies,
  each study's effect deviates from the mean by ``Normal(0, study_sd_effect)``;
* synergy units ``(endpoint, combination)``: the sign-aligned standardised
  interaction ``delta ~ Normal(synergy_mean, synergy_sd)`` (positive =
  synergy, in units of that link's interaction prior sd); each study's
  interaction deviates by ``Normal(0, study_sd_synergy)`` (same units) when
  several studies share the unit.  The link-scale interaction is
  ``gamma = -s * sigma * delta``.
* baselines and nuisance parameters stay per cell.

Parameterisation: the synergy layer is partially non-centred, each unit by
how well its tables pin it down (:func:`_pooled_synergy`); study deviations
are centred.
The spreads have boundary-avoiding priors (see bayes/priors/default.yaml), so
the centred parts do not fall into the funnel at zero spread.  Effect and
interaction priors must be Normal here (their mu and sigma define the
units); other priors are used as given.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes.errors import InputError
from bayes.models.builder import SYNERGY_DATA_SE, ModelSpec, prefix, prior_key
from bayes.priors import PRIOR_DATA_SUFFIX, PriorSet


def _normal_params(priors: PriorSet, key: str) -> tuple[float, float]:
    prior = priors[key]
    if prior.dist != "Normal" or not all(isinstance(prior.kwargs.get(k), float) for k in ("mu", "sigma")):
        raise InputError(priors.source, f"the joint model needs a Normal prior with numeric mu and sigma "
                         f"for '{key}', not {prior}", column=f"priors.{key}")
    return prior.kwargs["mu"], prior.kwargs["sigma"]


def _study_deviation(name: str, units, studies, spec: ModelSpec, priors: PriorSet):
    """Deviations per (study, unit) for units in >= 2 studies (centred).

    Centred, because each study's data pin its own effects down well (a
    non-centred version diverged at large ``study_sd`` on simulated
    two-study tables); the boundary-avoiding ``study_sd`` prior keeps the
    sampler out of the funnel at 0 that a centred layer would otherwise have.
    """
    shared = [(s, u) for u in units if len(studies[u]) > 1 for s in sorted(studies[u])]
    if not shared:
        return {}
    sd = priors["study_sd"].create_variable(f"study_sd_{name}")
    # the length through the parameters, not shape=: a forward draw can then be
    # vectorised over draws (bayes.prior_predictive.forward_draws)
    dev = pm.Normal(f"study_dev_{name}", 0.0, sd * np.ones(len(shared)))
    return {key: dev[i] for i, key in enumerate(shared)}


def _pooled_synergy(links, data_se, synergy_mean, synergy_sd, priors: PriorSet):
    """Standardised synergy per unit, partially non-centred by how well the data pin it.

    ``delta = mu + sd^(1-w) (raw - w mu)`` with ``raw ~ Normal(w mu, sd^w)``,
    so ``delta ~ Normal(mu, sd)`` for every weight w in [0, 1]: w = 1 is the
    centred form (``raw`` is delta), w = 0 the non-centred one (``raw`` is
    standard normal).  Centring suits a unit whose data pin it down more
    tightly than the spread between units, non-centring one the data say
    little about, and in between the weight ``w = tau^2 / (tau^2 + s^2)``
    makes ``raw`` and the population parameters independent in the normal
    case (Papaspiliopoulos, Roberts and Skold 2003, 2007).  ``s`` is the
    unit's data standard error in its own standardised units
    (:meth:`ModelSpec.synergy_data_se` over the interaction prior's sd) and
    ``tau`` the median of the ``synergy_sd`` prior (``links``: each unit's
    link).  Both are numbers the tables and the prior set give before any
    fit; they enter as data, so one compiled model serves every table and
    prior set.

    On the seed (tumour volume, survival, NK lysis, IFN-gamma) the weights are
    0.92, 0.06, 0.85 and 0.92 with the default prior set, and 0.43, 0.01, 0.39
    and 0.41 with the sceptical one, whose narrower interaction prior makes the
    same tables less informative in its units.  The fixed choice by endpoint
    kind this replaced (centred for mean +- SD, non-centred for event rates:
    the default set's weights rounded) left the sceptical set's refit in the
    funnel at small ``synergy_sd``: divergent transitions in 2 of 4 seeds (the
    report's and 1-3).  Rounding these weights to 0 or 1 gave one of six
    sceptical refits divergences; all non-centred, the default fit failed
    R-hat in 2 of 4.  With these weights, the report's seed and seeds 1-5, 4 x
    1000 draws at 0.95: no divergence in 12 fits (default, and sceptical
    started at the default fit's draws); R-hat 1.0031-1.0113 and 1.0031-1.0122,
    3 of the 12 just above 1.01 (short chains: see
    :data:`bayes.config.RETRY_DRAWS_FACTOR`); bulk / tail ESS >= 1118 / 632
    and >= 607 / 776.
    """
    sigmas = [_normal_params(priors, prior_key("interaction", link))[1] for link in links]
    unit_sigma = pm.Data("synergy_unit_sigma" + PRIOR_DATA_SUFFIX, np.array(sigmas))
    tau = pm.Data("synergy_sd_median" + PRIOR_DATA_SUFFIX, np.asarray(priors["synergy_sd"].median()))
    se = pm.Data(SYNERGY_DATA_SE, data_se) / unit_sigma
    weight = tau**2 / (tau**2 + se**2)
    raw = pm.Normal("synergy_raw", weight * synergy_mean, synergy_sd**weight)
    return pm.Deterministic("synergy", synergy_mean + synergy_sd ** (1 - weight) * (raw - weight * synergy_mean),
                            dims="synergy_unit")


def _study_value(cell, label: str, units, means, deviations: dict):
    """A unit's value in this cell's study: the pooled mean plus the study's deviation, if any."""
    unit = (cell.endpoint, label)
    value = means[units.index(unit)]
    if (cell.study, unit) in deviations:
        value = value + deviations[(cell.study, unit)]
    return value


def joint_effects(spec: ModelSpec, priors: PriorSet) -> list:
    """Link-scale arm values (one tensor per cell) of the joint model."""
    agent_units, agent_studies = spec.units("agent")
    syn_units, syn_studies = spec.units("combo")
    links = {c.endpoint: c.link for c in spec.cells}
    signs = {c.endpoint: c.sign for c in spec.cells}

    mus, sigmas = zip(*(_normal_params(priors, prior_key("agent_effect", links[e])) for e, _ in agent_units))
    # prior numbers enter as data (see bayes.priors.Prior.create_variable): one compiled
    # model serves every prior set with the same distributions
    agent_mean = pm.Normal("agent_effect_mean",
                           mu=pm.Data("agent_effect_mean_mu" + PRIOR_DATA_SUFFIX, np.array(mus)),
                           sigma=pm.Data("agent_effect_mean_sigma" + PRIOR_DATA_SUFFIX, np.array(sigmas)),
                           dims="agent_unit")
    agent_dev = _study_deviation("effect", agent_units, agent_studies, spec, priors)

    delta = None
    if syn_units:
        synergy_mean = priors["synergy_mean"].create_variable("synergy_mean")
        synergy_sd = priors["synergy_sd"].create_variable("synergy_sd")
        delta = _pooled_synergy([links[e] for e, _ in syn_units], spec.synergy_data_se(),
                                synergy_mean, synergy_sd, priors)
    syn_dev = _study_deviation("synergy", syn_units, syn_studies, spec, priors)

    etas = []
    for i, cell in enumerate(spec.cells):
        p, d = prefix(i), cell.design
        baseline = priors[prior_key("baseline", cell.link)].create_variable(p + "baseline")
        effects = [_study_value(cell, agent, agent_units, agent_mean, agent_dev) for agent in d.agents]
        agent = pm.Deterministic(p + "agent_effect", pt.stack(effects), dims=p + "agent")
        eta = baseline + pt.dot(d.agent_matrix, agent)
        if d.combos:
            _, sigma_value = _normal_params(priors, prior_key("interaction", cell.link))
            sigma = pm.Data(p + "interaction_sigma" + PRIOR_DATA_SUFFIX, np.asarray(sigma_value))
            gammas = [-signs[cell.endpoint] * sigma * _study_value(cell, key, syn_units, delta, syn_dev)
                      for key in d.combo_keys]
            gamma = pm.Deterministic(p + "interaction", pt.stack(gammas), dims=p + "combo")
            eta = eta + pt.dot(d.interaction_matrix, gamma)
        etas.append(eta)
    return etas
