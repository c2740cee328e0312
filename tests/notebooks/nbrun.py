"""Run the notebooks the way the test suite does, or rebuild each .ipynb from its text twin.

    python tests/notebooks/nbrun.py run OUT_DIR NAME...   execute notebooks/NAME.ipynb, one at a time
    python tests/notebooks/nbrun.py sync                  notebooks/*.py -> notebooks/*.ipynb, no outputs

``run`` executes each notebook in a fresh IPython kernel with ``BAYES_QUICK=1``
(the library's reduced-draws setting, see ``bayes.config``) and with every
Python warning turned into an error by one injected first cell, in its own
working folder ``OUT_DIR/NAME-cwd`` so nothing is written into the clone.  For
each notebook it writes the executed copy ``OUT_DIR/NAME.ipynb`` and then
``OUT_DIR/NAME.json`` (``{"ok", "error", "seconds"}``) as soon as that
notebook finishes, so a test can wait for one notebook while the others run.

The text twin ``notebooks/NAME.py`` (jupytext percent format) is the reviewed
source; ``sync`` regenerates the outputs-free ``.ipynb`` from it (written
atomically).  The suite checks the two never drift (``test_notebooks.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
FORMAT = "py:percent"
KERNEL = "python3"
CELL_TIMEOUT = 900        # seconds; a cell that compiles several models needs a few minutes on 2 cores

# Run before the notebook's own first cell.  Every warning raised while a cell
# runs becomes an exception, so it fails the notebook unless it is named here.
# One is named, and it is not raised by a notebook cell: ipykernel 7.4's own
# shutdown handler warns that its do_shutdown is not a coroutine, after the
# last cell has run.
SETUP = """\
import warnings
warnings.simplefilter("error")
warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="ipykernel")
"""


def ipynb_text(py_path: Path) -> str:
    """The outputs-free .ipynb that belongs to a text twin."""
    import jupytext
    import nbformat

    nb = jupytext.read(py_path, fmt=FORMAT)
    for i, cell in enumerate(nb.cells):     # stable ids, so the same text gives the same file
        cell.id = f"cell-{i:03d}"
    return nbformat.writes(nb) + "\n"


def sync() -> list[Path]:
    written = []
    for py in sorted(NOTEBOOKS.glob("*.py")):
        target = py.with_suffix(".ipynb")
        text = ipynb_text(py)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        written.append(target)
    return written


def execute(name: str, out_dir: Path) -> dict:
    """Execute notebooks/NAME.ipynb; write OUT_DIR/NAME.ipynb and OUT_DIR/NAME.json."""
    import nbformat
    from nbclient import NotebookClient

    start = time.perf_counter()
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP, metadata={"tags": ["injected-by-test"]}))
    cwd = out_dir / f"{name}-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BAYES_QUICK": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(cwd)}})
    status = {"name": name, "ok": True, "error": ""}
    try:
        client.execute(env=env)
    except Exception as exc:   # a failing cell: keep the partial notebook and the message
        status.update(ok=False, error="".join(traceback.format_exception_only(exc)).strip())
    status["seconds"] = round(time.perf_counter() - start, 1)
    nbformat.write(nb, out_dir / f"{name}.ipynb")
    tmp = out_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, out_dir / f"{name}.json")
    return status


def main(argv: list[str]) -> int:
    if argv[:1] == ["sync"]:
        for path in sync():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if len(argv) >= 3 and argv[0] == "run":
        if os.environ.get("NBRUN_NICE"):
            os.nice(int(os.environ["NBRUN_NICE"]))
        out_dir = Path(argv[1])
        out_dir.mkdir(parents=True, exist_ok=True)
        failed = 0
        for name in argv[2:]:
            status = execute(name, out_dir)
            print(f"{name}: {'ok' if status['ok'] else 'FAILED'} in {status['seconds']} s", flush=True)
            failed += not status["ok"]
        return 1 if failed else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
