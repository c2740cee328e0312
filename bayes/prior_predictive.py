"""Prior predictive checks: what a prior set implies on the data scale, without MCMC.

A prior set is written on link scales (log fold changes, log odds,
standardised synergy), which are hard to judge by eye.  This module builds
the same PyMC models a fit would (:func:`bayes.analysis.model_specs` +
:func:`bayes.models.builder.build_model`, unknown n marginalised), draws from
the priors only (:func:`forward_draws`, vectorised) and reports, per study x
endpoint x arm, in the units of the table (mm3, %, pg/mL):

* the prior median and 5%/95% quantiles of the arm's **population mean**
  (``arm_mean`` times the cell's display factor);
* the prior predictive of the **reported value** itself: the mean of n
  simulated animals or samples (log-normal values, Beta percentages) or the
  percentage of n animals with the event, with n drawn from the cohort's n
  prior; and where the reported value falls in it (``reported_quantile``; a
  value near 0 or 1 means the prior did not expect the table).

:func:`prior_synergy` gives the prior of every synergy score that
:func:`bayes.synergy.cell_table` reports (Bliss, HSA, RA, interaction, TGI)
with the prior P(synergy); for the joint model also the pooled synergy.
:func:`compare_prior_sets` stacks both tables for several prior sets.

Only forward draws are taken: the n-likelihood Potentials play no part,
which is what a prior check wants.  Draws are reproducible for a given
``seed``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayes.models.builder import ModelSpec, prefix
from bayes.models.cells import Cell
from bayes.nprior import CohortN, NPrior, n_matrix
from bayes.priors import PriorSet, load_prior_set
from bayes.synergy import cell_table, pooled_table

MODELS = ("factorial", "joint")
PRIOR_SETS = ("default", "sceptical", "optimistic")
CI_PROB = 0.90                                   # 5% and 95% quantiles
CELL_VARS = ("arm_mean", "interaction", "sd_log", "precision")
MODEL_VARS = ("synergy_mean", "synergy_sd")
# pytensor mode for the forward-sampling function: it is compiled once per
# model and run once, so a fast compile beats fast code (numba: ~3x slower here).
COMPILE_MODE = "FAST_COMPILE"


@dataclass(frozen=True)
class CellDraws:
    """Prior draws of one cell, prefix stripped (dims ``chain, draw, arm|combo``)."""

    cell: Cell
    group: CohortN
    draws: xr.Dataset


class PriorCheck(NamedTuple):
    """Both prior tables, stacked over prior sets (column ``prior_set``)."""

    arms: pd.DataFrame
    synergy: pd.DataFrame


def _as_prior_set(priors: PriorSet | str) -> PriorSet:
    return priors if isinstance(priors, PriorSet) else load_prior_set(priors)


def _check_args(model: str, draws: int) -> None:
    if model not in MODELS:
        raise ValueError(f"prior predictive checks support model {' or '.join(MODELS)}, not {model!r}")
    if int(draws) != draws or draws < 10:
        raise ValueError(f"draws must be a whole number >= 10, not {draws!r}")


def forward_draws(model, names: list[str], draws: int, seed: int) -> xr.Dataset:
    """``draws`` joint forward (prior) draws of the variables ``names`` of ``model``,
    dims ``chain`` (one), ``draw`` and each variable's own.

    ``pm.sample_prior_predictive`` and ``pm.draw`` call the compiled forward
    function once per draw: 2000 calls of the seed's joint model took 2.5 s.
    Here PyMC's ``vectorize_over_posterior``, given an empty posterior of
    ``draws`` draws, resizes the model's root random variables to that many
    draws and vectorises the graph over them, so one call of one function
    gives every draw (0.36 s on the same model, compilation included).  The
    n-likelihood Potentials play no part, which is what a prior is.
    ``seed`` (an int) seeds every random variable's generator.
    """
    import pymc as pm
    from pymc.sampling.forward import vectorize_over_posterior

    batch = xr.Dataset(coords={"chain": [0], "draw": np.arange(int(draws))})
    # .copy(): a root variable asked for itself must sit below a node to be resized
    outputs = vectorize_over_posterior([model[n].copy() for n in names], batch, input_rvs=[])
    values = pm.compile([], outputs, random_seed=int(seed), mode=COMPILE_MODE)()
    dims = {n: tuple(model.named_vars_to_dims.get(n) or (f"{n}_dim_{k}" for k in range(np.ndim(v) - 2)))
            for n, v in zip(names, values)}
    used = {d for ds in dims.values() for d in ds}
    coords = {d: np.asarray(model.coords[d]) for d in used if model.coords.get(d) is not None}
    return xr.Dataset({n: (("chain", "draw", *dims[n]), np.asarray(v)) for n, v in zip(names, values)},
                      coords={"chain": [0], "draw": np.arange(int(draws)), **coords})


def _strip_prefix(ds: xr.Dataset, p: str) -> xr.Dataset:
    """Variables named ``<p>x`` with dims ``<p>d`` as ``x`` with dims ``d``."""
    names = [v for v in ds.data_vars if str(v).startswith(p)]
    part = ds[names].rename({n: str(n)[len(p):] for n in names})
    dims = {d: str(d)[len(p):] for d in part.dims if str(d).startswith(p)}
    return part.rename(dims)


def _forward(spec: ModelSpec, priors: PriorSet, draws: int, seed: int) -> tuple[list[CellDraws], xr.Dataset]:
    """Prior draws of one model: per cell, and of the model-level variables."""
    from bayes.models.builder import build_model

    model = build_model(spec, priors)
    wanted = [prefix(i) + v for i in range(len(spec.cells)) for v in CELL_VARS] + list(MODEL_VARS)
    prior = forward_draws(model, [v for v in wanted if v in model.named_vars], draws, seed)
    cells = [CellDraws(cell, spec.groups[spec.group_of(cell)], _strip_prefix(prior, prefix(i)))
             for i, cell in enumerate(spec.cells)]
    return cells, prior[[v for v in MODEL_VARS if v in prior]]


def prior_draws(study, priors: PriorSet | str = "default", *, model: str = "factorial",
                draws: int = 2000, seed: int = 0) -> tuple[list[CellDraws], xr.Dataset]:
    """Forward draws from ``priors`` for every cell of ``study`` (no MCMC).

    Returns the per-cell draws and a Dataset of the model-level variables
    (``synergy_mean``, ``synergy_sd``; empty for the factorial model).
    """
    from bayes.analysis import model_specs

    _check_args(model, draws)
    prior_set = _as_prior_set(priors)
    specs = model_specs(study, model, NPrior())
    seeds = np.random.SeedSequence(seed).spawn(len(specs))
    cells, model_level = [], xr.Dataset()
    for spec, ss in zip(specs, seeds):
        part, level = _forward(spec, prior_set, draws, int(ss.generate_state(1)[0]))
        cells.extend(part)
        if level.data_vars:
            model_level = level
    return cells, model_level


# --------------------------------------------------------------------------- data scale

def _n_draws(cd: CellDraws, size: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, arm) whole n per simulated table, from the cohort's n prior."""
    matrix = n_matrix(cd.cell.rows, cd.group.grid)              # (G, arm)
    weight = np.exp(cd.group.log_weight - np.max(cd.group.log_weight))
    index = rng.choice(len(weight), size=size, p=weight / weight.sum())
    return matrix[index].astype(int)


