# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Is the synergy real, and does it survive other assumptions?
#
# Notebook 01 found credible Bliss synergy on the built-in study. Two
# questions remain before anyone should believe it:
#
# 1. **Is an interaction needed at all?** Compare a model without any
#    interaction (*additive*: the combination is exactly what the agents
#    predict) with models that have one (*factorial*: each endpoint alone;
#    *joint*: all endpoints, interactions partially pooled).
# 2. **Does the conclusion depend on what we assumed?** The priors, the
#    unreported number of animals per arm, and whether Table 2's "±" is an SD
#    or an SE.
#
# `bayes report` (and `./dev run`) does all of this and writes it as one
# HTML report; here each step is one library call, with how to read it.

# %%
import pandas

import bayes
import bayes.compare
import bayes.figures
import bayes.prior_predictive
import bayes.sensitivity

study = bayes.load_builtin()
SEED = 1

# %% [markdown]
# ## 1. Three prior sets, and what they say before seeing data
#
# The shipped prior sets differ only in the interaction priors:
#
# * `default`: interactions centred on 0 (no synergy), wide enough to allow a
#   strong one;
# * `sceptical`: centred on 0 and narrow (sd 0.25 on the log scale), so a
#   large synergy needs strong data;
# * `optimistic`: centred on synergy (+0.5 on the log scale).
#
# A prior is easiest to judge by what it predicts. These are forward draws
# only (no fitting): the synergy each prior set implies before the data. Under
# `default`, P(synergy) should sit near 0.5; the optimistic set leans towards
# synergy and the sceptical one keeps the scores small.

# %%
prior_check = bayes.prior_predictive.compare_prior_sets(study, seed=SEED)
prior_synergy = prior_check.synergy
prior_synergy[prior_synergy["reference"] == "bliss"]

# %% [markdown]
# The same draws give the arm means each prior set expects, in data units,
# next to what the paper reported. A prior that puts the reported values far
# in its tails is fighting the data; one that allows absurd values (tumours of
# tens of thousands of mm³) is merely vague. `docs/priors.md` shows how to
# write your own prior file, or elicit one from a statement such as "the
# combination changes tumour volume by −30 % to +10 %" with `bayes elicit`.

# %%
prior_check.arms[prior_check.arms["prior_set"] == "default"]

# %% [markdown]
# ## 2. Is an interaction needed? Model comparison
#
# `run_comparison` fits each model and compares them two ways:
#
# * **PSIS-LOO** (`elpd_loo`): how well each model predicts one arm's reported
#   summary from the others. Higher is better; `se` is its standard error;
#   `weight` is the stacking weight. Pareto k above 0.7 (`k>0.7`) means the
#   estimate for that arm is unreliable. With four arms per endpoint, leaving
#   one out removes a quarter of the data, so expect many high k and treat
#   LOO as a hint.
# * **Marginal likelihood** (`log ML`, by bridge sampling on the posterior
#   draws the fit already has) and the
#   **Bayes factor against the additive model** (`log10 BF`): how much more
#   probable the table is under a model than under "no interaction". On the
#   log10 scale, 0.5 is substantial, 1 strong, 2 decisive; `sd` is the
#   estimator's Monte Carlo error, so a BF within about 2 sd of 0 is noise.
#   (`evidence="smc"` computes the same by Sequential Monte Carlo instead,
#   which is slower and, on these models, less accurate.)
#   Bayes factors depend on the priors; section 3 shows how much.
#
# The NK-link model (notebook 02) can join with `models=(..., "link")`; it is
# left out here to keep the notebook quick.

# %%
comparison, results = bayes.compare.run_comparison(study, seed=SEED, models=("additive", "factorial", "joint"))
print(comparison.format())

# %% [markdown]
# Per endpoint, the interaction's Savage–Dickey Bayes factor (`BF10`: the
# factorial model's posterior density at "no interaction" against its prior
# density there) next to the Bayes factor from the marginal likelihoods of
# the factorial and additive fits of that endpoint. BF10 above 3 supports an
# interaction, below 1/3 supports none; in between the table cannot tell.
# When the two estimates disagree much, trust the marginal likelihoods: a Savage–Dickey
# density far in the posterior's tail is hard to estimate.

