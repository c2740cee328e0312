"""The Python entry point: study in, fitted result out.

    >>> import bayes
    >>> study = bayes.load_builtin()            # or bayes.read_study("my.csv")
    >>> result = bayes.fit(study, n=10, seed=1)
    >>> result.synergy                          # one row per endpoint x score
    >>> result.save("out/")                     # posterior.nc, synergy.csv, ...

Fits every cell (study x endpoint) whose endpoint kind the chosen model can
fit, in one process with one compilation per model structure; cells of other
kinds are listed in ``result.skipped`` with the reason.  This module glues
the layers together; the statistics live in ``models``, ``fit`` and
``synergy``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform

import pandas as pd
import xarray as xr

from bayes import config
from bayes._version import __version__
from bayes.data import Study, consistency_checks
from bayes.endpoints import KINDS
from bayes.sampling import DEFAULT_CACHE, ModelCache, SamplerSettings, diagnose, diagnostics_frame, sample_cell
from bayes.models.factorial import MODEL_NAMES, cell_data
from bayes.priors import PriorSet, load_prior_set
from bayes.results import FitResult, node_name
from bayes.synergy import cell_table


def describe_n(rows: pd.DataFrame, n_assumed: float | None) -> tuple[str, str]:
    """(n label for tables, sentence for headers) for one cell."""
    known = rows["n"].notna()
    if known.all():
        values = sorted({int(v) for v in rows["n"]})
        label = "/".join(str(v) for v in values)
        return f"{label} (reported)", f"n = {label} per arm, as reported"
    if n_assumed is None:
        raise ValueError("n is not reported and no assumption was given")
    if known.any():
        return f"{n_assumed:g} (assumed where missing)", (
            f"n reported for some arms; ASSUMED n = {n_assumed:g} for the others")
    return f"{n_assumed:g} (assumed)", f"n not reported; ASSUMED n = {n_assumed:g} for every arm"


def fit(study: Study, *, model: str = "factorial", n: float | None = None,
        priors: PriorSet | str = "default", settings: SamplerSettings | None = None,
        ci_prob: float = config.CI_PROB, seed: int | None = None,
        cache: ModelCache | None = None, progress=None) -> FitResult:
    """Fit ``model`` to every fittable cell of ``study``.

    ``n`` is the assumed number of animals per arm for rows that do not
    report it (default :data:`bayes.config.DEFAULT_N_ASSUMED`, always
    printed with the results).  ``seed`` replaces ``settings.seed``.
    ``progress`` is an optional callable taking one line of text, called
    before each fit.
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODEL_NAMES)}")
    if not 0 < ci_prob < 1:
        raise ValueError("ci_prob must be between 0 and 1")
    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    settings = settings or SamplerSettings()
    if seed is not None:
        settings = dataclasses.replace(settings, seed=int(seed))
    n_assumed = float(n if n is not None else config.DEFAULT_N_ASSUMED)
    cache = cache or DEFAULT_CACHE

    tree = xr.DataTree()
    tables, diags, arms, skipped, n_notes = [], [], [], [], {}
    for study_name, endpoint in study.cells():
        rows = study.cell(study_name, endpoint)
        kind = KINDS[rows["kind"].iloc[0]]
        if not kind.fitted:
            skipped.append((study_name, endpoint, f"kind '{kind.name}': its likelihood is not implemented yet"))
            continue
        better = rows["better"].iloc[0]
        n_label, n_sentence = describe_n(rows, n_assumed)
        n_notes[f"{study_name}/{endpoint}"] = n_sentence
        data = cell_data(rows, n_assumed)
        if progress:
            progress(f"fitting {study_name} / {endpoint} ({model}, {n_label})")
        cell_tree = sample_cell(data, prior_set, model=model, settings=settings,
                                key=f"{study_name}/{endpoint}", cache=cache)
        cell_tree.attrs.update({"study": study_name, "endpoint": endpoint, "better": better,
                                "kind": kind.name, "n": n_sentence})
        tree[node_name(study_name, endpoint)] = cell_tree
        verdict = diagnose(cell_tree)
        diags.append((study_name, endpoint, verdict))
        table = cell_table(cell_tree["posterior"].to_dataset(), data.design, better, ci_prob=ci_prob)
        table.insert(0, "endpoint", endpoint)
        table.insert(0, "study", study_name)
        table["model"] = model
        table["n_per_arm"] = n_label
        table["diagnostics"] = "ok" if verdict.passed else "FAILED"
        tables.append(table)
        arms.append(_arm_table(cell_tree, study_name, endpoint, ci_prob))

    metadata = {
        "bayes_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "data_source": study.source,
        "data_hash": study.data_hash,
        "model": model,
        "n_assumed": n_assumed,
        "n_treatment": n_notes,
        "priors": {"name": prior_set.name, "source": prior_set.source, "hash": prior_set.hash,
                   "set": prior_set.to_dict()},
        "sampler": settings.to_dict(),
        "ci_prob": ci_prob,
        "ci_kind": config.CI_KIND,
        "compilations": cache.compilations,
    }
    return FitResult(
        tree=tree,
        synergy=pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(),
        diagnostics=diagnostics_frame(diags),
        arms=pd.concat(arms, ignore_index=True) if arms else pd.DataFrame(),
        metadata=metadata,
        checks=[(c.name, c.status, c.message) for c in consistency_checks(study)],
        skipped=skipped,
    )


def _arm_table(cell_tree: xr.DataTree, study: str, endpoint: str, ci_prob: float) -> pd.DataFrame:
    """Reported arm means beside the posterior arm means (data units): a first fit check."""
    from bayes.synergy import summarise_draws

    const = cell_tree["constant_data"].to_dataset()
    arm_mean = cell_tree["posterior"].to_dataset()["arm_mean"] * float(const["scale"])
    rows = []
    for arm in arm_mean["arm"].values:
        s = summarise_draws(arm_mean.sel(arm=arm), ci_prob)
        rows.append({"study": study, "endpoint": endpoint, "arm": str(arm),
                     "reported_mean": float(const["reported_mean"].sel(arm=arm)),
                     "reported_sd": float(const["reported_sd"].sel(arm=arm)),
                     "n_used": float(const["n_animals"].sel(arm=arm)),
                     "posterior_mean": s["mean"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                     "ci_prob": ci_prob})
    return pd.DataFrame(rows)