def _mean_of_n(sampler, n: np.ndarray) -> np.ndarray:
    """Mean of the first n[d, a] of ``sampler(shape)`` values along the last axis."""
    values = sampler((*n.shape, int(n.max())))
    keep = np.arange(values.shape[-1]) < n[..., None]
    return np.where(keep, values, 0.0).sum(-1) / n


def predicted_reported(cd: CellDraws, rng: np.random.Generator) -> np.ndarray:
    """(draws, arm) simulated reported values in data units, one simulated table per draw."""
    cell = cd.cell
    mean = cd.draws["arm_mean"].stack(sample=("chain", "draw")).transpose("sample", "arm").to_numpy()
    n = _n_draws(cd, mean.shape[0], rng)
    if cell.kind == "rate":
        return 100.0 * rng.binomial(n, mean) / n
    if cell.kind == "positive":
        sd = cd.draws["sd_log"].stack(sample=("chain", "draw")).transpose("sample", "arm").to_numpy()
        median_log = np.log(mean) - sd**2 / 2       # arm_mean is the log-normal mean
        values = _mean_of_n(lambda shape: np.exp(median_log[..., None] + sd[..., None]
                                                 * rng.standard_normal(shape)), n)
        return values * cell.display
    phi = cd.draws["precision"].stack(sample=("chain", "draw")).transpose("sample", "arm").to_numpy()
    alpha, beta = mean * phi, (1.0 - mean) * phi
    values = _mean_of_n(lambda shape: rng.beta(alpha[..., None] * np.ones(shape),
                                               beta[..., None] * np.ones(shape)), n)
    return values * cell.display


