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
# # The built-in study, step by step
#
# A paper reports that imatinib and IL-2 together shrink imatinib-resistant
# melanomas far more than either drug alone, and calls it synergy. All we have
# are its tables: a mean ± SD (or a percentage) per treatment arm, and no
# number of animals per arm. (The built-in study is a vendor's synthesis of
# preclinical data, not a primary paper: read every result here as an
# illustration of the method, not as evidence about the drugs.) This notebook walks through what `bayes` makes of
# those tables and, at each step, how to read the numbers.
#
# The steps: the table and what it does not say; consistency checks; the fit;
# synergy under three reference models (Bliss, HSA, response additivity);
# whether to trust the fit (diagnostics, posterior predictive checks, prior vs
# posterior); and saving the result.
#
# Every computation is one library call. The same analysis runs from the shell
# with `bayes fit` (or `./dev run` for the full report).

# %%
import pandas

import bayes
import bayes.figures

study = bayes.load_builtin()
study

# %% [markdown]
# ## 1. The table
#
# One row per endpoint x arm. Tumour volume and survival come from the
# in-vivo experiment (Table 1), NK-cell lysis and IFN-γ from splenocytes
# (Table 2). `kind` says how an endpoint is modelled: `positive` (log-normal
# animals, mean ± SD), `percent` (a percentage per sample, mean ± SD) or
# `rate` (a percentage of animals with the event). `better` says which
# direction is good; every score below is turned so that **positive means
# synergy** whatever the direction.

# %%
study.table[["endpoint", "arm", "kind", "better", "mean", "sd", "se", "n", "percent", "unit", "cohort"]]

# %% [markdown]
# The `n` column is empty: the paper never says how many animals were in each
# arm. The dataset's provenance records this and the other gap, that Table 2
# does not say whether its ± is an SD or an SE.

# %%
study.provenance["missing"]

# %% [markdown]
# ## 2. Checks before fitting
#
# `consistency_checks` compares what the paper reports with itself: the
# tumour growth inhibition (TGI) it quotes against the TGI its own means
# imply, which numbers of animals make every reported percentage a whole
# number of animals, and whether endpoints measured on the same animals agree
# on n. A `warn` is something to read, not an error.

# %%
checks = bayes.consistency_checks(study)
pandas.DataFrame([(c.status, c.name, c.message) for c in checks], columns=["status", "check", "message"])

# %% [markdown]
# Survival of 0, 20 and 80 % is a whole number of animals only for n = 5, 10,
# 15 or 20 per arm. The model uses exactly this: with n unknown, n is summed
# out over those values, and the posterior says which n the data favour.
#
# ## 3. The fit
#
# `bayes.fit` fits the **joint model** by default: every endpoint in one
# hierarchical model. Per endpoint, the control level, each agent's effect and
# their interaction are latent; the endpoints' standardised interactions are
# partially pooled around one `synergy_mean`. The fit uses nutpie (NUTS),
# compiles the model once and records the seed, the priors, the data hash and
# the sampler settings in its output.

# %%
result = bayes.fit(study, seed=1)
print(result)

# %% [markdown]
# ## 4. Synergy under three reference models
#
# "Synergy" only means "more than expected"; the expectation is a reference
# model. For each endpoint and combination, with arm means on the log scale:
#
# * **Bliss** (independent action): the combination beats the product of the
#   single agents' fractional effects. For tumour volume:
#   log A + log B − log C − log AB.
# * **HSA** (highest single agent): the combination beats the better agent
#   alone. The weakest claim of the three.
# * **RA** (response additivity): the combination beats the sum of the
#   agents' changes from control.
#
# `mean`, `ci_low`, `ci_high`: posterior mean and 95 % credible interval of
# the score, on the scale named in `scale`. `p_synergy`: the posterior probability that the score is above 0, i.e.
# how credible synergy is under that reference, given the table, the model and
# the priors. Roughly: above 0.95 credible, 0.05–0.95 undecided, below 0.05
# antagonism credible.

