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
# # Does NK-cell activity carry the synergy?
#
# The built-in study (imatinib + IL-2 in imatinib-resistant melanoma) reports
# that the combination shrinks tumours and prolongs survival far more than
# either drug alone, and it also reports that the combination activates
# natural-killer (NK) cells: splenocytes of treated mice lyse more targets
# and secrete more IFN-γ. The tempting story is "the drugs synergise *because*
# they synergise on NK cells". This notebook asks how far a table of arm
# summaries can support that story, with the NK-link model of `bayes`.
#
# (The built-in study is a vendor's synthesis of preclinical data, not a
# primary paper: read every result here as an illustration of the method, not
# as evidence about the drugs.)
#
# The steps:
#
# 1. the data: two outcomes and two NK readouts;
# 2. the NK-link model in plain words;
# 3. the fit, and its diagnostics;
# 4. the link table, quantity by quantity: the activation, the link θ, the
#    carried fraction, the split of the interaction, the Bayes factor, and
#    how far the data moved θ (identifiability);
# 5. the figures;
# 6. the one-sentence summary;
# 7. reading it honestly: what the data can and cannot say;
# 8. saving the result and reading it back.
#
# Every computation is one library call. The same analysis runs from the
# shell with `bayes link --out DIR` (the report of `./dev run` includes it).

# %%
import pathlib

import bayes
import bayes.figures
import bayes.link
import bayes.report

study = bayes.load_builtin()
study.table[["endpoint", "arm", "kind", "better", "mean", "sd", "percent", "unit", "cohort"]]

# %% [markdown]
# ## 1. The data
#
# Four endpoints, each in the same 2 × 2 factorial (control, imatinib, IL-2,
# imatinib + IL-2):
#
# * **outcomes**, from the in-vivo cohort: tumour volume on day 21 (mm³,
#   mean ± SD, lower is better) and survival on day 40 (% of animals alive,
#   higher is better);
# * **NK readouts**, from splenocytes of a separate cohort on day 7: NK-cell
#   lysis (% of target cells lysed, mean ± SD) and IFN-γ (pg/mL, mean ± SD),
#   higher meaning more NK activity.
#
# Two things the table does not give matter a lot below: the number of
# animals per arm (none is reported; `bayes` sums over the plausible values),
# and any pairing between the cohorts. The NK readouts and the outcomes were
# not measured on the same animals, so whatever links them can only be a link
# **across arm means**: "arms with more NK activity have smaller tumours".
#
# ## 2. The NK-link model in plain words
#
# The model says that each treatment arm produces some amount of **NK
# activation**, a single latent number per arm (0 in the control arm). Each
# drug adds its own amount, and the combination may add an extra amount on
# top, the **activation interaction** (positive = the drugs activate NK cells
# more together than their separate effects add up to).
#
# Nobody measures activation directly. The two NK readouts are its
# **measurements**: NK lysis moves one-for-one with it (on the logit scale of
# % lysis; this fixes the units of activation), IFN-γ moves in proportion to
# it with a positive loading the model estimates, and each readout may depart
# a little from the shared pattern arm by arm (a small residual). So
# activation is "what NK lysis and IFN-γ agree on".
#
# Each outcome (tumour volume, survival) then gets two routes from the drugs:
#
# * a **direct** route: each drug's own effect and a direct interaction, as in
#   an ordinary factorial model (everything not mediated by NK activity:
#   imatinib on the tumour cells, other immune cells, ...);
# * an **NK route**: the link coefficient **θ** times the arm's activation.
#   θ = 0 means NK activation has nothing to do with the outcome; a θ in the
#   benefit direction means arms with more activation do better.
#
# On the outcome's link scale (log of the median volume, logit of survival)
# the combination's interaction is then split into two parts that add up:
#
#     total interaction = direct interaction + θ × activation interaction
#                                              └──── NK-carried ────┘
#
# and the **carried fraction** is NK-carried / total: the share of the
# synergy that travels through NK activation.
#
# **Why the data may say little about θ.** For one outcome the four arm means
# give three contrasts with the control (imatinib, IL-2, combination), but the
# model has five unknowns behind them (two direct drug effects, the direct
# interaction, and θ, which multiplies the activation pattern). Three numbers
# cannot pin down five. The NK readouts fix the activation pattern, and the
# priors (centred on zero for the direct effects and for θ) decide how the
# remaining freedom is split. θ is informed only in so far as the outcome's
# arm pattern *lines up* with the activation pattern. The library reports how
# much the data actually moved θ, and we will look at it.
#
# ## 3. The fit
#
# `fit_link` builds the model for this study (the four endpoints in one
# model, n summed out per cohort), samples it with nutpie and builds the
# report. The seed makes it reproducible; 20261129 is the command line's
# default seed, so a full run of this notebook gives the same numbers as
# `bayes link` (with the same package versions). Compiling the model takes about half a minute.

