"""Test tiers: unit (no sampling), integration (tiny seeded fits, on by
default) and slow (opt in with --run-slow); notebooks (tests/notebooks) run
by default, executed in background processes that start at collection so
they overlap the rest of the suite (each notebook is mostly single-threaded
model compilation, which leaves the second core idle)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bayes.sampling import DEFAULT_CACHE, ModelCache, SamplerSettings


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the slow tier")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--run-slow"):
        skip = pytest.mark.skip(reason="slow tier: pass --run-slow")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)
    # Waiting for a notebook comes last, so the rest of the suite overlaps it.
    items.sort(key=lambda item: item.get_closest_marker("notebook") is not None)


def pytest_collection_finish(session):
    """Start the selected notebooks (after -k/-m deselection) in the background."""
    runs = [item for item in session.items if item.get_closest_marker("notebook")]
    in_xdist_worker = hasattr(session.config, "workerinput")
    if runs and not session.config.option.collectonly and not in_xdist_worker:
        names = [item.callspec.params["name"] for item in runs]
        session.config.stash[NOTEBOOK_RUNNER] = NotebookRunner.start(names)


def pytest_sessionfinish(session):
    runner = session.config.stash.get(NOTEBOOK_RUNNER, None)
    if runner is not None:
        runner.stop()


NBRUN = Path(__file__).resolve().parent / "notebooks" / "nbrun.py"
NOTEBOOK_TIMEOUT = 1800   # seconds for all notebooks together


NOTEBOOK_JOBS = 2         # runner processes; each notebook is mostly single-threaded compilation


class NotebookRunner:
    """``nbrun.py run`` in the background (niced), one result file per notebook.

    The notebooks are split over ``NOTEBOOK_JOBS`` runner processes, so that
    with the main test process up to three single-threaded compilations
    keep both cores busy.
    """

    def __init__(self, out_dir: Path, processes: dict[str, subprocess.Popen]):
        self.out_dir, self.processes = out_dir, processes

    @classmethod
    def start(cls, names: list[str]) -> "NotebookRunner":
        out_dir = Path(tempfile.mkdtemp(prefix="bayes-notebooks-"))
        processes = {}
        for job in range(min(NOTEBOOK_JOBS, len(names))):
            mine = names[job::NOTEBOOK_JOBS]
            with open(out_dir / f"nbrun-{job}.log", "wb") as log:
                process = subprocess.Popen([sys.executable, str(NBRUN), "run", str(out_dir), *mine],
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                           env={**os.environ, "NBRUN_NICE": "10"})
            processes.update({name: process for name in mine})
        return cls(out_dir, processes)

    def __call__(self, name: str) -> dict:
        result = self.out_dir / f"{name}.json"
        process = self.processes.get(name)
        if process is None:             # not started at collection (xdist worker): run it now
            subprocess.run([sys.executable, str(NBRUN), "run", str(self.out_dir), name], check=False,
                           timeout=NOTEBOOK_TIMEOUT)
        deadline = time.monotonic() + NOTEBOOK_TIMEOUT
        while not result.exists():
            if process is not None and process.poll() is not None and not result.exists():
                logs = "".join(p.read_text(errors="replace") for p in sorted(self.out_dir.glob("nbrun-*.log")))
                pytest.fail(f"the notebook runner stopped before {name} finished:\n{logs[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not finish within {NOTEBOOK_TIMEOUT} s")
            time.sleep(0.5)
        return json.loads(result.read_text())

    def stop(self) -> None:
        for process in set(self.processes.values()):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


NOTEBOOK_RUNNER = pytest.StashKey[NotebookRunner]()


@pytest.fixture(scope="session")
def notebook_runs(request) -> NotebookRunner:
    """Waits for one notebook's background run; executes it here if none was started."""
    runner = request.config.stash.get(NOTEBOOK_RUNNER, None)
    if runner is None:
        runner = NotebookRunner(Path(tempfile.mkdtemp(prefix="bayes-notebooks-")), {})
    return runner


@pytest.fixture(scope="session")
def cache() -> ModelCache:
    """The library's process-wide cache, so API and CLI tests share compilations:
    each model structure compiles once per test session."""
    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def logp_and_grad_at_start():
    """``(spec, priors) -> (log density, gradient)`` at a jittered initial point, from the
    compiled model the fits sample with (the shared cache: each structure compiles once
    per session, not again per test)."""
    import numpy as np

    from bayes.compiled import log_densities
    from bayes.sampling import compiled_with_data

    def evaluate(spec, priors, seed: int = 0):
        compiled, _ = compiled_with_data(spec, priors, DEFAULT_CACHE)    # with this spec's data
        point = compiled.initial_point_func(seed)[None, :]
        grad = np.empty_like(point)
        return float(log_densities(compiled, point, gradients=grad)[0]), grad[0]

    return evaluate


@pytest.fixture(scope="session")
def quick() -> SamplerSettings:
    """Small but honest sampler settings for integration tests (seeded)."""
    return SamplerSettings(draws=1000, tune=1000, chains=4, cores=2, seed=7)
