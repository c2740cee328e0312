"""The NK-link model discriminates carried from non-carried synergy, and runs on the seed.

Tables are simulated from the latent model itself (:func:`_table`): a latent
activation ``a(arm)`` in NK-lysis logit units drives % lysis (loading 1)
and IFN-gamma (loading 1.2, log scale); tumour volume (log scale) is
``beta . x + gamma_direct * x_AB + theta * a``.  n = 10 per arm, printed.

* carried: NK activation has a strong interaction (alpha_AB = 2), the
  tumour interaction is entirely ``theta * alpha_AB`` (theta = -1.2, benefit),
  gamma_direct = 0;
* not carried: NK responds to IL-2 (B) alone, additively (alpha_AB = 0),
  and the tumour's synergy is direct (gamma_direct = -1) with a moderate
  link (theta = -0.3).

Both tables share one structure, so the model compiles once for them.

How much the Bayes factor can say is limited by design: the outcome's
interaction is ``gamma_direct + theta * alpha_AB`` with gamma_direct ~ N(0, 1)
and theta ~ N(0, 1), so even a perfectly measured total interaction leaves
theta with posterior sd about 1 / sqrt(1 + alpha_AB^2).  With alpha_AB = 1.5
the carried table gave BF10 of only about 1; alpha_AB = 2 gives a clearer one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import bayes
from bayes.link import fit_link
from bayes.simulate import PAPER_DIGITS, endpoint_truth, simulate_study

pytestmark = pytest.mark.integration

N = 10
LOADING_IFN = 1.2


def _table(**truth):
    return bayes.study_from_frame(_frame(**truth))


def _frame(alpha: dict, alpha_ab: float, beta: dict, gamma_direct: float, theta: float, seed: int):
    rng = np.random.default_rng(seed)
    lysis = endpoint_truth("nk_lysis", "percent", "higher", baseline=-1.7, effects=dict(alpha),
                           interaction=alpha_ab, dispersion=30.0, cohort="splenocytes", unit="% lysis")
    ifn = endpoint_truth("ifn_gamma", "positive", "higher", baseline=np.log(50.0),
                         effects={k: LOADING_IFN * v for k, v in alpha.items()},
                         interaction=LOADING_IFN * alpha_ab, dispersion=0.25, cohort="splenocytes", unit="pg/mL")
    tumour = endpoint_truth("tumor_volume", "positive", "lower", baseline=np.log(1500.0),
                            effects={k: beta[k] + theta * alpha[k] for k in alpha},
                            interaction=gamma_direct + theta * alpha_ab, dispersion=0.2, cohort="in_vivo",
                            unit="mm3")
    return simulate_study([tumour, lysis, ifn], N, rng, study="sim", digits=PAPER_DIGITS)


CARRIED = dict(alpha={"A": 0.3, "B": 0.8}, alpha_ab=2.0, beta={"A": -0.1, "B": -0.1}, gamma_direct=0.0,
               theta=-1.2)
NOT_CARRIED = dict(alpha={"A": 0.0, "B": 1.0}, alpha_ab=0.0, beta={"A": -0.3, "B": -0.3}, gamma_direct=-1.0,
                   theta=-0.3)


@pytest.fixture(scope="module")
def settings(quick):
    return dataclasses.replace(quick, draws=1000, tune=1000)


@pytest.fixture(scope="module")
def fits(settings, cache):
    return {name: fit_link(_table(**truth, seed=11), settings=settings, cache=cache)
            for name, truth in (("carried", CARRIED), ("not carried", NOT_CARRIED))}


def _value(result, quantity, column, endpoint="tumor_volume"):
    t = result.table
    return float(t[(t["endpoint"] == endpoint) & (t["quantity"] == quantity)][column].iloc[0])


def test_carried_fraction_and_bayes_factor_discriminate(fits):
    carried, other = fits["carried"], fits["not carried"]
    for result in fits.values():
        assert result.diagnostics["divergences"].sum() <= 5
        assert result.diagnostics["rhat_max"].max() < 1.05
    frac_a = _value(carried, "carried fraction", "median")
    frac_b = _value(other, "carried fraction", "median")
    assert frac_a > 0.5
    assert frac_a > frac_b + 0.4
    assert _value(carried, "carried fraction", "p_share_gt_half") > _value(other, "carried fraction",
                                                                           "p_share_gt_half") + 0.3
    bf_a = _value(carried, "link (sign-aligned)", "bf10")
    bf_b = _value(other, "link (sign-aligned)", "bf10")
    assert bf_a > 2 * bf_b and bf_a > 1.5
    # the activation interaction is recovered from the immune readouts
    assert _value(carried, "activation interaction", "ci_low", "nk_lysis") > 0.3
    ci = (_value(other, "activation interaction", "ci_low", "nk_lysis"),
          _value(other, "activation interaction", "ci_high", "nk_lysis"))
    assert ci[0] < 0 < ci[1]
    # the link points in the benefit direction where it carries the synergy
    assert _value(carried, "link (sign-aligned)", "p_benefit") > 0.9


@pytest.mark.slow
def test_seed_runs_end_to_end(settings, cache, tmp_path):
    """Slow tier: the default tier runs the seed's link model end to end in
    notebooks/02_nk_link (and the link CLI on a simulated table below)."""
    result = fit_link(bayes.load_builtin(), settings=settings, cache=cache)
    table = result.table
    assert set(table["endpoint"]) >= {"tumor_volume", "survival", "nk_lysis"}
    link = table[table["quantity"] == "link (sign-aligned)"]
    for column in ("mean", "sd", "ci_low", "ci_high", "p_benefit", "bf10", "prior_sd", "posterior_density_0"):
        assert np.isfinite(link[column].to_numpy(float)).all(), column
    frac = table[table["quantity"] == "carried fraction"]
    assert np.isfinite(frac[["median", "ci_low", "ci_high", "p_share_gt_half"]].to_numpy(float)).all()
    # identifiability shown: the posterior sd of the link is below its prior sd
    assert (link["sd_ratio"] < 1).all()
    assert "ecological" in result.sentence and not math.isnan(link["bf10"].iloc[0])
    paths = result.save(tmp_path)
    assert all(p.exists() for p in paths)


def test_link_command_writes_beside_synergy_and_refuses_to_overwrite(tmp_path, capsys):
    from bayes import cli

    # the simulated 'carried' table: the same model structure as the fits above, so no new compilation
    data = tmp_path / "carried.csv"
    _frame(**CARRIED, seed=11).to_csv(data, index=False)
    out = tmp_path / "sim"
    out.mkdir()
    (out / "synergy.csv").write_text("kept\n")        # a fit's output already there
    assert cli.main(["link", str(data), "--out", str(out), "--draws", "1000", "--tune", "1000",
                     "--seed", "7"]) in (0, 3)
    printed = capsys.readouterr().out
    assert "carried fraction" in printed and "ecological" in printed and "BF10" in printed
    table = pd.read_csv(out / "link.csv")
    assert {"link (sign-aligned)", "carried fraction"} <= set(table["quantity"])
    assert (out / "synergy.csv").read_text() == "kept\n"
    before = (out / "link.csv").read_bytes()
    assert cli.main(["link", str(data), "--out", str(out)]) == 2
    assert "already holds link results" in capsys.readouterr().err
    assert (out / "link.csv").read_bytes() == before
