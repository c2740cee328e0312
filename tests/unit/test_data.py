"""Unit tests for bayes.data (reading, validating, normalising) and bayes.checks."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path

import pandas as pd
import pytest

import bayes.data
from bayes.data import (TABLE_COLUMNS, Check, Study, builtin_names, compatible_n,
                        consistency_checks, load_builtin, read_study)
from bayes.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BROKEN = FIXTURES / "broken"
SEED = "imatinib_il2_melanoma"


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- refusals

# (file stem, row, column, phrase in the message, phrase in the valid hint)
BROKEN_CASES = [
    ("empty", None, None, "the file is empty", "a header line"),
    ("no_data_rows", None, None, "has a header but no data rows", "one row per study"),
    ("missing_agents_column", None, "agents", "required column 'agents' is missing",
     "at least endpoint, agents"),
    ("unknown_column", None, "dose", "unknown column 'dose'", "study, endpoint, agents, mean, sd"),
    ("duplicate_column", None, "sd", "column 'sd' appears twice", "each column once"),
    ("too_many_fields", 1, None, "the row has 7 fields but the header has 6 columns",
     "quote fields that contain commas"),
    ("empty_endpoint", 2, "endpoint", "the endpoint name is empty", "tumor_volume"),
    ("non_numeric_mean", 2, "mean", "'12,5' is not a number", "'.' as the decimal point"),
    ("comment_shifts_line", 5, "n", "'ten' is not a number", "a number"),
    ("n_not_whole", 3, "n", "n = 7.5 is not a whole number", "whole number"),
    ("n_below_two", 1, "n", "n = 1 is below 2", ">= 2"),
    ("sd_not_positive", 4, "sd", "sd = 0 is not positive", "sd > 0"),
    ("se_negative", 2, "se", "se = -5 is not positive", "se > 0"),
    ("mean_not_positive", 2, "mean", "mean = -3 is not positive but endpoint 'tumor_volume' "
     "has kind positive", "a mean > 0"),
    ("percent_mean_out_of_range", 3, "mean", "mean = 120 is outside 0-100 but endpoint "
     "'nk_lysis' has kind percent", "from 0 to 100"),
    ("percent_out_of_range", 2, "percent", "percent = 120 is outside 0-100", "from 0 to 100"),
    ("tgi_above_100", 2, "tgi", "tgi = 130% is above 100%", "it may be negative"),
    ("no_dispersion", 3, "sd", "both 'sd' and 'se' are empty", "the SD in 'sd' or the SE in 'se'"),
    ("rate_without_percent", 2, "percent", "'percent' is empty but endpoint 'survival' has kind rate",
     "percentage of animals"),
    ("sd_se_contradict", 1, "se", "se = 50 with n = 10 implies SD = 158.1, but sd = 250",
     "sd = se * sqrt(n)"),
    ("sd_below_se", 1, "se", "imply n = (sd/se)^2 = 0.25, below 2", "which column holds which"),
    ("unknown_endpoint", 1, "kind", "endpoint 'body_weight' is not a known endpoint name and "
     "'kind' is empty", "positive, rate, percent"),
    ("invalid_kind", 1, "kind", "'count' is not an endpoint kind", "positive, rate, percent"),
    ("invalid_better", 1, "better", "'more' is not a benefit direction", "lower, higher"),
    ("better_missing", 1, "better", "'better' is empty", "lower or higher"),
    ("duplicate_arm", 5, "agents", "appears twice, in rows 4 and 5", "agents in any order"),
    ("no_control", 1, "agents", "there is no control arm", "vehicle, control, none, untreated, naive"),
    ("not_factorial", 3, "agents", "arms do not form a factorial: 'drugA+drugB' needs the "
     "single-agent arm 'drugB'", "a row for 'drugB' alone"),
    ("no_combination", 1, "agents", "there is no combination arm", "two or more single agents"),
    ("repeated_agent", 4, "agents", "'drugA+drugA' names agent 'drugA' more than once",
     "each agent once"),
    ("control_in_combination", 4, "agents", "names the control 'vehicle' as an agent",
     "treatment agents only"),
    ("empty_agent_in_combination", 4, "agents", "'drugA+' has an empty agent name", "joined by '+'"),
    ("mixed_day", 3, "day", "day 28 differs from day 21 in row 1", "one day for all arms"),
    ("mixed_unit", 4, "unit", "unit 'cm3' differs from unit 'mm3' in row 1", "one unit for all arms"),
    ("mixed_cohort", 3, "cohort", "cohort 'second' differs from cohort 'in_vivo' in row 1",
     "one cohort for all arms"),
]


def test_every_broken_fixture_has_a_case():
    assert sorted(p.stem for p in BROKEN.glob("*.csv")) == sorted(c[0] for c in BROKEN_CASES)


@pytest.mark.parametrize("stem, row, column, phrase, valid", BROKEN_CASES,
                         ids=[c[0] for c in BROKEN_CASES])
def test_broken_fixture_is_refused_with_one_clear_line(stem, row, column, phrase, valid):
    path = BROKEN / f"{stem}.csv"
    with pytest.raises(InputError) as info:
        read_study(path)
    err = info.value
    text = str(err)
    assert f"{stem}.csv" in text and "\n" not in text
    assert err.row == row
    if row is not None:
        assert f"row {row} (line {row + 1})" in text
    assert err.column == column
    if column is not None:
        assert f"column '{column}'" in text
    assert phrase in err.message
    assert valid in err.valid and f"(valid: {err.valid})" in text


def test_comment_lines_keep_the_reported_line_right():
    lines = (BROKEN / "comment_shifts_line.csv").read_text().splitlines()
    assert "ten" in lines[5]            # file line 6 == row 5 + 1
    with pytest.raises(InputError, match=r"row 5 \(line 6\), column 'n'"):
        read_study(BROKEN / "comment_shifts_line.csv")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read the file"):
        read_study(tmp_path / "nope.csv")


def test_unknown_builtin_lists_the_valid_names():
    with pytest.raises(InputError) as info:
        load_builtin("nope")
    assert info.value.valid == "seed"


# --------------------------------------------------------------------------- the seed

def test_seed_loads_with_sixteen_rows_and_the_tables_numbers():
    study = load_builtin("seed")
    assert builtin_names() == ["seed"]
    assert study.source == "built-in dataset 'seed'"
    assert list(study.table.columns) == list(TABLE_COLUMNS)
    assert len(study.table) == 16
    assert study.cells() == [(SEED, "tumor_volume"), (SEED, "survival"), (SEED, "nk_lysis"),
                             (SEED, "ifn_gamma")]
    expected = {  # endpoint: (kind, better, day, unit, cohort, values, sds)
        "tumor_volume": ("positive", "lower", 21, "mm3", "in_vivo", [1500, 1350, 1100, 450],
                         [250, 200, 180, 100]),
        "survival": ("rate", "higher", 40, "%", "in_vivo", [0, 0, 20, 80], None),
        "nk_lysis": ("percent", "higher", 7, "% lysis", "splenocytes", [15, 25, 40, 75],
                     [3, 5, 8, 10]),
        "ifn_gamma": ("positive", "higher", 7, "pg/mL", "splenocytes", [50, 150, 500, 1200],
                      [10, 30, 80, 150]),
    }
    for endpoint, (kind, better, day, unit, cohort, values, sds) in expected.items():
        cell = study.cell(SEED, endpoint)
        assert list(cell["arm"]) == ["control", "imatinib", "IL-2", "imatinib+IL-2"]
        assert list(cell["agents"]) == [(), ("imatinib",), ("IL-2",), ("imatinib", "IL-2")]
        assert set(cell["kind"]) == {kind} and set(cell["better"]) == {better}
        assert set(cell["day"]) == {day} and set(cell["unit"]) == {unit}
        assert set(cell["cohort"]) == {cohort}
        column = "percent" if kind == "rate" else "mean"
        assert list(cell[column]) == values
        if sds is not None:
            assert list(cell["sd"]) == sds
        assert cell["se"].isna().all() and cell["n"].isna().all()
        assert study.agents(SEED, endpoint) == ("imatinib", "IL-2")
    tumour = study.cell(SEED, "tumor_volume")
    assert math.isnan(tumour["tgi"][0]) and list(tumour["tgi"][1:]) == [10, 26.7, 70]
    assert not study.n_known
    assert set(study.table["n_source"]) == {""}


def test_seed_dtypes():
    table = load_builtin().table
    for column in ("mean", "sd", "se", "n", "percent", "tgi", "day"):
        assert table[column].dtype == "float64", column
    assert table["row"].dtype == "int64"
    assert list(table["row"]) == list(range(1, 17))


def test_seed_provenance_says_what_is_missing():
    prov = load_builtin().provenance
    assert prov["schema_version"] == 1 and prov["name"] == "seed"
    assert prov["source"]["file"] == "000_6651c19048ff1cfd.txt"
    assert "BenchChem" in prov["source"]["author"]
    missing = " ".join(prov["missing"])
    assert "n " in missing and "SD or an SE" in missing and "splenocyte" in missing
    assert "not a primary" in prov["caveat"]
    assert "derived" in prov["mapping"]["tumor_volume"]


def test_seed_tgi_checks_are_all_ok():
    checks = consistency_checks(load_builtin())
    assert all(isinstance(c, Check) for c in checks)
    tgi = [c for c in checks if c.name == "tgi"]
    assert [c.message for c in tgi] == [
        "tumor_volume imatinib: reported TGI 10.0% vs 10.0% computed from the means (ok)",
        "tumor_volume IL-2: reported TGI 26.7% vs 26.7% computed from the means (ok)",
        "tumor_volume imatinib+IL-2: reported TGI 70.0% vs 70.0% computed from the means (ok)",
    ]
    assert {c.status for c in tgi} == {"ok"}
    derived = [c for c in checks if c.name == "tgi_derived"]
    assert derived == [Check("tgi_derived", "info",
                             "TGI is derived from the means and is not used as data")]


def test_seed_n_and_survival_checks():
    checks = {c.name: c for c in consistency_checks(load_builtin())}
    assert checks["n"].status == "info"
    assert "unreported in all 16 rows" in checks["n"].message
    rate = checks["rate_n"]
    assert rate.status == "info"
    assert ("survival percentages 0, 0, 20, 80% are whole animals only for n in "
            "{5, 10, 15, 20, 25, 30}") in rate.message


def test_tgi_mismatch_warns():
    checks = [c for c in consistency_checks(read_study(FIXTURES / "tgi_mismatch.csv"))
              if c.name == "tgi"]
    assert [c.status for c in checks] == ["ok", "warn", "ok"]
    assert checks[1].message == ("tumor_volume IL-2: reported TGI 40.0% vs 26.7% computed from "
                                 "the means (off by 13.3 points)")
    assert "70.4% vs 70.0%" in checks[2].message   # within rounding slack


# --------------------------------------------------------------------------- hash

def test_data_hash_is_stable_and_follows_content(tmp_path):
    source = FIXTURES / "two_studies.csv"
    raw = source.read_bytes()
    first, second = read_study(source), read_study(str(source))
    assert first.data_hash == second.data_hash == "sha256:" + hashlib.sha256(raw).hexdigest()
    changed = write(tmp_path, raw.decode().replace("1500,250", "1501,250"), "two_studies.csv")
    assert read_study(changed).data_hash != first.data_hash
    assert load_builtin().data_hash == load_builtin().data_hash


# --------------------------------------------------------------------------- order

def _shuffled_keeping_single_order(lines: list[str], seed: int) -> list[str]:
    """Shuffle data lines, then put the single-agent lines back in their original order."""
    def single(line):
        agents = line.split(",")[2]
        return "+" not in agents and agents.lower() not in ("vehicle", "naive", "")
    shuffled = lines[:]
    random.Random(seed).shuffle(shuffled)
    singles = iter([line for line in lines if single(line)])
    return [next(singles) if single(line) else line for line in shuffled]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canonical_order_does_not_depend_on_row_order(tmp_path, seed):
    from importlib import resources
    text = resources.files("bayes").joinpath("datasets", "seed.csv").read_text(encoding="utf-8")
    header, *lines = text.splitlines()
    shuffled = _shuffled_keeping_single_order(lines, seed)
    assert shuffled != lines
    study = read_study(write(tmp_path, "\n".join([header, *shuffled]) + "\n"))
    seed_study = load_builtin()
    assert sorted(study.cells()) == sorted(seed_study.cells())
    for study_name, endpoint in seed_study.cells():
        got = study.cell(study_name, endpoint).drop(columns="row")
        want = seed_study.cell(study_name, endpoint).drop(columns="row")
        pd.testing.assert_frame_equal(got, want)
        assert list(got.index) == [0, 1, 2, 3]


def test_agent_order_follows_the_single_agent_rows():
    study = read_study(FIXTURES / "two_agent_other.csv")
    assert study.agents("other_study", "tumor_weight") == ("drugB", "drugA")
    assert list(study.cell("other_study", "ki67")["arm"]) == ["control", "drugB", "drugA",
                                                              "drugB+drugA"]
    # "drugA + drugB" as written: whitespace trimmed, agents reordered canonically
    assert study.cell("other_study", "tumor_weight")["agents"][3] == ("drugB", "drugA")


def test_two_studies_keep_their_own_order():
    study = read_study(FIXTURES / "two_studies.csv")
    assert study.cells() == [("lab_one", "tumor_volume"), ("lab_two", "tumor_volume")]
    assert study.agents("lab_one", "tumor_volume") == ("imatinib", "IL-2")
    assert study.agents("lab_two", "tumor_volume") == ("IL-2", "imatinib")
    two = study.cell("lab_two", "tumor_volume")
    assert list(two["arm"]) == ["control", "IL-2", "imatinib", "IL-2+imatinib"]
    assert list(two["mean"]) == [900, 700, 850, 300]
    assert list(two["row"]) == [5, 7, 8, 6]
    assert not study.n_known
    with pytest.raises(KeyError, match="lab_three"):
        study.cell("lab_three", "tumor_volume")


def test_three_agents_order_combinations_by_size(tmp_path):
    rows = ["A+B+C", "B+C", "C", "", "A", "A+C", "B", "A+B"]
    text = "endpoint,agents,mean,sd\n" + "".join(f"tumor_volume,{a},10,1\n" for a in rows)
    cell = read_study(write(tmp_path, text)).cell("table", "tumor_volume")
    assert list(cell["arm"]) == ["control", "C", "A", "B", "C+A", "C+B", "A+B", "C+A+B"]


# --------------------------------------------------------------------------- normalising

@pytest.mark.parametrize("alias", ["", "vehicle", "Vehicle", "CONTROL", "none", "Untreated", "naive"])
def test_control_aliases(tmp_path, alias):
    text = ("endpoint,agents,mean,sd\n"
            f"tumor_volume,{alias},1500,250\ntumor_volume,x,1200,200\n"
            "tumor_volume,y,1100,200\ntumor_volume,x+y,500,100\n")
    cell = read_study(write(tmp_path, text)).cell("table", "tumor_volume")
    assert cell["arm"][0] == "control" and cell["agents"][0] == ()
    assert cell["mean"][0] == 1500


def test_study_defaults_to_the_file_stem(tmp_path):
    text = "endpoint,agents,percent\nsurvival,,0\nsurvival,a,10\nsurvival,b,20\nsurvival,a+b,50\n"
    study = read_study(write(tmp_path, text, "My Study.csv"))
    assert study.cells() == [("My Study", "survival")]
    assert study.provenance == {}


def test_header_is_case_and_space_insensitive(tmp_path):
    text = (" Endpoint , AGENTS ,Mean, SD \n"
            "tumor_volume,vehicle,1500,250\ntumor_volume,a,1200,200\n"
            "tumor_volume,b,1100,200\ntumor_volume,a+b,500,100\n")
    assert list(read_study(write(tmp_path, text)).table["sd"]) == [250, 200, 200, 100]


def _one_cell(tmp_path, sd_se_n: list[tuple[str, str, str]]) -> pd.DataFrame:
    arms = ["vehicle", "a", "b", "a+b"]
    text = "endpoint,agents,mean,sd,se,n\n" + "".join(
        f"tumor_volume,{arm},100,{sd},{se},{n}\n" for arm, (sd, se, n) in zip(arms, sd_se_n))
    return read_study(write(tmp_path, text)).cell("table", "tumor_volume")


def test_n_implied_by_sd_and_se(tmp_path):
    cell = _one_cell(tmp_path, [("10", "3.16", ""),   # (sd/se)^2 = 10.01 -> 10
                                ("10", "3.3", ""),    # 9.18 -> 9 (within 10%)
                                ("10", "6.3", ""),    # 2.52 -> not near a whole number
                                ("10", "", "")])      # only sd
    assert list(cell["n"][:2]) == [10, 9]
    assert cell["n"][2:].isna().all()
    assert list(cell["n_source"]) == ["implied by sd/se", "implied by sd/se", "", ""]


def test_n_reported_and_consistent_sd_se_kept_as_given(tmp_path):
    cell = _one_cell(tmp_path, [("10", "3.2", "10"), ("", "3", "8"), ("9", "", "8"), ("10", "", "8")])
    assert list(cell["n"]) == [10, 8, 8, 8]
    assert set(cell["n_source"]) == {"reported"}
    assert math.isnan(cell["sd"][1]) and math.isnan(cell["se"][2])   # never filled in


def test_kind_and_better_default_from_known_endpoints(tmp_path):
    rows = []
    for endpoint, value in [("Tumour Volume", "mean"), ("survival", "percent"),
                            ("NK-lysis", "mean"), ("ifn_gamma", "mean")]:
        for arm, number in [("", "10"), ("a", "20"), ("b", "30"), ("a+b", "40")]:
            mean, percent = (number, "") if value == "mean" else ("", number)
            rows.append(f"{endpoint},{arm},{mean},{'2' if mean else ''},{percent}\n")
    study = read_study(write(tmp_path, "endpoint,agents,mean,sd,percent\n" + "".join(rows)))
    kinds = {e: (study.cell("table", e)["kind"][0], study.cell("table", e)["better"][0])
             for _, e in study.cells()}
    assert kinds == {"Tumour Volume": ("positive", "lower"), "survival": ("rate", "higher"),
                     "NK-lysis": ("percent", "higher"), "ifn_gamma": ("positive", "higher")}


def test_given_kind_and_better_override_the_defaults(tmp_path):
    text = ("endpoint,agents,mean,sd,kind,better\n"
            "tumor_volume,,10,2,Percent,HIGHER\ntumor_volume,a,20,2,,\n"
            "tumor_volume,b,30,2,percent,higher\ntumor_volume,a+b,40,2,percent,higher\n")
    with pytest.raises(InputError, match=r"row 2 .*column 'kind': .*kind 'positive' differs from kind 'percent' in row 1"):
        read_study(write(tmp_path, text))   # an empty kind falls back to the default: mixed kinds
    fixed = read_study(write(tmp_path, text.replace("a,20,2,,", "a,20,2,percent,higher")))
    cell = fixed.cell("table", "tumor_volume")
    assert set(cell["kind"]) == {"percent"} and set(cell["better"]) == {"higher"}


def test_unknown_endpoint_with_kind_and_better(tmp_path):
    text = ("endpoint,agents,mean,sd,kind,better,unit\n"
            "body_weight,,20,2,positive,higher,g\nbody_weight,a,19,2,positive,higher,\n"
            "body_weight,b,18,2,positive,higher,\nbody_weight,a+b,17,2,positive,higher,\n")
    cell = read_study(write(tmp_path, text)).cell("table", "body_weight")
    assert set(cell["unit"]) == {"g"}                       # filled from the cell
    assert set(cell["cohort"]) == {"body_weight"}           # default: the endpoint name
    assert cell["day"].isna().all()


def test_template_loads_and_rows_point_at_file_lines():
    path = Path(bayes.data.__file__).parent / "templates" / "study.csv"
    assert path.read_text() == bayes.data.template_text()
    study = read_study(path)
    lines = path.read_text().splitlines()
    assert len(study.table) == 8
    for rec in study.table.itertuples():
        line = lines[rec.row]                   # row r is file line r + 1 (0-based index r)
        assert line.split(",")[1] == rec.endpoint
    assert study.table["row"].iloc[0] == 17 and study.table["row"].iloc[4] == 23


def test_two_agent_other_fixture():
    study = read_study(FIXTURES / "two_agent_other.csv")
    weight = study.cell("other_study", "tumor_weight")
    assert list(weight["se"]) == [0.21, 0.18, 0.15, 0.10] and weight["sd"].isna().all()
    assert set(weight["kind"]) == {"positive"} and set(weight["unit"]) == {"g"}
    assert set(study.cell("other_study", "ki67")["cohort"]) == {"ki67"}
    assert study.n_known                                # survival borrows n = 8 from its cohort
    survival = study.cell("other_study", "survival")
    assert list(survival["n"]) == [8.0] * 4 and set(survival["n_source"]) == {"shared in cohort"}
    checks = [c for c in consistency_checks(study) if c.name == "rate_n"]
    assert [c.status for c in checks] == ["ok"] * 4    # n = 8 from the cohort's tumor_weight rows
    assert checks[0].message == "survival control: 12.5% of n = 8 is 1.0 animals (ok)"
    n_check = next(c for c in consistency_checks(study) if c.name == "n")
    assert n_check.message == ("n is reported in 8 of 12 rows, implied by sd/se in 0, taken from "
                               "another endpoint of the same cohort in 4; n is known everywhere")


def test_cohort_n_conflict_warns(tmp_path):
    text = ("endpoint,agents,mean,sd,n,percent,cohort\n"
            "tumor_volume,,100,10,10,,mice\ntumor_volume,a,90,10,10,,mice\n"
            "tumor_volume,b,80,10,10,,mice\ntumor_volume,a+b,50,10,10,,mice\n"
            "survival,,,,10,0,mice\nsurvival,a,,,10,10,mice\n"
            "survival,b,,,9,33.3,mice\nsurvival,a+b,,,10,50,mice\n")
    checks = consistency_checks(read_study(write(tmp_path, text)))
    conflict = [c for c in checks if c.name == "cohort_n"]
    assert len(conflict) == 1 and conflict[0].status == "warn"
    assert "arm b: n differs between endpoints (9, 10)" in conflict[0].message
    assert checks[[c.name for c in checks].index("n")].message.endswith("n is known everywhere")


def test_rate_percentages_matching_no_n_warn(tmp_path):
    text = "endpoint,agents,percent\nsurvival,,0\nsurvival,a,33.3\nsurvival,b,20\nsurvival,a+b,12.5\n"
    rate = [c for c in consistency_checks(read_study(write(tmp_path, text))) if c.name == "rate_n"]
    assert rate[0].status == "warn"
    assert "percentages 0, 33.3, 20, 12.5% are not whole animals for any single n in 2-30" \
        in rate[0].message


# --------------------------------------------------------------------------- compatible_n

@pytest.mark.parametrize("percents, expected", [
    ([0, 0, 20, 80], [5, 10, 15, 20, 25, 30]),
    ([50], list(range(2, 31, 2))),
    ([33.3], [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]),
    ([12.5, 50], [8, 16, 24]),
    ([0, 100], list(range(2, 31))),
    ([33.3, 50], [6, 12, 18, 24, 30]),
])
def test_compatible_n(percents, expected):
    assert compatible_n(percents) == expected


def test_compatible_n_range_and_tolerance():
    assert compatible_n([20], n_range=range(2, 11)) == [5, 10]
    assert compatible_n([21], n_range=range(2, 11), tol_pp=0.5) == []
    assert compatible_n([21], n_range=range(2, 11), tol_pp=1.0) == [5, 10]


def test_study_is_frozen():
    study = load_builtin()
    assert isinstance(study, Study)
    with pytest.raises(AttributeError):
        study.source = "elsewhere"


def test_write_template_never_overwrites(tmp_path):
    target = tmp_path / "my_study.csv"
    bayes.data.write_template(target)
    assert read_study(target).cells() == [("my_study", "tumor_volume"), ("my_study", "survival")]
    target.write_text("my own edits\n")
    with pytest.raises(InputError, match="already exists") as err:
        bayes.data.write_template(target)
    assert "overwrite=True" in str(err.value)
    assert target.read_text() == "my own edits\n"             # nothing lost
    bayes.data.write_template(target, overwrite=True)
    assert target.read_text() == bayes.data.template_text()
    assert [p.name for p in tmp_path.iterdir()] == ["my_study.csv"]   # no temporary file left


def test_combine_studies_pools_tables_and_refuses_label_clashes(tmp_path):
    seed = load_builtin("seed")
    other = read_study(FIXTURES / "two_agent_other.csv")
    pooled = bayes.data.combine_studies([seed, other])
    assert len(pooled.table) == len(seed.table) + len(other.table)
    assert set(pooled.table["study"]) == set(seed.table["study"]) | set(other.table["study"])
    assert pooled.data_hash.startswith("sha256:") and pooled.data_hash not in (seed.data_hash, other.data_hash)
    assert [p["data_hash"] for p in pooled.provenance["pooled"]] == [seed.data_hash, other.data_hash]
    assert pooled.source == f"{seed.source} + {other.source}"
    with pytest.raises(InputError, match="also used by") as err:
        bayes.data.combine_studies([seed, seed])
    assert "column 'study'" in str(err.value)
    with pytest.raises(ValueError, match="at least two"):
        bayes.data.combine_studies([seed])


def test_study_repr_is_one_line():
    study = load_builtin("seed")
    assert repr(study) == f"<Study built-in dataset 'seed': 16 rows, 4 study x endpoint cells, {study.data_hash[:19]}>"


def test_select_keeps_some_endpoints_and_says_so():
    seed = load_builtin("seed")
    part = seed.select(endpoints=["tumor_volume", "survival"])
    assert part.cells() == [("imatinib_il2_melanoma", "tumor_volume"), ("imatinib_il2_melanoma", "survival")]
    assert len(part.table) == 8 and part.table.index.tolist() == list(range(8))
    assert part.source.endswith("[endpoint tumor_volume+survival]") and part.data_hash != seed.data_hash
    assert seed.select() is seed
    assert seed.select(studies="imatinib_il2_melanoma", endpoints="nk_lysis").cells() == [
        ("imatinib_il2_melanoma", "nk_lysis")]
    with pytest.raises(InputError, match="no endpoint named 'tumour'") as err:
        seed.select(endpoints=["tumour"])
    assert "valid: tumor_volume, survival, nk_lysis, ifn_gamma" in str(err.value)
