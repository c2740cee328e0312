"""Unit tests for bayes.results (save/load) and bayes.summary (formatting).

The FitResult is built by hand from a tiny DataTree and tables with the
columns bayes.analysis produces; nothing is sampled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes.errors import BayesError
from bayes.results import FILES, FitResult, load_result, node_name

ARMS = ["control", "A", "B", "A+B"]
N_SENTENCE = "ASSUMED n = 10 per arm"


def cell_tree(seed: int) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    coords = {"chain": [0, 1], "draw": np.arange(5), "arm": ARMS}
    posterior = xr.Dataset({
        "arm_mean": (("chain", "draw", "arm"), rng.uniform(0.2, 1.2, size=(2, 5, 4))),
        "interaction": (("chain", "draw", "combo"), rng.normal(-0.8, 0.1, size=(2, 5, 1))),
        "baseline": (("chain", "draw"), rng.normal(0, 0.05, size=(2, 5))),
    }, coords={**coords, "combo": ["A+B"]})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 5), bool))},
                       coords={"chain": [0, 1], "draw": np.arange(5)})
    const = xr.Dataset({"n_animals": ("arm", np.full(4, 10.0)), "scale": 1500.0,
                        "reported_mean": ("arm", [1500.0, 1350.0, 1100.0, 450.0]),
                        "reported_sd": ("arm", [250.0, 200.0, 180.0, 100.0])}, coords={"arm": ARMS})
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats, "constant_data": const})
    tree.attrs.update({"study": "s1", "endpoint": "tumour", "better": "lower", "n": N_SENTENCE})
    return tree


def synergy_frame(diag: str = "ok") -> pd.DataFrame:
    rows = []
    for ref, arm, scale, mean in [("bliss", "A+B", "log ratio of arm means", 0.788457),
                                  ("hsa", "A+B", "log ratio of arm means", 0.893818),
                                  ("ra", "A+B", "log ratio of sums of arm means", 0.228259),
                                  ("interaction", "A+B", "log median (model parameter)", 0.8),
                                  ("tgi", "A+B", "percent of control mean", 70.0)]:
        rows.append({"study": "s1", "endpoint": "tumour", "reference": ref, "arm": arm, "scale": scale,
                     "mean": mean, "sd": 0.1, "ci_low": mean - 0.2, "ci_high": mean + 0.2,
                     "ci_prob": 0.95, "p_synergy": 0.9975, "model": "factorial",
                     "n_per_arm": "10 (assumed)", "diagnostics": diag})
    return pd.DataFrame(rows)


def diagnostics_frame(passed: bool = True) -> pd.DataFrame:
    return pd.DataFrame([{"study": "s1", "endpoint": "tumour", "rhat_max": 1.002 if passed else 1.2,
                          "ess_bulk_min": 1500.0, "ess_tail_min": 1200.0, "divergences": 0 if passed else 3,
                          "draws": 1000, "chains": 4, "passed": passed,
                          "problems": "" if passed else "R-hat 1.200 > 1.01; 3 divergent transitions"}])


def arms_frame() -> pd.DataFrame:
    return pd.DataFrame([{"study": "s1", "endpoint": "tumour", "arm": a, "reported_mean": m,
                          "reported_sd": s, "n_used": 10.0, "posterior_mean": m * 1.01,
                          "ci_low": m * 0.9, "ci_high": m * 1.1, "ci_prob": 0.95}
                         for a, m, s in zip(ARMS, [1500.0, 1350.0, 1100.0, 450.0],
                                            [250.0, 200.0, 180.0, 100.0])])


def n_posterior_frame() -> pd.DataFrame:
    grid = np.arange(3, 21)
    prior = np.where(grid % 5 == 0, 0.25, 0.0)
    posterior = np.zeros(18)
    posterior[grid == 5], posterior[grid == 10], posterior[grid == 15], posterior[grid == 20] = 0.1, 0.6, 0.2, 0.1
    return pd.DataFrame({"study": "s1", "cohort": "in_vivo", "fitted_in": "tumour", "n": grid,
                         "prior": prior, "posterior": posterior, "reported": False})


def sensitivity_frame() -> pd.DataFrame:
    rows = []
    for label, mean, p in [("5", 0.61, 0.97), ("10", 0.77, 0.994), ("marginal", 0.72, 0.99)]:
        rows.append({"n_treatment": label, "study": "s1", "endpoint": "tumour", "reference": "bliss",
                     "arm": "A+B", "mean": mean, "ci_low": mean - 0.4, "ci_high": mean + 0.4,
                     "ci_prob": 0.95, "p_synergy": p, "diagnostics": "ok"})
    return pd.DataFrame(rows)


def metadata(data_hash: str = "sha256:" + "ab" * 32, ci_prob: float = 0.95) -> dict:
    return {"bayes_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00", "python": "3.12.1",
            "data_source": "seed.csv", "data_hash": data_hash, "model": "factorial",
            "n_prior": {"mode": "marginal", "value": None, "low": 3, "high": 20},
            "n_treatment": {"s1/tumour": N_SENTENCE},
            "priors": {"name": "default", "source": "priors/default.yaml", "hash": "sha256:00"},
            "sampler": {"sampler": "nutpie", "chains": 4, "draws": 1000, "tune": 1000, "seed": 1},
            "ci_prob": ci_prob, "ci_kind": "eti", "compilations": 1}


def make_result(*, passed: bool = True, data_hash: str = "sha256:" + "ab" * 32,
                ci_prob: float = 0.95, sensitivity: bool = False) -> FitResult:
    tree = xr.DataTree()
    tree[node_name("s1", "tumour")] = cell_tree(1)
    return FitResult(tree=tree, synergy=synergy_frame("ok" if passed else "FAILED"),
                     diagnostics=diagnostics_frame(passed), arms=arms_frame(),
                     metadata=metadata(data_hash, ci_prob),
                     n_posterior=n_posterior_frame(),
                     sensitivity=sensitivity_frame() if sensitivity else pd.DataFrame(),
                     checks=[("tgi", "ok", "reported TGI% matches the means")])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- save

def test_node_name_escapes_slashes():
    assert node_name("s1", "tumour") == "s1/tumour"
    assert node_name("a/b", "c/d") == "a_b/c_d"


def test_cell_returns_the_posterior_tree():
    result = make_result()
    cell = result.cell("s1", "tumour")
    np.testing.assert_array_equal(cell["posterior"]["arm_mean"].values,
                                  cell_tree(1)["posterior"]["arm_mean"].values)


def test_files():
    assert FILES == ("posterior.nc", "synergy.csv", "diagnostics.csv", "arms.csv", "n_posterior.csv",
                     "n_sensitivity.csv", "run.json", "summary.txt")


def test_save_writes_every_file_and_no_temp_files(tmp_path):
    out = make_result(sensitivity=True).save(tmp_path / "run")
    assert out == tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not list(out.glob(".*"))


def test_empty_sensitivity_is_not_written(tmp_path):
    out = make_result().save(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == sorted(set(FILES) - {"n_sensitivity.csv"})
    assert not list(out.glob(".*"))
    assert (out / "summary.txt").read_text() == make_result().format() + "\n"
    payload = json.loads((out / "run.json").read_text())
    assert payload["data_hash"] == "sha256:" + "ab" * 32
    assert payload["checks"] == [["tgi", "ok", "reported TGI% matches the means"]]
    synergy = pd.read_csv(out / "synergy.csv")
    assert list(synergy.columns) == list(synergy_frame().columns)


def test_second_save_is_refused_and_leaves_files_untouched(tmp_path):
    out = make_result().save(tmp_path / "run")
    before = snapshot(out)
    changed = make_result(passed=False, data_hash="sha256:" + "cd" * 32)
    with pytest.raises(BayesError) as info:
        changed.save(out)
    msg = str(info.value)
    assert "--force" in msg and "already holds results" in msg
    assert snapshot(out) == before


def test_save_with_overwrite_replaces(tmp_path):
    out = make_result().save(tmp_path / "run")
    before = snapshot(out)
    changed = make_result(passed=False, data_hash="sha256:" + "cd" * 32)
    changed.save(out, overwrite=True)
    after = snapshot(out)
    assert sorted(after) == sorted(set(FILES) - {"n_sensitivity.csv"})   # still no temp files
    assert after["run.json"] != before["run.json"]
    assert after["diagnostics.csv"] != before["diagnostics.csv"]
    assert json.loads(after["run.json"])["data_hash"] == "sha256:" + "cd" * 32
    assert load_result(out).metadata["data_hash"] == "sha256:" + "cd" * 32


def test_save_refuses_when_only_one_result_file_exists(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.txt").write_text("someone else's summary\n")
    with pytest.raises(BayesError, match="summary.txt"):
        make_result().save(out)
    assert (out / "summary.txt").read_text() == "someone else's summary\n"


def test_save_does_not_change_the_in_memory_tree(tmp_path):
    result = make_result()
    attrs_before = dict(result.tree.attrs)
    result.save(tmp_path / "run")
    assert dict(result.tree.attrs) == attrs_before


# --------------------------------------------------------------------------- load

def test_load_round_trips_tables_metadata_and_tree(tmp_path):
    result = make_result()
    out = result.save(tmp_path / "run")
    loaded = load_result(out)
    # CSVs are written with 6 significant digits ("%.6g"), so floats agree to ~5e-6 and
    # whole-number floats (1500.0) come back as integers
    pd.testing.assert_frame_equal(loaded.synergy, result.synergy, check_exact=False, rtol=5e-6, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.arms, result.arms, check_exact=False, rtol=5e-6, check_dtype=False)
    # (the empty `problems` text of passing rows is checked on its own below)
    pd.testing.assert_frame_equal(loaded.diagnostics.drop(columns="problems"),
                                  result.diagnostics.drop(columns="problems"), check_exact=False,
                                  rtol=5e-6, check_dtype=False)
    assert loaded.metadata == result.metadata
    assert loaded.checks == result.checks
    assert loaded.passed is True
    original = result.cell("s1", "tumour")
    again = loaded.cell("s1", "tumour")
    for group in ("posterior", "sample_stats", "constant_data"):
        xr.testing.assert_identical(again[group].to_dataset(), original[group].to_dataset())
    assert again.attrs["n"] == N_SENTENCE
    assert json.loads(loaded.tree.attrs["bayes_metadata"]) == result.metadata
    assert loaded.format() == result.format()


def test_load_keeps_empty_problem_text_of_passing_fits(tmp_path):
    # A passing fit has problems == "" (bayes.fit.diagnostics_frame joins an empty
    # list).  After save/load it must still be "", not NaN: code that reads the
    # column (e.g. `"; ".join`, `.str.split`) must not meet floats.
    result = make_result()
    failing = diagnostics_frame(False).assign(endpoint="ifn")
    result.diagnostics = pd.concat([result.diagnostics, failing], ignore_index=True)
    loaded = load_result(result.save(tmp_path / "run"))
    assert list(loaded.diagnostics["problems"]) == ["", "R-hat 1.200 > 1.01; 3 divergent transitions"]
    assert list(loaded.diagnostics["passed"]) == [True, False]


def test_load_without_posterior(tmp_path):
    out = make_result().save(tmp_path / "run")
    loaded = load_result(out, with_posterior=False)
    assert len(loaded.tree.children) == 0
    assert len(loaded.synergy) == 5


def test_loading_a_folder_without_run_json_fails(tmp_path):
    out = make_result().save(tmp_path / "run")
    (out / "run.json").unlink()
    with pytest.raises(BayesError, match=r"not a bayes result folder \(missing run.json\)"):
        load_result(out)
    with pytest.raises(BayesError, match="missing run.json, synergy.csv, diagnostics.csv"):
        load_result(tmp_path / "empty")


def test_posterior_from_another_run_is_refused(tmp_path):
    a = make_result(data_hash="sha256:" + "ab" * 32).save(tmp_path / "a")
    b = make_result(data_hash="sha256:" + "cd" * 32).save(tmp_path / "b")
    shutil.copyfile(b / "posterior.nc", a / "posterior.nc")
    with pytest.raises(BayesError, match="data hashes differ"):
        load_result(a)
    # without the posterior the tables alone still load
    assert load_result(a, with_posterior=False).metadata["data_hash"] == "sha256:" + "ab" * 32


# --------------------------------------------------------------------------- format

def test_format_passing_result():
    text = make_result().format()
    assert f"n (tumour): {N_SENTENCE}" in text
    assert ("posterior P(n) for cohort in_vivo (fitted in tumour): 5: 0.10, 10: 0.60, 15: 0.20, 20: 0.10; "
            "most probable n = 10") in text
    assert "n-sensitivity" not in text
    assert "positive = synergy" in text
    assert "intervals are 95% equal-tailed" in text
    assert "95% CI" in text
    assert "DIAGNOSTICS FAILED" not in text
    assert "Diagnostics: all 1 fits passed (R-hat <= 1.01, bulk and tail ESS >= 400" in text
    assert "worst R-hat 1.002" in text and "lowest ESS 1200" in text
    assert "s1 / tumour   [model factorial; n per arm 10 (assumed); diagnostics ok]" in text
    bliss = next(line for line in text.splitlines() if line.strip().startswith("Bliss"))
    assert "0.788" in bliss and "[0.588, 0.988]" in bliss and "0.998" in bliss
    tgi = next(line for line in text.splitlines() if line.strip().startswith("TGI %"))
    assert "70.0" in tgi
    assert "[ok] reported TGI% matches the means" in text
    assert "seed 1" in text and "nutpie, 4 chains x 1000 draws (tune 1000)" in text


def test_format_uses_the_run_ci_prob():
    text = make_result(ci_prob=0.9).format()
    assert "intervals are 90% equal-tailed" in text
    assert "90% CI" in text
    assert "95%" not in text


def test_format_failed_diagnostics_is_loud():
    result = make_result(passed=False)
    assert result.passed is False
    text = result.format()
    lines = text.splitlines()
    assert lines[0].startswith("!! DIAGNOSTICS FAILED")
    assert "DIAGNOSTICS FAILED (R-hat <= 1.01" in text
    assert "  s1 / tumour: R-hat 1.200 > 1.01; 3 divergent transitions" in text
    assert "diagnostics FAILED]" in text
    assert str(result) == text


def test_format_failed_only_when_some_row_failed():
    result = make_result()
    two = pd.concat([diagnostics_frame(True), diagnostics_frame(True).assign(endpoint="ifn")],
                    ignore_index=True)
    result.diagnostics = two
    assert "DIAGNOSTICS FAILED" not in result.format()
    two.loc[1, ["passed", "problems"]] = [False, "bulk ESS 12 < 400"]
    result.diagnostics = two
    text = result.format()
    assert text.count("DIAGNOSTICS FAILED") == 2
    assert "  s1 / ifn: bulk ESS 12 < 400" in text
    assert "s1 / tumour: " not in text.split("DIAGNOSTICS FAILED (")[1]


def test_format_of_an_empty_result():
    empty = FitResult(tree=xr.DataTree(), synergy=pd.DataFrame(), diagnostics=pd.DataFrame(),
                      arms=pd.DataFrame(), metadata={})
    text = empty.format()
    assert empty.passed is True
    assert "positive = synergy" in text
    assert text.endswith("Diagnostics: nothing was fitted.")


# --------------------------------------------------------------------------- n tables

def test_n_posterior_and_sensitivity_round_trip(tmp_path):
    result = make_result(sensitivity=True)
    loaded = load_result(result.save(tmp_path / "run"), with_posterior=False)
    pd.testing.assert_frame_equal(loaded.n_posterior, result.n_posterior, check_exact=False, rtol=5e-6,
                                  check_dtype=False)
    assert loaded.n_posterior["reported"].dtype == bool
    assert loaded.n_posterior["posterior"].sum() == pytest.approx(1.0)
    pd.testing.assert_frame_equal(loaded.sensitivity, result.sensitivity, check_exact=False, rtol=5e-6,
                                  check_dtype=False)
    assert list(loaded.sensitivity["n_treatment"]) == ["5", "10", "marginal"]   # labels stay text
    assert loaded.format() == result.format()


def test_missing_n_tables_load_as_empty_frames(tmp_path):
    out = make_result().save(tmp_path / "run")
    (out / "n_posterior.csv").unlink()
    loaded = load_result(out)
    assert loaded.n_posterior.empty and loaded.sensitivity.empty
    assert isinstance(loaded.sensitivity, pd.DataFrame)


def test_new_fields_default_to_empty_frames():
    r = FitResult(tree=xr.DataTree(), synergy=pd.DataFrame(), diagnostics=pd.DataFrame(),
                  arms=pd.DataFrame(), metadata={})
    assert r.n_posterior.empty and r.sensitivity.empty and r.checks == []
    assert not hasattr(r, "skipped")
    other = FitResult(tree=xr.DataTree(), synergy=pd.DataFrame(), diagnostics=pd.DataFrame(),
                      arms=pd.DataFrame(), metadata={})
    assert r.n_posterior is not other.n_posterior          # no shared mutable default


def test_format_prints_the_sensitivity_table():
    text = make_result(sensitivity=True).format()
    assert "n-sensitivity: score mean (P > 0) under each n per arm" in text
    line = next(l for l in text.splitlines() if "bliss" in l and "A+B" in l)
    assert "0.61 (0.97)" in line and "0.77 (0.99)" in line and "0.72 (0.99)" in line
    header = text.splitlines()[text.splitlines().index(line) - 2]
    assert header.split()[-3:] == ["5", "10", "marginal"]
