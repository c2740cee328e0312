"""Unit tests for bayes.synergy: scores from hand-made posterior arm means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes import config
from bayes.design import make_design
from bayes.synergy import (REFERENCES, SCALES, cell_table, pooled_table, scale_label, scoring_response,
                           summarise_draws, synergy_scores, tgi_percent)

DESIGN = make_design([(), ("A",), ("B",), ("A", "B")])
# two draws of (C, A, B, AB)
DRAWS = np.array([[1500.0, 1350.0, 1100.0, 450.0],
                  [900.0, 1000.0, 400.0, 800.0]])


def arm_mean(values, design=DESIGN) -> xr.DataArray:
    values = np.asarray(values, float)
    return xr.DataArray(values[None, :, :], dims=("chain", "draw", "arm"),
                        coords={"chain": [0], "draw": np.arange(values.shape[0]),
                                "arm": list(design.arms)})


def expected_2x2(better):
    C, A, B, AB = DRAWS.T
    if better == "lower":
        return {"bliss": np.log(A) + np.log(B) - np.log(C) - np.log(AB),
                "hsa": np.log(np.minimum(A, B)) - np.log(AB),
                "ra": np.log(A + B) - np.log(C + AB)}
    return {"bliss": -(np.log(A) + np.log(B) - np.log(C) - np.log(AB)),
            "hsa": np.log(AB) - np.log(np.maximum(A, B)),
            "ra": np.log(C + AB) - np.log(A + B)}


@pytest.mark.parametrize("better", ["lower", "higher"])
def test_two_by_two_scores_exact(better):
    scores = synergy_scores(arm_mean(DRAWS), DESIGN, better)
    assert set(scores.data_vars) == set(REFERENCES)
    want = expected_2x2(better)
    for ref in REFERENCES:
        da = scores[ref]
        assert da.dims == ("combo", "chain", "draw")
        assert list(da["combo"].values) == ["A+B"]
        np.testing.assert_allclose(da.sel(combo="A+B", chain=0).values, want[ref], rtol=1e-12)


def test_higher_is_the_negation_of_lower_for_bliss_and_ra():
    lower = synergy_scores(arm_mean(DRAWS), DESIGN, "lower")
    higher = synergy_scores(arm_mean(DRAWS), DESIGN, "higher")
    np.testing.assert_allclose(higher["bliss"], -lower["bliss"], rtol=1e-12)
    np.testing.assert_allclose(higher["ra"], -lower["ra"], rtol=1e-12)
    # HSA is not a plain negation: the best single agent changes with direction
    assert not np.allclose(higher["hsa"], -lower["hsa"])


def test_seed_tumour_means_give_the_quoted_bliss():
    scores = synergy_scores(arm_mean([[1500.0, 1350.0, 1100.0, 450.0]]), DESIGN, "lower")
    bliss = float(scores["bliss"].sel(combo="A+B").squeeze())
    # exactly log(1350 * 1100 / (1500 * 450)) = 0.78846; the issue quotes ~0.8
    assert bliss == pytest.approx(np.log(1350 * 1100 / (1500 * 450)), rel=1e-12)
    assert bliss == pytest.approx(0.789, abs=1e-3)
    assert float(scores["hsa"].squeeze()) == pytest.approx(np.log(1100 / 450), rel=1e-12)
    assert float(scores["ra"].squeeze()) == pytest.approx(np.log(2450 / 1950), rel=1e-12)
    # all three say synergy for this table
    assert all(float(scores[r].squeeze()) > 0 for r in REFERENCES)


def test_an_additive_table_scores_zero_bliss():
    # C=100, A=50, B=40 -> Bliss-independent AB = 100 * 0.5 * 0.4 = 20
    scores = synergy_scores(arm_mean([[100.0, 50.0, 40.0, 20.0]]), DESIGN, "lower")
    assert float(scores["bliss"].squeeze()) == pytest.approx(0.0, abs=1e-12)
    # response additivity: (C - A) + (C - B) = C - AB  <=>  AB = A + B - C = -10 (impossible);
    # with AB = 20 the RA score is log(90 / 120) < 0
    assert float(scores["ra"].squeeze()) == pytest.approx(np.log(90 / 120), rel=1e-12)


THREE = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "B", "C")])
THREE_DRAWS = np.array([[1000.0, 800.0, 700.0, 900.0, 400.0, 150.0],
                        [1200.0, 1300.0, 600.0, 500.0, 700.0, 900.0]])


@pytest.mark.parametrize("better", ["lower", "higher"])
def test_three_agent_generalised_formulas(better):
    s = 1.0 if better == "lower" else -1.0
    scores = synergy_scores(arm_mean(THREE_DRAWS, THREE), THREE, better)
    assert list(scores["combo"].values) == ["A+B", "A+B+C"]
    Ctl, A, B, C, AB, ABC = THREE_DRAWS.T
    best = np.minimum if s > 0 else np.maximum
    want = {
        "A+B": {"bliss": s * (np.log(A) + np.log(B) - np.log(Ctl) - np.log(AB)),
                "hsa": s * (np.log(best(A, B)) - np.log(AB)),
                "ra": s * (np.log(A + B) - np.log(Ctl + AB))},
        "A+B+C": {"bliss": s * (np.log(A) + np.log(B) + np.log(C) - 2 * np.log(Ctl) - np.log(ABC)),
                  "hsa": s * (np.log(best(best(A, B), C)) - np.log(ABC)),
                  "ra": s * (np.log(A + B + C) - np.log(2 * Ctl + ABC))},
    }
    for combo, refs in want.items():
        for ref, values in refs.items():
            got = scores[ref].sel(combo=combo, chain=0).values
            np.testing.assert_allclose(got, values, rtol=1e-12, err_msg=f"{combo} {ref}")


def test_better_must_be_lower_or_higher():
    with pytest.raises(ValueError, match="better must be 'lower' or 'higher'"):
        synergy_scores(arm_mean(DRAWS), DESIGN, "up")


# --------------------------------------------------------------------------- TGI

def test_tgi_percent_numbers():
    tgi = tgi_percent(arm_mean([[1500.0, 1350.0, 1100.0, 450.0], [1000.0, 1100.0, 500.0, 0.0]]))
    assert list(tgi["arm"].values) == ["A", "B", "A+B"]
    np.testing.assert_allclose(tgi.sel(chain=0, draw=0).values, [10.0, 100 * 400 / 1500, 70.0], rtol=1e-12)
    np.testing.assert_allclose(tgi.sel(chain=0, draw=1).values, [-10.0, 50.0, 100.0], rtol=1e-12)


# --------------------------------------------------------------------------- summaries

def test_summarise_draws_on_a_known_normal_sample():
    rng = np.random.default_rng(7)
    x = rng.normal(0.3, 1.0, size=(4, 10_000))
    da = xr.DataArray(x, dims=("chain", "draw"))
    out = summarise_draws(da)
    flat = x.ravel()
    assert out["ci_prob"] == config.CI_PROB == 0.95
    assert out["mean"] == pytest.approx(flat.mean(), rel=1e-12)
    assert out["sd"] == pytest.approx(flat.std(ddof=1), rel=1e-12)
    assert out["ci_low"] == pytest.approx(np.quantile(flat, 0.025), rel=1e-12)
    assert out["ci_high"] == pytest.approx(np.quantile(flat, 0.975), rel=1e-12)
    assert out["p_synergy"] == pytest.approx((flat > 0).mean(), rel=1e-12)
    # and the sample behaves as N(0.3, 1): the numbers mean what they say
    assert out["mean"] == pytest.approx(0.3, abs=0.03)
    assert out["ci_low"] == pytest.approx(0.3 - 1.96, abs=0.06)
    assert out["ci_high"] == pytest.approx(0.3 + 1.96, abs=0.06)
    assert out["p_synergy"] == pytest.approx(0.6179, abs=0.01)


def test_summarise_draws_respects_ci_prob():
    x = np.arange(1, 1002, dtype=float) - 501.0          # -500 .. 500
    out = summarise_draws(xr.DataArray(x), ci_prob=0.5)
    assert out["ci_prob"] == 0.5
    assert out["ci_low"] == pytest.approx(np.quantile(x, 0.25))
    assert out["ci_high"] == pytest.approx(np.quantile(x, 0.75))
    assert out["ci_low"] == pytest.approx(-250.0) and out["ci_high"] == pytest.approx(250.0)
    assert out["p_synergy"] == pytest.approx(500 / 1001)  # zero is not > 0
    wide = summarise_draws(xr.DataArray(x), ci_prob=0.9)
    assert wide["ci_low"] == pytest.approx(-450.0) and wide["ci_high"] == pytest.approx(450.0)


def test_weighted_summaries_equal_the_summaries_of_repeated_draws():
    """Importance weights (bayes.sensitivity) act as draw counts: integer weights
    give the mean, P(> 0) and inverted-CDF quantiles of the repeated sample."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.2, 1.0, size=(2, 60))
    counts = rng.integers(0, 5, size=x.shape)
    w = xr.DataArray(counts / counts.sum(), dims=("chain", "draw"))
    out = summarise_draws(xr.DataArray(x.T, dims=("draw", "chain")), ci_prob=0.8, weights=w)  # dims in another order
    repeated = np.repeat(x.ravel(), counts.ravel())
    assert out["mean"] == pytest.approx(repeated.mean(), rel=1e-12)
    assert out["p_synergy"] == pytest.approx((repeated > 0).mean(), rel=1e-12)
    assert out["ci_low"] == pytest.approx(np.quantile(repeated, 0.1, method="inverted_cdf"), rel=1e-12)
    assert out["ci_high"] == pytest.approx(np.quantile(repeated, 0.9, method="inverted_cdf"), rel=1e-12)
    # equal weights: the unweighted mean, sd (n - 1) and P
    equal = summarise_draws(xr.DataArray(x, dims=("chain", "draw")),
                            weights=xr.DataArray(np.full(x.shape, 1 / x.size), dims=("chain", "draw")))
    plain = summarise_draws(xr.DataArray(x, dims=("chain", "draw")))
    for key in ("mean", "sd", "p_synergy"):
        assert equal[key] == pytest.approx(plain[key], rel=1e-12)