# %%
link = bayes.link.fit_link(study, seed=20261129)
link.diagnostics

# %% [markdown]
# **Check the diagnostics before reading anything else.** One row for the
# whole model: `rhat_max` is the worst R-hat over all parameters (chains
# agree when it is at most 1.01), `ess_bulk_min` / `ess_tail_min` the smallest
# effective sample sizes (at least 100 per chain are required), `divergences`
# the number of divergent transitions (0 required). `passed` is the verdict
# and `problems` says what failed.
#
# If `passed` is `False`, the posterior summaries below are not trustworthy
# yet: intervals may be too narrow or shifted and tail probabilities noisy.
# It is not a statement about the data. The usual cause is too few draws. This
# notebook may have been run with `BAYES_QUICK=1` (the test suite does this: 2
# chains × 200 draws), and then the gate is expected to fail, as the
# `draws` and `chains` columns show. Rerun it without `BAYES_QUICK` (4 chains × 2000 draws
# after 500 tuning steps) or run `bayes link --out DIR`; at those settings
# the fit of the built-in study passes. If a full-draw fit still fails, do not
# read the numbers: look at `problems`, and report it.

# %%
link.passed

# %% [markdown]
# ## 4. The link table
#
# `link.table` holds everything the model reports, one row per endpoint ×
# quantity. The columns that matter most: `mean` / `median` and the 95 %
# equal-tailed interval `ci_low` to `ci_high`; `p_benefit`, the posterior
# probability that the quantity is above 0 (every quantity is **sign-aligned**:
# positive = more NK activation goes with a better outcome, or positive =
# synergy); `bf10` the Bayes factor of the link; `sd_ratio` and
# `p_share_gt_half`, explained below. The `scale` column states each row's
# units.

# %%
columns = ["endpoint", "quantity", "mean", "median", "ci_low", "ci_high", "p_benefit", "bf10", "sd_ratio",
           "p_share_gt_half"]
link.table[columns].round(3)

# %% [markdown]
# ### 4a. The activation interaction
#
# The first row, `activation interaction` (endpoint `nk_lysis`), is the extra
# NK activation of the combination beyond what the two drugs give separately,
# in logit units of % lysis. It is shared by both readouts: NK lysis in this
# table is clearly super-additive, IFN-γ much less so (its combination arm is
# below what multiplying the single-agent effects would give), so the two
# readouts only partly agree and the shared activation interaction comes out
# small and uncertain. Look at whether its interval includes 0. If it does,
# there is not much NK *synergy* to pass on to the outcomes, whatever θ is:
# the NK-carried interaction is θ times this number.
#
# ### 4b. The link θ and P(benefit)
#
# The `link (sign-aligned)` rows are θ per outcome, turned so that **positive
# = more NK activation goes with a better outcome** (smaller tumours, more
# survivors). Units: outcome link units per unit of activation. For tumour
# volume a sign-aligned θ of 0.5 would mean that each logit unit of NK
# activation goes with a median volume multiplied by exp(−0.5) ≈ 0.6.
# `p_benefit` is P(θ > 0): near 0.5 the data cannot say which way the link
# goes; near 1 the link is credibly in the benefit direction.
#
# At the default settings you should see roughly P(benefit) ≈ 0.57 for tumour
# volume: barely better than a coin flip.

