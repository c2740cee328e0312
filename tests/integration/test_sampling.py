"""Sampling: seeds, compiled-model reuse, the PyMC fallback, the Python API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import bayes
from bayes.sampling import ModelCache, cell_seed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seed_study():
    return bayes.load_builtin()


@pytest.fixture(scope="module")
def tumour(seed_study):
    """The seed's tumour-volume rows alone: one cell, one compiled structure."""
    rows = seed_study.table.query("endpoint == 'tumor_volume'")
    frame = rows[["study", "endpoint", "arm", "mean", "sd", "day", "unit", "cohort"]]
    return bayes.study_from_frame(frame.rename(columns={"arm": "agents"}).replace({"agents": {"control": ""}}))


def test_same_seed_same_numbers_other_seed_other_numbers(tumour, cache, quick):
    a = bayes.fit(tumour, model="factorial", settings=quick, cache=cache)
    b = bayes.fit(tumour, model="factorial", settings=quick, cache=cache)
    c = bayes.fit(tumour, model="factorial", settings=quick, cache=cache, seed=quick.seed + 1)
    cols = ["mean", "sd", "ci_low", "ci_high", "p_synergy"]
    assert np.array_equal(a.synergy[cols].to_numpy(), b.synergy[cols].to_numpy())
    assert not np.allclose(a.synergy["mean"].to_numpy(), c.synergy["mean"].to_numpy())


def test_one_compilation_serves_every_cell_of_the_same_shape(seed_study, quick):
    from bayes.analysis import as_nprior, model_specs

    # tumour volume and IFN-gamma are both positive 2x2 cells, but tumour volume's n grid holds only
    # the 4 values its cohort's survival percentages allow, IFN-gamma's all 18: four structures
    specs = model_specs(seed_study, "factorial", as_nprior(None))
    assert len(specs) == 4 and len({spec.structure for spec in specs}) == 4
    assert len({spec.structure for spec in model_specs(seed_study, "factorial", as_nprior(10))}) == 3
    positive = bayes.study_from_frame(
        seed_study.table.query("kind == 'positive'")[["study", "endpoint", "arm", "mean", "sd", "day", "unit",
                                                      "cohort"]]
        .rename(columns={"arm": "agents"}).replace({"agents": {"control": ""}}))
    fresh = ModelCache()
    result = bayes.fit(positive, model="factorial", settings=quick, cache=fresh)
    assert len(result.diagnostics) == 2 and fresh.compilations == 1   # two fits, one compilation
    bayes.fit(positive, model="factorial", n=10, settings=quick, cache=fresh)
    assert fresh.compilations == 2  # a fixed n is a one-value grid: another model ...
    bayes.fit(positive, model="factorial", n=6, settings=quick, cache=fresh)
    assert fresh.compilations == 2  # ... which every fixed n shares
    # coordinates are the cell's own, not the first compiled cell's
    ifn = result.cell("imatinib_il2_melanoma", "ifn_gamma")["posterior"]
    assert list(ifn["agent"].values) == ["imatinib", "IL-2"]
    assert float(ifn["arm_mean"].sel(arm="imatinib+IL-2").mean()) * 50 == pytest.approx(1200, rel=0.15)


def test_prior_sets_share_one_compilation_and_still_act(tumour, cache, quick):
    """Prior parameters are data: other numbers, same distributions -> no recompilation.
    (That the swapped values give exactly the other set's density is a unit test:
    test_prior_parameters_are_data_so_one_graph_serves_every_prior_set.)"""
    first = bayes.fit(tumour, model="factorial", priors="default", settings=quick, cache=cache)
    before = cache.compilations
    by_set = {name: bayes.fit(tumour, model="factorial", priors=name, settings=quick, cache=cache)
              for name in ("sceptical", "optimistic")}
    assert cache.compilations == before
    by_set["default"] = first
    bliss = {name: float(r.synergy.query("reference == 'bliss'")["mean"].iloc[0]) for name, r in by_set.items()}
    # sceptical (sd 0.25 around 0) pulls the strong tumour synergy towards 0; optimistic (mu +0.5) does not
    assert bliss["sceptical"] < bliss["default"] - 0.1
    assert bliss["optimistic"] > bliss["sceptical"] + 0.1


def test_cell_seeds_depend_on_key_not_order():
    assert cell_seed(1, "s/tumor") == cell_seed(1, "s/tumor")
    assert cell_seed(1, "s/tumor") != cell_seed(1, "s/ifn")
    assert cell_seed(1, "s/tumor") != cell_seed(2, "s/tumor")


