"""Log-likelihoods of reported summaries, per endpoint kind, as tensors.

Each function takes the arms' latent quantities and an n matrix of shape
(G, arm) (G = candidate n values, see :mod:`bayes.nprior`) and returns the
log-likelihood of each arm's reported numbers at each candidate n, shape
(G, arm).  Normalising constants that depend on n are kept, because n is
marginalised over.

* positive (log-normal animals, log-median m, log-sd s): the arm's mean
  ``E = exp(m + s^2/2)``, variance ``V = (exp(s^2) - 1) E^2``; the reported mean
  ~ Normal(E, sqrt(V/n)) and the reported variance ~ Gamma((n-1)/2, rate
  (n-1)/(2V)) (DESIGN.md section 3; exact for normal data).  For log-normal
  animals the true variance of a sample variance is larger, by
  1 + (n-1) kappa / (2n) with kappa the excess kurtosis (1.3x at s = 0.2, n =
  10), so the reported SD is treated as somewhat more informative than it
  is.  We tried a Gamma matched to that larger variance and rejected it: for
  kappa large its shape falls below 1, which makes a small reported SD
  plausible under a very large true spread; on the seed's tumour arms (CV
  0.15-0.22, n = 10) the posterior log-sd then reached 0.6-0.7 and the
  interval of Bliss doubled, whereas log-normal samples with s = 0.6 almost
  never show a CV below 0.2.  The normal-theory Gamma keeps that shape right.
* percent (each sample's fraction is Beta with mean mu, precision phi):
  the same two-moment likelihood with the Beta's variance, on the 0-1 scale.
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
    """(mean, variance) of log-normal values."""
    s2 = sd_log**2
    mean = pt.exp(log_median + s2 / 2)
    return mean, pt.expm1(s2) * mean**2


def beta_moments(mu, precision):
    """(mean, variance) of Beta(mu * phi, (1 - mu) * phi)."""
    return mu, mu * (1 - mu) / (1 + precision)


def summary_loglik(obs_mean, obs_var, mean, var, n):
    """Log-likelihood (G, arm) of a reported mean and variance from n values.

    ``obs_mean`` is (arm,), ``obs_var`` and ``n`` are (G, arm); the moments
    are (arm,).
    """
    lp_mean = normal_logp(obs_mean[None, :], mean[None, :], pt.sqrt(var[None, :] / n))
    alpha = (n - 1) / 2
    lp_var = gamma_logp(obs_var, alpha, alpha / var[None, :])
    return lp_mean + lp_var


def binomial_loglik(k, n, logit_p):
    """Log-likelihood (G, arm) of k events of n; ``logit_p`` is (arm,), k and n (G, arm).

    Written with softplus on the logit so that arms at 0% or 100% stay finite.
    """
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    eta = logit_p[None, :]
    return log_choose - k * pt.softplus(-eta) - (n - k) * pt.softplus(eta)
