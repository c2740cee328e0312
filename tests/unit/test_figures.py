"""Figures of the model-comparison report (bayes.figures).

Nothing is sampled by NUTS here: the figures read the small seeded fits saved
under tests/fixtures/report/ (a joint FitResult and an NK-link result of the
built-in seed study; regenerate with tests/fixtures/report/make_fixture.py).
Only the joint model's implied interaction prior is forward-sampled.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import bayes
from bayes import figures
from bayes.priors import load_prior_set

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report"
REFERENCES = ("bliss", "hsa", "ra")


@pytest.fixture(scope="module")
def fit():
    return bayes.load_result(FIXTURE / "fit")


@pytest.fixture(scope="module")
def link():
    return figures.load_link(FIXTURE / "link")


@pytest.fixture(scope="module")
def study():
    return bayes.load_builtin("seed")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header, and check the image decodes to it."""
    assert data[:8] == figures.PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    image = mpimg.imread(io.BytesIO(data), format="png")
    assert image.shape[:2] == (height, width)
    return width, height


def check_png(fig, dpi: int = 100) -> None:
    w, h = fig.get_size_inches()
    assert png_size(figures.to_png(fig, dpi=dpi)) == (round(w * dpi), round(h * dpi))


def cells(fit):
    return {node.attrs["kind"]: node for _, _, node in figures._cells(fit)}


# ---------------------------------------------------------------- fixture

def test_fixture_is_small_and_loads(fit, link):
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file() and p.suffix != ".py")
    assert size < 1.5e6
    assert fit.metadata["model"] == "joint"
    assert {"imatinib_il2_melanoma/tumor_volume", "joint"} <= {n.path.strip("/") for n in fit.tree.subtree}
    assert set(cells(fit)) == {"positive", "rate", "percent"}
    assert link.spec is not None and link.spec.family == "link"
    assert {"activation", "link", "alpha_combo"} <= set(link.tree["posterior"].to_dataset().data_vars)
    assert set(link.table["endpoint"]) >= {"tumor_volume", "survival"}


def test_figures_stay_out_of_pyplot(fit):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    figures.forest(fit.synergy)
    figures.n_posterior(fit)
    assert set(plt.get_fignums()) == before


# ---------------------------------------------------------------- to_png

@pytest.mark.parametrize("dpi", [80, 100])
def test_to_png_signature_and_size(fit, dpi):
    fig = figures.forest(fit.synergy)
    assert fig.get_size_inches()[0] * 100 == pytest.approx(800)
    check_png(fig, dpi)


def test_figures_display_as_png_in_jupyter(fit, study):
    """Every figure function returns a BayesFigure, whose _repr_png_ is what the report embeds."""
    for fig in (figures.forest(fit.synergy), figures.n_posterior(fit),
                figures.prior_posterior(fit, study=study, prior_draws=200)):
        assert isinstance(fig, figures.BayesFigure)
        png = fig._repr_png_()
        assert png.startswith(figures.PNG_SIGNATURE)
        assert png[16:24] == figures.to_png(fig)[16:24]     # IHDR width and height


# ---------------------------------------------------------------- forest

def expected_rows(table):
    return table[table["reference"].isin(REFERENCES)]


def test_forest_one_row_per_endpoint_reference_combination(fit):
    fig = figures.forest(fit.synergy)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    rows = expected_rows(fit.synergy)
    assert len(labels) == len(rows) == 4 * 3          # seed: 4 endpoints x 3 references x 1 combination
    assert len(set(labels)) == len(labels)
    for r in rows.itertuples():
        ref = figures.REFERENCE_LABELS[r.reference]
        assert f"{r.endpoint.replace('_', ' ')} · {ref} · {r.arm}" in labels
    # P(synergy) is printed per row; a zero line marks "no synergy"
    texts = [t.get_text() for t in ax.texts]
    assert sum(t.startswith("P=") for t in texts) == len(rows)
    assert any(np.allclose(line.get_xdata(), 0.0) for line in ax.get_lines())
    assert "> 0 = synergy" in ax.get_xlabel()


