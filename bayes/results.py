"""The fitted result: what it holds, how it is saved, loaded and printed.

A :class:`FitResult` holds the posterior of every fitted cell as one nested
ArviZ DataTree (``tree["<study>/<endpoint>"]`` is an ordinary ArviZ tree with
``posterior``, ``sample_stats``, ``observed_data`` and ``constant_data``), the
score table, the diagnostics, the arm-level fit check and the run's metadata
(package version, data hash, priors, sampler settings, n treatment).

Saving writes every file through a temporary name and an atomic rename, and
refuses to replace earlier results unless asked.  Loading checks the stamp.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from bayes.errors import BayesError

FILES = ("posterior.nc", "synergy.csv", "diagnostics.csv", "arms.csv", "n_posterior.csv",
         "n_sensitivity.csv", "run.json", "summary.txt")


def retry_text(value) -> str:
    """A diagnostics table's ``retry`` note (:func:`bayes.sampling.diagnostics_frame`),
    or ""; a table read back from CSV has NaN where no fit was sampled again."""
    return value if isinstance(value, str) else ""


def node_name(study: str, endpoint: str) -> str:
    """Tree path of one cell; '/' inside names would make a deeper path."""
    return f"{study.replace('/', '_')}/{endpoint.replace('/', '_')}"


@dataclass
class FitResult:
    tree: xr.DataTree
    synergy: pd.DataFrame
    diagnostics: pd.DataFrame
    arms: pd.DataFrame
    metadata: dict
    n_posterior: pd.DataFrame = field(default_factory=pd.DataFrame)
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    checks: list[tuple[str, str, str]] = field(default_factory=list)
    # (ModelSpec, raw sampled tree) per sampled model, for model comparison and
    # sensitivity in the same session; not saved (the split trees above are).
    fits: list = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        """True when every fit passed the diagnostics gate."""
        return bool(self.diagnostics.empty or self.diagnostics["passed"].all())

    def cell(self, study: str, endpoint: str) -> xr.DataTree:
        """The ArviZ tree of one fitted cell (posterior, sample_stats, ...)."""
        return self.tree[node_name(study, endpoint)]

    def save(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
        out = Path(out_dir)
        existing = [f for f in FILES if (out / f).exists()]
        if existing and not overwrite:
            raise BayesError(f"{out} already holds results ({', '.join(existing)}); "
                             "pass --force (overwrite=True) to replace them, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        tree = self.tree.copy()
        tree.attrs = {"bayes_metadata": json.dumps(self.metadata)}
        write_atomic(out / "posterior.nc", lambda p: tree.to_netcdf(p, engine="h5netcdf"))
        for name, frame in (("synergy.csv", self.synergy), ("diagnostics.csv", self.diagnostics),
                            ("arms.csv", self.arms), ("n_posterior.csv", self.n_posterior),
                            ("n_sensitivity.csv", self.sensitivity)):
            if name == "n_sensitivity.csv" and frame.empty:
                continue
            write_atomic(out / name, lambda p, f=frame: f.to_csv(p, index=False, float_format="%.6g"))
        payload = {**self.metadata, "checks": self.checks}
        write_atomic(out / "run.json", lambda p: Path(p).write_text(json.dumps(payload, indent=2)))
        write_atomic(out / "summary.txt", lambda p: Path(p).write_text(self.format() + "\n"))
        return out

    def format(self) -> str:
        from bayes.summary import format_result

        return format_result(self)

    def __str__(self) -> str:
        return self.format()


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_result(out_dir: str | os.PathLike, *, with_posterior: bool = True) -> FitResult:
    """Read a saved result back without refitting."""
    out = Path(out_dir)
    missing = [f for f in ("run.json", "synergy.csv", "diagnostics.csv") if not (out / f).exists()]
    if missing:
        raise BayesError(f"{out} is not a bayes result folder (missing {', '.join(missing)}); "
                         "create one with 'bayes fit --out DIR'")
    payload = json.loads((out / "run.json").read_text())
    checks = [tuple(c) for c in payload.pop("checks", [])]
    tree = xr.DataTree()
    if with_posterior and (out / "posterior.nc").exists():
        tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf").load()
        stamp = json.loads(tree.attrs.get("bayes_metadata", "{}"))
        if stamp.get("data_hash") != payload.get("data_hash"):
            raise BayesError(f"{out}/posterior.nc does not belong to {out}/run.json (data hashes differ)")

    def read(name: str) -> pd.DataFrame:
        if not (out / name).exists():
            return pd.DataFrame()
        frame = pd.read_csv(out / name, keep_default_na=False, na_values=[""])
        text = frame.select_dtypes(include=["object", "string"]).columns
        frame[text] = frame[text].fillna("")  # empty text stays text ("" problems of a passing fit)
        return frame

    return FitResult(tree=tree, synergy=read("synergy.csv"), diagnostics=read("diagnostics.csv"),
                     arms=read("arms.csv"), n_posterior=read("n_posterior.csv"),
                     sensitivity=read("n_sensitivity.csv"), metadata=payload,
                     checks=checks)
