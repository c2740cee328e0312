"""Plain-text rendering of a fitted result for the terminal and summary.txt.

Every table says its scale, its interval probability and how n was treated;
failing diagnostics are printed in capitals at the top and the bottom.
This module formats; it computes no statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from bayes import config
from bayes.results import retry_text

if TYPE_CHECKING:
    from bayes.results import FitResult

LABELS = {"bliss": "Bliss", "hsa": "HSA", "ra": "RA", "interaction": "interaction", "tgi": "TGI %",
          "pooled": "synergy", "pooled_sd": "spread"}


def _fmt(x: float, ref: str) -> str:
    return f"{x:.1f}" if ref == "tgi" else f"{x:.3f}"


def format_scores(frame: pd.DataFrame, ci_prob: float) -> list[str]:
    """Aligned score table, one block per study x endpoint."""
    pct = f"{100 * ci_prob:g}% CI"
    header = f"  {'score':<12} {'arm':<24} {'mean':>8} {'sd':>7}  {pct:<19} {'P(>0)':>6} {'±MC':>6}"
    lines = []
    for (study, endpoint), block in frame.groupby(["study", "endpoint"], sort=False):
        first = block.iloc[0]
        lines += ["", f"{study} / {endpoint}   [model {first['model']}; n per arm {first['n_per_arm']}"
                  f"; diagnostics {first['diagnostics']}]", header]
        for _, r in block.iterrows():
            ci = f"[{_fmt(r['ci_low'], r['reference'])}, {_fmt(r['ci_high'], r['reference'])}]"
            p = "" if pd.isna(r["p_synergy"]) else f"{r['p_synergy']:.3f}"
            mc = "" if pd.isna(r.get("p_mcse", float("nan"))) else f"{r['p_mcse']:.3f}"
            lines.append(f"  {LABELS.get(r['reference'], r['reference']):<12} {r['arm']:<24} "
                         f"{_fmt(r['mean'], r['reference']):>8} {_fmt(r['sd'], r['reference']):>7}  "
                         f"{ci:<19} {p:>6} {mc:>6}".rstrip())
    return lines


def format_result(result: FitResult) -> str:
    meta = result.metadata
    sampler = meta.get("sampler", {})
    ci_prob = float(meta.get("ci_prob", config.CI_PROB))
    lines = []
    if not result.passed:
        lines.append("!! DIAGNOSTICS FAILED for at least one fit: do not trust the flagged rows (see below) !!")
    lines += [
        f"bayes {meta.get('bayes_version')} | model: {meta.get('model')} | data: {meta.get('data_source')}"
        f" ({str(meta.get('data_hash', ''))[:19]})",
        f"priors: {meta.get('priors', {}).get('name')} | sampler: {sampler.get('sampler')}, "
        f"{sampler.get('chains')} chains x {sampler.get('draws')} draws (tune {sampler.get('tune')}), "
        f"seed {sampler.get('seed')}",
    ]
    by_note: dict[str, list[str]] = {}
    for cell, sentence in meta.get("n_treatment", {}).items():
        by_note.setdefault(sentence, []).append(cell.split("/", 1)[-1])
    for sentence, cells in by_note.items():
        lines.append(f"n ({', '.join(cells)}): {sentence}")
    lines += _n_posterior_lines(result.n_posterior)
    lines += [f"Scores are sign-aligned: positive = synergy. Bliss/HSA/RA on the log scale of arm means; "
              f"intervals are {100 * ci_prob:g}% equal-tailed; P(>0) = posterior probability of synergy "
              f"(for TGI %: of inhibition); ±MC = its Monte Carlo standard error."]
    if not result.synergy.empty:
        lines += format_scores(result.synergy, ci_prob)
    if result.sensitivity is not None and not result.sensitivity.empty:
        from bayes.sensitivity import format_sensitivity

        lines += format_sensitivity(result.sensitivity)
    if result.checks:
        lines += ["", "Checks on the table:"]
        lines += [f"  [{status}] {message}" for _, status, message in result.checks]
    lines += ["", _diagnostics_line(result)]
    return "\n".join(lines)


def _n_posterior_lines(frame: pd.DataFrame) -> list[str]:
    """'posterior P(n)' per cohort for every marginalised n (values with prior mass)."""
    if frame is None or frame.empty:
        return []
    lines = []
    marginal = frame[(~frame["reported"].astype(bool)) & (frame["prior"] > 0)]
    for (study, cohort, fitted), block in marginal.groupby(["study", "cohort", "fitted_in"], sort=False):
        if len(block) < 2:
            continue
        best = block.loc[block["posterior"].idxmax()]
        shown = ", ".join(f"{int(r.n)}: {r.posterior:.2f}" for r in block.itertuples())
        lines.append(f"  posterior P(n) for cohort {cohort} (fitted in {fitted}): {shown}; "
                     f"most probable n = {int(best.n)}")
    return lines


def _diagnostics_line(result: FitResult) -> str:
    d = result.diagnostics
    if d.empty:
        return "Diagnostics: nothing was fitted."
    chains = int(d["chains"].iloc[0])
    rule = (f"R-hat <= {config.RHAT_MAX}, bulk and tail ESS >= {config.ESS_PER_CHAIN_MIN * chains}, "
            "no divergences")
    retried = "".join(f"\n  {r['study']} / {r['endpoint']}: {retry_text(r.get('retry'))}"
                      for _, r in d.iterrows() if retry_text(r.get("retry")))
    if result.passed:
        return (f"Diagnostics: all {len(d)} fits passed ({rule}; worst R-hat {d['rhat_max'].max():.3f}, "
                f"lowest ESS {min(d['ess_bulk_min'].min(), d['ess_tail_min'].min()):.0f}).") + retried
    bad = d[~d["passed"]]
    return "DIAGNOSTICS FAILED (" + rule + "):\n" + "\n".join(
        f"  {r['study']} / {r['endpoint']}: {r['problems']}" for _, r in bad.iterrows()) + retried
