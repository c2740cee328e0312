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

Parameterisation: the synergy layer is centred for endpoints reported as
mean +- SD and non-centred for event rates; study deviations are centred.
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
from bayes.models.builder import ModelSpec, prefix, prior_key
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


def _pooled_synergy(units, kinds, synergy_mean, synergy_sd):
    """Standardised synergy per unit, centred where the data are strong.

    Units measured as mean +- SD (positive values, percentages) pin their
    synergy down well, which suits a centred parameterisation; event rates
    from a handful of animals do not, which suits a non-centred one.  Mixing
    the two (Papaspiliopoulos et al. 2007) removed most divergences and the
    slow mixing of ``synergy_sd`` that either choice alone showed on the seed.
    """
    strong = [i for i, (e, _) in enumerate(units) if kinds[e] != "rate"]
    weak = [i for i, (e, _) in enumerate(units) if kinds[e] == "rate"]
    parts = [None] * len(units)
    if strong:
        centred = pm.Normal("synergy_centred", synergy_mean, synergy_sd, shape=len(strong))
        for k, i in enumerate(strong):
            parts[i] = centred[k]
    if weak:
        z = pm.Normal("synergy_z", 0.0, 1.0, shape=len(weak))
        for k, i in enumerate(weak):
            parts[i] = synergy_mean + synergy_sd * z[k]
    return pm.Deterministic("synergy", pt.stack(parts), dims="synergy_unit")


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
    kinds = {c.endpoint: c.kind for c in spec.cells}
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
        delta = _pooled_synergy(syn_units, kinds, synergy_mean, synergy_sd)
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