def test_the_monte_carlo_error_of_p_follows_the_effective_sample_size():
    """Independent draws: the binomial error sqrt(P(1-P)/N).  Strongly autocorrelated
    draws (an AR(1) chain with rho 0.9; the indicator of x > 0 is less autocorrelated than
    x itself, whose ESS is about N/19): between 2 and sqrt(19) times larger.
    Equal weights: the binomial error again; all draws on one side: 0."""
    rng = np.random.default_rng(5)
    iid = rng.normal(1.5, 1.0, size=(4, 5000))
    out = summarise_draws(xr.DataArray(iid, dims=("chain", "draw")))
    p = out["p_synergy"]
    binomial = np.sqrt(p * (1 - p) / iid.size)
    assert out["p_mcse"] == pytest.approx(binomial, rel=0.1)
    ar = np.zeros((4, 5000))
    for t in range(1, ar.shape[1]):
        ar[:, t] = 0.9 * ar[:, t - 1] + np.sqrt(1 - 0.81) * rng.normal(size=4)
    slow = summarise_draws(xr.DataArray(ar + 1.5, dims=("chain", "draw")))
    fast = np.sqrt(slow["p_synergy"] * (1 - slow["p_synergy"]) / ar.size)
    assert 2.0 < slow["p_mcse"] / fast < np.sqrt(19)
    weights = xr.DataArray(np.full(iid.shape, 1 / iid.size), dims=("chain", "draw"))
    weighted = summarise_draws(xr.DataArray(iid, dims=("chain", "draw")), weights=weights)
    assert weighted["p_mcse"] == pytest.approx(binomial, rel=1e-9)
    assert summarise_draws(xr.DataArray(np.abs(iid) + 0.1, dims=("chain", "draw")))["p_mcse"] == 0.0


