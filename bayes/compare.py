"""Which model describes a study best: additive, factorial, joint or NK-link?

Three views, each with its caveat, in one :class:`Comparison`:

* **PSIS-LOO** (``az.loo``) and **stacking weights** (``az.compare``): how
  well each model predicts one arm's reported summary from the other arms.
  The unit left out is one arm of one endpoint (its mean and SD together, or
  its k of n).  With three or four arms per endpoint every arm is
  influential, so Pareto k is often above 0.7; the table counts those arms
  and the sentence says when LOO is therefore unreliable.
* **Marginal likelihoods** by bridge sampling (:func:`bridge_log_ml`) on the
  posterior draws the fits already have, and log10 Bayes factors against the
  additive model.  The density bridged is ``model.logp(jacobian=True)``
  (priors, the ``pm.Potential`` that carries our summed-over-n likelihood,
  and the log-Jacobians) on the unconstrained space, so the estimate is the
  evidence of the model as fitted.  Factorial and additive fits are one
  independent model per endpoint, so their log evidence is the sum over
  endpoints (sds added in quadrature).  Bayes factors depend on the priors
  (a wider interaction prior lowers the factorial model's evidence), LOO
  much less so.  Sequential Monte Carlo (``pm.sample_smc``, tempering
  ``model.datalogp``; ``evidence="smc"``) is kept as a cross-check.

* **Savage-Dickey** Bayes factors for each interaction of the factorial fits
  (prior density at 0 over posterior density at 0): valid because each
  interaction has its own prior, independent of the other parameters, and
  the additive model is the factorial one with that interaction at 0.  The
  posterior density at 0 is estimated from the draws and the model's density
  (:func:`density_at_value`, Chen 1994), not by a kernel density estimate,
  which flattens the far tail where a strong interaction puts 0.

Bridge sampling
---------------
Meng & Wong (1996), as set out by Gronau et al. (2017, "A tutorial on
bridge sampling"), with the optimal bridge function and their iterative
scheme.  The posterior draws (constrained scale, as stored) are mapped to
the unconstrained space with each free variable's transform; every free
variable is included, also the additive model's interaction, which data
switch off (its draws come from its prior, but it is still a parameter of
the density, and its prior integrates to 1).  Each of ``BRIDGE_REPS``
repetitions draws a random half of the draw indices (the same in every
chain) to fit a multivariate normal proposal (mean and covariance), draws
as many proposal points as the other half has, and iterates on that other
half and the proposal points, in log space.  The error is Frühwirth-
Schnatter's (2004) approximate relative mean-squared error of the ML
estimate (Gronau et al., eq. 17; the posterior term uses the effective
sample size of its summand, the draws being MCMC), which is approximately
the variance of log ML; the reported sd is the larger of its square root
and the sd of the repetitions' estimates, which is taken as the error of
their mean too (they share the posterior draws, so it is not divided by
the square root of the number of repetitions).  The random split and the
proposal draws are seeded from the run's seed.  The logp function is
compiled once per model and evaluated at the posterior draws and at 3 x
half as many proposal points: 1 to 5 s per model on one core, compilation
included, at 4 chains x 2000 draws (the default before it became 1000).
It assumes the draws come from the posterior of the model built
with the same priors, and that the proposal covers it: a multimodal or
strongly funnel-shaped posterior would make the estimate and its error
unreliable.

On the seed study (4 x 2000 NUTS draws), bridge sampling agreed with plain
importance sampling from a widened multivariate t within its error for
every model, while SMC (4 x 1000 particles) came out lower by 0.01 to 1.5
in log for the one-endpoint models and by 4.8 (joint) and 7.9 (NK-link) in
the larger ones, with a chain-to-chain spread (0.04 to 0.7) far below that
gap: with 1000 particles, PyMC's SMC underestimated these evidences (for
the factorial IFN-gamma model, -20.84 with 1000 particles per chain, -19.8
and -20.1 with 4000, against -19.35 by bridge sampling and by importance
sampling).

Pointwise log-likelihood and unknown n
--------------------------------------
When n is not reported it is summed out per cohort inside a Potential, so
the arms of a cohort are *not* conditionally independent given the model
parameters theta alone: they share n.  They are independent given theta
*and* n.  The model keeps, per draw, the conditional posterior of n,
``p(n | theta, y)`` (the Deterministic ``n_weight_<j>``).  Drawing one n per
draw and cohort from those weights turns the posterior draws of theta into
draws ``(theta, n)`` of the augmented posterior ``p(theta, n | y)``, exactly
(not an approximation: ``p(theta, n | y) = p(theta | y) p(n | theta, y)``).
On that augmented model the arms are conditionally independent, with
``log p(y_arm | theta, n)`` the pointwise log-likelihood, so PSIS-LOO over
those draws estimates ``sum_arm log p(y_arm | y_-arm)`` in the usual way:
the importance ratios ``1 / p(y_arm | theta, n)`` reweight ``p(theta, n |
y)`` into ``p(theta, n | y_-arm)``.  The extra Monte Carlo noise of the n
draw is part of the estimate; it is seeded.  When n is reported (or fixed)
the grid has one allowed value and the draw is trivial.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes.errors import BayesError, InputError
from bayes.models.builder import ModelSpec, at_draws, build_model, interaction_prior, prefix
from bayes.priors import Prior, PriorSet, load_prior_set
from bayes.results import write_atomic
from bayes.sampling import DEFAULT_CACHE, compiled_with_data

log = logging.getLogger(__name__)

MODEL_ORDER = ("additive", "factorial", "joint", "link")
REFERENCE = "additive"
K_THRESHOLD = 0.7
LL_VAR = "arms"           # the log_likelihood variable (one value per arm)
# SMC (evidence="smc", a cross-check) defaults (config.SMC_*): 4 chains of 1000
# particles.  On the seed study (2 cores, compilation included) that took 9 s
# for the four additive models together, 14 s for the four factorial ones,
# 19 s for the joint and 27 s for the NK-link model (one core: 58, 57, 117
# and 115 s), with chain-to-chain sds of log ML of 0.04-0.7; see the module
# docstring for how far its estimates were from bridge sampling's.
SMC_DRAWS = config.SMC_DRAWS
SMC_CHAINS = config.SMC_CHAINS
EVIDENCE = ("bridge", "smc", "none")          # how compare_models estimates marginal likelihoods
EVIDENCE_LABEL = {"bridge": "bridge sampling", "smc": "SMC"}
COLUMNS = ("model", "elpd_loo", "se", "p_loo", "n_obs", "n_k_gt_0.7", "max_k", "weight",
           "log_ml", "log_ml_sd", "log10_bf_vs_additive", "evidence", "evidence_detail", "evidence_seconds",
           "note")
# The one-cell Bayes factor column of interactions.csv (factorial over additive
# marginal likelihood of that endpoint); tables saved before bridge sampling
# called it smc_log10_bf10_cell.
CELL_BF = "ml_log10_bf10_cell"
OLD_CELL_BF = "smc_log10_bf10_cell"
FILES = ("comparison.csv", "interactions.csv")


# ---------------------------------------------------------------- pointwise log-likelihood

def _loglik_model(spec: ModelSpec, priors: PriorSet):
    return build_model(spec, priors, pointwise=True)


def arm_labels(spec: ModelSpec) -> list[str]:
    """Observation labels ``study/endpoint/arm``, in the model's cell and arm order."""
    return [f"{c.study}/{c.endpoint}/{arm}" for c in spec.cells for arm in c.design.arms]


