"""Unit tests for bayes.batch with scheduler="sync" (no Dask, no sampling).

The tasks are ``bayes.batch:echo`` (a documented smoke-test task that can
append to a call log, require files to exist, and fail on request) and the
builtins ``dict`` and ``str`` as an honest pure function and a wrong one.
The Dask path is tested in tests/integration/test_batch_dask.py.
"""

from __future__ import annotations

import json

import pytest

from bayes.batch import BatchError, Task, error_path, result_path, run
from bayes.errors import BayesError

ECHO = "bayes.batch:echo"


def calls(log) -> list:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def echo_tasks(log, values, **extra) -> list[Task]:
    return [Task(f"t-{v}", ECHO, {"value": v, "log": str(log), **extra}) for v in values]


def test_each_result_is_written_with_its_metadata(tmp_path):
    tasks = [Task("b", "builtins:dict", {"x": 1, "pair": (1, 2)}), Task("a", ECHO, {"value": [1.5, None]})]
    out = run(tasks, tmp_path / "out", scheduler="sync")
    assert list(out) == ["b", "a"]                                    # task order, not key order
    assert out == {"b": {"x": 1, "pair": [1, 2]}, "a": {"value": [1.5, None]}}
    record = json.loads(result_path(tmp_path / "out", "b").read_text())
    assert record["key"] == "b" and record["func"] == "builtins:dict"
    assert record["kwargs"] == {"x": 1, "pair": [1, 2]}               # as the function received them
    assert record["result"] == out["b"]
    assert record["worker"] == "sync" and isinstance(record["pid"], int)
    assert record["seconds"] >= 0 and record["finished_at"].endswith("+00:00")
    from bayes import __version__
    assert record["bayes_version"] == __version__
    assert not list((tmp_path / "out").glob(".*"))                   # no temporary files left


def test_results_are_on_disk_as_each_task_finishes(tmp_path):
    """Fails if results were written only at the end: each task requires the
    earlier results to exist when it starts, and each progress line finds
    exactly the finished tasks on disk."""
    out_dir = tmp_path / "out"
    keys = ["first", "second", "third"]
    tasks = [Task(key, ECHO, {"value": i, "require": [str(result_path(out_dir, k)) for k in keys[:i]]})
             for i, key in enumerate(keys)]
    on_disk = []

    def progress(line):
        if "] " in line:
            on_disk.append(sorted(p.stem for p in out_dir.glob("*.json")))

    assert run(tasks, out_dir, scheduler="sync", progress=progress) == {k: {"value": i} for i, k in enumerate(keys)}
    assert on_disk == [["first"], ["first", "second"], ["first", "second", "third"]]


def test_resume_skips_finished_tasks(tmp_path):
    log, out_dir = tmp_path / "calls.log", tmp_path / "out"
    run(echo_tasks(log, [0, 1, 2]), out_dir, scheduler="sync")
    assert calls(log) == [0, 1, 2]
    lines = []
    out = run(echo_tasks(log, [0, 1, 2, 3, 4]), out_dir, scheduler="sync", progress=lines.append)
    assert calls(log) == [0, 1, 2, 3, 4]                              # only 3 and 4 ran again
    assert out == {f"t-{v}": {"value": v} for v in range(5)}
    assert "5 tasks" in lines[0] and "3 already done (resumed), 2 to run" in lines[0]
    assert lines[1].startswith("[4/5] t-3 done in ") and "(ETA " in lines[1]
    assert lines[2].startswith("[5/5] t-4 done in ") and "ETA" not in lines[2]
    assert "2 run, 3 resumed" in lines[-1]
    run(echo_tasks(log, [0, 1, 2, 3, 4]), out_dir, scheduler="sync")   # a finished batch is only read
    assert len(calls(log)) == 5


def test_a_result_of_other_kwargs_or_func_is_refused_not_overwritten(tmp_path):
    log, out_dir = tmp_path / "calls.log", tmp_path / "out"
    run(echo_tasks(log, [0]), out_dir, scheduler="sync")
    before = result_path(out_dir, "t-0").read_text()
    changed = [Task("new", ECHO, {"value": 9, "log": str(log)}),
               Task("t-0", ECHO, {"value": 0, "log": str(log), "sleep": 0.5})]
    with pytest.raises(BayesError, match=r"out/t-0.json holds a result of another task under key 't-0'.*sleep"):
        run(changed, out_dir, scheduler="sync")
    with pytest.raises(BayesError, match="another task"):
        run([Task("t-0", "builtins:dict", {"value": 0, "log": str(log)})], out_dir, scheduler="sync")
    assert result_path(out_dir, "t-0").read_text() == before
    assert calls(log) == [0]                                          # refused before running anything
    # key order of kwargs does not matter
    run([Task("t-0", ECHO, {"log": str(log), "value": 0})], out_dir, scheduler="sync")
    assert calls(log) == [0]