def test_forest_side_by_side(fit):
    a = fit.synergy.assign(prior_set="default")
    b = fit.synergy.assign(prior_set="sceptical", mean=fit.synergy["mean"] - 0.3)
    b = b[b["endpoint"] != "ifn_gamma"]                # a row missing in one table stays empty there
    fig = figures.forest(pd.concat([a, b]), by="prior_set")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["prior_set: default", "prior_set: sceptical"]
    assert len(fig.axes[0].get_yticklabels()) == len(expected_rows(a))
    assert sum(t.get_text().startswith("P=") for t in fig.axes[1].texts) == len(expected_rows(b))
    check_png(fig)


def test_forest_refuses_empty_and_unknown_by(fit):
    with pytest.raises(ValueError, match="no rows"):
        figures.forest(fit.synergy[fit.synergy["reference"] == "tgi"])
    with pytest.raises(KeyError, match="nope"):
        figures.forest(fit.synergy, by="nope")


# ---------------------------------------------------------------- predictive summaries

@pytest.mark.parametrize("kind", ["positive", "percent", "rate"])
def test_predictive_summaries_per_kind(fit, kind):
    node = cells(fit)[kind]
    table = figures.predictive_summaries(node, seed=3, draws=1000)
    arms = list(node["constant_data"].to_dataset()["arm"].to_numpy())
    expected = ["percent"] if kind == "rate" else ["mean", "sd"]
    assert list(table["arm"]) == [a for a in arms for _ in expected]
    assert list(table["statistic"]) == expected * len(arms)
    assert table["p_value"].between(0, 1).all() and table["p_mid"].between(0, 1).all()
    assert (table["pred_low"] <= table["pred_median"]).all() and (table["pred_median"] <= table["pred_high"]).all()
    assert table["inside"].mean() >= 0.75                 # the model reproduces the seed's summaries
    reported = node["constant_data"].to_dataset()["reported"].to_numpy()
    assert np.allclose(table.loc[table["statistic"] != "sd", "reported"], reported)
    if kind == "rate":                                     # whole animals out of n
        assert ((table[["pred_low", "pred_high"]] >= 0) & (table[["pred_low", "pred_high"]] <= 100)).all().all()
    # seeded: same seed, same table; n drawn from the posterior weights on the grid
    assert table.equals(figures.predictive_summaries(node, seed=3, draws=1000))
    grid = node["posterior"]["n_weight"].coords["n"].to_numpy()
    assert grid.min() <= table["n_mean"].iloc[0] <= grid.max()


def test_predictive_summaries_reported_n(fit):
    node = cells(fit)["positive"].copy()
    fixed = figures.predictive_summaries(node, seed=1, draws=500, n=10)
    assert (fixed["n_mean"] == 10).all()
    arm = str(node["constant_data"].to_dataset()["arm"].to_numpy()[0])
    partly = figures.predictive_summaries(node, seed=1, draws=500, n={arm: 12})
    assert (partly.loc[partly["arm"] == arm, "n_mean"] == 12).all()
    assert (partly.loc[partly["arm"] != arm, "n_mean"] != 12).all()
    node.attrs["n"] = "n = 10 per arm, as reported"
    with pytest.raises(ValueError, match="reported"):
        figures.predictive_summaries(node, seed=1)


def test_ppc_figure(fit, study):
    fig = figures.ppc(fit, study=study, seed=2, draws=500)
    check_png(fig)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 3 * 2 + 1                     # mean and SD for three cells, % for the rate
    titles = [ax.get_title() for ax in visible]
    assert "survival: % of animals" in titles and "tumor volume: reported SD" in titles
    assert any("(mm3)" in ax.get_ylabel() for ax in visible)


# ---------------------------------------------------------------- prior vs posterior

