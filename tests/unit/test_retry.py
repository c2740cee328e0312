"""A fit with divergent transitions is sampled again at a higher target (no sampling here)."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from bayes import config
from bayes.sampling import SamplerSettings, _sample_with_retry, diagnose, diagnostics_frame


def fake_tree(divergent: int, chains: int = 4, draws: int = 500, seed: int = 0) -> xr.DataTree:
    rng = np.random.default_rng(seed)
    diverging = np.zeros((chains, draws), bool)
    diverging.flat[:divergent] = True
    post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(chains, draws)))})
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


class Runs:
    """A stand-in sampler: the divergences of each target it is run at."""

    def __init__(self, divergent: dict[float, int]):
        self.divergent, self.targets = divergent, []

    def __call__(self, target: float) -> xr.DataTree:
        self.targets.append(target)
        return fake_tree(self.divergent[target])


def test_a_fit_without_divergences_is_kept_and_says_so():
    run = Runs({0.9: 0})
    tree = _sample_with_retry(run, 0.9, retry=True)
    assert run.targets == [0.9]
    assert tree.attrs == {"target_accept": 0.9, "first_divergences": 0}
    d = diagnose(tree, ["mu"])
    assert (d.target_accept, d.first_divergences, d.retry_note) == (0.9, 0, "")


def test_divergences_bring_one_more_fit_at_the_retry_target_and_it_is_the_one_kept():
    run = Runs({0.9: 3, config.RETRY_TARGET_ACCEPT: 0})
    tree = _sample_with_retry(run, 0.9, retry=True)
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
    d = diagnose(_sample_with_retry(run, 0.95, retry=True), ["mu"])
    assert run.targets == [0.95, config.RETRY_TARGET_ACCEPT]
    assert not d.passed and d.problems == ["1 divergent transitions"]


def test_no_retry_when_switched_off_or_already_at_the_retry_target():
    run = Runs({0.9: 5, config.RETRY_TARGET_ACCEPT: 4})
    assert diagnose(_sample_with_retry(run, 0.9, retry=False), ["mu"]).divergences == 5
    assert diagnose(_sample_with_retry(run, config.RETRY_TARGET_ACCEPT, retry=True), ["mu"]).divergences == 4
    assert run.targets == [0.9, config.RETRY_TARGET_ACCEPT]


def test_settings_retry_by_default_and_record_it():
    s = SamplerSettings().for_family("link")
    assert s.retry_divergent and s.to_dict()["retry_divergent"] is True
    assert s.target_accept < config.RETRY_TARGET_ACCEPT
    assert not dataclasses.replace(s, retry_divergent=False).to_dict()["retry_divergent"]


def test_the_printed_summary_names_a_fit_sampled_again():
    from types import SimpleNamespace

    from bayes.summary import _diagnostics_line

    again = diagnose(_sample_with_retry(Runs({0.9: 3, config.RETRY_TARGET_ACCEPT: 0}), 0.9, retry=True), ["mu"])
    first = diagnose(_sample_with_retry(Runs({0.9: 0}), 0.9, retry=True), ["mu"])
    frame = diagnostics_frame([("s", "tumour", again), ("s", "survival", first)])
    line = _diagnostics_line(SimpleNamespace(diagnostics=frame, passed=True))
    assert line.startswith("Diagnostics: all 2 fits passed")
    assert line.endswith(f"\n  s / tumour: sampled again at target_accept {config.RETRY_TARGET_ACCEPT:g} after 3 "
                         "divergent transition(s) at 0.9")
    assert "survival" not in line
    # a table read back from CSV has NaN where no fit was sampled again
    read_back = frame.assign(retry=[frame["retry"][0], np.nan])
    assert _diagnostics_line(SimpleNamespace(diagnostics=read_back, passed=True)) == line
