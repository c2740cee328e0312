"""Log-likelihoods of reported summaries, per endpoint kind, as tensors.

Each function takes the arms' latent quantities and an n matrix of shape
(G, arm) (G = candidate n values, see :mod:`bayes.nprior`) and returns the
log-likelihood of each arm's reported numbers at each candidate n, shape
(G, arm).  Normalising constants that depend on n are kept, because n is
marginalised over.

* positive (log-normal animals, log-median m, log-sd s): the arm's mean
  ``E = exp(m + s^2/2)``, variance ``V = (exp(s^2) - 1) E^2``, skewness and
  excess kurtosis in closed form (:func:`lognormal_shape`); the reported
  mean and SD follow :func:`summary_loglik`.
* percent (each sample's fraction is Beta with mean mu, precision phi): the
  same, with the Beta's moments (:func:`beta_shape`) and its smaller shape
  parameter (:func:`beta_edge_shape`), on the 0-1 scale.
* rate (k of n animals with the event): Binomial(n, p), with
  ``k = round(percent * n / 100)``.

Reported mean and SD (:func:`summary_loglik`)
----------------------------------------------
An approximation of the joint law of the sample mean and sample variance
s^2 of n iid values that matches their exact finite-sample moments: E[s^2] =
V, Var(s^2) = r V^2 with r = 2/(n-1) + kappa/n (kappa the excess kurtosis),
Var(mean) = V/n and Cov(mean, s^2) = mu3/n (mu3 the third central moment).

* s^2 ~ ``V c B`` with B ~ BetaPrime(alpha, beta) (an F law up to scale),
  beta and c solving the two moments (beta = 2 + (alpha+1)/(r alpha - 1),
  c = (beta-1)/alpha).  alpha is the power of the density near 0
  (``(s^2)^(alpha-1)``): (n-1)/2, the normal theory's, which is the
  small-ball behaviour of any smooth density (n values close together), so
  a small reported SD stays implausible under a large true spread; for Beta
  values with a pole at a bound (smaller shape a < 1) all n values can pile
  up there, and alpha = n a/2 if that is smaller.  The extra variance sits
  in a power-law right tail.  When r alpha <= 1 (platykurtic Beta) the law
  is a Gamma with the exact variance.  With kappa = 0 both are the
  normal-theory Gamma((n-1)/2, rate (n-1)/(2V)).
* the mean given s^2: Normal, linear in u = s / sqrt(V), with the slope that
  reproduces Cov(mean, s^2) = mu3/n under the law of s^2 above (E[u] and
  E[u^3] in closed form) and the correlation clipped at
  :data:`MAX_CORRELATION`; its variance is (V/n)(1 - rho^2) times
  (1 - rho^2 + rho^2 u^2), so that Var(mean) = V/n and a large reported SD
  comes with a more variable mean, as in simulations.  With mu3 = 0 the mean
  is Normal(E, sqrt(V/n)) independent of s^2.

Why.  The normal-theory law of DESIGN.md section 3 (mean ~ Normal(E,
sqrt(V/n)) independent of s^2 ~ Gamma((n-1)/2, rate (n-1)/(2V))) understates
how variable and skewed s^2 of a few log-normal or Beta values is, and
ignores that a sample with one large value has a large mean and a large SD
together.  Simulation-based calibration (docs/validation.md, 200
simulations, n unknown) showed it: the per-arm log-sd of positive endpoints
was underestimated in every run (p 0.005-0.03), and percent endpoints had an
interaction with too narrow intervals (p = 0.011, 95% coverage 0.92, misses
at n = 3-6) and flagged precisions, most of all in arms within 1% of 0 or
100%.  A Gamma matched to the kurtosis-inflated variance was tried and
rejected: for large kappa its shape falls below 1, which makes a small
reported SD plausible under a very large true spread (on the seed's tumour
arms, CV 0.15-0.22 at n = 10, the posterior log-sd reached 0.6-0.7 and the
interval of Bliss doubled).  A log-normal law for s^2 with the exact
variance is too thin near 0 at n = 3-5 (15% of near-normal samples below its
5% quantile at n = 3).  The F-type law keeps the left tail of the normal
theory, or of the Beta's pile-up, and matches the variance.

Measured against 20 000 simulated samples per setting
(tests/unit/test_likelihood.py), central 90% intervals cover: for
log-normal s = 0.2 and 0.6 at n = 3-20, 0.87-0.91 of the sample variances
(normal theory 0.62-0.89) and 0.88-0.92 of the means given them; for Beta
laws 0.83-0.90 of the variances (normal theory down to 0.38 for J-shaped
Beta laws) and 0.90-0.98 of the means given them (conservative where the
mean-SD correlation exceeds the clip).  Known shortfalls: at s = 1.0 too
few small variances (12-21% below the 5% quantile; coverage 0.73-0.83,
normal theory 0.37-0.67), and for platykurtic Beta laws at n = 3-5 up to
11% below the 5% quantile.  SBC after the change (the same 200 simulations,
seed 20261129, n unknown): positive passes, 1 of 9 parameters at p < 0.05
(log-sds p 0.04-0.40, baseline 0.22; the 95% intervals of two log-sds still
cover only 0.90-0.91); percent passes, 2 of 9 at p 0.04-0.05 (interaction p
= 0.11, 95% coverage 0.95; precisions p 0.17-0.45).  With n printed both
pass as well.

Normalising constants that depend on n are all kept, and the density is of
(mean, s^2) at every n (a test integrates it to 1), so mixtures over n
compare like with like.  Rows that give an SE instead of an SD are
converted by the caller, s^2 = n SE^2, and the caller adds the Jacobian log
n of that change per such arm (``Cell.inputs``' ``log_jacobian``), so the
density is of the printed SE^2.

Rounding
--------
A table prints means and SDs to some step h (whole mm3, 0.1 % lysis), and
when h is not small against the SD the printed numbers are not the sample's:
"3 +/- 1 mm3" may be a sample with SD 0.2.  Each printed number is treated as
its value plus an independent Uniform(-h/2, h/2) error (Sheppard's model of
rounding): the reported mean's variance gains h^2/12, and the reported
variance's law gets the moments of (s + e)^2 (:func:`rounded_moments`).  The
caller reads h from the printed numbers (:func:`bayes.models.cells.print_step`).
Treating the printed numbers as exact made the NK-link model's posteriors
too sure in SBC, where arms far below control print a few whole mm3
(docs/validation.md).

Pure functions of tensors: no model context, no priors.
"""

