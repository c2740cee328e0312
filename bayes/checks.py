"""Consistency checks on a validated study table: things worth saying, not refusing.

:func:`consistency_checks` compares reported numbers with what the table
implies (TGI% against the means, survival percentages against whole animals,
n across the endpoints of one cohort) and returns :class:`Check` objects,
each one readable sentence with the numbers, for the CLI to print.  Nothing
here changes the data or raises on it: refusals live in :mod:`bayes.data`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bayes.data import Study

__all__ = ["Check", "consistency_checks", "compatible_n", "TGI_TOLERANCE_PP"]

TGI_TOLERANCE_PP = 1.0          # reported vs computed TGI, percentage points (rounding slack)
N_RANGE = range(2, 31)          # plausible animals per arm for the whole-animal check
WHOLE_ANIMAL_TOLERANCE_PP = 0.5


@dataclass(frozen=True)
class Check:
    name: str        # "tgi", "tgi_derived", "n", "rate_n", "cohort_n"
    status: str      # "ok" | "warn" | "info"
    message: str     # one readable sentence with the numbers


def compatible_n(percents: Iterable[float], n_range: Iterable[int] = N_RANGE,
                 tol_pp: float = WHOLE_ANIMAL_TOLERANCE_PP) -> list[int]:
    """The n in `n_range` for which every percentage is k/n of whole animals (within tol_pp)."""
    values = [float(p) for p in percents]
    return [n for n in n_range if all(_whole(p, n, tol_pp) for p in values)]


def _whole(percent: float, n: int, tol_pp: float) -> bool:
    k = round(percent * n / 100)
    return abs(percent - 100 * k / n) <= tol_pp + 1e-9


def consistency_checks(study: Study) -> list[Check]:
    """All checks for a study, in a stable order: TGI, n, rates, cohort n."""
    return _tgi_checks(study) + [_n_check(study)] + _rate_checks(study) + _cohort_n_checks(study)


def _label(study: Study, name: str, endpoint: str) -> str:
    """'endpoint' for one-study tables, 'study endpoint' otherwise."""
    several = study.table["study"].nunique() > 1
    return f"{name} {endpoint}" if several else endpoint


def _tgi_checks(study: Study) -> list[Check]:
    checks = []
    for name, endpoint in study.cells():
        cell = study.cell(name, endpoint)
        control_mean = cell["mean"].iloc[0]          # canonical order: control first
        for rec in cell[cell["tgi"].notna()].itertuples():
            where = f"{_label(study, name, endpoint)} {rec.arm}"
            if math.isnan(rec.mean) or math.isnan(control_mean) or control_mean == 0:
                checks.append(Check("tgi", "warn", f"{where}: reported TGI {rec.tgi:.1f}% cannot "
                                    "be checked because the arm or control has no mean"))
                continue
            computed = 100 * (1 - rec.mean / control_mean)
            off = abs(rec.tgi - computed)
            verdict = "ok" if off <= TGI_TOLERANCE_PP else f"off by {off:.1f} points"
            checks.append(Check("tgi", "ok" if off <= TGI_TOLERANCE_PP else "warn",
                                f"{where}: reported TGI {rec.tgi:.1f}% vs {computed:.1f}% "
                                f"computed from the means ({verdict})"))
    if checks:
        checks.insert(0, Check("tgi_derived", "info",
                               "TGI is derived from the means and is not used as data"))
    return checks


def _n_check(study: Study) -> Check:
    table = study.table
    total = len(table)
    reported = int((table["n_source"] == "reported").sum())
    implied = int((table["n_source"] == "implied by sd/se").sum())
    shared = int((table["n_source"] == "shared in cohort").sum())
    unknown = total - reported - implied - shared
    if unknown == total:
        return Check("n", "info", f"n per arm is unreported in all {total} rows; "
                     "the models must assume it or treat it as unknown")
    text = f"n is reported in {reported} of {total} rows, implied by sd/se in {implied}"
    if shared:
        text += f", taken from another endpoint of the same cohort in {shared}"
    if unknown:
        rows = ", ".join(str(r) for r in table.loc[table["n"].isna(), "row"])
        return Check("n", "info", f"{text}, and unknown in {unknown} (rows {rows})")
    return Check("n", "info", f"{text}; n is known everywhere")


def _cohort_n(study: Study) -> dict[tuple[str, str, str], set[float]]:
    """(study, cohort, arm) -> the distinct known n of that arm across the cohort's endpoints."""
    known = study.table[study.table["n"].notna()]
    out: dict[tuple[str, str, str], set[float]] = {}
    for rec in known.itertuples():
        out.setdefault((rec.study, rec.cohort, rec.arm), set()).add(rec.n)
    return out


def _rate_checks(study: Study) -> list[Check]:
    rates = study.table[study.table["kind"] == "rate"]
    cohort_n = _cohort_n(study)
    checks = []
    for (name, cohort), group in rates.groupby(["study", "cohort"], sort=False):
        unknown = []
        for rec in group.itertuples():
            ns = cohort_n.get((name, cohort, rec.arm), set())
            if len(ns) == 1:
                checks.append(_whole_animal_check(study, rec, ns.pop()))
            else:
                unknown.append(rec)
        if unknown:
            checks.append(_compatible_check(study, name, unknown))
    return checks


def _whole_animal_check(study: Study, rec, n: float) -> Check:
    animals = rec.percent * n / 100
    ok = _whole(rec.percent, int(n), WHOLE_ANIMAL_TOLERANCE_PP)
    where = f"{_label(study, rec.study, rec.endpoint)} {rec.arm}"
    verdict = "ok" if ok else "not a whole number of animals"
    return Check("rate_n", "ok" if ok else "warn",
                 f"{where}: {rec.percent:g}% of n = {n:g} is {animals:.1f} animals ({verdict})")


def _compatible_check(study: Study, name: str, recs: list) -> Check:
    endpoints = " and ".join(dict.fromkeys(_label(study, name, r.endpoint) for r in recs))
    shown = ", ".join(f"{r.percent:g}" for r in recs)
    ns = compatible_n(r.percent for r in recs)
    span = f"{N_RANGE.start}-{N_RANGE.stop - 1}"
    if not ns:
        return Check("rate_n", "warn", f"{endpoints} percentages {shown}% are not whole animals for "
                     f"any single n in {span}; the arms may differ in n or the numbers are rounded")
    if ns == list(N_RANGE):
        return Check("rate_n", "info", f"{endpoints} percentages {shown}% are whole animals for "
                     f"every n in {span}, so they say nothing about n")
    listed = "{" + ", ".join(str(n) for n in ns) + "}"
    return Check("rate_n", "info", f"{endpoints} percentages {shown}% are whole animals only for "
                 f"n in {listed} (same n in every arm, n in {span})")


def _cohort_n_checks(study: Study) -> list[Check]:
    checks = []
    for (name, cohort, arm), ns in _cohort_n(study).items():
        if len(ns) > 1:
            values = ", ".join(f"{n:g}" for n in sorted(ns))
            checks.append(Check("cohort_n", "warn", f"study '{name}' cohort '{cohort}' arm {arm}: "
                                f"n differs between endpoints ({values}) although a cohort shares "
                                "its animals"))
    return checks