# --------------------------------------------------------------------------- cell table

def posterior(n_draws=400, seed=3, with_interaction=True):
    rng = np.random.default_rng(seed)
    means = np.exp(np.log([1500.0, 1350.0, 1100.0, 450.0]) + rng.normal(0, 0.05, size=(n_draws, 4)))
    ds = xr.Dataset({"arm_mean": arm_mean(means)})
    if with_interaction:
        gamma = rng.normal(-0.8, 0.1, size=(1, n_draws, 1))
        ds["interaction"] = xr.DataArray(gamma, dims=("chain", "draw", "combo"),
                                         coords={"combo": ["A+B"], "chain": [0], "draw": np.arange(n_draws)})
    return ds


def by_scale(table, reference):
    return table.set_index("reference").loc[reference, "scale"]


def test_cell_table_lower():
    post = posterior()
    table = cell_table(post, DESIGN, "positive", "lower")
    assert list(table.columns) == ["reference", "arm", "scale", "mean", "sd", "ci_low", "ci_high",
                                   "ci_prob", "p_synergy", "p_mcse"]
    assert list(zip(table["reference"], table["arm"])) == [
        ("bliss", "A+B"), ("hsa", "A+B"), ("ra", "A+B"), ("interaction", "A+B"),
        ("tgi", "A"), ("tgi", "B"), ("tgi", "A+B")]
    assert table["p_synergy"].between(0, 1).all()
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    assert (table["ci_prob"] == config.CI_PROB).all()
    assert list(table["scale"]) == [SCALES[("positive", r)] for r in table["reference"]]
    assert by_scale(table, "bliss") == "log ratio of arm means"
    by = table.set_index("reference")
    gamma = post["interaction"].values.ravel()
    # lower is better: interaction is sign-aligned as -gamma (gamma < 0 = synergy)
    assert by.loc["interaction", "mean"] == pytest.approx(-gamma.mean(), rel=1e-12)
    assert by.loc["interaction", "p_synergy"] == pytest.approx((gamma < 0).mean())
    assert by.loc["interaction", "mean"] > 0
    scores = synergy_scores(post["arm_mean"], DESIGN, "lower")
    assert by.loc["bliss", "mean"] == pytest.approx(float(scores["bliss"].mean()), rel=1e-12)
    assert by.loc["bliss", "mean"] == pytest.approx(0.788, abs=0.02)
    tgi = table[table["reference"] == "tgi"].set_index("arm")
    assert tgi.loc["A+B", "mean"] == pytest.approx(70.0, abs=1.0)
    assert tgi.loc["A", "mean"] == pytest.approx(10.0, abs=1.0)