# %%
scores = result.synergy[result.synergy["reference"].isin(["bliss", "hsa", "ra"])]
scores[["endpoint", "arm", "reference", "mean", "ci_low", "ci_high", "p_synergy", "diagnostics"]]

# %% [markdown]
# The same table as a figure: one row per endpoint x reference, the interval
# and P(synergy) printed beside it. Zero (dashed) is "no synergy".

# %%
bayes.figures.forest(result.synergy)

# %% [markdown]
# Reading it: a score whose whole interval lies right of zero is synergy you
# can claim under that reference; an interval across zero is not established,
# whatever the paper says. Compare the references: HSA is easy to pass when
# one agent alone does little, Bliss is the usual claim, RA is demanding on
# the log scale. The `pooled` row (joint model only) is the average
# standardised synergy over endpoints, and `spread` says how much the
# endpoints disagree.
#
# ## 5. The posterior behind the table
#
# Each endpoint's posterior is an ArviZ `DataTree`: `posterior` holds the
# draws of every latent quantity (arm means, agent effects, the interaction),
# `sample_stats` the sampler's diagnostics.

# %%
tumour = result.cell(study.cells()[0][0], "tumor_volume")
tumour

# %% [markdown]
# The arm-level posterior (what the model believes each arm's mean is, given
# the reported mean, SD and unknown n):

# %%
result.arms

# %% [markdown]
# And n: prior and posterior probability of each number of animals per arm,
# per cohort. Reported percentages like 0/0/20/80 % are far likelier with few
# animals, so small n gains weight: an Occam effect, not a bug.

# %%
result.n_posterior

# %%
bayes.figures.n_posterior(result)

# %% [markdown]
# ## 6. Should you trust it?
#
# **Diagnostics.** Every fit passes a gate: R-hat ≤ 1.01, at least 100
# effective draws per chain (bulk and tail), no divergences. A failed gate
# means the draws do not yet describe the posterior: rerun with more draws
# (`bayes fit --draws 4000`) before reading any number. (When this notebook
# runs in the test suite, `BAYES_QUICK=1` shrinks the draws to 2 x 200 and the
# gate may fail: that run only checks the notebook works.)

# %%
result.diagnostics

# %% [markdown]
# **Posterior predictive check.** Simulate the experiment from the posterior
# (n animals per arm, n drawn from its posterior) and summarise it as the paper
# would. If the reported mean and SD sit well inside the simulated range, the
# model can produce the table; a reported value far in the tail points at a
# misfit (or a typo in the table).

# %%
bayes.figures.predictive_table(result, study=study)

# %%
bayes.figures.ppc(result, study=study)

# %% [markdown]
# **Prior versus posterior.** For each interaction, how far the data moved
# the prior. A posterior that looks like its prior means the table says little
# about that synergy, and the conclusion then rests on the prior; notebook 03
# refits under sceptical and optimistic priors to show how much that matters.

# %%
bayes.figures.prior_posterior(result, study=study)

# %% [markdown]
# ## 7. Save, reload, report
#
# `save` writes `posterior.nc` (the whole tree, stamped with version, data
# hash, priors and sampler settings), `synergy.csv`, `arms.csv`,
# `n_posterior.csv`, `diagnostics.csv`, `run.json` and `summary.txt`. It
# never replaces existing results unless asked (`overwrite=True`).

# %%
saved = result.save("walkthrough-results")
sorted(p.name for p in saved.iterdir())

# %%
again = bayes.load_result(saved)
again.metadata["data_hash"] == study.data_hash

# %% [markdown]
# What next:
#
# * `02_nk_link`: does NK-cell activity carry the antitumour synergy?
# * `03_comparison_and_sensitivity`: is the interaction needed at all (model
#   comparison), and do the conclusions survive other priors, other n and
#   reading Table 2's ± as an SE?
# * `04_your_own_study`: the same analysis on your table, and pooling two
#   studies.