# %%
link.table[link.table["quantity"] == "link (sign-aligned)"][
    ["endpoint", "mean", "sd", "ci_low", "ci_high", "p_benefit", "bf10", "bf_method"]].round(3)

# %% [markdown]
# ### 4c. The carried fraction
#
# The `carried fraction` rows give the share of the outcome's interaction
# that goes through NK activation, θ × activation interaction / total
# interaction, computed draw by draw on the outcome's link scale. A ratio is
# unstable when its denominator can be near 0, so the library reports its
# median and interval but no mean, plus two columns:
#
# * `p_share_gt_half`: P(carried fraction > 0.5), "NK activity carries most
#   of the synergy";
# * `p_total_near_0`: the share of draws whose total interaction is within
#   0.1 of 0, where the ratio is meaningless (large values here mean: read
#   the fraction with extra caution).
#
# How to read it:
#
# * a fraction near 1 with a narrow interval: the synergy is carried by NK
#   activation;
# * near 0 with a narrow interval: the synergy is direct, not through NK;
# * **an interval that spans 0 to 1 means the data cannot tell**. Values
#   below 0 (the NK route pushes against the synergy) and above 1 (the direct
#   route is antagonistic) are possible, and wide intervals reaching beyond
#   both ends are a sign of how little the four arms say.

# %%
link.table[link.table["quantity"] == "carried fraction"][
    ["endpoint", "combination", "median", "ci_low", "ci_high", "p_share_gt_half", "p_total_near_0"]].round(3)

# %% [markdown]
# ### 4d. NK-carried, direct and total interaction
#
# The three interaction rows per outcome are on the outcome's link scale,
# sign-aligned so that positive = synergy, and they add up draw by draw:
# NK-carried + direct = total.
#
# * The **total interaction** is what the data determine best: the
#   combination arm compared with what the single agents predict. It should
#   agree with the interaction of an ordinary factorial fit of the same
#   endpoint (see notebook 01).
# * The **split** into NK-carried and direct is what the data determine
#   worst (section 2). Compare the intervals: a total interaction that is
#   credibly positive, with a direct interaction almost as large and an
#   NK-carried part near 0, means the model found the synergy but gives NK
#   activation little of it; when the two parts' intervals are each wide but
#   the total is narrow, the data see the sum, not the parts.

# %%
link.table[link.table["quantity"].str.endswith("interaction") & (link.table["endpoint"] != "nk_lysis")][
    ["endpoint", "quantity", "mean", "ci_low", "ci_high", "p_benefit"]].round(3)

# %% [markdown]
# ### 4e. The Bayes factor for a link: Savage–Dickey BF10
#
# `bf10` compares "θ ≠ 0" (θ free, with its Normal(0, 1) prior) against
# "θ = 0" (no link at all). Because θ's prior is independent of everything
# else in the model, this Bayes factor is exactly the prior density of θ at
# 0 divided by its posterior density at 0 (the Savage–Dickey ratio), so it
# needs no second model:
#
# * posterior density at 0 *lower* than the prior's: the data moved θ away
#   from 0, BF10 > 1, evidence for a link;
# * *higher*: the data concentrated θ around 0, BF10 < 1, evidence against a
#   link;
# * about equal: BF10 ≈ 1, the data are silent.
#
# A common reading: BF10 above 3 is positive evidence for a link, below 1/3
# positive evidence against, and in between "not worth more than a bare
# mention". `bf_method` says how the posterior density at 0 was estimated (a
# kernel density estimate of the draws, or a normal approximation when 0 lies
# outside every draw).
#
# At the default settings you should see roughly BF10 ≈ 0.7 for tumour
# volume: no evidence for a link, and, importantly, not real evidence
# against one either. A BF10 near 1 is the absence of evidence.