def test_cell_table_higher_has_no_tgi_and_positive_gamma_is_synergy():
    post = posterior()
    table = cell_table(post, DESIGN, "positive", "higher", ci_prob=0.8)
    assert list(table["reference"]) == ["bliss", "hsa", "ra", "interaction"]
    assert (table["ci_prob"] == 0.8).all()
    gamma = post["interaction"].values.ravel()
    row = table.set_index("reference").loc["interaction"]
    assert row["mean"] == pytest.approx(gamma.mean(), rel=1e-12)
    assert row["p_synergy"] == pytest.approx((gamma > 0).mean())
    assert row["ci_low"] == pytest.approx(np.quantile(gamma, 0.1))
    bliss = table.set_index("reference").loc["bliss", "mean"]
    assert bliss < 0   # these means are synergy for "lower", so antagonism for "higher"


def test_cell_table_without_interaction_variable():
    table = cell_table(posterior(with_interaction=False), DESIGN, "positive", "lower")
    assert "interaction" not in set(table["reference"])
    assert len(table) == 6
    assert isinstance(table, pd.DataFrame)


# --------------------------------------------------------------------------- percentages and rates

# two draws of the arm probabilities (C, A, B, AB), e.g. % survival / 100
PROBS = np.array([[0.10, 0.20, 0.30, 0.80],
                  [0.05, 0.40, 0.10, 0.50]])


@pytest.mark.parametrize("kind", ["percent", "rate"])
def test_scoring_response_uses_the_unfavourable_probability(kind):
    p = arm_mean(PROBS)
    response, direction = scoring_response(p, kind, "higher")
    assert direction == "lower"
    np.testing.assert_allclose(response.values, 1.0 - p.values, rtol=1e-12)
    response, direction = scoring_response(p, kind, "lower")
    assert direction == "lower"
    np.testing.assert_allclose(response.values, p.values, rtol=1e-12)
    # positive endpoints are scored on the arm means as they are
    response, direction = scoring_response(p, "positive", "higher")
    assert direction == "higher" and response is p


