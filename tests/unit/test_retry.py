"""A fit with divergent transitions is sampled again at a higher target, one short of the gate's
R-hat or ESS with more draws (no sampling here)."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from bayes import config
from bayes.sampling import (SamplerSettings, _sample_with_retry, diagnose, diagnostics_frame, divergences,
                            thinned)


def fake_tree(divergent: int, chains: int = 4, draws: int = 500, seed: int = 0, shift: float = 0.0) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    diverging = np.zeros((chains, draws), bool)
    diverging.flat[:divergent] = True
    mu = rng.normal(size=(chains, draws))
    mu[0] += shift          # one chain off the others: R-hat above 1 (1.013 at 0.35 here, 1.47 at 3)
    post = xr.Dataset({"mu": (("chain", "draw"), mu)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


class Runs:
    """A stand-in sampler: the divergences of each target it is run at, and whether a
    fit with a given number of draws has a stuck chain."""

    def __init__(self, divergent: dict[float, int], shift: dict[int, float] | None = None):
        self.divergent, self.shift, self.targets, self.draws = divergent, shift or {}, [], []

    def __call__(self, target: float, draws: int = 500) -> xr.DataTree:
        self.targets.append(target)
        self.draws.append(draws)
        return fake_tree(self.divergent[target], draws=draws, shift=self.shift.get(draws, 0.0))


NEAR = 0.35     # a chain this far off gives R-hat just over the gate's 1.01


def judge(tree):
    return diagnose(tree, ["mu"])


def test_a_fit_without_divergences_is_kept_and_says_so():
    run = Runs({0.9: 0})
    tree = _sample_with_retry(run, 0.9, 500, retry=True)
    assert run.targets == [0.9]
    assert tree.attrs == {"target_accept": 0.9, "first_divergences": 0}
    d = diagnose(tree, ["mu"])
    assert (d.target_accept, d.first_divergences, d.retry_note) == (0.9, 0, "")


def test_divergences_bring_one_more_fit_at_the_retry_target_and_it_is_the_one_kept():
    run = Runs({0.9: 3, config.RETRY_TARGET_ACCEPT: 0})
    tree = _sample_with_retry(run, 0.9, 500, retry=True)
    assert run.targets == [0.9, config.RETRY_TARGET_ACCEPT]
    d = diagnose(tree, ["mu"])
    assert d.divergences == 0 and d.passed
    assert (d.target_accept, d.first_divergences, d.first_target_accept) == (config.RETRY_TARGET_ACCEPT, 3, 0.9)
    assert d.retry_note == (f"sampled again at target_accept {config.RETRY_TARGET_ACCEPT:g} after 3 divergent "
                            "transition(s) at 0.9")
    frame = diagnostics_frame([("s", "e", d)])
    assert frame.loc[0, "retry"] == d.retry_note and frame.loc[0, "first_divergences"] == 3


def test_only_one_retry_and_its_divergences_still_fail_the_gate():
    run = Runs({0.95: 2, config.RETRY_TARGET_ACCEPT: 1})
    d = diagnose(_sample_with_retry(run, 0.95, 500, retry=True), ["mu"])
    assert run.targets == [0.95, config.RETRY_TARGET_ACCEPT]
    assert not d.passed and d.problems == ["1 divergent transitions"]


def test_no_retry_when_switched_off_or_already_at_the_retry_target():
    run = Runs({0.9: 5, config.RETRY_TARGET_ACCEPT: 4})
    assert diagnose(_sample_with_retry(run, 0.9, 500, retry=False), ["mu"]).divergences == 5
    assert diagnose(_sample_with_retry(run, config.RETRY_TARGET_ACCEPT, 500, retry=True), ["mu"]).divergences == 4
    assert run.targets == [0.9, config.RETRY_TARGET_ACCEPT]


def test_a_fit_short_of_the_gates_r_hat_is_sampled_again_for_longer_and_says_why():
    run = Runs({0.9: 0}, shift={500: NEAR})
    first = judge(run(0.9, 500))
    assert first.problems and first.problems[0].startswith("R-hat")
    run.targets, run.draws = [], []
    tree = _sample_with_retry(run, 0.9, 500, retry=True, judge=judge)
    d = judge(tree)
    assert run.targets == [0.9, 0.9] and run.draws == [500, 500 * config.RETRY_DRAWS_FACTOR]
    # thinned back to the first fit's shape, so fits still line up for model comparison
    assert d.passed and d.draws == 500 and tree["posterior"].sizes["draw"] == 500
    step = config.RETRY_DRAWS_FACTOR
    long = fake_tree(0, draws=500 * step)
    np.testing.assert_array_equal(tree["posterior"]["mu"].to_numpy(), long["posterior"]["mu"].to_numpy()[:, step - 1::step])
    assert (d.first_draws, d.first_problems, d.first_divergences) == (500, "; ".join(first.problems), 0)
    assert d.retry_note == (f"sampled again for {500 * config.RETRY_DRAWS_FACTOR} draws per chain (one in "
                            f"{config.RETRY_DRAWS_FACTOR} kept) after {'; '.join(first.problems)} with 500")
    frame = diagnostics_frame([("s", "e", d)])
    assert frame.loc[0, "retry"] == d.retry_note and frame.loc[0, "first_draws"] == 500


def test_thinning_keeps_every_divergence_visible():
    flags = np.zeros((2, 8), bool)
    flags[0, 2] = flags[1, 6] = flags[1, 7] = True        # both of one block diverge in chain 1
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"mu": (("chain", "draw"), np.arange(16.0).reshape(2, 8))}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), flags)})})
    thin = thinned(tree, 2)
    np.testing.assert_array_equal(thin["sample_stats"]["diverging"].to_numpy(),
                                  [[False, True, False, False], [False, False, False, True]])
    np.testing.assert_array_equal(thin["posterior"]["draw"].to_numpy(), np.arange(4))
    np.testing.assert_array_equal(thin["posterior"]["mu"].to_numpy(), [[1, 3, 5, 7], [9, 11, 13, 15]])
    assert divergences(thin) == 2                            # a block counts once


def test_a_longer_fit_only_without_divergences_a_judge_and_a_failing_gate():
    run = Runs({0.9: 0}, shift={500: NEAR})
    assert judge(_sample_with_retry(run, 0.9, 500, retry=True)).first_draws == 0      # no judge: kept
    passing = Runs({0.9: 0})
    assert judge(_sample_with_retry(passing, 0.9, 500, retry=True, judge=judge)).retry_note == ""
    assert passing.draws == [500]
    # divergences take the higher target, not more draws, and only one second fit
    both = Runs({0.9: 2, config.RETRY_TARGET_ACCEPT: 0}, shift={500: NEAR})
    d = judge(_sample_with_retry(both, 0.9, 500, retry=True, judge=judge))
    assert both.targets == [0.9, config.RETRY_TARGET_ACCEPT] and both.draws == [500, 500]
    assert d.first_divergences == 2 and d.first_draws == 0 and not d.passed     # still stuck: judged as is


def test_settings_retry_by_default_and_record_it():
    s = SamplerSettings().for_family("link")
    assert s.retry_divergent and s.to_dict()["retry_divergent"] is True
    assert s.retry_longer and s.to_dict()["retry_longer"] is True
    assert s.target_accept < config.RETRY_TARGET_ACCEPT
    assert not dataclasses.replace(s, retry_divergent=False).to_dict()["retry_divergent"]


def test_the_printed_summary_names_a_fit_sampled_again():
    from types import SimpleNamespace

    from bayes.summary import _diagnostics_line

    again = diagnose(_sample_with_retry(Runs({0.9: 3, config.RETRY_TARGET_ACCEPT: 0}), 0.9, 500, retry=True), ["mu"])
    first = diagnose(_sample_with_retry(Runs({0.9: 0}), 0.9, 500, retry=True), ["mu"])
    frame = diagnostics_frame([("s", "tumour", again), ("s", "survival", first)])
    line = _diagnostics_line(SimpleNamespace(diagnostics=frame, passed=True))
    assert line.startswith("Diagnostics: all 2 fits passed")
    assert line.endswith(f"\n  s / tumour: sampled again at target_accept {config.RETRY_TARGET_ACCEPT:g} after 3 "
                         "divergent transition(s) at 0.9")
    assert "survival" not in line
    # a table read back from CSV has NaN where no fit was sampled again
    read_back = frame.assign(retry=[frame["retry"][0], np.nan])
    assert _diagnostics_line(SimpleNamespace(diagnostics=read_back, passed=True)) == line


def test_sbc_and_bench_fits_keep_their_first_fit_after_r_hat_or_ess():
    from bayes.validate import sampler_settings

    assert not sampler_settings("joint").retry_longer            # short SBC chains miss the gate by design
    assert sampler_settings("joint").retry_divergent


def test_a_longer_fit_only_when_twice_the_draws_can_be_expected_to_pass():
    from bayes.sampling import Diagnostics

    def verdict(rhat, ess, divergences=0):
        return Diagnostics(rhat_max=rhat, ess_bulk_min=ess, ess_tail_min=ess, divergences=divergences,
                           draws=1000, chains=4)
    factor = config.RETRY_DRAWS_FACTOR
    assert verdict(1.011, 700).within_reach(factor)                 # just over the R-hat line
    assert verdict(1.004, 390).within_reach(factor)                 # just under the ESS line
    assert not verdict(1.5, 700).within_reach(factor)               # a stuck chain: more draws will not do
    assert not verdict(1.004, 150).within_reach(factor)             # far too few effective draws
    assert not verdict(1.004, 700, divergences=1).within_reach(factor)
    # the stand-in's stuck chain (R-hat far above 1.02) is kept as it is, with its first draws
    run = Runs({0.9: 0}, shift={500: 3.0, 1000: 3.0})
    tree = _sample_with_retry(run, 0.9, 500, retry=True, judge=judge)
    assert run.draws == [500] and judge(tree).first_draws == 0


def test_quick_runs_keep_their_first_fit(monkeypatch):
    monkeypatch.setattr(config, "QUICK", True)
    assert not SamplerSettings().retry_longer and SamplerSettings().retry_divergent
    monkeypatch.setattr(config, "QUICK", False)
    assert SamplerSettings().retry_longer


def stuck_tree(logp: list[float], steps: list[float], draws: int = 500, seed: int = 0) -> xr.DataTree:
    """Chains at the given typical log densities and step sizes; mu follows the log
    density, so a chain far below the others is off in mu too (R-hat far above 1)."""
    rng = np.random.default_rng(seed)
    chains = len(logp)
    level = np.asarray(logp, float)[:, None]
    lp = level + rng.normal(scale=2.0, size=(chains, draws))
    mu = rng.normal(size=(chains, draws)) + (level - level.max()) / 100
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool)),
                        "logp": (("chain", "draw"), lp),
                        "step_size": (("chain", "draw"), np.repeat(np.asarray(steps, float)[:, None], draws, 1))})
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}), "sample_stats": stats})


def test_a_stuck_chain_sits_far_below_the_others_with_a_collapsed_step_size():
    from bayes.sampling import stuck_chains

    # the seed's IFN-gamma cell at seed 5: one chain at -57,900 with step size 0, three at -15.6
    assert stuck_chains(stuck_tree([-15.6, -15.7, -15.3, -57_900], [0.51, 0.51, 0.48, 0.0])) == [3]
    assert stuck_chains(stuck_tree([-57_900, -15.6, -60_000, -15.3], [1e-9, 0.5, 1e-9, 0.5])) == [0, 2]
    # as far below, but moving with a larger step: a wide region, not a trap
    assert stuck_chains(stuck_tree([-15.6, -15.7, -15.3, -200], [0.5, 0.5, 0.5, 2.0])) == []
    # a collapsed step size among log densities that overlap: slow, not stuck
    assert stuck_chains(stuck_tree([-15.6, -15.7, -15.3, -17], [0.5, 0.5, 0.5, 0.01])) == []
    assert stuck_chains(stuck_tree([-15.6, -15.7, -15.3, -15.5], [0.5, 0.5, 0.5, 0.5])) == []
    assert stuck_chains(fake_tree(0, shift=3.0)) == []            # no logp or step size: nothing to tell
    assert stuck_chains(stuck_tree([-15.6], [0.5])) == []          # one chain: nothing to compare


class Restarts:
    """A stand-in for the restart from the chains not stuck: records what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, target, draws, chains):
        self.calls.append((target, draws, chains))
        return stuck_tree([-15.6, -15.7, -15.3, -15.5], [0.5] * 4, draws=draws, seed=1)