from __future__ import annotations

import pytensor.tensor as pt
from pytensor.tensor.special import gammaln


def normal_logp(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - pt.log(sigma) - 0.5 * pt.log(2 * 3.141592653589793)


def gamma_logp(x, alpha, rate):
    return alpha * pt.log(rate) - gammaln(alpha) + (alpha - 1) * pt.log(x) - rate * x


def betaprime_logp(x, alpha, beta, scale):
    """log density of ``scale * B`` with B ~ BetaPrime(alpha, beta) (an F law up to scale)."""
    z = x / scale
    return ((alpha - 1) * pt.log(z) - (alpha + beta) * pt.log1p(z)
            - (gammaln(alpha) + gammaln(beta) - gammaln(alpha + beta)) - pt.log(scale))


def lognormal_moments(log_median, sd_log):
    """(mean, variance) of log-normal values."""
    s2 = sd_log**2
    mean = pt.exp(log_median + s2 / 2)
    return mean, pt.expm1(s2) * mean**2


def lognormal_shape(sd_log):
    """(skewness, excess kurtosis) of log-normal values with log-sd ``sd_log``."""
    w1 = pt.expm1(sd_log**2)                     # w - 1, w = exp(s^2)
    w = w1 + 1
    return (w + 2) * pt.sqrt(w1), w**4 + 2 * w**3 + 3 * w**2 - 6


def beta_moments(mu, precision):
    """(mean, variance) of Beta(mu * phi, (1 - mu) * phi)."""
    return mu, mu * (1 - mu) / (1 + precision)


def beta_shape(mu, precision):
    """(skewness, excess kurtosis) of Beta(mu * phi, (1 - mu) * phi)."""
    v, phi = mu * (1 - mu), precision
    skew = 2 * (1 - 2 * mu) * pt.sqrt(1 + phi) / ((2 + phi) * pt.sqrt(v))
    kurt = 6 * ((1 - 2 * mu) ** 2 * (1 + phi) - v * (2 + phi)) / (v * (2 + phi) * (3 + phi))
    return skew, kurt


def beta_edge_shape(mu, precision):
    """The smaller shape parameter of Beta(mu * phi, (1 - mu) * phi).

    Below 1 the density is infinite at the nearer bound (x^(shape - 1)), where
    samples pile up; that sets how small a sample variance can be (see
    :func:`sample_variance_law`).
    """
    return pt.minimum(mu, 1 - mu) * precision


# The sample variance follows the F-type law when its relative variance exceeds
# the smallest one that law can have (1/alpha) by more than this, else a Gamma;
# the two agree to O(EXCESS_SWITCH) at the switch.
EXCESS_SWITCH = 5e-4
# Largest |correlation| between the reported mean and the reported SD that the
# conditional normal may use (see the module docstring).
MAX_CORRELATION = 0.75


def sample_variance_law(obs_var, var, kurt, n, edge_shape=None, leptokurtic=False):
    """Log density of a sample variance ``obs_var`` of n values, and E[u], E[u^3] for u = s / sqrt(var).

    Matches the exact mean ``var`` and relative variance r = 2/(n-1) + kurt/n
    of the sample variance.  Near 0 the density of a sample variance goes
    like ``obs_var^(alpha - 1)``: alpha = (n-1)/2 (n values close together
    anywhere, the normal theory's shape) or, for values whose density is
    x^(edge_shape - 1) at a bound, n * edge_shape / 2 if smaller (all n
    values at that bound).  When r > 1/alpha: ``var * c * B``, B ~
    BetaPrime(alpha, beta), with beta and c solving the two moments (extra
    variance in a power-law right tail); otherwise Gamma(1/r, rate 1/(r var)).
    ``leptokurtic=True`` promises kurt > 0 (log-normal values: r alpha - 1 =
    kurt (n-1)/(2n) > 0), so the Gamma branch is not built: it would be taken
    only for log-sds below about 0.008, where the F-type law on the clipped
    excess stands in for it within O(EXCESS_SWITCH), and building it costs
    three log-gammas and their gradients per arm and n.
    Shapes (G, arm) from ``n``; the others broadcast.
    """
    alpha = (n - 1) / 2
    if edge_shape is not None:
        alpha = pt.minimum(alpha, n * edge_shape / 2)
    r = 2 / (n - 1) + kurt / n
    excess = r * alpha - 1
    # F-type branch on an excess clipped into its range, so that the branch not
    # taken stays finite (its gradient is multiplied by 0, not skipped)
    beta = 2 + (alpha + 1) / pt.maximum(excess, EXCESS_SWITCH)   # = (alpha - 1 + 2 r alpha) / (r alpha - 1)
    c = (beta - 1) / alpha                                       # E[c B] = 1
    lp_heavy = betaprime_logp(obs_var, alpha, beta, var * c)

    # E[u^t] = E[(c B)^(t/2)] = c^(t/2) G(alpha + t/2) G(beta - t/2) / (G(alpha) G(beta)); the
    # third moment follows from the first by G(x + 1) = x G(x), which saves four log-gammas
    # (and their digamma gradients) per arm and n: the likelihood's main cost
    bp_m1 = pt.sqrt(c) * pt.exp(gammaln(alpha + 0.5) - gammaln(alpha) + gammaln(beta - 0.5) - gammaln(beta))
    bp_m3 = bp_m1 * c * (alpha + 0.5) / (beta - 1.5)
    if leptokurtic:
        return lp_heavy, bp_m1, bp_m3

    # Gamma branch with the exact relative variance (clipped likewise)
    shape = 1 / pt.minimum(r, (1 + EXCESS_SWITCH) / alpha)
    # E[(G / shape)^(t/2)], G ~ Gamma(shape, 1); the third moment again from the first
    gm_m1 = pt.exp(gammaln(shape + 0.5) - gammaln(shape)) / pt.sqrt(shape)
    gm_m3 = gm_m1 * (shape + 0.5) / shape

    lp_light = gamma_logp(obs_var, shape, shape / var)
    heavy = excess > EXCESS_SWITCH
    return (pt.switch(heavy, lp_heavy, lp_light), pt.switch(heavy, bp_m1, gm_m1),
            pt.switch(heavy, bp_m3, gm_m3))


def rounded_moments(var, kurt, n, sd_step2):
    """(mean, excess kurtosis) that give a reported variance's law the moments of a
    rounded SD's square (see the module docstring, "Rounding").

    The reported SD is s + e with e ~ Uniform(-h/2, h/2) independent of s
    (``sd_step2`` = h^2): E[(s + e)^2] = var + h^2/12 and Var((s + e)^2) = r
    var^2 + var h^2/3 + h^4/180 (r = 2/(n-1) + kurt/n, the unrounded relative
    variance).  Returned as the variance and the kurtosis whose r gives that
    relative variance, so :func:`sample_variance_law` needs no other change.
    With h = 0 both are returned unchanged (up to rounding in floating point).
    """
    r = 2 / (n - 1) + kurt / n
    var_r = var + sd_step2 / 12
    r_r = (r * var**2 + var * sd_step2 / 3 + sd_step2**2 / 180) / var_r**2
    return var_r, (r_r - 2 / (n - 1)) * n


def summary_loglik(obs_mean, obs_var, mean, var, n, skew=0.0, kurt=0.0, edge_shape=None,
                   leptokurtic=False, mean_step2=None, sd_step2=None):
    """Log-likelihood (G, arm) of a reported mean and variance from n values.

    ``obs_mean`` is (arm,), ``obs_var`` and ``n`` are (G, arm); the moments
    (mean, variance, skewness, excess kurtosis of one value) and
    ``edge_shape`` (Beta values: :func:`beta_edge_shape`; ``None``: a density
    without a pole at a bound) are (arm,); ``leptokurtic``: see
    :func:`sample_variance_law`.  ``mean_step2`` (arm,) and ``sd_step2``
    (G, arm): squared rounding steps of the printed mean and SD (``None``:
    printed exactly; see "Rounding" in the module docstring).
    With ``skew = kurt = 0`` and no rounding this is the normal-theory
    likelihood: mean ~ Normal(mean, sqrt(var/n)) independent of variance ~
    Gamma((n-1)/2, rate (n-1)/(2 var)).  Otherwise see the module docstring.
    """
    mean, var = mean[None, :], var[None, :]
    skew = pt.as_tensor_variable(skew)
    kurt = pt.as_tensor_variable(kurt)
    if skew.ndim:
        skew = skew[None, :]
    if kurt.ndim:
        kurt = kurt[None, :]
    if edge_shape is not None:
        edge_shape = pt.as_tensor_variable(edge_shape)[None, :]
    sd_var = var                                   # E[reported variance]
    if sd_step2 is not None:
        sd_var, kurt = rounded_moments(var, kurt, n, sd_step2)
    lp_var, m1, m3 = sample_variance_law(obs_var, sd_var, kurt, n, edge_shape, leptokurtic)
    # the mean given the SD: linear in u = s / sqrt(E s^2) with the slope that gives
    # the exact Cov(mean, s^2) = mu3 / n under the law above; correlation clipped
    # (a rounding error is independent of the values: it leaves mu3 / n as is)
    slope = skew / (n * (m3 - m1))
    if sd_step2 is not None:
        slope = slope * var / sd_var
    spread = pt.sqrt(n * (1 - m1**2))              # sd(u) * sqrt(n)
    rho = pt.abs(slope) * spread
    slope = slope * MAX_CORRELATION / pt.maximum(rho, MAX_CORRELATION)
    rho2 = (slope * spread) ** 2
    u = pt.sqrt(obs_var / sd_var)
    cond_mean = mean + pt.sqrt(var) * slope * (u - m1)
    # heteroscedastic: a share rho^2 of the conditional variance grows with u^2
    # (E[u^2] = 1 keeps Var(mean) = var / n); none for symmetric values
    cond_var = var / n * (1 - rho2) * ((1 - rho2) + rho2 * u**2)
    if mean_step2 is not None:
        # the printed mean's own rounding error, independent of the rest: added last (mixing it
        # into the correlation above made a spurious pocket of tiny means with huge log-sds
        # that trapped chains on the seed's IFN-gamma)
        cond_var = cond_var + mean_step2[None, :] / 12
    lp_mean = normal_logp(obs_mean[None, :], cond_mean, pt.sqrt(cond_var))
    return lp_mean + lp_var


def binomial_loglik(k, n, logit_p):
    """Log-likelihood (G, arm) of k events of n; ``logit_p`` is (arm,), k and n (G, arm).

    Written with softplus on the logit so that arms at 0% or 100% stay finite.
    """
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    eta = logit_p[None, :]
    return log_choose - k * pt.softplus(-eta) - (n - k) * pt.softplus(eta)
