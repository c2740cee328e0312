"""CLI commands that only read and write tables: template, check with pooled files."""

from __future__ import annotations

from pathlib import Path

from bayes.cli import EXIT_INPUT, EXIT_OK, main
from bayes.data import template_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_template_writes_once_then_refuses(tmp_path, capsys):
    target = tmp_path / "mine.csv"
    assert main(["template", str(target)]) == EXIT_OK
    assert target.read_text() == template_text()
    target.write_text("edited\n")
    assert main(["template", str(target)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert target.read_text() == "edited\n"
    assert main(["template", str(target), "--force"]) == EXIT_OK
    assert target.read_text() == template_text()


def test_check_pools_several_files_and_refuses_a_label_clash(tmp_path, capsys):
    mine = tmp_path / "mine.csv"
    main(["template", str(mine)])
    capsys.readouterr()
    assert main(["check", str(mine), str(FIXTURES / "two_agent_other.csv")]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{mine} + {FIXTURES / 'two_agent_other.csv'}: 20 rows, 5 study x endpoint cells")
    assert main(["check", str(mine), str(mine)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "study label 'my_study' is also used by" in err[0]
