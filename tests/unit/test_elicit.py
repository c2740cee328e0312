"""Unit tests for bayes.elicit: expert statements -> Normal priors -> prior files.

The mass of every elicited prior between the statement's bounds is recomputed
here from the closed-form Normal CDF (math.erf), independently of PreliZ and
of the module's own scipy check.
"""

from __future__ import annotations

import argparse
import math

import pytest

from bayes import elicit as el
from bayes.errors import BayesError
from bayes.priors import load_prior_set


def mass(mu: float, sigma: float, low: float, high: float) -> float:
    cdf = lambda x: 0.5 * (1.0 + math.erf((x - mu) / (sigma * math.sqrt(2.0))))  # noqa: E731
    return cdf(high) - cdf(low)


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bayes")
    el.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["elicit", *argv])


@pytest.mark.parametrize("parameter, low, high, kind_bounds, prob, better", [
    ("agent_effect", -30, 10, (math.log(0.7), math.log(1.1)), 0.9, None),
    ("baseline", -10, 25, (math.log(0.9), math.log(1.25)), 0.5, None),
    ("baseline_logit", 20, 60, (logit(0.2), logit(0.6)), 0.9, None),
    ("agent_effect_logit", 0.5, 4, (math.log(0.5), math.log(4)), 0.8, None),
    ("interaction_logit", 0.8, 4, (math.log(0.8), math.log(4)), 0.95, "higher"),
])
def test_elicited_mass_between_bounds_matches_request(parameter, low, high, kind_bounds, prob, better):
    result = el.elicit(parameter, low, high, prob, better=better)
    assert (result.lower, result.upper) == pytest.approx(kind_bounds, abs=1e-12)
    assert mass(result.mu, result.sigma, *kind_bounds) == pytest.approx(prob, abs=1e-3)
    assert result.achieved_mass == pytest.approx(prob, abs=1e-3)
    # a maximum-entropy Normal on an interval is centred on it
    assert result.mu == pytest.approx(sum(kind_bounds) / 2, abs=1e-4)
    assert result.prior.dist == "Normal"


def test_worked_example_imatinib():
    result = el.elicit("agent_effect", -30, 10, 0.9)
    half_width = (math.log(1.1) - math.log(0.7)) / 2
    z = 1.6448536269514722   # the 95% standard-normal quantile
    assert result.mu == pytest.approx((math.log(0.7) + math.log(1.1)) / 2, abs=1e-4)
    assert result.sigma == pytest.approx(half_width / z, abs=1e-4)
    assert "-30%" in result.statement and "+10%" in result.statement


def test_interactions_are_sign_aligned():
    volume = el.elicit("interaction", -30, 10, 0.9, better="lower")     # lower volume = synergy
    assert volume.mu > 0 and (volume.lower, volume.upper) == pytest.approx((-math.log(1.1), -math.log(0.7)))
    cytokine = el.elicit("interaction", -30, 10, 0.9, better="higher")
    assert cytokine.mu == pytest.approx(-volume.mu)
    with pytest.raises(BayesError, match="--better"):
        el.elicit("interaction", -30, 10, 0.9)


def test_written_file_round_trips_through_load_prior_set(tmp_path):
    out = tmp_path / "imatinib.yaml"
    args = parse("agent_effect", "--change", "-30%..+10%", "--mass", "0.9", "--out", str(out))
    assert el.run(args) == 0
    loaded = load_prior_set(out)
    default = load_prior_set("default")
    prior = loaded["agent_effect"]
    assert prior.dist == "Normal"
    assert mass(prior.kwargs["mu"], prior.kwargs["sigma"], math.log(0.7), math.log(1.1)) == pytest.approx(
        0.9, abs=1e-3)
    assert "Elicited" in loaded.why["agent_effect"]
    for key in default.priors:   # the partial file is merged over the default
        if key != "agent_effect":
            assert loaded[key] == default[key]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp file left


def test_cli_prints_yaml_without_out(capsys):
    assert el.run(parse("baseline_logit", "--percent", "20%..60%")) == 0
    text = capsys.readouterr().out
    assert "baseline_logit:" in text and "schema_version: 1" in text


def test_existing_file_is_kept_unless_force(tmp_path):
    out = tmp_path / "p.yaml"
    out.write_text("keep me\n")
    with pytest.raises(BayesError, match="already exists"):
        el.run(parse("agent_effect", "--change", "-30%..+10%", "--out", str(out)))
    assert out.read_text() == "keep me\n"
    assert el.run(parse("agent_effect", "--change", "-30%..+10%", "--out", str(out), "--force")) == 0
    assert load_prior_set(out)["agent_effect"].dist == "Normal"


@pytest.mark.parametrize("call, message", [
    (lambda: el.elicit("agent_effect", 10, -30, 0.9), "low < high"),
    (lambda: el.elicit("agent_effect", 10, 10, 0.9), "low < high"),
    (lambda: el.elicit("agent_effect", -30, 10, 1.0), "strictly between 0 and 1"),
    (lambda: el.elicit("agent_effect", -30, 10, 0.0), "strictly between 0 and 1"),
    (lambda: el.elicit("agent_effect", -30, 10, 1.5), "strictly between 0 and 1"),
    (lambda: el.elicit("agent_effect", -120, 10, 0.9), "-100%"),
    (lambda: el.elicit("baseline_logit", 0, 60, 0.9), "between 0% and 100%"),
    (lambda: el.elicit("agent_effect_logit", -1, 4, 0.9), "odds ratio must be > 0"),
    (lambda: el.elicit("sd_log", 0.1, 0.5, 0.9), "cannot elicit 'sd_log'"),
    (lambda: el.parse_range("-30%-+10%", percent=True), "cannot read the range"),
    (lambda: el.parse_range("0.5%..4", percent=False), "not a percentage"),
    (lambda: el.write_prior_file(el.elicit("agent_effect", -30, 10, 0.9), "p.txt"), ".yaml"),
])
def test_bad_input_is_refused_with_one_line(call, message):
    with pytest.raises(BayesError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_cli_refuses_a_statement_of_the_wrong_kind():
    with pytest.raises(BayesError, match="elicited with --change, not --percent"):
        el.run(parse("agent_effect", "--percent", "20..60"))
    with pytest.raises(BayesError, match="low < high"):
        el.run(parse("agent_effect", "--change", "+10%..-30%"))


def test_range_parser_accepts_the_documented_forms():
    assert el.parse_range("-30%..+10%", percent=True) == (-30.0, 10.0)
    assert el.parse_range("-30 to 10", percent=True) == (-30.0, 10.0)
    assert el.parse_range("0.5..4", percent=False) == (0.5, 4.0)
    assert parse("agent_effect", "--change=-30%..+10%").change == "-30%..+10%"
