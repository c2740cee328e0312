"""The report built from stored pieces (tests/fixtures/report/), without sampling.

Structure is checked by parsing the HTML: every section, table and figure is
present and non-empty, the page needs nothing from the network, the Markdown
twin points at figure files that exist, and the words come from the numbers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes
from bayes import render, report
from bayes.errors import BayesError
from bayes.figures import PNG_SIGNATURE

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report"
SECTIONS = ["conclusions", "data", "synergy", "priors", "ppc", "nk_link", "comparison", "sensitivity",
            "diagnostics", "reproducibility"]
FIGURES = {"forest", "prior_posterior", "ppc", "nk_link", "n_posterior"}
TABLES = {"data", "checks", "n_posterior", "synergy_joint", "arms", "prior_sets", "prior_predictive",
          "prior_synergy", "ppc", "link", "comparison", "interactions", "robustness", "prior_sensitivity",
          "n_sensitivity", "se_what_if", "psense", "diagnostics"}


class Page(HTMLParser):
    """Collects sections, tables (with row counts), images and anything that would need the network."""

    def __init__(self):
        super().__init__()
        self.sections, self.tables, self.images, self.external, self.scripts = [], {}, {}, [], 0
        self._table, self._figure = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "table":
            self._table = a.get("data-name")
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1
        elif tag == "figure":
            self._figure = a.get("data-name")
        elif tag == "img":
            self.images[self._figure] = a["src"]
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = a.get(key, "")
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def study():
    return bayes.load_builtin("seed")


@pytest.fixture(scope="module")
def data(study):
    return report.load(FIXTURE, study)


@pytest.fixture(scope="module")
def written(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report.write(data, out)
    return out


@pytest.fixture(scope="module")
def page(written):
    parser = Page()
    parser.feed((written / "report.html").read_text())
    return parser


def test_every_section_in_order(page):
    assert page.sections == SECTIONS


def test_every_table_is_present_with_rows(page):
    assert TABLES <= set(page.tables)
    empty = [name for name, rows in page.tables.items() if rows < 2]      # header + at least one row
    assert not empty


def test_figures_are_embedded_pngs(page, written):
    assert set(page.images) == FIGURES
    for name, src in page.images.items():
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
        assert (written / "figures" / f"{name}.png").read_bytes() == png


def test_page_opens_offline(page):
    assert page.external == [] and page.scripts == 0


def test_markdown_twin_has_the_same_sections_and_existing_figures(written):
    text = (written / "report.md").read_text()
    for anchor in SECTIONS:
        assert f'<a id="{anchor}"></a>' in text
    linked = [line.split("](", 1)[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert {Path(p).stem for p in linked} == FIGURES
    for path in linked:
        assert (written / path).stat().st_size > 10_000
    assert "| comparison |" not in text          # tables are rendered, not named
    assert text.count("|---|") >= len(TABLES)


def test_tables_are_also_written_as_csv(written):
    names = {p.stem for p in (written / "tables").glob("*.csv")}
    assert TABLES <= names
    comparison = pd.read_csv(written / "tables" / "comparison.csv")
    assert set(comparison["model"]) == {"additive", "factorial", "joint", "link"}


def test_conclusions_quote_the_computed_numbers(data):
    lines = report.conclusions(data)
    bliss = data.fit.synergy[data.fit.synergy["reference"] == "bliss"]
    for r in bliss.itertuples():
        phrase = report.p_phrase(r.p_synergy, getattr(r, "p_mcse", float("nan")))   # fixture: no error column
        assert any(phrase in line and r.endpoint.replace("_", " ") in line for line in lines)
    assert data.comparison.sentence in lines and data.link.sentence in lines


def test_failed_diagnostics_are_flagged_first(data, page, written):
    assert not data.fit.passed                  # the fixture's tiny draws fail the gate on purpose
    assert report.conclusions(data)[0].startswith("WARNING")
    assert 'class="warn"' in (written / "report.html").read_text() or "WARNING" in (written / "report.md").read_text()


def test_run_json_records_provenance(written, data):
    run = json.loads((written / "run.json").read_text())
    assert run["data_hash"] == data.study.data_hash
    assert run["priors"]["name"] == "default" and run["sampler"]["seed"] == 1
    assert run["problems"] == []


def test_refuses_to_overwrite_a_report(data, written):
    before = (written / "report.html").read_bytes()
    with pytest.raises(BayesError, match="already holds a report"):
        report.write(data, written)
    assert (written / "report.html").read_bytes() == before


def test_a_broken_figure_is_reported_not_fatal(data, tmp_path, monkeypatch):
    from bayes import figures

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(figures, "nk_link", broken)
    report.write(dataclasses.replace(data, figures={}), tmp_path)     # drawn anew, not from the cache
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["problems"] == ["figure 'nk_link' could not be drawn: RuntimeError: no ink"]
    assert "could not be drawn" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "figures" / "nk_link.png").exists()


def test_load_refuses_a_folder_that_is_not_a_report(tmp_path, study):
    with pytest.raises(BayesError, match="not a report folder"):
        report.load(tmp_path, study)


def _sweep(column, labels, probs):
    return pd.DataFrame({column: labels, "study": "s", "endpoint": "tumor_volume", "reference": "bliss",
                         "arm": "A+B", "mean": 0.5, "ci_low": 0.0, "ci_high": 1.0, "ci_prob": 0.95,
                         "p_synergy": probs, "diagnostics": "ok"})


def test_robustness_says_whether_the_conclusion_survives(data):
    held = report.ReportData(study=data.study, fit=data.fit,
                             tables={"prior_sensitivity": _sweep("prior_set", ["a", "b"], [0.96, 0.999])})
    changed = report.ReportData(study=data.study, fit=data.fit,
                                tables={"n_sensitivity": _sweep("n_treatment", ["3", "20"], [0.70, 0.99])})
    assert bool(report.robustness(held)["conclusion holds"].iloc[0])
    row = report.robustness(changed).iloc[0]
    assert not row["conclusion holds"] and row["under_low"] == "n per arm: 3" and row["p_low"] == 0.70
    text = " ".join(report.conclusions(changed))
    assert "conclusion changes" in text and "0.70 under n per arm: 3" in text


@pytest.mark.parametrize("p,word", [(0.995, "virtually certain"), (0.96, "very likely"), (0.85, "likely"),
                                    (0.5, "uncertain"), (0.1, "unlikely (antagonism likely)"),
                                    (0.01, "very unlikely (antagonism very likely)")])
def test_verbal_scale(p, word):
    assert report.verbal(p) == word


def test_p_phrase_names_both_labels_when_monte_carlo_error_straddles_a_cut():
    assert report.p_phrase(0.957, 0.005) == ("P = 0.957 ± 0.005 Monte Carlo error; within two errors of the "
                                             "0.95 line, so between 'likely' and 'very likely'")
    assert report.p_phrase(0.957, 0.003) == "P = 0.957 ± 0.003 Monte Carlo error"       # 0.007 > 2 x 0.003
    assert report.p_phrase(0.21, 0.01).endswith("between 'unlikely (antagonism likely)' and 'uncertain'")
    assert report.p_phrase(1.0, 0.0) == "P = 1.000 ± 0.000 Monte Carlo error"
    assert report.p_phrase(0.5) == "P = 0.500"                 # a saved table without the error column


def test_text_is_escaped_in_html_and_markdown():
    section = render.Section("A <b>", "a").add("x < y & <script>", render.Table(
        pd.DataFrame({"col|1": ["<i>", "a|b"]}), "cap <t>", "t"))
    html_text = render.to_html("T", [section])
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text and "&lt;i&gt;" in html_text
    md = render.to_markdown("T", [section])
    assert "a\\|b" in md and "col\\|1" in md


def test_a_users_prior_file_is_named_and_read_back(data, tmp_path):
    """A report fitted with --priors FILE reads that file again for the prior-vs-posterior figure."""
    user = FIXTURE.parents[0] / "priors" / "partial.yaml"
    mine = report.ReportData(study=data.study, fit=data.fit, link=data.link, comparison=data.comparison,
                             tables=data.tables, timings=data.timings,
                             settings={**data.settings, "priors": "sceptical_interaction",
                                       "priors_source": str(user)})
    report.write(mine, tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["problems"] == []
    text = (tmp_path / "report.md").read_text()
    assert "priors: sceptical_interaction (sha256:" in text and "run times (s): joint" in text


def test_the_rounding_the_model_assumed_is_stated(written):
    text = (written / "report.md").read_text()
    assert ("Rounding: means and SDs are taken as printed to tumor_volume 10 mm3; nk_lysis 1 % lysis; "
            "ifn_gamma 10 pg/mL (read from the printed numbers)") in text


def test_the_sensitivity_section_says_which_variants_were_reweighted(data, tmp_path):
    """A sweep table with a ``method`` column (bayes.sensitivity.sweep) gets a note
    under it naming the reweighted columns (Pareto k, ESS) and the refitted ones."""
    table = data.table("n_sensitivity").copy()
    labels = list(dict.fromkeys(table["n_treatment"]))
    method = {label: ("reweighted" if i == 0 else "refit") for i, label in enumerate(labels)}
    table = table.assign(method=table["n_treatment"].map(method),
                         pareto_k=np.where(table["n_treatment"] == labels[0], 0.21, np.nan),
                         is_ess=np.where(table["n_treatment"] == labels[0], 3222.0, np.nan))
    marked = dataclasses.replace(data, tables={**data.tables, "n_sensitivity": table})
    report.write(marked, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert (f"Reweighted from the headline fit's draws by PSIS (Pareto k, ESS): {labels[0]} (k 0.21, ESS 3222); "
            f"refitted: {', '.join(labels[1:])}.") in text


def test_prepare_saves_the_fits_and_draws_the_figures_which_write_then_reuses(data, written, tmp_path):
    """What `bayes report` does while the sensitivity refits sample: the fitted models
    are saved and every figure drawn from a ReportData without the sensitivity
    tables; write() then takes the figures from the shared cache and leaves the
    saved fits alone.  The figures are the ones a report drawn in one go has."""
    sensitivity = ("prior_sensitivity", "n_sensitivity", "se_what_if", "diagnostics")
    fitted = report.ReportData(study=data.study, fit=data.fit, factorial=data.factorial, link=data.link,
                               link_note=data.link_note, comparison=data.comparison, settings=data.settings,
                               tables={k: v for k, v in data.tables.items() if k not in sensitivity})
    report.prepare(fitted, tmp_path)
    assert set(fitted.figures) == FIGURES
    assert (tmp_path / "fit" / "posterior.nc").exists() and (tmp_path / "comparison").is_dir()
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "figures").exists()
    stamp = (tmp_path / "fit" / "posterior.nc").stat().st_mtime_ns

    final = dataclasses.replace(data, figures=fitted.figures)
    report.write(final, tmp_path, fits_saved=True)
    assert (tmp_path / "fit" / "posterior.nc").stat().st_mtime_ns == stamp
    for name in FIGURES:
        png = (tmp_path / "figures" / f"{name}.png").read_bytes()
        assert png == fitted.figures[name] == (written / "figures" / f"{name}.png").read_bytes()
    assert json.loads((tmp_path / "run.json").read_text())["problems"] == []
    assert (tmp_path / "report.md").read_text() == (written / "report.md").read_text()