# %%
link.table[link.table["quantity"] == "link (sign-aligned)"][
    ["endpoint", "prior_density_0", "posterior_density_0", "bf10", "log10_bf10"]].round(3)

# %% [markdown]
# ### 4f. Identifiability: how far did the data move θ?
#
# The last view compares θ's prior, Normal(0, 1), with its posterior (both
# sign-aligned): the prior's 2.5 %, 50 % and 97.5 % quantiles beside the
# posterior's, and `sd_ratio` = posterior sd / prior sd.
#
# * `sd_ratio` near 1: the data taught almost nothing about θ; the
#   posterior is the prior.
# * well below 1 (say a few tenths or less): the data, not the prior, decide
#   θ.
#
# On the seed, expect a ratio that is only moderately below 1 and a posterior
# interval that still covers most of the prior's range and 0: the link is
# barely informed. Even the narrowing there is does not come from the data
# alone: with three contrasts for five unknowns, it comes from the data and
# the zero-centred priors on the direct effects together (the model prefers
# to explain the outcome pattern by θ × activation rather than by large
# direct effects).

# %%
link.table[link.table["quantity"] == "link (sign-aligned)"][
    ["endpoint", "prior_q_low", "prior_median", "prior_q_high", "posterior_q_low", "posterior_median",
     "posterior_q_high", "prior_sd", "sd", "sd_ratio"]].round(3)

# %% [markdown]
# ## 5. The figures
#
# `bayes.figures.nk_link` draws one panel per outcome. Each arm is a point:
# across, its posterior NK activation (logit units of % lysis, control at 0);
# up, the outcome's change from control on its link scale (log median volume,
# or log odds of survival), both with 95 % intervals. The black line is the
# NK-carried part, θ × activation (posterior median of θ), with its 95 % band
# in grey. The panel titles repeat θ's mean, P(benefit) and BF10.
#
# How to read it:
#
# * the axes are not sign-aligned: for tumour volume benefit is **down**, so
#   a line falling to the right is a link in the benefit direction; for
#   survival benefit is **up**, so a rising line is;
# * if NK activation carried the effects, the arms would lie **on the line**;
# * an arm **off the line** owes its difference to direct effects. On the
#   seed, look at the combination arm for tumour volume: far below the line,
#   i.e. most of its extra shrinkage is assigned to the direct interaction;
# * the **width of the band** is the uncertainty in θ. A band that fans out
#   to include both rising and falling lines means the sign of the link is
#   not settled;
# * there are only four points, all of them arm means, and the control is at
#   (0, 0) by construction: three points decide the slope.

# %%
bayes.figures.nk_link(link)

# %% [markdown]
# The same panels in data units (`scale="data"`): arm means in mm³ and % of
# animals alive, with the control's value moved along the NK-carried line.
# This is the scale of the paper's tables, useful for a sanity check (do the
# fitted arm means sit near the reported ones?). The line bends because the
# link is linear on the log and logit scales, not in mm³ or %.

# %%
bayes.figures.nk_link(link, scale="data")

# %% [markdown]
# ## 6. The one-sentence summary
#
# `link.sentence` states the primary outcome's result (tumour volume when
# present) with its caveats, generated from the table: P(benefit), BF10, the
# carried fraction with its interval and P(more than half), and the sd
# ratio. When the fit failed its diagnostics (as with `BAYES_QUICK=1`) it
# begins with a warning that the result is provisional.

# %%
print(link.sentence)

# %% [markdown]
# `link.format()` gives the whole text that `bayes link` prints: how n was
# treated per cohort, the key rows of the table, the sentence and the
# diagnostics verdict.

# %%
print(link.format())

