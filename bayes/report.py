"""The model-comparison report: every analysis a reviewer needs, in one document.

:func:`compute` runs the analyses on one study table (the main joint fit,
the per-endpoint factorial and additive fits, the NK-link model, the model
comparison, the prior, n and SD-vs-SE sensitivity sweeps, power-scaling
sensitivity and the prior predictive checks) and returns a
:class:`ReportData`.  :func:`write` turns that into ``report.html`` (one
self-contained file that opens offline), its Markdown twin ``report.md``
with ``figures/*.png``, every table as CSV in ``tables/``, the main fit's
result folder in ``fit/`` and ``run.json`` (version, data hash, priors,
sampler settings, timings).  ``ReportData.save`` / ``load`` store the
computed pieces so a report can be rebuilt without sampling.

The plain-language conclusions are generated from the computed numbers by
:func:`conclusions`; nothing in the text is typed in.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayes import config
from bayes._version import __version__
from bayes.data import Study
from bayes.errors import BayesError
from bayes.render import Figure, Section, Table, to_html, to_markdown
from bayes.results import FitResult, load_result, write_atomic

REPORT_FILES = ("report.html", "report.md", "run.json")
PRIOR_SETS = ("default", "sceptical", "optimistic")


@dataclass
class ReportData:
    """Everything the report shows, computed once."""

    study: Study
    fit: FitResult                                   # joint model, chosen priors (the headline)
    factorial: FitResult | None = None
    link: object | None = None                       # bayes.link.LinkResult
    link_note: str = ""
    comparison: object | None = None                 # bayes.compare.Comparison
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # sensitivity, prior checks, ...
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    # rendered figures by name (PNG bytes), filled by sections(); shared with the
    # fitted-models-only ReportData that compute() hands to ``ready`` (see prepare())
    figures: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


# ---------------------------------------------------------------- computing

class _Clock:
    """Progress lines with elapsed time, and per-step timings."""

    def __init__(self, progress):
        self.progress, self.start, self.timings, self._step = progress, time.perf_counter(), {}, None

    def step(self, name: str, line: str):
        self.stop()
        self._step = (name, time.perf_counter())
        self.say(line)

    def say(self, line: str):
        if self.progress:
            self.progress(f"[{time.perf_counter() - self.start:6.1f}s] {line}")

    def stop(self):
        if self._step:
            name, t0 = self._step
            self.timings[name] = round(time.perf_counter() - t0, 2)
            self._step = None


def compute(study: Study, *, priors: str = "default", settings=None, n=None, seed: int | None = None,
            prior_sets=PRIOR_SETS, n_values=None, evidence: str = "bridge", smc_draws: int | None = None,
            smc_chains: int | None = None, ci_prob: float = config.CI_PROB, progress=None,
            ready=None) -> ReportData:
    """Run every analysis of the report on ``study``; ``progress`` gets one line per step.

    ``ready``: called with the fitted models (a :class:`ReportData` without the
    sensitivity tables, sharing the returned one's figure cache) once the
    comparison is done, while the sensitivity refits still sample; the CLI
    saves them and draws the figures then (:func:`prepare`), so that this work
    overlaps sampling instead of following it.

    ``evidence``: how the model comparison estimates marginal likelihoods,
    ``"bridge"`` (bridge sampling on the fits' draws) or ``"smc"`` (a
    separate SMC run per model, ``smc_chains`` x ``smc_draws``)."""
    from bayes import sensitivity as sens
    from bayes.analysis import as_nprior
    from bayes.compare import (BRIDGE_REPS, EVIDENCE_LABEL, SMC_CHAINS, SMC_DRAWS, compare_models, finish_models,
                               start_models, with_log_groups)
    from bayes.prior_predictive import compare_prior_sets
    from bayes.priors import load_prior_set
    from bayes.sampling import SamplerSettings

    smc_draws, smc_chains = smc_draws or SMC_DRAWS, smc_chains or SMC_CHAINS
    settings = settings or SamplerSettings()
    if seed is not None:
        settings = dataclasses.replace(settings, seed=int(seed))
    prior_set = load_prior_set(priors)
    nprior = as_nprior(n)
    clock = _Clock(progress)
    common = dict(priors=prior_set, settings=settings, ci_prob=ci_prob)

    if evidence not in EVIDENCE_LABEL:
        raise BayesError(f"unknown evidence method {evidence!r}; valid: {', '.join(EVIDENCE_LABEL)}")
    started, skipped = start_models(study, n=nprior, step=clock.step, **common)
    link_note = skipped.get("link", "").removeprefix("not fitted: ")
    if link_note:
        clock.say(f"  NK-link model skipped: {link_note}")
    how = (f"SMC marginal likelihoods with {smc_chains} chains x {smc_draws} particles" if evidence == "smc"
           else "marginal likelihoods by bridge sampling on the posterior draws")
    # The sensitivity variants need only the headline (joint) fit, which samples first:
    # they are started as soon as it is done, while the other models still sample, so
    # that reweighting (Python, on this thread) fills the time spent waiting for them.
    # Every refit is queued behind those fits and samples in the background while the
    # model comparison, the prior predictive checks and psense run.
    clock.step("joint_fit", "waiting for the joint fit (the headline; the other models sample meanwhile)")
    main = started["joint"].result()
    clock.step("sensitivity", "sensitivity variants (reweighting the headline fit where reliable; "
               "refits sample in the background while the next steps run)")
    swept = dict(progress=clock.say, base=(main, prior_set), model="joint", settings=settings, ci_prob=ci_prob)
    clock.say("prior sets: " + ", ".join(p for p in prior_sets if p != prior_set.name))
    sweeps = {"prior_sensitivity": sens.start_sweep(
        **sens.prior_variants(study, prior_sets=prior_sets, main=main.synergy, main_priors=prior_set.name),
        n=nprior, **swept)}
    values = tuple(n_values or sens.DEFAULT_VALUES)
    if nprior.mode == "marginal" and not study.n_known:
        clock.say(f"n-sensitivity at n = {', '.join(map(str, values))}")
        sweeps["n_sensitivity"] = sens.start_sweep(
            **sens.n_variants(study, values=values, low=nprior.low, high=nprior.high, main=main.synergy),
            priors=prior_set, **swept)
    if sens.sem_cohorts(study):
        clock.say("SD-vs-SE what-if: '±' read as SEM")
        sweeps["se_what_if"] = sens.start_sweep(**sens.se_variants(study, main=main.synergy), priors=prior_set,
                                                n=nprior, **swept)

    clock.step("fits", "waiting for the fits still sampling")
    results, fits, notes = finish_models(started)
    factorial, link = results.get("factorial"), results.get("link")
    clock.step("comparison", f"comparing models (PSIS-LOO, stacking, {how})")
    comparison = compare_models(fits, prior_set, evidence=evidence, smc_draws=smc_draws, smc_chains=smc_chains,
                                seed=settings.seed, progress=clock.say, skipped=skipped, notes=notes,
                                smc_cores=settings.cores)
    evidence_settings = ({"evidence": evidence, "smc_draws": smc_draws, "smc_chains": smc_chains}
                         if evidence == "smc" else {"evidence": evidence, "bridge_reps": BRIDGE_REPS})

    clock.step("prior_predictive", "prior predictive checks of each prior set (forward draws)")
    implied, synergy_prior = compare_prior_sets(study, names=tuple(prior_sets), seed=settings.seed)

    clock.step("psense", "power-scaling prior and likelihood sensitivity (psense)")
    (spec, raw), = main.fits
    logged = with_log_groups(spec, raw, prior_set, seed=settings.seed)
    names = [v for v in ("synergy_mean", "synergy_sd", "synergy") if v in logged["posterior"].data_vars]
    psense = sens.psense_table(logged, names) if names else pd.DataFrame()

    tables: dict[str, pd.DataFrame] = {"prior_predictive": implied, "prior_synergy": synergy_prior,
                                       "psense": psense}
    run_settings = {"sampler": settings.to_dict(), **evidence_settings, "prior_sets": list(prior_sets),
                    "priors": prior_set.name, "priors_source": str(priors), "n_values": list(values)}
    rendered: dict[str, bytes] = {}
    if ready is not None:
        clock.step("save_fits", "saving the fitted models and drawing the figures while the sensitivity "
                   "refits sample")
        ready(ReportData(study=study, fit=main, factorial=factorial, link=link, link_note=link_note,
                         comparison=comparison, tables=dict(tables), settings=run_settings, figures=rendered))
    clock.step("sensitivity_refits", "waiting for the sensitivity refits still sampling")
    tables["prior_sensitivity"] = sweeps["prior_sensitivity"].result()
    for name in ("n_sensitivity", "se_what_if"):
        if name in sweeps:
            tables[name] = sweeps[name].result()
    tables["diagnostics"] = pd.concat([r.diagnostics.assign(model=name) for name, r in results.items()],
                                      ignore_index=True)
    clock.stop()
    return ReportData(study=study, fit=main, factorial=factorial, link=link, link_note=link_note,
                      comparison=comparison, tables=tables, timings=clock.timings, settings=run_settings,
                      figures=rendered)


# ---------------------------------------------------------------- words from numbers

def verbal(p: float) -> str:
    """A fixed verbal scale for P(synergy), stated in the report's method section."""
    if p >= 0.99:
        return "virtually certain"
    if p >= 0.95:
        return "very likely"
    if p >= 0.80:
        return "likely"
    if p > 0.20:
        return "uncertain"
    if p > 0.05:
        return "unlikely (antagonism likely)"
    return "very unlikely (antagonism very likely)"


VERBAL_CUTS = (0.99, 0.95, 0.80, 0.20, 0.05)


def p_phrase(p: float, mcse: float = float("nan")) -> str:
    """``P = 0.957 ± 0.005`` (the Monte Carlo error), and when P lies within two
    such errors of a cut of :func:`verbal`, the two labels it lies between: the
    label alone would then change with the sampler's seed."""
    if not mcse == mcse:                        # NaN: a table without the error column
        return f"P = {p:.3f}"
    text = f"P = {p:.3f} ± {mcse:.3f} Monte Carlo error"
    near = [c for c in VERBAL_CUTS if abs(p - c) <= 2 * mcse]
    if near:
        cut = near[0]
        text += (f"; within two errors of the {cut:g} line, so between '{verbal(cut - 1e-9)}' "
                 f"and '{verbal(cut + 1e-9)}'")
    return text


def claim(p: float) -> str:
    """The coarse conclusion a sensitivity check asks about: does it survive?"""
    if p >= 0.95:
        return "synergy credible (P ≥ 0.95)"
    if p <= 0.05:
        return "antagonism credible (P ≤ 0.05)"
    return "synergy not established"


VERBAL_SCALE = ("P(synergy) ≥ 0.99 virtually certain; ≥ 0.95 very likely; ≥ 0.80 likely; 0.20–0.80 "
                "uncertain; ≤ 0.20 unlikely; ≤ 0.05 very unlikely (antagonism very likely). Each P is "
                "given with its Monte Carlo error (ESS-based); within two errors of a cut, the sentence "
                "names both labels.")

SWEEPS = (("prior_sensitivity", "prior_set", "prior set"), ("n_sensitivity", "n_treatment", "n per arm"),
          ("se_what_if", "reading", "± reading"))


def _name(endpoint: str) -> str:
    return endpoint.replace("_", " ")


def robustness(data: ReportData) -> pd.DataFrame:
    """Per endpoint (Bliss) and pooled synergy: the range of P(synergy) over every sensitivity fit."""
    rows = []
    frames = [data.table(t).assign(sweep=label, variant=data.table(t)[col].astype(str))
              for t, col, label in SWEEPS if not data.table(t).empty]
    if not frames:
        return pd.DataFrame()
    every = pd.concat(frames, ignore_index=True)
    for (endpoint, reference, arm), block in every.groupby(["endpoint", "reference", "arm"], sort=False):
        lo, hi = block.loc[block["p_synergy"].idxmin()], block.loc[block["p_synergy"].idxmax()]
        verdicts = (verbal(lo["p_synergy"]), verbal(hi["p_synergy"]))
        rows.append({"endpoint": endpoint, "score": reference, "combination": arm, "fits": len(block),
                     "p_low": lo["p_synergy"], "under_low": f"{lo['sweep']}: {lo['variant']}",
                     "p_high": hi["p_synergy"], "under_high": f"{hi['sweep']}: {hi['variant']}",
                     "verdict": verdicts[0] if verdicts[0] == verdicts[1] else " … ".join(verdicts),
                     "conclusion holds": claim(lo["p_synergy"]) == claim(hi["p_synergy"]),
                     "failed_fits": int((block["diagnostics"] != "ok").sum())})
    return pd.DataFrame(rows)


def _mcse(row) -> float:
    return float(getattr(row, "p_mcse", float("nan")))


def conclusions(data: ReportData) -> list[str]:
    """Plain-language conclusions, each sentence computed from the tables."""
    out = []
    if not data.fit.passed:
        out.append("WARNING: the main fit failed its sampling diagnostics (see Diagnostics); "
                   "every number below is provisional.")
    syn = data.fit.synergy
    ci = f"{100 * float(data.fit.metadata.get('ci_prob', config.CI_PROB)):g}%"
    bliss = syn[syn["reference"] == "bliss"]
    for r in bliss.itertuples():
        out.append(f"For {_name(r.endpoint)} ({r.study}, {r.arm}), synergy by Bliss independence is "
                   f"{verbal(r.p_synergy)} ({p_phrase(r.p_synergy, _mcse(r))}; Bliss score {r.mean:.2f}, {ci} CI "
                   f"{r.ci_low:.2f} to {r.ci_high:.2f}; positive = synergy).")
    pooled = syn[syn["reference"] == "pooled"]
    for r in pooled.itertuples():
        out.append(f"Across endpoints, the pooled synergy (standardised interaction, joint model) is "
                   f"{r.mean:.2f} ({ci} CI {r.ci_low:.2f} to {r.ci_high:.2f}): synergy on average is "
                   f"{verbal(r.p_synergy)} ({p_phrase(r.p_synergy, _mcse(r))}).")
    rob = robustness(data)
    for r in rob.itertuples():
        what = f"{_name(r.endpoint)} ({r.combination})" if r.score == "bliss" else "the pooled synergy"
        low, high = claim(r.p_low), claim(r.p_high)
        if low == high:
            out.append(f"Robustness: for {what}, the conclusion '{low}' holds in all {r.fits} sensitivity variants "
                       f"(P(synergy) from {r.p_low:.2f} to {r.p_high:.2f}).")
        else:
            out.append(f"Robustness: for {what}, the conclusion changes across the {r.fits} sensitivity variants: "
                       f"P(synergy) is {r.p_low:.2f} under {r.under_low} ('{low}') and {r.p_high:.2f} under "
                       f"{r.under_high} ('{high}'), so it leans on what the paper did not report or on the prior.")
    if data.comparison is not None:
        out.append(data.comparison.sentence)
    if data.link is not None:
        out.append(data.link.sentence)
    elif data.link_note:
        out.append(f"The NK-link model was not fitted: {data.link_note}")
    caveat = (data.study.provenance or {}).get("caveat")
    if caveat:
        out.append("About the data: " + " ".join(str(caveat).split()))
    return out


def format_text(data: ReportData) -> str:
    """What ``bayes report`` prints: the conclusions, the comparison and the sensitivity tables."""
    from bayes.sensitivity import format_sensitivity

    lines = ["Conclusions:"] + [f"- {line}" for line in conclusions(data)]
    if data.comparison is not None:
        lines += ["", data.comparison.format(sentence=False)]   # its sentence is among the conclusions
    for name, column, _ in SWEEPS:
        lines += format_sensitivity(data.table(name), column)
    return "\n".join(lines)


# ---------------------------------------------------------------- the document

DISPLAY_COLUMNS = {"mean": "mean", "sd": "sd", "ci_low": "CI low", "ci_high": "CI high",
                   "p_synergy": "P(synergy)", "p_mcse": "MC error of P"}


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("study", "endpoint", "reference", "arm", "mean", "sd", "ci_low", "ci_high",
                        "p_synergy", "p_mcse", "n_per_arm", "diagnostics") if c in frame]
    return frame[cols].rename(columns={"reference": "score", "arm": "combination", **DISPLAY_COLUMNS})


