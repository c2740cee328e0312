"""The study table: read a CSV of published group summaries, validate it, normalise it.

One row of the input is one study x endpoint x arm (mean with SD or SE, or a
percentage for event rates).  :func:`read_study` turns such a file into a
:class:`Study` whose ``table`` has fixed columns, resolved endpoint kinds and
arms in canonical order, or refuses it with one :class:`~bayes.errors.InputError`
naming the file, row, column, what was found and what would be valid.  The
first problem found wins.

Canonical order inside a study x endpoint ("cell"): the control arm, then the
single-agent arms in the order each agent first appears as a single-agent arm
in the study's rows, then combinations by size and then by their agents'
order.  The same agent order is used for every endpoint of a study.

Normalisation fills only what the file implies: ``kind``/``better`` from the
known endpoint names, ``n`` from ``(sd/se)^2`` when both are given and agree
with a whole number, empty ``day``/``unit``/``cohort`` from the rest of the
cell.  SD and SE are kept as reported (never converted into each other), and
the reported TGI% is kept only to be checked (:mod:`bayes.checks`), never used
as data.  This module does no statistics and imports no modelling library.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from bayes.checks import Check, compatible_n, consistency_checks
from bayes.endpoints import BETTER, KINDS, KNOWN_ENDPOINTS, normalise_endpoint_name
from bayes.errors import InputError

__all__ = ["Study", "read_study", "load_builtin", "builtin_names", "write_template",
           "combine_studies", "Check",
           "consistency_checks", "compatible_n", "CONTROL_ALIASES", "INPUT_COLUMNS",
           "TABLE_COLUMNS"]

CONTROL_ALIASES = ("vehicle", "control", "none", "untreated", "naive")
REQUIRED_COLUMNS = ("endpoint", "agents")
NUMERIC_COLUMNS = ("mean", "sd", "se", "n", "percent", "day", "tgi")
INPUT_COLUMNS = ("study", "endpoint", "agents", "mean", "sd", "se", "n", "percent",
                 "day", "unit", "kind", "better", "tgi", "cohort", "notes", "comment")
TABLE_COLUMNS = ("study", "endpoint", "arm", "agents", "kind", "better", "mean", "sd",
                 "se", "n", "n_source", "percent", "tgi", "day", "unit", "cohort", "row")
FLOAT_COLUMNS = ("mean", "sd", "se", "n", "percent", "tgi", "day")
RELATIVE_TOLERANCE = 0.10   # rounding slack for sd = se * sqrt(n) and implied n
N_REPORTED, N_IMPLIED, N_UNKNOWN = "reported", "implied by sd/se", ""
N_SHARED = "shared in cohort"
DATASETS_PACKAGE = "bayes"  # datasets live in bayes/datasets/<name>.csv + .yaml

_NUMBER_HINT = "a number with '.' as the decimal point, or empty"
_ARM_HINT = ("agents joined by '+', e.g. 'imatinib+IL-2'; the control arm is empty or one of "
             + ", ".join(CONTROL_ALIASES))


@dataclass(frozen=True, eq=False)
class Study:
    """A validated study table (see the module docstring) and where it came from."""

    table: pd.DataFrame
    source: str
    data_hash: str
    provenance: dict = field(default_factory=dict)

    def cells(self) -> list[tuple[str, str]]:
        """(study, endpoint) pairs in the file order of their first appearance."""
        pairs = self.table[["study", "endpoint"]].drop_duplicates()
        return [(str(s), str(e)) for s, e in pairs.itertuples(index=False)]

    def cell(self, study: str, endpoint: str) -> pd.DataFrame:
        """The rows of one study x endpoint, arms in canonical order, index 0..k."""
        mask = (self.table["study"] == study) & (self.table["endpoint"] == endpoint)
        if not mask.any():
            known = ", ".join(f"{s}/{e}" for s, e in self.cells())
            raise KeyError(f"no cell {study!r}/{endpoint!r} in {self.source}; cells: {known}")
        return self.table[mask].reset_index(drop=True)

    def agents(self, study: str, endpoint: str) -> tuple[str, ...]:
        """Agent names of one cell in canonical order (the single-agent arms' order)."""
        cell = self.cell(study, endpoint)
        return tuple(a[0] for a in cell["agents"] if len(a) == 1)

    def select(self, *, endpoints=None, studies=None) -> "Study":
        """The rows of some endpoints and/or studies only, as a study of its own.

        Cohorts keep the n they share; the source and data hash say what was
        kept, so results of the subset are never confused with the whole table.
        """
        table = self.table
        kept = []
        for column, wanted in (("endpoint", endpoints), ("study", studies)):
            if wanted is None:
                continue
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            unknown = sorted(set(wanted) - set(table[column]))
            if unknown:
                raise InputError(self.source, f"no {column} named {', '.join(map(repr, unknown))}",
                                 column=column, valid=", ".join(dict.fromkeys(table[column])))
            table = table[table[column].isin(wanted)]
            kept.append(f"{column} {'+'.join(wanted)}")
        if not kept:
            return self
        what = "; ".join(kept)
        return Study(table.reset_index(drop=True), f"{self.source} [{what}]",
                     f"{self.data_hash}+select:{what}", self.provenance)

    def describe(self) -> str:
        """One line: where the table came from, its size and its data hash."""
        return (f"{self.source}: {len(self.table)} rows, {len(self.cells())} study x endpoint cells, "
                f"{self.data_hash[:19]}")

    def __repr__(self) -> str:
        return f"<Study {self.describe()}>"

    @property
    def n_known(self) -> bool:
        """True when every row has n (reported or implied by sd/se)."""
        return bool(self.table["n"].notna().all())


def read_study(path: str | os.PathLike) -> Study:
    """Read, validate and normalise a study CSV; raise InputError on the first problem."""
    file = os.fspath(path)
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise InputError(file, f"cannot read the file ({exc.strerror})",
                         valid="a path to a readable CSV file") from None
    table = parse_table(raw, file=file, default_study=Path(file).stem)
    return Study(table, file, data_hash(raw), {})


def study_from_frame(frame: pd.DataFrame, *, name: str = "in-memory table") -> Study:
    """Validate a DataFrame in the CSV layout exactly as a file would be validated."""
    raw = frame.to_csv(index=False).encode()
    return Study(parse_table(raw, file=name, default_study="study"), name, data_hash(raw), {})


def builtin_names() -> list[str]:
    """Names of the datasets shipped in bayes/datasets/."""
    folder = resources.files(DATASETS_PACKAGE).joinpath("datasets")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))