def draw_n_index(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One grid index per draw from per-draw probabilities ``weights`` (..., G)."""
    w = np.asarray(weights, float)
    cdf = np.cumsum(w, axis=-1)
    cdf /= cdf[..., -1:]
    u = rng.random(w.shape[:-1])
    return np.minimum((cdf < u[..., None]).sum(axis=-1), w.shape[-1] - 1)


def pointwise_loglik(spec: ModelSpec, raw: xr.DataTree, priors: PriorSet, *, seed: int,
                     model=None) -> xr.DataArray:
    """Log-likelihood of each arm's reported summary per posterior draw, dims
    (chain, draw, obs), obs labelled ``study/endpoint/arm``.

    n is drawn per draw and cohort from its conditional posterior weights
    (``n_weight_<j>`` in ``raw``), with ``seed``; see the module docstring for
    why that makes PSIS-LOO legitimate.
    """
    model = model or _loglik_model(spec, priors)
    post = raw["posterior"].to_dataset()
    names = [prefix(i) + "pointwise" for i in range(len(spec.cells))]
    values = dict(zip(names, at_draws(model.free_RVs, [model[n] for n in names], post)))
    rng = np.random.default_rng(seed)
    index = [draw_n_index(post[f"n_weight_{j}"].transpose("chain", "draw", f"n_grid_{j}").to_numpy(), rng)
             for j in range(len(spec.groups))]
    parts = []
    for i, cell in enumerate(spec.cells):
        j = spec.group_of(cell)
        ll = values[names[i]]                     # (chain, draw, n_grid_j, arm)
        parts.append(np.take_along_axis(ll, index[j][:, :, None, None], axis=2)[:, :, 0, :])
    data = np.concatenate(parts, axis=-1)
    return xr.DataArray(data, dims=("chain", "draw", "obs"),
                        coords={"chain": post["chain"].to_numpy(), "draw": post["draw"].to_numpy(),
                                "obs": arm_labels(spec)}, name=LL_VAR)


def with_log_groups(spec: ModelSpec, raw: xr.DataTree, priors: PriorSet, *, seed: int) -> xr.DataTree:
    """A tree with ``posterior``, ``sample_stats``, ``log_likelihood`` (per arm,
    :func:`pointwise_loglik`) and ``log_prior``, ready for ``az.loo`` and
    ``az.psense_summary``."""
    model = _loglik_model(spec, priors)
    post = raw["posterior"].to_dataset()
    return xr.DataTree.from_dict({
        "posterior": post,
        "sample_stats": raw["sample_stats"].to_dataset(),
        "log_likelihood": pointwise_loglik(spec, raw, priors, seed=seed, model=model).to_dataset(),
        "log_prior": log_prior(model, post),
    })


def log_prior(model, post: xr.Dataset) -> xr.Dataset:
    """Each free variable's prior log density (elementwise, on its own scale, no
    Jacobian) at every posterior draw: what ``pm.stats.compute_log_prior`` gives,
    vectorised over the draws (:func:`bayes.models.builder.at_draws`)."""
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    rvs = plain.free_RVs
    values = [plain.rvs_to_values[rv] for rv in rvs]
    terms = plain.logp(vars=rvs, sum=False)
    named = xr.Dataset({v.name: post[rv.name] for rv, v in zip(rvs, values)})
    return xr.Dataset({rv.name: (post[rv.name].dims, term)
                       for rv, term in zip(rvs, at_draws(values, terms, named))},
                      coords={k: c for k, c in post.coords.items()
                              if set(c.dims) <= {d for rv in rvs for d in post[rv.name].dims}})


def _sub_seed(seed: int, *labels) -> int:
    from bayes.sampling import cell_seed

    return cell_seed(seed, ":".join(map(str, labels)))


def loo_tree(fits: list[tuple[ModelSpec, xr.DataTree]], priors: PriorSet, *, seed: int,
             name: str = "model") -> xr.DataTree:
    """One tree for ``az.loo`` from one or several independent fits of a model
    (factorial/additive: one per endpoint): pointwise log-likelihoods joined
    along obs, posteriors side by side with the fit index in their names."""
    shapes = {(r["posterior"].sizes["chain"], r["posterior"].sizes["draw"]) for _, r in fits}
    if len(shapes) != 1:
        raise BayesError(f"{name}: the fits have different (chain, draw) shapes {sorted(shapes)}; "
                         "compare fits sampled with the same settings")
    lls, posts = [], []
    for k, (spec, raw) in enumerate(fits):
        lls.append(pointwise_loglik(spec, raw, priors, seed=_sub_seed(seed, "loo", name, k)))
        post = raw["posterior"].to_dataset()
        tag = f"m{k}_"
        post = post.rename({v: tag + str(v) for v in post.data_vars})
        post = post.rename({d: tag + str(d) for d in post.dims if d not in ("chain", "draw")})
        posts.append(post.drop_vars([c for c in post.coords if c not in ("chain", "draw")]))
    ll = xr.concat(lls, dim="obs")
    if len(set(ll["obs"].to_numpy())) != ll.sizes["obs"]:
        raise BayesError(f"{name}: the same arm appears in two fits")
    return xr.DataTree.from_dict({"posterior": xr.merge(posts, compat="override", join="override"),
                                  "log_likelihood": ll.to_dataset()})


# ---------------------------------------------------------------- marginal likelihood

def smc_log_ml(model, *, draws: int = SMC_DRAWS, chains: int = SMC_CHAINS, seed: int,
               cores: int | None = None) -> tuple[np.ndarray, float]:
    """Per-chain SMC estimates of the log marginal likelihood of a PyMC model
    (``build_model(spec, priors)`` or any other), and the seconds it took,
    compilation included.

    SMC tempers ``model.datalogp`` (observed variables and Potentials), so a
    likelihood written as a ``pm.Potential`` is part of the evidence; priors
    must be proper.
    """
    import pymc as pm

    from bayes.compiled import model_math

    cores = min(chains, cores or os.cpu_count() or 1)
    start = time.perf_counter()
    with model, model_math(), warnings.catch_warnings():
        # PyMC runs SMC chains in forked workers (the Linux default start method).
        # Python 3.12 warns that fork() in a process with threads (numba,
        # BLAS) *may* deadlock.  The workers run only PyMC's own compiled
        # functions, and the alternatives fail here ("forkserver" broke its
        # pipe sending the kernel; "spawn" had not finished one 4-chain run
        # of a single-endpoint model after 10 minutes), so the warning is
        # tolerated here, and only here.
        warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded, use of fork\(\)",
                                category=DeprecationWarning)
        pymc_log = logging.getLogger("pymc")      # "Initializing SMC sampler..." per run: our progress says it
        level = pymc_log.level
        pymc_log.setLevel(logging.WARNING)
        try:
            smc = pm.sample_smc(draws=draws, chains=chains, cores=cores, random_seed=seed,
                                progressbar=False, compute_convergence_checks=False)
        finally:
            pymc_log.setLevel(level)
    seconds = time.perf_counter() - start
    return last_log_ml(smc), seconds


def last_log_ml(smc: xr.DataTree) -> np.ndarray:
    """The final-stage (beta = 1) log marginal likelihood of each SMC chain."""
    out = []
    for row in smc["sample_stats"]["log_marginal_likelihood"].values:
        values = np.asarray(row, float).ravel()
        values = values[~np.isnan(values)]
        out.append(values[-1] if values.size else math.nan)
    return np.asarray(out, float)


# ---------------------------------------------------------------- bridge sampling

@dataclass
class BridgeEstimate:
    """A bridge-sampling estimate of a log marginal likelihood.

    ``log_ml`` is the mean of ``estimates`` (one per repetition: a fresh random
    split of the posterior draws and fresh proposal draws).  ``sd`` is the
    larger of ``sd_rmse`` (Frühwirth-Schnatter's approximate relative MSE, as
    an sd of log ML: the root mean of the repetitions' RE^2) and ``sd_reps``
    (the sd of the repetitions), and is *not* divided by the number of
    repetitions: they share the posterior draws.  Unpacks as ``(log_ml, sd)``.
    """

    log_ml: float
    sd: float
    sd_rmse: float
    sd_reps: float
    estimates: np.ndarray
    iterations: int
    n_posterior: int     # posterior draws in each iteration half
    n_proposal: int      # proposal draws per repetition
    dimension: int
    seconds: float = math.nan

    def __iter__(self):
        return iter((self.log_ml, self.sd))


BRIDGE_REPS = 3          # repetitions (split and proposal draws) per model
BRIDGE_TOL = 1e-10       # convergence of the iterative scheme, on log r
BRIDGE_MAX_ITER = 1000


def _ess(values: np.ndarray) -> float:
    """Effective sample size of ``values`` (chain, draw): Geyer's initial positive
    sequence on the chain-averaged autocorrelations (iid draws give about the
    number of draws)."""
    x = np.asarray(values, float)
    chains, n = x.shape
    if n < 4:
        return float(x.size)
    x = x - x.mean(axis=1, keepdims=True)
    size = 1 << int(2 * n - 1).bit_length()
    spec = np.fft.rfft(x, size, axis=1)
    acov = np.fft.irfft(spec * np.conj(spec), size, axis=1)[:, :n] / n
    within = acov[:, 0].mean()
    if not within > 0:
        return float(x.size)
    rho = acov.mean(axis=0) / within
    total, t = 0.0, 0
    while t + 1 < n:
        pair = rho[t] + rho[t + 1]
        if pair <= 0:
            break
        total += pair
        t += 2
    tau = max(2 * total - 1, 1 / math.log10(max(chains * n, 10)))
    return float(min(chains * n / tau, chains * n * math.log10(chains * n)))


def _rel_var(log_values: np.ndarray) -> float:
    """Var(v) / E(v)^2 from log v (scale-free, so computed after subtracting the max)."""
    v = np.exp(log_values - log_values.max())
    mean = v.mean()
    return float(v.var(ddof=1) / mean**2) if v.size > 1 else math.nan


def _bridge_once(l_post: np.ndarray, l_prop: np.ndarray) -> tuple[float, float, int]:
    """The iterative bridge estimate (Meng & Wong 1996, with the optimal bridge
    function) from ``l_post`` = log q - log g at posterior draws (chain, draw) and
    ``l_prop`` = the same at proposal draws, where q is the unnormalised
    posterior and g the normalised proposal; in log space throughout.  Returns
    (log ML, approximate relative MSE of the ML estimate, iterations).

    With s1, s2 the shares of posterior and proposal points, r is iterated as
    r <- mean_i[ l2_i / (s1 l2_i + s2 r) ] / mean_j[ 1 / (s1 l1_j + s2 r) ]
    (l = q / g as a ratio), starting from r = 1 on the scale exp(median l1)."""
    l1, l2 = l_post.ravel(), l_prop.ravel()
    n1, n2 = l1.size, l2.size
    log_s1, log_s2 = math.log(n1 / (n1 + n2)), math.log(n2 / (n1 + n2))
    shift = float(np.median(l1))                  # keeps exp() in range; r is relative to exp(shift)
    a, b = l2 - shift, l1 - shift
    log_r = 0.0
    for iteration in range(1, BRIDGE_MAX_ITER + 1):
        num = a - np.logaddexp(log_s1 + a, log_s2 + log_r)
        den = -np.logaddexp(log_s1 + b, log_s2 + log_r)
        new = (_logmeanexp(num) - _logmeanexp(den))
        if abs(new - log_r) < BRIDGE_TOL:
            log_r = new
            break
        log_r = new
    else:
        raise BayesError(f"bridge sampling did not converge in {BRIDGE_MAX_ITER} iterations")
    log_ml = shift + log_r
    # Frühwirth-Schnatter (2004), as in Gronau et al. (2017), eq. 17: with p the
    # normalised posterior, f1 = p / (s1 p + s2 g) at proposal draws and
    # f2 = g / (s1 p + s2 g) at posterior draws (autocorrelated: N1 / ESS(f2)).
    post_ratio2, post_ratio1 = l2 - log_ml, l1 - log_ml
    log_f1 = post_ratio2 - np.logaddexp(log_s1 + post_ratio2, log_s2)
    log_f2 = -np.logaddexp(log_s1 + post_ratio1, log_s2)
    f2 = log_f2.reshape(l_post.shape)
    f2_ess = _ess(np.exp(f2 - f2.max())) if l_post.ndim == 2 else float(n1)
    re2 = _rel_var(log_f1) / n2 + _rel_var(log_f2) / min(f2_ess, n1)
    return log_ml, re2, iteration


def _logmeanexp(x: np.ndarray) -> float:
    top = float(np.max(x))
    return top + math.log(float(np.mean(np.exp(x - top))))


def bridge_sampling(log_density, draws: np.ndarray, *, seed: int, repetitions: int = BRIDGE_REPS,
                    vectorised: bool = False, at_draws: np.ndarray | None = None) -> BridgeEstimate:
    """Bridge-sampling estimate of ``log ∫ exp(log_density(x)) dx``.

    ``draws`` (chain, draw, dim) are draws from the normalised density
    ``exp(log_density) / Z`` on an unbounded space (MCMC draws, possibly
    autocorrelated).  Each repetition splits the draws at random (the same
    draw indices in every chain, so each half keeps its chains' order), fits
    a multivariate normal proposal to one half, draws as many points from it
    as the other half has, and runs the iterative scheme on the other half
    and those proposal points.  ``log_density`` maps one point (dim,) to a
    float, or, with ``vectorised``, an (N, dim) array to N floats.  The
    posterior draws' log densities are computed once for all repetitions, or
    taken from ``at_draws`` (chain, draw) when known (nutpie records them as
    ``logp``): 4 of every 10 evaluations at the default three repetitions.
    """
    from scipy import linalg

    start = time.perf_counter()
    x = np.asarray(draws, float)
    if x.ndim != 3 or x.shape[1] < 4:
        raise ValueError(f"draws must be (chain, draw, dim) with at least 4 draws per chain, not {x.shape}")
    chains, n, dim = x.shape
    if not np.isfinite(x).all():
        raise BayesError("bridge sampling: some posterior draws are not finite on the unconstrained scale")

    def evaluate(points: np.ndarray) -> np.ndarray:
        if vectorised:
            out = np.asarray(log_density(points), float).reshape(len(points))
        else:
            out = np.fromiter((log_density(p) for p in points), float, count=len(points))
        return np.where(np.isnan(out), -np.inf, out)

    if at_draws is None:
        lq_post = evaluate(x.reshape(-1, dim)).reshape(chains, n)
    else:
        lq_post = np.where(np.isnan(at_draws), -np.inf, np.asarray(at_draws, float)).reshape(chains, n)
    if not np.isfinite(lq_post).all():
        raise BayesError("bridge sampling: the log density is not finite at some posterior draws")
    rng = np.random.default_rng(seed)
    half = n // 2
    estimates, re2s, iters = [], [], 0
    for _ in range(repetitions):
        chosen = np.zeros(n, bool)
        chosen[rng.choice(n, size=half, replace=False)] = True
        fit_part = x[:, chosen].reshape(-1, dim)            # proposal fitted to this half
        use = ~chosen                                        # the iteration half, in chain order
        mean = fit_part.mean(axis=0)
        cov = np.atleast_2d(np.cov(fit_part, rowvar=False))
        jitter, chol = 0.0, None
        for _ in range(12):                 # a (numerically) singular covariance gets a small ridge
            try:
                chol = linalg.cholesky(cov + jitter * np.eye(dim), lower=True)
                break
            except linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-10 * float(np.trace(cov)) / dim or 1e-10)
        if chol is None:
            raise BayesError("bridge sampling: the posterior draws' covariance is not positive definite")
        log_det = float(np.log(np.diag(chol)).sum())

        def log_g(points: np.ndarray) -> np.ndarray:
            z = linalg.solve_triangular(chol, (points - mean).T, lower=True)
            return -0.5 * (z**2).sum(axis=0) - log_det - 0.5 * dim * math.log(2 * math.pi)

        post = x[:, use]
        n_prop = chains * post.shape[1]
        proposal = mean + rng.standard_normal((n_prop, dim)) @ chol.T
        l_post = lq_post[:, use] - log_g(post.reshape(-1, dim)).reshape(chains, -1)
        l_prop = evaluate(proposal) - log_g(proposal)
        log_ml, re2, it = _bridge_once(l_post, l_prop)
        estimates.append(log_ml)
        re2s.append(re2)
        iters = max(iters, it)
    estimates = np.asarray(estimates)
    sd_rmse = math.sqrt(float(np.mean(re2s)))
    sd_reps = float(estimates.std(ddof=1)) if estimates.size > 1 else math.nan
    return BridgeEstimate(log_ml=float(estimates.mean()), sd=float(np.nanmax([sd_rmse, sd_reps])),
                          sd_rmse=sd_rmse, sd_reps=sd_reps, estimates=estimates, iterations=iters,
                          n_posterior=chains * (n - half), n_proposal=chains * (n - half), dimension=dim,
                          seconds=time.perf_counter() - start)


def unconstrained_draws(model, tree: xr.DataTree) -> tuple[list, np.ndarray]:
    """The posterior draws of every free variable of ``model``, mapped to its
    unconstrained (value-variable) space with the variable's transform, as one
    (chain, draw, dim) array; and the value variables with their shapes, in
    column order.  Every free variable must be in the tree's posterior: also
    one switched off by data (the additive model's interaction), whose draws
    come from its prior but which is still a parameter of the density."""
    post = tree["posterior"].to_dataset() if "posterior" in tree.children else tree.to_dataset()
    point = model.initial_point()
    columns, layout = [], []
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        if rv.name not in post:
            raise BayesError(f"bridge sampling: the posterior has no draws of {rv.name!r}")
        shape = tuple(point[value.name].shape)
        da = post[rv.name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        arr = da.transpose("chain", "draw", *dims).to_numpy().astype(float)
        if arr.shape[2:] != shape:
            raise BayesError(f"bridge sampling: draws of {rv.name!r} have shape {arr.shape[2:]}, "
                             f"the model's value {value.name!r} has {shape}")
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            import pytensor.tensor as pt

            forward = transform.forward(pt.as_tensor_variable(arr), *rv.owner.inputs).eval()
            arr = np.asarray(forward, float)
            if arr.shape[2:] != shape:
                raise BayesError(f"bridge sampling: the transform of {rv.name!r} changed its shape "
                                 f"{shape} to {arr.shape[2:]}; not supported")
        columns.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        layout.append((value, shape))
    return layout, np.concatenate(columns, axis=-1)


def bridge_log_ml(model, tree: xr.DataTree, *, seed: int, repetitions: int = BRIDGE_REPS,
                  compiled=None) -> BridgeEstimate:
    """Bridge-sampling log marginal likelihood of a PyMC model from its posterior
    draws (``tree["posterior"]``, constrained scale, as sampled from that
    model): the unnormalised density is ``model.logp(jacobian=True)`` (priors,
    observed variables, Potentials and the log-Jacobians of the transforms)
    on the unconstrained space.  ``compiled``: the model's nutpie compiled
    model with the fit's data, whose C callback (the one nutpie sampled with,
    :func:`bayes.compiled.log_densities`) is then the density, so bridge
    sampling after a fit compiles nothing; without it the density is compiled
    here.  The columns are the free variables in ``model.free_RVs`` order
    (:func:`unconstrained_draws`), as in the compiled model.  Unpacks as ``(log_ml, sd)``; see
    :class:`BridgeEstimate` and :func:`bridge_sampling`."""
    start = time.perf_counter()
    layout, draws = unconstrained_draws(model, tree)
    if compiled is not None:
        from bayes.compiled import log_densities

        estimate = bridge_sampling(lambda points: log_densities(compiled, points), draws, seed=seed,
                                   repetitions=repetitions, vectorised=True, at_draws=sampled_logp(tree, draws))
    else:
        logp = model.compile_logp(jacobian=True)
        names = [value.name for value, _ in layout]
        offsets = np.cumsum([0] + [int(np.prod(shape)) for _, shape in layout])

        def log_density(point: np.ndarray) -> float:
            return float(logp({name: point[offsets[i]:offsets[i + 1]].reshape(layout[i][1])
                               for i, name in enumerate(names)}))

        estimate = bridge_sampling(log_density, draws, seed=seed, repetitions=repetitions)
    estimate.seconds = time.perf_counter() - start
    return estimate


# ---------------------------------------------------------------- Savage-Dickey

SD_METHOD = "Savage-Dickey (conditional density)"


def density_at_value(log_density, draws: np.ndarray, column: int, value: float = 0.0, *,
                     at_draws: np.ndarray | None = None) -> tuple[float, float]:
    """Posterior density of one coordinate at ``value``, and its relative Monte Carlo sd.

    ``draws`` (chain, draw, dim) are posterior draws on the unconstrained scale and
    ``log_density`` maps (N, dim) points to the unnormalised log posterior there (NaN
    where it cannot be evaluated).  Importance-weighted marginal density estimation
    (Chen 1994): for any density w(x | psi) of the coordinate x given the others psi,

        p(x = value | data) = E_posterior[ w(x | psi) q(value, psi) / q(x, psi) ],

    with q the unnormalised posterior.  w is the normal conditional of x given psi
    under the draws' mean and covariance, so each term is nearly constant when the
    posterior is nearly normal; it needs two density evaluations per draw and no
    kernel or bandwidth.  Unlike a kernel density estimate of the draws, it stays
    accurate when ``value`` lies in the far tail, where no draw comes near (each term
    then is a small but exactly computed ratio).  The sd uses the effective sample
    size of the terms (they come from MCMC draws).  ``at_draws`` (chain, draw): the log
    density at the draws when already known (nutpie records it as ``logp``), which
    halves the evaluations.
    """
    from scipy import stats as st

    chains, n_draws, dim = draws.shape
    points = draws.reshape(-1, dim)
    x = points[:, column]
    others = np.delete(points, column, axis=1)
    mean, cov = points.mean(axis=0), np.atleast_2d(np.cov(points, rowvar=False))
    cov_oo = np.delete(np.delete(cov, column, axis=0), column, axis=1)
    cov_xo = np.delete(cov[column], column)
    coef = np.linalg.lstsq(cov_oo, cov_xo, rcond=None)[0] if dim > 1 else np.zeros(0)
    cond_mean = mean[column] + (others - np.delete(mean, column)) @ coef
    cond_sd = math.sqrt(max(cov[column, column] - cov_xo @ coef, 1e-12 * cov[column, column]))
    at = points.copy()
    at[:, column] = value
    base = np.asarray(log_density(points) if at_draws is None else at_draws, float).reshape(-1)
    log_ratio = np.asarray(log_density(at), float) - base
    if not np.all(np.isfinite(log_ratio)):
        raise BayesError("Savage-Dickey: the density is not finite at some posterior draws or at "
                         f"{value:g} in their place")
    log_terms = st.norm.logpdf(x, cond_mean, cond_sd) + log_ratio
    top = log_terms.max()
    terms = np.exp(log_terms - top)
    density = float(terms.mean()) * math.exp(top)
    ess = _ess(terms.reshape(chains, n_draws))
    rel_sd = float(terms.std(ddof=1) / terms.mean() / math.sqrt(ess)) if terms.size > 1 else math.nan
    return density, rel_sd


def column_of(model, name: str, index: int = 0) -> int:
    """The column of ``name`` (its flat element ``index``) in :func:`unconstrained_draws`' layout."""
    offset, point = 0, model.initial_point()
    for rv in model.free_RVs:
        size = int(np.prod(point[model.rvs_to_values[rv].name].shape))
        if rv.name == name:
            if not 0 <= index < size:
                raise IndexError(f"{name} has {size} elements, not {index + 1}")
            return offset + index
        offset += size
    raise KeyError(f"{name} is not a free variable of the model")

def prior_density(prior: Prior, value: float = 0.0) -> float:
    """Density of a prior with numeric parameters at ``value`` (NaN when a
    parameter is itself a prior: then the marginal prior has no closed form here)."""
    if any(isinstance(v, Prior) for v in prior.kwargs.values()):
        return math.nan
    import pymc as pm

    dist = getattr(pm, prior.dist).dist(**prior.kwargs)
    return float(np.exp(pm.logp(dist, value).eval()))


def sampled_logp(tree: xr.DataTree, draws: np.ndarray) -> np.ndarray | None:
    """nutpie's ``logp`` statistic (chain, draw) of a fit: the log density its
    compiled callback gave at each draw, i.e. what :func:`bayes.compiled.log_densities`
    gives at the draws mapped back to the unconstrained space (up to the
    rounding of that round trip).  None when the tree has no such statistic
    (PyMC's sampler) or it does not match ``draws`` (chain, draw, dim)."""
    stats = tree["sample_stats"] if "sample_stats" in tree.children else None
    if stats is None or "logp" not in stats or stats["logp"].shape != draws.shape[:2]:
        return None
    return stats["logp"].transpose("chain", "draw").to_numpy()


def densities_at_zero(spec: ModelSpec, raw: xr.DataTree, priors: PriorSet, cache,
                      variables: list[tuple[str, int]]) -> list[tuple[float, float]] | None:
    """:func:`density_at_value` at 0 of each (free variable, flat index) in ``variables``,
    from the fit's draws ``raw`` and its compiled density (from ``cache``, the
    :class:`~bayes.sampling.ModelCache` the fit was sampled with; compiled into it if
    missing): (density, relative sd) per variable.  None (logged) when the density
    cannot be evaluated: the callers then fall back to a kernel density estimate,
    which their method column flags."""
    from bayes.compiled import log_densities

    model = build_model(spec, priors)
    compiled = compiled_with_data(spec, priors, cache)[0]
    draws = unconstrained_draws(model, raw)[1]
    at_draws = sampled_logp(raw, draws)
    try:
        return [density_at_value(lambda points: log_densities(compiled, points), draws,
                                 column_of(model, name, index), at_draws=at_draws)
                for name, index in variables]
    except BayesError as err:
        log.warning("%s; using a kernel density estimate", err)
        return None


def interaction_bayes_factors(fits: list[tuple[ModelSpec, xr.DataTree]], priors: PriorSet,
                              cache=None) -> pd.DataFrame:
    """Savage-Dickey BF10 of each interaction (factorial fits): prior density at 0
    (the cell's interaction prior) over the posterior density at 0.  With ``cache``
    (the :class:`~bayes.sampling.ModelCache` the fits were sampled with; a model not
    in it is compiled into it), the posterior density at 0 comes from the draws and
    the fit's compiled density (:func:`density_at_value`; column ``density_rel_sd``);
    without it, from a kernel density estimate of the draws
    (:func:`bayes.link.density_at`), which is poor in the far tail."""
    from bayes.link import _flat, density_at

    rows = []
    for spec, raw in fits:
        if spec.family != "factorial":
            raise ValueError(f"Savage-Dickey needs factorial fits, not {spec.family!r}")
        post = raw["posterior"].to_dataset()
        wanted = [(prefix(i) + "interaction", k) for i, cell in enumerate(spec.cells)
                  if prefix(i) + "interaction" in post for k in range(len(cell.design.combos))]
        found = densities_at_zero(spec, raw, priors, cache, wanted) if cache is not None else None
        densities = dict(zip(wanted, found or []))
        for i, cell in enumerate(spec.cells):
            name = prefix(i) + "interaction"
            if name not in post:
                continue
            prior = interaction_prior(priors, cell)
            prior_d = prior_density(prior)
            for k, combo in enumerate(cell.design.combos):
                draws_k = _flat(post[name].sel({prefix(i) + "combo": combo}))
                if (name, k) in densities:
                    (post_d, rel_sd), method = densities[(name, k)], SD_METHOD
                else:
                    (post_d, method), rel_sd = density_at(draws_k, 0.0), math.nan
                bf = prior_d / post_d if post_d > 0 else math.inf
                aligned = -cell.sign * draws_k
                rows.append({"study": cell.study, "endpoint": cell.endpoint, "combination": combo,
                             "link": cell.link, "prior": str(prior),
                             "aligned_mean": float(aligned.mean()), "aligned_sd": float(aligned.std(ddof=1)),
                             "p_synergy": float(np.mean(aligned > 0)),
                             "prior_density_0": prior_d, "posterior_density_0": post_d,
                             "bf10": bf, "log10_bf10": math.log10(bf) if bf > 0 else -math.inf,
                             "method": method, "density_rel_sd": rel_sd})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the comparison

@dataclass
class Comparison:
    table: pd.DataFrame          # one row per model, columns COLUMNS
    interactions: pd.DataFrame   # Savage-Dickey BF per interaction
    sentence: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.sentence:
            self.sentence = comparison_sentence(self.table, self.interactions)

    def format(self, *, sentence: bool = True) -> str:
        method = evidence_label(self.table)
        spread = {"bridge sampling": "sd = larger of the Frühwirth-Schnatter error and the spread over "
                                     "repetitions",
                  "SMC": "sd = spread across SMC chains"}.get(method, "sd = its Monte Carlo error")
        lines = [f"Model comparison (LOO unit = one arm's reported summary; log ML by {method}, "
                 f"{spread}; BF vs additive)", "",
                 f"  {'model':<10} {'elpd_loo':>9} {'se':>6} {'p_loo':>6} {'k>0.7':>7} {'max k':>6} "
                 f"{'weight':>6} {'log ML':>9} {'sd':>5} {'log10 BF':>8}  note"]
        for d in self.table.to_dict("records"):
            k = "" if pd.isna(d["n_obs"]) else f"{int(d['n_k_gt_0.7'])}/{int(d['n_obs'])}"
            lines.append(f"  {d['model']:<10} {_f(d['elpd_loo'], 2, 9)} {_f(d['se'], 2, 6)} "
                         f"{_f(d['p_loo'], 2, 6)} {k:>7} {_f(d['max_k'], 2, 6)} {_f(d['weight'], 3, 6)} "
                         f"{_f(d['log_ml'], 2, 9)} {_f(d['log_ml_sd'], 2, 5)} "
                         f"{_f(d['log10_bf_vs_additive'], 2, 8)}  {d['note'] if isinstance(d['note'], str) else ''}")
        if not self.interactions.empty:
            lines += ["", "Interactions (factorial fits; sign-aligned, positive = synergy; Savage-Dickey BF10)",
                      f"  {'endpoint':<16} {'combination':<22} {'mean':>7} {'sd':>6} {'P(syn)':>6} "
                      f"{'BF10':>8} {'ML BF':>8}  method"]
            cell_bf = cell_bf_column(self.interactions)
            for r in self.interactions.to_dict("records"):
                ml = r.get(cell_bf, math.nan) if cell_bf else math.nan
                ml = "" if pd.isna(ml) else f"{10 ** ml:.3g}"
                lines.append(f"  {r['endpoint']:<16} {r['combination']:<22} {r['aligned_mean']:>7.3f} "
                             f"{r['aligned_sd']:>6.3f} {r['p_synergy']:>6.3f} {r['bf10']:>8.3g} {ml:>8}  {r['method']}")
            if cell_bf:
                lines.append(f"  (ML BF: the endpoint's factorial over additive marginal likelihood, by {method})")
        return "\n".join(lines + (["", self.sentence] if sentence else []))

    def __str__(self) -> str:
        return self.format()

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write comparison.csv and interactions.csv atomically; refuse to
        overwrite unless ``overwrite``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f for f in FILES]
        existing = [p for p in paths if p.exists()]
        if existing and not overwrite:
            raise BayesError(f"{', '.join(map(str, existing))} already exist(s); pass overwrite=True "
                             "(--force) to replace them, or choose another folder")
        write_atomic(paths[0], lambda p: self.table.to_csv(p, index=False, float_format="%.10g"))
        write_atomic(paths[1], lambda p: self.interactions.to_csv(p, index=False, float_format="%.10g"))
        return paths

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "Comparison":
        out = Path(out_dir)
        missing = [f for f in FILES if not (out / f).exists()]
        if missing:
            raise BayesError(f"{out}: no saved comparison ({', '.join(missing)} missing)")
        table = pd.read_csv(out / FILES[0], dtype={"note": str, "model": str}, keep_default_na=False,
                            na_values=[""])
        table["note"] = table["note"].fillna("")
        try:
            interactions = pd.read_csv(out / FILES[1])
        except pd.errors.EmptyDataError:
            interactions = pd.DataFrame()
        return cls(table=table, interactions=interactions)


def load_comparison(out_dir: str | os.PathLike) -> Comparison:
    return Comparison.load(out_dir)


def _f(value, digits: int, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def evidence_label(table: pd.DataFrame) -> str:
    """How a table's marginal likelihoods were estimated ("bridge sampling", "SMC"),
    read from its ``evidence`` column; tables saved before that column existed
    used SMC (they have ``smc_draws`` instead)."""
    if "evidence" in table:
        methods = [m for m in table["evidence"].dropna().unique() if isinstance(m, str) and m]
        if methods:
            return " / ".join(methods)
    if "smc_draws" in table:
        return "SMC"
    return "Monte Carlo"


def cell_bf_column(interactions: pd.DataFrame) -> str | None:
    for name in (CELL_BF, OLD_CELL_BF):
        if name in interactions:
            return name
    return None


TIE_LOG10 = 0.5    # Bayes factors below 10^0.5 (about 3) are "not worth more than a bare mention"


def comparison_sentence(table: pd.DataFrame, interactions: pd.DataFrame) -> str:
    """Plain language, with the caveats that apply to this table."""
    fitted = table[table["elpd_loo"].notna()]
    if fitted.empty:
        return "No model was compared."
    parts = []
    best = fitted.loc[fitted["weight"].idxmax()]
    n_high = int(fitted["n_k_gt_0.7"].max())
    n_obs = int(fitted["n_obs"].max())
    loo = (f"For predicting a left-out arm, stacking puts most weight on the {best['model']} model "
           f"({best['weight']:.2f})")
    if n_high:
        loo += (f", but Pareto k exceeds 0.7 for up to {n_high} of {n_obs} arms, so these LOO estimates are "
                "unreliable (each endpoint has only a few arms and every arm is influential)")
    parts.append(loo)
    ml = fitted[fitted["log_ml"].notna()]
    others = ml[(ml["model"] != REFERENCE) & ml["log10_bf_vs_additive"].notna()]
    if not others.empty:        # a Bayes factor needs the reference and another model's evidence
        top = ml.loc[ml["log_ml"].idxmax()]
        # models within TIE_LOG10 of the best are not told apart (a Bayes factor under ~3)
        close = ml[ml["log_ml"] >= top["log_ml"] - TIE_LOG10 * math.log(10)]
        bits = ", ".join(f"{r.model} {r.log10_bf_vs_additive:+.1f}" for r in others.itertuples())
        if len(close) > 1:
            names = list(close.sort_values("log_ml", ascending=False)["model"])
            text = (f"at equal prior odds the marginal likelihoods cannot separate the "
                    f"{', '.join(names[:-1])} and {names[-1]} models (within {TIE_LOG10:g} in log10 of each other; "
                    f"log10 Bayes factors vs additive: {bits}")
        else:
            text = (f"at equal prior odds the marginal likelihoods favour the {top['model']} model "
                    f"(log10 Bayes factors vs additive: {bits}")
        noise = float(np.nanmax(ml["log_ml_sd"])) / math.log(10)
        text += f"; {evidence_label(table)} error up to {noise:.2f} in log10 units)"
        if best["model"] not in set(close["model"]):
            text += ", which disagrees with LOO"
        parts.append(text)
    if not interactions.empty:
        strong = interactions[interactions["bf10"] > 3]
        against = interactions[interactions["bf10"] < 1 / 3]
        text = (f"Savage-Dickey: {len(strong)} of {len(interactions)} interactions have BF10 > 3 "
                f"({', '.join(strong['endpoint']) or 'none'})")
        if len(against):
            text += f" and {len(against)} favour no interaction (BF10 < 1/3: {', '.join(against['endpoint'])})"
        extrapolated = interactions[interactions["method"].str.contains("normal approx", regex=False)]
        if len(extrapolated):
            text += (f"; for {', '.join(extrapolated['endpoint'])} no posterior draw comes near 0, so the "
                     "Savage-Dickey value is a normal-tail extrapolation that can be off by orders of magnitude "
                     "(the marginal-likelihood Bayes factor of that endpoint is the better guide there)")
        parts.append(text)
    absent = table[table["elpd_loo"].isna()]
    if len(absent):
        parts.append("; ".join(f"{r.model} not compared ({r.note})" for r in absent.itertuples()))
    return ("; ".join(parts) + ". Bayes factors depend on the priors (a wider interaction prior favours "
            "the additive model), so read them together with the LOO weights, not alone.")


def compare_models(fits: dict[str, list[tuple[ModelSpec, xr.DataTree]]], priors: PriorSet | str = "default",
                   *, evidence: str = "bridge", smc_draws: int = SMC_DRAWS, smc_chains: int = SMC_CHAINS,
                   bridge_reps: int = BRIDGE_REPS, seed: int, progress=None, skipped: dict[str, str] | None = None,
                   notes: dict[str, str] | None = None, smc_cores: int | None = None,
                   cache=DEFAULT_CACHE) -> Comparison:
    """Compare models fitted to the same study.

    ``fits`` maps a model name to its fits, as ``bayes.fit(...).fits`` or
    ``[(link_result.spec, link_result.tree)]``; they must have been sampled
    under ``priors`` (bridge sampling evaluates that posterior density at
    their draws).  ``skipped`` maps models that were not fitted to the reason
    (a table row with that note).  ``evidence`` chooses the marginal
    likelihoods: ``"bridge"`` (default; :func:`bridge_log_ml` on the draws,
    ``bridge_reps`` repetitions), ``"smc"`` (:func:`smc_log_ml`, ``smc_chains``
    x ``smc_draws`` particles on ``smc_cores``; a cross-check) or ``"none"``;
    with ``"smc"``, ``smc_draws`` = 0 also skips them.  ``cache``: the
    :class:`~bayes.sampling.ModelCache` the fits were sampled with (bridge
    sampling then evaluates the density with their compiled models; a model
    not in it is compiled into it); ``None`` compiles each density apart.
    ``progress`` is an
    optional callable taking one line of text, called before each long step.
    """
    import arviz as az

    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    if not fits:
        raise ValueError("no fits to compare")
    if evidence not in EVIDENCE:
        raise ValueError(f"unknown evidence method {evidence!r}; valid: {', '.join(EVIDENCE)}")
    if evidence == "smc" and not smc_draws:
        evidence = "none"
    detail = {"bridge": f"{bridge_reps} repetitions; MVN proposal fitted to half the draws",
              "smc": f"{smc_chains} chains x {smc_draws} particles"}.get(evidence, "")
    skipped, notes = dict(skipped or {}), dict(notes or {})
    names = [m for m in MODEL_ORDER if m in fits] + [m for m in fits if m not in MODEL_ORDER]
    trees, loos, mls, secs = {}, {}, {}, {}
    obs = None
    for name in names:
        if progress:
            progress(f"PSIS-LOO: {name} model ({len(fits[name])} fit(s))")
        tree = loo_tree(fits[name], prior_set, seed=seed, name=name)
        labels = list(tree["log_likelihood"]["obs"].to_numpy())
        if obs is None:
            obs = labels
        elif sorted(labels) != sorted(obs):
            raise BayesError(f"{name}: fitted to other arms than {names[0]}; compare fits of the same study")
        ll = tree["log_likelihood"].to_dataset().sel(obs=obs)
        tree["log_likelihood"] = xr.DataTree(ll)
        trees[name] = tree
        with warnings.catch_warnings():
            # arviz warns when some Pareto k is high; that is reported in the table instead
            warnings.filterwarnings("ignore", message=r".*[Pp]areto", category=UserWarning)
            loos[name] = az.loo(tree, var_name=LL_VAR)
    if len(trees) > 1:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*[Pp]areto", category=UserWarning)
            weights = az.compare(trees, var_name=LL_VAR)["weight"]
    else:
        weights = pd.Series({names[0]: 1.0})
    cell_ml = {}                     # (model, cell key) -> (log ML, sd), one-cell fits only
    unestimated: dict[str, list[str]] = {}       # model -> why some fit has no marginal likelihood
    for name in names if evidence != "none" else ():
        total, var, seconds = 0.0, 0.0, 0.0
        for k, (spec, raw) in enumerate(fits[name]):
            label = spec.cells[0].endpoint if len(spec.cells) == 1 else f"{len(spec.cells)} endpoints"
            model = build_model(spec, prior_set)
            if evidence == "bridge":
                if progress:
                    progress(f"bridge sampling marginal likelihood: {name} model, {label} "
                             f"({bridge_reps} repetitions)")
                try:
                    est = bridge_log_ml(model, raw, seed=_sub_seed(seed, "bridge", name, k),
                                        repetitions=bridge_reps,
                                        compiled=None if cache is None else compiled_with_data(spec, prior_set,
                                                                                               cache)[0])
                except BayesError as exc:
                    # draws bridge sampling cannot use (a fit that failed its gate, as a rule): no
                    # number for this model rather than no report
                    unestimated.setdefault(name, []).append(f"{label}: {exc}")
                    value, sd, took = math.nan, math.nan, 0.0
                else:
                    value, sd, took = est.log_ml, est.sd, est.seconds
            else:
                if progress:
                    progress(f"SMC marginal likelihood: {name} model, {label} "
                             f"({smc_chains} chains x {smc_draws} draws)")
                per_chain, took = smc_log_ml(model, draws=smc_draws, chains=smc_chains,
                                             seed=_sub_seed(seed, "smc", name, k), cores=smc_cores)
                value = float(per_chain.mean())
                sd = float(per_chain.std(ddof=1)) if per_chain.size > 1 else math.nan
            total += value
            var += sd**2
            seconds += took
            if len(spec.cells) == 1:
                cell_ml[(name, spec.cells[0].key)] = (value, sd)
        mls[name], secs[name] = (total, math.sqrt(var)), seconds
        if name in unestimated:
            why = f"no marginal likelihood ({'; '.join(unestimated[name])})"
            notes[name] = f"{notes[name]}; {why}" if notes.get(name) else why
    rows = []
    ref = mls.get(REFERENCE)
    method = EVIDENCE_LABEL.get(evidence, "")
    for name in names:
        loo = loos[name]
        k = np.asarray(loo.pareto_k).ravel()
        log_ml, log_ml_sd = mls.get(name, (math.nan, math.nan))
        bf = ((log_ml - ref[0]) / math.log(10)) if (name in mls and ref is not None) else math.nan
        rows.append({"model": name, "elpd_loo": float(loo.elpd), "se": float(loo.se), "p_loo": float(loo.p),
                     "n_obs": int(k.size), "n_k_gt_0.7": int((k > K_THRESHOLD).sum()), "max_k": float(k.max()),
                     "weight": float(weights.get(name, math.nan)), "log_ml": log_ml, "log_ml_sd": log_ml_sd,
                     "log10_bf_vs_additive": bf, "evidence": method, "evidence_detail": detail,
                     "evidence_seconds": secs.get(name, math.nan), "note": notes.get(name, "")})
    for name, reason in skipped.items():
        rows.append({"model": name, "note": reason, "evidence": method, "evidence_detail": detail})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    interactions = interaction_bayes_factors(fits["factorial"], prior_set, cache=cache) if "factorial" in fits \
        else pd.DataFrame()
    if not interactions.empty and "additive" in fits and cell_ml:
        keys = [f"{s}/{e}" for s, e in zip(interactions["study"], interactions["endpoint"])]
        interactions[CELL_BF] = [
            (cell_ml[("factorial", key)][0] - cell_ml[("additive", key)][0]) / math.log(10)
            if ("factorial", key) in cell_ml and ("additive", key) in cell_ml else math.nan for key in keys]
    metadata = {"priors": prior_set.name, "prior_hash": prior_set.hash, "seed": seed, "evidence": evidence}
    if evidence == "bridge":
        metadata["bridge_reps"] = bridge_reps
    elif evidence == "smc":
        metadata.update(smc_draws=smc_draws, smc_chains=smc_chains)
    return Comparison(table=table, interactions=interactions, metadata=metadata)


def start_models(study, *, models: tuple[str, ...] = MODEL_ORDER, priors: PriorSet | str = "default",
                 settings=None, n=None, seed: int | None = None, ci_prob: float | None = None, cache=None,
                 step=None) -> tuple[dict, dict]:
    """Compile the models a comparison needs and queue them for sampling (the next
    compiling while the first samples): ``(started, skipped)``.

    ``started`` maps model name to its :class:`bayes.sampling.Pending` (whose
    ``result()`` is the FitResult, LinkResult for ``link``), in the order they
    sample, so a caller can wait for the first (the joint model) and work on it
    while the others sample; :func:`finish_models` waits for the rest.
    ``skipped`` says why the link model was not fitted (several studies, no
    immune readout).  ``step(name, line)``, if given, is called before each
    model is started.
    """
    unknown = set(models) - set(MODEL_ORDER)
    if unknown or not models:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; valid: {', '.join(MODEL_ORDER)}")
    from bayes import config
    from bayes.analysis import start_fit
    from bayes.link import start_link
    from bayes.models.cells import make_cell
    from bayes.models.link import layout

    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    common = dict(n=n, priors=prior_set, settings=settings, seed=seed, cache=cache,
                  ci_prob=config.CI_PROB if ci_prob is None else ci_prob)
    lines = {"joint": "fitting the joint model (all endpoints; the headline result)",
             "factorial": "fitting each endpoint alone, with interaction (factorial)",
             "additive": "fitting each endpoint alone, without interaction (additive)",
             "link": "fitting the NK-link model"}
    skipped = {}
    if "link" in models:
        try:
            layout(tuple(make_cell(study.cell(s, e)) for s, e in study.cells()))
        except InputError as err:
            skipped["link"] = f"not fitted: {err.message}"
    started = {}
    for name in ("joint", "factorial", "additive", "link"):   # each compiles while the ones before sample
        if name not in models or name in skipped:
            continue
        if step:
            step(name, lines[name])
        started[name] = start_link(study, **common) if name == "link" else start_fit(study, model=name, **common)
    return started, skipped


def finish_models(started: dict) -> tuple[dict, dict, dict]:
    """Wait for what :func:`start_models` started: ``(results, fits, notes)``.

    ``results`` maps model name to its FitResult (LinkResult for ``link``),
    ``fits`` to its ``[(spec, raw tree)]`` for :func:`compare_models`, and
    ``notes`` says which fits failed their diagnostics."""
    results, fits, notes = {}, {}, {}
    for name, pending in started.items():
        result = pending.result()
        fits[name] = [(result.spec, result.tree)] if name == "link" else result.fits
        results[name] = result
        if not result.passed:
            notes[name] = "fit FAILED its diagnostics"
    return results, fits, notes


def fit_models(study, *, step=None, **kwargs) -> tuple[dict, dict, dict, dict]:
    """Fit the models a comparison needs: ``(results, fits, skipped, notes)``, as
    :func:`start_models` then :func:`finish_models` (``kwargs``: those of
    :func:`start_models`).  ``step(name, line)``, if given, is also called before
    the waiting (``"fits"``)."""
    started, skipped = start_models(study, step=step, **kwargs)
    if step and started:
        step("fits", "waiting for the fits still sampling")
    results, fits, notes = finish_models(started)
    return results, fits, skipped, notes


def run_comparison(study, *, priors: PriorSet | str = "default", settings=None, n=None, seed: int,
                   progress=None, evidence: str = "bridge", smc_draws: int = SMC_DRAWS,
                   smc_chains: int = SMC_CHAINS, bridge_reps: int = BRIDGE_REPS,
                   models: tuple[str, ...] = MODEL_ORDER, cache=None,
                   smc_cores: int | None = None) -> tuple[Comparison, dict]:
    """Fit additive, factorial, joint and (when the study allows it) NK-link
    models to ``study`` and compare them (``models`` selects a subset).
    Returns the comparison and the fit results by model name (FitResult, or
    LinkResult for ``link``).  ``evidence`` and the rest: see :func:`compare_models`."""
    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    results, fits, skipped, notes = fit_models(
        study, models=models, priors=prior_set, settings=settings, n=n, seed=seed, cache=cache,
        step=(lambda name, line: progress(line)) if progress else None)
    comparison = compare_models(fits, prior_set, evidence=evidence, smc_draws=smc_draws, smc_chains=smc_chains,
                                bridge_reps=bridge_reps, seed=seed, progress=progress, skipped=skipped,
                                notes=notes, smc_cores=smc_cores, cache=cache or DEFAULT_CACHE)
    return comparison, results