def _print_steps(study) -> list[str]:
    """'<endpoint> <step> <unit>' for each cell printed to a step (bayes.models.cells.print_step);
    '<study>/<endpoint> ...' when the table holds several studies."""
    from bayes.models.cells import make_cell

    multi = len({s for s, _ in study.cells()}) > 1
    out = []
    for name, endpoint in study.cells():
        cell = make_cell(study.cell(name, endpoint))
        if cell.print_step > 0:
            unit = cell.rows["unit"].iloc[0]
            unit = unit if isinstance(unit, str) else ""
            out.append(f"{f'{name}/' if multi else ''}{endpoint} {cell.print_step:g} {unit}".rstrip())
    return out


def _figure(make, name: str, caption: str, problems: list[str], cache: dict[str, bytes]) -> Figure | None:
    """Render one figure (or take it from ``cache``, where it goes); a failure is reported
    in the document instead of aborting it."""
    from bayes import figures

    if name not in cache:
        try:
            fig = make()
        except Exception as err:  # noqa: BLE001 - one broken figure must not lose the whole report
            problems.append(f"figure '{name}' could not be drawn: {type(err).__name__}: {err}")
            return None
        cache[name] = figures.to_png(fig)
    return Figure(cache[name], caption, name)


def _prior_sets_table(names) -> pd.DataFrame:
    from bayes.priors import load_prior_set

    sets = {n: load_prior_set(n) for n in names}
    params = list(dict.fromkeys(p for s in sets.values() for p in s.priors))
    return pd.DataFrame({"parameter": params,
                         **{n: [str(s.priors[p]) if p in s.priors else "" for p in params]
                            for n, s in sets.items()}})