def test_prior_posterior_joint_implied_prior(fit, study):
    priors = load_prior_set("default")
    tree = figures.interaction_draws(fit, priors, study=study, prior_draws=2000, seed=1)
    prior, post = tree["prior"].to_dataset(), tree["posterior"].to_dataset()
    assert list(prior.data_vars) == list(post.data_vars)
    assert len(post.data_vars) == 4
    # sign-aligned gamma = sigma * delta, delta ~ Normal(synergy_mean, synergy_sd): sd a bit above sigma
    assert 0.85 < float(prior["tumor volume · imatinib+IL-2"].std()) < 1.4
    assert 1.3 < float(prior["survival · imatinib+IL-2"].std()) < 2.1
    # the posterior is the sign-aligned interaction of the synergy table (positive = synergy)
    row = fit.synergy[(fit.synergy["endpoint"] == "tumor_volume") & (fit.synergy["reference"] == "interaction")]
    assert float(post["tumor volume · imatinib+IL-2"].mean()) == pytest.approx(row["mean"].iloc[0], abs=1e-4)
    fig = figures.prior_posterior(fit, priors, study=study, prior_draws=1000)
    check_png(fig)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4 and all("synergy" in ax.get_xlabel() for ax in panels)


def test_prior_posterior_joint_needs_study_after_loading(fit):
    with pytest.raises(ValueError, match="study"):
        figures.interaction_draws(fit)


def test_prior_posterior_factorial_prior_is_sign_aligned(fit):
    factorial = dataclasses.replace(fit, metadata={**fit.metadata, "model": "factorial"})
    optimistic = load_prior_set("default").with_overrides(
        {"interaction": {"dist": "Normal", "kwargs": {"mu": 0.5, "sigma": 1.0}}})
    prior = figures.interaction_draws(factorial, optimistic, prior_draws=4000, seed=2)["prior"].to_dataset()
    volume = prior["tumor volume · imatinib+IL-2"]         # lower is better: mu 0.5 = synergy
    assert float(volume.mean()) == pytest.approx(0.5, abs=0.1)
    assert float(volume.std()) == pytest.approx(1.0, abs=0.1)
    assert float(prior["survival · imatinib+IL-2"].std()) == pytest.approx(1.5, abs=0.15)   # logit prior
    check_png(figures.prior_posterior(factorial, optimistic, prior_draws=500))


def test_prior_posterior_refuses_additive(fit):
    additive = dataclasses.replace(fit, metadata={**fit.metadata, "model": "additive"})
    with pytest.raises(ValueError, match="additive"):
        figures.interaction_draws(additive)


# ---------------------------------------------------------------- NK link

@pytest.mark.parametrize("scale", ["link", "data"])
def test_nk_link(link, scale):
    fig = figures.nk_link(link, scale=scale)
    check_png(fig)
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == ["tumor volume", "survival"]
    for ax in fig.axes:
        assert "NK activation" in ax.get_xlabel()
        assert {t.get_text() for t in ax.texts} == {"control", "imatinib", "IL-2", "imatinib+IL-2"}
    if scale == "data":
        assert "(mm3)" in fig.axes[0].get_ylabel() and "%" in fig.axes[1].get_ylabel()
    else:
        assert "log" in fig.axes[0].get_ylabel() and "logit" in fig.axes[1].get_ylabel()


def test_nk_link_refuses_bad_scale_and_missing_spec(link):
    with pytest.raises(ValueError, match="scale"):
        figures.nk_link(link, scale="odds")
    with pytest.raises(ValueError, match="spec"):
        figures.nk_link(dataclasses.replace(link, spec=None))


def test_load_link_round_trip(link, tmp_path):
    again = figures.load_link(figures.save_link(link, tmp_path / "copy", study_csv=FIXTURE / "link" / "study.csv"))
    pd.testing.assert_frame_equal(again.table, link.table)
    assert again.sentence == link.sentence and again.metadata == link.metadata
    assert [c.endpoint for c in again.spec.cells] == [c.endpoint for c in link.spec.cells]
    assert again.tree["posterior"].to_dataset().identical(link.tree["posterior"].to_dataset())


# ---------------------------------------------------------------- n posterior

def test_n_posterior(fit):
    fig = figures.n_posterior(fit)
    check_png(fig)
    assert len(fig.axes) == fit.n_posterior.groupby(["study", "cohort", "fitted_in"]).ngroups == 2
    for ax in fig.axes:
        assert ax.get_ylabel() == "probability" and "n" in ax.get_xlabel()
        heights = [p.get_height() for p in ax.patches]
        assert sum(heights) == pytest.approx(2.0)       # prior and posterior each sum to 1
    empty = dataclasses.replace(fit, n_posterior=pd.DataFrame())
    with pytest.raises(ValueError, match="n posterior"):
        figures.n_posterior(empty)