def test_a_fit_with_a_stuck_chain_is_sampled_again_from_the_other_chains_and_says_so():
    first = stuck_tree([-15.6, -15.7, -15.3, -57_900], [0.51, 0.51, 0.48, 0.0])
    problems = judge(first).problems
    assert problems[0].startswith("R-hat") and not judge(first).within_reach(config.RETRY_DRAWS_FACTOR)
    runs, restart = [], Restarts()
    tree = _sample_with_retry(lambda t, d: runs.append((t, d)) or first, 0.9, 500, retry=True, judge=judge,
                              restart=restart)
    assert runs == [(0.9, 500)] and restart.calls == [(0.9, 500, [0, 1, 2])]
    d = judge(tree)
    assert d.passed and (d.first_stuck_chains, d.first_problems, d.first_draws) == (1, "; ".join(problems), 0)
    assert d.retry_note == ("sampled again with every chain started at the draws of the chains not stuck, after "
                            f"1 of 4 stuck far below them in log density ({'; '.join(problems)})")
    frame = diagnostics_frame([("s", "e", d)])
    assert frame.loc[0, "first_stuck_chains"] == 1 and frame.loc[0, "retry"] == d.retry_note


def test_no_restart_without_a_stuck_chain_a_restart_or_a_judge():
    near = stuck_tree([-15.6, -15.7, -15.3, -15.5], [0.5] * 4)
    restart = Restarts()
    assert _sample_with_retry(lambda t, d: near, 0.9, 500, retry=True, judge=judge, restart=restart) is near
    first = stuck_tree([-15.6, -15.7, -15.3, -57_900], [0.51, 0.51, 0.48, 0.0])
    kept = _sample_with_retry(lambda t, d: first, 0.9, 500, retry=True, judge=judge)        # no restart given
    assert judge(kept).first_stuck_chains == 0 and not judge(kept).passed
    assert _sample_with_retry(lambda t, d: first, 0.9, 500, retry=True, restart=restart) is first   # no judge
    assert restart.calls == []