def _arm_rows(cells: list[CellDraws], model: str, prior_name: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(len(cells) + 1)[-1])
    rows = []
    for cd in cells:
        cell = cd.cell
        population = (cd.draws["arm_mean"] * cell.display).stack(sample=("chain", "draw"))
        predicted = predicted_reported(cd, rng)
        reported = cell.reported().set_index("arm")
        unit = str(cell.rows["unit"].iloc[0]) if "unit" in cell.rows else ""
        for j, arm in enumerate(cell.design.arms):
            pop = population.sel(arm=arm).to_numpy()
            pred = predicted[:, j]
            value = float(reported.loc[arm, "reported"])
            q05, q50, q95 = np.quantile(pop, [0.05, 0.5, 0.95])
            p05, p50, p95 = np.quantile(pred, [0.05, 0.5, 0.95])
            rows.append({"prior_set": prior_name, "model": model, "study": cell.study,
                         "endpoint": cell.endpoint, "arm": arm, "kind": cell.kind, "unit": unit,
                         "reported": value, "prior_median": q50, "prior_q05": q05, "prior_q95": q95,
                         "predicted_median": p50, "predicted_q05": p05, "predicted_q95": p95,
                         "reported_quantile": float((pred < value).mean() + 0.5 * (pred == value).mean())})
    return pd.DataFrame(rows)


def _synergy_rows(cells: list[CellDraws], model_level: xr.Dataset, model: str, prior_name: str,
                  ci_prob: float) -> pd.DataFrame:
    tables = []
    for cd in cells:
        cell = cd.cell
        if not cell.design.combos:
            continue
        table = cell_table(cd.draws, cell.design, cell.kind, cell.better, ci_prob=ci_prob)
        table.insert(0, "endpoint", cell.endpoint)
        table.insert(0, "study", cell.study)
        tables.append(table)
    if "synergy_mean" in model_level:
        pooled = pooled_table(model_level, ci_prob=ci_prob)
        pooled.insert(0, "endpoint", "all endpoints")
        pooled.insert(0, "study", "all studies")
        tables.append(pooled)
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    out.insert(0, "model", model)
    out.insert(0, "prior_set", prior_name)
    return out


