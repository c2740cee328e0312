"""Batches of independent tasks on Dask, resumable from their result files.

Batch work (simulation-based calibration, sensitivity grids, many studies) is
a list of :class:`Task` objects, each naming an importable function
(``"package.module:function"``) and its JSON keyword arguments.  :func:`run`
executes them on Dask: worker *processes* of a local cluster by default, any
existing Dask cluster given its scheduler address, or sequentially in this
process (``scheduler="sync"``, for debugging and tiny tests).

Every task's outcome is written to ``out_dir`` as soon as it finishes, by this
(the client) process, through a temporary file and an atomic rename:
``<key>.json`` holds the result with its key, func, kwargs, seconds, worker,
bayes version and finish time; ``<key>.error.json`` holds a failure's message
and traceback.  A rerun skips every task whose result file matches its func
and kwargs, so an interrupted batch resumes without redoing finished work,
and retries the failed ones.  A result file that belongs to different func or
kwargs is never overwritten: the run refuses before computing anything.

Each worker process keeps its own compiled-model cache
(:data:`bayes.sampling.DEFAULT_CACHE`) for its lifetime, so a worker compiles
each model structure once and re-uses it for every later task of that
structure.  A worker runs one task at a time; a task that samples should ask
for ``cores=1`` (or few) so that workers x chains does not oversubscribe the
machine.

This module must stay light to import (the workers import it to run a task):
it does not import Dask, PyMC or pandas at module level.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import sys
import time
import traceback
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bayes.errors import BayesError

KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
KEY_MAX_LENGTH = 200          # <key>.error.json and its temporary name stay under 255 bytes
FUNC_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                          r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
ERROR_SUFFIX = ".error.json"
SYNC = "sync"


def _canonical_json(value) -> str:
    """The one JSON text of a value (sorted keys); how kwargs are compared on resume."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Task:
    """One unit of batch work: ``func(**kwargs)`` must return a JSON-serialisable dict.

    ``key`` names the result file (``<key>.json``), so it is unique within a
    batch and filename-safe: letters, digits, ``.``, ``_`` and ``-``, starting
    with a letter or digit, not ending in ``.error``, at most 200 characters.
    ``func`` is ``"package.module:function"`` and must be importable on the
    workers.  The function receives ``kwargs`` as they read back from JSON
    (tuples become lists), exactly as recorded in the result file.
    """

    key: str
    func: str
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.key, str) or not KEY_PATTERN.fullmatch(self.key):
            raise BayesError(f"task key {self.key!r} is not filename-safe (valid: letters, digits, "
                             "'.', '_' and '-', starting with a letter or digit)")
        if len(self.key) > KEY_MAX_LENGTH or self.key.endswith(".error"):
            raise BayesError(f"task key {self.key!r} is too long or ends in '.error' (valid: at most "
                             f"{KEY_MAX_LENGTH} characters; '.error' would clash with error files)")
        if not isinstance(self.func, str) or not FUNC_PATTERN.fullmatch(self.func):
            raise BayesError(f"task {self.key}: func {self.func!r} is not 'package.module:function'")
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) for k in self.kwargs):
            raise BayesError(f"task {self.key}: kwargs must be a dict with string keys")
        try:
            _canonical_json(self.kwargs)
        except (TypeError, ValueError) as error:
            raise BayesError(f"task {self.key}: kwargs are not JSON-serialisable ({error})") from None

    def json_kwargs(self) -> dict:
        """``kwargs`` as they read back from the result file."""
        return json.loads(_canonical_json(self.kwargs))


class BatchError(BayesError):
    """Some tasks failed; the others finished and are on disk.

    ``results`` holds ``{key: result}`` of the tasks that succeeded (in task
    order), ``failures`` ``{key: "ErrorType: message"}`` of those that failed.
    """

    def __init__(self, message: str, results: dict[str, dict], failures: dict[str, str]):
        super().__init__(message)
        self.results = results
        self.failures = failures


