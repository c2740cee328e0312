"""Test tiers: unit (no sampling), integration (tiny seeded fits, on by
default) and slow (opt in with --run-slow); notebooks (tests/notebooks) run
by default, executed in a background process that starts at collection so
they overlap the rest of the suite (each notebook is mostly single-threaded
model compilation, leaving the second core idle)."""

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


class NotebookRunner:
    """``nbrun.py run`` in the background (niced), one result file per notebook."""

    def __init__(self, out_dir: Path, process: subprocess.Popen | None):
        self.out_dir, self.process = out_dir, process

    @classmethod
    def start(cls, names: list[str]) -> "NotebookRunner":
        out_dir = Path(tempfile.mkdtemp(prefix="bayes-notebooks-"))
        log = open(out_dir / "nbrun.log", "wb")
        process = subprocess.Popen([sys.executable, str(NBRUN), "run", str(out_dir), *names],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "NBRUN_NICE": "10"})
        log.close()
        return cls(out_dir, process)

    def __call__(self, name: str) -> dict:
        result = self.out_dir / f"{name}.json"
        if self.process is None:             # not started at collection (xdist worker): run it now
            subprocess.run([sys.executable, str(NBRUN), "run", str(self.out_dir), name], check=False,
                           timeout=NOTEBOOK_TIMEOUT)
        deadline = time.monotonic() + NOTEBOOK_TIMEOUT
        while not result.exists():
            if self.process is not None and self.process.poll() is not None and not result.exists():
                log = (self.out_dir / "nbrun.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"the notebook runner stopped before {name} finished:\n{log}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not finish within {NOTEBOOK_TIMEOUT} s")
            time.sleep(0.5)
        return json.loads(result.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


NOTEBOOK_RUNNER = pytest.StashKey[NotebookRunner]()


@pytest.fixture(scope="session")
def notebook_runs(request) -> NotebookRunner:
    """Waits for one notebook's background run; executes it here if none was started."""
    runner = request.config.stash.get(NOTEBOOK_RUNNER, None)
    if runner is None:
        runner = NotebookRunner(Path(tempfile.mkdtemp(prefix="bayes-notebooks-")), None)
    return runner


@pytest.fixture(scope="session")
def cache() -> ModelCache:
    """The library's process-wide cache, so API and CLI tests share compilations:
    each model structure compiles once per test session."""
    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def quick() -> SamplerSettings:
    """Small but honest sampler settings for integration tests (seeded)."""
    return SamplerSettings(draws=1000, tune=1000, chains=4, cores=2, seed=7)
