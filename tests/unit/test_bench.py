"""Unit tests for bayes.bench: parser, ratio arithmetic, JSON writer, report.

Performance is measured, never asserted: nothing here checks a speed.  One
integration smoke test samples ``measure_ours`` with tiny settings.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from bayes import bench, config
from bayes.errors import BayesError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bayes")
    sub = parser.add_subparsers(dest="command", required=True)
    bench.add_parser(sub)
    return parser.parse_args(["bench", *argv])


def timing(cold: float, refits: list[float], label: str = "t") -> bench.Timing:
    return bench.Timing(label, cold, refits, compilations=1, samples_per_fit=4000)


# --------------------------------------------------------------------------- parser

def test_parser_defaults():
    args = parse()
    s = bench.resolve_settings(args)
    assert args.out == "bench.json" and not args.force and not args.quick and not args.no_cli
    assert not args.no_report
    assert s == {"fits": 20, "plain_fits": 3, "draws": config.DEFAULT_DRAWS, "tune": config.DEFAULT_TUNE,
                 "chains": 4, "cores": config.default_cores(), "seed": config.DEFAULT_SEED,
                 "target_accept": config.TARGET_ACCEPT["factorial"], "quick": False}
    assert s["draws"] == 1000 and s["target_accept"] == 0.9


def test_parser_accepts_options():
    args = parse("--fits", "5", "--draws", "300", "--tune", "200", "--seed", "3",
                 "--out", "x.json", "--force", "--cores", "1", "--plain-fits", "2")
    s = bench.resolve_settings(args)
    assert (s["fits"], s["plain_fits"], s["draws"], s["tune"], s["seed"], s["cores"]) == (5, 2, 300, 200, 3, 1)
    assert args.out == "x.json" and args.force


def test_quick_lowers_defaults_but_explicit_options_win():
    s = bench.resolve_settings(parse("--quick"))
    assert {k: s[k] for k in bench.QUICK} == bench.QUICK and s["quick"]
    s = bench.resolve_settings(parse("--quick", "--fits", "7"))
    assert s["fits"] == 7 and s["draws"] == bench.QUICK["draws"]


@pytest.mark.parametrize("argv", [["--fits", "0"], ["--fits", "-2"], ["--fits", "two"],
                                  ["--draws", "0"], ["--tune", "1.5"], ["--seed", "x"],
                                  ["--bogus"], ["--out"]])
def test_parser_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


# --------------------------------------------------------------------------- arithmetic

def test_timing_median_and_throughput():
    t = timing(10.0, [0.2, 0.4, 0.3, 0.1])
    assert t.per_fit == pytest.approx(0.25)          # median of 0.1, 0.2, 0.3, 0.4
    assert t.throughput == pytest.approx(4 / 1.0)    # 4 refits in 1.0 s
    empty = timing(1.0, [])
    assert np.isnan(empty.per_fit) and np.isnan(empty.throughput)


def test_ratios_on_hand_made_numbers():
    plain = timing(30.0, [10.0, 12.0, 11.0])         # median 11, 3 fits / 33 s
    ours = timing(15.0, [0.2, 0.2, 0.3, 0.3])        # median 0.25, 4 fits / 1.0 s
    r = bench.ratios(plain, ours)
    assert r["cold"] == pytest.approx(2.0)
    assert r["refit"] == pytest.approx(11 / 0.25)
    assert r["throughput"] == pytest.approx(4.0 / (3 / 33))


def test_ratios_with_zero_time_are_nan_not_errors():
    r = bench.ratios(timing(1.0, [1.0]), timing(0.0, []))
    assert np.isnan(r["cold"]) and np.isnan(r["refit"])


def test_report_and_table_mention_settings_and_samples():
    plain, ours = timing(30.0, [10.0], "plain"), timing(15.0, [0.2, 0.3], "ours")
    cli = bench.CliTiming(40.0, 0, ["python"], cells_fitted=4, compilations=1, model="joint",
                          n_prior="n marginal over 3..20", target_accept=0.99)
    settings = {"fits": 2, "plain_fits": 1, "draws": 1000, "tune": 1000, "chains": 4, "cores": 2,
                "seed": 1, "target_accept": 0.95, "quick": False}
    rep = bench.report(plain, ours, cli, settings, bench.machine_info())
    json.dumps(rep)                                   # JSON-serialisable as written
    assert rep["ratios"]["cold"] == pytest.approx(2.0) and "created" in rep
    text = bench.format_report(rep)
    assert "4 x 1000 posterior samples" in text and "draws=1000 tune=1000 chains=4" in text
    assert "2.00x" in text and "cli: bayes fit" in text
    assert "target_accept=0.95" in text and "identical for plain and ours" in text
    assert "joint model, 4 cells" in text and "target_accept=0.99" in text


def report_timing(cache: str, seconds: float, quick: bool = False) -> bench.ReportTiming:
    return bench.ReportTiming(cache, seconds, 0, ["python", "-m", "bayes.cli", "report"],
                              {"fits": 20.0, "comparison": 9.5, "sensitivity": 30.25}, quick)


def test_targets_are_judged_on_the_measured_numbers():
    plain = timing(30.0, [10.0, 10.0])                 # 0.1 fits/s
    ours = timing(15.0, [0.4, 0.6, 0.45])              # median 0.45 s; 3 / 1.45 s = 2.07 fits/s
    reports = [report_timing("empty", 250.0), report_timing("warm", 80.0)]
    rows = bench.target_verdicts(ours, bench.ratios(plain, ours), reports)
    assert [r["met"] for r in rows] == [True, True, False, True]
    assert rows[0]["value"] == pytest.approx(0.45)
    assert rows[1]["value"] == pytest.approx((3 / 1.45) / 0.1)
    assert "empty compile cache" in rows[2]["target"] and rows[3]["value"] == 80.0
    slow = timing(15.0, [0.5, 0.7, 0.9])               # median 0.7 s, 3 / 2.1 s: 14.3x plain
    assert [r["met"] for r in bench.target_verdicts(slow, bench.ratios(plain, slow), [])] == [False, True]
    failed = bench.ReportTiming("warm", 10.0, 2, ["x"])
    assert not bench.target_verdicts(ours, bench.ratios(plain, ours), [failed])[-1]["met"]


def test_quick_report_runs_are_shown_but_not_judged():
    plain, ours = timing(30.0, [10.0]), timing(15.0, [0.2])
    reports = [report_timing("empty", 40.0, quick=True), report_timing("warm", 20.0, quick=True)]
    settings = {"fits": 1, "plain_fits": 1, "draws": 10, "tune": 10, "chains": 4, "cores": 1,
                "seed": 1, "target_accept": 0.95, "quick": True}
    rep = bench.report(plain, ours, None, settings, bench.machine_info(), reports)
    assert len(rep["targets"]) == 2 and len(rep["reports"]) == 2
    text = bench.format_report(rep)
    assert "report: bayes report (empty cache)" in text and "BAYES_QUICK=1 (smoke run)" in text
    assert "sensitivity 30 s" in text and "targets (2 cores):" in text


def test_table_says_whether_ours_was_compiled_or_loaded_from_disk():
    settings = {"fits": 1, "plain_fits": 1, "draws": 10, "tune": 10, "chains": 4, "cores": 1,
                "seed": 1, "target_accept": 0.95, "quick": True}
    plain = timing(30.0, [10.0])
    for disk, words in ((1, "loaded from the disk cache"), (0, "compiled from scratch")):
        ours = bench.Timing("ours", 2.0, [0.3], compilations=1, samples_per_fit=40, from_disk_cache=disk)
        assert words in bench.format_report(bench.report(plain, ours, None, settings, bench.machine_info()))


def test_report_command_keeps_the_report_defaults():
    cmd = bench.report_command("/tmp/r", cores=2, seed=4)
    assert cmd[1:5] == ["-m", "bayes.cli", "report", "--out"]
    assert "--draws" not in cmd and "--priors" not in cmd          # the defaults, as users run it
    assert cmd[cmd.index("--seed") + 1] == "4" and cmd[cmd.index("--cores") + 1] == "2"


def test_table_without_cli_row():
    plain, ours = timing(30.0, [10.0], "plain"), timing(15.0, [0.2], "ours")
    settings = {"fits": 1, "plain_fits": 1, "draws": 10, "tune": 10, "chains": 4, "cores": 1,
                "seed": 1, "target_accept": 0.95, "quick": True}
    text = bench.format_report(bench.report(plain, ours, None, settings, bench.machine_info()))
    assert "cli: bayes fit" not in text and "plain" in text


def test_cli_run_facts_reads_what_was_fitted(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "joint", "compilations": 1,
                                "n_prior": {"mode": "marginal", "value": None, "low": 3, "high": 20},
                                "n_treatment": {"a/x": "", "a/y": "", "a/z": "", "a/w": ""},
                                "sampler": {"target_accept": 0.99}}))
    assert bench.cli_run_facts(path) == {"cells_fitted": 4, "compilations": 1, "model": "joint",
                                         "n_prior": "n marginal over 3..20", "target_accept": 0.99}
    path.write_text(json.dumps({"n_prior": {"mode": "fixed", "value": 10, "low": 3, "high": 20}}))
    assert bench.cli_run_facts(path)["n_prior"] == "n = 10 assumed"
    missing = bench.cli_run_facts(tmp_path / "nope.json")
    assert set(missing.values()) == {None}


# --------------------------------------------------------------------------- inputs

def test_seed_spec_is_the_tumour_volume_factorial_cell():
    spec = bench.seed_spec()
    assert spec.family == "factorial" and len(spec.cells) == 1
    assert (spec.cells[0].study, spec.cells[0].endpoint) == (bench.STUDY, "tumor_volume")
    assert spec.groups[0].allowed == [bench.N_ASSUMED]


def test_simulated_specs_keep_structure_and_are_seeded():
    spec = bench.seed_spec()
    a, b = bench.simulated_specs(spec, 2, seed=5), bench.simulated_specs(spec, 2, seed=5)
    assert len(a) == 2 and all(s.structure == spec.structure for s in a)   # same compiled model
    assert set(spec.data()) == set(a[0].data())                             # same pm.Data names
    rows0, rows1 = a[0].cells[0].rows, a[1].cells[0].rows
    assert np.array_equal(rows1["mean"], b[1].cells[0].rows["mean"])
    assert not np.array_equal(rows0["mean"], rows1["mean"])
    assert not np.array_equal(rows0["mean"], spec.cells[0].rows["mean"])
    assert list(rows0["arm"]) == list(spec.cells[0].rows["arm"])           # canonical order kept
    assert a[0].cells[0].scale == rows0["mean"].iloc[0]
    assert spec.cells[0].rows["mean"].iloc[0] == 1500.0                     # original untouched


def test_both_paths_use_the_factorial_target_accept():
    assert bench.target_accept() == config.TARGET_ACCEPT["factorial"] == 0.9


def test_cli_command_pins_the_same_settings():
    cmd = bench.cli_command("/tmp/o", draws=100, tune=50, cores=2, seed=9)
    assert cmd[1:8] == ["-m", "bayes.cli", "fit", "--out", "/tmp/o", "--force", "--quiet"]
    assert cmd[cmd.index("--draws") + 1] == "100" and cmd[cmd.index("--chains") + 1] == "4"


# --------------------------------------------------------------------------- writer

def test_write_json_writes_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    assert bench.write_json({"a": 1}, path) == path
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(BayesError, match="--force"):
        bench.write_json({"a": 2}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    bench.write_json({"a": 3}, path, force=True)
    assert json.loads(path.read_text()) == {"a": 3}
    assert os.listdir(path.parent) == ["bench.json"]   # no temp files left behind


def test_write_json_is_atomic_on_failure(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text('{"old": true}')
    with pytest.raises(TypeError):
        bench.write_json({"bad": object()}, path, force=True)   # not JSON-serialisable
    assert json.loads(path.read_text()) == {"old": True}       # old file untouched
    assert os.listdir(tmp_path) == ["bench.json"]               # temp file removed


def test_write_json_uses_os_replace(tmp_path, monkeypatch):
    calls = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (calls.append((src, dst)), real(src, dst)))
    path = tmp_path / "bench.json"
    bench.write_json({"a": 1}, path)
    assert len(calls) == 1 and os.path.dirname(calls[0][0]) == str(tmp_path) and calls[0][1] == path


def test_run_refuses_existing_out_before_measuring(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    monkeypatch.setattr(bench, "measure_ours", lambda *a, **k: pytest.fail("measured anyway"))
    with pytest.raises(BayesError, match="already exists"):
        bench.run(parse("--out", str(out)))


# --------------------------------------------------------------------------- smoke

@pytest.mark.integration
def test_measure_ours_tiny_smoke():
    t = bench.measure_ours(fits=2, draws=30, tune=30)
    assert t.compilations == 1
    assert len(t.refit_seconds) == 2 and all(s > 0 for s in t.refit_seconds)
    assert t.cold_seconds > 0 and t.samples_per_fit == 4 * 30
