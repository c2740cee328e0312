"""Sensitivity helpers that need no sampling: the SD-as-SEM reading and the wide tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes import load_builtin
from bayes.models.cells import make_cell
from bayes.sensitivity import Reweighted, format_sensitivity, key_results, method_note, read_as_se, wide
from bayes.sampling import Pending


@pytest.fixture(scope="module")
def seed():
    return load_builtin("seed")


def test_reading_one_cohort_as_sem_moves_only_its_sds(seed):
    se = read_as_se(seed, ["splenocytes"])
    before, after = seed.table, se.table
    spl = (before["cohort"] == "splenocytes").to_numpy()
    assert np.array_equal(after.loc[spl, "se"].to_numpy(), before.loc[spl, "sd"].to_numpy())
    assert after.loc[spl, "sd"].isna().all()
    pd.testing.assert_frame_equal(after[~spl], before[~spl])
    assert se.data_hash != seed.data_hash and "SEM" in se.source


def test_sem_reading_makes_the_arm_sd_grow_with_root_n(seed):
    """SD = SEM * sqrt(n): at n = 9 the model sees three times the reported spread."""
    rows = read_as_se(seed).cell("imatinib_il2_melanoma", "ifn_gamma")
    cell = make_cell(rows)
    n = np.full((1, 4), 9.0)
    var_se = cell.inputs(n)["obs_var"]
    var_sd = make_cell(seed.cell("imatinib_il2_melanoma", "ifn_gamma")).inputs(n)["obs_var"]
    np.testing.assert_allclose(var_se, 9 * var_sd)


def test_rates_are_untouched_by_the_sem_reading(seed):
    table = read_as_se(seed).table
    surv = table[table["endpoint"] == "survival"]
    pd.testing.assert_frame_equal(surv, seed.table[seed.table["endpoint"] == "survival"])


def _frame(labels, p):
    rows = []
    for label, prob in zip(labels, p):
        rows.append({"n_treatment": label, "study": "s", "endpoint": "tumor_volume", "reference": "bliss",
                     "arm": "A+B", "mean": 0.5, "ci_low": 0.1, "ci_high": 0.9, "ci_prob": 0.95,
                     "p_synergy": prob, "diagnostics": "ok" if prob > 0.5 else "FAILED"})
    return pd.DataFrame(rows)


def test_wide_table_keeps_sweep_order_and_marks_failed_fits():
    frame = _frame(["5", "3", "marginal"], [0.99, 0.4, 0.97])
    table = wide(frame, "n_treatment")
    assert list(table.columns) == ["5", "3", "marginal"]
    assert table.iloc[0].tolist() == ["0.50 (0.99)", "0.50 (0.40) !", "0.50 (0.97)"]
    text = "\n".join(format_sensitivity(frame))
    assert "n-sensitivity" in text and "FAILED (3)" in text


def test_key_results_keep_bliss_and_pooled_rows_only():
    frame = pd.concat([_frame(["x"], [0.9]).assign(reference=r) for r in ("bliss", "hsa", "pooled", "tgi")])
    assert sorted(key_results(frame)["reference"]) == ["bliss", "pooled"]


def test_the_headline_fit_is_reused_not_refitted(seed, monkeypatch):
    """n-sensitivity refits only the assumed n; 'marginal' comes from the headline fit,
    unless the assumed values widen the n range (then the marginal prior differs)."""
    import bayes.sensitivity as sens

    calls = []

    class Fake:
        def __init__(self, n):
            calls.append(n)
            self.synergy = _frame(["x"], [0.9]).drop(columns="n_treatment")
            self.metadata = {"retried": {}}

    events = []

    def start_fit(study, **kw):
        events.append(("start", kw["n"].value))
        return Pending(lambda: events.append(("finish", kw["n"].value)) or Fake(kw["n"]))

    monkeypatch.setattr(sens, "start_fit", start_fit)
    main = _frame(["x"], [0.42]).drop(columns="n_treatment")
    table = sens.n_sensitivity(seed, model="joint", values=(5, 10), low=3, high=20, main=main)
    assert [c.mode for c in calls] == ["fixed", "fixed"]
    # every refit is started (sampling in the background) before the first is waited for
    assert events == [("start", 5), ("start", 10), ("finish", 5), ("finish", 10)]
    assert table.set_index("n_treatment").loc["marginal", "p_synergy"] == 0.42
    calls.clear()
    sens.n_sensitivity(seed, model="joint", values=(5, 30), low=3, high=20, main=main)
    assert [c.mode for c in calls] == ["fixed", "fixed", "marginal"] and calls[-1].high == 30


def test_reweighting_serves_the_variants_it_can_and_refits_the_rest(seed, monkeypatch):
    """With a headline fit as ``base``, each variant is first offered to
    ``reweight``; one it refuses is refitted, and ``method`` records which.  A
    refusal on k or ESS hands over the draws, and the refit starts from them
    ("warm refit"); one for other reasons (different free variables) starts
    the usual way."""
    import bayes.sensitivity as sens

    refits, offered = {}, []

    class Fake:
        def __init__(self, n, init):
            refits[n.value] = init
            self.synergy = _frame(["x"], [0.6]).drop(columns="n_treatment")
            self.metadata = {"retried": {"joint model": "sampled again at target_accept 0.99 after 2 divergent "
                                                        "transition(s) at 0.95"} if n.value == 15 else {}}

    def fake_reweight(base, priors, study, *, n=None, **kw):
        offered.append(n.value)
        if n.value == 5:
            return Reweighted(_frame(["x"], [0.8]).drop(columns="n_treatment"), 0.21, 3000.0)
        if n.value == 10:
            return Reweighted(None, 1.3, 12.0, "Pareto k 1.30, ESS 12: needs k <= 0.7 and ESS >= 400",
                              init=["draws"])
        return Reweighted(None, np.nan, np.nan, "different free variables or transforms")

    monkeypatch.setattr(sens, "start_fit", lambda study, **kw: Pending(lambda: Fake(kw["n"], kw["init"])))
    monkeypatch.setattr(sens, "reweight", fake_reweight)
    lines = []
    main = _frame(["x"], [0.42]).drop(columns="n_treatment")
    table = sens.n_sensitivity(seed, model="joint", values=(5, 10, 15), low=3, high=20, main=main,
                               base=("fit", "priors"), progress=lines.append)
    by = table.set_index("n_treatment")
    assert offered == [5, 10, 15] and refits == {10: ["draws"], 15: None}      # marginal reused
    assert by.loc["5", "method"] == "reweighted" and by.loc["5", "p_synergy"] == 0.8
    assert by.loc["5", "pareto_k"] == 0.21 and by.loc["5", "is_ess"] == 3000.0
    assert by.loc["10", "method"] == "warm refit" and by.loc["10", "p_synergy"] == 0.6
    assert by.loc["10", "pareto_k"] == 1.3                               # why it was refitted
    assert by.loc["15", "method"] == "refit"
    assert by.loc["15", "retried"].startswith("sampled again") and by.loc["10", "retried"] == ""
    assert by.loc["marginal", "method"] == "headline fit"
    assert any("10: refitting from the headline fit's draws (not reweighted: Pareto k 1.30" in line
               for line in lines)
    assert any("15: refitting (not reweighted: different free variables" in line for line in lines)
    note = method_note(table, "n_treatment")
    assert note == ("reweighted from the headline fit's draws by PSIS (Pareto k, ESS): 5 (k 0.21, ESS 3000); "
                    "refitted, chains started at the headline fit's draws: 10; refitted: 15; "
                    "15: sampled again at target_accept 0.99 after 2 divergent transition(s) at 0.95")
    assert note in "\n".join(format_sensitivity(table))


def test_tables_without_a_method_column_have_no_note():
    assert method_note(_frame(["3"], [0.9]), "n_treatment") == ""
