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
# # Bring your own study
#
# This notebook takes you from a paper's summary table to a posterior
# probability of synergy, using your own numbers instead of the built-in
# study. The steps:
#
# 1. get the commented CSV template and learn its columns and rules;
# 2. fill in a study and let `bayes` validate it;
# 3. see what a mistake looks like;
# 4. read the consistency checks;
# 5. fit the study and read the synergy table, the forest plot and the diagnostics;
# 6. pool it with the built-in study in one joint model;
# 7. save the results and read them back.
#
# The study used here is **made up** for the tutorial: a second lab testing
# the same two agents as the built-in study (imatinib + IL-2 in melanoma),
# reporting tumour volume as mean ± SE with 8 mice per arm, survival, and one
# endpoint of its own (CD8+ T cells in the tumour). Do not read anything about
# the drugs into its numbers.
#
# **Draws.** Every fit below uses the library's default number of draws
# (4 chains x 2000). The test suite runs this notebook with `BAYES_QUICK=1`
# (2 chains x 200 draws) to keep it fast; such short runs often fail the
# diagnostics gate and their numbers wobble, so the prose below says what to
# look for rather than quoting numbers.
#
# Run it in an empty folder: it writes `my_study.csv`, `lab_b*.csv` and
# `out/` into the working directory (a second run keeps an existing
# `my_study.csv`, and replaces the rest).

# %%
import pathlib

import pandas as pd

import bayes
import bayes.errors
import bayes.figures
import bayes.synergy

# %% [markdown]
# ## 1. The template
#
# `bayes.write_template(path)` writes the commented template to a new file
# (from the shell: `bayes template my_study.csv`). It holds one example study
# that is itself a valid table, so you can read it before changing anything.
# The cell writes it only if the file is not there yet, so running the
# notebook again keeps what you have filled in.

# %%
template = pathlib.Path("my_study.csv")
if not template.exists():
    bayes.write_template(template)
print(template.read_text())

# %% [markdown]
# Lines starting with `#` and blank lines are ignored; header names are
# case-insensitive. The rules:
#
# * **One row per study x endpoint x arm.** An *arm* is a treatment group;
#   `agents` names its agents joined by `+` (`imatinib+IL-2`). Agent names
#   are matched exactly, so spell them the same way in every row (and in
#   every study you want to pool).
# * **A factorial per endpoint:** a control arm (`agents` empty or one of
#   `vehicle`, `control`, `none`, `untreated`, `naive`), every agent alone,
#   and at least one combination. Without a combination there is no synergy
#   to assess; without the single agents there is no reference to judge it by.
# * **Mean-type endpoints** (`kind` `positive`, e.g. volumes or pg/mL, or
#   `percent`, e.g. % lysis): `mean` with its `sd` **or** its `se`, as the
#   paper gives it. Never convert one into the other yourself: the model
#   turns an SE into an SD with the n it uses. If a paper's "±" is unlabelled,
#   enter it as `sd` and say so in `notes`.
# * **Event rates** (`kind` `rate`, e.g. % alive at day 40): the percentage
#   of animals in `percent`, 0-100; `mean`, `sd` and `se` stay empty.
# * **`n`**, animals (or samples) per arm, a whole number >= 2. It may be
#   empty: then it is treated as unknown and *summed out* (the likelihood is
#   averaged over n = 3..20, restricted to the n for which every event-rate
#   percentage of the cohort is a whole number of animals), and the output
#   says so.
# * **`cohort`**: endpoints measured on the same animals get the same label
#   (here tumour volume and survival: `in_vivo`). They then share one n per
#   arm, and an n given for one endpoint fills the empty n of the others.
#   Without a label each endpoint is its own cohort.
# * **`kind` and `better`** may stay empty for the known endpoint names
#   (`tumor_volume`, `tumor_weight`, `ifn_gamma`, `survival`, `nk_lysis`).
#   For an endpoint of your own name fill both: `kind` is `positive`,
#   `percent` or `rate`, `better` is `lower` or `higher` (whichever is good
#   for the animal).
# * **`day`, `unit`**: the same for every arm of an endpoint.
# * **`tgi`**: the paper's tumour growth inhibition %, if it gives one. It is
#   only *checked* against the means, never used as data.
# * **`study`**: a label for the study; leave the column out of a one-study
#   file and the file name is used.
#
# The example rows read as a valid study:

# %%
bayes.read_study(template).table

# %% [markdown]
# `write_template` itself never overwrites an existing file (in the shell,
# `--force` replaces it; in Python, `overwrite=True`). Every refusal is a
# `bayes.errors.InputError` with a one-line message:

