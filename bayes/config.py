"""Settings that must be the same everywhere: set once here, printed with results.

``CI_PROB`` is the one credible-interval probability every table uses (an
equal-tailed interval); the CLI's ``--ci-prob`` overrides it per run.  The
diagnostics thresholds follow Vehtari et al. (2021): R-hat <= 1.01 and at
least 100 effective draws per chain, bulk and tail, and no divergences.

``BAYES_QUICK=1`` in the environment (read once, at import) shrinks every
default draw count: NUTS to 2 chains x 200 draws after 200 tuning steps,
SMC (the ``--evidence smc`` cross-check) to 2 chains x 200 particles, and
keeps each first fit (no longer second fit after R-hat or ESS).  It
exists so that the notebooks and other smoke runs execute in seconds in the
test suite; such posteriors usually fail
the diagnostics gate and are not for conclusions.  Explicit arguments
(``--draws``, ``SamplerSettings(draws=...)``) still win.  The setting is
recorded in every output's sampler settings (the draw counts themselves).
"""

from __future__ import annotations

import os

from bayes.errors import BayesError

CI_PROB = 0.95
CI_KIND = "eti"

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100

QUICK_ENV = "BAYES_QUICK"


def _quick_from_env(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise BayesError(f"environment variable {QUICK_ENV}={value!r} is not understood "
                     f"(valid: 1/true/yes/on for reduced draws, 0/false/no/off or unset for full draws)")


QUICK = _quick_from_env(os.environ.get(QUICK_ENV))

# nutpie's adaptation (its own default warm-up is 300 steps) needs fewer tuning
# steps than PyMC's NUTS.  500 instead of 1000 cut the sampling time of a warm
# refit of the benchmark model from 0.50 to 0.41 s, and on the built-in study
# every family still passed the gate over three seeds (R-hat <= 1.004, bulk ESS
# >= 1241, tail ESS >= 800, no divergences; 4 x 2000 draws).  The joint model's
# smallest ESS is lower than at 1000 on the one seed run both ways (1241 against
# 2967), within the spread between seeds at 1000 (from 714, see below).
# 1000 draws per chain (PyMC's and Stan's default) rather than 2000: the
# gate asks for 400 effective draws, and on the built-in study every family
# still has more than that by a wide margin (4 x 1000 after 500 tuning
# steps, no divergences, R-hat <= 1.0074): factorial and additive cells,
# seeds 1-4, bulk ESS >= 960 and tail ESS >= 669 (the additive tumour
# model); joint, seeds 1-16, >= 1052 / 633; NK link, seeds 1-10, >= 991 /
# 901.  Every fit, refit, bridge-sampling and LOO evaluation costs 40% less.
# (An earlier version of the joint model failed the gate at 1000 draws for
# one of two seeds.)  Tuning stays at 500: at 300 the joint model's tail ESS
# fell to 536 on one of four seeds.  Monte Carlo errors grow by about
# sqrt(2); they are reported with every probability.
DEFAULT_DRAWS = 200 if QUICK else 1000
DEFAULT_TUNE = 200 if QUICK else 500
DEFAULT_CHAINS = 2 if QUICK else 4
DEFAULT_SEED = 20261129
# A sensitivity variant that importance reweighting cannot serve is refitted
# with its chains started at the headline fit's draws (points of the
# variant's model too; bayes.sensitivity), and then tunes for this fraction of
# the usual steps (300 of 500).  Half of a cold fit's leapfrog steps are
# warm-up, a quarter of them in its first 100 draws, which start far from the
# typical set with an unadapted step size and mass matrix.  On the built-in
# study, the seven variants the report refits (sceptical prior set, "±" as
# SEM in each cohort and everywhere, n = 3, 15, 20) over seeds 1-8, 56 fits
# each way, 4 x 1000 draws: started at the headline fit's draws with 300
# tuning steps they took 19% less CPU (566 against 702 s; leapfrog steps
# -20%) than from PyMC's support point with 500, with the same smallest ESS
# (bulk 620 against 608, tail 518 against 584) and as many fits failing the
# gate (4 against 3: a divergence or R-hat just over 1.01, mostly the
# sceptical prior set, which fails in about 1 of 5 seeds either way).
WARM_TUNE_FRACTION = 0.6

# Sequential Monte Carlo (marginal likelihoods for Bayes factors when chosen with
# evidence="smc"; bridge sampling is the default): particles per chain and
# chains; the spread across chains is the reported Monte Carlo error.
SMC_DRAWS = 200 if QUICK else 1000
SMC_CHAINS = 2 if QUICK else 4

# NUTS target acceptance and nutpie mass-matrix adaptation per family.
# Low-rank adaptation triples the ESS of the single-cell models (baseline,
# agent effects and interaction are strongly correlated).  The factorial
# model at 0.9 instead of 0.95: 20% fewer leapfrog steps per draw (the
# seed's four cells: 7.3 against 9.5 on average) with no divergence and
# the same ESS on the seed (four seeds per cell, n marginalised: bulk ESS
# >= 3235, tail >= 1919, R-hat <= 1.0027) and no divergence in 180
# simulated tables (bayes validate's tables, 60 per kind, 4 x 500 draws).  For the joint model
# (partly centred hierarchy, boundary-avoiding synergy_sd prior) low-rank at
# 0.95 gave R-hat <= 1.007, ESS >= 714 and no divergences at 2000 draws on
# the seed over three seeds.
# The additive model is misspecified whenever the data have an interaction
# (the seed's tumour volume): at 0.95 it showed 1 divergence in 8000 draws
# for one seed of three, so it sampled at 0.99 until a fit with divergences
# was sampled again (RETRY_TARGET_ACCEPT below).  Now 0.9, as the factorial
# model: its four cells on the seed, seeds 1-3, 4 x 1000 draws, took 6.3-7.4
# CPU seconds against 13.6-16.3 at 0.99, with no divergence and bulk / tail
# ESS >= 970 / 627; at the report's seed the tumour cell has a few divergent
# transitions at 0.9 (3 since the models are compiled without fast-math) and is
# sampled again.
# The NK-link model is sampled in the coordinates its data pin (outcome totals
# direct + NK-carried, centred immune residuals: bayes.models.link).  On the seed
# that needs about 17 leapfrog steps per draw at 0.95 against 34-38 at 0.99
# (seeds 1-4, 4 x 1000 draws: 21.6-24.3 CPU seconds against 38.1-47.5, no
# divergences either way, ESS >= 969 / 814).  On simulated tables 0.95 left
# divergences in 1 of 50 fits (bayes validate, 4 x 250 draws, seed 20261129),
# 1 of 100 (seed 1) and 5 of 50 at 4 x 1000 draws, so the family sampled at
# 0.99 until those fits were sampled again instead: with that, 40 simulations
# (seed 20261129, 4 x 250 draws) had 1 fit sampled again, none left with a
# divergence, and rank uniformity passed as before (docs/validation.md).
TARGET_ACCEPT = {"factorial": 0.9, "additive": 0.9, "joint": 0.95, "link": 0.95}
# A fit with any divergent transition is sampled again, once, at this target
# (bayes.sampling._sample_with_retry, recorded in its diagnostics), so a family's
# default can be the cheaper target its typical tables need.  Stan's advice for
# divergences, automated; a user's explicit target_accept is retried too unless
# SamplerSettings(retry_divergent=False).
RETRY_TARGET_ACCEPT = 0.99
# A fit without divergences that misses the gate on R-hat or ESS is sampled again,
# once, for this many times the draws, one in so many kept (same target;
# bayes.sampling._sample_with_retry), when so many draws can be expected to pass:
# R-hat at most 1 + factor x 0.01 and ESS at least the gate's / factor
# (Diagnostics.within_reach); a fit further off is kept as it is.  Chains too short
# to show convergence are the usual reason near the gate's thresholds: the sceptical prior set's joint refit
# misses R-hat or diverges in about 1 seed in 5 (see WARM_TUNE_FRACTION), and a
# partially non-centred joint model tried on the seed (docs/speed.md) had R-hat
# 1.011-1.012 in 3 of 12 fits at 4 x 1000 draws without a divergence.
# SamplerSettings(retry_longer=False) keeps the first fit (bayes validate, whose
# short SBC chains are not meant to pass the gate, and bench).
RETRY_DRAWS_FACTOR = 2
ADAPTATION = {"factorial": "low_rank", "additive": "low_rank", "joint": "low_rank", "link": "low_rank"}


def default_cores() -> int:
    return max(1, min(DEFAULT_CHAINS, os.cpu_count() or 1))