def test_additive_model_has_no_interaction_and_misfits_the_seed(tumour, cache, quick):
    additive = bayes.fit(tumour, settings=quick, cache=cache, model="additive", n=10)
    factorial = bayes.fit(tumour, settings=quick, cache=cache, model="factorial", n=10)
    assert "interaction" not in additive.cell("imatinib_il2_melanoma", "tumor_volume")["posterior"]
    refs = set(additive.synergy["reference"])
    assert "interaction" not in refs and {"bliss", "hsa", "ra", "tgi"} <= refs

    def worst_misfit(result):
        arms = result.arms.query("endpoint == 'tumor_volume'")
        se = arms["reported_sd"] / np.sqrt(10)
        return float(((arms["posterior_mean"] - arms["reported"]).abs() / se).max())

    # no additive model can put four arm means where the seed reports them
    assert worst_misfit(additive) > 2.5
    assert worst_misfit(factorial) < 1.0


def test_pymc_fallback_agrees_with_nutpie(tumour, cache, quick):
    pymc_settings = dataclasses.replace(quick, sampler="pymc", cores=1, chains=2, draws=1000, tune=1000)
    ours = bayes.fit(tumour, model="factorial", n=10, settings=quick, cache=cache).synergy
    theirs = bayes.fit(tumour, model="factorial", n=10, settings=pymc_settings).synergy
    ours, theirs = (t.set_index(["endpoint", "reference", "arm"]) for t in (ours, theirs))
    diff = (ours["mean"] - theirs["mean"]).abs()
    # both estimate the same posterior: allow 4 Monte Carlo standard errors of the difference,
    # with a conservative effective sample size of 500 per run
    mcse = ours["sd"] * np.sqrt(1 / 500 + 1 / 500)
    assert (diff < 4 * mcse).all(), diff[diff >= 4 * mcse]


def test_n_assumption_changes_the_uncertainty(tumour, cache, quick):
    small = bayes.fit(tumour, model="factorial", settings=quick, cache=cache, n=4).synergy
    large = bayes.fit(tumour, model="factorial", settings=quick, cache=cache, n=20).synergy
    pick = lambda t: t.query("endpoint == 'tumor_volume' and reference == 'bliss'").iloc[0]  # noqa: E731
    assert pick(small)["sd"] > 1.5 * pick(large)["sd"]
    assert "4 (assumed)" in pick(small)["n_per_arm"]


def test_started_fits_sample_in_the_background_and_give_the_same_draws(tumour, cache, quick):
    """start_fit returns while its models sample on the queue's thread; the Python
    caller runs meanwhile; the result equals the blocking fit's, draw for draw."""
    import time

    from bayes.analysis import start_fit

    blocking = bayes.fit(tumour, model="factorial", settings=quick, cache=cache)   # compiled by now
    started_at = time.perf_counter()
    pending = [start_fit(tumour, model="factorial", settings=quick, cache=cache, seed=quick.seed + k)
               for k in (0, 1)]
    returned_after = time.perf_counter() - started_at
    first, second = (p.result() for p in pending)
    waited = time.perf_counter() - started_at
    assert returned_after < waited / 4
    assert first.tree.equals(blocking.tree)
    assert not np.allclose(first.synergy["mean"], second.synergy["mean"])     # its own seed


def test_an_error_in_a_background_fit_reaches_the_caller(tumour, cache, quick):
    from bayes.sampling import start_sample
    from bayes.analysis import as_nprior, model_specs
    from bayes.priors import load_prior_set

    (spec,) = model_specs(tumour, "factorial", as_nprior(None))
    bad = dataclasses.replace(quick, draws=1, chains=1, target_accept=1.5)   # nutpie refuses target_accept > 1
    pending = start_sample(spec, load_prior_set("default"), settings=bad, key="bad", cache=cache)
    with pytest.raises(Exception):
        pending.result()
    # the queue goes on with the next fit
    after = bayes.fit(tumour, model="factorial", settings=quick, cache=cache)
    assert len(after.synergy) > 0 and np.isfinite(after.synergy["mean"]).all()