def load_builtin(name: str = "seed") -> Study:
    """A shipped dataset as a Study, with its provenance from ``<name>.yaml``."""
    names = builtin_names()
    if name not in names:
        raise InputError(f"built-in dataset '{name}'", "no such built-in dataset",
                         valid=", ".join(names))
    folder = resources.files(DATASETS_PACKAGE).joinpath("datasets")
    source = f"built-in dataset '{name}'"
    raw = folder.joinpath(f"{name}.csv").read_bytes()
    table = parse_table(raw, file=source, default_study=name)
    provenance = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(provenance, dict) or provenance.get("schema_version") != 1:
        raise InputError(f"{name}.yaml", "provenance file lacks 'schema_version: 1'",
                         column="schema_version", valid="1")
    return Study(table, source, data_hash(raw), provenance)


def template_text() -> str:
    """The commented study-table template (``bayes/templates/study.csv``)."""
    return resources.files(DATASETS_PACKAGE).joinpath("templates", "study.csv").read_text(encoding="utf-8")


def write_template(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the commented study-table template to ``path`` for a user to fill in.

    The template documents every column in ``#`` comment lines and holds one
    example study (tumour volume and survival of a 2x2 factorial) that reads
    as a valid table.  An existing file is never replaced unless ``overwrite``.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(os.fspath(target), "the file already exists and was left as it is",
                         valid="a new file name, or overwrite=True (CLI: --force) to replace it")
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(template_text(), encoding="utf-8")
    os.replace(tmp, target)
    return target


def combine_studies(studies, *, name: str | None = None) -> Study:
    """Pool several validated studies into one table for a joint fit.

    Each input keeps its own ``study`` label, which must be unique across the
    inputs (two files that both leave out the ``study`` column are labelled
    by their file names).  Nothing is re-scaled or matched here: the joint
    model matches combinations across studies by their agents and lets each
    study deviate.  The data hash covers every input's hash in order, so the
    pooled table is traceable to its files.
    """
    studies = list(studies)
    if len(studies) < 2:
        raise ValueError("combine_studies needs at least two studies")
    seen: dict[str, str] = {}
    for study in studies:
        for label in dict.fromkeys(study.table["study"].astype(str)):
            if label in seen:
                raise InputError(study.source, f"study label '{label}' is also used by {seen[label]}",
                                 column="study",
                                 valid="a study label that no other pooled table uses "
                                       "(set the 'study' column in one of the files)")
            seen[label] = study.source
    table = pd.concat([s.table for s in studies], ignore_index=True)
    digest = hashlib.sha256("".join(s.data_hash for s in studies).encode()).hexdigest()
    source = name or " + ".join(s.source for s in studies)
    provenance = {"pooled": [{"source": s.source, "data_hash": s.data_hash,
                              "studies": sorted(set(s.table["study"].astype(str)))} for s in studies]}
    return Study(table, source, f"sha256:{digest}", provenance)


def data_hash(raw: bytes) -> str:
    """'sha256:<hex>' of the raw file bytes (recorded in every posterior file)."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- reading

def parse_table(raw: bytes, *, file: str, default_study: str) -> pd.DataFrame:
    """Raw CSV bytes -> the normalised table (see the module docstring)."""
    header, lines = _split_lines(raw, file)
    names = _check_header(header, file)
    rows = [_parse_row(_row_values(names, fields, line, file), line - 1, file, default_study)
            for line, fields in lines]
    return _normalise(rows, file)


def _split_lines(raw: bytes, file: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header fields, [(line number, fields)]) skipping blank and '#' lines."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(file, f"the file is not UTF-8 text (undecodable byte at offset {exc.start})",
                         valid="a CSV file saved as UTF-8") from None
    if not text.strip():
        raise InputError(file, "the file is empty",
                         valid="a header line naming columns such as " + ", ".join(INPUT_COLUMNS[:6])
                         + " and one row per study x endpoint x arm")
    kept = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip() or content.lstrip().startswith("#"):
            continue
        try:
            fields = next(csv.reader([content], strict=True))
        except csv.Error as exc:
            raise InputError(file, f"the line is not valid CSV ({exc})", row=line - 1,
                             valid="comma-separated fields; quote a field that contains a comma") from None
        if any(f.strip() for f in fields):
            kept.append((line, fields))
    if not kept:
        raise InputError(file, "the file has only blank or comment lines",
                         valid="a header line and one row per study x endpoint x arm")
    (_, header), *lines = kept
    if not lines:
        raise InputError(file, "the file has a header but no data rows",
                         valid="one row per study x endpoint x arm below the header")
    return header, lines


def _check_header(header: list[str], file: str) -> list[str]:
    names = [h.strip().lower() for h in header]
    valid = ", ".join(INPUT_COLUMNS)
    for i, name in enumerate(names):
        if name and name not in INPUT_COLUMNS:
            raise InputError(file, f"unknown column '{header[i].strip()}'", column=header[i].strip(),
                             valid=valid)
        if name and name in names[:i]:
            raise InputError(file, f"column '{name}' appears twice in the header", column=name,
                             valid="each column once")
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise InputError(file, f"required column '{name}' is missing", column=name,
                             valid=f"a header with at least {', '.join(REQUIRED_COLUMNS)}; "
                             f"all columns: {valid}")
    return names


def _row_values(names: list[str], fields: list[str], line: int, file: str) -> dict[str, str]:
    if len(fields) > len(names) and any(f.strip() for f in fields[len(names):]):
        raise InputError(file, f"the row has {len(fields)} fields but the header has "
                         f"{len(names)} columns", row=line - 1,
                         valid="as many fields as header columns; quote fields that contain commas")
    fields = fields + [""] * (len(names) - len(fields))
    for i, name in enumerate(names):
        if not name and fields[i].strip():
            raise InputError(file, f"value '{fields[i].strip()}' is in a column with no header name",
                             row=line - 1, column=f"#{i + 1}", valid=", ".join(INPUT_COLUMNS))
    return {name: value.strip() for name, value in zip(names, fields) if name}


# --------------------------------------------------------------------------- one row

def _parse_row(values: dict[str, str], row: int, file: str, default_study: str) -> dict:
    """Validate one data row and return it with parsed numbers and resolved kind."""
    def fail(column: str, message: str, valid: str | None = None):
        raise InputError(file, message, row=row, column=column, valid=valid)

    study = values.get("study", default_study)
    if not study:
        fail("study", "the study name is empty", "a study name (or drop the column: one study per file)")
    endpoint = values["endpoint"]
    if not endpoint:
        fail("endpoint", "the endpoint name is empty",
             "an endpoint name such as " + ", ".join(KNOWN_ENDPOINTS))
    agents = _parse_agents(values["agents"], fail)
    parsed = {col: _number(values.get(col, ""), col, fail) for col in NUMERIC_COLUMNS}
    kind, better = _resolve_kind(endpoint, values.get("kind", ""), values.get("better", ""), fail)
    rec = {"study": study, "endpoint": endpoint, "agents": agents, "kind": kind, "better": better,
           "unit": values.get("unit", ""), "cohort": values.get("cohort", ""), "row": row, **parsed}
    _check_values(rec, fail)
    rec["n"], rec["n_source"] = _resolve_n(rec, fail)
    return rec


def _parse_agents(text: str, fail) -> tuple[str, ...]:
    """'' or a control alias -> (); 'A + B' -> ('A', 'B') as written."""
    if not text or text.lower() in CONTROL_ALIASES:
        return ()
    parts = tuple(p.strip() for p in text.split("+"))
    if not all(parts):
        fail("agents", f"'{text}' has an empty agent name around a '+'", _ARM_HINT)
    for part in parts:
        if part.lower() in CONTROL_ALIASES:
            fail("agents", f"'{text}' names the control '{part}' as an agent of a combination",
                 "treatment agents only inside a combination; the control arm has its own row")
        if parts.count(part) > 1:
            fail("agents", f"'{text}' names agent '{part}' more than once", "each agent once per arm")
    return parts


def _number(text: str, column: str, fail) -> float:
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        hint = _NUMBER_HINT
        if "±" in text or "+/-" in text:
            hint = "the mean in 'mean' and the ± value in 'sd' or 'se'"
        elif text.endswith("%"):
            hint = "the number without the % sign"
        fail(column, f"'{text}' is not a number", hint)
    if not math.isfinite(value):
        fail(column, f"'{text}' is not a finite number", _NUMBER_HINT)
    return value


def _resolve_kind(endpoint: str, kind_text: str, better_text: str, fail) -> tuple[str, str]:
    """kind and better as given, else from KNOWN_ENDPOINTS."""
    known = KNOWN_ENDPOINTS.get(normalise_endpoint_name(endpoint))
    kind, better = kind_text.lower(), better_text.lower()
    if kind and kind not in KINDS:
        fail("kind", f"'{kind_text}' is not an endpoint kind", ", ".join(KINDS))
    if better and better not in BETTER:
        fail("better", f"'{better_text}' is not a benefit direction", ", ".join(BETTER))
    if not kind and known is None:
        fail("kind", f"endpoint '{endpoint}' is not a known endpoint name and 'kind' is empty",
             f"a kind ({', '.join(KINDS)}) or a known endpoint ({', '.join(KNOWN_ENDPOINTS)})")
    if not better and known is None:
        fail("better", f"endpoint '{endpoint}' is not a known endpoint name and 'better' is empty",
             f"{' or '.join(BETTER)}, whichever is good for the animal")
    return kind or known[0], better or known[1]


def _check_values(rec: dict, fail) -> None:
    """Ranges and the columns each kind needs."""
    n, sd, se, mean, kind = rec["n"], rec["sd"], rec["se"], rec["mean"], rec["kind"]
    if not math.isnan(n) and n != round(n):
        fail("n", f"n = {n:g} is not a whole number", "a whole number of animals or samples >= 2, or empty")
    if n < 2:
        fail("n", f"n = {n:g} is below 2", "a whole number >= 2 (an SD needs two values), or empty")
    for col in ("sd", "se"):
        if rec[col] <= 0:
            fail(col, f"{col} = {rec[col]:g} is not positive", f"{col} > 0, or empty")
    if not 0 <= rec["percent"] <= 100 and not math.isnan(rec["percent"]):
        fail("percent", f"percent = {rec['percent']:g} is outside 0-100", "a percentage from 0 to 100")
    if rec["tgi"] > 100:
        fail("tgi", f"tgi = {rec['tgi']:g}% is above 100%",
             "a reported tumour growth inhibition <= 100 (it may be negative), or empty")
    if kind == "rate":
        _check_rate(rec, fail)
        return
    where = f"endpoint '{rec['endpoint']}' has kind {kind}"
    if math.isnan(mean):
        fail("mean", f"'mean' is empty but {where}", "the arm's mean, with sd or se")
    if kind == "positive" and mean <= 0:
        fail("mean", f"mean = {mean:g} is not positive but {where}", "a mean > 0, or another kind")
    if kind == "percent" and not 0 <= mean <= 100:
        fail("mean", f"mean = {mean:g} is outside 0-100 but {where}", "a mean percentage from 0 to 100")
    if math.isnan(sd) and math.isnan(se):
        fail("sd", f"both 'sd' and 'se' are empty but {where}", "the SD in 'sd' or the SE in 'se'")
    if not math.isnan(rec["percent"]):
        fail("percent", f"'percent' is given but {where}", "'percent' only for kind rate; leave it empty")
    if not math.isnan(n) and not math.isnan(sd) and not math.isnan(se):
        implied = se * math.sqrt(n)
        if abs(sd - implied) > RELATIVE_TOLERANCE * sd:
            fail("se", f"se = {se:g} with n = {n:g} implies SD = {implied:.1f}, but sd = {sd:g}",
                 "sd = se * sqrt(n) within 10%; leave sd or se empty if unsure which is which")


def _check_rate(rec: dict, fail) -> None:
    where = f"endpoint '{rec['endpoint']}' has kind rate"
    if math.isnan(rec["percent"]):
        fail("percent", f"'percent' is empty but {where}",
             "the percentage of animals with the event (0-100) in 'percent'")
    for col in ("mean", "sd", "se"):
        if not math.isnan(rec[col]):
            fail(col, f"'{col}' is given but {where}", "the percentage in 'percent'; leave mean, sd, se empty")


def _resolve_n(rec: dict, fail) -> tuple[float, str]:
    """(n, n_source): reported, implied by (sd/se)^2 near a whole number >= 2, or unknown."""
    n, sd, se = rec["n"], rec["sd"], rec["se"]
    if not math.isnan(n):
        return n, N_REPORTED
    if math.isnan(sd) or math.isnan(se):
        return math.nan, N_UNKNOWN
    ratio = (sd / se) ** 2
    whole = round(ratio)
    if whole < 2:
        fail("se", f"sd = {sd:g} and se = {se:g} imply n = (sd/se)^2 = {ratio:.2f}, below 2",
             "sd = se * sqrt(n) with n >= 2; check which column holds which")
    if abs(ratio - whole) <= RELATIVE_TOLERANCE * whole:
        return float(whole), N_IMPLIED
    return math.nan, N_UNKNOWN


# --------------------------------------------------------------------------- cells

def _normalise(rows: list[dict], file: str) -> pd.DataFrame:
    """Check each study x endpoint, order arms canonically, build the table."""
    cells: dict[tuple[str, str], list[dict]] = {}
    singles: dict[str, list[str]] = {}
    for rec in rows:
        cells.setdefault((rec["study"], rec["endpoint"]), []).append(rec)
        order = singles.setdefault(rec["study"], [])
        if len(rec["agents"]) == 1 and rec["agents"][0] not in order:
            order.append(rec["agents"][0])
    out = []
    for (study, endpoint), recs in cells.items():
        rank = {a: i for i, a in enumerate(singles[study])}
        _check_cell(recs, rank, file, f"endpoint '{endpoint}' of study '{study}'")
        out.extend(_finish_cell(recs, rank))
    table = pd.DataFrame(out, columns=list(TABLE_COLUMNS))
    table[list(FLOAT_COLUMNS)] = table[list(FLOAT_COLUMNS)].astype("float64")
    table["row"] = table["row"].astype("int64")
    return _share_cohort_n(table)


def _share_cohort_n(table: pd.DataFrame) -> pd.DataFrame:
    """Give a row without n the n of the same arm in another endpoint of its cohort.

    A cohort's endpoints were measured on the same animals, so when exactly
    one n is known for an arm (e.g. tumour volume reports n = 8 and survival
    does not) that n applies to every endpoint of the cohort.
    """
    known = table[table["n"].notna()].groupby(["study", "cohort", "arm"])["n"].unique()
    for index in table.index[table["n"].isna()]:
        key = tuple(table.loc[index, ["study", "cohort", "arm"]])
        values = known.get(key)
        if values is not None and len(values) == 1:
            table.loc[index, ["n", "n_source"]] = [values[0], N_SHARED]
    return table


def _check_cell(recs: list[dict], rank: dict[str, int], file: str, label: str) -> None:
    def fail(rec: dict, column: str, message: str, valid: str | None = None):
        raise InputError(file, f"{label}: {message}", row=rec["row"], column=column, valid=valid)

    seen: dict[frozenset, dict] = {}
    for rec in recs:
        key = frozenset(rec["agents"])
        if key in seen:
            fail(rec, "agents", f"arm '{_arm_text(rec)}' appears twice, in rows {seen[key]['row']} "
                 f"and {rec['row']}", "one row per arm; agents in any order name the same arm")
        seen[key] = rec
    if frozenset() not in seen:
        fail(recs[0], "agents", "there is no control arm",
             "one row whose agents is empty or one of " + ", ".join(CONTROL_ALIASES))
    for rec in recs:
        for agent in rec["agents"] if len(rec["agents"]) > 1 else ():
            if frozenset([agent]) not in seen:
                fail(rec, "agents", f"arms do not form a factorial: '{_arm_text(rec)}' needs the "
                     f"single-agent arm '{agent}'", f"a row for '{agent}' alone in this endpoint")
    if all(len(rec["agents"]) < 2 for rec in recs):
        fail(recs[0], "agents", "there is no combination arm, so there is no synergy to assess",
             "a row whose agents joins two or more single agents with '+'")
    for column in ("day", "unit", "kind", "better"):
        _check_same(recs, column, fail)
    _check_same([r for r in recs if r["cohort"]], "cohort", fail)


def _check_same(recs: list[dict], column: str, fail) -> None:
    """All non-empty values of `column` in the cell are equal."""
    given = [r for r in recs if not _empty(r[column])]
    for rec in given[1:]:
        if rec[column] != given[0][column]:
            first = given[0]
            fail(rec, column, f"{column} {_show(rec[column])} differs from {column} "
                 f"{_show(first[column])} in row {first['row']}",
                 f"one {column} for all arms of an endpoint; use separate endpoint names otherwise")


def _finish_cell(recs: list[dict], rank: dict[str, int]) -> list[dict]:
    """Fill day/unit/cohort from the cell and sort arms canonically."""
    fill = {c: next((r[c] for r in recs if not _empty(r[c])), None) for c in ("day", "unit", "cohort")}
    if fill["day"] is None:
        fill["day"] = math.nan
    fill["unit"] = fill["unit"] or ""
    fill["cohort"] = fill["cohort"] or recs[0]["endpoint"]
    out = []
    for rec in recs:
        agents = tuple(sorted(rec["agents"], key=rank.__getitem__))
        out.append({**rec, **fill, "agents": agents, "arm": "+".join(agents) or "control"})
    return sorted(out, key=lambda r: _arm_key(r["agents"], rank))


def _arm_key(agents: tuple[str, ...], rank: dict[str, int]) -> tuple:
    if not agents:
        return (0,)
    return (1 if len(agents) == 1 else 2, len(agents), tuple(rank[a] for a in agents))


def _arm_text(rec: dict) -> str:
    return "+".join(rec["agents"]) or "control"


def _empty(value) -> bool:
    return value == "" or (isinstance(value, float) and math.isnan(value))


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else f"'{value}'"
