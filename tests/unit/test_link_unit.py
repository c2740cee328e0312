"""Unit tests for the NK-link model and its report (no sampling)."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes
from bayes.analysis import model_specs
from bayes.errors import BayesError, InputError
from bayes.link import LinkResult, carried_fraction, link_sentence, link_table, savage_dickey_bf10
from bayes.models.builder import MODEL_NAMES, build_model
from bayes.models.link import IMMUNE, OUTCOME, LinkSpec, layout
from bayes.nprior import NPrior
from bayes.priors import load_prior_set


@pytest.fixture(scope="module")
def seed():
    return bayes.load_builtin()


@pytest.fixture(scope="module")
def spec(seed):
    (out,) = model_specs(seed, "link", NPrior())
    return out


def _seed_frame() -> pd.DataFrame:
    with resources.files("bayes.datasets").joinpath("seed.csv").open() as fh:
        return pd.read_csv(fh)


def test_roles_and_registry(spec):
    assert "link" in MODEL_NAMES
    assert {"nk_lysis", "ifn_gamma"} == IMMUNE and "tumor_volume" in OUTCOME and "survival" in OUTCOME
    lay = layout(spec.cells)
    endpoints = [c.endpoint for c in spec.cells]
    assert endpoints[lay.immune[0]] == "nk_lysis"          # reference readout
    assert {endpoints[i] for i in lay.outcome} == {"tumor_volume", "survival"}
    assert lay.agents == ("imatinib", "IL-2") and lay.combo_labels == ["imatinib+IL-2"]
    assert isinstance(spec, LinkSpec)
    assert spec.coords()["latent_arm"] == ["control", "imatinib", "IL-2", "imatinib+IL-2"]


def test_seed_model_builds_with_finite_logp_and_gradient(spec, logp_and_grad_at_start):
    model = build_model(spec, load_prior_set("default"))
    logp, grad = logp_and_grad_at_start(spec, load_prior_set("default"))
    assert np.isfinite(logp) and np.isfinite(grad).all() and np.any(grad != 0)
    names = {rv.name for rv in model.free_RVs}
    assert {"alpha_agent", "alpha_combo", "link", "loading_free", "residual_sd", "immune_residual"} <= names
    assert model.named_vars_to_dims["link"] == ("outcome",)
    assert model.named_vars_to_dims["nk_interaction"] == ("outcome", "latent_combo")


def test_outcome_totals_are_the_same_posterior_as_direct_effects(spec, monkeypatch):
    """The outcome cells are sampled as totals (direct + theta x activation); with
    unshiftable priors they fall back to the direct effects.  A shear has a unit
    Jacobian, so the two models' log densities agree at corresponding points."""
    from bayes.models.builder import prefix
    from bayes.priors import Prior

    priors = load_prior_set("default")
    totals = build_model(spec, priors)
    monkeypatch.setattr(Prior, "shiftable", property(lambda self: False))
    direct = build_model(spec, priors)
    assert {f"{prefix(i)}agent_total" for i in layout(spec.cells).outcome} <= {v.name for v in totals.free_RVs}
    assert not any(v.name.endswith("_total") for v in direct.free_RVs)

    rng = np.random.default_rng(7)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in direct.initial_point().items()}
    lay = layout(spec.cells)
    moved = dict(point)
    for k, i in enumerate(lay.outcome):
        p, d = prefix(i), spec.cells[i].design
        theta = point["link"][k]
        alpha = point["alpha_agent"][[lay.agents.index(a) for a in d.agents]]
        combos = [frozenset(ag) for ag in d.arm_agents if len(ag) >= 2]
        alpha_c = point["alpha_combo"][[lay.combos.index(c) for c in combos]]
        moved[p + "agent_total"] = moved.pop(p + "agent_effect") + theta * alpha
        moved[p + "interaction_total"] = moved.pop(p + "interaction") + theta * alpha_c
    a, b = totals.compile_logp()(moved), direct.compile_logp()(point)
    assert np.isfinite(b) and a == pytest.approx(b, abs=1e-9)


def test_shift_is_only_for_location_families():
    import pymc as pm

    from bayes.priors import Prior

    with pm.Model() as model:
        Prior("Normal", {"mu": 0.5, "sigma": 2.0}).create_variable("x", shift=pm.math.constant(1.5))
        with pytest.raises(ValueError, match="not a location family"):
            Prior("HalfNormal", {"sigma": 1.0}).create_variable("y", shift=pm.math.constant(1.0))
    logp = model.compile_logp(sum=False)({"x": 3.0})[0]
    assert logp == pytest.approx(-0.5 * ((3.0 - 2.0) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi)))


def test_structure_depends_on_roles(spec):
    """A table with the same shapes but other endpoint roles must not share a compiled model."""
    swapped = LinkSpec("link", tuple(reversed(spec.cells)), spec.groups)
    assert swapped.structure != spec.structure


def test_refuses_several_studies_and_missing_roles():
    frame = _seed_frame()
    two = pd.concat([frame, frame.assign(study="other_lab")], ignore_index=True)
    with pytest.raises(InputError, match="one study at a time"):
        model_specs(bayes.study_from_frame(two), "link", NPrior())
    no_immune = frame[~frame["endpoint"].isin(IMMUNE)]
    with pytest.raises(InputError, match="at least one immune readout"):
        model_specs(bayes.study_from_frame(no_immune), "link", NPrior())


