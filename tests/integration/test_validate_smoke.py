"""bayes validate, tiny and in this process: 3 SBC simulations of the factorial
positive family (2 chains x 30 draws, ranks among 19 draws), the files they
write, the arithmetic that links ranks, PIT and coverage, and a rerun that
resumes without refitting.  The compiled model is the process-wide one, so
in the default run it is shared with the other factorial tumour-volume fits.
"""

from __future__ import annotations

import json

import pytest

from bayes import config, validate
from bayes.cli import main
from bayes.errors import BayesError

pytestmark = pytest.mark.integration

L = 19
SETTINGS = dict(sims=3, seed=11, draws=30, tune=30, chains=2, thin_to=L, scheduler="sync")
CLI = ["validate", "--model", "factorial", "--kind", "positive", "--sims", "3", "--seed", "11",
       "--draws", "30", "--tune", "30", "--chains", "2", "--thin", str(L), "--scheduler", "sync", "--quiet"]


def _sims(out):
    return {p.stem: json.loads(p.read_text())["result"] for p in sorted((out / "sims").glob("*.json"))}


def test_sbc_smoke_ranks_coverage_files_and_resume(tmp_path, capsys):
    out = tmp_path / "sbc"
    fits = validate.FITS
    assert main([*CLI, "--out", str(out)]) in (0, 3)     # 3: calibration failed (3 sims say little)
    printed = capsys.readouterr().out
    assert "Verdict: rank uniformity" in printed and "interaction[A+B]" in printed
    assert validate.FITS - fits == 3
    for name in validate.SUMMARY_FILES:
        assert (out / name).stat().st_size > 0
    assert (out / "ecdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulations"] == 3 and not summary["failed"] and summary["settings"]["seed"] == 11
    # the sampler settings besides the counts are recorded, run-wide and per fit
    accept = config.TARGET_ACCEPT["factorial"]
    assert (summary["settings"]["target_accept"], summary["settings"]["adaptation"]) == (
        accept, config.ADAPTATION["factorial"])
    assert f"target_accept {accept}" in printed

    sims = _sims(out)
    assert sorted(sims) == [f"factorial-positive-000{i}" for i in range(3)]
    total = SETTINGS["chains"] * SETTINGS["draws"]
    for result in sims.values():
        assert result["target_accept"] == accept
        params = result["parameters"]
        assert {"interaction[A+B]", "agent_effect[A]", "agent_effect[B]", "baseline", "n[in_vivo]"} <= set(params)
        assert 3 <= result["n_true"]["in_vivo"] <= 20
        for p in params.values():
            rank, pit, cov = p["rank"], p["pit"], p["covered"]
            assert isinstance(rank, int) and 0 <= rank <= L
            assert 0.0 <= pit <= 1.0
            assert set(cov) == {"50", "80", "95"} and all(isinstance(v, bool) for v in cov.values())
            # a central interval covers the truth iff the posterior CDF at the truth is central enough
            assert cov == {k: (1 - q) / 2 <= pit <= (1 + q) / 2 for k, q in (("50", .5), ("80", .8), ("95", .95))}
            assert cov["50"] <= cov["80"] <= cov["95"]
            if p["role"] != "n":
                # the L ranked draws are a subset of all draws: no more of them below (above) the truth
                assert rank <= round(pit * total) and L - rank <= round((1 - pit) * total)
    n_params = len(next(iter(sims.values()))["parameters"])
    assert len((out / "ranks.csv").read_text().splitlines()) == 1 + 3 * n_params
    assert len(summary["uniformity"]) == n_params and len(summary["coverage"]) == 3 * n_params

    # rerun through the library: everything is read back, nothing is refitted, same numbers
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "sims").glob("*.json")}
    again = validate.run_sbc("factorial", "positive", out_dir=out, **SETTINGS)
    assert validate.FITS - fits == 3
    assert {p.name: p.stat().st_mtime_ns for p in (out / "sims").glob("*.json")} == mtimes
    assert again["uniformity"] == summary["uniformity"] and again["coverage"] == summary["coverage"]

    # other settings in the same folder are refused before anything runs
    with pytest.raises(BayesError, match="other settings"):
        validate.run_sbc("factorial", "positive", out_dir=out, **{**SETTINGS, "draws": 31})
    # the CLI refuses to overwrite a finished run without --force
    assert main([*CLI, "--out", str(out)]) == 2
    assert "already holds an SBC summary" in capsys.readouterr().err
    assert validate.FITS - fits == 3


def test_control_run_with_n_printed_fits_every_simulation(tmp_path):
    """``report_n``: the tables print n, so each fit knows it (a one-value n grid,
    its own compiled structure) and n itself is not a checked parameter."""
    summary = validate.run_sbc("factorial", "positive", out_dir=tmp_path, report_n=True,
                               **{**SETTINGS, "sims": 2})
    assert summary["simulations"] == 2 and not summary["failed"]
    assert summary["settings"]["report_n"] is True
    for result in _sims(tmp_path).values():
        assert result["report_n"] is True
        assert "n[in_vivo]" not in result["parameters"] and "interaction[A+B]" in result["parameters"]