def sections(data: ReportData) -> tuple[list[Section], list[str]]:
    """The report's sections, and any problems met while drawing figures."""
    from bayes import figures
    from bayes.priors import load_prior_set
    from bayes.sensitivity import method_note, wide

    problems: list[str] = []
    fit, meta = data.fit, data.fit.metadata
    ci = f"{100 * float(meta.get('ci_prob', config.CI_PROB)):g}%"
    priors = load_prior_set(data.settings.get("priors_source", data.settings.get("priors", "default")))
    out = []

    out.append(Section("Conclusions", "conclusions").add(
        ("list", conclusions(data)),
        f"Verbal scale used throughout: {VERBAL_SCALE} Scores are sign-aligned: positive = synergy. "
        f"Intervals are {ci} equal-tailed credible intervals."))

    study = data.study
    table = study.table.copy()
    table["agents"] = table["agents"].map(lambda a: "+".join(a) if a else "control")
    cols = [c for c in ("study", "endpoint", "arm", "kind", "better", "mean", "sd", "se", "n", "percent",
                        "unit", "cohort", "day") if c in table]
    data_sec = Section("Data, checks and assumptions", "data").add(
        f"Source: {study.source} (hash {study.data_hash[:19]}…), {len(table)} rows, "
        f"{len(study.cells())} study × endpoint cells.",
        Table(table[cols], "The table as read (one row per study × endpoint × arm)", "data", digits=2))
    if fit.checks:
        data_sec.add(Table(pd.DataFrame(fit.checks, columns=["check", "status", "message"]),
                           "Consistency checks on the table", "checks"))
    assumptions = [f"n per arm ({k}): {v}" for k, v in meta.get("n_treatment", {}).items()]
    missing = (study.provenance or {}).get("missing") or []
    assumptions += [f"Not reported: {' '.join(str(m).split())}" for m in missing]
    steps = _print_steps(study)
    if steps:
        assumptions.append("Rounding: means and SDs are taken as printed to " + "; ".join(steps)
                           + " (read from the printed numbers), each with a uniform rounding error of that "
                             "step, or of twice that for a value printed as one step (it may be a smaller "
                             "value shown as one step)")
    data_sec.add("Assumptions the analysis had to make, and what the source did not report:",
                 ("list", assumptions))
    if not fit.n_posterior.empty:
        data_sec.add(Table(fit.n_posterior, "Prior and posterior probability of each n per arm "
                                            "(marginalised n; reported n has probability 1)", "n_posterior"),
                     _figure(lambda: figures.n_posterior(fit), "n_posterior",
                             "Prior vs posterior probability of n per arm, per cohort.", problems,
                             data.figures))
    out.append(data_sec)

    syn = fit.synergy
    forest_rows = [syn]
    if data.factorial is not None:
        forest_rows.append(data.factorial.synergy)
    both = pd.concat(forest_rows, ignore_index=True)
    out.append(Section("Synergy", "synergy").add(
        _figure(lambda: figures.forest(both, by="model"), "forest",
                f"Synergy scores per endpoint × reference model (Bliss, HSA, response additivity), joint "
                f"model and each endpoint fitted alone (factorial); mean and {ci} CI; positive = synergy.",
                problems, data.figures),
        Table(_scores(syn), "Synergy scores, joint model (headline)", "synergy_joint"),
        Table(_scores(data.factorial.synergy), "Synergy scores, each endpoint fitted alone (factorial)",
              "synergy_factorial") if data.factorial is not None else None,
        Table(fit.arms, "Reported arm values against the posterior arm means (data units)", "arms", digits=2)))

    prior_sec = Section("Priors and what they imply", "priors").add(
        "Three prior sets ship with bayes: default (weakly informative, no lean), sceptical (interactions "
        "shrunk towards zero) and optimistic (synergy expected a priori). Their YAML files say why each "
        "number was chosen; docs/priors.md shows how to turn a statement such as 'imatinib alone changes "
        "volume by -30% to +10% with 90% probability' into a prior with PreliZ.",
        Table(_prior_sets_table(data.settings.get("prior_sets", PRIOR_SETS)), "Prior sets side by side",
              "prior_sets"))
    if not data.table("prior_predictive").empty:
        prior_sec.add(Table(data.table("prior_predictive"), "Prior predictive check: the arm means each prior "
                            "set implies, in data units, against the reported values", "prior_predictive",
                            digits=2))
    if not data.table("prior_synergy").empty:
        implied = data.table("prior_synergy")
        implied = implied[implied["reference"].isin(["bliss", "interaction", "pooled"])]
        cols = [c for c in ("prior_set", "model", "endpoint", "reference", "arm", "mean", "ci_low", "ci_high",
                            "ci_prob", "p_synergy") if c in implied]
        prior_sec.add(Table(implied[cols], "Bliss score and interaction implied by each prior set before seeing "
                            "the data (all scores in data/prior_synergy.csv)", "prior_synergy"))
    prior_sec.add(_figure(lambda: figures.prior_posterior(fit, priors, study=study), "prior_posterior",
                          "Prior vs posterior of each interaction (sign-aligned; joint model).", problems,
                          data.figures))
    out.append(prior_sec)

    fit_sec = Section("Posterior predictive checks", "ppc").add(
        "What a paper would have reported, simulated from the posterior (n drawn from its posterior per "
        "draw, or the reported n), against what it did report. A reported value far in a tail (p near 0 or "
        "1) flags a misfit.")
    seed = int(meta.get("sampler", {}).get("seed", 0))
    try:
        ppc = figures.predictive_table(fit, study=study, seed=seed)
    except Exception as err:  # noqa: BLE001 - reported in the document, not fatal
        problems.append(f"posterior predictive checks failed: {type(err).__name__}: {err}")
        ppc = None
    if ppc is not None:
        fit_sec.add(_figure(lambda: figures.ppc(fit, study=study, summaries=ppc), "ppc",
                            "Posterior predictive 90% interval of each arm's reported summary (bar) and the "
                            "reported value (diamond).", problems, data.figures),
                    Table(ppc, "Posterior predictive summaries per arm and statistic", "ppc", digits=3))
    out.append(fit_sec)

    link_sec = Section("Does NK activity carry the antitumour effect?", "nk_link")
    if data.link is not None:
        link_sec.add(data.link.sentence,
                     _figure(lambda: figures.nk_link(data.link), "nk_link",
                             "Latent NK activation per arm against each outcome on its link scale, with the "
                             "fitted link.", problems, data.figures),
                     Table(data.link.table, "NK-link model", "link"))
    else:
        link_sec.add(f"Not fitted: {data.link_note or 'no immune readout'}")
    out.append(link_sec)

    cmp_sec = Section("Model comparison", "comparison")
    if data.comparison is not None:
        how = evidence_text(data.settings, data.comparison.table)
        cmp_sec.add(data.comparison.sentence,
                    Table(data.comparison.table, "Additive vs interaction (factorial) vs joint vs NK-link: "
                          f"PSIS-LOO, stacking weights, marginal likelihoods ({how}) and Bayes factors",
                          "comparison"),
                    Table(data.comparison.interactions, "Savage-Dickey Bayes factors for each interaction "
                          "(factorial fits)", "interactions"))
    out.append(cmp_sec)

    sens_sec = Section("Sensitivity", "sensitivity").add(
        "Each conclusion under every prior set, every assumed n per arm and with the '±' read as "
        "SEM instead of SD: reweighted from the headline fit's draws (Pareto-smoothed importance sampling) "
        "where that is reliable (Pareto k ≤ 0.7, ESS ≥ 100 per chain), otherwise refitted; the note under "
        "each table says which. Cells: mean (P(synergy)); '!' marks a fit that failed its diagnostics.")
    rob = robustness(data)
    if not rob.empty:
        sens_sec.add(Table(rob, "Range of P(synergy) over all sensitivity variants (reweighted or refitted)",
                           "robustness"))
    for name, column, label in SWEEPS:
        if not data.table(name).empty:
            sens_sec.add(Table(wide(data.table(name), column), f"Key results under each {label}", name))
            note = method_note(data.table(name), column)
            if note:
                sens_sec.add(note[0].upper() + note[1:] + ".")
    if not data.table("psense").empty:
        sens_sec.add("Power-scaling sensitivity (ArviZ psense): how much each synergy parameter moves when "
                     "the prior or the likelihood is raised to a power near 1. Values above 0.05 are flagged: "
                     "'prior-data conflict' when both are sensitive, 'strong prior / weak likelihood' when "
                     "only the prior is.",
                     Table(data.table("psense"), "psense: prior and likelihood sensitivity", "psense"))
    out.append(sens_sec)

    diag = data.table("diagnostics")
    if diag.empty:
        diags = [fit.diagnostics.assign(model="joint")]
        if data.factorial is not None:
            diags.append(data.factorial.diagnostics.assign(model="factorial"))
        if data.link is not None:
            diags.append(data.link.diagnostics.assign(model="link"))
        diag = pd.concat(diags, ignore_index=True)
    out.append(Section("Diagnostics", "diagnostics").add(
        f"Gate: R-hat ≤ {config.RHAT_MAX}, bulk and tail ESS ≥ {config.ESS_PER_CHAIN_MIN} per chain, "
        "no divergent transitions. A fit with divergent transitions is sampled once more at target_accept "
        f"{config.RETRY_TARGET_ACCEPT:g} (smaller steps) and that fit is judged instead (column 'retry'). "
        "A failing fit is flagged in every table, never dropped.",
        Table(diag, "Sampling diagnostics per fit", "diagnostics")))

    sampler = data.settings.get("sampler", meta.get("sampler", {}))
    repro = [f"bayes {meta.get('bayes_version')}, Python {meta.get('python')}",
             f"data: {meta.get('data_source')} ({meta.get('data_hash')})",
             f"priors: {priors.name} ({priors.hash[:19]}…); prior sets compared: "
             f"{', '.join(data.settings.get('prior_sets', []))}",
             f"sampler: {sampler.get('sampler')}, {sampler.get('chains')} chains × {sampler.get('draws')} draws "
             f"(tune {sampler.get('tune')}), seed {sampler.get('seed')}; marginal likelihoods: "
             f"{evidence_text(data.settings, data.comparison.table if data.comparison is not None else None)}",
             ("run times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in data.timings.items()))
             if data.timings else "run times: not recorded"]
    if problems:
        repro += [f"problem: {p}" for p in problems]
    out.append(Section("Reproducibility", "reproducibility").add(("list", repro)))
    return out, problems


def evidence_text(settings: dict, table: pd.DataFrame | None = None) -> str:
    """How the marginal likelihoods were estimated, from the report's settings
    (reports saved before bridge sampling have only smc_draws/smc_chains: SMC)."""
    method = settings.get("evidence", "smc" if "smc_draws" in settings else None)
    if method == "bridge":
        return (f"bridge sampling on the posterior draws ({settings.get('bridge_reps')} repetitions; sd = larger of "
                "the Frühwirth-Schnatter error and the spread over repetitions)")
    if method == "smc":
        return (f"SMC, {settings.get('smc_chains')} chains × {settings.get('smc_draws')} particles "
                "(sd = spread across chains)")
    if table is not None:
        from bayes.compare import evidence_label

        return evidence_label(table)
    return "not computed"


def write(data: ReportData, out_dir, *, overwrite: bool = False, command: str = "",
          fits_saved: bool = False) -> Path:
    """Write report.html, report.md, figures/, tables/, fit/ and run.json into ``out_dir``;
    ``fits_saved``: :func:`save_fits` has written the fitted models there already."""
    from bayes import render

    out = Path(out_dir)
    existing = [f for f in REPORT_FILES if (out / f).exists()]
    if existing and not overwrite:
        raise BayesError(f"{out} already holds a report ({', '.join(existing)}); pass --force to replace it, "
                         "or choose another --out")
    secs, problems = sections(data)
    meta = data.fit.metadata
    title = f"Synergy report: {data.study.source}"
    subtitle = (f"bayes {__version__} · data hash {data.study.data_hash[:19]}… · "
                f"created {meta.get('created', '')}")
    for sub in ("figures", "tables"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for fig in render.figures(secs):
        write_atomic(out / "figures" / f"{fig.name}.png", lambda p, b=fig.png: Path(p).write_bytes(b))
    for tab in render.tables(secs):
        write_atomic(out / "tables" / f"{tab.name}.csv",
                     lambda p, f=tab.frame: f.to_csv(p, index=not isinstance(f.index, pd.RangeIndex),
                                                     float_format="%.6g"))
    save(data, out, overwrite=overwrite, fits=not fits_saved)
    write_atomic(out / "report.html", lambda p: Path(p).write_text(to_html(title, secs, subtitle=subtitle)))
    write_atomic(out / "report.md", lambda p: Path(p).write_text(to_markdown(title, secs, subtitle=subtitle)))
    run = {**{k: v for k, v in meta.items() if k != "n_treatment"}, "command": command,
           "report": data.settings, "timings_s": data.timings, "problems": problems}
    write_atomic(out / "run.json", lambda p: Path(p).write_text(json.dumps(run, indent=2, default=str)))
    return out


def study_csv(study: Study) -> Path | None:
    """The CSV a study was read from (a shipped dataset's file for built-ins), if any."""
    from importlib import resources

    if Path(study.source).is_file():
        return Path(study.source)
    if study.source.startswith("built-in dataset '"):
        name = study.source.split("'")[1]
        return Path(str(resources.files("bayes") / "datasets" / f"{name}.csv"))
    return None


def save(data: ReportData, out_dir, *, overwrite: bool = False, factorial: bool = True,
         fits: bool = True) -> Path:
    """Store the computed pieces so :func:`load` can rebuild the report without sampling:
    the fitted models (:func:`save_fits`; ``fits=False``: already saved) and ``data/``."""
    out = Path(out_dir)
    if fits:
        save_fits(data, out, overwrite=overwrite, factorial=factorial)
    save_data_tables(data, out / "data")
    return out


def prepare(data: ReportData, out_dir, *, overwrite: bool = False) -> None:
    """What can be written before the sensitivity tables exist: the fitted models
    (:func:`save_fits`) into ``out_dir``, and every figure, drawn into
    ``data.figures`` (none of them shows a sensitivity table), which
    :func:`write` then takes from there."""
    save_fits(data, out_dir, overwrite=overwrite)
    sections(data)


def save_fits(data: ReportData, out_dir, *, overwrite: bool = False, factorial: bool = True) -> Path:
    """``fit/`` and ``factorial/`` (result folders), ``link/`` and ``comparison/``."""
    out = Path(out_dir)
    data.fit.save(out / "fit", overwrite=overwrite)
    if factorial and data.factorial is not None:
        data.factorial.save(out / "factorial", overwrite=overwrite)
    if data.comparison is not None:
        data.comparison.save(out / "comparison", overwrite=overwrite)
    if data.link is not None:
        from bayes.figures import save_link

        save_link(data.link, out / "link", study_csv=study_csv(data.study))
    return out


def save_data_tables(data: ReportData, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in data.tables.items():
        write_atomic(folder / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False, float_format="%.6g"))
    info = {"timings": data.timings, "settings": data.settings, "link_note": data.link_note}
    write_atomic(folder / "report.json", lambda p: Path(p).write_text(json.dumps(info, indent=2, default=str)))


def load(out_dir, study: Study) -> ReportData:
    """Rebuild :class:`ReportData` from a written report folder (no sampling)."""
    out = Path(out_dir)
    if not (out / "data" / "report.json").exists():
        raise BayesError(f"{out} is not a report folder (no data/report.json); create one with 'bayes report'")
    info = json.loads((out / "data" / "report.json").read_text())
    tables = {p.stem: pd.read_csv(p) for p in sorted((out / "data").glob("*.csv"))}
    fit = load_result(out / "fit")
    factorial = load_result(out / "factorial") if (out / "factorial").exists() else None
    comparison = link = None
    if (out / "comparison").exists():
        from bayes.compare import Comparison

        comparison = Comparison.load(out / "comparison")
    if (out / "link").exists():
        from bayes.figures import load_link

        link = load_link(out / "link")
    return ReportData(study=study, fit=fit, factorial=factorial, link=link, link_note=info.get("link_note", ""),
                      comparison=comparison, tables=tables, timings=info.get("timings", {}),
                      settings=info.get("settings", {}))
