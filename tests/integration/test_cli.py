"""The CLI end to end on the built-in study and on a user's CSV (tiny draws)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayes import cli

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"
SMALL = ["--draws", "1000", "--tune", "1000", "--seed", "11"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    # the main job exactly as the README runs it (default draws, seed and model)
    out = tmp_path_factory.mktemp("seed") / "out"
    code = cli.main(["fit", "--out", str(out)])
    return code, out


def test_fit_builtin_writes_every_file_and_a_positive_tumour_bliss(seed_run, capsys):
    code, out = seed_run
    assert code == 0
    for name in ("posterior.nc", "synergy.csv", "diagnostics.csv", "arms.csv", "n_posterior.csv",
                 "run.json", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "synergy.csv")
    for col in ("study", "endpoint", "reference", "mean", "sd", "ci_low", "ci_high", "ci_prob", "p_synergy"):
        assert col in table.columns
    bliss = table.query("endpoint == 'tumor_volume' and reference == 'bliss'").iloc[0]
    # delta-method value from the means at n = 10 is 0.789; with n unknown (posterior mass
    # mostly on n = 5) and partial pooling the posterior is lower and wider, still clearly > 0
    assert 0.5 < bliss["mean"] < 0.95 and bliss["sd"] > 0.15
    assert bliss["p_synergy"] > 0.98 and bliss["ci_low"] > 0
    assert bliss["ci_prob"] == 0.95
    assert set(table["endpoint"]) == {"tumor_volume", "survival", "nk_lysis", "ifn_gamma", "all endpoints"}
    for endpoint in ("tumor_volume", "survival", "nk_lysis", "ifn_gamma"):
        assert {"bliss", "hsa", "ra", "interaction"} <= set(table.query("endpoint == @endpoint")["reference"])
    pooled = table.query("reference == 'pooled'").iloc[0]
    assert pooled["mean"] > 0 and 0.9 < pooled["p_synergy"] <= 1
    # IFN-gamma: clearly super-additive (RA) but not clearly multiplicative-synergistic (Bliss)
    ifn = table.query("endpoint == 'ifn_gamma'").set_index("reference")
    assert ifn.loc["ra", "p_synergy"] > 0.99 and ifn.loc["bliss", "p_synergy"] < 0.9
    tgi = table.query("reference == 'tgi'").set_index("arm")["mean"]
    assert abs(tgi["imatinib+IL-2"] - 70) < 5 and abs(tgi["imatinib"] - 10) < 8


def test_fit_records_the_stamp(seed_run):
    _, out = seed_run
    meta = json.loads((out / "run.json").read_text())
    assert meta["bayes_version"] == "0.1.0"
    assert meta["data_hash"].startswith("sha256:")
    assert meta["n_prior"] == {"mode": "marginal", "value": None, "low": 3, "high": 20, "pad": False}
    assert "marginalised over {5, 10, 15, 20}" in meta["n_treatment"]["imatinib_il2_melanoma/tumor_volume"]
    assert meta["model"] == "joint"
    assert meta["sampler"]["draws"] == 1000 and meta["sampler"]["seed"] == 20261129
    assert meta["sampler"]["target_accept"] == 0.95 and meta["sampler"]["adaptation"] == "low_rank"
    assert meta["priors"]["set"]["priors"]["interaction"]["prior"]["dist"] == "Normal"
    import xarray as xr

    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert json.loads(tree.attrs["bayes_metadata"])["data_hash"] == meta["data_hash"]
    post = tree["imatinib_il2_melanoma/tumor_volume/posterior"]
    assert list(post["arm"].values) == ["control", "imatinib", "IL-2", "imatinib+IL-2"]


def test_summary_reprints_without_refitting(seed_run, capsys):
    _, out = seed_run
    assert cli.main(["summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == (out / "summary.txt").read_text().strip()
    assert "marginalised over {5, 10, 15, 20}" in printed and "positive = synergy" in printed
    assert "Bliss" in printed and "imatinib+IL-2" in printed
    assert "posterior P(n) for cohort in_vivo" in printed


def test_existing_results_are_not_overwritten(seed_run, capsys):
    _, out = seed_run
    before = (out / "synergy.csv").read_bytes()
    assert cli.main(["fit", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "already holds results" in err and "--force" in err
    assert (out / "synergy.csv").read_bytes() == before


def test_users_csv_with_reported_n(tmp_path, capsys):
    # the fixture's tumour-weight rows only (mean ± SE with n = 8): one model structure to compile;
    # its other endpoints are covered by the data tests
    lines = (FIXTURES / "two_agent_other.csv").read_text().splitlines()
    mine = tmp_path / "other.csv"
    mine.write_text("\n".join([lines[0]] + [line for line in lines[1:] if ",tumor_weight," in line]) + "\n")
    out = tmp_path / "other"
    code = cli.main(["fit", str(mine), "--out", str(out), "--model", "factorial", *SMALL])
    assert code == 0
    table = pd.read_csv(out / "synergy.csv")
    assert table["n_per_arm"].str.contains("reported").all()
    assert set(table["endpoint"]) == {"tumor_weight"}
    assert "drugB+drugA" in set(table["arm"])  # agent order follows the single-agent rows


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = FIXTURES / "broken" / "no_control.csv"
    assert cli.main(["fit", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_control.csv" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_failed_diagnostics_are_loud_and_exit_3(tmp_path, capsys):
    out = tmp_path / "tiny"
    code = cli.main(["fit", "--out", str(out), "--model", "factorial", "--draws", "30", "--tune", "30",
                     "--seed", "3"])
    assert code == 3
    printed = capsys.readouterr().out
    assert printed.startswith("!! DIAGNOSTICS FAILED")
    assert "ESS" in printed
    assert "FAILED" in set(pd.read_csv(out / "synergy.csv")["diagnostics"])


def test_console_script_runs_in_a_fresh_process():
    exe = shutil.which("bayes", path=str(Path(sys.executable).parent))
    assert exe, "console script 'bayes' is not installed next to the interpreter"
    done = subprocess.run([exe, "check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reported TGI 70.0% vs 70.0%" in done.stdout
    missing = subprocess.run([exe, "fit", "no_such.csv"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_fixed_n_and_sensitivity_table(tmp_path, capsys):
    out = tmp_path / "sens"
    # seven fits of each endpoint: 4 x 500 draws are plenty for interval widths
    code = cli.main(["fit", "--out", str(out), "--model", "factorial", "--n", "10", "--n-sensitivity",
                     "--draws", "500", "--tune", "500", "--seed", "11"])
    assert code in (0, 3)
    table = pd.read_csv(out / "synergy.csv")
    assert table["n_per_arm"].eq("10 (assumed)").all()
    sens = pd.read_csv(out / "n_sensitivity.csv")
    assert list(sens["n_treatment"].astype(str).unique()) == ["3", "5", "8", "10", "15", "20", "marginal"]
    tumour = sens.query("endpoint == 'tumor_volume'").set_index(sens.query("endpoint == 'tumor_volume'")["n_treatment"].astype(str))
    # more animals, narrower interval: the n = 20 interval is shorter than the n = 3 one
    width = tumour["ci_high"] - tumour["ci_low"]
    assert width["20"] < 0.7 * width["3"]
    printed = capsys.readouterr().out
    assert "n-sensitivity" in printed and "marginal" in printed


def test_bad_n_option_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["fit", "--out", str(tmp_path / "x"), "--n", "1"])
    assert stop.value.code == 2
    assert "not 'marginal' or a whole number" in capsys.readouterr().err
