"""The Python entry point: study in, fitted result out.

    >>> import bayes
    >>> study = bayes.load_builtin()            # or bayes.read_study("my.csv")
    >>> result = bayes.fit(study, seed=1)       # joint model, n marginalised
    >>> result.synergy                          # one row per endpoint x score
    >>> result.save("out/")                     # posterior.nc, synergy.csv, ...

``model="factorial"`` (or ``"additive"``) fits each study x endpoint on its
own, re-using one compiled model per structure; ``model="joint"`` fits every
cell in one hierarchical model.  ``n`` is ``None`` (marginalise unknown n,
the default), a whole number (assume it), or an :class:`NPrior`.  This
module glues the layers together; the statistics live in ``models``,
``likelihoods``, ``nprior``, ``sampling`` and ``synergy``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes._version import __version__
from bayes.data import Study, consistency_checks
from bayes.models.builder import MODEL_NAMES, ModelSpec
from bayes.models.cells import Cell, cohort_rows, make_cell
from bayes.nprior import CohortN, NPrior, cohort_n
from bayes.priors import PriorSet, load_prior_set
from bayes.results import FitResult, node_name
from bayes.sampling import (DEFAULT_CACHE, ModelCache, Pending, SamplerSettings, diagnose, diagnostics_frame,
                            split_cells, start_sample)
from bayes.synergy import cell_table, pooled_table, summarise_draws

DEFAULT_MODEL = "joint"


def as_nprior(n: NPrior | int | float | None) -> NPrior:
    if isinstance(n, NPrior):
        return n
    return NPrior() if n is None else NPrior.fixed(int(n))


def model_specs(study: Study, model: str, nprior: NPrior) -> list[ModelSpec]:
    """The models one fit needs: one per cell, or one joint model."""
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODEL_NAMES)}")
    cells = [make_cell(study.cell(s, e)) for s, e in study.cells()]
    groups: dict[tuple[str, str], CohortN] = {}
    for cell in cells:
        key = (cell.study, cell.cohort)
        if key not in groups:
            groups[key] = cohort_n(nprior, cohort_rows(study.table, *key))
    if model == "joint":
        return [ModelSpec("joint", tuple(cells), tuple(groups.values()))]
    if model == "link":
        from bayes.models.link import link_spec

        return [link_spec(cells, groups.values())]
    return [ModelSpec(model, (c,), (groups[(c.study, c.cohort)],)) for c in cells]


def fit(study: Study, *, model: str = DEFAULT_MODEL, n: NPrior | int | None = None,
        priors: PriorSet | str = "default", settings: SamplerSettings | None = None,
        ci_prob: float = config.CI_PROB, seed: int | None = None,
        cache: ModelCache | None = None, progress=None, init: list | None = None) -> FitResult:
    """Fit ``model`` to every cell of ``study``; see the module docstring.

    ``seed`` replaces ``settings.seed``; ``progress`` is an optional callable
    taking one line of text, called before each model is sampled.  ``init``:
    a warm start, one array of unconstrained points per sampled model
    (:func:`bayes.sampling.with_initial_points`; a related fit's draws, as
    :func:`bayes.sensitivity.reweight` gives them), or None per model for
    nutpie's usual start; a warm-started model tunes for
    :data:`bayes.config.WARM_TUNE_FRACTION` of ``settings.tune`` steps.
    """
    return start_fit(study, model=model, n=n, priors=priors, settings=settings, ci_prob=ci_prob, seed=seed,
                     cache=cache, progress=progress, init=init).result()


def start_fit(study: Study, *, model: str = DEFAULT_MODEL, n: NPrior | int | None = None,
              priors: PriorSet | str = "default", settings: SamplerSettings | None = None,
              ci_prob: float = config.CI_PROB, seed: int | None = None,
              cache: ModelCache | None = None, progress=None, init: list | None = None) -> Pending:
    """:func:`fit`, started: every model of the fit is compiled and set sampling
    in the background (:func:`bayes.sampling.start_sample`), the next one
    compiling while the first samples; ``result()`` waits and returns the
    :class:`FitResult`, the same as :func:`fit`'s."""
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    if model == "link":
        raise ValueError("the NK-link model reports through bayes.link.fit_link (CLI: bayes link), "
                         "not bayes.fit")
    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    settings = settings or SamplerSettings()
    if seed is not None:
        settings = dataclasses.replace(settings, seed=int(seed))
    settings = settings.for_family(model)
    nprior = as_nprior(n)
    cache = cache or DEFAULT_CACHE
    specs = model_specs(study, model, nprior)
    init = [None] * len(specs) if init is None else list(init)
    if len(init) != len(specs):
        raise ValueError(f"init has {len(init)} entries for {len(specs)} sampled model(s)")
    if settings.sampler != "nutpie":          # PyMC's sampler starts from its own points
        init = [None] * len(specs)
    warm = dataclasses.replace(settings, tune=warm_tune(settings.tune))

    started = []
    for spec, points in zip(specs, init):
        label = "joint model" if spec.family == "joint" else spec.cells[0].endpoint
        key = "joint" if spec.family == "joint" else spec.cells[0].key
        if progress:
            progress(f"sampling {model} model: {label if spec.family != 'joint' else f'{len(spec.cells)} cells'}")
        started.append((spec, label, start_sample(spec, prior_set, settings=settings if points is None else warm,
                                                  key=key, cache=cache, init=points)))
    compilations = cache.compilations       # as of now: other work may compile while these sample
    n_warm = sum(p is not None for p in init)
    if not n_warm:
        start = "PyMC's support point, jittered"
    elif n_warm == len(init):
        start, settings = "another fit's draws", warm        # the settings as sampled
    else:
        start = f"another fit's draws for {n_warm} of {len(init)} models, which tuned for {warm.tune} steps"
    return Pending(lambda: _finish_fit(study, model, nprior, prior_set, settings, ci_prob, compilations, started,
                                       start))


