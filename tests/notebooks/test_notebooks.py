"""The notebooks in notebooks/: text twins in sync, thin, and every one runs top to bottom.

Execution happens in a background process started when the session's tests
are collected (see ``tests/conftest.py``): each notebook runs in a fresh
kernel with ``BAYES_QUICK=1`` and warnings as errors (``nbrun.py``), while
the rest of the suite runs.  A test here waits only for its own notebook.
"""

from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest

import nbrun

NAMES = sorted(p.stem for p in nbrun.NOTEBOOKS.glob("*.py"))
EXPECTED = ("01_seed_walkthrough", "02_nk_link", "03_comparison_and_sensitivity", "04_your_own_study")

# Modules a notebook may import: the library, and pathlib/pandas for naming
# files and showing tables.  Everything computed or drawn comes from bayes.
ALLOWED_IMPORTS = {"bayes", "pathlib", "pandas"}
# stderr lines a kernel may print that are not problems.  None so far.
ALLOWED_STDERR: tuple[str, ...] = ()


def _code_cells(name: str) -> list[str]:
    nb = nbformat.read(nbrun.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_the_four_walkthroughs_exist_with_twins():
    assert set(EXPECTED) <= set(NAMES)
    assert sorted(p.stem for p in nbrun.NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_is_its_text_twin_without_outputs(name):
    ipynb = nbrun.NOTEBOOKS / f"{name}.ipynb"
    fix = "edit the .py twin and run: python tests/notebooks/nbrun.py sync"
    assert ipynb.read_text(encoding="utf-8") == nbrun.ipynb_text(ipynb.with_suffix(".py")), \
        f"{ipynb.name} has drifted from {name}.py (or carries outputs); {fix}"
    nb = nbformat.read(ipynb, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_thin(name):
    """Computation lives in the library: no functions, classes or plotting code in a notebook."""
    for source in _code_cells(name):
        tree = ast.parse(source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"{name}: define functions in the library, not in a notebook:\n{source}"
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_IMPORTS, f"{name}: imports {roots - ALLOWED_IMPORTS}:\n{source}"
        assert not re.search(r"\bplt\.|\.add_subplot\(|\.plot\(", source), f"{name}: draws by hand:\n{source}"


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, notebook_runs):
    status = notebook_runs(name)
    executed = nbformat.read(notebook_runs.out_dir / f"{name}.ipynb", as_version=4)
    assert status["ok"], f"{name} failed after {status['seconds']} s: {status['error']}"
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every cell ran"
    stderr = [out.text for c in code for out in c.outputs
              if out.output_type == "stream" and out.name == "stderr"]
    unexplained = [text for text in stderr if not any(ok in text for ok in ALLOWED_STDERR)]
    assert not unexplained, f"{name} printed to stderr:\n" + "\n".join(unexplained)
    images = [out for c in code for out in c.outputs if "image/png" in out.get("data", {})]
    assert images, f"{name} shows no figure"
    print(json.dumps({"notebook": name, "seconds": status["seconds"], "figures": len(images)}))
