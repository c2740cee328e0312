"""Unit tests for bayes.priors and the built-in prior file bayes/priors/default.yaml.

No sampling: priors are parsed, merged, hashed and turned into PyMC variables
whose log-densities are compared with scipy.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import yaml
from scipy import stats

from bayes.errors import InputError
from bayes.priors import (ALLOWED_DISTS, REQUIRED_PARAMETERS, SCHEMA_VERSION, Prior, PriorSet,
                          builtin_prior_sets, load_prior_set)

PRIOR_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "priors"

NESTED = {"dist": "Normal",
          "kwargs": {"mu": {"dist": "Normal", "kwargs": {"mu": 0.0, "sigma": 2.0}},
                     "sigma": {"dist": "HalfNormal",
                               "kwargs": {"sigma": {"dist": "Exponential", "kwargs": {"lam": 3.0}}}}}}


def default_yaml() -> dict:
    """The default prior file, read independently of the module under test."""
    text = (resources.files("bayes") / "priors" / "default.yaml").read_text()
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def default() -> PriorSet:
    return load_prior_set("default")


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("parameter", REQUIRED_PARAMETERS)
def test_default_prior_round_trips_through_dict_and_yaml(default, parameter):
    prior = default[parameter]
    assert Prior.from_dict(prior.to_dict()) == prior
    dumped = yaml.safe_dump(prior.to_dict())
    assert Prior.from_dict(yaml.safe_load(dumped)) == prior
    assert Prior.from_dict(json.loads(json.dumps(prior.to_dict()))) == prior


def test_nested_prior_round_trips_and_keeps_its_structure():
    prior = Prior.from_dict(NESTED)
    assert isinstance(prior.kwargs["mu"], Prior)
    assert isinstance(prior.kwargs["sigma"], Prior)
    assert isinstance(prior.kwargs["sigma"].kwargs["sigma"], Prior)
    assert prior.kwargs["sigma"].kwargs["sigma"] == Prior("Exponential", {"lam": 3.0})
    assert prior.to_dict() == NESTED
    assert Prior.from_dict(prior.to_dict()) == prior
    assert Prior.from_dict(yaml.safe_load(yaml.safe_dump(prior.to_dict()))) == prior
    # a changed inner number makes a different prior
    other = json.loads(json.dumps(NESTED))
    other["kwargs"]["sigma"]["kwargs"]["sigma"]["kwargs"]["lam"] = 4.0
    assert Prior.from_dict(other) != prior


def test_integers_become_floats_so_equal_numbers_give_equal_priors():
    a = Prior.from_dict({"dist": "Normal", "kwargs": {"mu": 0, "sigma": 1}})
    b = Prior.from_dict({"dist": "Normal", "kwargs": {"mu": 0.0, "sigma": 1.0}})
    assert a == b
    assert all(type(v) is float for v in a.kwargs.values())


def test_prior_str_is_readable():
    assert str(Prior.from_dict({"dist": "HalfNormal", "kwargs": {"sigma": 0.5}})) == "HalfNormal(sigma=0.5)"
    assert str(Prior.from_dict(NESTED)) == "Normal(mu=Normal(mu=0, sigma=2), sigma=HalfNormal(sigma=Exponential(lam=3)))"


def test_prior_set_to_dict_round_trips_through_a_yaml_file(default, tmp_path):
    data = default.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data["priors"]) == set(REQUIRED_PARAMETERS)
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(data))
    again = load_prior_set(path)
    assert again.priors == default.priors
    assert again.why == default.why
    assert again.name == default.name
    assert again.description == default.description
    assert again.hash == default.hash
    assert again.to_dict() == data


def test_nested_prior_set_round_trips_through_to_dict(default, tmp_path):
    nested = default.with_overrides({"agent_effect": NESTED})
    path = tmp_path / "nested_full.yaml"
    path.write_text(yaml.safe_dump(nested.to_dict()))
    again = load_prior_set(path)
    assert again.priors == nested.priors
    assert again["agent_effect"] == Prior.from_dict(NESTED)
    assert again.to_dict() == nested.to_dict()


# --------------------------------------------------------------------------- hash

def test_hash_is_sha256_of_sorted_json_of_priors_and_stable(default):
    expected = "sha256:" + hashlib.sha256(
        json.dumps(default.to_dict()["priors"], sort_keys=True).encode()).hexdigest()
    assert default.hash == expected
    assert load_prior_set("default").hash == default.hash
    assert default.hash == default.hash


def test_hash_changes_when_a_number_changes(default):
    same = default.with_overrides({"sd_log": {"dist": "HalfNormal", "kwargs": {"sigma": 0.5}}})
    changed = default.with_overrides({"sd_log": {"dist": "HalfNormal", "kwargs": {"sigma": 0.6}}})
    assert same["sd_log"] == default["sd_log"]
    assert changed.hash != same.hash
    assert changed.hash != default.hash
    # only the number differs between `same` and `changed` (why text is identical)
    assert same.why == changed.why
    assert len(changed.hash) == len("sha256:") + 64


# --------------------------------------------------------------------------- the default set

def test_builtin_sets_include_default():
    assert "default" in builtin_prior_sets()


def test_default_set_has_the_numbers_in_the_yaml(default):
    raw = default_yaml()
    assert raw["schema_version"] == SCHEMA_VERSION
    assert set(default.priors) == set(REQUIRED_PARAMETERS)
    for key in REQUIRED_PARAMETERS:
        entry = raw["priors"][key]["prior"]
        assert default[key].dist == entry["dist"]
        assert default[key].kwargs == {k: float(v) for k, v in entry["kwargs"].items()}
        assert default.why[key] == " ".join(raw["priors"][key]["why"].split())
    # and the numbers themselves (a change of the default is a change of every result)
    assert default["baseline"] == Prior("Normal", {"mu": 0.0, "sigma": 1.0})
    assert default["agent_effect"] == Prior("Normal", {"mu": 0.0, "sigma": 2.0})
    assert default["interaction"] == Prior("Normal", {"mu": 0.0, "sigma": 1.0})
    assert default["sd_log"] == Prior("HalfNormal", {"sigma": 0.5})
    for key in ("baseline_logit", "agent_effect_logit", "interaction_logit"):
        assert default[key] == Prior("Normal", {"mu": 0.0, "sigma": 1.5})
    assert default["precision"] == Prior("LogNormal", {"mu": 3.0, "sigma": 1.0})
    assert default["synergy_mean"] == Prior("Normal", {"mu": 0.0, "sigma": 1.0})
    # boundary-avoiding spreads of the joint model (see the why texts)
    assert default["synergy_sd"] == Prior("LogNormal", {"mu": -0.92, "sigma": 0.5})
    assert default["study_sd"] == Prior("LogNormal", {"mu": -1.6, "sigma": 0.5})
    assert default.name == "default"
    assert default.source == "priors/default.yaml"
    assert default.lines()[3] == "sd_log        ~ HalfNormal(sigma=0.5)"


def test_required_parameters():
    assert REQUIRED_PARAMETERS == ("baseline", "agent_effect", "interaction", "sd_log", "baseline_logit",
                                   "agent_effect_logit", "interaction_logit", "precision", "synergy_mean",
                                   "synergy_sd", "study_sd")


def test_a_set_missing_a_required_parameter_is_refused_as_builtin():
    # built-in sets must be complete; a user file by path may be partial (tested below)
    from bayes import priors as priors_module

    data = default_yaml()
    del data["priors"]["precision"]
    with pytest.raises(InputError, match="missing prior\\(s\\) for precision"):
        priors_module._parse_prior_set(data, "priors/x.yaml", require_all=True)


@pytest.mark.parametrize("parameter", REQUIRED_PARAMETERS)
def test_why_text_names_the_distribution_it_justifies(default, parameter):
    # a 'why' that quotes a distribution, e.g. "HalfNormal(0.5) puts 95% below 0.98",
    # must quote the prior actually used: stale text misleads whoever reads the output
    why = default.why[parameter]
    quoted = {d for d in ALLOWED_DISTS if re.search(rf"\b{d}\(", why)}
    assert quoted <= {default[parameter].dist}, f"{parameter}: why quotes {quoted}, prior is {default[parameter]}"


# --------------------------------------------------------------------------- precedence

def test_partial_file_overrides_only_its_keys_and_keeps_why(default):
    path = PRIOR_FIXTURES / "partial.yaml"
    ps = load_prior_set(path)
    assert ps["interaction"] == Prior("Normal", {"mu": 0.0, "sigma": 0.25})
    for key in ("baseline", "agent_effect", "sd_log"):
        assert ps[key] == default[key]
        assert ps.why[key] == default.why[key]
    assert ps.why["interaction"] == "We expect interactions to be small."
    assert ps.name == "sceptical_interaction"
    assert ps.description == "Sceptical about large interactions."
    assert ps.source == str(path)
    assert ps.hash != default.hash


def test_partial_file_by_string_path_and_nested_prior(default):
    ps = load_prior_set(str(PRIOR_FIXTURES / "nested.yaml"))
    assert ps["agent_effect"] == Prior("Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": 0.5})})
    assert ps["interaction"] == default["interaction"]
    assert ps.why["agent_effect"] == "Agent effects share a scale learnt from the data."


def test_user_overrides_beat_the_file(default):
    from_file = load_prior_set(PRIOR_FIXTURES / "partial.yaml")
    user = from_file.with_overrides({"interaction": {"dist": "StudentT",
                                                     "kwargs": {"nu": 3, "mu": 0, "sigma": 0.1}}})
    assert user["interaction"] == Prior("StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 0.1})
    assert user.why["interaction"] == "set by user"
    assert user["sd_log"] == default["sd_log"]
    assert user.why["sd_log"] == default.why["sd_log"]
    assert user.name == from_file.name
    # the original is untouched (frozen, copied)
    assert from_file["interaction"] == Prior("Normal", {"mu": 0.0, "sigma": 0.25})


# --------------------------------------------------------------------------- refusals

def test_unknown_dist_lists_the_valid_ones():
    with pytest.raises(InputError) as info:
        load_prior_set(PRIOR_FIXTURES / "unknown_dist.yaml")
    msg = str(info.value)
    assert "unknown_dist.yaml" in msg
    assert "'Gaussian'" in msg
    assert "priors.interaction" in msg
    for dist in ALLOWED_DISTS:
        assert dist in msg


def test_unknown_dist_in_dict_raises_value_error_listing_valid():
    with pytest.raises(ValueError, match=r"unknown distribution 'Foo'; valid: Normal, HalfNormal"):
        Prior.from_dict({"dist": "Foo", "kwargs": {}})


def test_bad_kwarg_name_in_file():
    with pytest.raises(InputError) as info:
        load_prior_set(PRIOR_FIXTURES / "bad_kwarg.yaml")
    msg = str(info.value)
    assert "bad_kwarg.yaml" in msg and "priors.interaction" in msg
    assert "Normal" in msg and "scale" in msg


# `sd` (the PyMC 3 alias), `foo` and HalfNormal(mu=...) are all names the
# distribution does not take.  They must be refused like `scale`: PyMC's
# `.dist(**kwargs)` swallows unknown keywords, so an accepted `sd: 5` silently
# becomes sigma = 1 in the model.  `rng` currently escapes as an AttributeError.
@pytest.mark.parametrize("prior", [
    {"dist": "Normal", "kwargs": {"mu": 0.0, "scale": 1.0}},
    {"dist": "Normal", "kwargs": {"mu": 0.0, "sd": 5.0}},
    {"dist": "Normal", "kwargs": {"mu": 0.0, "foo": 1.0}},
    {"dist": "HalfNormal", "kwargs": {"mu": 1.0}},
    {"dist": "Normal", "kwargs": {"mu": 0.0, "rng": 1.0}},
], ids=["Normal-scale", "Normal-sd", "Normal-foo", "HalfNormal-mu", "Normal-rng"])
def test_bad_kwarg_name_is_refused(default, prior):
    with pytest.raises(InputError) as info:
        default.with_overrides({"interaction": prior})
    bad = (set(prior["kwargs"]) - {"mu", "sigma"}) or {"mu"}
    assert next(iter(bad)) in str(info.value)


def test_bad_kwarg_sd_in_file_is_refused():
    with pytest.raises(InputError, match="sd"):
        load_prior_set(PRIOR_FIXTURES / "bad_kwarg_sd.yaml")


def test_non_numeric_kwarg():
    with pytest.raises(InputError) as info:
        load_prior_set(PRIOR_FIXTURES / "non_numeric.yaml")
    msg = str(info.value)
    assert "priors.sd_log.sigma" in msg
    assert "'wide' is not a number or a prior" in msg


@pytest.mark.parametrize("value", [True, None, "1.0", [1.0]])
def test_non_numeric_values_in_dicts(value):
    with pytest.raises(ValueError, match="is not a number or a prior"):
        Prior.from_dict({"dist": "HalfNormal", "kwargs": {"sigma": value}})


def test_wrong_schema_version():
    with pytest.raises(InputError) as info:
        load_prior_set(PRIOR_FIXTURES / "wrong_schema.yaml")
    err = info.value
    assert err.column == "schema_version"
    assert "schema_version is 2" in str(err)
    assert f"(valid: {SCHEMA_VERSION})" in str(err)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as info:
        load_prior_set(missing)
    msg = str(info.value)
    assert str(missing) in msg and "prior file not found" in msg and "default" in msg


def test_unknown_builtin_name():
    with pytest.raises(InputError) as info:
        load_prior_set("no_such_set")
    msg = str(info.value)
    assert msg.startswith("no_such_set: no such prior set")
    assert "default" in msg


def test_unknown_override_key(default):
    with pytest.raises(InputError) as info:
        default.with_overrides({"intercept": {"dist": "Normal", "kwargs": {"mu": 0, "sigma": 1}}})
    msg = str(info.value)
    assert "unknown prior parameter 'intercept'" in msg
    assert ("agent_effect, agent_effect_logit, baseline, baseline_logit, interaction, interaction_logit, "
            "precision, sd_log, study_sd, synergy_mean, synergy_sd") in msg


def test_unknown_key_in_prior_dict():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['dims'\]"):
        Prior.from_dict({"dist": "Normal", "kwargs": {}, "dims": ["agent"]})


def test_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_prior_set(path)


def test_entry_without_prior_key(tmp_path):
    path = tmp_path / "noprior.yaml"
    path.write_text("schema_version: 1\npriors:\n  interaction:\n    why: forgot the prior\n")
    with pytest.raises(InputError, match="priors.interaction needs 'prior'"):
        load_prior_set(path)


# --------------------------------------------------------------------------- PyMC variables

def test_create_variable_has_the_right_distribution_dims_and_numbers():
    prior = Prior("Normal", {"mu": 0.5, "sigma": 2.0})
    with pm.Model(coords={"agent": ["A", "B", "C"]}) as model:
        rv = prior.create_variable("agent_effect", dims="agent")
    assert [v.name for v in model.free_RVs] == ["agent_effect"]
    assert type(rv.owner.op).__name__ == "NormalRV"
    assert model.named_vars_to_dims["agent_effect"] == ("agent",)
    value = np.array([-1.0, 0.2, 3.0])
    logp = model.compile_logp(vars=[rv], sum=False)({"agent_effect": value})[0]
    np.testing.assert_allclose(logp, stats.norm(0.5, 2.0).logpdf(value), rtol=1e-8)


def test_create_variable_halfnormal_numbers():
    with pm.Model() as model:
        Prior("HalfNormal", {"sigma": 0.5}).create_variable("sd_log")
    assert type(model["sd_log"].owner.op).__name__ == "HalfNormalRV"
    # value variable is on the log scale: log p(x) + log|dx/dy| = log p(x) + y
    x = 0.3
    logp = model.compile_logp(vars=[model["sd_log"]], jacobian=False)({"sd_log_log__": np.log(x)})
    np.testing.assert_allclose(logp, stats.halfnorm(scale=0.5).logpdf(x), rtol=1e-8)


def test_create_variable_nested_makes_the_hyperprior():
    prior = Prior("Normal", {"mu": 0.0, "sigma": Prior("HalfNormal", {"sigma": 0.5})})
    with pm.Model(coords={"agent": ["A", "B"]}) as model:
        prior.create_variable("agent_effect", dims="agent")
    names = {v.name for v in model.free_RVs}
    assert names == {"agent_effect", "agent_effect_sigma"}
    assert type(model["agent_effect_sigma"].owner.op).__name__ == "HalfNormalRV"
    assert model.named_vars_to_dims["agent_effect"] == ("agent",)
    assert "agent_effect_sigma" not in model.named_vars_to_dims  # a scalar
    # the child's sigma really is the hyperprior: check the joint density
    point = {"agent_effect": np.array([0.2, -0.4]), "agent_effect_sigma_log__": np.log(0.7)}
    logp = model.compile_logp(vars=[model["agent_effect"]], sum=False)(point)[0]
    np.testing.assert_allclose(logp, stats.norm(0, 0.7).logpdf([0.2, -0.4]), rtol=1e-8)


def test_interaction_mu_is_read_as_synergy_for_either_direction(default):
    """A positive interaction mu means 'better than additive': a negative log
    interaction for a volume, a positive logit interaction for survival."""
    from bayes.data import load_builtin
    from bayes.models.builder import interaction_prior
    from bayes.models.cells import make_cell

    study = load_builtin("seed")
    cells = {e: make_cell(study.cell(s, e)) for s, e in study.cells()}
    hopeful = default.with_overrides({
        "interaction": {"dist": "Normal", "kwargs": {"mu": 0.5, "sigma": 1.0}},
        "interaction_logit": {"dist": "Normal", "kwargs": {"mu": 0.5, "sigma": 1.5}}})
    assert interaction_prior(hopeful, cells["tumor_volume"]).kwargs["mu"] == -0.5
    assert interaction_prior(hopeful, cells["survival"]).kwargs["mu"] == 0.5
    assert interaction_prior(default, cells["tumor_volume"]) == default["interaction"]


@pytest.mark.parametrize("name", ["default", "sceptical", "optimistic"])
def test_prior_set_round_trips_through_its_dict(name):
    from bayes.priors import load_prior_set

    original = load_prior_set(name)
    again = PriorSet.from_dict(original.to_dict(), source="stamp")
    assert again.priors == original.priors and again.hash == original.hash and again.name == name