def warm_tune(tune: int) -> int:
    """Tuning steps of a chain started at another fit's draws (see config.WARM_TUNE_FRACTION)."""
    return int(round(tune * config.WARM_TUNE_FRACTION))


def _finish_fit(study: Study, model: str, nprior: NPrior, prior_set: PriorSet, settings: SamplerSettings,
                ci_prob: float, compilations: int, started: list, start: str) -> FitResult:
    tree = xr.DataTree()
    tables, diags, arms, n_rows, notes, fits = [], [], [], [], {}, []
    for spec, label, pending in started:
        raw, free = pending.result()
        verdict = diagnose(raw, free)
        fits.append((spec, raw))
        diag_study = spec.cells[0].study if spec.family != "joint" else "all"
        diags.append((diag_study, label, verdict))
        cell_trees, model_tree = split_cells(raw, spec)
        for cell, cell_tree in zip(spec.cells, cell_trees):
            tree[node_name(cell.study, cell.endpoint)] = cell_tree
            group = spec.groups[spec.group_of(cell)]
            notes[cell.key] = group.note
            table = _cell_rows(cell, cell_tree, group, model, verdict.passed, ci_prob)
            tables.append(table)
            arms.append(_arm_table(cell, cell_tree, ci_prob))
            if spec.family != "joint":
                n_rows.append(_n_table(cell_tree, cell.study, cell.cohort, cell.endpoint, group))
        if spec.family == "joint":
            tree["joint"] = model_tree
            pooled = _pooled_rows(model_tree, model, verdict.passed, ci_prob)
            if not pooled.empty:
                tables.append(pooled)
            post = model_tree["posterior"].to_dataset()
            for j, group in enumerate(spec.groups):
                weights = post[f"n_weight_{j}"].rename({f"n_grid_{j}": "n"})
                n_rows.append(_n_table(xr.DataTree.from_dict({"posterior": weights.to_dataset(name="n_weight")}),
                                       group.study, group.cohort, "joint", group))

    metadata = {
        "bayes_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "data_source": study.source,
        "data_hash": study.data_hash,
        "model": model,
        "n_prior": nprior.to_dict(),
        "n_treatment": notes,
        "priors": {"name": prior_set.name, "source": prior_set.source, "hash": prior_set.hash,
                   "set": prior_set.to_dict()},
        "sampler": settings.to_dict(),
        "initial_points": start,
        "retried": {label: d.retry_note for _, label, d in diags if d.retry_note},
        "ci_prob": ci_prob,
        "ci_kind": config.CI_KIND,
        "compilations": compilations,
    }
    return FitResult(
        tree=tree,
        synergy=pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
        diagnostics=diagnostics_frame(diags),
        arms=pd.concat(arms, ignore_index=True) if arms else pd.DataFrame(),
        n_posterior=pd.concat(n_rows, ignore_index=True) if n_rows else pd.DataFrame(),
        metadata=metadata,
        checks=[(c.name, c.status, c.message) for c in consistency_checks(study)],
        fits=fits,
    )


