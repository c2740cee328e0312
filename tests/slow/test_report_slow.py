"""Slow tier: the report opened in a real browser, and on a table that is not the seed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import bayes
from bayes import report
from bayes.sampling import SamplerSettings

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine")
def test_report_renders_in_headless_chromium(tmp_path):
    data = report.load(FIXTURES / "report", bayes.load_builtin("seed"))
    report.write(data, tmp_path)
    url = (tmp_path / "report.html").resolve().as_uri()
    base = [_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--allow-file-access-from-files"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    for anchor in ("conclusions", "synergy", "comparison", "sensitivity", "diagnostics"):
        assert f'id="{anchor}"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,4000", url], capture_output=True,
                   timeout=120, check=True)
    assert shot.stat().st_size > 20_000


def test_report_on_a_two_study_table_skips_the_link_model_and_says_why(tmp_path):
    study = bayes.read_study(FIXTURES / "two_studies.csv")
    data = report.compute(study, settings=SamplerSettings(draws=500, tune=500, chains=2, seed=3),
                          prior_sets=("default",), n_values=(5,), smc_draws=300)
    assert data.link is None and "one study" in data.link_note.lower()
    report.write(data, tmp_path)
    table = pd.read_csv(tmp_path / "comparison" / "comparison.csv")
    assert "link" not in set(table.loc[table["log_ml"].notna(), "model"])
    html = (tmp_path / "report.html").read_text()
    assert "Not fitted:" in html and html.count("data:image/png;base64,") == 4
