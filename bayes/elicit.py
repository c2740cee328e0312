"""Turn an expert's statement into a prior, and into a prior file ``--priors`` accepts.

A statement is a range on the data scale with the probability the expert puts
on it: "imatinib alone changes tumour volume by -30% to +10%, with 90%
probability".  Each supported parameter has a Normal prior on its link scale,
so the statement becomes bounds on that scale (log 0.7 .. log 1.1 here), and
PreliZ's maximum-entropy fit (``preliz.maxent``) finds the Normal with the
requested mass between them.  The mass of the rounded prior between the
bounds is then recomputed independently (``scipy.stats.norm``) and the prior
is refused unless it matches the request within 1e-3.

Statements:

* ``--change LOW%..HIGH%`` -- a percent change of a positive endpoint (log
  link): ``baseline``, ``agent_effect``, ``interaction``;
* ``--percent LOW%..HIGH%`` -- a percentage under control (logit link):
  ``baseline_logit``;
* ``--odds-ratio LOW..HIGH`` -- an odds ratio (logit link):
  ``agent_effect_logit``, ``interaction_logit``.

Interactions are sign-aligned in a prior set (positive = synergy, see
:func:`bayes.models.builder.interaction_prior`), so an interaction statement
about the endpoint's values also needs ``better`` (``lower`` for tumour
volume, ``higher`` for survival) to say which direction is synergy.

The result is a partial prior file (one parameter) that
:func:`bayes.priors.load_prior_set` merges over the package default.  One
prior per parameter serves every agent and every endpoint with that link, so
an elicited ``agent_effect`` applies to all single agents on all positive
endpoints of the study: elicit for the endpoint a study actually measures.

CLI: ``bayes elicit PARAMETER --change=-30%..+10% --mass 0.9 [--out f.yaml]``
(:func:`add_parser` / :func:`run`).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from bayes.errors import BayesError
from bayes.priors import SCHEMA_VERSION, Prior

MASS_TOLERANCE = 1e-3
DIGITS = 6                        # decimals kept in mu and sigma (mass moves by ~1e-6)

# parameter -> (statement kind, link)
PARAMETERS = {
    "baseline": ("change", "log"),
    "agent_effect": ("change", "log"),
    "interaction": ("change", "log"),
    "baseline_logit": ("percent", "logit"),
    "agent_effect_logit": ("odds_ratio", "logit"),
    "interaction_logit": ("odds_ratio", "logit"),
}
SIGN_ALIGNED = ("interaction", "interaction_logit")
STATEMENT_FLAGS = {"change": "--change", "percent": "--percent", "odds_ratio": "--odds-ratio"}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*(%?)\s*(?:\.\.|,|\s+to\s+)\s*({_NUMBER})\s*(%?)\s*$")


@dataclass(frozen=True)
class Elicited:
    """An elicited Normal prior and the statement it came from."""

    parameter: str
    mu: float
    sigma: float
    lower: float            # bounds on the parameter's (sign-aligned) link scale
    upper: float
    mass: float             # requested mass between the bounds
    achieved_mass: float    # mass of the rounded prior between the bounds
    statement: str

    @property
    def prior(self) -> Prior:
        return Prior("Normal", {"mu": self.mu, "sigma": self.sigma})

    def why(self) -> str:
        return (f"Elicited: {self.statement}. Bounds {self.lower:.4f} .. {self.upper:.4f} on the "
                f"{'sign-aligned ' if self.parameter in SIGN_ALIGNED else ''}"
                f"{PARAMETERS[self.parameter][1]} scale; PreliZ maxent Normal with mass "
                f"{self.mass:g} between them (achieved {self.achieved_mass:.6f}).")

    def to_dict(self) -> dict:
        """A partial prior file (schema of bayes/priors/*.yaml) with this one parameter."""
        return {"schema_version": SCHEMA_VERSION, "name": f"elicited_{self.parameter}",
                "description": f"Default priors with {self.parameter} elicited from: {self.statement}.",
                "priors": {self.parameter: {"prior": self.prior.to_dict(), "why": self.why()}}}

    def to_yaml(self) -> str:
        """The partial prior file as YAML, laid out like bayes/priors/default.yaml."""
        data = self.to_dict()
        entry = data["priors"][self.parameter]
        prior = yaml.safe_dump(entry["prior"], default_flow_style=True, sort_keys=False).strip()

        def folded(text: str, indent: int) -> str:
            pad = " " * indent
            return "\n".join(textwrap.wrap(text, 88 - indent, initial_indent=pad, subsequent_indent=pad))

        return (f"# Elicited with bayes elicit (PreliZ maxent): {self.statement}\n"
                f"# {self.parameter} ~ {self.prior}; mass between the bounds {self.achieved_mass:.6f}\n"
                "# Use with --priors FILE: every other parameter comes from the default set.\n"
                f"schema_version: {data['schema_version']}\n"
                f"name: {data['name']}\n"
                f"description: >\n{folded(data['description'], 2)}\n"
                "priors:\n"
                f"  {self.parameter}:\n"
                f"    prior: {prior}\n"
                f"    why: >\n{folded(entry['why'], 6)}\n")


# --------------------------------------------------------------------------- parsing

def parse_range(text: str, *, percent: bool) -> tuple[float, float]:
    """``"-30%..+10%"`` -> (-30, 10); ``"0.5..4"`` -> (0.5, 4).

    ``percent`` says whether the values are percentages (a ``%`` sign is then
    optional) or plain numbers (a ``%`` sign is refused).  Separators: ``..``,
    ``,`` or `` to ``.
    """
    match = _RANGE.match(str(text))
    if not match:
        example = "-30%..+10%" if percent else "0.5..4"
        raise BayesError(f"cannot read the range {text!r}; write it like {example}")
    low, low_pct, high, high_pct = match.groups()
    if not percent and (low_pct or high_pct):
        raise BayesError(f"the range {text!r} is a ratio, not a percentage; write it like 0.5..4")
    low_v, high_v = float(low), float(high)
    if not low_v < high_v:
        raise BayesError(f"the range {text!r} needs low < high")
    return low_v, high_v


def _check_mass(mass: float) -> float:
    if not isinstance(mass, (int, float)) or not 0.0 < float(mass) < 1.0:
        raise BayesError(f"mass must be a probability strictly between 0 and 1 (e.g. 0.9), not {mass!r}")
    return float(mass)


def _sign_for(parameter: str, better: str | None) -> float:
    """+1 for parameters that are not sign-aligned; -s for interactions (s = +1 if lower is better)."""
    if parameter not in SIGN_ALIGNED:
        return 1.0
    if better not in ("lower", "higher"):
        raise BayesError(f"{parameter} is sign-aligned (positive = synergy): say whether lower or higher "
                         "values of the endpoint are better (--better lower|higher)")
    return -1.0 if better == "lower" else 1.0


def link_bounds(parameter: str, low: float, high: float, *, better: str | None = None) -> tuple[float, float]:
    """Data-scale bounds of a statement -> bounds on the parameter's link scale.

    ``change``: percent changes (-30, 10) -> (log 0.7, log 1.1); ``percent``:
    percentages (20, 60) -> (logit 0.2, logit 0.6); ``odds_ratio``: (0.5, 4)
    -> (log 0.5, log 4).  Interactions are then sign-aligned with ``better``.
    """
    if parameter not in PARAMETERS:
        raise BayesError(f"cannot elicit {parameter!r}; valid: {', '.join(PARAMETERS)}")
    kind, _ = PARAMETERS[parameter]
    if not low < high:
        raise BayesError(f"the range {low:g}..{high:g} needs low < high")
    if kind == "change":
        if low <= -100.0:
            raise BayesError(f"a change of {low:g}% is not possible for a positive value (need > -100%)")
        bounds = (math.log1p(low / 100.0), math.log1p(high / 100.0))
    elif kind == "percent":
        if not 0.0 < low < high < 100.0:
            raise BayesError(f"percentages {low:g}%..{high:g}% must lie strictly between 0% and 100%")
        bounds = (math.log(low / (100.0 - low)), math.log(high / (100.0 - high)))
    else:
        if low <= 0.0:
            raise BayesError(f"an odds ratio must be > 0, not {low:g}")
        bounds = (math.log(low), math.log(high))
    sign = _sign_for(parameter, better)
    return tuple(sorted(sign * b for b in bounds))


# --------------------------------------------------------------------------- fitting

def normal_mass(mu: float, sigma: float, lower: float, upper: float) -> float:
    """P(lower < X < upper) for X ~ Normal(mu, sigma) (scipy, independent of PreliZ)."""
    from scipy.stats import norm

    return float(norm.cdf(upper, mu, sigma) - norm.cdf(lower, mu, sigma))


def maxent_normal(lower: float, upper: float, mass: float) -> tuple[float, float]:
    """(mu, sigma) of PreliZ's maximum-entropy Normal with ``mass`` in [lower, upper]."""
    import preliz as pz

    if not lower < upper:
        raise BayesError(f"lower bound {lower:g} must be below upper bound {upper:g}")
    dist = pz.maxent(pz.Normal(), lower, upper, _check_mass(mass), plot=False)
    return float(dist.mu), float(dist.sigma)


def elicit(parameter: str, low: float, high: float, mass: float, *, better: str | None = None,
           statement: str | None = None) -> Elicited:
    """Elicit a Normal prior for ``parameter`` from a data-scale range and its probability.

    ``low``/``high`` are in the statement's units (percent change, percent, or
    odds ratio; see :func:`link_bounds`).  Raises :class:`BayesError` with one
    line for bad input, or if the fitted prior misses the mass by > 1e-3.
    """
    mass = _check_mass(mass)
    lower, upper = link_bounds(parameter, low, high, better=better)
    mu, sigma = maxent_normal(lower, upper, mass)
    mu, sigma = round(mu, DIGITS), round(sigma, DIGITS)
    achieved = normal_mass(mu, sigma, lower, upper)
    if not (sigma > 0 and abs(achieved - mass) <= MASS_TOLERANCE):
        raise BayesError(f"the elicited prior Normal({mu:g}, {sigma:g}) has mass {achieved:.4f} between the "
                         f"bounds, not {mass:g}; the statement could not be matched")
    if statement is None:
        unit = {"change": "%", "percent": "%", "odds_ratio": ""}[PARAMETERS[parameter][0]]
        what = {"change": "change", "percent": "value under control", "odds_ratio": "odds ratio"}
        sign = "+" if PARAMETERS[parameter][0] == "change" else ""
        statement = (f"{parameter} {what[PARAMETERS[parameter][0]]} between {low:{sign}g}{unit} and "
                     f"{high:{sign}g}{unit} with probability {mass:g}"
                     + (f" ({better} is better)" if parameter in SIGN_ALIGNED else ""))
    return Elicited(parameter, mu, sigma, lower, upper, mass, achieved, statement)


def write_prior_file(result: Elicited, path: str | Path, *, force: bool = False) -> Path:
    """Write ``result`` as a partial prior file (atomic); refuse to replace unless ``force``."""
    from bayes.results import write_atomic

    target = Path(path)
    if target.suffix not in (".yaml", ".yml"):
        raise BayesError(f"{target}: a prior file must end in .yaml or .yml")
    if target.exists() and not force:
        raise BayesError(f"{target} already exists; pass --force to replace it, or choose another --out")
    if not target.parent.is_dir():
        raise BayesError(f"{target.parent} is not a folder; create it first")
    text = result.to_yaml()
    write_atomic(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return target


# --------------------------------------------------------------------------- CLI

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``elicit`` on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "elicit", help="turn an expert statement into a prior file for --priors (PreliZ maxent)",
        description="Turn 'the value lies in this range with this probability' into a Normal prior on "
                    "the parameter's link scale and print or write a partial prior file for --priors. "
                    "Example: bayes elicit agent_effect --change=-30%%..+10%% --mass 0.9 --out imatinib.yaml")
    # A range such as "-30%..+10%" starts with "-": let this parser read it as a value, not an option.
    p._negative_number_matcher = re.compile(r"^-[\d.]")
    p.add_argument("parameter", choices=list(PARAMETERS), help="prior parameter to elicit")
    statement = p.add_mutually_exclusive_group(required=True)
    statement.add_argument("--change", metavar="LOW%..HIGH%",
                           help="percent change of a positive endpoint, e.g. -30%%..+10%% "
                                "(baseline, agent_effect, interaction)")
    statement.add_argument("--percent", metavar="LOW%..HIGH%",
                           help="percentage under control, e.g. 20%%..60%% (baseline_logit)")
    statement.add_argument("--odds-ratio", metavar="LOW..HIGH",
                           help="odds ratio, e.g. 0.5..4 (agent_effect_logit, interaction_logit)")
    p.add_argument("--mass", type=float, default=0.9,
                   help="probability the expert puts on the range (default: %(default)s)")
    p.add_argument("--better", choices=("lower", "higher"),
                   help="for interactions: which direction of the endpoint is good (synergy)")
    p.add_argument("--out", help="write the prior file here (.yaml); default: print it")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    return p


def run(args) -> int:
    """The ``elicit`` command: print or write the prior file; returns the exit code."""
    kind, _ = PARAMETERS[args.parameter]
    given = {k: getattr(args, k) for k in STATEMENT_FLAGS if getattr(args, k) is not None}
    if kind not in given:
        used = STATEMENT_FLAGS[next(iter(given))] if given else "no statement"
        raise BayesError(f"{args.parameter} is elicited with {STATEMENT_FLAGS[kind]}, not {used}")
    if args.out and Path(args.out).exists() and not args.force:   # refuse before any work
        raise BayesError(f"{args.out} already exists; pass --force to replace it, or choose another --out")
    low, high = parse_range(given[kind], percent=kind != "odds_ratio")
    result = elicit(args.parameter, low, high, args.mass, better=args.better)
    if not args.out:
        sys.stdout.write(result.to_yaml())
        return 0
    path = write_prior_file(result, args.out, force=args.force)
    print(f"{result.parameter} ~ {result.prior}  (mass {result.achieved_mass:.6f} between "
          f"{result.lower:.4f} and {result.upper:.4f} on the link scale)")
    if args.parameter in ("agent_effect", "agent_effect_logit"):
        print(f"note: one {args.parameter} prior serves every single agent on every endpoint with this link")
    print(f"Wrote {path}; use it with --priors {path}")
    return 0