# %%
comparison.interactions

# %% [markdown]
# The synergy scores of the two models with an interaction, side by side. The
# joint model borrows strength across endpoints, so its intervals are usually
# narrower and pulled towards the pooled synergy.

# %%
both = pandas.concat([results["factorial"].synergy, results["joint"].synergy], ignore_index=True)
bayes.figures.forest(both, by="model", references=("bliss",))

# %% [markdown]
# ## 3. Prior sensitivity
#
# The joint model under each prior set (the default fit above is reused, not
# refitted). Passing that fit as `base` lets each other set first be tried by
# reweighting its draws (Pareto-smoothed importance sampling), which costs no
# sampling; a set whose weights are unreliable (Pareto k above 0.7, or fewer
# than 100 effective draws per chain) is refitted. The `method` column says
# which. Cells read `mean (P(synergy))`; `!` marks a fit that failed its
# diagnostics. A conclusion that holds under all three sets does not hang on
# the prior; one that flips under `sceptical` is only as strong as your
# belief in the default prior.

# %%
main = results["joint"].synergy
base = (results["joint"], bayes.load_prior_set("default"))
by_prior = bayes.sensitivity.prior_sensitivity(study, main=main, main_priors="default", base=base, seed=SEED)
bayes.sensitivity.wide(by_prior, "prior_set")

# %%
by_prior.drop_duplicates("prior_set")[["prior_set", "method", "pareto_k", "is_ess"]]

# %%
bayes.figures.forest(by_prior.assign(study=study.cells()[0][0]), by="prior_set", references=("bliss", "pooled"))

# %% [markdown]
# Power-scaling sensitivity asks the same question without refitting: how
# much would the posterior move if the prior (or the likelihood) were made a
# little stronger or weaker? ArviZ flags values above 0.05. "prior-data
# conflict" means the posterior is sensitive to both: prior and data pull in
# different directions, so the prior matters.

# %%
(spec, raw), = results["joint"].fits
logged = bayes.compare.with_log_groups(spec, raw, bayes.load_prior_set("default"), seed=SEED)
bayes.sensitivity.psense_table(logged, ["synergy_mean", "synergy_sd", "synergy"])

# %% [markdown]
# ## 4. How many animals per arm?
#
# The paper does not say. By default n is summed out (`marginal`): every n
# from 3 to 20 (for the in-vivo cohort, only the n that make the survival
# percentages whole animals). Here the same fit at fixed n: at small n a
# reported mean ± SD is weak evidence, at large n strong. A claim that holds
# only at n = 20 rests on an assumption the paper never made.

# %%
by_n = bayes.sensitivity.n_sensitivity(study, model="joint", main=main, base=base, seed=SEED)
bayes.sensitivity.wide(by_n, "n_treatment")

# %% [markdown]
# ## 5. SD or SE?
#
# Table 2 writes "mean ± x" without saying whether x is an SD or a standard
# error. An SE is an SD divided by √n, so reading ± as an SE means the animals
# varied much more than the table suggests, and the evidence weakens. The
# what-if refits with ± read as an SE, per cohort and everywhere.

# %%
by_reading = bayes.sensitivity.se_what_if(study, main=main, base=base, seed=SEED)
bayes.sensitivity.wide(by_reading, "reading")

# %% [markdown]
# ## 6. Putting it together
#
# A synergy claim is robust when, for its endpoint, (a) the interaction is
# supported by the Bayes factors, (b) P(synergy) stays above 0.95 under every
# prior set, every n and both readings of ±, and (c) every fit behind it
# passed its diagnostics. Any "no" is worth a sentence in the paper you write.
#
# `bayes report` computes all of the above and writes it (with the NK-link
# model, posterior predictive checks and a robustness table) as
# `report.html`. From Python, `bayes.report.compute(study, seed=...)` returns
# the same pieces and `bayes.report.write(data, "folder")` writes them.
