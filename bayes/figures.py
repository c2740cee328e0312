"""Figures of the model-comparison report: computed results in, matplotlib Figures out.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the
non-interactive Agg canvas; nothing is shown and nothing stays registered
with ``pyplot`` (figures are built with ``Figure()`` directly; the one that
arviz-plots builds through ``pyplot`` is closed there and moved to an Agg
canvas).  :func:`to_png` turns a figure into PNG bytes for the report.
Figures are laid out for about 800 px width (8 in at 100 dpi) with titles,
axis labels with units and a zero line where "no synergy" lives.

* :func:`forest`: synergy scores (Bliss, HSA, RA) per endpoint x combination,
  mean and credible interval, P(synergy) printed beside each row; optionally
  several tables side by side (a ``by`` column).  Plain matplotlib: the input
  is a summary table, not draws, which arviz-plots' ``plot_forest`` needs.
* :func:`prior_posterior`: prior versus posterior density of every cell's
  interaction, sign-aligned (positive = synergy).  arviz-plots
  ``plot_prior_posterior`` on a tree with ``prior`` and ``posterior`` groups.
* :func:`ppc` and :func:`predictive_summaries`: posterior predictive checks of
  the reported summary statistics (what a paper would report from n animals).
  Plain matplotlib: the predictive quantities are simulated summaries, which
  arviz-plots' PPC plots (made for observed data vectors) do not cover.
* :func:`nk_link`: per arm, posterior NK activation against the outcome on its
  link scale (or data scale) with the fitted link ``theta * activation``.
  Plain matplotlib (a custom scatter with error bars).
* :func:`n_posterior`: prior vs posterior probability of n per cohort.  Plain
  matplotlib bar chart.

:func:`save_link` / :func:`load_link` store and reload a
:class:`bayes.link.LinkResult` (raw posterior as NetCDF, the table, metadata
and the study table that rebuilds its model spec), which ``LinkResult.save``
does not do.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayes import config
from bayes.results import write_atomic

WIDTH = 8.0                      # inches; 800 px at the default 100 dpi
DPI = 100
REFERENCE_LABELS = {"bliss": "Bliss", "hsa": "HSA", "ra": "RA"}
PRIOR_COLOR, POSTERIOR_COLOR = "#7f7f7f", "#1f77b4"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

__all__ = ["BayesFigure", "forest", "prior_posterior", "interaction_draws", "ppc", "predictive_summaries", "nk_link",
           "n_posterior", "to_png", "save_link", "load_link", "PNG_SIGNATURE"]


# ---------------------------------------------------------------- helpers

class BayesFigure(Figure):
    """A matplotlib Figure that Jupyter shows as the PNG the report embeds.

    The figures here are never registered with ``pyplot``, so a notebook's
    inline backend does not know them; ``_repr_png_`` lets a figure returned
    as a cell's last value display all the same, without ``pyplot``.
    """

    def _repr_png_(self) -> bytes:
        return to_png(self)


def _figure(width: float, height: float) -> Figure:
    """A Figure on an Agg canvas, not registered with pyplot (nothing to close)."""
    fig = BayesFigure(figsize=(width, height), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """PNG bytes of ``fig``; the image is ``fig.get_size_inches() * dpi`` pixels."""
    buffer = io.BytesIO()
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    import matplotlib as mpl

    # Importing some libraries (PreliZ) switches rcParams to a style that crops
    # figures ("savefig.bbox: tight"); the report's sizes must not depend on that.
    with mpl.rc_context({"savefig.bbox": "standard"}):
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _pretty(name: str) -> str:
    return str(name).replace("_", " ")


def _flat(da: xr.DataArray) -> np.ndarray:
    """Draws of a DataArray with (chain, draw, ...) as (sample, ...)."""
    return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy(), float)


def _zero_line(ax, axis: str = "x") -> None:
    if axis == "x":
        ax.axvline(0.0, color="black", lw=1.0, ls="--", zorder=0)
    else:
        ax.axhline(0.0, color="black", lw=1.0, ls="--", zorder=0)


# ---------------------------------------------------------------- 1. forest

def forest(synergy: pd.DataFrame, *, by: str | None = None, references=("bliss", "hsa", "ra"),
           title: str | None = None, width: float = WIDTH) -> Figure:
    """Forest plot of the synergy scores (positive = synergy); plain matplotlib.

    One row per study x endpoint x reference (Bliss, HSA, RA) x combination
    arm, in table order: the posterior mean (dot) and the credible interval
    (line, ``ci_prob`` of the table), with P(synergy) printed at the right.
    With ``by`` (a column such as ``prior_set`` or ``model``), one panel per
    value side by side on the same rows; a row missing from one table is left
    empty there.  Rows failing the diagnostics are drawn hollow and marked.
    """
    rows = synergy[synergy["reference"].isin(references)].copy()
    if rows.empty:
        raise ValueError(f"no rows with reference in {', '.join(references)} to plot")
    if by is not None and by not in rows:
        raise KeyError(f"column {by!r} not in the synergy table (columns: {', '.join(rows.columns)})")
    several_studies = rows["study"].nunique() > 1
    order = {r: i for i, r in enumerate(references)}
    rows["_ref"] = rows["reference"].map(order)
    keys = (rows.sort_values(["_ref"], kind="stable")
            [["study", "endpoint", "reference", "arm"]].drop_duplicates())
    # endpoint blocks in table order, references in the given order inside each block
    first = {k: i for i, k in enumerate(dict.fromkeys(zip(rows["study"], rows["endpoint"])))}
    keys = keys.assign(_block=[first[(s, e)] for s, e in zip(keys["study"], keys["endpoint"])],
                       _ref=keys["reference"].map(order))
    keys = keys.sort_values(["_block", "_ref"], kind="stable")
    labels = []
    for k in keys.itertuples():
        where = f"{_pretty(k.study)}: " if several_studies else ""
        labels.append(f"{where}{_pretty(k.endpoint)} · {REFERENCE_LABELS.get(k.reference, k.reference)} · {k.arm}")
    index = {(k.study, k.endpoint, k.reference, k.arm): i for i, k in enumerate(keys.itertuples())}
    panels = [(None, rows)] if by is None else list(rows.groupby(by, sort=False))
    n_rows = len(keys)
    fig = _figure(width, max(2.6, 0.9 + 0.3 * n_rows))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    probs = sorted(set(rows["ci_prob"].dropna()))
    ci_text = " / ".join(f"{100 * p:g}%" for p in probs) or f"{100 * config.CI_PROB:g}%"
    blocks = keys["_block"].to_numpy()
    for ax, (value, part) in zip(axes, panels):
        for r in part.itertuples():
            y = index[(r.study, r.endpoint, r.reference, r.arm)]
            failed = getattr(r, "diagnostics", "ok") == "FAILED"
            color = POSTERIOR_COLOR if r.mean > 0 else "#d62728"
            ax.plot([r.ci_low, r.ci_high], [y, y], color=color, lw=2.0)
            ax.plot([r.mean], [y], "o", color=color, mfc="white" if failed else color, ms=6)
            text = f"P={r.p_synergy:.3f}" + (" FAILED" if failed else "")
            ax.annotate(text, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", ha="left", fontsize=8)
        _zero_line(ax)
        for y in np.flatnonzero(np.diff(blocks)) + 0.5:   # separate endpoints
            ax.axhline(y, color="0.85", lw=0.8)
        ax.set_xlabel("synergy score (log scale; > 0 = synergy)")
        if value is not None:
            ax.set_title(f"{by}: {value}", fontsize=10)
        ax.grid(axis="x", color="0.92")
    axes[0].set_yticks(range(n_rows), labels, fontsize=8)
    axes[0].set_ylim(n_rows - 0.5, -0.5)
    failed = "diagnostics" in rows and (rows["diagnostics"] == "FAILED").any()
    fig.suptitle(title or f"Synergy scores: posterior mean and {ci_text} credible interval; "
                 "P = P(synergy)" + ("\nhollow = fit FAILED its diagnostics" if failed else ""), fontsize=10)
    return fig


# ---------------------------------------------------------------- 2. prior vs posterior

def _prior_set(fit, priors):
    if priors is not None:
        return priors
    from bayes.priors import PriorSet

    stamped = fit.metadata.get("priors", {})
    return PriorSet.from_dict(stamped["set"], source=stamped.get("source", "run.json"))


def _fit_spec(fit, study):
    """The joint model's spec: from the fit in this session, else rebuilt from ``study``."""
    for spec, _ in getattr(fit, "fits", []) or []:
        if spec.family == "joint":
            return spec
    if study is None:
        raise ValueError("the joint model's interaction prior is implied by the model: pass the study "
                         "(prior_posterior(fit, priors, study=...)) so the model can be rebuilt")
    from bayes.analysis import model_specs
    from bayes.nprior import NPrior

    nprior = NPrior(**fit.metadata.get("n_prior", {}))
    spec, = model_specs(study, "joint", nprior)
    return spec


