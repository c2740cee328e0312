"""Named prior sets: load, validate, merge and turn into PyMC variables.

A prior is a small declarative object in the dict form pymc-extras uses
(``{"dist": "Normal", "kwargs": {"mu": 0, "sigma": 1}}``; a kwarg may itself
be such a dict, giving a hierarchical prior).  We keep our own ~100-line
loader instead of ``pymc_extras.prior.Prior`` because pymc-extras 0.15.1
(the newest release) pins ``pymc<6.4`` and we build on PyMC 6.4; the format
is the same, so moving over later is a one-line change.

A prior set is a YAML file in ``bayes/priors/`` (or anywhere, by path) with a
``schema_version``, a description and, per model parameter, the prior and a
sentence saying why.  Precedence: user overrides > the chosen file > the
package default.  This module does no sampling.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bayes.errors import InputError

SCHEMA_VERSION = 1

# Distributions a prior file may name; all are continuous and take only
# numeric or nested-prior keyword arguments.
ALLOWED_DISTS = (
    "Normal", "HalfNormal", "StudentT", "HalfStudentT", "LogNormal", "Exponential",
    "Gamma", "InverseGamma", "Cauchy", "HalfCauchy", "Laplace", "Beta", "Uniform",
    "TruncatedNormal",
)
# Families whose ``mu`` is a pure location (X + c has the law with mu + c): see Prior.create_variable.
LOCATION_FAMILIES = ("Normal", "StudentT", "Laplace")

# Suffix of the pm.Data holding a prior's numeric parameter (see Prior.create_variable).
PRIOR_DATA_SUFFIX = "__prior"


def prior_values(model) -> dict[str, Any]:
    """The prior parameters held as data in ``model``, by name (for ``with_data``)."""
    return {v.name: v.get_value() for v in model.data_vars if v.name.endswith(PRIOR_DATA_SUFFIX)}


# Parameters every model family reads; files may add more for later models.
REQUIRED_PARAMETERS = ("baseline", "agent_effect", "interaction", "sd_log", "baseline_logit",
                       "agent_effect_logit", "interaction_logit", "precision", "synergy_mean",
                       "synergy_sd", "study_sd")


@dataclass(frozen=True)
class Prior:
    """One prior distribution, round-trippable through :meth:`to_dict`."""

    dist: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist,
                "kwargs": {k: v.to_dict() if isinstance(v, Prior) else v
                           for k, v in self.kwargs.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "prior") -> "Prior":
        if not isinstance(data, dict) or "dist" not in data:
            raise ValueError(f"{where}: expected a mapping with 'dist' and 'kwargs'")
        unknown = set(data) - {"dist", "kwargs"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid: dist, kwargs")
        dist = data["dist"]
        if dist not in ALLOWED_DISTS:
            raise ValueError(f"{where}: unknown distribution {dist!r}; valid: {', '.join(ALLOWED_DISTS)}")
        kwargs = {}
        for key, value in (data.get("kwargs") or {}).items():
            if isinstance(value, dict):
                kwargs[key] = cls.from_dict(value, where=f"{where}.{key}")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                kwargs[key] = float(value)
            else:
                raise ValueError(f"{where}.{key}: {value!r} is not a number or a prior")
        prior = cls(dist, kwargs)
        prior._check_signature(where)
        return prior

    def _check_signature(self, where: str) -> None:
        import inspect

        import pymc as pm

        dist = getattr(pm, self.dist)
        params = inspect.signature(dist.dist).parameters.values()
        valid = [p.name for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.name not in ("cls", "size", "shape", "rng", "dims", "observed")]
        unknown = [k for k in self.kwargs if k not in valid]
        if unknown:
            raise ValueError(f"{where}: {self.dist} has no parameter {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(valid)}")
        numeric = {k: (1.0 if isinstance(v, Prior) else v) for k, v in self.kwargs.items()}
        try:
            dist.dist(**numeric)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {self.dist}({', '.join(self.kwargs)}) is not valid: {err}") from None

    @property
    def shiftable(self) -> bool:
        """Whether :meth:`create_variable` can move this prior by a ``shift``
        (a location family: X + c has the same law with ``mu`` + c)."""
        return self.dist in LOCATION_FAMILIES

    def create_variable(self, name: str, *, dims=None, shift=None):
        """Add this prior to the model on the context stack as ``name``.

        Numeric parameters enter as ``pm.Data`` named ``<name>_<kwarg>__prior``
        rather than as constants, so a model compiled under one prior set is
        re-used under another of the same shape (same distributions) by
        swapping values (:func:`prior_values`), never recompiled.

        ``shift`` (a tensor; location families only, :attr:`shiftable`): the
        variable is ``X + shift`` with X following this prior, i.e. its
        ``mu`` is moved by ``shift``.
        """
        import numpy as np
        import pymc as pm

        kwargs = {k: v.create_variable(f"{name}_{k}") if isinstance(v, Prior)
                  else pm.Data(f"{name}_{k}{PRIOR_DATA_SUFFIX}", np.asarray(v, dtype=float))
                  for k, v in self.kwargs.items()}
        if shift is not None:
            if not self.shiftable:
                raise ValueError(f"{self.dist} is not a location family ({', '.join(LOCATION_FAMILIES)}): "
                                 "it cannot be shifted")
            kwargs["mu"] = kwargs.get("mu", 0.0) + shift
        return getattr(pm, self.dist)(name, **kwargs, dims=dims)

    def signature(self) -> dict[str, Any]:
        """The distribution and nesting without the numbers (what a compiled model depends on)."""
        return {"dist": self.dist,
                "kwargs": {k: v.signature() if isinstance(v, Prior) else "#" for k, v in self.kwargs.items()}}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" if not isinstance(v, float) else f"{k}={v:g}"
                         for k, v in self.kwargs.items())
        return f"{self.dist}({args})"


@dataclass(frozen=True)
class PriorSet:
    """A named, justified set of priors keyed by model parameter."""

    name: str
    description: str
    priors: dict[str, Prior]
    why: dict[str, str]
    source: str

    def __getitem__(self, parameter: str) -> Prior:
        return self.priors[parameter]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "name": self.name,
                "description": self.description,
                "priors": {k: {"prior": p.to_dict(), "why": self.why.get(k, "")}
                           for k, p in self.priors.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> "PriorSet":
        """Inverse of :meth:`to_dict` (e.g. the set stamped in a run's metadata)."""
        return _parse_prior_set(data, source, require_all=False)

    @property
    def hash(self) -> str:
        text = json.dumps(self.to_dict()["priors"], sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def shape_hash(self) -> str:
        """Hash of the distributions only: prior sets sharing it share compiled models."""
        text = json.dumps({k: p.signature() for k, p in self.priors.items()}, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def with_overrides(self, overrides: dict[str, dict[str, Any]], *, source: str = "user") -> "PriorSet":
        """Return a copy in which ``overrides`` (parameter -> prior dict) win."""
        priors = dict(self.priors)
        why = dict(self.why)
        for key, value in overrides.items():
            if key not in priors:
                raise InputError(source, f"unknown prior parameter {key!r}",
                                 valid=", ".join(sorted(priors)))
            try:
                priors[key] = Prior.from_dict(value, where=key)
            except ValueError as err:
                raise InputError(source, str(err)) from None
            why[key] = f"set by {source}"
        return PriorSet(self.name if source == "user" else f"{self.name}+{Path(source).stem}",
                        self.description, priors, why, f"{self.source} + {source}")

    def lines(self) -> list[str]:
        """Readable one-line-per-parameter listing for printing with results."""
        return [f"{k:<13} ~ {p}" for k, p in self.priors.items()]


def builtin_prior_sets() -> list[str]:
    folder = resources.files("bayes") / "priors"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, source: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(source, f"not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise InputError(source, "a prior file must be a mapping with 'schema_version' and 'priors'")
    return data


def _parse_prior_set(data: dict, source: str, *, require_all: bool) -> PriorSet:
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(source, f"schema_version is {version!r}", column="schema_version",
                         valid=str(SCHEMA_VERSION))
    entries = data.get("priors")
    if not isinstance(entries, dict):
        raise InputError(source, "missing 'priors' mapping", column="priors")
    priors, why = {}, {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "prior" not in entry:
            raise InputError(source, f"priors.{key} needs 'prior' (and 'why')", column=f"priors.{key}")
        try:
            priors[key] = Prior.from_dict(entry["prior"], where=f"priors.{key}")
        except ValueError as err:
            raise InputError(source, str(err), column=f"priors.{key}") from None
        why[key] = " ".join(str(entry.get("why", "")).split())
    missing = [k for k in REQUIRED_PARAMETERS if k not in priors]
    if require_all and missing:
        raise InputError(source, f"missing prior(s) for {', '.join(missing)}", column="priors",
                         valid="every one of " + ", ".join(REQUIRED_PARAMETERS))
    return PriorSet(str(data.get("name", Path(source).stem)), " ".join(str(data.get("description", "")).split()),
                    priors, why, source)


def load_prior_set(name_or_path: str | Path = "default") -> PriorSet:
    """Load a built-in prior set by name, or a YAML file by path.

    A file by path may give only some parameters: the rest come from the
    package default (precedence file > default).
    """
    text_path = Path(name_or_path)
    if text_path.suffix in (".yaml", ".yml") or text_path.exists():
        if not text_path.exists():
            raise InputError(str(text_path), "prior file not found",
                             valid=f"a YAML path or one of {', '.join(builtin_prior_sets())}")
        data = _read_yaml(text_path.read_text(), str(text_path))
        user = _parse_prior_set(data, str(text_path), require_all=False)
        base = load_prior_set("default")
        merged = base.with_overrides({k: p.to_dict() for k, p in user.priors.items()}, source=str(text_path))
        why = {**merged.why, **{k: v for k, v in user.why.items() if v}}
        return PriorSet(user.name, user.description or base.description, merged.priors, why, str(text_path))
    name = str(name_or_path)
    if name not in builtin_prior_sets():
        raise InputError(name, "no such prior set", valid=", ".join(builtin_prior_sets()) + " or a YAML path")
    resource = resources.files("bayes") / "priors" / f"{name}.yaml"
    return _parse_prior_set(_read_yaml(resource.read_text(), f"priors/{name}.yaml"),
                            f"priors/{name}.yaml", require_all=True)