def n_label(group: CohortN) -> str:
    """Short n description for tables."""
    if group.reported:
        return group.note.split(" per arm")[0].replace("n = ", "") + " (reported)"
    allowed = group.allowed
    if len(allowed) == 1:
        return f"{allowed[0]} (assumed)"
    if allowed == list(range(allowed[0], allowed[-1] + 1)):
        return f"{allowed[0]}-{allowed[-1]} (marginal)"
    return "{" + ",".join(map(str, allowed)) + "} (marginal)"


def _cell_rows(cell: Cell, cell_tree: xr.DataTree, group: CohortN, model: str, passed: bool,
               ci_prob: float, weights: xr.DataArray | None = None) -> pd.DataFrame:
    table = cell_table(cell_tree["posterior"].to_dataset(), cell.design, cell.kind, cell.better,
                       ci_prob=ci_prob, weights=weights)
    table.insert(0, "endpoint", cell.endpoint)
    table.insert(0, "study", cell.study)
    return table.assign(model=model, n_per_arm=n_label(group), diagnostics="ok" if passed else "FAILED")


def _pooled_rows(model_tree: xr.DataTree, model: str, passed: bool, ci_prob: float,
                 weights: xr.DataArray | None = None) -> pd.DataFrame:
    pooled = pooled_table(model_tree["posterior"].to_dataset(), ci_prob=ci_prob, weights=weights)
    if not pooled.empty:
        pooled.insert(0, "endpoint", "all endpoints")
        pooled.insert(0, "study", "all studies")
        pooled = pooled.assign(model=model, n_per_arm="per cohort", diagnostics="ok" if passed else "FAILED")
    return pooled


def synergy_rows(spec: ModelSpec, raw: xr.DataTree, *, model: str, passed: bool, ci_prob: float,
                 weights: xr.DataArray | None = None) -> pd.DataFrame:
    """The synergy table of one sampled model (every cell's scores, and the joint
    model's pooled synergy); ``weights``: importance weights of its draws
    (:func:`bayes.synergy.summarise_draws`)."""
    cell_trees, model_tree = split_cells(raw, spec)
    tables = [_cell_rows(cell, tree, spec.groups[spec.group_of(cell)], model, passed, ci_prob, weights)
              for cell, tree in zip(spec.cells, cell_trees)]
    if spec.family == "joint":
        tables.append(_pooled_rows(model_tree, model, passed, ci_prob, weights))
    return pd.concat([t for t in tables if not t.empty], ignore_index=True)


def _n_table(tree: xr.DataTree, study: str, cohort: str, fitted: str, group: CohortN) -> pd.DataFrame:
    """Prior and posterior probability of each candidate n (the reported n, when known)."""
    if group.reported:
        return pd.DataFrame({"study": study, "cohort": cohort, "fitted_in": fitted,
                             "n": list(group.reported_values), "prior": 1.0, "posterior": 1.0,
                             "reported": True})
    weights = tree["posterior"].to_dataset()["n_weight"]
    posterior = weights.mean(("chain", "draw")).to_numpy()
    prior = np.exp(group.log_weight)
    return pd.DataFrame({"study": study, "cohort": cohort, "fitted_in": fitted,
                         "n": group.grid.astype(int), "prior": prior / prior.sum(),
                         "posterior": posterior, "reported": group.reported})


def _arm_table(cell: Cell, cell_tree: xr.DataTree, ci_prob: float) -> pd.DataFrame:
    """Reported arm values beside the posterior arm values (data units): a first fit check."""
    arm_mean = cell_tree["posterior"].to_dataset()["arm_mean"] * cell.display
    reported = cell.reported().set_index("arm")
    rows = []
    for arm in cell.design.arms:
        s = summarise_draws(arm_mean.sel(arm=arm), ci_prob)
        rows.append({"study": cell.study, "endpoint": cell.endpoint, "arm": arm,
                     "reported": reported.loc[arm, "reported"], "reported_sd": reported.loc[arm, "reported_sd"],
                     "posterior_mean": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                     "ci_prob": ci_prob})
    return pd.DataFrame(rows)