def _cells(fit):
    """(study, endpoint, cell tree) of every fitted cell, in tree order."""
    out = []
    for node in fit.tree.subtree:
        if "posterior" in node.children and "kind" in node.attrs:
            out.append((node.attrs["study"], node.attrs["endpoint"], node))
    return out


def interaction_draws(fit, priors=None, *, study=None, prior_draws: int = 4000,
                      seed: int = 0) -> xr.DataTree:
    """Sign-aligned interaction draws (positive = synergy) of every cell and combination,
    as a tree with ``prior`` and ``posterior`` groups, one scalar variable per
    ``"<endpoint> · <combination>"``.

    Factorial fits: the prior is ``interaction_prior(priors, cell)`` sampled
    directly.  Joint fits: the interaction is a Deterministic of the pooled
    synergy, so its implied prior is drawn by forward-sampling the joint model
    (:func:`bayes.prior_predictive.forward_draws` on ``build_model(spec, priors)``;
    the likelihood Potentials play no part in that, which is what a prior is).
    """
    import pymc as pm

    from bayes.models.builder import build_model, interaction_prior, prefix
    from bayes.models.cells import make_cell
    from bayes.prior_predictive import forward_draws

    model = fit.metadata.get("model")
    if model == "additive":
        raise ValueError("the additive model has no interaction to compare with its prior")
    priors = _prior_set(fit, priors)
    cells = _cells(fit)
    several = len({s for s, _, _ in cells}) > 1
    posterior, prior = {}, {}
    joint_prior = None
    if model == "joint":
        spec = _fit_spec(fit, study)
        names = [prefix(i) + "interaction" for i, c in enumerate(spec.cells) if c.design.combos]
        joint_prior = forward_draws(build_model(spec, priors), names, prior_draws, seed)
        index = {(c.study, c.endpoint): i for i, c in enumerate(spec.cells)}
    rng = np.random.default_rng(seed)
    for study_name, endpoint, node in cells:
        post = node["posterior"].to_dataset()
        if "interaction" not in post:
            continue
        sign = 1.0 if node.attrs["better"] == "lower" else -1.0
        for combo in post["interaction"].coords["combo"].to_numpy():
            name = f"{_pretty(study_name)}: " if several else ""
            name += f"{_pretty(endpoint)} · {combo}"
            posterior[name] = -sign * post["interaction"].sel(combo=combo, drop=True)
            if joint_prior is not None:
                var = joint_prior[prefix(index[(study_name, endpoint)]) + "interaction"]
                draws = var.isel({var.dims[-1]: list(var[var.dims[-1]].to_numpy()).index(combo)}).to_numpy()
            else:
                cell = _cell_from_attrs(node, study, study_name, endpoint, make_cell)
                with pm.Model() as one:
                    interaction_prior(priors, cell).create_variable("interaction")
                draws = forward_draws(one, ["interaction"], prior_draws, int(rng.integers(2**32)))["interaction"]
            draws = np.asarray(draws, float).reshape(1, -1)
            prior[name] = xr.DataArray(-sign * draws, dims=("chain", "draw"),
                                       coords={"chain": [0], "draw": np.arange(draws.shape[1])})
    if not posterior:
        raise ValueError("no cell of this fit has an interaction")
    return xr.DataTree.from_dict({"posterior": xr.Dataset(posterior), "prior": xr.Dataset(prior)})


