"""Bridge sampling on real (small, seeded, one-core) fits: an analytic evidence
from NUTS draws, and Savage-Dickey against bridge-sampling Bayes factors."""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytest

from analytic_model import conjugate_normal, simulated_cell_fits
from bayes.compare import CELL_BF, SD_METHOD, bridge_log_ml, compare_models, unconstrained_draws
from bayes.compiled import log_densities
from bayes.models.builder import build_model
from bayes.priors import load_prior_set
from bayes.sampling import compiled_with_data

pytestmark = pytest.mark.integration

PRIORS = load_prior_set("default")
# On top of the bridge-sampling sds and the Savage-Dickey density's own relative sd
# (both from the same draws, so not independent): 0.05 in natural log.
FLOOR = 0.05


def test_bridge_recovers_an_analytic_marginal_likelihood_from_nuts_draws():
    """The SMC test's model (tests/integration/test_compare.py: analytic log ML -14.30),
    from 4 x 1000 NUTS draws.  The reported sd accounts for the draws'
    autocorrelation, so 4 sd is the tolerance."""
    model, exact = conjugate_normal()
    with model:
        tree = pm.sample(draws=1000, tune=1000, chains=4, cores=1, random_seed=5, progressbar=False)
    est = bridge_log_ml(model, tree, seed=5)
    print(f"analytic log ML {exact:.4f}; bridge {est.log_ml:.4f} (sd {est.sd:.4f}: Frühwirth-Schnatter "
          f"{est.sd_rmse:.4f}, repetitions {np.round(est.estimates, 4)}; {est.seconds:.1f} s)")
    assert round(exact, 2) == -14.30
    assert abs(est.log_ml - exact) <= 4 * est.sd
    assert est.sd < 0.05


def test_savage_dickey_agrees_with_bridge_sampling_on_a_simulated_cell(quick, cache):
    """Additive is factorial with the interaction at 0, so BF10(interaction) by
    Savage-Dickey must equal ML(factorial) / ML(additive) by bridge sampling."""
    fits = simulated_cell_fits(quick, cache)
    comp = compare_models(fits, PRIORS, seed=9, cache=cache)
    row = comp.interactions.iloc[0]
    assert row["method"] == SD_METHOD and 0 < row["density_rel_sd"] < 0.1
    table = comp.table.set_index("model")
    assert (table["evidence"] == "bridge sampling").all()
    se = math.sqrt(sum(table.loc[m, "log_ml_sd"] ** 2 for m in ("additive", "factorial")))
    tolerance = (4 * math.sqrt(se**2 + row["density_rel_sd"] ** 2) + FLOOR) / math.log(10)
    print(f"log10 BF10: Savage-Dickey {row['log10_bf10']:.3f}, bridge {row[CELL_BF]:.3f} "
          f"(tolerance {tolerance:.3f}); bridge seconds {table['evidence_seconds'].round(1).tolist()}")
    assert abs(row["log10_bf10"] - row[CELL_BF]) <= tolerance
    assert table.loc["factorial", "log10_bf_vs_additive"] == pytest.approx(row[CELL_BF])


def test_bridge_on_the_fits_compiled_model_equals_compiling_the_density(quick, cache):
    """compare_models evaluates the density with the compiled model the fit was
    sampled with (no compilation).  The factorial and additive fits share that
    compiled model and differ only in data (the interaction switch), so the
    data must be swapped in: each must equal a density compiled for its own model."""
    fits = simulated_cell_fits(quick, cache)
    got = {}
    for name in ("factorial", "additive", "factorial"):
        (spec, raw), = fits[name]
        model = build_model(spec, PRIORS)
        compiled = compiled_with_data(spec, PRIORS, cache)[0]
        fast = bridge_log_ml(model, raw, seed=3, compiled=compiled)
        slow = bridge_log_ml(model, raw, seed=3)
        np.testing.assert_allclose(fast.estimates, slow.estimates, rtol=0, atol=1e-8)
        # nutpie's recorded logp is that density at the draws (Savage-Dickey re-uses it)
        draws = unconstrained_draws(model, raw)[1]
        at_draws = log_densities(compiled, draws.reshape(-1, draws.shape[-1])).reshape(draws.shape[:2])
        np.testing.assert_allclose(raw["sample_stats"]["logp"].to_numpy(), at_draws, rtol=0, atol=1e-9)
        got.setdefault(name, fast.log_ml)
    assert abs(got["factorial"] - got["additive"]) > 1e-3


def test_a_fit_bridge_sampling_cannot_use_costs_its_model_the_number_not_the_comparison(quick, cache, monkeypatch):
    """Draws bridge sampling cannot use (on the seed at seed 5, before stuck chains were
    sampled again, the factorial IFN-gamma fit's stuck chain made it fail to converge and
    stopped the whole report): that model's marginal likelihood and Bayes factors are
    missing, its note says why, and everything else is computed."""
    import bayes.compare as compare
    from bayes.errors import BayesError

    fits = simulated_cell_fits(quick, cache)
    real = compare.bridge_log_ml

    def failing(model, tree, **kwargs):
        if tree is fits["factorial"][0][1]:
            raise BayesError("bridge sampling did not converge in 1000 iterations")
        return real(model, tree, **kwargs)

    monkeypatch.setattr(compare, "bridge_log_ml", failing)
    comp = compare_models(fits, PRIORS, seed=9, cache=cache)
    table = comp.table.set_index("model")
    label = fits["factorial"][0][0].cells[0].endpoint
    assert math.isnan(table.loc["factorial", "log_ml"]) and math.isnan(table.loc["factorial", "log10_bf_vs_additive"])
    assert table.loc["factorial", "note"].endswith(
        f"no marginal likelihood ({label}: bridge sampling did not converge in 1000 iterations)")
    assert math.isfinite(table.loc["additive", "log_ml"]) and table.loc["additive", "note"] == ""
    assert table["elpd_loo"].notna().all()
    row = comp.interactions.iloc[0]
    assert math.isnan(row[CELL_BF]) and math.isfinite(row["log10_bf10"])     # Savage-Dickey still there
    assert "cannot separate" not in comp.format() and "favour the" not in comp.format()