def test_exiting_while_a_fit_samples_ends_cleanly_not_with_a_crash(tmp_path):
    """An error between starting a fit and waiting for it: the process exits with
    the error (status 1), not a segmentation fault from nutpie's threads running
    on during interpreter shutdown."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import bayes
        from bayes.analysis import start_fit
        from bayes.sampling import SamplerSettings
        pending = start_fit(bayes.load_builtin(), model="factorial", n=10,
                            settings=SamplerSettings(draws=5000, tune=500, chains=4, cores=1))
        raise SystemExit("stopped while sampling")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "stopped while sampling" in proc.stderr


@pytest.mark.parametrize("family", ["factorial", "joint", "link"])
def test_trace_read_from_arrow_equals_nutpies_own_conversion(seed_study, cache, family):
    """tree_from_arrow (our fast reader of nutpie's raw trace) gives what
    nutpie.sample returns, draw for draw and dtype for dtype, less the warm-up
    rows and the object-valued divergence messages; the link model has
    variables without named dims (loading_free, immune_residual).
    unconstrained_points gives the same run's draws on the unconstrained scale."""
    import nutpie
    import xarray as xr

    from bayes.analysis import model_specs
    from bayes.nprior import NPrior
    from bayes.priors import load_prior_set
    from bayes.compiled import log_densities
    from bayes.sampling import _drop_object_stats, compiled_with_data, tree_from_arrow, unconstrained_points

    spec = model_specs(seed_study, family, NPrior())[-1]
    compiled, _ = compiled_with_data(spec, load_prior_set(), cache)
    kwargs = dict(draws=60, tune=40, chains=2, cores=2, seed=5, progress_bar=False, save_warmup=False)
    theirs = _drop_object_stats(nutpie.sample(compiled, **kwargs))
    arrow = nutpie.sample(compiled, return_raw_trace=True, **kwargs).get_arrow_trace()
    ours = tree_from_arrow(*arrow, compiled)
    # the draws on the unconstrained scale, in the compiled model's flat layout (where a
    # restart starts its chains): the density there is the one nutpie recorded at each draw
    points = unconstrained_points(*arrow, compiled)
    assert points.shape == (2, 60, compiled.n_dim)
    at = log_densities(compiled, points.reshape(-1, compiled.n_dim)).reshape(2, 60)
    np.testing.assert_allclose(at, ours["sample_stats"]["logp"].to_numpy(), rtol=0, atol=1e-9)
    assert set(ours.children) == {"posterior", "sample_stats"}
    for group in ("posterior", "sample_stats"):
        a, b = theirs[group].to_dataset(), ours[group].to_dataset()
        assert set(a.data_vars) == set(b.data_vars) and len(a.data_vars) > 3
        assert dict(b.sizes)["draw"] == 60 and dict(b.sizes)["chain"] == 2
        for name in a.data_vars:
            xr.testing.assert_equal(a[name], b[name])
            assert a[name].dtype == b[name].dtype, name
    assert int(ours["sample_stats"]["diverging"].sum()) == int(theirs["sample_stats"]["diverging"].sum())


def test_chains_start_at_the_given_points_and_a_warm_fit_says_so(tumour, cache, quick):
    """with_initial_points: each chain starts at one of the given unconstrained
    points, the one its seed picks.  After one short trajectory (at most two
    leapfrog steps) every chain is still next to its point, far from
    PyMC's jittered support point near 0.  A fit given ``init`` tunes for
    WARM_TUNE_FRACTION of the steps and records both in its metadata."""
    import nutpie

    from bayes import config
    from bayes.analysis import model_specs
    from bayes.compare import unconstrained_draws
    from bayes.models.builder import build_model
    from bayes.nprior import NPrior
    from bayes.priors import load_prior_set
    from bayes.sampling import compiled_with_data, with_initial_points

    spec = model_specs(tumour, "factorial", NPrior())[0]
    priors = load_prior_set()
    compiled, _ = compiled_with_data(spec, priors, cache)
    points = np.stack([np.full(compiled.n_dim, 3.0), np.full(compiled.n_dim, -3.0)])
    kwargs = dict(draws=5, tune=10, chains=4, cores=2, seed=5, progress_bar=False, store_unconstrained=True,
                  maxdepth=1, save_warmup=True)

    def first_draws(c):
        return nutpie.sample(c, **kwargs)["warmup_sample_stats"]["unconstrained_draw"].to_numpy()[:, 0]


    def nearest(draws):     # each chain's distance (max over coordinates) to the nearer point
        return np.abs(draws[:, None, :] - points[None]).max(axis=2).min(axis=1)

    warm = first_draws(with_initial_points(compiled, points))
    assert (nearest(warm) < 0.5).all()
    assert (nearest(first_draws(compiled)) > 1.5).all()         # the usual start: elsewhere
    np.testing.assert_array_equal(warm, first_draws(with_initial_points(compiled, points)))   # seeded
    with pytest.raises(ValueError, match="initial points need shape"):
        with_initial_points(compiled, points[:, :-1])

    cold = bayes.fit(tumour, model="factorial", settings=quick, cache=cache)
    _, x = unconstrained_draws(build_model(spec, priors), cold.fits[0][1])
    refit = bayes.fit(tumour, model="factorial", settings=quick, cache=cache, init=[x.reshape(-1, x.shape[-1])])
    assert refit.metadata["sampler"]["tune"] == round(quick.tune * config.WARM_TUNE_FRACTION)
    assert refit.metadata["initial_points"] == "another fit's draws"
    assert cold.metadata["initial_points"] == "PyMC's support point, jittered"
    assert refit.diagnostics["passed"].all()
    a, b = (r.synergy.set_index("reference").loc["bliss"] for r in (cold, refit))
    assert abs(a["mean"] - b["mean"]) < 0.1 * a["sd"] and abs(a["sd"] - b["sd"]) < 0.1 * a["sd"]


def test_a_fit_with_divergences_is_sampled_again_at_the_retry_target(tumour, cache):
    """The additive model misfits the seed's tumour cell; at target_accept 0.5 after
    50 tuning steps it diverges.  With retries on (the default) that fit is
    replaced by one at RETRY_TARGET_ACCEPT, which passes, and the result says so;
    off, the divergent fit is kept and fails the gate.  The first attempt is the
    same fit in both (same seed), so its divergences are the ones recorded."""
    from bayes import config
    from bayes.sampling import SamplerSettings

    settings = SamplerSettings(draws=200, tune=50, chains=2, cores=2, seed=1, target_accept=0.5)
    kept = bayes.fit(tumour, model="additive", settings=dataclasses.replace(settings, retry_divergent=False),
                     cache=cache).diagnostics.iloc[0]
    assert kept["divergences"] >= 10 and not kept["passed"] and kept["retry"] == ""
    retried = bayes.fit(tumour, model="additive", settings=settings, cache=cache)
    d = retried.diagnostics.iloc[0]
    assert d["divergences"] == 0 and d["target_accept"] == config.RETRY_TARGET_ACCEPT
    assert d["first_divergences"] == kept["divergences"] and d["first_target_accept"] == 0.5
    assert retried.metadata["retried"] == {"tumor_volume": d["retry"]}
    assert retried.metadata["sampler"]["target_accept"] == 0.5 and retried.metadata["sampler"]["retry_divergent"]


def test_a_stuck_chain_restarts_every_chain_from_the_draws_of_the_others(tumour, cache, monkeypatch):
    """The glue of the stuck-chain retry (bayes.sampling.stuck_chains, unit-tested on its
    own): told that chain 3 of a real fit is stuck, start_sample samples again with the
    chains started at the draws of chains 0-2 (on the unconstrained scale, which
    unconstrained_draws gives independently), keeps that fit and says so."""
    import bayes.sampling as sampling
    from bayes.analysis import model_specs
    from bayes.compare import unconstrained_draws
    from bayes.models.builder import build_model
    from bayes.nprior import NPrior
    from bayes.priors import load_prior_set

    spec = model_specs(tumour, "factorial", NPrior())[0]
    priors = load_prior_set()
    settings = sampling.SamplerSettings(draws=100, tune=100, chains=4, cores=2, seed=3).for_family("factorial")
    fits, starts, calls = [], [], []
    real_run, real_start = sampling._run_nutpie, sampling.with_initial_points

    def run(compiled, **kwargs):
        out = real_run(compiled, **kwargs)
        fits.append(out[0])
        return out

    def start(compiled, points):
        starts.append(points)
        return real_start(compiled, points)

    def stuck(tree):
        calls.append(tree)
        return [3] if len(calls) == 1 else []

    monkeypatch.setattr(sampling, "_run_nutpie", run)
    monkeypatch.setattr(sampling, "with_initial_points", start)
    monkeypatch.setattr(sampling, "stuck_chains", stuck)
    monkeypatch.setattr(sampling.Diagnostics, "problems", property(lambda self: ["R-hat 9 > 1.01"]))
    tree, free = sampling.start_sample(spec, priors, settings=settings, key="stuck-test", cache=cache).result()
    assert len(fits) == 2 and len(starts) == 1
    kept = tree["posterior"]["c0_baseline"].to_numpy()
    np.testing.assert_array_equal(kept, fits[1]["posterior"]["c0_baseline"].to_numpy())      # the second fit kept
    assert not np.array_equal(kept, fits[0]["posterior"]["c0_baseline"].to_numpy())
    _, x = unconstrained_draws(build_model(spec, priors), fits[0])
    np.testing.assert_allclose(starts[0], x[:3].reshape(-1, x.shape[-1]), rtol=1e-9, atol=1e-9)
    d = sampling.diagnose(tree, free)
    assert (d.first_stuck_chains, d.first_problems) == (1, "R-hat 9 > 1.01")
    assert d.retry_note.startswith("sampled again with every chain started at the draws of the chains not stuck")
