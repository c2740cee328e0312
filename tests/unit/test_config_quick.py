"""BAYES_QUICK: the one setting that shrinks every default draw count (notebooks in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bayes import config
from bayes.errors import BayesError


@pytest.mark.parametrize("value, quick", [(None, False), ("", False), ("0", False), ("off", False),
                                          ("1", True), ("TRUE", True), (" yes ", True), ("on", True)])
def test_quick_values(value, quick):
    assert config._quick_from_env(value) is quick


def test_quick_refuses_other_values():
    with pytest.raises(BayesError, match=r"BAYES_QUICK='2' is not understood \(valid: 1/true"):
        config._quick_from_env("2")


def _defaults(value: str) -> subprocess.CompletedProcess:
    code = ("import json; from bayes import compare; from bayes.sampling import SamplerSettings as S; s = S(); "
            "print(json.dumps([s.draws, s.tune, s.chains, compare.SMC_DRAWS, compare.SMC_CHAINS]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "BAYES_QUICK": value})


def test_quick_shrinks_every_default_and_explicit_values_win():
    assert json.loads(_defaults("1").stdout) == [200, 200, 2, 200, 2]
    assert json.loads(_defaults("0").stdout) == [1000, 500, 4, 1000, 4]


def test_cli_reports_a_bad_value_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "bayes.cli", "check"], capture_output=True, text=True,
                          env={**os.environ, "BAYES_QUICK": "maybe"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bayes: error: environment variable BAYES_QUICK='maybe' is not understood "
        "(valid: 1/true/yes/on for reduced draws, 0/false/no/off or unset for full draws)"]
