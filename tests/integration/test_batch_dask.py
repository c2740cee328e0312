"""bayes.batch on a real local Dask cluster (2 worker processes).

One batch is interrupted (a KeyboardInterrupt from the progress callback,
as Ctrl-C would arrive in the client) after its third result; the rerun
computes only the tasks whose results are not on disk, records a failing
task from a worker, and leaves no worker process behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from bayes.batch import BatchError, Task, error_path, result_path, run

pytestmark = pytest.mark.integration

ECHO = "bayes.batch:echo"


def calls(log) -> list:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_local_cluster_writes_as_tasks_finish_and_resumes_after_an_interruption(tmp_path):
    log, out_dir = tmp_path / "calls.log", tmp_path / "out"
    tasks = [Task(f"t-{i}", ECHO, {"value": i, "log": str(log), "sleep": 0.2}) for i in range(8)]
    on_disk = []
    children = set(multiprocessing.active_children())   # whatever other tests left running

    def interrupt_after_three(line):
        if line.startswith("["):
            on_disk.append(len(list(out_dir.glob("*.json"))))
            if line.startswith("[3/8]"):
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tasks, out_dir, workers=2, progress=interrupt_after_three)
    assert on_disk == [1, 2, 3]                     # each result was on disk before the next finished
    assert set(multiprocessing.active_children()) <= children   # the local cluster was closed
    done = sorted(p.stem for p in out_dir.glob("*.json"))
    assert len(done) == 3
    first_calls = len(calls(log))                   # tasks that were running when interrupted ran too

    bad = Task("bad", ECHO, {"fail": "boom"})
    lines = []
    with pytest.raises(BatchError, match=r"1 of 9 batch tasks failed: bad \(RuntimeError: boom\)") as info:
        run([*tasks, bad], out_dir, workers=2, progress=lines.append)
    assert "3 already done (resumed), 6 to run on a local Dask cluster (2 worker processes)" in lines[0]
    rerun = calls(log)[first_calls:]
    assert sorted(rerun) == [i for i in range(8) if f"t-{i}" not in done]     # only the missing ones
    assert info.value.results == {f"t-{i}": {"value": i} for i in range(8)}
    assert "raise RuntimeError(fail)" in json.loads(error_path(out_dir, "bad").read_text())["traceback"]

    records = [json.loads(result_path(out_dir, f"t-{i}").read_text()) for i in range(8)]
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in records)
    assert os.getpid() not in {r["pid"] for r in records}                      # ran in worker processes
    assert len({r["pid"] for r in records if r["key"] not in done}) == 2        # on both workers
    assert set(multiprocessing.active_children()) <= children


def test_an_existing_cluster_is_used_by_address_and_left_running(tmp_path):
    from distributed import Client, LocalCluster

    # In-process workers (threads) keep this test quick; the address path is what is tested.
    # A free port for the scheduler's HTTP server (default 8787 warns when taken), as bayes.batch does.
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        tasks = [Task(f"t-{i}", ECHO, {"value": i}) for i in range(3)]
        lines = []
        assert run(tasks, tmp_path, scheduler=cluster.scheduler_address, progress=lines.append) == {
            f"t-{i}": {"value": i} for i in range(3)}
        assert f"3 to run on the Dask cluster at {cluster.scheduler_address}" in lines[0]
        with Client(cluster) as client:                       # still up, still has its worker
            assert len(client.scheduler_info()["workers"]) == 1
            assert client.submit(sum, [1, 2]).result() == 3