# %%
try:
    bayes.write_template("my_study.csv")
except bayes.errors.InputError as error:
    print(error)

# %% [markdown]
# ## 2. Fill in your study
#
# In practice you open `my_study.csv` in a spreadsheet or an editor, replace
# the example rows with your paper's numbers and save it. A notebook cannot
# open an editor, so here the rows are typed into a pandas DataFrame with the
# template's columns (reading the template back with
# `pd.read_csv("my_study.csv", comment="#")` and editing it works just as
# well).
#
# The made-up second lab reports:
#
# * **tumour volume** at day 21, mean ± **SE** with **n = 8** per arm, and a
#   TGI % per treated arm;
# * **survival** at day 40 on the same mice (`cohort` `in_vivo`), as % alive,
#   with no n of its own: it takes n = 8 from tumour volume;
# * **CD8+ T cells** as % of CD45+ cells in the tumour at day 14, from a
#   separate flow-cytometry cohort whose n the paper does not give. This
#   endpoint name is not one `bayes` knows, so `kind` (`percent`) and
#   `better` (`higher`) are filled in.
#
# The agent names and the control are those of the built-in study
# (`imatinib`, `IL-2`, `vehicle`), so the two studies can be pooled later.

# %%
lab_b = pd.DataFrame({
    "study": ["imatinib_il2_lab_b"] * 12,
    "endpoint": ["tumor_volume"] * 4 + ["survival"] * 4 + ["cd8_tils"] * 4,
    "agents": ["vehicle", "imatinib", "IL-2", "imatinib+IL-2"] * 3,
    "mean": [1650, 1480, 1250, 610] + [None] * 4 + [8.0, 9.5, 14.0, 22.0],
    "sd": [None] * 8 + [2.5, 3.0, 4.0, 5.0],
    "se": [95, 90, 85, 60] + [None] * 8,
    "n": [8] * 4 + [None] * 8,
    "percent": [None] * 4 + [0, 12.5, 25, 62.5] + [None] * 4,
    "day": [21] * 4 + [40] * 4 + [14] * 4,
    "unit": ["mm3"] * 4 + ["%"] * 4 + ["% of CD45+"] * 4,
    "kind": [""] * 8 + ["percent"] * 4,
    "better": [""] * 8 + ["higher"] * 4,
    "tgi": [None, 10, 24, 65] + [None] * 8,
    "cohort": ["in_vivo"] * 8 + ["flow"] * 4,
    "notes": ["Table 1, mean ± SE, n = 8"] + [""] * 3 + ["Fig. 2, % alive at day 40"] + [""] * 3
             + ["Fig. 4, flow cytometry, n not given"] + [""] * 3,
})
lab_b

# %% [markdown]
# `bayes.study_from_frame` validates a DataFrame exactly as a file would be
# validated. The study you get back holds the normalised table: arms in a
# fixed order (control, single agents, combinations), `kind` and `better`
# filled in for the known endpoints, and `n_source` saying where each n came
# from: `reported`, `shared in cohort` (survival took the 8 of tumour volume)
# or empty (unknown, to be summed out).

# %%
bayes.study_from_frame(lab_b, name="lab B (typed in)").table

# %% [markdown]
# The usual path is a file. Writing the frame to CSV and reading it back is
# exactly what happens after you save `my_study.csv` from a spreadsheet:

# %%
lab_b.to_csv("lab_b.csv", index=False)
my_study = bayes.read_study("lab_b.csv")
my_study.cells()

# %% [markdown]
# ## 3. When something is wrong
#
# A table that breaks a rule is refused with one line that names the file,
# the row (data rows, the header not counted, with the line number in the
# file), the column, what was found and what would be valid. The first
# problem found wins, so fix it and validate again.
#
# Two copies of lab B's file, each with one mistake made while copying the
# paper. First, the tumour-volume vehicle row went missing:

# %%
no_control = lab_b[~((lab_b["endpoint"] == "tumor_volume") & (lab_b["agents"] == "vehicle"))]
no_control.to_csv("lab_b_no_control.csv", index=False)
try:
    bayes.read_study("lab_b_no_control.csv")
except bayes.errors.InputError as error:
    print(error)

# %% [markdown]
# Second, a negative SD (a stray minus sign in the CD8 numbers). The error
# object also carries the pieces separately (`row`, `column`, `valid`), if
# you want to point at the cell yourself:

# %%
negative_sd = lab_b.copy()
negative_sd.loc[9, "sd"] = -3.0
negative_sd.to_csv("lab_b_negative_sd.csv", index=False)
try:
    bayes.read_study("lab_b_negative_sd.csv")
