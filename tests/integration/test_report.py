"""`bayes report` end to end on the built-in study with small draws."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bayes import cli

pytestmark = pytest.mark.integration

SMALL = ["--draws", "300", "--tune", "300", "--chains", "2", "--cores", "1", "--seed", "5",
         "--n-values", "5", "--prior-sets", "default,sceptical"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "seed"
    code = cli.main(["report", "--out", str(out), "--quiet", *SMALL])
    return code, out


def test_exit_code_follows_the_main_fits_diagnostics(run):
    code, out = run
    passed = pd.read_csv(out / "fit" / "diagnostics.csv")["passed"].all()
    assert code == (0 if passed else 3)


def test_report_files_and_sections(run):
    _, out = run
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for anchor in ("conclusions", "data", "synergy", "priors", "ppc", "nk_link", "comparison",
                   "sensitivity", "diagnostics", "reproducibility"):
        assert f'<section id="{anchor}">' in html and f'<a id="{anchor}"></a>' in md
    assert html.count("data:image/png;base64,") == 5
    assert len(list((out / "figures").glob("*.png"))) == 5


def test_comparison_table_is_filled_with_computed_numbers(run):
    _, out = run
    table = pd.read_csv(out / "comparison" / "comparison.csv")
    assert list(table["model"]) == ["additive", "factorial", "joint", "link"]
    for col in ("elpd_loo", "se", "p_loo", "weight", "log_ml", "log_ml_sd", "log10_bf_vs_additive"):
        assert table[col].map(math.isfinite).all(), col
    assert table["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert table.loc[table["model"] == "additive", "log10_bf_vs_additive"].item() == 0.0
    inter = pd.read_csv(out / "comparison" / "interactions.csv")
    assert set(inter["endpoint"]) == {"tumor_volume", "survival", "nk_lysis", "ifn_gamma"}
    assert (inter["bf10"] > 0).all()


def test_sensitivity_tables_cover_every_variant(run):
    _, out = run
    prior = pd.read_csv(out / "data" / "prior_sensitivity.csv")
    assert list(dict.fromkeys(prior["prior_set"])) == ["default", "sceptical"]
    n = pd.read_csv(out / "data" / "n_sensitivity.csv", dtype={"n_treatment": str})
    assert list(dict.fromkeys(n["n_treatment"])) == ["5", "marginal"]
    se = pd.read_csv(out / "data" / "se_what_if.csv")
    assert list(dict.fromkeys(se["reading"])) == ["as entered (SD)", "SEM in in_vivo", "SEM in splenocytes",
                                                  "SEM everywhere"]
    # the headline is not refitted: its rows are the main fit's
    main = pd.read_csv(out / "fit" / "synergy.csv").query("reference == 'bliss'")
    first = prior[(prior["prior_set"] == "default") & (prior["reference"] == "bliss")]
    assert list(first["p_synergy"].round(6)) == list(main["p_synergy"].round(6))
    psense = pd.read_csv(out / "data" / "psense.csv")
    assert {"synergy_mean", "synergy_sd"} <= set(psense["parameter"])
    assert psense[["prior", "likelihood"]].ge(0).all().all()


def test_sem_reading_widens_the_splenocyte_intervals(run):
    """Read as SEM, the '±' means sqrt(n) times more spread, so NK-lysis Bliss gets less certain."""
    _, out = run
    se = pd.read_csv(out / "data" / "se_what_if.csv").query("endpoint == 'nk_lysis' and reference == 'bliss'")
    width = (se["ci_high"] - se["ci_low"]).to_numpy()
    assert width[2] > width[0]          # SEM in splenocytes vs as entered


def test_run_json_and_refusal_to_overwrite(run, capsys):
    _, out = run
    meta = json.loads((out / "run.json").read_text())
    assert meta["report"]["evidence"] == "bridge" and "smc_draws" not in meta["report"]
    assert meta["report"]["prior_sets"] == ["default", "sceptical"]
    assert "marginal likelihoods: bridge sampling" in (out / "report.md").read_text()
    assert set(meta["timings_s"]) >= {"joint", "factorial", "additive", "link", "comparison"}
    before = (out / "report.html").read_bytes()
    assert cli.main(["report", "--out", str(out), *SMALL]) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert (out / "report.html").read_bytes() == before