@pytest.mark.parametrize("text", ["{not json", '{"func": "bayes.batch:echo", "kwargs": {}}',
                                  '{"func": "bayes.batch:echo", "kwargs": {}, "result": null}'])
def test_an_unreadable_result_file_is_refused(tmp_path, text):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(BayesError, match="x.json is not a bayes batch result"):
        run([Task("x", ECHO)], tmp_path, scheduler="sync")


def test_a_failing_task_is_recorded_the_others_finish_and_a_rerun_retries_it(tmp_path):
    log, out_dir, gate = tmp_path / "calls.log", tmp_path / "out", tmp_path / "gate"
    tasks = [*echo_tasks(log, [0]), Task("gated", ECHO, {"value": "g", "log": str(log), "require": [str(gate)]}),
             *echo_tasks(log, [2])]
    lines = []
    with pytest.raises(BatchError, match=r"1 of 3 batch tasks failed: gated \(FileNotFoundError: .*gate") as info:
        run(tasks, out_dir, scheduler="sync", progress=lines.append)
    assert info.value.results == {"t-0": {"value": 0}, "t-2": {"value": 2}}
    assert list(info.value.failures) == ["gated"]
    assert any(line.startswith("[2/3] gated FAILED after ") for line in lines)
    assert "1 FAILED" in lines[-1]
    record = json.loads(error_path(out_dir, "gated").read_text())
    assert record["kwargs"]["require"] == [str(gate)]
    assert record["error"].startswith("FileNotFoundError: required file(s) not there yet")
    assert "Traceback (most recent call last)" in record["traceback"] and "in echo" in record["traceback"]
    assert not result_path(out_dir, "gated").exists()

    gate.touch()
    assert run(tasks, out_dir, scheduler="sync") == {"t-0": {"value": 0}, "gated": {"value": "g"}, "t-2": {"value": 2}}
    assert calls(log) == [0, "g", 2, "g"]                              # only the failed task ran again
    assert not error_path(out_dir, "gated").exists()


@pytest.mark.parametrize("task, message", [
    (Task("s", "builtins:str", {"object": 1}), "TypeError: builtins:str returned str, not a dict"),
    (Task("m", "no_such_module_xyz:f"), "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    (Task("f", ECHO, {"fail": "boom"}), "RuntimeError: boom"),
])
def test_bad_functions_and_results_are_recorded_as_failures(tmp_path, task, message):
    with pytest.raises(BatchError) as info:
        run([task], tmp_path, scheduler="sync")
    assert info.value.failures == {task.key: message}
    assert json.loads(error_path(tmp_path, task.key).read_text())["error"] == message


def test_an_interrupted_batch_keeps_what_finished_and_resumes(tmp_path):
    log, out_dir = tmp_path / "calls.log", tmp_path / "out"
    tasks = echo_tasks(log, range(5))

    def interrupt_after_two(line):
        if line.startswith("[2/5]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tasks, out_dir, scheduler="sync", progress=interrupt_after_two)
    assert sorted(p.name for p in out_dir.iterdir()) == ["t-0.json", "t-1.json"]
    assert len(run(tasks, out_dir, scheduler="sync")) == 5
    assert calls(log) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("key", ["", "a/b", "../x", ".hidden", "-x", "a b", "naïve", "x.error", "k" * 201, 3])
def test_unsafe_keys_are_refused(key):
    with pytest.raises(BayesError, match="task key"):
        Task(key, ECHO)


def test_repeated_keys_are_refused(tmp_path):
    for keys, message in ((["a", "b", "a"], "'a' is repeated"), (["Run", "run"], "differs only in case")):
        with pytest.raises(BayesError, match=message):
            run([Task(k, ECHO) for k in keys], tmp_path, scheduler="sync")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("func, kwargs, message", [
    ("bayes.batch.echo", {}, "is not 'package.module:function'"),
    ("bayes.batch:", {}, "is not 'package.module:function'"),
    (ECHO, {"value": object()}, "not JSON-serialisable"),
    (ECHO, {1: "x"}, "string keys"),
    (ECHO, [("value", 1)], "string keys"),
])
def test_bad_func_and_kwargs_are_refused(func, kwargs, message):
    with pytest.raises(BayesError, match=message):
        Task("k", func, kwargs)


@pytest.mark.parametrize("scheduler, workers, message", [
    ("sync", 2, "contradicts scheduler='sync'"),
    ("tcp://127.0.0.1:8786", 2, "applies only to the local cluster"),
    (None, 0, "whole number >= 1"),
    ("", None, "scheduler must be"),
])
def test_contradictory_arguments_are_refused(tmp_path, scheduler, workers, message):
    with pytest.raises(BayesError, match=message):
        run([Task("k", ECHO)], tmp_path, scheduler=scheduler, workers=workers)