except bayes.errors.InputError as error:
    print(error)
    print("row:", error.row, "| column:", error.column, "| valid:", error.valid)

# %% [markdown]
# From the shell, `bayes check lab_b.csv` prints the same message (exit
# status 2), or, for a valid table, the checks of the next section.
#
# ## 4. Consistency checks
#
# A table can be valid and still contain something worth a second look.
# `bayes.consistency_checks` compares what the paper reports with what its
# own numbers imply. Nothing here changes the data or stops a fit:
#
# * **TGI vs means**: each reported TGI % is recomputed as
#   100 (1 - arm mean / control mean). A gap of more than a point is flagged
#   `warn`. Here the combination's reported 65 % does not match its means:
#   papers often compute TGI from medians, a different day or before
#   rounding the means, so check which. TGI is never used as data, so the fit
#   is unaffected either way.
# * **n**: in how many rows n is reported, taken from another endpoint of
#   the same cohort, or unknown (and so summed out).
# * **Whole animals**: with n known, each survival percentage must be a whole
#   number of animals (62.5 % of 8 mice is 5 mice). With n unknown, the
#   check lists the n that make every percentage whole, and those are the
#   only n the model will consider for that cohort.
# * **Shared cohort n**: if two endpoints of one cohort report different n
#   for the same arm, that contradicts "same animals" and is flagged.

# %%
for check in bayes.consistency_checks(my_study):
    print(f"[{check.status}] {check.message}")

# %% [markdown]
# ## 5. Fit your study
#
# `bayes.fit` fits the **joint** model by default: every endpoint in one
# model, each endpoint with its own baseline, agent effects and interaction
# on its link scale (log for volumes, logit for percentages and rates), and
# the endpoints' standardised interactions partially pooled around a common
# synergy. Unknown n (the flow cohort) is summed out. Pass a `seed` so the
# run can be repeated exactly. (From the shell: `bayes fit lab_b.csv --out
# out/lab_b`.)

# %%
result = bayes.fit(my_study, seed=2026)
print(result)

# %% [markdown]
# How to read the table, block by block (one block per endpoint):
#
# * **Bliss** (independence): is the combination better than the two agents
#   acting independently, i.e. than the product of their effects relative to
#   control? **HSA** (highest single agent): is it better than the best agent
#   alone? **RA** (response additivity): is it better than the sum of the
#   agents' changes? All three are log ratios of posterior arm means,
#   sign-aligned so that **positive = synergy** whatever the endpoint's
#   direction. When both agents help on their own, HSA is the lower bar
#   (Bliss is HSA minus the weaker agent's own effect), so a combination can
#   be clearly better than either agent (HSA) without being more than
#   independent (Bliss): the reference model is part of the answer. RA is on
#   a different scale (sums of arm means), so compare its P(>0), not its
#   size, with the others. For survival and % endpoints the scores are on
#   the probability of the unfavourable outcome (death, CD8-negative cells).
# * **mean, sd, 95% CI** summarise the posterior of the score; **P(>0)** is
#   the posterior probability that the score is positive, i.e. P(synergy)
#   under that reference. The report's verbal scale: P >= 0.99 virtually
#   certain, >= 0.95 very likely, >= 0.80 likely, 0.20-0.80 uncertain.
#   Look at the interval too: a P(>0) near 1 with an interval that starts
#   just above 0 says "synergy, size unclear".
# * **interaction** is the model's own parameter on the link scale (log
#   median, or logit), sign-aligned; for volumes it is close to Bliss (Bliss
#   on medians).
# * **TGI %** (tumour volume): growth inhibition of each arm from the
#   posterior means, with P(>0) = probability that the arm inhibits at all.
# * **synergy / spread** (last block): the synergy common to the three
#   endpoints, in units of the interaction prior's sd, and how much the
#   endpoints differ from it.
# * The header line of each block says how n was treated: `8 (reported)`
#   for the in-vivo cohort, a range marked `(marginal)` for the flow cohort.
#   The `posterior P(n)` line shows what the data say about the unknown n.
#
# In this made-up study, look for:
#
# * tumour volume: Bliss well above zero, P(>0) near 1. The combination
#   shrinks tumours to well under half of control, far more than imatinib's
#   ~10 % and IL-2's ~24 % inhibition predict together.
# * survival: a positive Bliss with a much wider interval that may reach
#   below zero. Five, two, one and no survivors out of 8 mice per arm say
#   less than a mean ± SE of 8 volumes.
# * CD8: a small Bliss score with a narrow interval, but a wide
#   `interaction` row. Scores on % endpoints are computed on the
#   unfavourable fraction (CD8-negative cells, 78-92 % here), which barely
#   moves even when the CD8+ fraction nearly triples. Read the size from the
#   interaction row (logit scale), whose width also reflects the unknown n.
#
# The forest plot shows the same Bliss, HSA and RA rows: a dot at the
# posterior mean, a line for the 95 % interval, P(synergy) at the right;
# the dashed line at 0 is "no synergy". A fit that failed its diagnostics is
# drawn hollow.

