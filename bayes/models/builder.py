"""Build the PyMC model for one cell (factorial / additive) or many (joint).

On its link scale (log for positive values, logit for percentages and
rates) each arm of a cell is ``eta = baseline + sum(agent effects) +
interaction``.  Families:

* ``factorial``: one cell, independent priors, interaction per combination;
* ``additive``: the same without interactions;
* ``joint``: every cell of every study in one model.  Agent effects are
  shared by (endpoint, agent) with study-level random deviations when an
  endpoint appears in several studies; each interaction is written as a
  sign-aligned, standardised synergy ``delta = -s * gamma / sigma`` (``s`` = +1
  when lower is better, ``sigma`` the interaction prior's sd on that link),
  and the deltas of all endpoints are partially pooled around a population
  synergy ``synergy_mean`` with spread ``synergy_sd`` (non-centred).

Unknown n is summed out per study x cohort (:mod:`bayes.nprior`): the
cohort's log-likelihood at each candidate n is combined with the prior
weights by ``logsumexp`` in a ``pm.Potential``, and the posterior weights of
n are kept as a Deterministic.  Per-cell variables carry the prefix ``c<i>_``
(dims too) so :func:`split_cells` can hand each cell an ordinary ArviZ tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.special import softmax

from bayes import likelihoods as lik
from bayes.models.cells import Cell
from bayes.nprior import CohortN
from bayes.priors import Prior, PriorSet

MODEL_NAMES = ("factorial", "additive", "joint", "link")
INTERACTION_SWITCH = "interaction_on"   # pm.Data: 1 in the factorial model, 0 in the additive one


def prefix(i: int) -> str:
    return f"c{i}_"


def prior_key(parameter: str, link: str) -> str:
    return parameter if link == "log" else f"{parameter}_logit"


SIGN_ALIGNED = ("Normal", "StudentT", "Laplace")


def interaction_prior(priors: PriorSet, cell: Cell) -> Prior:
    """The cell's interaction prior with its location read as sign-aligned.

    A prior set's ``interaction`` mu is in synergy units (positive = synergy),
    so the same optimistic file means "better than additive" for a volume
    (lower is better: negative log interaction) and for a survival rate
    (higher is better: positive logit interaction).  Symmetric location
    families only; mu = 0 (the default set) is unchanged.
    """
    prior = priors[prior_key("interaction", cell.link)]
    mu = prior.kwargs.get("mu")
    if prior.dist in SIGN_ALIGNED and isinstance(mu, float) and mu != 0.0:
        return Prior(prior.dist, {**prior.kwargs, "mu": -cell.sign * mu})
    return prior


@dataclass(frozen=True)
class ModelSpec:
    """What a built model contains: the cells and the n groups, in order."""

    family: str
    cells: tuple[Cell, ...]
    groups: tuple[CohortN, ...]

    def group_of(self, cell: Cell) -> int:
        return next(i for i, g in enumerate(self.groups)
                    if (g.study, g.cohort) == (cell.study, cell.cohort))

    def data(self) -> dict[str, np.ndarray]:
        """Every pm.Data value, by name (swap these into a compiled model)."""
        out = {}
        for i, cell in enumerate(self.cells):
            group = self.groups[self.group_of(cell)]
            from bayes.nprior import n_matrix

            for name, value in cell.inputs(n_matrix(cell.rows, group.grid)).items():
                out[prefix(i) + name] = value
        for j, group in enumerate(self.groups):
            out[f"n_log_weight_{j}"] = group.log_weight
        if self.family in ("factorial", "additive"):
            for i, cell in enumerate(self.cells):
                if cell.design.combos:
                    out[prefix(i) + INTERACTION_SWITCH] = np.asarray(float(self.family == "factorial"))
        return out

    def switched_off(self) -> list[str]:
        """Variables sampled only from their prior (the additive model's interactions)."""
        if self.family != "additive":
            return []
        return [prefix(i) + "interaction" for i, cell in enumerate(self.cells) if cell.design.combos]

    def coords(self) -> dict[str, list]:
        """Coordinate labels of every dim the model defines (joint-model units are added there)."""
        coords = {}
        for i, cell in enumerate(self.cells):
            coords[prefix(i) + "arm"] = list(cell.design.arms)
            coords[prefix(i) + "agent"] = list(cell.design.agents)
            coords[prefix(i) + "combo"] = list(cell.design.combos)
        for j, group in enumerate(self.groups):
            coords[f"n_grid_{j}"] = [int(v) for v in group.grid]
        if self.family == "joint":
            coords["agent_unit"] = [f"{e}: {a}" for e, a in self.units("agent")[0]]
            coords["synergy_unit"] = [f"{e}: {c}" for e, c in self.units("combo")[0]]
        return coords

    def units(self, what: str) -> tuple[list[tuple[str, str]], dict[tuple[str, str], set[str]]]:
        """Joint-model pooling units ``(endpoint, agent)`` or ``(endpoint, combination)``
        in first-seen order, and the studies each appears in."""
        units, studies = [], {}
        for cell in self.cells:
            labels = cell.design.agents if what == "agent" else cell.design.combo_keys
            for label in labels:
                unit = (cell.endpoint, label)
                if unit not in studies:
                    units.append(unit)
                    studies[unit] = set()
                studies[unit].add(cell.study)
        return units, studies

    @property
    def structure(self) -> tuple:
        """Equal structures give the same model up to data values and labels, so they
        can share one compiled model.  For the joint model that includes which cells
        share pooling units and groups, and each endpoint's benefit direction."""
        family = "factorial" if self.family == "additive" else self.family   # same graph, see _independent_effects
        base = (family, tuple(c.structure for c in self.cells),
                tuple(len(g.grid) for g in self.groups),
                tuple(self.group_of(c) for c in self.cells))
        if self.family != "joint":
            return base

        def index(values):
            order = list(dict.fromkeys(values))
            return tuple(order.index(v) for v in values)

        studies = index([c.study for c in self.cells])
        endpoints = index([c.endpoint for c in self.cells])
        agents = list(dict.fromkeys(a for c in self.cells for a in c.design.agents))
        return base + (studies, endpoints, tuple(c.better for c in self.cells),
                       tuple(tuple(agents.index(a) for a in c.design.agents) for c in self.cells))


def _cell_likelihood(i: int, cell: Cell, eta, data: dict, priors: PriorSet):
    """(log-likelihood (G, arm), arm_mean on the model scale) of one cell."""
    p, dims = prefix(i), f"{prefix(i)}arm"
    if cell.kind == "rate":
        k = pm.Data(p + "k", data[p + "k"])
        n = pm.Data(p + "n", data[p + "n"])
        return lik.binomial_loglik(k, n, eta), pt.sigmoid(eta)
    obs_mean = pm.Data(p + "obs_mean", data[p + "obs_mean"], dims=dims)
    obs_var = pm.Data(p + "obs_var", data[p + "obs_var"])
    n = pm.Data(p + "n", data[p + "n"])
    if cell.kind == "positive":
        sd_log = priors["sd_log"].create_variable(p + "sd_log", dims=dims)
        mean, var = lik.lognormal_moments(eta, sd_log)
        skew, kurt = lik.lognormal_shape(sd_log)
        edge = None
    else:
        precision = priors["precision"].create_variable(p + "precision", dims=dims)
        mean, var = lik.beta_moments(pt.sigmoid(eta), precision)
        skew, kurt = lik.beta_shape(mean, precision)
        edge = lik.beta_edge_shape(mean, precision)
    log_jacobian = pm.Data(p + "log_jacobian", data[p + "log_jacobian"])    # log n for SE-reported arms
    # squared steps the mean and SD were printed to (rounding, see bayes.likelihoods)
    mean_step2 = pm.Data(p + "mean_step2", data[p + "mean_step2"])
    sd_step2 = pm.Data(p + "sd_step2", data[p + "sd_step2"])
    loglik = lik.summary_loglik(obs_mean, obs_var, mean, var, n, skew, kurt, edge,
                                leptokurtic=cell.kind == "positive", mean_step2=mean_step2, sd_step2=sd_step2)
    return loglik + log_jacobian, mean


def _independent_effects(i: int, cell: Cell, priors: PriorSet, data: dict | None = None):
    """Baseline + agent effects + (switched) interaction of one factorial/additive cell.

    The additive model is the factorial graph with the interaction switched
    off by data (``c<i>_interaction_on`` = 0): the interaction is then drawn
    from its prior alone and touches nothing else, so the posterior of every
    other parameter is the additive model's, and one compiled model serves
    both families.  Additive fits drop those prior draws from their output.
    ``data=None`` (the link model's other cells): the interaction always on.
    """
    p, d = prefix(i), cell.design
    baseline = priors[prior_key("baseline", cell.link)].create_variable(p + "baseline")
    agent = priors[prior_key("agent_effect", cell.link)].create_variable(p + "agent_effect", dims=p + "agent")
    eta = baseline + pt.dot(d.agent_matrix, agent)
    if d.combos:
        gamma = interaction_prior(priors, cell).create_variable(p + "interaction", dims=p + "combo")
        effect = pt.dot(d.interaction_matrix, gamma)
        if data is not None:
            effect = pm.Data(p + INTERACTION_SWITCH, data[p + INTERACTION_SWITCH]) * effect
        eta = eta + effect
    return eta


def build_model(spec: ModelSpec, priors: PriorSet, *, pointwise: bool = False) -> pm.Model:
    """The PyMC model of ``spec``.

    ``pointwise=True`` also keeps each cell's log-likelihood per candidate n
    and arm as a Deterministic ``c<i>_pointwise`` (dims ``n_grid_<j>``,
    ``c<i>_arm``), for model comparison (:mod:`bayes.compare`).  It adds no
    random variable and no density term, so it changes neither the posterior
    nor the default graph that compiled models are cached on.
    """
    data = spec.data()
    with pm.Model(coords=spec.coords()) as model:
        if spec.family == "joint":
            from bayes.models.joint import joint_effects

            etas = joint_effects(spec, priors)
        elif spec.family == "link":
            from bayes.models.link import link_effects

            etas = link_effects(spec, priors)
        else:
            etas = [_independent_effects(i, c, priors, data) for i, c in enumerate(spec.cells)]
        per_group = [[] for _ in spec.groups]
        for i, (cell, eta) in enumerate(zip(spec.cells, etas)):
            loglik, arm_mean = _cell_likelihood(i, cell, eta, data, priors)
            pm.Deterministic(prefix(i) + "arm_mean", arm_mean, dims=prefix(i) + "arm")
            if pointwise:
                pm.Deterministic(prefix(i) + "pointwise", loglik,
                                 dims=(f"n_grid_{spec.group_of(cell)}", prefix(i) + "arm"))
            per_group[spec.group_of(cell)].append(loglik.sum(axis=1))
        for j, terms in enumerate(per_group):
            log_w = pm.Data(f"n_log_weight_{j}", data[f"n_log_weight_{j}"], dims=f"n_grid_{j}")
            total = log_w + sum(terms)
            pm.Potential(f"loglik_{j}", pt.logsumexp(total))
            pm.Deterministic(f"n_weight_{j}", softmax(total), dims=f"n_grid_{j}")
    return model


# How at_draws compiles: only merging duplicated nodes, then NumPy.  Every op sees a
# whole block of draws, so rewriting cannot pay for itself: compiling the seed's joint
# and link log-likelihoods took 1.0-1.1 s with FAST_COMPILE's rewrites against 0.2 s,
# for the same 0.3 s of evaluation over 4000 draws.  The values differ from the
# rewritten graph's in rounding only (up to 4e-7 at prior draws of log-likelihoods in
# the thousands): FAST_COMPILE distributes products over sums
# (local_greedy_distributor), which the sampled model leaves out too
# (bayes.compiled.SKIPPED_REWRITES).
AT_DRAWS_MODE = "merge"


def at_draws(inputs: list, outputs: list, draws, *, chunk: int = 1000) -> list[np.ndarray]:
    """``outputs`` (tensors of one model) at every draw of ``draws``, vectorised over the draws.

    ``inputs`` are the model variables the draws give values for
    (``draws[input.name]``, an xarray Dataset with dims ``chain``, ``draw``
    and the variable's own); each output comes back as an array (chain,
    draw, *its shape).  Every input gets a leading axis of all chain x draw
    values, the graph is vectorised over it (PyTensor's ``vectorize_graph``)
    and compiled with no rewrite but merging duplicated nodes, evaluated
    with NumPy (:data:`AT_DRAWS_MODE`), so one call computes every draw.
    PyMC's ``compute_deterministics`` and ``compute_log_prior`` compile the
    graph with the full rewrite pipeline and then call it once per draw,
    which made the pointwise log-likelihoods of PSIS-LOO most of the
    report's model comparison.  The draws go through in blocks of
    ``chunk``, which bounds the memory of the intermediate arrays (a cell's
    log-likelihood is arms x candidate n per draw).
    """
    import pytensor
    from pytensor.compile.mode import Mode
    from pytensor.graph.replace import vectorize_graph

    batched = [pt.tensor(name=v.name, dtype=v.dtype, shape=(None, *v.type.shape)) for v in inputs]
    function = pytensor.function(batched, vectorize_graph(list(outputs), replace=dict(zip(inputs, batched))),
                                 mode=Mode(linker="py", optimizer=AT_DRAWS_MODE), on_unused_input="ignore")
    chains, count = draws.sizes["chain"], draws.sizes["draw"]
    values = []
    for var in inputs:
        da = draws[var.name].transpose("chain", "draw", ...)
        values.append(da.to_numpy().reshape(chains * count, *da.shape[2:]).astype(var.dtype))
    blocks = [function(*(v[start:start + chunk] for v in values)) for start in range(0, chains * count, chunk)]
    outs = [np.concatenate([np.asarray(block[k]) for block in blocks]) for k in range(len(outputs))]
    return [out.reshape(chains, count, *out.shape[1:]) for out in outs]