def result_path(out_dir, key: str) -> Path:
    return Path(out_dir) / f"{key}.json"


def error_path(out_dir, key: str) -> Path:
    return Path(out_dir) / f"{key}{ERROR_SUFFIX}"


def default_workers() -> int:
    """Worker processes of the local cluster: the cores this process may use, at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                     # not on Linux
        return max(1, os.cpu_count() or 1)


def run(tasks: list[Task], out_dir, *, scheduler: str | None = None, workers: int | None = None,
        progress=None) -> dict[str, dict]:
    """Run every task whose result is not already in out_dir; return {key: result} for all tasks (old and new), in task order.

    ``scheduler``: ``None`` starts a local Dask cluster of ``workers`` worker
    processes (default :func:`default_workers`), one thread each, and closes
    it at the end; an address (``"tcp://host:port"``) connects to an existing
    cluster, which is neither started nor stopped here (its workers must be
    able to import bayes and each task's function); ``"sync"`` runs the tasks
    one after another in this process, without Dask.  Each worker process
    keeps its own compiled-model cache (``bayes.sampling.DEFAULT_CACHE``), so
    it compiles each model structure once.

    Each outcome is written to ``out_dir`` when the task finishes (see the
    module docstring), so an interruption (Ctrl-C, an exception, a lost
    cluster) loses only the tasks still running; pending tasks are cancelled
    and the local cluster closed.  ``progress`` is an optional callable
    taking one line of text per finished task, after a first line saying how
    many tasks were already done.

    Raises :class:`BayesError` before computing anything if keys repeat or a
    result file belongs to a different func or kwargs; raises
    :class:`BatchError` at the end if any task failed (its ``results`` hold
    the others).  Calling ``run`` again on a finished batch just reads it.
    """
    tasks = list(tasks)
    _check_keys(tasks)
    where = _describe(scheduler, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for task in tasks:
        previous = _previous_result(task, out)
        if previous is not None:
            results[task.key] = previous
    todo = [task for task in tasks if task.key not in results]
    say = progress or (lambda line: None)
    say(f"batch of {len(tasks)} tasks in {out}: {len(results)} already done (resumed), "
        f"{len(todo)} to run {where}")
    tracker = _Progress(say, total=len(tasks), done=len(results))
    failures: dict[str, str] = {}

    def finished(task: Task, outcome: dict) -> None:
        _write_outcome(task, outcome, out)
        if outcome["ok"]:
            results[task.key] = outcome["result"]
        else:
            failures[task.key] = outcome["error"]
        tracker.finished(task.key, outcome)

    if todo:
        if scheduler == SYNC:
            for task in todo:
                finished(task, _execute(task.func, task.json_kwargs()))
        else:
            _run_dask(todo, finished, scheduler=scheduler, workers=workers)
    tracker.summary(failures, resumed=len(tasks) - len(todo))
    ordered = {task.key: results[task.key] for task in tasks if task.key in results}
    if failures:
        raise BatchError(_failure_message(failures, len(tasks), out), ordered, failures)
    return ordered


def echo(*, value=None, sleep: float = 0.0, fail: str | None = None, log: str | None = None,
         require: list[str] | None = None) -> dict:
    """A task for smoke tests and for trying a cluster: returns ``{"value": value}``.

    ``Task("try-1", "bayes.batch:echo", {"value": 1})`` checks that a
    cluster's workers can import bayes.  The options exist for tests:
    ``log`` appends ``value`` as one line to that file (to count calls),
    ``require`` lists files that must already exist when the task runs,
    ``sleep`` waits that many seconds, and ``fail`` raises RuntimeError(fail).
    """
    if log is not None:
        with open(log, "a") as handle:
            handle.write(f"{json.dumps(value)}\n")
    missing = [p for p in (require or []) if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"required file(s) not there yet: {', '.join(missing)}")
    time.sleep(sleep)
    if fail is not None:
        raise RuntimeError(fail)
    return {"value": value}


# --- checks before running -------------------------------------------------------------------

def _check_keys(tasks: list[Task]) -> None:
    seen: dict[str, str] = {}
    for task in tasks:
        if not isinstance(task, Task):
            raise BayesError(f"batch items must be bayes.batch.Task, got {type(task).__name__}")
        folded = task.key.casefold()      # case-insensitive file systems would merge 'A' and 'a'
        if folded in seen:
            same = "is repeated" if seen[folded] == task.key else f"differs only in case from {seen[folded]!r}"
            raise BayesError(f"task key {task.key!r} {same}; keys must be unique within a batch")
        seen[folded] = task.key


def _describe(scheduler: str | None, workers: int | None) -> str:
    """Where the tasks run, for the first progress line; refuses contradictory arguments."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise BayesError(f"workers must be a whole number >= 1, got {workers!r}")
    if scheduler is None:
        n = workers or default_workers()
        return f"on a local Dask cluster ({n} worker process{'es' if n > 1 else ''})"
    if scheduler == SYNC:
        if workers not in (None, 1):
            raise BayesError(f"workers={workers} contradicts scheduler='sync' (one task at a time "
                             "in this process); omit workers, or use scheduler=None for a local cluster")
        return "in this process, one at a time (scheduler='sync')"
    if not isinstance(scheduler, str) or not scheduler:
        raise BayesError(f"scheduler must be None, 'sync' or a Dask scheduler address, got {scheduler!r}")
    if workers is not None:
        raise BayesError(f"workers={workers} applies only to the local cluster (scheduler=None); "
                         f"the cluster at {scheduler} has its own workers")
    return f"on the Dask cluster at {scheduler}"


def _previous_result(task: Task, out: Path) -> dict | None:
    """The stored result of ``task``, None if there is none; refuses a file of another task."""
    path = result_path(out, task.key)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        func, kwargs, result = stored["func"], stored["kwargs"], stored["result"]
        if not isinstance(result, dict):
            raise TypeError(f"its result is {type(result).__name__}, not a dict")
    except (ValueError, KeyError, TypeError) as error:
        raise BayesError(f"{path} is not a bayes batch result ({error}); move or delete it "
                         f"to run task {task.key!r}") from None
    if func != task.func or _canonical_json(kwargs) != _canonical_json(task.kwargs):
        raise BayesError(f"{path} holds a result of another task under key {task.key!r} "
                         f"(stored: {func} with {_canonical_json(kwargs)}; now: {task.func} with "
                         f"{_canonical_json(task.kwargs)}); use a new out_dir or a new key, or delete "
                         "the file to recompute it")
    return result


# --- running ---------------------------------------------------------------------------------

def _resolve(func: str):
    module_name, _, attribute = func.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _where_am_i() -> dict:
    address = None
    if "distributed" in sys.modules:          # only a Dask worker has imported it
        try:
            address = sys.modules["distributed"].get_worker().address
        except ValueError:                    # imported, but not running inside a worker
            pass
    return {"worker": address or SYNC, "host": socket.gethostname(), "pid": os.getpid()}


def _execute(func: str, kwargs: dict) -> dict:
    """Run one task where it is scheduled; never raises an ordinary exception.

    Returns ``{"ok": True, "result": ...}`` or ``{"ok": False, "error": ...,
    "traceback": ...}`` with the timing, worker and bayes version.
    """
    from bayes import __version__

    start = time.perf_counter()
    try:
        value = _resolve(func)(**kwargs)
        if not isinstance(value, dict):
            raise TypeError(f"{func} returned {type(value).__name__}, not a dict")
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as error:
            raise TypeError(f"{func} returned a result that is not JSON-serialisable ({error})") from None
        outcome = {"ok": True, "result": value}
    except Exception as error:                # recorded in <key>.error.json; the batch goes on
        outcome = {"ok": False, "error": f"{type(error).__name__}: {error}",
                   "traceback": traceback.format_exc()}
    return {**outcome, "seconds": round(time.perf_counter() - start, 6), **_where_am_i(),
            "bayes_version": __version__,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _lost(error: BaseException) -> dict:
    """The outcome of a task whose worker died or whose result never came back."""
    return {"ok": False, "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)), "seconds": None,
            "worker": None, "host": None, "pid": None, "bayes_version": None,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _run_dask(todo: list[Task], finished, *, scheduler: str | None, workers: int | None) -> None:
    import logging

    from distributed import Client, LocalCluster, as_completed

    futures = {}
    with ExitStack() as stack:
        if scheduler is None:
            # No dashboard (progress lines replace it).  The scheduler still serves
            # its health endpoints over HTTP, by default on port 8787 with a
            # UserWarning when that is taken (another cluster, another batch):
            # a free local port instead avoids the warning rather than filtering it.
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler))
            except (OSError, TimeoutError, ValueError) as error:
                raise BayesError(f"could not connect to the Dask scheduler at {scheduler!r}: {error}") from None
        # Registered after the client, so it runs first: nothing is left queued on a shared cluster.
        stack.callback(lambda: client.cancel([f for f in futures if not f.done()]))
        batch = uuid.uuid4().hex[:8]          # Dask keys unique on a shared cluster
        for task in todo:
            future = client.submit(_execute, task.func, task.json_kwargs(),
                                   key=f"bayes-batch-{batch}-{task.key}", pure=False)
            futures[future] = task
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as error:        # the worker died (KilledWorker) or the task was lost
                outcome = _lost(error)
            finished(futures[future], outcome)


# --- recording and reporting -----------------------------------------------------------------

def _write_outcome(task: Task, outcome: dict, out: Path) -> None:
    # Imported here, not at module level: workers import this module, and
    # bayes.results brings pandas and xarray.
    from bayes.results import write_atomic

    meta = {k: v for k, v in outcome.items() if k not in ("ok", "result", "error", "traceback")}
    head = {"key": task.key, "func": task.func, "kwargs": task.json_kwargs()}
    if outcome["ok"]:
        record = {**head, "result": outcome["result"], **meta}
        path = result_path(out, task.key)
    else:
        record = {**head, "error": outcome["error"], "traceback": outcome["traceback"], **meta}
        path = error_path(out, task.key)
    write_atomic(path, lambda p: Path(p).write_text(json.dumps(record, indent=1) + "\n"))
    if outcome["ok"]:
        error_path(out, task.key).unlink(missing_ok=True)   # an earlier failure, now retried


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Progress:
    """``[12/200] key done in 3.1 s (ETA 2 min)`` per finished task; the ETA is wall clock."""

    def __init__(self, say, *, total: int, done: int):
        self.say, self.total, self.done = say, total, done
        self.ran = 0
        self.start = time.perf_counter()

    def finished(self, key: str, outcome: dict) -> None:
        self.done += 1
        self.ran += 1
        seconds = outcome["seconds"]
        took = "" if seconds is None else f" {seconds:.1f} s"
        line = (f"[{self.done}/{self.total}] {key} done in{took}" if outcome["ok"] else
                f"[{self.done}/{self.total}] {key} FAILED after{took or ' ?'}: {outcome['error']}")
        left = self.total - self.done
        if left:
            elapsed = time.perf_counter() - self.start
            line += f" (ETA {_duration(elapsed / self.ran * left)})"
        self.say(line)

    def summary(self, failures: dict[str, str], *, resumed: int) -> None:
        elapsed = _duration(time.perf_counter() - self.start)
        text = f"batch finished in {elapsed}: {self.ran - len(failures)} run, {resumed} resumed"
        self.say(text + (f", {len(failures)} FAILED" if failures else ""))


def _failure_message(failures: dict[str, str], total: int, out: Path) -> str:
    shown = "; ".join(f"{key} ({error})" for key, error in list(failures.items())[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    return (f"{len(failures)} of {total} batch tasks failed: {shown}{more}. Tracebacks are in "
            f"{out}/<key>{ERROR_SUFFIX}; the other results are saved, and rerunning the batch "
            "retries only the failed and missing tasks")