# %% [markdown]
# ## 7. Reading it honestly
#
# **What the data can say.** The combination has a credible interaction on
# tumour volume (the total interaction); NK lysis rises with treatment, most
# in the combination arm; and the arms' outcome pattern is *consistent with*
# NK activity moving alongside the treatment. If the outcome pattern had
# clashed with the activation pattern (for example, the arm with most
# activation doing worst), θ would have been pushed in the harm direction and
# the model would have said so.
#
# **What it cannot say**, and why:
#
# * **Four arm means per endpoint carry little information about the
#   link.** Three contrasts for five unknowns: the split between NK-carried
#   and direct effects is set by the priors as much as by the data. A
#   carried fraction whose interval spans 0 to 1, a BF10 near 1 and an
#   `sd_ratio` not far below 1 all say the same thing: the data cannot tell.
# * **The link is ecological**: it is a relation between arm averages, not
#   between animals. Arms with more NK activity doing better does not show
#   that the animals with more NK activity did better, let alone because of
#   it.
# * **Different animals**: the NK readouts come from splenocytes of a
#   separate cohort, on day 7, while tumours were measured on day 21 and
#   survival on day 40.
# * **Mediation is not proven by correlation**: even a well-identified θ
#   would be consistency with NK mediation, not proof. That takes an
#   intervention on the mediator (an NK-depletion arm), or per-animal paired
#   measurements with more arms or dose levels.
#
# **What a convincing answer would look like.** The README reports the same
# model on simulated tables (n = 10 per arm) in which the synergy truly
# travels through NK activation: there the carried fraction is high, with
# P(more than half) well above 0.5, and BF10 is above 3; on tables where NK
# activity responds to IL-2 alone, additively, the carried fraction is near
# 0 and BF10 near 1. The seed looks like the second kind, or like a table
# that cannot distinguish the two.
#
# **Say it this way**: "The table is consistent with NK activity moving with
# the treatment, but it provides no evidence that NK activation carries the
# tumour synergy (P(benefit) and BF10 as in the table; the link is weakly
# identified)."
#
# ## 8. Saving and reading back
#
# `LinkResult.save(folder)` writes the two human-readable files that
# `bayes link` writes, `link.csv` (the table) and `link.txt` (the sentence and
# the metadata: data hash, priors, sampler settings, seed). To rebuild the
# whole result later (figures included) without refitting, use
# `bayes.figures.save_link`, which also stores the raw posterior
# (`link_tree.nc`), the diagnostics (`link.json`) and, from `study_csv`, the
# study table that rebuilds the model. `bayes.report.study_csv` finds the CSV
# a study was read from (for the built-in study, the shipped file). An
# existing folder of the same name is overwritten, so rerunning the notebook
# is safe.

# %%
folder = pathlib.Path("nk_link_result")
bayes.figures.save_link(link, folder, study_csv=bayes.report.study_csv(study))
sorted(path.name for path in folder.iterdir())

# %% [markdown]
# `link.txt` is the sentence followed by the stamps that make the result
# traceable: package version, data hash, n treatment, prior set and its hash,
# sampler settings (including the draw counts, so a `BAYES_QUICK` result is
# recognisable) and the seed.

# %%
print((folder / "link.txt").read_text())

# %% [markdown]
# `bayes.figures.load_link` reads the folder back into a `LinkResult`: the
# same table (stored to 6 significant digits), sentence, diagnostics and
# posterior, so the figures can be redrawn without sampling.

# %%
reloaded = bayes.figures.load_link(folder)
reloaded.sentence == link.sentence

# %%
bayes.figures.nk_link(reloaded)

# %% [markdown]
# ## Where next
#
# * Notebook 01 fits the same study with the joint and factorial models and
#   explains the synergy scores themselves.
# * `bayes report` (`./dev run`) puts this link table and figure into its
#   "NK link" section, next to the model comparison, where the link model is
#   compared with the models without a link.
# * To try the link model on your own table, give it an outcome endpoint
#   (`tumor_volume`, `tumor_weight` or `survival`) and NK readouts
#   (`nk_lysis` and/or `ifn_gamma`) in the same factorial, and read
#   `sd_ratio` before anything else.
