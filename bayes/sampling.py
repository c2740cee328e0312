"""Sampling: backends, seeds, the diagnostics gate and compiled-model reuse.

nutpie is the default sampler.  A model is compiled once per *structure*
(model family, arm layout, and the prior set's distributions) and re-used for
every cell with the same structure by swapping its ``pm.Data`` values
(``CompiledModel.with_data``): the data, and the prior parameters, which are
data too (:meth:`bayes.priors.Prior.create_variable`).  Fitting many tables,
or one table under several prior sets, costs one compilation, and
:mod:`bayes.compiled` caches that compilation on disk, so a new process (a
notebook kernel, a batch worker, the next command) loads it in a second or
two instead of compiling again.  PyMC's own NUTS is the
fallback (``sampler="pymc"``); it recompiles per fit and is slower.

Sampling runs in the background: :func:`start_sample` queues a compiled
model on one thread that runs nutpie's samplers one after another (nutpie
samples without Python's lock), and returns at once, so the caller compiles
the next model or runs Python-side analyses meanwhile; ``result()`` waits.
:func:`sample_spec` is the same, waited for.

Every fit gets a seed derived from the run's master seed and the cell's key,
so results do not depend on the order cells are fitted in.  Diagnostics
(R-hat, bulk/tail ESS, divergences) are computed for every fit and gate the
result: a failing fit is flagged, never silently summarised.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import weakref
import zlib
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes.models.builder import ModelSpec, build_model, prefix
from bayes.priors import PriorSet, prior_values

SAMPLERS = ("nutpie", "pymc")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample; recorded verbatim in every output."""

    sampler: str = "nutpie"
    draws: int = config.DEFAULT_DRAWS
    tune: int = config.DEFAULT_TUNE
    chains: int = config.DEFAULT_CHAINS
    cores: int = field(default_factory=config.default_cores)
    seed: int = config.DEFAULT_SEED
    target_accept: float | None = None   # None: the model family's default (config.TARGET_ACCEPT)
    adaptation: str | None = None       # nutpie mass matrix "diag" | "low_rank"; None: family default
    # a fit with divergent transitions is sampled again, once, at config.RETRY_TARGET_ACCEPT
    # when its own target is lower (see _sample_with_retry); False: keep the first fit
    retry_divergent: bool = True
    # a fit without divergences that narrowly fails the gate on R-hat or ESS is sampled again,
    # once, for config.RETRY_DRAWS_FACTOR times the draws; False: keep the first fit (the
    # default under BAYES_QUICK, whose short chains are not meant to pass the gate)
    retry_longer: bool = field(default_factory=lambda: not config.QUICK)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.draws < 1 or self.tune < 0 or self.chains < 1:
            raise ValueError("draws and chains must be >= 1 and tune >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def for_family(self, family: str) -> "SamplerSettings":
        """These settings with the family's default target_accept filled in."""
        return replace(self,
                       target_accept=self.target_accept or config.TARGET_ACCEPT[family],
                       adaptation=self.adaptation or config.ADAPTATION[family])


def cell_seed(master_seed: int, key: str) -> int:
    """A 32-bit seed for one fit, from the run's seed and the cell's key."""
    state = np.random.SeedSequence([int(master_seed), zlib.crc32(key.encode())]).generate_state(1)
    return int(state[0])


class ModelCache:
    """Compiled nutpie models keyed by structure; re-used with new data.

    Each entry also remembers the model's free variable names, which the
    diagnostics gate checks.
    """

    def __init__(self):
        self._compiled: dict[tuple, tuple[object, list[str]]] = {}
        self._prior_values: dict[tuple, dict] = {}
        self.compilations = 0
        self.loaded_from_disk = 0      # of those, how many came from bayes.compiled's disk cache

    def compiled(self, key: tuple, build, label: str = "model") -> tuple[object, list[str]]:
        if key not in self._compiled:
            from bayes.compiled import compile_model, loaded_from_cache

            model = build()
            self._compiled[key] = (compile_model(model, key=key, label=label), [rv.name for rv in model.free_RVs])
            self.compilations += 1
            self.loaded_from_disk += loaded_from_cache(self._compiled[key][0])
        return self._compiled[key]

    def prior_values(self, key: tuple, build) -> dict:
        """The prior parameters of a model (built, not compiled: a fraction of a second)."""
        if key not in self._prior_values:
            self._prior_values[key] = prior_values(build())
        return self._prior_values[key]


DEFAULT_CACHE = ModelCache()


def relabel(tree: xr.DataTree, spec: ModelSpec) -> xr.DataTree:
    """A re-used compiled model reports the coordinates of the cell it was compiled
    for; put this spec's labels (arm, agent, combination names) in their place."""
    coords = spec.coords()

    def with_labels(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords({d: coords[d] for d in ds.dims if d in coords})

    return tree.map_over_datasets(with_labels)


def _drop_object_stats(tree: xr.DataTree) -> xr.DataTree:
    """Drop object-valued sample statistics (nutpie's own conversion stores its divergence
    messages so), which NetCDF cannot hold; the PyMC path's trees pass through here."""
    stats = tree["sample_stats"].to_dataset()
    objects = [v for v in stats.data_vars if stats[v].dtype == object]
    tree["sample_stats"] = xr.DataTree(stats.drop_vars(objects))
    return tree


def compiled_with_data(spec: ModelSpec, priors: PriorSet, cache: ModelCache) -> tuple[object, list[str]]:
    """The nutpie compiled model of ``spec`` under ``priors`` with their data
    swapped in, and its free variables.  Compiled (or loaded from disk) once
    per structure and prior *shape*: the prior set's numbers are data too."""
    build = lambda: build_model(spec, priors)  # noqa: E731
    compiled, free = cache.compiled((spec.structure, priors.shape_hash), build, label=f"{spec.family} model")
    values = {**spec.data(), **cache.prior_values((spec.structure, priors.hash), build)}
    return compiled.with_data(**values), free


class _SamplerQueue:
    """One background thread that runs the samplers started by :func:`start_sample`,
    one after another, in the order they were started.

    nutpie samples in its own threads without Python's lock, so while one
    model samples on every core the caller can compile the next or run
    Python-side analyses.  One at a time, because several samplers at once
    would share the cores with the caller's thread on equal terms and starve
    it.  The thread is a daemon: at exit, :func:`_cancel_running` stops what is
    still sampling and drops what has not started.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, job) -> Future:
        future: Future = Future()
        with self._lock:
            if self._pid != os.getpid():          # first use, or a forked child without the thread
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(self._jobs,), name="bayes-sampler", daemon=True).start()
                self._pid = os.getpid()
            self._jobs.put((job, future))
        return future

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:
        while True:
            job, future = jobs.get()
            if _EXITING:
                future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            _IDLE.clear()
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001  -- handed to whoever waits for the result
                future.set_exception(exc)
            finally:
                _IDLE.set()


_QUEUE = _SamplerQueue()
_RUNNING: "weakref.WeakSet" = weakref.WeakSet()     # nutpie samplers now sampling
_EXITING = False
_IDLE = threading.Event()                             # set while the queue's thread runs no job
_IDLE.set()


@atexit.register
def _cancel_running() -> None:
    """At exit (an error or Ctrl-C between starting a fit and waiting for it), stop
    the sampler still running and start no other: nutpie's threads must not
    outlive the compiled code they call."""
    global _EXITING
    _EXITING = True
    for sampler in list(_RUNNING):
        try:
            sampler.cancel()
        except Exception:  # noqa: BLE001  -- exiting anyway; nothing to report to
            pass
    _IDLE.wait(timeout=60)     # the queue's thread finishes its job before the interpreter goes


def _run_nutpie(compiled, **kwargs) -> tuple[xr.DataTree, tuple]:
    """One nutpie fit: its tree (:func:`tree_from_arrow`) and its raw Arrow trace
    (``(draw batches, stat batches)``, for :func:`unconstrained_points` when a
    restart needs them)."""
    import nutpie

    sampler = nutpie.sample(compiled, blocking=False, return_raw_trace=True, **kwargs)
    _RUNNING.add(sampler)
    try:
        raw = sampler.wait()
    finally:
        _RUNNING.discard(sampler)
    arrow = raw.get_arrow_trace()
    return tree_from_arrow(*arrow, compiled), arrow


def _columns(batches, skip) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """(chain, draw, ...) arrays and their dims from nutpie's per-chain Arrow batches;
    a null (no divergence at that draw, say) reads as NaN, 0 or False."""
    import pyarrow

    out = {}
    for name in batches[0].column_names:
        if skip(name, batches[0].schema.field(name)):
            continue
        meta = batches[0].schema.field(name).metadata
        shape = tuple(int(s) for s in meta[b"shape"].decode().split(",")) if meta.get(b"shape") else ()
        dims = tuple(meta[b"dims"].decode().split(",")) if meta.get(b"dims") else \
            tuple(f"{name}_dim_{k}" for k in range(len(shape)))
        chains = []
        for batch in batches:
            col = pyarrow.array(batch.column(name))
            if col.null_count:
                col = col.fill_null(np.nan if pyarrow.types.is_floating(col.type) else
                                    pyarrow.scalar(False if pyarrow.types.is_boolean(col.type) else 0, col.type))
            values = (col.flatten() if shape else col).to_numpy(zero_copy_only=False)
            chains.append(values.reshape((len(col), *shape)))
        out[name] = (np.stack(chains), dims)
    return out


def _after_warmup(draw_batches, stat_batches) -> tuple[list, list]:
    """Each chain's Arrow batches without its warm-up rows (the trace keeps them
    first, flagged by the "tuning" stat); chains must have equal lengths."""
    import pyarrow

    tuned = [int(pyarrow.array(s.column("tuning")).to_numpy(zero_copy_only=False).sum()) for s in stat_batches]
    draw_batches = [b.slice(k, b.num_rows - k) for b, k in zip(draw_batches, tuned)]
    stat_batches = [b.slice(k, b.num_rows - k) for b, k in zip(stat_batches, tuned)]
    if len({b.num_rows for b in draw_batches}) > 1:
        raise RuntimeError("nutpie returned chains of unequal length (was sampling interrupted?)")
    return draw_batches, stat_batches


def tree_from_arrow(draw_batches, stat_batches, compiled) -> xr.DataTree:
    """The ``posterior`` and ``sample_stats`` of a nutpie run from its raw Arrow trace.

    What ``nutpie.sample`` returns by default, less what no caller reads: the
    object-valued divergence messages (which NetCDF cannot hold), the
    per-event list columns nutpie also drops unless asked to store them, the
    unconstrained copies of transformed variables, and the warm-up draws.
    Built directly with xarray: nutpie's own conversion through
    ``arviz.from_dict`` takes about 0.09 s per fit, most of a warm refit's
    overhead.  Chains must have equal lengths (no cancelled run reaches here).
    """
    import pyarrow

    hidden = set(getattr(compiled, "reparameterized_names", ()) or ())
    draw_batches, stat_batches = _after_warmup(draw_batches, stat_batches)
    post = _columns(draw_batches, lambda name, field: name in hidden)
    stats = _columns(stat_batches, lambda name, field: name in ("chain", "draw") or not _is_scalar(pyarrow, field))
    coords = {name: np.asarray(index) for name, index in compiled.coords.items()}

    def dataset(columns):
        n_chain, n_draw = next(iter(columns.values()))[0].shape[:2]
        sizes = {d: n for values, dims in columns.values() for d, n in zip(dims, values.shape[2:])}
        # as arviz labels them: the model's coordinates, else 0, 1, ... (unnamed dims too)
        return xr.Dataset({name: (("chain", "draw", *dims), values) for name, (values, dims) in columns.items()},
                          coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw),
                                  **{d: coords.get(d, np.arange(n)) for d, n in sizes.items()}})

    return xr.DataTree.from_dict({"posterior": dataset(post), "sample_stats": dataset(stats)})


def unconstrained_points(draw_batches, stat_batches, compiled) -> np.ndarray:
    """A nutpie run's draws on the unconstrained scale, (chain, draw, n_dim), in the
    compiled model's flat layout (what :func:`with_initial_points` takes), from its raw
    Arrow trace: nutpie's expanded values start with the model's value variables in
    that layout (the columns :func:`tree_from_arrow` hides)."""
    draw_batches, _ = _after_warmup(draw_batches, stat_batches)
    names, slices, _ = compiled.shape_info
    flat = [name for name, where in zip(names, slices) if where.stop <= compiled.n_dim]
    values = _columns(draw_batches, lambda name, field: name not in flat)
    x = np.concatenate([values[name][0].reshape(*values[name][0].shape[:2], -1) for name in flat], axis=-1)
    if x.shape[-1] != compiled.n_dim:
        raise RuntimeError(f"nutpie's trace holds {x.shape[-1]} unconstrained values per draw, "
                           f"the model has {compiled.n_dim}")
    return x


def _is_scalar(pyarrow, field) -> bool:
    """A numeric or boolean Arrow field (not a list, not a string)."""
    kind = pyarrow.field(field).type
    return pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind) or pyarrow.types.is_boolean(kind)


class Pending:
    """Work under way (:func:`start_sample`, :func:`bayes.analysis.start_fit`,
    :func:`bayes.sensitivity.start_sweep`): :meth:`result` waits for it (once)
    and returns what it made."""

    def __init__(self, finish):
        self._finish, self._done, self._value = finish, False, None

    def result(self):
        if not self._done:
            self._value, self._done, self._finish = self._finish(), True, None
        return self._value


def with_initial_points(compiled, points: np.ndarray):
    """``compiled`` with each chain starting at one of ``points`` (rows in the model's
    unconstrained space, in its flat layout: another fit's draws) instead of
    PyMC's jittered support point.  nutpie asks for one initial point per chain,
    with a seed it derives from the sampler's, and gets the row that seed picks,
    so the start is as reproducible as the rest of the fit."""
    points = np.ascontiguousarray(points, dtype=float)
    if points.ndim != 2 or not len(points) or points.shape[1] != compiled.n_dim:
        raise ValueError(f"initial points need shape (k >= 1, {compiled.n_dim}), not {points.shape}")

    def initial_point(seed) -> np.ndarray:
        return points[np.random.default_rng(seed).integers(len(points))].copy()

    return replace(compiled, initial_point_func=initial_point)


def divergences(tree: xr.DataTree) -> int:
    return int(tree["sample_stats"].to_dataset()["diverging"].sum())


def thinned(tree: xr.DataTree, step: int) -> xr.DataTree:
    """Every ``step``-th draw of each group (the last of each block of ``step``),
    renumbered from 0; a divergence anywhere in a block marks the draw kept, so
    the count can only fall when one block holds several."""
    def thin(ds: xr.Dataset) -> xr.Dataset:
        if "draw" not in ds.dims:
            return ds
        count = ds.sizes["draw"] // step
        out = ds.isel(draw=slice(step - 1, count * step, step)).assign_coords(draw=np.arange(count))
        if "diverging" in ds:
            blocks = ds["diverging"].isel(draw=slice(0, count * step)).to_numpy()
            out["diverging"] = (ds["diverging"].dims,
                                blocks.reshape(*blocks.shape[:-1], count, step).any(axis=-1))
        return out

    out = tree.map_over_datasets(thin)
    out.attrs.update(tree.attrs)
    return out


def stuck_chains(tree: xr.DataTree) -> list[int]:
    """Chains caught where the sampler can no longer move: each one's highest log
    density lies below the lowest of the chain that sits highest (median), and its
    step size is under a tenth of that chain's.

    Both, because a chain exploring a wider region of comparable mass also sits at
    lower log densities, but with a larger step size, not a smaller one.  The case
    this catches: on the seed's IFN-gamma cell (``bayes fit --model factorial
    --seed 5``), one chain of four tuned its step size to 0 in a pocket of a huge
    log-sd and spent every draw at the largest tree depth (1023 leapfrog steps)
    at a log density of -57,900, while the other three sat at -15.6.  Trees without
    nutpie's ``logp`` and ``step_size`` statistics have none."""
    stats = tree["sample_stats"].to_dataset()
    if "logp" not in stats or "step_size" not in stats:
        return []
    logp = stats["logp"].to_numpy().astype(float)
    step = stats["step_size"].to_numpy().astype(float)
    if logp.shape[0] < 2:
        return []
    best = int(np.argmax(np.median(logp, axis=1)))
    floor, best_step = float(np.min(logp[best])), float(np.median(step[best]))
    return [c for c in range(logp.shape[0])
            if c != best and np.max(logp[c]) < floor and np.median(step[c]) < best_step / 10]


def _sample_with_retry(run, target_accept: float, draws: int, retry: bool, *,
                       judge=None, restart=None) -> xr.DataTree:
    """``run(target_accept, draws)``, and once more if that fit fails the gate in a
    way a second fit can mend:

    * divergent transitions (``retry`` and a target below
      :data:`config.RETRY_TARGET_ACCEPT`): again at that target.  A divergence
      fails the gate, and a smaller step size (a higher target) is the standard
      remedy (Betancourt 2017); doing it here means a family can sample at the
      cheaper target its typical tables need and pay for the higher one only
      on the tables that need it.
    * no divergence but R-hat or ESS short of the gate by no more than
      longer chains can make up (``judge``, a function of the tree giving its
      :class:`Diagnostics`, see :meth:`Diagnostics.within_reach`; None: not
      checked): again for :data:`config.RETRY_DRAWS_FACTOR` times the draws, the standard
      remedy for chains too short to show convergence (Vehtari et al. 2021),
      keeping every so-many-th draw (:func:`thinned`): as many draws as the
      other fits, which model comparison lines up side by side.
    * no divergence, failing the gate, with :func:`stuck_chains` (and
      ``restart``, a function of the target, the draws and the chains to
      start from, that samples again with every chain started at those
      chains' draws in the fit just made; None: not done): again so.  More draws cannot free a
      stuck chain, and a start where the other chains are does (Stan's advice
      for a chain that never reaches the typical set: better initial values).

    The posterior is the same either way; only the second fit is kept, judged
    by the gate on its own.  The tree's attrs say what happened:
    ``target_accept`` (the kept fit's), ``first_divergences`` and
    ``first_target_accept`` (a fit discarded for divergences), ``first_draws``
    and ``first_problems`` (one discarded for R-hat or ESS),
    ``first_stuck_chains`` and ``first_problems`` (one discarded for stuck
    chains); 0 and empty without a retry."""
    tree = run(target_accept, draws)
    attrs = dict(target_accept=float(target_accept), first_divergences=0)
    first = divergences(tree)
    if _EXITING:            # a fit stopped at exit is not sampled again
        pass
    elif first and retry and target_accept < config.RETRY_TARGET_ACCEPT:
        tree = run(config.RETRY_TARGET_ACCEPT, draws)
        attrs.update(target_accept=float(config.RETRY_TARGET_ACCEPT), first_divergences=first,
                     first_target_accept=float(target_accept))
    elif not first and judge is not None:
        verdict = judge(tree)
        problems = verdict.problems
        stuck = stuck_chains(tree) if problems and restart is not None else []
        if stuck:
            good = [c for c in range(tree["posterior"].sizes["chain"]) if c not in stuck]
            tree = restart(target_accept, draws, good)
            attrs.update(first_stuck_chains=len(stuck), first_problems="; ".join(problems))
        elif problems and verdict.within_reach(config.RETRY_DRAWS_FACTOR):
            tree = thinned(run(target_accept, draws * config.RETRY_DRAWS_FACTOR), config.RETRY_DRAWS_FACTOR)
            attrs.update(first_draws=int(draws), first_problems="; ".join(problems))
    tree.attrs.update(attrs)
    return tree


def _judge(settings: SamplerSettings, var_names: list[str]):
    """The gate over ``var_names``, for :func:`_sample_with_retry`'s longer second fit
    (None when ``settings`` switch it off)."""
    return (lambda tree: diagnose(tree, var_names)) if settings.retry_longer else None


def start_sample(spec: ModelSpec, priors: PriorSet, *, settings: SamplerSettings, key: str,
                 cache: ModelCache | None = None, init: np.ndarray | None = None) -> Pending:
    """Compile one model (or take it from the cache), queue it for sampling in the
    background (:class:`_SamplerQueue`) and return; ``result()`` gives what
    :func:`sample_spec` returns.  The draws do not depend on what else runs
    meanwhile: each fit has its own seed (:func:`cell_seed`).  ``init``: points
    the chains start from (:func:`with_initial_points`; nutpie only).  PyMC's
    sampler (``sampler="pymc"``) has no background mode: it samples here, from
    its own initial points."""
    seed = cell_seed(settings.seed, key)
    off = spec.switched_off()    # prior-only draws: not diagnosed (the raw tree keeps them for compare)
    if settings.sampler == "nutpie":
        compiled, free = compiled_with_data(spec, priors, cache or DEFAULT_CACHE)
        if init is not None:
            compiled = with_initial_points(compiled, init)
        kwargs = dict(tune=settings.tune, chains=settings.chains, cores=settings.cores,
                      seed=seed, adaptation=settings.adaptation, progress_bar=False, save_warmup=False)
        kept = [name for name in free if name not in off]
        last = {}           # the latest fit's raw trace, where a restart takes its starting points

        def run(target: float, draws: int, start=None) -> xr.DataTree:
            tree, last["arrow"] = _run_nutpie(compiled if start is None else with_initial_points(compiled, start),
                                              target_accept=target, draws=draws, **kwargs)
            return tree

        def restart(target: float, draws: int, chains: list[int]) -> xr.DataTree:
            points = unconstrained_points(*last["arrow"], compiled)
            return run(target, draws, start=points[chains].reshape(-1, compiled.n_dim))

        future = _QUEUE.submit(lambda: _sample_with_retry(
            run, settings.target_accept, settings.draws, settings.retry_divergent, judge=_judge(settings, kept),
            restart=restart))

        def finish():
            # tree_from_arrow keeps no object-valued statistics: nothing to drop
            raw = future.result()
            tree = relabel(raw, spec)
            tree.attrs.update(raw.attrs)
            return tree, kept

        return Pending(finish)
    import pymc as pm

    model = build_model(spec, priors)
    free = [rv.name for rv in model.free_RVs]

    def run(target: float, draws: int) -> xr.DataTree:
        from bayes.compiled import model_math

        with model, model_math():
            tree = pm.sample(draws=draws, tune=settings.tune, chains=settings.chains,
                             cores=settings.cores, random_seed=seed, nuts_sampler="pymc",
                             target_accept=target, progressbar=False, compute_convergence_checks=False)
        return _drop_object_stats(xr.DataTree.from_dict({g: tree[g].to_dataset()
                                                         for g in ("posterior", "sample_stats")}))

    kept = [name for name in free if name not in off]
    done = (_sample_with_retry(run, settings.target_accept, settings.draws, settings.retry_divergent,
                               judge=_judge(settings, kept)), kept)
    return Pending(lambda: done)


def sample_spec(spec: ModelSpec, priors: PriorSet, *, settings: SamplerSettings, key: str,
                cache: ModelCache | None = None) -> tuple[xr.DataTree, list[str]]:
    """Sample one model: its ArviZ DataTree (per-cell names still prefixed) and free variables."""
    return start_sample(spec, priors, settings=settings, key=key, cache=cache).result()


def _strip(ds: xr.Dataset, p: str, names: list[str]) -> xr.Dataset:
    part = ds[names]
    part = part.rename({n: n[len(p):] for n in names})
    dims = {d: d[len(p):] for d in part.dims if str(d).startswith(p)}
    coords = [c for c in part.coords if c not in part.dims]
    return part.drop_vars(coords).rename(dims)


def split_cells(tree: xr.DataTree, spec: ModelSpec) -> tuple[list[xr.DataTree], xr.DataTree]:
    """One ordinary ArviZ tree per cell, plus a tree of the model-level variables."""
    post = tree["posterior"].to_dataset()
    stats = tree["sample_stats"].to_dataset()
    cells, used = [], set()
    for i, cell in enumerate(spec.cells):
        p = prefix(i)
        off = set(spec.switched_off())
        names = [v for v in post.data_vars if str(v).startswith(p) and v not in off]
        used.update(names)
        part = _strip(post, p, names)
        j = spec.group_of(cell)
        group = spec.groups[j]
        part["n_weight"] = post[f"n_weight_{j}"].rename({f"n_grid_{j}": "n"})
        reported = cell.reported()
        const = xr.Dataset({"reported": ("arm", reported["reported"].to_numpy()),
                            "reported_sd": ("arm", reported["reported_sd"].to_numpy()),
                            "display": cell.display, "n_log_weight": ("n", group.log_weight)},
                           coords={"arm": list(cell.design.arms), "n": group.grid.astype(int)})
        out = xr.DataTree.from_dict({"posterior": part, "sample_stats": stats, "constant_data": const})
        out.attrs.update({"study": cell.study, "endpoint": cell.endpoint, "kind": cell.kind,
                          "better": cell.better, "cohort": cell.cohort, "n": group.note})
        cells.append(out)
    rest = [v for v in post.data_vars if v not in used and v not in set(spec.switched_off())]
    model_tree = xr.DataTree.from_dict({"posterior": post[rest], "sample_stats": stats})
    return cells, model_tree


@dataclass(frozen=True)
class Diagnostics:
    """The gate's verdict on one fit, with the numbers behind it."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    draws: int
    chains: int
    target_accept: float = float("nan")   # of the fit judged here
    first_divergences: int = 0            # of a first fit at a lower target, sampled again (0: none)
    first_target_accept: float = float("nan")
    first_draws: int = 0                  # per chain, of a first fit sampled again for R-hat / ESS (0: none)
    first_problems: str = ""              # why that first fit failed the gate
    first_stuck_chains: int = 0           # of a first fit sampled again from its other chains' draws (0: none)

    @property
    def problems(self) -> list[str]:
        out = []
        need = config.ESS_PER_CHAIN_MIN * self.chains
        if not self.rhat_max <= config.RHAT_MAX:
            out.append(f"R-hat {self.rhat_max:.3f} > {config.RHAT_MAX}")
        if not self.ess_bulk_min >= need:
            out.append(f"bulk ESS {self.ess_bulk_min:.0f} < {need}")
        if not self.ess_tail_min >= need:
            out.append(f"tail ESS {self.ess_tail_min:.0f} < {need}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        return out

    @property
    def passed(self) -> bool:
        return not self.problems

    def within_reach(self, factor: float) -> bool:
        """Whether ``factor`` times the draws can be expected to pass the gate: no
        divergence, ESS at least 1/factor of the gate's (ESS grows with the draws)
        and R-hat - 1 at most factor times the gate's (it shrinks about as 1/draws
        for chains that mix).  A fit far off, a stuck chain, say, is kept as it is."""
        need = config.ESS_PER_CHAIN_MIN * self.chains
        return (not self.divergences and self.rhat_max <= 1 + factor * (config.RHAT_MAX - 1)
                and min(self.ess_bulk_min, self.ess_tail_min) * factor >= need)

    @property
    def retry_note(self) -> str:
        if self.first_stuck_chains:
            return (f"sampled again with every chain started at the draws of the chains not stuck, after "
                    f"{self.first_stuck_chains} of {self.chains} stuck far below them in log density "
                    f"({self.first_problems})")
        if self.first_divergences:
            return (f"sampled again at target_accept {self.target_accept:g} after {self.first_divergences} "
                    f"divergent transition(s) at {self.first_target_accept:g}")
        if self.first_draws:
            return (f"sampled again for {self.draws * config.RETRY_DRAWS_FACTOR} draws per chain "
                    f"(one in {config.RETRY_DRAWS_FACTOR} kept) after {self.first_problems} with {self.first_draws}")
        return ""


def diagnose(tree: xr.DataTree, var_names: list[str]) -> Diagnostics:
    """R-hat, bulk/tail ESS over ``var_names`` (the free parameters), and divergences.

    Computed with arviz-stats' accessors, the functions ``az.summary`` calls,
    without building its table (0.14 against 0.29 s on the seed's joint fit)."""
    import arviz_stats  # noqa: F401  -- registers the .azstats accessor

    post = tree["posterior"].to_dataset()
    free = post[list(var_names)]

    def extreme(ds: xr.Dataset, pick) -> float:
        return float(pick([pick(ds[v].to_numpy().astype(float)) for v in ds.data_vars]))

    return Diagnostics(
        rhat_max=extreme(free.azstats.rhat(), np.nanmax),
        ess_bulk_min=extreme(free.azstats.ess(method="bulk"), np.nanmin),
        ess_tail_min=extreme(free.azstats.ess(method="tail"), np.nanmin),
        divergences=divergences(tree),
        draws=int(post.sizes["draw"]), chains=int(post.sizes["chain"]),
        target_accept=float(tree.attrs.get("target_accept", float("nan"))),
        first_divergences=int(tree.attrs.get("first_divergences", 0)),
        first_target_accept=float(tree.attrs.get("first_target_accept", float("nan"))),
        first_draws=int(tree.attrs.get("first_draws", 0)),
        first_problems=str(tree.attrs.get("first_problems", "")),
        first_stuck_chains=int(tree.attrs.get("first_stuck_chains", 0)))


def diagnostics_frame(rows: list[tuple[str, str, Diagnostics]]) -> pd.DataFrame:
    return pd.DataFrame([{"study": s, "endpoint": e, **asdict(d), "passed": d.passed,
                          "problems": "; ".join(d.problems), "retry": d.retry_note} for s, e, d in rows])