class _AttrCell:
    """The little of a Cell that ``interaction_prior`` reads, from a cell tree's attrs."""

    def __init__(self, kind: str, better: str):
        from bayes.endpoints import KINDS

        self.link = KINDS[kind].link
        self.sign = 1.0 if better == "lower" else -1.0


def _cell_from_attrs(node, study, study_name, endpoint, make_cell):
    if study is not None:
        return make_cell(study.cell(study_name, endpoint))
    return _AttrCell(node.attrs["kind"], node.attrs["better"])


def prior_posterior(fit, priors=None, *, study=None, prior_draws: int = 4000, seed: int = 0,
                    width: float = WIDTH) -> Figure:
    """Prior vs posterior density of each cell's interaction (sign-aligned, positive = synergy).

    Drawn with arviz-plots ``plot_prior_posterior`` (KDEs) on the tree from
    :func:`interaction_draws`, plus a zero line and axis labels.  ``priors``
    defaults to the prior set stamped in ``fit.metadata``; for a joint fit
    loaded from disk pass ``study`` so the model can be rebuilt.
    """
    import arviz_plots as azp
    import matplotlib.pyplot as plt

    tree = interaction_draws(fit, priors, study=study, prior_draws=prior_draws, seed=seed)
    names = list(tree["posterior"].to_dataset().data_vars)
    cols = min(2, len(names))
    n_rows = math.ceil(len(names) / cols)
    pc = azp.plot_prior_posterior(tree, backend="matplotlib", col_wrap=cols,
                                  figure_kwargs={"figsize": (width, 1.2 + 2.5 * n_rows),
                                                 "layout": "constrained"},
                                  visuals={"remove_axis": False})
    fig = pc.viz["figure"].item()
    plt.close(fig)
    fig.__class__ = BayesFigure     # same object, plus the notebook PNG display
    FigureCanvasAgg(fig)
    model = fit.metadata.get("model", "")
    dist = pc.viz["dist"]
    handles = []
    for group in ("prior", "posterior"):
        line = np.ravel(dist[names[0]].sel(group=group).to_numpy())[0]
        handles.append(Line2D([], [], color=line.get_color(), lw=2, label=group))
    for name in names:
        for ax in np.ravel(pc.viz["plot"][name].to_numpy()):
            _zero_line(ax)
            ax.set_xlabel("interaction (> 0 = synergy)", fontsize=9)
            ax.set_ylabel("density", fontsize=9)
            ax.set_title(name, fontsize=10)
    if "legend" in pc.viz.children:          # arviz-plots' legend sits over the title; redraw it below
        for legend in pc.viz["legend"].to_dataset().data_vars.values():
            legend.item().remove()
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    fig.suptitle(f"Interaction, prior vs posterior ({model} model"
                 + ("; prior implied by the pooled synergy" if model == "joint" else "") + ")\n"
                 "sign-aligned, on the link scale (log for volumes/concentrations, logit for % and rates)",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------- 3. posterior predictive checks

def _n_draws(weights: np.ndarray, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One n per draw from each draw's posterior weights over the grid."""
    weights = np.clip(np.nan_to_num(weights, nan=0.0), 0.0, None)
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    u = rng.random((weights.shape[0], 1))
    return grid[np.minimum((u > cumulative).sum(axis=1), len(grid) - 1)]


def _sample_moments(values: np.ndarray, mask: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof 1) of the first n values of each row."""
    mean = (values * mask).sum(axis=1) / n
    var = (((values - mean[:, None]) ** 2) * mask).sum(axis=1) / (n - 1)
    return mean, np.sqrt(var)


def predictive_summaries(cell_tree: xr.DataTree, seed: int, draws: int = 2000, *,
                         n: int | dict | None = None, interval: float = 0.90) -> pd.DataFrame:
    """Posterior predictive distribution of the summaries a paper would report, per arm.

    For each of ``draws`` posterior draws (picked with ``seed``) an n is drawn
    from that draw's posterior weights over the n grid (``n_weight``), then n
    animals are simulated from the cell's model and summarised as a paper
    would: ``positive`` log-normal animals (log-median ``log(arm_mean) -
    sd_log^2/2``, log-sd ``sd_log``) -> mean and SD; ``percent`` Beta(mu phi,
    (1 - mu) phi) samples -> mean and SD in %; ``rate`` Binomial(n, p) -> % of
    animals.  Values are in reported units (``constant_data.display``).

    ``n`` (an int, or a dict arm -> n) overrides the n of those arms; pass the
    reported n when the cohort reported it (a cell tree stores the weights of
    the grid, not the reported values, and refuses to guess).

    Returns one row per arm x statistic (``mean``, ``sd`` where an SD was
    reported, or ``percent`` for rates): ``reported``, ``pred_median``,
    ``pred_low`` / ``pred_high`` (the (1 - interval)/2 and (1 + interval)/2
    quantiles, 5% and 95% by default), ``inside`` and ``p_value`` =
    P(predicted <= reported) (``p_mid`` counts ties half, for counts).
    """
    post = cell_tree["posterior"].to_dataset()
    const = cell_tree["constant_data"].to_dataset()
    attrs = cell_tree.attrs
    kind = attrs["kind"]
    if n is None and "as reported" in str(attrs.get("n", "")):
        raise ValueError(f"{attrs.get('endpoint')}: n was reported ({attrs['n']}); pass n= the reported "
                         "values (the tree holds only the n grid)")
    rng = np.random.default_rng(seed)
    arm_mean = _flat(post["arm_mean"])
    total = arm_mean.shape[0]
    pick = rng.choice(total, size=draws, replace=draws > total)
    arms = [str(a) for a in post["arm_mean"].coords["arm"].to_numpy()]
    grid = np.asarray(post["n_weight"].coords["n"].to_numpy(), float)
    n_per_draw = _n_draws(_flat(post["n_weight"])[pick], grid, rng)
    display = float(const["display"])
    reported = const["reported"].to_numpy().astype(float)
    reported_sd = const["reported_sd"].to_numpy().astype(float)
    extra = {"sd_log": _flat(post["sd_log"])[pick]} if "sd_log" in post else {}
    if "precision" in post:
        extra["precision"] = _flat(post["precision"])[pick]
    rows = []
    q_low, q_high = (1 - interval) / 2, (1 + interval) / 2
    for j, arm in enumerate(arms):
        if isinstance(n, dict):
            n_arm = np.full(draws, float(n[arm])) if arm in n else n_per_draw
        elif n is not None:
            n_arm = np.full(draws, float(n))
        else:
            n_arm = n_per_draw
        mu = arm_mean[pick, j]
        size = int(n_arm.max())
        mask = np.arange(size)[None, :] < n_arm[:, None]
        stats = {}
        if kind == "positive":
            s = extra["sd_log"][:, j]
            log_median = np.log(mu) - s**2 / 2
            values = np.exp(log_median[:, None] + s[:, None] * rng.standard_normal((draws, size)))
            stats["mean"], stats["sd"] = (v * display for v in _sample_moments(values, mask, n_arm))
        elif kind == "percent":
            phi = extra["precision"][:, j]
            values = rng.beta((mu * phi)[:, None] * np.ones((1, size)), ((1 - mu) * phi)[:, None] * np.ones((1, size)))
            stats["mean"], stats["sd"] = (v * display for v in _sample_moments(values, mask, n_arm))
        elif kind == "rate":
            stats["percent"] = 100.0 * rng.binomial(n_arm.astype(int), mu) / n_arm
        else:
            raise ValueError(f"unknown endpoint kind {kind!r}")
        for statistic, predicted in stats.items():
            value = reported_sd[j] if statistic == "sd" else reported[j]
            if not np.isfinite(value):
                continue
            low, median, high = np.quantile(predicted, [q_low, 0.5, q_high])
            rows.append({"study": attrs.get("study"), "endpoint": attrs.get("endpoint"), "kind": kind, "arm": arm,
                         "statistic": statistic, "reported": value, "pred_median": median,
                         "pred_low": low, "pred_high": high, "interval_prob": interval,
                         "inside": bool(low <= value <= high),
                         "p_value": float(np.mean(predicted <= value)),
                         "p_mid": float(np.mean(predicted < value) + 0.5 * np.mean(predicted == value)),
                         "n_mean": float(n_arm.mean()), "draws": draws})
    return pd.DataFrame(rows)


STAT_LABELS = {"mean": "reported mean", "sd": "reported SD", "percent": "% of animals"}


def _units(study) -> dict[tuple[str, str], str]:
    if study is None or "unit" not in study.table:
        return {}
    table = study.table
    return {(s, e): str(u) for s, e, u in zip(table["study"], table["endpoint"], table["unit"])
            if isinstance(u, str) and u}


def _reported_n(study, study_name: str, endpoint: str) -> dict | None:
    if study is None:
        return None
    rows = study.cell(study_name, endpoint)
    from bayes.design import make_design

    arms = make_design([tuple(a) for a in rows["agents"]]).arms
    known = {arm: int(v) for arm, v in zip(arms, rows["n"]) if pd.notna(v)}
    return known or None


def predictive_table(fit, *, study=None, seed: int = 0, draws: int = 2000) -> pd.DataFrame:
    """:func:`predictive_summaries` of every fitted cell in one table (``study``
    supplies reported n; cell k uses seed ``seed + k``)."""
    parts = []
    for k, (study_name, endpoint, node) in enumerate(_cells(fit)):
        n = _reported_n(study, study_name, endpoint)
        parts.append(predictive_summaries(node, seed=seed + k, draws=draws, n=n))
    return pd.concat(parts, ignore_index=True)


def ppc(fit, *, study=None, seed: int = 0, draws: int = 2000, width: float = WIDTH,
        summaries: pd.DataFrame | None = None) -> Figure:
    """Posterior predictive check of the reported summaries; plain matplotlib.

    One row of panels per cell, one panel per statistic (mean, SD; % for
    rates): per arm, the 5-95% posterior predictive interval of what a paper
    would report from n animals (bar, median tick) and the reported value (red
    diamond).  ``study`` (optional) supplies units and reported n.
    ``summaries`` re-uses a table from :func:`predictive_summaries`.
    """
    if summaries is None:
        summaries = predictive_table(fit, study=study, seed=seed, draws=draws)
    units = _units(study)
    cells = list(dict.fromkeys(zip(summaries["study"], summaries["endpoint"])))
    several = len({s for s, _ in cells}) > 1
    fig = _figure(width, 0.8 + 2.3 * len(cells))
    axes = fig.subplots(len(cells), 2, squeeze=False)
    for (study_name, endpoint), row_axes in zip(cells, axes):
        part = summaries[(summaries["study"] == study_name) & (summaries["endpoint"] == endpoint)]
        statistics = list(dict.fromkeys(part["statistic"]))
        for ax in row_axes[len(statistics):]:
            ax.set_axis_off()
        for ax, statistic in zip(row_axes, statistics):
            rows = part[part["statistic"] == statistic].reset_index(drop=True)
            x = np.arange(len(rows))
            ax.vlines(x, rows["pred_low"], rows["pred_high"], color=POSTERIOR_COLOR, lw=6, alpha=0.5,
                      label=f"predictive {100 * rows['interval_prob'].iloc[0]:g}% interval")
            ax.plot(x, rows["pred_median"], "_", color=POSTERIOR_COLOR, ms=18, mew=2, label="predictive median")
            ax.plot(x, rows["reported"], "D", color="#d62728", ms=6, label="reported")
            ax.set_xticks(x, rows["arm"], fontsize=8)
            unit = "%" if rows["kind"].iloc[0] in ("percent", "rate") else units.get((study_name, endpoint),
                                                                                      "reported units")
            ax.set_ylabel(f"{STAT_LABELS[statistic]} ({unit})", fontsize=9)
            where = f"{_pretty(study_name)}: " if several else ""
            ax.set_title(f"{where}{_pretty(endpoint)}: {STAT_LABELS[statistic]}", fontsize=10)
            for xi, p in zip(x, rows["p_value"]):
                ax.annotate(f"p={p:.2f}", xy=(xi, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -2),
                            textcoords="offset points", ha="center", va="top", fontsize=7)
            ax.margins(y=0.2)
            if rows["kind"].iloc[0] in ("percent", "rate"):
                low, high = ax.get_ylim()
                ax.set_ylim(max(low, -5.0), min(high, 115.0))
            ax.set_xlim(-0.6, len(rows) - 0.4)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Posterior predictive check of the reported summaries\n"
                 "(n animals per draw from its posterior; p = P(predicted <= reported))", fontsize=10)
    return fig


# ---------------------------------------------------------------- 4. NK link

def _link_parts(link):
    """(spec, layout, model-level posterior Dataset) of a LinkResult."""
    from bayes.models.link import layout

    if link.spec is None:
        raise ValueError("this LinkResult has no spec; load it with bayes.figures.load_link")
    post = link.tree["posterior"].to_dataset()
    return link.spec, layout(link.spec.cells), post


def nk_link(link, *, scale: str = "link", ci_prob: float = config.CI_PROB, width: float = WIDTH) -> Figure:
    """NK activation vs outcome per arm, with the fitted link; plain matplotlib.

    One panel per outcome endpoint (tumour volume, survival).  Per arm: x =
    posterior NK activation (mean, equal-tailed ``ci_prob`` interval; in the
    reference readout's link units, control = 0); y = the outcome's arm value
    as a change from control on its link scale (log of the median for
    volumes, logit for rates; ``scale="link"``) or in data units
    (``scale="data"``: mm3, %).  The line is the NK-carried part
    ``theta * activation`` (posterior median of theta, band = ``ci_prob``
    interval); on the data scale it is the control's value moved by it.  Arms
    off the line owe their difference to direct (non-NK) effects.
    """
    if scale not in ("link", "data"):
        raise ValueError("scale must be 'link' or 'data'")
    from bayes.models.builder import prefix

    spec, lay, post = _link_parts(link)
    ref = spec.cells[lay.immune[0]].endpoint
    activation = _flat(post["activation"])                    # (sample, latent_arm)
    latent_sets = [frozenset()] + [frozenset((a,)) for a in lay.agents] + list(lay.combos)
    q = (1 - ci_prob) / 2
    fig = _figure(width, 3.9)
    axes = fig.subplots(1, len(lay.outcome), squeeze=False)[0]
    grid_x = np.linspace(min(0.0, np.quantile(activation, q)) - 0.2,
                         max(0.0, np.quantile(activation, 1 - q)) + 0.2, 60)
    for k, (ax, i) in enumerate(zip(axes, lay.outcome)):
        cell, p = spec.cells[i], prefix(i)
        arm_mean = _flat(post[p + "arm_mean"])                # model scale, (sample, arm)
        if cell.kind == "positive":
            eta = np.log(arm_mean) - _flat(post[p + "sd_log"]) ** 2 / 2
        else:
            eta = np.log(arm_mean) - np.log1p(-arm_mean)
        order = [latent_sets.index(frozenset(ag)) for ag in cell.design.arm_agents]
        x = activation[:, order]
        theta = _flat(post["link"].isel(outcome=k))
        line = theta[:, None] * grid_x[None, :]
        if scale == "link":
            y = eta - eta[:, :1]
            band = line
            ylabel = f"{_pretty(cell.endpoint)}: change from control\n({cell.link} scale"
            ylabel += ", log median)" if cell.kind == "positive" else ", log odds)"
        else:
            y = arm_mean * cell.display
            if cell.kind == "positive":
                control_mean = arm_mean[:, :1] * cell.display
                band = control_mean * np.exp(line)
                ylabel = f"{_pretty(cell.endpoint)}: arm mean ({cell.rows['unit'].iloc[0] or 'data units'})"
            else:
                band = 100.0 / (1.0 + np.exp(-(eta[:, :1] + line)))
                ylabel = f"{_pretty(cell.endpoint)}: % of animals"
        lo, med, hi = np.quantile(band, [q, 0.5, 1 - q], axis=0)
        ax.fill_between(grid_x, lo, hi, color="0.85", label=f"link {100 * ci_prob:g}% band")
        ax.plot(grid_x, med, color="black", lw=1.5, label="NK-carried: θ × activation")
        xm, xl, xh = x.mean(0), *np.quantile(x, [q, 1 - q], axis=0)
        ym, yl, yh = y.mean(0), *np.quantile(y, [q, 1 - q], axis=0)
        ax.errorbar(xm, ym, xerr=[xm - xl, xh - xm], yerr=[ym - yl, yh - ym], fmt="o", color=POSTERIOR_COLOR,
                    ecolor=POSTERIOR_COLOR, elinewidth=1, capsize=2, label="arm (posterior mean, interval)")
        for arm, xi, yi in zip(cell.design.arms, xm, ym):
            ax.annotate(arm, (xi, yi), xytext=(5, 5), textcoords="offset points", fontsize=8)
        span = np.concatenate([yl, yh, med])
        pad = 0.15 * (span.max() - span.min() or 1.0)
        ax.set_ylim(span.min() - pad, span.max() + pad)
        if scale == "link":
            _zero_line(ax, "y")
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        row = link.table[(link.table["endpoint"] == cell.endpoint) & (link.table["quantity"] == "link (sign-aligned)")]
        extra = ""
        if not row.empty:
            r = row.iloc[0]
            extra = f"\nlink (sign-aligned) {r['mean']:.2f}, P(benefit) {r['p_benefit']:.2f}, BF10 {r['bf10']:.2f}"
        ax.set_title(f"{_pretty(cell.endpoint)}{extra}", fontsize=9)
        ax.set_xlabel(f"NK activation ({_pretty(ref)} {spec.cells[lay.immune[0]].link} units; control = 0)",
                      fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("NK link: outcome vs NK activation per arm (ecological, across arm means)", fontsize=10)
    return fig


# ---------------------------------------------------------------- 5. n posterior

def n_posterior(fit) -> Figure:
    """Prior vs posterior probability of n per cohort (``fit.n_posterior``); plain matplotlib."""
    table = fit.n_posterior if hasattr(fit, "n_posterior") else fit
    if table is None or table.empty:
        raise ValueError("this fit has no n posterior (n_posterior table is empty)")
    keys = list(dict.fromkeys(zip(table["study"], table["cohort"], table["fitted_in"])))
    several = len({k[0] for k in keys}) > 1
    fig = _figure(WIDTH, 0.7 + 2.4 * len(keys))
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    for ax, (study_name, cohort, fitted) in zip(axes, keys):
        part = table[(table["study"] == study_name) & (table["cohort"] == cohort)
                     & (table["fitted_in"] == fitted)]
        x = np.arange(len(part))
        ax.bar(x - 0.2, part["prior"], width=0.4, color=PRIOR_COLOR, label="prior")
        ax.bar(x + 0.2, part["posterior"], width=0.4, color=POSTERIOR_COLOR, label="posterior")
        ax.set_xticks(x, [str(int(v)) for v in part["n"]], fontsize=8)
        ax.set_xlabel("n (animals or samples per arm)", fontsize=9)
        ax.set_ylabel("probability", fontsize=9)
        where = f"{_pretty(study_name)}: " if several else ""
        note = " (reported)" if bool(part["reported"].astype(str).str.lower().eq("true").all()) else ""
        ax.set_title(f"{where}cohort {_pretty(cohort)} (fitted in {fitted}){note}", fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
    fig.suptitle("Number of animals per arm: prior vs posterior probability", fontsize=11)
    return fig


# ---------------------------------------------------------------- LinkResult on disk

def save_link(link, out_dir: str | os.PathLike, *, study_csv: str | os.PathLike | None = None) -> Path:
    """Store a LinkResult so :func:`load_link` can rebuild it: ``link_tree.nc`` (raw
    posterior), ``link.csv``/``link.txt`` (``LinkResult.save``), ``link.json``
    (metadata, diagnostics, sentence) and, from ``study_csv``, ``study.csv``
    (the study table, which rebuilds the model spec)."""
    out = Path(out_dir)
    link.save(out, overwrite=True)
    write_atomic(out / "link_tree.nc", lambda p: link.tree.to_netcdf(p, engine="h5netcdf"))
    payload = {"metadata": link.metadata, "sentence": link.sentence,
               "diagnostics": json.loads(link.diagnostics.to_json(orient="records"))}
    write_atomic(out / "link.json", lambda p: Path(p).write_text(json.dumps(payload, indent=2, default=str)))
    if study_csv is not None:
        write_atomic(out / "study.csv", lambda p: shutil.copyfile(study_csv, p))
    return out


def load_link(out_dir: str | os.PathLike):
    """Read a LinkResult written by :func:`save_link` (the spec is rebuilt from
    ``study.csv`` when present, with the stamped n treatment)."""
    from bayes.link import LinkResult

    out = Path(out_dir)
    payload = json.loads((out / "link.json").read_text())
    with xr.open_datatree(out / "link_tree.nc", engine="h5netcdf") as stored:
        tree = stored.load().copy()
    table = pd.read_csv(out / "link.csv", keep_default_na=False, na_values=[""])
    spec = None
    if (out / "study.csv").exists():
        from bayes.analysis import model_specs
        from bayes.data import read_study
        from bayes.nprior import NPrior

        spec, = model_specs(read_study(out / "study.csv"), "link",
                            NPrior(**payload["metadata"].get("n_prior", {})))
    return LinkResult(table=table, sentence=payload["sentence"], tree=tree,
                      diagnostics=pd.DataFrame(payload["diagnostics"]), metadata=payload["metadata"], spec=spec)