# %%
bayes.figures.forest(result.synergy)

# %% [markdown]
# The fitted arm means beside the reported ones are a first check that the
# model describes the table (data units; a reported value far outside its
# interval would be a warning sign):

# %%
result.arms

# %% [markdown]
# What the fit learned about n, per cohort. The in-vivo cohort reported
# n = 8, so prior and posterior both put all their weight there (top). For
# the flow cohort the prior is uniform on 3..20 and the posterior shows what
# a table of four means and SDs says about n: usually not much, so the
# answer is averaged over a wide range of n (bottom).

# %%
bayes.figures.n_posterior(result)

# %% [markdown]
# ### Diagnostics
#
# Every fit is gated: R-hat <= 1.01, bulk and tail ESS >= 100 per chain, and
# no divergent transitions. `result.passed` is the verdict and
# `result.diagnostics` the numbers. When the gate fails, the printed table
# starts and ends with `DIAGNOSTICS FAILED`, its rows say `FAILED`, the
# forest plot draws them hollow, and `bayes fit` exits with status 3: do not
# use those numbers. In the test suite's quick mode (`BAYES_QUICK=1`, 2 x 200
# draws) that is expected; rerun without it (the default 4 x 2000 draws) and
# the gate should pass. If it still fails at full length, more draws or a
# different seed is the first thing to try; persistent divergences point to
# a table the model struggles with (look at `result.arms`).

# %%
print("diagnostics passed:", result.passed)
result.diagnostics

# %% [markdown]
# ## 6. Pool two studies
#
# Two labs testing the same combination can be analysed together.
# `bayes.combine_studies` stacks validated studies into one table; each
# keeps its own `study` label (the built-in study is
# `imatinib_il2_melanoma`, ours `imatinib_il2_lab_b`). Nothing is rescaled
# or matched at this step: volumes are divided by each study's own control
# mean inside the model, and combinations are matched across studies by
# their agent names. From the shell: `bayes fit seed lab_b.csv --out
# out/pooled` (several DATA arguments are pooled; `seed` names the built-in
# study).
#
# Here we pool lab B with the built-in study's two in-vivo endpoints, tumour
# volume and survival, the ones both labs report: `Study.select` keeps a
# subset of endpoints (or studies), and its source and data hash say so.
# Pooling all four endpoints works the same way; the larger model only takes
# longer to compile.

# %%
seed_study = bayes.load_builtin().select(endpoints=["tumor_volume", "survival"])
pooled_study = bayes.combine_studies([seed_study, my_study])
pooled_study.cells()

# %% [markdown]
# The labels must be unique, because the model keys every parameter by
# study. Pooling a table with itself (or two files that use the same
# `study` label) is refused:

# %%
try:
    bayes.combine_studies([my_study, my_study])
except bayes.errors.InputError as error:
    print(error)

# %% [markdown]
# The joint model on the pooled table:
#
# * **Agent effects** are shared per endpoint and agent (imatinib on tumour
#   volume is one effect), and each study deviates from it on the endpoints
#   both studies report: two labs' mice, cell lines and doses differ.
# * **Interactions** (standardised, positive = synergy) are partially pooled
#   twice: each endpoint's synergy around the common synergy (`synergy`,
#   with `spread` between endpoints), and each study's synergy on a shared
#   endpoint around that endpoint's value, with a between-study sd.
# * Each study keeps its own n treatment: lab B's in-vivo n of 8 is used
#   as reported, the built-in study's unknown n is summed out, per cohort.
#
# So the table below has a block per study x endpoint, each study's synergy
# now informed by the other, and one `all studies / all endpoints` block
# whose `synergy` row is the pooled answer: the common synergy across both
# labs and all endpoints, with its P(>0). (The `n (...)` lines at the top
# name endpoints without their study: the line with the reported n = 8 is
# lab B's in-vivo cohort, the marginalised ones are the built-in study's and
# lab B's flow cohort.)

# %%
pooled = bayes.fit(pooled_study, seed=2026)
print(pooled)

