"""SBC arithmetic on synthetic ranks (no sampling): ranks, PIT, coverage, uniformity verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes import validate
from bayes.errors import BayesError

L = 99
SIMS = 200


def _ranks_from_posterior(rng, sims: int, post_sd: float, bias: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and PITs of a truth drawn from N(0, 1) among L draws of a normal 'posterior'.

    With data y ~ N(truth, 1) the exact posterior is N(y / 2, sqrt(1/2)); ``post_sd`` smaller than
    that is overconfident, ``bias`` shifts the posterior."""
    ranks, pits = np.empty(sims, int), np.empty(sims)
    for s in range(sims):
        truth = rng.normal()
        y = truth + rng.normal()
        draws = rng.normal(y / 2 + bias, post_sd, size=4000)
        ranks[s] = validate.rank_of(truth, validate.thin(draws.reshape(4, 1000), L), rng)
        pits[s] = validate.pit_of(truth, draws, rng)
    return ranks, pits


def _frame(ranks, pits, name="theta"):
    rows = [{"parameter": name, "role": "synergy", "rank": int(r), **validate.covered(p)}
            for r, p in zip(ranks, pits)]
    return pd.DataFrame(rows)


def test_thin_keeps_evenly_spaced_draws_of_every_chain():
    values = np.arange(4 * 250).reshape(4, 250)
    kept = validate.thin(values, 99)
    assert kept.shape == (99,)
    assert validate.thin_stride(4, 250, 99) == 10
    assert list(kept[:3]) == [0, 10, 20] and kept[25] == 250
    with pytest.raises(ValueError):
        validate.thin(np.zeros((2, 10)), 99)


def test_rank_counts_draws_below_and_breaks_ties_at_random():
    rng = np.random.default_rng(1)
    assert validate.rank_of(0.5, np.array([0.1, 0.2, 0.9]), rng) == 2
    assert validate.rank_of(-1.0, np.array([0.1, 0.2]), rng) == 0
    assert validate.rank_of(9.0, np.array([0.1, 0.2]), rng) == 2
    tied = {validate.rank_of(3.0, np.array([3.0, 3.0, 3.0]), rng) for _ in range(200)}
    assert tied == {0, 1, 2, 3}


def test_coverage_flags_follow_the_posterior_cdf_at_the_truth():
    assert validate.covered(0.5) == {"50": True, "80": True, "95": True}
    assert validate.covered(0.2) == {"50": False, "80": True, "95": True}
    assert validate.covered(0.03) == {"50": False, "80": False, "95": True}
    assert validate.covered(0.99) == {"50": False, "80": False, "95": False}


def test_rank_pit_is_uniform_and_checks_the_range():
    pit = validate.rank_pit(np.arange(L + 1).repeat(50), L, seed=3)
    assert 0 < pit.min() and pit.max() < 1
    assert abs(pit.mean() - 0.5) < 0.01
    with pytest.raises(ValueError):
        validate.rank_pit([L + 1], L)


def test_binomial_range_brackets_the_nominal_coverage():
    lo, hi = validate.binomial_range(200, 0.95)
    assert lo < 0.95 < hi and 0.91 < lo and hi < 0.99


def test_calibrated_posterior_passes_uniformity_and_coverage():
    ranks, pits = _ranks_from_posterior(np.random.default_rng(11), SIMS, np.sqrt(0.5))
    frame = _frame(ranks, pits)
    assert ranks.min() >= 0 and ranks.max() <= L
    uniform = validate.uniformity_table(frame, L)
    coverage = validate.coverage_table(frame)
    assert not uniform["flag"].any() and uniform["inside_band"].all()
    assert not coverage["flag"].any()
    verdict = validate.verdict(uniform, coverage)
    assert verdict["uniformity_pass"] and verdict["coverage_flags"] == 0


@pytest.mark.parametrize("post_sd, bias", [(0.25, 0.0), (np.sqrt(0.5), 0.6)])
def test_overconfident_or_biased_posterior_fails(post_sd, bias):
    ranks, pits = _ranks_from_posterior(np.random.default_rng(12), SIMS, post_sd, bias)
    frame = _frame(ranks, pits)
    uniform = validate.uniformity_table(frame, L)
    coverage = validate.coverage_table(frame)
    assert uniform["flag"].all() and not uniform["inside_band"].all()
    assert not validate.verdict(uniform, coverage)["uniformity_pass"]
    if bias == 0.0:   # too narrow: every interval covers too rarely
        assert coverage["flag"].all() and (coverage["observed"] < coverage["nominal"]).all()


def test_uniform_ranks_rarely_fail():
    """The false-alarm rate of the per-parameter flag is about its nominal 5%."""
    rng = np.random.default_rng(5)
    band = validate.ecdf_band(SIMS)
    flags = [validate.uniformity(validate.rank_pit(rng.integers(0, L + 1, SIMS), L, seed=k), band)
             for k in range(200)]
    p_flags = np.mean([f["p_value"] < 0.05 for f in flags])
    band_flags = np.mean([not f["inside_band"] for f in flags])
    assert p_flags < 0.12 and band_flags < 0.12


def test_family_and_seeds():
    assert validate.family_tag("factorial", "rate") == "factorial-rate"
    assert validate.family_tag("joint") == "joint"
    for bad in [("factorial", None), ("joint", "rate"), ("additive", None)]:
        with pytest.raises(BayesError):
            validate.family_tag(*bad)
    a = validate.derived_seeds(1, "joint", 0)
    assert a == validate.derived_seeds(1, "joint", 0)
    assert a != validate.derived_seeds(1, "joint", 1) != validate.derived_seeds(1, "link", 0)
    assert len(set(a.values())) == len(a)


def test_tasks_are_one_per_simulation_with_json_kwargs():
    import json

    tasks = validate.make_tasks("factorial", "positive", 3, 7, draws=20, tune=20, chains=2, thin_to=19)
    assert [t.key for t in tasks] == ["factorial-positive-0000", "factorial-positive-0001", "factorial-positive-0002"]
    assert all(t.func == "bayes.validate:sbc_one" for t in tasks)
    assert json.loads(json.dumps(tasks[2].kwargs))["index"] == 2


def test_verdict_fails_when_many_parameters_deviate_mildly():
    """No p-value below the Bonferroni level, but 5 of 8 flagged at 0.05 is not chance."""
    uniform = pd.DataFrame({"p_value": [0.02] * 5 + [0.5] * 3})
    uniform["flag"] = uniform["p_value"] < 0.05
    uniform["inside_band"] = True
    uniform["bonferroni_fail"] = uniform["p_value"] < 0.05 / len(uniform)
    coverage = pd.DataFrame({"flag": [False] * 24})
    verdict = validate.verdict(uniform, coverage)
    assert verdict["bonferroni_pass"] and not verdict["uniformity_pass"]
    assert verdict["flag_count_p"] < 0.001
    one = validate.verdict(uniform.iloc[[0, 5, 6, 7]].assign(bonferroni_fail=False), coverage)
    assert one["uniformity_pass"]            # 1 of 4 flagged: chance