def test_carried_fraction_formula():
    nk = np.array([1.0, 0.5, 0.0, 1.0])
    direct = np.array([0.0, 0.5, 1.0, -1.0])
    out = carried_fraction(nk, direct)
    assert out[:3] == pytest.approx([1.0, 0.5, 0.0])
    assert math.isnan(out[3])                               # total exactly 0


def test_savage_dickey_direction():
    rng = np.random.default_rng(1)
    bf_null, method, prior_d, post_d = savage_dickey_bf10(rng.normal(0.0, 0.1, 8000))
    assert bf_null < 1 and "KDE" in method
    assert prior_d == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert post_d == pytest.approx(1 / (0.1 * math.sqrt(2 * math.pi)), rel=0.1)
    bf_alt, _, _, _ = savage_dickey_bf10(rng.normal(2.0, 0.3, 8000))
    assert bf_alt > 100
    # 0 outside every draw: the normal approximation, flagged
    far, method, _, _ = savage_dickey_bf10(rng.normal(5.0, 0.3, 2000))
    assert far > 1e10 and "normal approx" in method


def _fake_posterior(spec, theta, alpha_ab, direct, draws=2000, seed=0):
    """Hand-made model-level posterior with known theta (tumour, survival) and interactions."""
    rng = np.random.default_rng(seed)
    shape = (2, draws // 2)
    th = np.stack([theta[0] + 0.05 * rng.standard_normal(shape), theta[1] + 0.05 * rng.standard_normal(shape)], -1)
    a = alpha_ab + 0.01 * rng.standard_normal(shape + (1,))
    d = np.stack([np.full(shape + (1,), direct[0]), np.full(shape + (1,), direct[1])], 2)
    coords = spec.coords()
    dims = ("chain", "draw")
    return xr.Dataset(
        {"link": (dims + ("outcome",), th),
         "alpha_combo": (dims + ("latent_combo",), a),
         "nk_interaction": (dims + ("outcome", "latent_combo"), th[..., None] * a[:, :, None, :]),
         "direct_interaction": (dims + ("outcome", "latent_combo"), d)},
        coords={"outcome": coords["outcome"], "latent_combo": coords["latent_combo"]})


def test_link_table_and_sentence_on_hand_made_draws(spec):
    outcomes = spec.coords()["outcome"]
    tumour, survival = outcomes.index("tumor_volume"), outcomes.index("survival")
    theta = [0.0, 0.0]
    theta[tumour], theta[survival] = -1.0, 0.5          # both benefit (lower volume, higher survival)
    direct = [0.0, 0.0]
    direct[tumour], direct[survival] = -0.5, 1.5
    post = _fake_posterior(spec, theta, 1.0, direct)
    table = link_table(post, spec, ci_prob=0.9, passed=True)
    row = table.set_index(["endpoint", "quantity"])
    assert row.loc[("tumor_volume", "link (sign-aligned)"), "mean"] == pytest.approx(1.0, abs=0.01)
    assert row.loc[("tumor_volume", "link (sign-aligned)"), "p_benefit"] == 1.0
    assert row.loc[("survival", "link (sign-aligned)"), "mean"] == pytest.approx(0.5, abs=0.01)
    # tumour: nk = -1, direct = -0.5 -> carried 2/3; survival: nk 0.5, direct 1.5 -> 1/4
    assert row.loc[("tumor_volume", "carried fraction"), "median"] == pytest.approx(2 / 3, abs=0.02)
    assert row.loc[("tumor_volume", "carried fraction"), "p_share_gt_half"] == 1.0
    assert row.loc[("survival", "carried fraction"), "median"] == pytest.approx(0.25, abs=0.02)
    assert row.loc[("tumor_volume", "total interaction"), "mean"] == pytest.approx(1.5, abs=0.02)  # aligned
    assert row.loc[("tumor_volume", "link (sign-aligned)"), "bf10"] > 1e3
    assert (table["ci_prob"] == 0.9).all() and (table["diagnostics"] == "ok").all()
    sentence = link_sentence(table)
    assert "tumor volume" in sentence and "67%" in sentence
    for caveat in ("four arm means", "ecological", "separate cohort"):
        assert caveat in sentence
    assert sentence.count(".") >= 1 and "\n" not in sentence


def test_save_is_atomic_and_refuses_overwrite(tmp_path):
    table = pd.DataFrame({"study": ["s"], "quantity": ["link (sign-aligned)"], "mean": [1.0]})
    diag = pd.DataFrame({"passed": [True]})
    result = LinkResult(table, "One sentence.", xr.DataTree(), diag, {"model": "link"})
    paths = result.save(tmp_path)
    assert [p.name for p in paths] == ["link.csv", "link.txt"]
    assert pd.read_csv(paths[0])["mean"].tolist() == [1.0]
    assert paths[1].read_text().startswith("One sentence.")
    with pytest.raises(BayesError):
        result.save(tmp_path)
    result.sentence = "Another."
    result.save(tmp_path, overwrite=True)
    assert paths[1].read_text().startswith("Another.")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bayes_fit_points_link_users_to_fit_link():
    with pytest.raises(ValueError, match="bayes.link.fit_link"):
        bayes.fit(bayes.load_builtin(), model="link")