@pytest.mark.parametrize("kind", ["percent", "rate"])
def test_higher_is_better_probabilities_are_scored_on_q(kind):
    ds = xr.Dataset({"arm_mean": arm_mean(PROBS)})
    table = cell_table(ds, DESIGN, kind, "higher").set_index("reference")
    qC, qA, qB, qAB = (1.0 - PROBS).T
    bliss = np.log(qA) + np.log(qB) - np.log(qC) - np.log(qAB)
    hsa = np.log(np.minimum(qA, qB)) - np.log(qAB)
    ra = np.log(qA + qB) - np.log(qC + qAB)
    # mean over the two draws: draw 0 is strong synergy (80% vs 28% expected), draw 1 is not
    assert table.loc["bliss", "mean"] == pytest.approx(bliss.mean(), rel=1e-12)
    assert table.loc["hsa", "mean"] == pytest.approx(hsa.mean(), rel=1e-12)
    assert table.loc["ra", "mean"] == pytest.approx(ra.mean(), rel=1e-12)
    assert table.loc["bliss", "p_synergy"] == pytest.approx((bliss > 0).mean())
    assert bliss[0] == pytest.approx(np.log(0.8 * 0.7 / (0.9 * 0.2)), rel=1e-12)
    assert table.loc["bliss", "scale"] == "log ratio of probabilities of the unfavourable outcome"
    assert scale_label(kind, "interaction") == "log odds (model parameter)"
    assert "tgi" not in table.index                                  # TGI% is for positive endpoints only
    assert list(table.index) == ["bliss", "hsa", "ra"]


def test_lower_is_better_percent_is_scored_on_p_and_has_no_tgi():
    ds = xr.Dataset({"arm_mean": arm_mean(PROBS)})
    table = cell_table(ds, DESIGN, "percent", "lower").set_index("reference")
    pC, pA, pB, pAB = PROBS.T
    bliss = np.log(pA) + np.log(pB) - np.log(pC) - np.log(pAB)
    assert table.loc["bliss", "mean"] == pytest.approx(bliss.mean(), rel=1e-12)
    assert list(table.index) == ["bliss", "hsa", "ra"]


def test_rate_interaction_row_is_plus_gamma_when_higher_is_better():
    n_draws = 300
    rng = np.random.default_rng(4)
    gamma = rng.normal(0.9, 0.6, size=(1, n_draws, 1))
    probs = np.clip(rng.uniform(0.05, 0.95, size=(n_draws, 4)), 0.05, 0.95)
    ds = xr.Dataset({"arm_mean": arm_mean(probs),
                     "interaction": xr.DataArray(gamma, dims=("chain", "draw", "combo"),
                                                 coords={"combo": ["A+B"], "chain": [0],
                                                         "draw": np.arange(n_draws)})})
    row = cell_table(ds, DESIGN, "rate", "higher").set_index("reference").loc["interaction"]
    g = gamma.ravel()
    assert row["mean"] == pytest.approx(g.mean(), rel=1e-12)
    assert row["p_synergy"] == pytest.approx((g > 0).mean())
    assert 0.8 < row["p_synergy"] < 1.0
    assert row["scale"] == "log odds (model parameter)"
    lower = cell_table(ds, DESIGN, "rate", "lower").set_index("reference").loc["interaction"]
    assert lower["mean"] == pytest.approx(-g.mean(), rel=1e-12)


# --------------------------------------------------------------------------- pooled (joint model)

def test_pooled_table_rows():
    rng = np.random.default_rng(9)
    mean = rng.normal(0.4, 0.5, size=(2, 500))
    sd = np.abs(rng.normal(0.0, 0.3, size=(2, 500)))
    post = xr.Dataset({"synergy_mean": (("chain", "draw"), mean), "synergy_sd": (("chain", "draw"), sd)})
    table = pooled_table(post, ci_prob=0.9)
    assert list(table["reference"]) == ["pooled", "pooled_sd"]
    assert list(table["arm"]) == ["all combinations", "between endpoints"]
    assert (table["scale"] == "standardised interaction (units of the interaction prior sd)").all()
    pooled, spread = table.iloc[0], table.iloc[1]
    assert pooled["mean"] == pytest.approx(mean.mean(), rel=1e-12)
    assert pooled["p_synergy"] == pytest.approx((mean > 0).mean(), rel=1e-12)
    assert pooled["ci_low"] == pytest.approx(np.quantile(mean, 0.05), rel=1e-12)
    assert pooled["ci_prob"] == 0.9
    assert spread["mean"] == pytest.approx(sd.mean(), rel=1e-12)
    assert np.isnan(spread["p_synergy"])
    assert table.columns.tolist() == ["reference", "arm", "scale", "mean", "sd", "ci_low", "ci_high",
                                      "ci_prob", "p_synergy", "p_mcse"]


def test_pooled_table_is_empty_without_a_joint_synergy():
    post = xr.Dataset({"c0_baseline": (("chain", "draw"), np.zeros((1, 3)))})
    assert pooled_table(post).empty