def prior_predictive(study, priors: PriorSet | str = "default", *, model: str = "factorial",
                     draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per study x endpoint x arm: the prior of the arm's population mean and of
    its reported value, in the table's units, beside the reported value."""
    prior_set = _as_prior_set(priors)
    cells, _ = prior_draws(study, prior_set, model=model, draws=draws, seed=seed)
    return _arm_rows(cells, model, prior_set.name, seed)


def prior_synergy(study, priors: PriorSet | str = "default", *, model: str = "factorial",
                  draws: int = 2000, seed: int = 0, ci_prob: float = CI_PROB) -> pd.DataFrame:
    """Per study x endpoint x reference (as :func:`bayes.synergy.cell_table` names them):
    the prior mean, sd, equal-tailed ``ci_prob`` interval and prior P(synergy)."""
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    prior_set = _as_prior_set(priors)
    cells, level = prior_draws(study, prior_set, model=model, draws=draws, seed=seed)
    return _synergy_rows(cells, level, model, prior_set.name, ci_prob)


def compare_prior_sets(study, names=PRIOR_SETS, *, model: str = "factorial", draws: int = 2000,
                       seed: int = 0, ci_prob: float = CI_PROB) -> PriorCheck:
    """:func:`prior_predictive` and :func:`prior_synergy` for each prior set (name,
    YAML path or PriorSet), stacked with a ``prior_set`` column; one set of draws
    per prior set feeds both tables."""
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    arms, synergy = [], []
    for name in names:
        prior_set = _as_prior_set(name)
        cells, level = prior_draws(study, prior_set, model=model, draws=draws, seed=seed)
        arms.append(_arm_rows(cells, model, prior_set.name, seed))
        synergy.append(_synergy_rows(cells, level, model, prior_set.name, ci_prob))
    return PriorCheck(pd.concat(arms, ignore_index=True), pd.concat(synergy, ignore_index=True))


# --------------------------------------------------------------------------- text

def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def format_check(check: PriorCheck) -> str:
    """Plain-text report of a :class:`PriorCheck` (arms, then synergy scores)."""
    lines = []
    arms, syn = check.arms, check.synergy
    lines.append("Arms: population mean (prior median [5%, 95%]) and the predicted reported value "
                 "[5%, 95%], in data units; q = where the reported value falls in its prior predictive")
    for (study, endpoint), part in arms.groupby(["study", "endpoint"], sort=False):
        unit = part["unit"].iloc[0]
        lines.append(f"\n{study} / {endpoint} ({unit})")
        lines.append(f"  {'prior set':<11} {'arm':<16} {'reported':>8}  {'population mean':<28} "
                     f"{'predicted report':<20} {'q':>5}")
        for r in part.itertuples():
            pop = f"{_num(r.prior_median)} [{_num(r.prior_q05)}, {_num(r.prior_q95)}]"
            pred = f"[{_num(r.predicted_q05)}, {_num(r.predicted_q95)}]"
            lines.append(f"  {r.prior_set:<11} {r.arm:<16} {_num(r.reported):>8}  {pop:<28} {pred:<20} "
                         f"{r.reported_quantile:5.2f}")
    ci = syn["ci_prob"].iloc[0] if len(syn) else CI_PROB
    lines.append(f"\nSynergy scores a priori (sign-aligned, positive = synergy; {ci:.0%} interval; "
                 "P(>0) = prior P(synergy))")
    for (study, endpoint), part in syn.groupby(["study", "endpoint"], sort=False):
        lines.append(f"\n{study} / {endpoint}")
        lines.append(f"  {'prior set':<11} {'score':<12} {'arm':<16} {'mean':>7}  {'interval':<18} {'P(>0)':>6}")
        for r in part.itertuples():
            p = "" if np.isnan(r.p_synergy) else f"{r.p_synergy:6.3f}"
            lines.append(f"  {r.prior_set:<11} {r.reference:<12} {r.arm:<16} {r.mean:7.3f}  "
                         f"{f'[{r.ci_low:.3f}, {r.ci_high:.3f}]':<18} {p:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bayes.prior_predictive [DATA] [--model M] [--priors A,B,...]``: print the check."""
    from bayes.data import builtin_names, load_builtin, read_study

    parser = argparse.ArgumentParser(prog="python -m bayes.prior_predictive",
                                     description="What prior sets imply on the data scale (no MCMC).")
    parser.add_argument("data", nargs="?", default="seed", help="study CSV or built-in dataset (default: seed)")
    parser.add_argument("--model", choices=MODELS, default="factorial")
    parser.add_argument("--priors", default=",".join(PRIOR_SETS),
                        help="comma-separated prior set names or YAML paths (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    study = load_builtin(args.data) if args.data in builtin_names() else read_study(args.data)
    check = compare_prior_sets(study, tuple(args.priors.split(",")), model=args.model,
                               draws=args.draws, seed=args.seed)
    print(f"prior predictive check: {study.source}, model {args.model}, {args.draws} draws, seed {args.seed}")
    print(format_check(check))
    return 0


if __name__ == "__main__":
    sys.exit(main())
