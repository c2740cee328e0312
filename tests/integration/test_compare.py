"""Model comparison with real (small, seeded, one-core) fits: SMC (the
``evidence="smc"`` cross-check) against an analytic evidence, Savage-Dickey
against SMC, and a whole comparison on the seed study (bridge sampling, the
default; its own tests are in test_bridge_fits.py and tests/unit/test_bridge.py)."""

from __future__ import annotations

import dataclasses
import math

import arviz as az
import numpy as np
import pytest

import bayes
from analytic_model import conjugate_normal, simulated_cell_fits
from bayes.compare import CELL_BF, SD_METHOD, compare_models, run_comparison, smc_log_ml, with_log_groups
from bayes.priors import load_prior_set

pytestmark = pytest.mark.integration

PRIORS = load_prior_set("default")
SMC_DRAWS, SMC_CHAINS = 1000, 4
# Allowed disagreement beyond the SMC chains' own spread: SMC's log-evidence
# estimate has an O(1/draws) bias; 0.1 (natural log) covers it, on top of the
# Savage-Dickey density's own relative sd.
FLOOR = 0.1


def test_smc_recovers_an_analytic_marginal_likelihood():
    """Normal mean with known sd, likelihood written as a Potential (as our models do):
    the evidence is the multivariate normal density of the data."""
    model, exact = conjugate_normal()
    per_chain, seconds = smc_log_ml(model, draws=SMC_DRAWS, chains=SMC_CHAINS, seed=5, cores=1)
    se = per_chain.std(ddof=1) / math.sqrt(per_chain.size)
    print(f"analytic log ML {exact:.4f}; SMC {per_chain.mean():.4f} (chains {np.round(per_chain, 4)}, "
          f"se {se:.4f}, {seconds:.1f} s)")
    assert abs(per_chain.mean() - exact) <= 4 * se + FLOOR


def test_savage_dickey_agrees_with_smc_on_a_simulated_cell(quick, cache):
    """Additive is factorial with the interaction at 0, so BF10(interaction) by
    Savage-Dickey must equal ML(factorial) / ML(additive) by SMC."""
    fits = simulated_cell_fits(quick, cache)
    comp = compare_models(fits, PRIORS, evidence="smc", smc_draws=SMC_DRAWS, smc_chains=SMC_CHAINS, seed=9,
                          smc_cores=1)
    row = comp.interactions.iloc[0]
    assert row["method"] == SD_METHOD and 0 < row["density_rel_sd"] < 0.1
    table = comp.table.set_index("model")
    se = math.sqrt(sum(table.loc[m, "log_ml_sd"] ** 2 / SMC_CHAINS for m in ("additive", "factorial")))
    tolerance = (4 * math.sqrt(se**2 + row["density_rel_sd"] ** 2) + FLOOR) / math.log(10)
    assert (table["evidence"] == "SMC").all()
    print(f"log10 BF10: Savage-Dickey {row['log10_bf10']:.3f}, SMC {row[CELL_BF]:.3f} "
          f"(tolerance {tolerance:.3f})")
    assert abs(row["log10_bf10"] - row[CELL_BF]) <= tolerance
    assert table.loc["factorial", "log10_bf_vs_additive"] == pytest.approx(row[CELL_BF])


def test_full_comparison_on_the_seed(quick, cache, tmp_path):
    study = bayes.load_builtin("seed")
    lines = []
    settings = dataclasses.replace(quick, draws=300, tune=300, cores=1)
    comp, results = run_comparison(study, settings=settings, seed=4,
                                   models=("additive", "factorial", "joint"), cache=cache, progress=lines.append)
    table = comp.table.set_index("model")
    assert list(table.index) == ["additive", "factorial", "joint"]
    assert any(line.startswith("bridge sampling") for line in lines) and any(line.startswith("PSIS") for line in lines)
    assert not any("SMC" in line for line in lines)
    assert (table["evidence"] == "bridge sampling").all() and comp.metadata["evidence"] == "bridge"
    assert "log ML by bridge sampling" in comp.format()
    numeric = ["elpd_loo", "se", "p_loo", "max_k", "weight", "log_ml", "log_ml_sd", "log10_bf_vs_additive",
               "evidence_seconds"]
    assert np.isfinite(table[numeric].to_numpy(float)).all()
    assert (table["n_obs"] == 16).all()
    assert table["weight"].sum() == pytest.approx(1.0)
    assert table.loc["additive", "log10_bf_vs_additive"] == 0.0
    for model in ("factorial", "joint"):
        expected = (table.loc[model, "log_ml"] - table.loc["additive", "log_ml"]) / math.log(10)
        assert table.loc[model, "log10_bf_vs_additive"] == pytest.approx(expected)
    # the sentence names the model stacking prefers, and owns up to high Pareto k
    assert f"on the {table['weight'].idxmax()} model" in comp.sentence
    if (table["n_k_gt_0.7"] > 0).any():
        assert "unreliable" in comp.sentence
    # one Savage-Dickey row per endpoint (one combination each), from the cell's own prior
    assert len(comp.interactions) == 4
    assert np.isfinite(comp.interactions[["bf10", CELL_BF]].to_numpy(float)).all()
    # the augmented tree serves psense as well as loo
    spec, raw = results["factorial"].fits[0]
    tree = with_log_groups(spec, raw, PRIORS, seed=1)
    sense = az.psense_summary(tree, var_names=["c0_interaction"])
    assert {"prior", "likelihood"} <= set(sense.columns)
    comp.save(tmp_path)
    back = type(comp).load(tmp_path)
    assert back.table["model"].tolist() == comp.table["model"].tolist()
    print(comp.format())