# %% [markdown]
# How far apart are the two labs? Two parameters of the joint model answer
# that: the between-study sd of the synergy (same standardised units as
# `synergy`) and of the agent effects (link scale: log for volumes, logit
# for survival). They are read from the joint posterior,
# `pooled.tree["joint"]`, and summarised with the library's
# `bayes.synergy.summarise_draws`. With two studies they are poorly
# determined and lean on their prior (median 0.2, 95 % of its mass between
# about 0.08 and 0.5). So compare them with that prior: a posterior close to
# it means "the data neither demand nor rule out study differences of that
# size", not a precise estimate.

# %%
pd.DataFrame({
    "between-study sd of the synergy": bayes.synergy.summarise_draws(
        pooled.tree["joint"]["posterior"]["study_sd_synergy"]),
    "between-study sd of the agent effects": bayes.synergy.summarise_draws(
        pooled.tree["joint"]["posterior"]["study_sd_effect"]),
}).T.drop(columns="p_synergy")

# %% [markdown]
# Lab B's scores alone and in the pooled fit, side by side (`forest(...,
# by="fit")` draws one panel per value of a column on the same rows). That
# is partial pooling at work. Look for:
#
# * the endpoints both studies report (tumour volume, survival) moving
#   towards the built-in study's values. The shift is largest where lab B's
#   own data are weakest (survival: a handful of animals) and small where
#   they are strong (tumour volume, mean ± SE of 8 mice).
# * CD8, reported only by lab B, changing only through the common synergy,
#   so hardly at all.

# %%
side_by_side = pd.concat([
    result.synergy.assign(fit="lab B alone"),
    pooled.synergy.assign(fit="pooled with the built-in study"),
])
bayes.figures.forest(side_by_side[side_by_side["study"] == "imatinib_il2_lab_b"], by="fit")

# %% [markdown]
# And the Bliss score of every endpoint of both studies in the pooled fit.
# Look at whether the two labs agree on the endpoints they share. An
# endpoint that disagrees with the rest keeps its own answer: the spread
# between endpoints lets it, so pooling does not force every endpoint to be
# synergistic. (Pool the built-in study's IFN-gamma too, which is not more
# than Bliss-independent there, to see that happen.)

# %%
bayes.figures.forest(pooled.synergy, references=("bliss",))

# %% [markdown]
# **What pooling buys.** More data behind each shared agent effect and
# interaction, so a study's answer no longer rests on its own few animals
# alone (intervals of shared endpoints move and often narrow, but less than
# if the tables were simply merged, because each study may deviate); a
# single summary (`synergy`) of how credible synergy is across labs and
# endpoints; and an explicit estimate of how much labs differ instead of an
# unspoken choice of one paper.
#
# **What it assumes.** That the studies measure the same thing: the same
# agents (matched by name, at doses similar enough to share an effect), the
# same endpoint definitions (same name, same direction, comparable days),
# and that study differences are exchangeable draws around a common value.
# With two studies the between-study sd is mostly prior, so the pooled
# synergy is only as good as that assumption; if the labs disagree strongly
# (one study's intervals above 0, the other's below), report them separately
# and say why they may differ. Pooling a study of poor quality with a good
# one also pulls the good one towards it.
#
# ## 7. Save and reload
#
# `result.save(folder)` writes `synergy.csv`, `posterior.nc`, `arms.csv`,
# `n_posterior.csv`, `diagnostics.csv`, `run.json` (versions, data hash,
# priors, sampler settings, seed) and `summary.txt` (the printed table).
# It refuses to replace an earlier result unless asked: `overwrite=True`
# here, `--force` for `bayes fit`.

# %%
result.save("out/lab_b", overwrite=True)
pooled.save("out/pooled", overwrite=True)
sorted(path.name for path in pathlib.Path("out/pooled").iterdir())

# %% [markdown]
# `bayes.load_result` reads a folder back without refitting: the same
# tables, the posterior as an ArviZ tree, and the run's metadata
# (`bayes summary out/pooled` prints it from the shell).

# %%
reloaded = bayes.load_result("out/pooled")
print(reloaded.metadata["data_source"], "|", reloaded.metadata["sampler"])
reloaded.synergy[reloaded.synergy["reference"].isin(["bliss", "pooled", "pooled_sd"])]

# %% [markdown]
# ## Where next
#
# * `bayes report lab_b.csv --out results/lab_b` runs the full model
#   comparison and sensitivity report on your table (prior sets, assumed n,
#   SD-vs-SE readings) and writes one HTML page.
# * `bayes.fit(my_study, n=10)` assumes an n instead of summing it out;
#   `model="factorial"` fits each endpoint alone.
