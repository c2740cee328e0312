"""Model comparison without MCMC: the pointwise log-likelihood, n draws, tables, files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import special, stats

import bayes
from bayes.analysis import model_specs
from bayes.compare import (COLUMNS, Comparison, arm_labels, column_of, comparison_sentence, compare_models,
                           density_at_value, draw_n_index, interaction_bayes_factors, log_prior, loo_tree,
                           pointwise_loglik, prior_density)
from bayes.errors import BayesError
from bayes.models.builder import at_draws, build_model, prefix
from bayes.nprior import NPrior
from bayes.priors import Prior, load_prior_set

PRIORS = load_prior_set("default")


@pytest.fixture(scope="module")
def seed_study():
    return bayes.load_builtin("seed")


def _prior_as_posterior(spec, draws=30, seed=1) -> xr.DataTree:
    """Prior draws dressed as a one-chain raw posterior (forward sampling, no MCMC)."""
    model = build_model(spec, PRIORS)
    with model, warnings.catch_warnings():
        # the draws only stand in for parameter values; that the likelihood Potential
        # does not shape them (PyMC's warning) is intended here
        warnings.filterwarnings("ignore", message="The effect of Potentials on other parameters is ignored",
                                category=UserWarning)
        prior = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    post = prior["prior"].to_dataset()
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": xr.Dataset()})


def test_pointwise_is_only_an_addition_to_the_graph(seed_study):
    (spec,) = model_specs(seed_study, "joint", NPrior())
    plain, extra = build_model(spec, PRIORS), build_model(spec, PRIORS, pointwise=True)
    assert not any("pointwise" in name for name in plain.named_vars)
    assert [rv.name for rv in plain.free_RVs] == [rv.name for rv in extra.free_RVs]
    assert [p.name for p in plain.potentials] == [p.name for p in extra.potentials]
    added = set(extra.named_vars) - set(plain.named_vars)
    assert added == {prefix(i) + "pointwise" for i in range(len(spec.cells))}
    point = plain.initial_point()
    assert plain.point_logps(point) == extra.point_logps(point)


def test_pointwise_shape_and_labels(seed_study):
    (spec,) = model_specs(seed_study, "joint", NPrior())
    raw = _prior_as_posterior(spec)
    ll = pointwise_loglik(spec, raw, PRIORS, seed=3)
    n_arms = sum(len(c.design.arms) for c in spec.cells)
    assert ll.dims == ("chain", "draw", "obs")
    assert ll.shape == (1, 30, n_arms)
    assert list(ll["obs"].to_numpy()) == arm_labels(spec)
    assert ll["obs"].to_numpy()[0] == f"{spec.cells[0].study}/{spec.cells[0].endpoint}/control"
    assert np.isfinite(ll.to_numpy()).all()
    # seeded: the same seed gives the same n draws, another seed (usually) others
    again = pointwise_loglik(spec, raw, PRIORS, seed=3)
    np.testing.assert_array_equal(ll.to_numpy(), again.to_numpy())


@pytest.mark.parametrize("family", ["joint", "link"])
def test_vectorised_draws_equal_pymcs_draw_by_draw_evaluation(seed_study, family):
    """at_draws (pointwise log-likelihoods) and log_prior give what PyMC's
    compute_deterministics and compute_log_prior give, draw by draw."""
    (spec,) = model_specs(seed_study, family, NPrior())
    raw = _prior_as_posterior(spec, draws=12)
    post = raw["posterior"].to_dataset()
    model = build_model(spec, PRIORS, pointwise=True)
    names = [prefix(i) + "pointwise" for i in range(len(spec.cells))]
    expected = pm.compute_deterministics(post, model=model, var_names=names, progressbar=False)
    outputs = [model[n] for n in names]
    whole, blocks = at_draws(model.free_RVs, outputs, post), at_draws(model.free_RVs, outputs, post, chunk=5)
    for name, values, in_blocks in zip(names, whole, blocks):
        assert values.shape == expected[name].shape
        # equal up to rounding: at_draws does not distribute products over sums as PyMC's
        # rewrites do (bayes.models.builder.AT_DRAWS_MODE); relative differences ~1e-10
        np.testing.assert_allclose(values, expected[name].to_numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_array_equal(in_blocks, values)
    reference = pm.stats.compute_log_prior(xr.DataTree.from_dict({"posterior": post}), model=model,
                                           progressbar=False, extend_inferencedata=False)
    reference = reference.to_dataset() if hasattr(reference, "to_dataset") else reference
    ours = log_prior(model, post)
    assert set(ours.data_vars) == set(reference.data_vars) == {rv.name for rv in model.free_RVs}
    for name in reference.data_vars:
        assert ours[name].dims == reference[name].dims
        np.testing.assert_allclose(ours[name].to_numpy(), reference[name].to_numpy(), rtol=1e-12, atol=1e-12)


def _loglik_by_hand(cell, values: dict, n: float) -> np.ndarray:
    """Each arm's log-likelihood at n, written out with scipy from the cell's rows."""
    d, rows = cell.design, cell.rows
    eta = values["baseline"] + d.agent_matrix @ values["agent_effect"]
    if d.combos:
        eta = eta + d.interaction_matrix @ values["interaction"]
    if cell.kind == "rate":
        k = np.round(rows["percent"].to_numpy(float) * n / 100)
        return stats.binom.logpmf(k, n, special.expit(eta))
    if cell.kind == "positive":
        s2 = values["sd_log"] ** 2
        mean = np.exp(eta + s2 / 2)
        var = np.expm1(s2) * mean**2
        _, _, skew, kurt = stats.lognorm(s=values["sd_log"]).stats(moments="mvsk")
        alpha = (n - 1) / 2
    else:
        mean = special.expit(eta)
        phi = values["precision"]
        var = mean * (1 - mean) / (1 + phi)
        _, _, skew, kurt = stats.beta(mean * phi, (1 - mean) * phi).stats(moments="mvsk")
        alpha = np.minimum((n - 1) / 2, n * np.minimum(mean, 1 - mean) * phi / 2)   # Beta's pole at a bound
    obs_mean = rows["mean"].to_numpy(float) / cell.scale
    obs_var = (rows["sd"].to_numpy(float) / cell.scale) ** 2
    # printed to a step h (10 mm3 and 1 % lysis here, no value printed as one step):
    # mean and SD carry a Uniform(-h/2, h/2) rounding error each
    h2 = (cell.print_step / cell.scale) ** 2
    # bayes.likelihoods.summary_loglik: the reported variance has mean var + h^2/12 and
    # relative variance r = (r0 var^2 + var h^2/3 + h^4/180) / (var + h^2/12)^2, r0 = 2/(n-1) +
    # kurt/n: var * c * BetaPrime(alpha, beta) if r alpha > 1, else a Gamma; the mean given it
    # is normal, linear in u = sd / sqrt(E sd^2), with Cov(mean, variance) = mu3 / n and
    # Var(mean) = var / n + h^2/12
    r0 = 2 / (n - 1) + kurt / n
    var0 = var
    var = var + h2 / 12
    r = (r0 * var0**2 + var0 * h2 / 3 + h2**2 / 180) / var**2
    heavy = r * alpha - 1 > 5e-4
    beta = np.where(heavy, (alpha - 1 + 2 * r * alpha) / np.where(heavy, r * alpha - 1, 1.0), 3.0)
    c = (beta - 1) / alpha
    shape = 1 / r
    m1, m3 = (np.where(heavy, c ** (t / 2) * np.exp(special.betaln(alpha + t / 2, beta - t / 2)
                                                    - special.betaln(alpha, beta)),
                       np.exp(special.gammaln(shape + t / 2) - special.gammaln(shape)) / shape ** (t / 2))
              for t in (1, 3))
    lp_var = np.where(heavy, stats.betaprime.logpdf(obs_var, alpha, beta, scale=var * c),
                      stats.gamma.logpdf(obs_var, shape, scale=var / shape))
    slope = skew * var0 / (n * var * (m3 - m1))
    spread = np.sqrt(n * (1 - m1**2))
    slope = slope * 0.75 / np.maximum(np.abs(slope) * spread, 0.75)
    rho2 = (slope * spread) ** 2
    u = np.sqrt(obs_var / var)
    sd = np.sqrt(var0 / n * (1 - rho2) * (1 - rho2 + rho2 * u**2) + h2 / 12)
    return stats.norm.logpdf(obs_mean, mean + np.sqrt(var0) * slope * (u - m1), sd) + lp_var


@pytest.mark.parametrize("endpoint", ["tumor_volume", "survival", "nk_lysis"])
def test_pointwise_sums_to_the_potential_at_fixed_n(seed_study, endpoint):
    n = 10
    specs = {s.cells[0].endpoint: s for s in model_specs(seed_study, "factorial", NPrior.fixed(n))}
    spec = specs[endpoint]
    cell = spec.cells[0]
    model = build_model(spec, PRIORS, pointwise=True)
    rng = np.random.default_rng(4)
    values = {"baseline": 0.1, "agent_effect": rng.normal(0, 0.5, len(cell.design.agents)),
              "interaction": rng.normal(0, 0.5, len(cell.design.combos)),
              "sd_log": rng.uniform(0.1, 0.4, len(cell.design.arms)),
              "precision": rng.uniform(5, 40, len(cell.design.arms))}
    point = {}
    for rv in model.free_RVs:
        value = np.asarray(values[rv.name.removeprefix("c0_")], float)
        transform = model.rvs_to_transforms[rv]
        point[model.rvs_to_values[rv].name] = transform.forward(value).eval() if transform else value
    outs = model.replace_rvs_by_values([model["c0_pointwise"], model["loglik_0"]])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    pointwise, potential = fn(point)
    grid = list(spec.groups[0].grid)
    row = np.asarray(pointwise)[grid.index(n)]
    np.testing.assert_allclose(row, _loglik_by_hand(cell, values, n), rtol=1e-9, atol=1e-9)
    # one allowed n: the Potential is the sum of the arms' log-likelihoods at it
    np.testing.assert_allclose(row.sum(), float(potential), rtol=1e-10)


def test_marginal_potential_is_the_n_mixture_of_the_pointwise_rows(seed_study):
    (spec,) = [s for s in model_specs(seed_study, "factorial", NPrior()) if s.cells[0].endpoint == "tumor_volume"]
    model = build_model(spec, PRIORS, pointwise=True)
    outs = model.replace_rvs_by_values([model["c0_pointwise"], model["loglik_0"], model["n_weight_0"]])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    pointwise, potential, weight = fn(model.initial_point())
    log_w = spec.groups[0].log_weight
    total = log_w + np.asarray(pointwise).sum(axis=1)
    assert float(potential) == pytest.approx(special.logsumexp(total), rel=1e-10)
    np.testing.assert_allclose(weight, np.exp(total - special.logsumexp(total)), atol=1e-12)


def test_n_draws_follow_the_weights():
    rng = np.random.default_rng(0)
    weights = np.array([0.0, 0.2, 0.5, 0.3])
    index = draw_n_index(np.broadcast_to(weights, (4, 5000, 4)), rng)
    assert index.shape == (4, 5000)
    freq = np.bincount(index.ravel(), minlength=4) / index.size
    se = np.sqrt(weights * (1 - weights) / index.size)
    assert (np.abs(freq - weights) <= 4 * se + 1e-12).all()
    assert freq[0] == 0.0
    # one allowed value: always that index
    assert (draw_n_index(np.array([[0.0, 1.0, 0.0]]), rng) == 1).all()


def test_loo_tree_joins_fits_and_refuses_mismatched_shapes(seed_study):
    specs = model_specs(seed_study, "factorial", NPrior())
    fits = [(s, _prior_as_posterior(s, draws=20, seed=i)) for i, s in enumerate(specs)]
    tree = loo_tree(fits, PRIORS, seed=1, name="factorial")
    assert tree["log_likelihood"]["arms"].shape == (1, 20, 16)
    assert list(tree["log_likelihood"]["obs"].to_numpy()) == [o for s in specs for o in arm_labels(s)]
    assert "m3_c0_interaction" in tree["posterior"].data_vars
    short = fits[:-1] + [(specs[-1], _prior_as_posterior(specs[-1], draws=10))]
    with pytest.raises(BayesError, match="different"):
        loo_tree(short, PRIORS, seed=1)
    with pytest.raises(BayesError, match="same arm"):
        loo_tree([fits[0], fits[0]], PRIORS, seed=1)
    with pytest.raises(ValueError, match="no fits"):
        compare_models({}, PRIORS, seed=1)


def test_savage_dickey_uses_the_cells_interaction_prior(seed_study):
    specs = model_specs(seed_study, "factorial", NPrior())
    fits = [(s, _prior_as_posterior(s, draws=200, seed=i)) for i, s in enumerate(specs)]
    table = interaction_bayes_factors(fits, PRIORS)
    assert len(table) == 4
    # prior draws as "posterior": the density at 0 is the prior's, so BF10 is near 1 in log terms
    sds = {"log": PRIORS["interaction"].kwargs["sigma"], "logit": PRIORS["interaction_logit"].kwargs["sigma"]}
    for r in table.itertuples():
        assert r.prior_density_0 == pytest.approx(stats.norm.pdf(0, 0, sds[r.link]))
    assert (table["bf10"] > 0).all()
    additive = model_specs(seed_study, "additive", NPrior())
    with pytest.raises(ValueError, match="factorial"):
        interaction_bayes_factors([(additive[0], fits[0][1])], PRIORS)


def test_savage_dickey_falls_back_to_the_kde_when_the_density_fails(seed_study, monkeypatch):
    import bayes.compare as compare

    def fails(*args, **kwargs):
        raise BayesError("Savage-Dickey: the density is not finite at some posterior draws")

    monkeypatch.setattr(compare, "compiled_with_data", lambda *args: (None, []))   # nothing is evaluated
    monkeypatch.setattr(compare, "density_at_value", fails)
    spec = model_specs(seed_study, "factorial", NPrior())[0]
    table = interaction_bayes_factors([(spec, _prior_as_posterior(spec, draws=200))], PRIORS, cache=object())
    assert not (table["method"] == compare.SD_METHOD).any()     # the KDE (or its normal-tail fallback)
    assert table["method"].str.startswith("Savage-Dickey (").all()
    assert table["density_rel_sd"].isna().all()


def test_prior_density():
    assert prior_density(Prior("Normal", {"mu": 0.5, "sigma": 2.0})) == pytest.approx(stats.norm.pdf(0, 0.5, 2))
    assert prior_density(Prior("StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 1.0})) == \
        pytest.approx(stats.t.pdf(0, 3))
    assert math.isnan(prior_density(Prior("Normal", {"mu": Prior("Normal", {"mu": 0.0, "sigma": 1.0}),
                                                      "sigma": 1.0})))


def _comparison() -> Comparison:
    rng = np.random.default_rng(2)
    rows = []
    for name in ("additive", "factorial", "joint"):
        rows.append({"model": name, "elpd_loo": rng.normal(), "se": 1.0, "p_loo": 3.0, "n_obs": 16,
                     "n_k_gt_0.7": 5, "max_k": 1.1, "weight": 1 / 3, "log_ml": rng.normal(),
                     "log_ml_sd": 0.1, "log10_bf_vs_additive": 0.0, "smc_seconds": 1.0, "smc_draws": 100,
                     "smc_chains": 2, "note": ""})
    rows.append({"model": "link", "note": "not fitted: several studies", "smc_draws": 100, "smc_chains": 2})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    interactions = pd.DataFrame([{"study": "s", "endpoint": "tumor_volume", "combination": "A+B", "link": "log",
                                  "prior": "Normal(mu=0, sigma=1)", "aligned_mean": 0.5, "aligned_sd": 0.2,
                                  "p_synergy": 0.99, "prior_density_0": 0.4, "posterior_density_0": 0.04,
                                  "bf10": 10.0, "log10_bf10": 1.0, "method": "Savage-Dickey (KDE)",
                                  "smc_log10_bf10_cell": 0.9}])
    return Comparison(table=table, interactions=interactions)


def test_comparison_round_trip_and_refusals(tmp_path):
    comp = _comparison()
    assert "unreliable" in comp.sentence and "link not compared" in comp.sentence
    assert "link" in comp.format() and "tumor_volume" in comp.format()
    paths = comp.save(tmp_path)
    assert [p.name for p in paths] == ["comparison.csv", "interactions.csv"]
    back = Comparison.load(tmp_path)
    pd.testing.assert_frame_equal(back.table, comp.table, check_dtype=False)
    pd.testing.assert_frame_equal(back.interactions, comp.interactions, check_dtype=False)
    assert back.sentence == comp.sentence
    with pytest.raises(BayesError, match="already exist"):
        comp.save(tmp_path)
    comp.save(tmp_path, overwrite=True)
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(BayesError, match="no saved comparison"):
        Comparison.load(tmp_path / "nowhere")


def test_sentence_flags_extrapolated_savage_dickey():
    comp = _comparison()
    interactions = comp.interactions.assign(method="Savage-Dickey (normal approx.; 0 outside the posterior draws)")
    text = comparison_sentence(comp.table, interactions)
    assert "extrapolation" in text and "tumor_volume" in text


def test_sentence_does_not_pick_a_winner_among_close_marginal_likelihoods():
    comp = _comparison()
    table = comp.table.copy()
    table.loc[table["model"] == "additive", ["log_ml", "log10_bf_vs_additive"]] = [0.0, 0.0]
    table.loc[table["model"] == "factorial", ["log_ml", "log10_bf_vs_additive"]] = [8.0, 8.0 / math.log(10)]
    table.loc[table["model"] == "joint", ["log_ml", "log10_bf_vs_additive"]] = [7.5, 7.5 / math.log(10)]
    text = comparison_sentence(table, comp.interactions)
    assert "cannot separate the factorial and joint models" in text and "favour the" not in text
    table.loc[table["model"] == "joint", ["log_ml", "log10_bf_vs_additive"]] = [5.0, 5.0 / math.log(10)]
    text = comparison_sentence(table, comp.interactions)
    assert "favour the factorial model" in text and "cannot separate" not in text


def test_density_at_value_on_normal_posteriors_and_in_the_far_tail():
    # x, psi bivariate normal: the marginal density of x is known at any value.  Uncorrelated,
    # every term is nearly the density itself, also 6 sd out, where no draw comes near and a
    # kernel density estimate has nothing to go on; correlated, the terms are the conditional
    # densities p(value | psi) and vary with psi, which the reported relative sd must cover
    rng = np.random.default_rng(1)
    for rho, value, max_rel_sd in ((0.0, -4.0, 0.01), (0.0, 2.5, 0.01), (0.8, 2.5, 0.03)):
        cov = np.array([[1.0, rho], [rho, 1.0]])
        draws = rng.multivariate_normal([2.0, 0.0], cov, size=(4, 1000))
        logq = lambda p: stats.multivariate_normal.logpdf(p, [2.0, 0.0], cov) + 7.0   # noqa: E731 (unnormalised)
        density, rel_sd = density_at_value(logq, draws, 0, value)
        assert rel_sd < max_rel_sd
        assert abs(density / stats.norm.pdf(value, 2.0, 1.0) - 1) < 4 * rel_sd + 1e-3


def test_density_at_value_is_unbiased_when_the_conditional_is_not_normal():
    # psi ~ N(0, 1), x | psi ~ N(psi^2, 0.5): p(x = v) = int N(psi) N(v; psi^2, 0.5) dpsi
    rng = np.random.default_rng(2)
    psi = rng.normal(size=(4, 2000))
    draws = np.stack([psi**2 + 0.5 * rng.normal(size=psi.shape), psi], axis=-1)
    logq = lambda p: stats.norm.logpdf(p[:, 1]) + stats.norm.logpdf(p[:, 0], p[:, 1] ** 2, 0.5)   # noqa: E731
    grid = np.linspace(-8, 8, 20001)
    for value in (1.0, -1.0):
        exact = np.trapezoid(stats.norm.pdf(grid) * stats.norm.pdf(value, grid**2, 0.5), grid)
        density, rel_sd = density_at_value(logq, draws, 0, value)
        assert 0 < rel_sd < 0.1
        assert abs(density / exact - 1) < 4 * rel_sd, (value, density, exact, rel_sd)
    with pytest.raises(BayesError, match="not finite"):
        density_at_value(lambda p: np.where(p[:, 0] == 0.0, np.nan, 0.0), draws, 0, 0.0)


def test_column_of_follows_the_free_variables():
    import pymc as pm

    with pm.Model() as model:
        pm.Normal("a", shape=3)
        pm.HalfNormal("b")
        pm.Normal("c", shape=2)
    assert [column_of(model, "a", 2), column_of(model, "b"), column_of(model, "c", 1)] == [2, 3, 5]
    with pytest.raises(KeyError):
        column_of(model, "d")
    with pytest.raises(IndexError):
        column_of(model, "c", 2)
