"""Latent effects of the NK-link model (one study, all its cells in one model).

Question: does NK activity carry the antitumour synergy?  Per arm, a latent
immune activation

    a(arm) = sum(alpha_agent in the arm) + alpha_combo(arm)      (control = 0)

is measured by the immune readouts (:data:`IMMUNE`) and acts on the outcome
cells (:data:`OUTCOME`) through a link coefficient ``theta``:

* immune readout e: ``eta_e = baseline_e + lambda_e * a + u_e``.  The first
  readout (``nk_lysis`` when present) is the reference: ``lambda = 1``, so
  ``a`` is in that readout's link units (logit of % lysis); the others have
  ``lambda_e ~ HalfNormal(1)`` (more activation = more lysis / more IFN).
  ``u_e(arm) ~ Normal(0, tau_e)`` (centred, non-control arms only, control is
  absorbed by the baseline), ``tau_e ~ LogNormal(log 0.15, 0.5)``: how far a readout
  may depart from the shared pattern (IFN-gamma in the seed is super-additive
  but sub-multiplicative while lysis is clearly super-additive; the residual
  absorbs that instead of forcing it into ``a``).
* outcome cell T: ``eta_T = baseline_T + beta_T . x + gamma_T . z + theta_T * a``
  with direct (non-NK) agent effects ``beta`` and direct interaction
  ``gamma`` (the prior set's ``agent_effect`` / ``interaction`` priors on the
  cell's link) and ``theta_T ~ Normal(0, 1)`` per outcome endpoint.  The
  sampler sees the totals ``beta + theta * alpha`` and ``gamma + theta *
  alpha_combo`` that the outcome measures (:func:`_total_effects`; same
  posterior, far fewer leapfrog steps).
* other cells: independent factorial effects, as in the factorial model.

The alphas take the prior set's ``agent_effect`` / ``interaction`` priors on
the reference readout's link, so the reference readout gets the same prior
on its arm pattern as in the factorial model.

Identifiability.  The outcome's three contrasts (two agents, one
combination) are ``beta + theta * alpha`` and ``gamma + theta * alpha_AB``:
five unknowns for three numbers, i.e. the likelihood alone cannot separate
direct from NK-mediated effects.  The immune readouts pin ``alpha``; the
priors on ``beta`` / ``gamma`` (centred on 0) and on ``theta`` then act as a
ridge penalty: the posterior prefers explaining the outcome pattern by
``theta * a`` in proportion to how well the outcome's contrasts line up with
the activation pattern.  ``theta`` is therefore *partially* identified; how
much the data moved it is reported as prior-versus-posterior sd
(:mod:`bayes.link`).  The sign of ``a`` is fixed by the positive loadings,
its scale by the reference loading of 1.

Model-level variables (no cell prefix, kept by ``split_cells`` in the model
tree): ``alpha_agent`` (latent_agent), ``alpha_combo`` (latent_combo),
``activation`` (latent_arm), ``loading`` and ``residual_sd`` (immune),
``immune_residual`` (the non-control arms' ``u``, readout by readout),
``link`` (outcome), ``nk_interaction`` and ``direct_interaction`` (outcome x
latent_combo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes.errors import InputError
from bayes.models.builder import ModelSpec, _independent_effects, interaction_prior, prefix, prior_key
from bayes.models.cells import Cell
from bayes.nprior import CohortN
from bayes.priors import PriorSet

IMMUNE = {"nk_lysis", "ifn_gamma"}
OUTCOME = {"tumor_volume", "tumour_volume", "tumor_weight", "survival"}
IMMUNE_ORDER = ("nk_lysis", "ifn_gamma")   # the first present is the reference readout
THETA_SD = 1.0
LOADING_SD = 1.0
RESIDUAL_SD = 0.3


def role(cell: Cell) -> str:
    if cell.endpoint in IMMUNE:
        return "immune"
    if cell.endpoint in OUTCOME:
        return "outcome"
    return "other"


@dataclass(frozen=True)
class LinkLayout:
    """Which cells play which role, and the latent arms in a fixed agent order."""

    immune: tuple[int, ...]        # cell indices, reference readout first
    outcome: tuple[int, ...]
    other: tuple[int, ...]
    agents: tuple[str, ...]
    combos: tuple[frozenset, ...]

    @property
    def combo_labels(self) -> list[str]:
        return ["+".join(a for a in self.agents if a in c) for c in self.combos]

    @property
    def arm_labels(self) -> list[str]:
        return ["control", *self.agents, *self.combo_labels]

    def matrices(self, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
        """(arm x latent agent, arm x latent combo) indicators for one cell."""
        d = cell.design
        x = np.array([[1.0 if a in ag else 0.0 for a in self.agents] for ag in d.arm_agents])
        z = np.array([[1.0 if len(ag) >= 2 and frozenset(ag) == c else 0.0 for c in self.combos]
                      for ag in d.arm_agents]).reshape(len(d.arm_agents), len(self.combos))
        return x, z


def layout(cells: tuple[Cell, ...]) -> LinkLayout:
    """Roles of the cells of one study; refuses what the link model cannot fit."""
    if not cells:
        raise InputError("link model", "no cells to fit")
    studies = sorted({c.study for c in cells})
    if len(studies) > 1:
        raise InputError(cells[0].rows.attrs.get("source", "study table"),
                         f"the link model fits one study at a time; this table has {len(studies)} "
                         f"({', '.join(studies)}); select one study", column="study")
    roles = [role(c) for c in cells]
    immune = [i for i, r in enumerate(roles) if r == "immune"]
    outcome = tuple(i for i, r in enumerate(roles) if r == "outcome")
    if not immune or not outcome:
        raise InputError(studies[0], "the link model needs at least one immune readout "
                         f"({', '.join(sorted(IMMUNE))}) and one outcome "
                         f"({', '.join(sorted(OUTCOME))}); found {', '.join(c.endpoint for c in cells)}",
                         column="endpoint")
    immune.sort(key=lambda i: IMMUNE_ORDER.index(cells[i].endpoint))
    ref = cells[immune[0]].design
    agents = tuple(ref.agents)
    combos = tuple(frozenset(ag) for ag in ref.arm_agents if len(ag) >= 2)
    for i in immune + list(outcome):
        d = cells[i].design
        if set(d.agents) != set(agents) or {frozenset(a) for a in d.arm_agents if len(a) >= 2} != set(combos):
            raise InputError(cells[i].study, f"the link model needs the same arms in every immune and "
                             f"outcome endpoint; {cells[i].endpoint} has {', '.join(d.arms)}, "
                             f"{cells[immune[0]].endpoint} has {', '.join(ref.arms)}", column="agents")
    other = tuple(i for i, r in enumerate(roles) if r == "other")
    return LinkLayout(tuple(immune), outcome, other, agents, combos)


@dataclass(frozen=True)
class LinkSpec(ModelSpec):
    """A ModelSpec whose structure also records the roles and agent mapping,
    so a compiled link model is only re-used for a table with the same layout,
    and whose coords label the model-level dims."""

    @property
    def layout(self) -> LinkLayout:
        return layout(self.cells)

    @property
    def structure(self) -> tuple:
        lay = self.layout
        agents = tuple(tuple(lay.agents.index(a) for a in c.design.agents) for c in self.cells)
        return super().structure + (lay.immune, lay.outcome, lay.other, agents,
                                    tuple(c.endpoint for c in self.cells), tuple(c.better for c in self.cells))

    def coords(self) -> dict[str, list]:
        coords = super().coords()
        lay = self.layout
        coords["latent_agent"] = list(lay.agents)
        coords["latent_combo"] = lay.combo_labels
        coords["latent_arm"] = lay.arm_labels
        coords["immune"] = [self.cells[i].endpoint for i in lay.immune]
        coords["outcome"] = [self.cells[i].endpoint for i in lay.outcome]
        return coords


def link_spec(cells, groups) -> LinkSpec:
    cells, groups = tuple(cells), tuple(groups)
    layout(cells)   # validate early, with a clear message
    return LinkSpec("link", cells, groups)


def _ensure_coords(spec: ModelSpec) -> LinkLayout:
    lay = layout(spec.cells)
    model = pm.modelcontext(None)
    coords = LinkSpec(spec.family, spec.cells, spec.groups).coords()
    for name in ("latent_agent", "latent_combo", "latent_arm", "immune", "outcome"):
        if name not in model.coords:
            model.add_coord(name, coords[name])
    return lay


def link_effects(spec: ModelSpec, priors: PriorSet) -> list:
    """Link-scale arm values (one tensor per cell) of the NK-link model."""
    lay = _ensure_coords(spec)
    cells = spec.cells
    ref_link = cells[lay.immune[0]].link
    alpha = priors[prior_key("agent_effect", ref_link)].create_variable("alpha_agent", dims="latent_agent")
    alpha_c = priors[prior_key("interaction", ref_link)].create_variable("alpha_combo", dims="latent_combo")
    n_agents, n_combos = len(lay.agents), len(lay.combos)
    latent = np.vstack([np.zeros((1, n_agents + n_combos)),
                        np.hstack([np.eye(n_agents), np.zeros((n_agents, n_combos))]),
                        np.hstack([np.zeros((n_combos, n_agents)), np.eye(n_combos)])])
    # combination arms' activation includes their agents' main effects
    for k, combo in enumerate(lay.combos):
        latent[1 + n_agents + k, :n_agents] = [1.0 if a in combo else 0.0 for a in lay.agents]
    pm.Deterministic("activation", pt.dot(latent, pt.concatenate([alpha, alpha_c])), dims="latent_arm")

    def activation(cell):
        x, z = lay.matrices(cell)
        return pt.dot(x, alpha) + pt.dot(z, alpha_c)

    etas: list = [None] * len(cells)
    n_imm = len(lay.immune)
    if n_imm > 1:
        free_loading = pm.HalfNormal("loading_free", LOADING_SD, shape=n_imm - 1)
        loading = pm.Deterministic("loading", pt.concatenate([pt.ones(1), free_loading]), dims="immune")
    else:
        loading = pm.Deterministic("loading", pt.ones(1), dims="immune")
    # boundary-avoiding (LogNormal, median RESIDUAL_SD / 2): with a HalfNormal the
    # residuals' funnel near 0 showed (R-hat 1.013, ESS 226 on the seed)
    residual_sd = pm.LogNormal("residual_sd", np.log(RESIDUAL_SD / 2), 0.5, dims="immune")
    n_arms = [len(cells[i].design.arms) - 1 for i in lay.immune]
    # centred: the immune data pin each residual, so a non-centred z = u / tau would
    # tie z to tau along a curved ridge (on the seed at target_accept 0.95, with the
    # totals below: ESS halved, 26 vs 18 leapfrog steps per draw); the LogNormal keeps
    # tau off the centred funnel's neck at 0 (SBC: no divergences at 0.99, docs/validation.md)
    which = np.repeat(np.arange(n_imm), n_arms)
    residuals = pm.Normal("immune_residual", 0.0, residual_sd[which], shape=sum(n_arms))
    start = 0
    for k, i in enumerate(lay.immune):
        cell, p = cells[i], prefix(i)
        baseline = priors[prior_key("baseline", cell.link)].create_variable(p + "baseline")
        u = pt.concatenate([pt.zeros(1), residuals[start:start + n_arms[k]]])
        start += n_arms[k]
        pm.Deterministic(p + "residual", u, dims=p + "arm")
        etas[i] = baseline + loading[k] * activation(cell) + u

    theta = pm.Normal("link", 0.0, THETA_SD, dims="outcome")
    directs = []
    for k, i in enumerate(lay.outcome):
        cell, p, d = cells[i], prefix(i), cells[i].design
        baseline = priors[prior_key("baseline", cell.link)].create_variable(p + "baseline")
        agent_prior = priors[prior_key("agent_effect", cell.link)]
        gamma_prior = interaction_prior(priors, cell) if d.combos else None
        cell_combos = [frozenset(ag) for ag in d.arm_agents if len(ag) >= 2]
        if agent_prior.shiftable and (gamma_prior is None or gamma_prior.shiftable):
            # sample the contrasts the outcome measures (direct + NK-carried): see _total_effects
            eta, gamma = _total_effects(p, d, theta[k], alpha[[lay.agents.index(a) for a in d.agents]],
                                        alpha_c[[lay.combos.index(c) for c in cell_combos]],
                                        agent_prior, gamma_prior)
            eta = baseline + eta
        else:
            beta = agent_prior.create_variable(p + "agent_effect", dims=p + "agent")
            eta = baseline + pt.dot(d.agent_matrix, beta) + theta[k] * activation(cell)
            if gamma_prior is not None:
                gamma = gamma_prior.create_variable(p + "interaction", dims=p + "combo")
                eta = eta + pt.dot(d.interaction_matrix, gamma)
        if d.combos:
            # the direct interaction in latent-combo order
            directs.append(gamma[[cell_combos.index(c) for c in lay.combos]])
        else:
            directs.append(pt.zeros(n_combos))
        etas[i] = eta
    direct = pm.Deterministic("direct_interaction", pt.stack(directs), dims=("outcome", "latent_combo"))
    nk = pm.Deterministic("nk_interaction", theta[:, None] * alpha_c[None, :], dims=("outcome", "latent_combo"))
    pm.Deterministic("total_interaction", direct + nk, dims=("outcome", "latent_combo"))

    for i in lay.other:
        etas[i] = _independent_effects(i, cells[i], priors)
    return etas


def _total_effects(p: str, design, theta, alpha, alpha_c, agent_prior, gamma_prior):
    """Direct agent effects and interaction of an outcome cell, sampled as the
    totals the outcome measures.

    The outcome's contrasts are ``beta + theta * alpha`` (agents) and ``gamma +
    theta * alpha_c`` (combinations), and only these totals are pinned by the
    data: parameterised by ``beta`` and ``gamma`` the posterior is a narrow
    curved ridge along which NUTS needs small steps (on the seed at
    target_accept 0.99, about 60 leapfrog steps per draw; 36 in these
    coordinates with the centred immune residuals).  So the free variables are the
    totals, ``<p>agent_total = beta + theta * alpha`` and ``<p>interaction_total
    = gamma + theta * alpha_c``, whose prior given ``theta`` and the alphas is
    the direct effect's prior moved by ``theta * alpha`` (a location family,
    :attr:`bayes.priors.Prior.shiftable`); ``beta`` and ``gamma`` are
    deterministic.  The map is a shear with unit Jacobian, so the posterior is
    the same; only the sampler's coordinates change.  ``alpha`` and
    ``alpha_c`` come in the cell's agent and combination order.

    Returns the cell's arm values less its baseline, and ``gamma`` (None
    without a combination arm).
    """
    nk = theta * alpha
    total = agent_prior.create_variable(p + "agent_total", dims=p + "agent", shift=nk)
    pm.Deterministic(p + "agent_effect", total - nk, dims=p + "agent")
    eta = pt.dot(design.agent_matrix, total)
    if gamma_prior is None:
        return eta, None
    nk_c = theta * alpha_c
    total_c = gamma_prior.create_variable(p + "interaction_total", dims=p + "combo", shift=nk_c)
    gamma = pm.Deterministic(p + "interaction", total_c - nk_c, dims=p + "combo")
    return eta + pt.dot(design.interaction_matrix, total_c), gamma


__all__ = ["IMMUNE", "OUTCOME", "LinkLayout", "LinkSpec", "layout", "link_effects", "link_spec", "role",
           "CohortN"]
