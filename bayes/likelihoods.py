"""Log-likelihoods of reported summaries, per endpoint kind, as tensors.

Each function takes the arms' latent quantities and an n matrix of shape
(G, arm) (G = candidate n values, see :mod:`bayes.nprior`) and returns the
log-likelihood of each arm's reported numbers at each candidate n, shape
(G, arm).  Normalising constants that depend on n are kept, because n is
marginalised over.

* positive (log-normal animals, log-median m, log-sd s): the arm's mean
  ``E = exp(m + s^2/2)``, variance ``V = (exp(s^2) - 1) E^2``; the reported mean
  ~ Normal(E, sqrt(V/n)).  The reported variance is Gamma with mean V and the
  variance of a sample variance, ``V^2 (2/(n-1) + kappa/n)`` where kappa is the
  excess kurtosis of the log-normal.  (DESIGN.md's Gamma((n-1)/2, (n-1)/(2V))
  is the kappa = 0 case, exact for normal data; simulation shows it makes a
  reported SD look 1.3x (s = 0.2) to 15x (s = 0.8) more informative than it is
  for log-normal animals, so we match the true variance instead.)
* percent (each sample's fraction is Beta with mean mu, precision phi):
  the same two-moment likelihood with the Beta's variance and kurtosis, on
  the 0-1 scale.
* rate (k of n animals with the event): Binomial(n, p), with
  ``k = round(percent * n / 100)``.

Pure functions of tensors: no model context, no priors.
"""

from __future__ import annotations

import pytensor.tensor as pt
from pytensor.tensor.special import gammaln


def normal_logp(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - pt.log(sigma) - 0.5 * pt.log(2 * 3.141592653589793)


def gamma_logp(x, alpha, rate):
    return alpha * pt.log(rate) - gammaln(alpha) + (alpha - 1) * pt.log(x) - rate * x


def lognormal_moments(log_median, sd_log):
    """(mean, variance, excess kurtosis) of log-normal values."""
    s2 = sd_log**2
    mean = pt.exp(log_median + s2 / 2)
    var = pt.expm1(s2) * mean**2
    kurt = pt.exp(4 * s2) + 2 * pt.exp(3 * s2) + 3 * pt.exp(2 * s2) - 6
    return mean, var, kurt


def beta_moments(mu, precision):
    """(mean, variance, excess kurtosis) of Beta(mu * phi, (1 - mu) * phi)."""
    a, b = mu * precision, (1 - mu) * precision
    var = mu * (1 - mu) / (1 + precision)
    kurt = 6 * ((a - b) ** 2 * (a + b + 1) - a * b * (a + b + 2)) / (a * b * (a + b + 2) * (a + b + 3))
    return mu, var, kurt


def summary_loglik(obs_mean, obs_var, mean, var, kurt, n):
    """Log-likelihood (G, arm) of a reported mean and variance from n values.

    ``obs_mean`` is (arm,), ``obs_var`` and ``n`` are (G, arm); the moments
    are (arm,).  The sample variance's law is a Gamma with the exact mean and
    variance of s^2, ``V^2 (2/(n-1) + kurt/n)``.
    """
    lp_mean = normal_logp(obs_mean[None, :], mean[None, :], pt.sqrt(var[None, :] / n))
    # excess kurtosis is >= -2, so the denominator stays >= 2 / (n (n - 1)) > 0
    alpha = 1.0 / (2.0 / (n - 1) + kurt[None, :] / n)
    lp_var = gamma_logp(obs_var, alpha, alpha / var[None, :])
    return lp_mean + lp_var


def binomial_loglik(k, n, logit_p):
    """Log-likelihood (G, arm) of k events of n; ``logit_p`` is (arm,), k and n (G, arm).

    Written with softplus on the logit so that arms at 0% or 100% stay finite.
    """
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    eta = logit_p[None, :]
    return log_choose - k * pt.softplus(-eta) - (n - k) * pt.softplus(eta)
