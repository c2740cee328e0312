"""The ``bayes`` command line: ``report``, ``fit``, ``summary``, ``check``, ``link``, ``elicit``, ``template`` and ``bench``.

Exit codes: 0 success; 2 bad input or usage (one line on stderr naming the
file, row and column); 3 results written but at least one fit failed its
diagnostics gate; 1 anything unexpected.  ``--debug`` shows tracebacks.
The CLI parses arguments and prints; the work is done by the library.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bayes._version import __version__
from bayes.errors import BayesError

try:
    from bayes import config
except BayesError as _err:   # a bad BAYES_QUICK: one line, not a traceback
    print(f"bayes: error: {_err}", file=sys.stderr)
    sys.exit(2)

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_DIAGNOSTICS = 0, 1, 2, 3


def _load_study(paths: list[str] | str | None):
    """The study in DATA: none -> the built-in seed; several files -> pooled (combine_studies)."""
    from bayes.data import builtin_names, combine_studies, load_builtin, read_study

    if isinstance(paths, list) and len(paths) > 1:
        return combine_studies([_load_study(p) for p in paths])
    path = paths[0] if isinstance(paths, list) and paths else paths or None
    if path is None:
        return load_builtin("seed")
    if not Path(path).exists() and path in builtin_names():
        return load_builtin(path)
    if not Path(path).exists():
        raise BayesError(f"{path}: no such file (give a CSV path, or a built-in dataset: "
                         f"{', '.join(builtin_names())})")
    return read_study(path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number >= 1")
    return value


def _n_value(text: str) -> int | None:
    if text == "marginal":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 2 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'marginal' or a whole number of animals >= 2")
    return int(value)


def _n_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split("-"))
    except ValueError:
        low, high = -1, -1
    if not 2 <= low <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 3-20 (2 <= low <= high)")
    return low, high


def _n_values(text: str) -> tuple[int, ...]:
    values = tuple(_n_value(v.strip()) for v in text.split(",") if v.strip())
    if not values or None in values:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers >= 2")
    return values


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (e.g. 0.95)")
    return value


def _add_run_options(parser: argparse.ArgumentParser, replaced: str) -> None:
    """Data, output, n, priors and sampler options shared by the fitting commands."""
    parser.add_argument("data", nargs="*", metavar="DATA",
                        help="study CSV(s) or a built-in dataset name (default: the built-in seed study); "
                             "several files are pooled into one table, each keeping its study label")
    parser.add_argument("--out", default="bayes-results", help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help=f"replace {replaced}")
    parser.add_argument("--n", type=_n_value, default=None, metavar="N|marginal",
                        help="animals per arm where the table gives none: a number to assume it, or "
                             "'marginal' (default) to treat it as unknown over --n-range")
    parser.add_argument("--n-range", type=_n_range, default=(3, 20), metavar="LOW-HIGH",
                        help="prior range of an unknown n per arm (default 3-20)")
    parser.add_argument("--priors", default="default", help="built-in prior set name or a YAML file")
    parser.add_argument("--draws", type=_positive_int, default=config.DEFAULT_DRAWS)
    parser.add_argument("--tune", type=_positive_int, default=config.DEFAULT_TUNE)
    parser.add_argument("--chains", type=_positive_int, default=config.DEFAULT_CHAINS)
    parser.add_argument("--cores", type=_positive_int, default=config.default_cores())
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--ci-prob", type=_probability, default=config.CI_PROB)


def _nprior(args):
    from bayes.nprior import NPrior

    low, high = args.n_range
    return NPrior("marginal", None, low, high) if args.n is None else NPrior.fixed(args.n, low, high)


def build_parser() -> argparse.ArgumentParser:
    from bayes.models.builder import MODEL_NAMES
    from bayes.sampling import SAMPLERS

    parser = argparse.ArgumentParser(prog="bayes", description="Bayesian synergy from published summary tables.")
    parser.add_argument("--version", action="version", version=f"bayes {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="fit the synergy model and write posterior.nc, synergy.csv, ...")
    _add_run_options(fit, "results already in --out")
    fit.add_argument("--model", choices=[m for m in MODEL_NAMES if m != "link"], default="joint",
                     help="joint (all endpoints and studies in one hierarchical model; default), "
                          "factorial (each endpoint alone: agents + interaction) or additive (no interaction)")
    fit.add_argument("--n-sensitivity", action="store_true",
                     help="also refit at n = 3, 5, 8, 10, 15, 20 and marginalised and write n_sensitivity.csv "
                          "(7 fits; about 2-3 minutes for the joint model on 2 cores)")
    fit.add_argument("--sampler", choices=SAMPLERS, default="nutpie")
    fit.add_argument("--quiet", action="store_true", help="print only the final table")

    summary = sub.add_parser("summary", help="print a saved result again, without refitting")
    summary.add_argument("out", help="a folder written by 'bayes fit'")

    check = sub.add_parser("check", help="validate a study table and print its consistency checks")
    check.add_argument("data", nargs="*", metavar="DATA",
                       help="study CSV(s) (default: the built-in seed study); several are checked as one pooled table")

    template = sub.add_parser("template", help="write the commented study-table template to fill in")
    template.add_argument("path", help="where to write it, e.g. my_study.csv")
    template.add_argument("--force", action="store_true", help="replace an existing file")

    link = sub.add_parser("link", help="fit the NK-link model and write link.csv and link.txt "
                                       "(beside synergy.csv when --out is the same folder)")
    _add_run_options(link, "link.csv/link.txt already in --out")

    report = sub.add_parser("report", help="write the model-comparison report (report.html + report.md): "
                                           "all models, comparison, sensitivity, figures")
    _add_run_options(report, "a report already in --out")
    report.set_defaults(out="bayes-report")
    report.add_argument("--prior-sets", default="default,sceptical,optimistic",
                        help="comma-separated prior sets to compare (default: %(default)s)")
    report.add_argument("--evidence", choices=("bridge", "smc"), default="bridge",
                        help="marginal likelihoods for the Bayes factors: bridge sampling on the posterior draws "
                             "(fast), or a separate SMC run per model, as a cross-check (default: %(default)s)")
    report.add_argument("--smc-draws", type=_positive_int, default=config.SMC_DRAWS,
                        help="with --evidence smc: SMC particles per chain (default: %(default)s)")
    report.add_argument("--smc-chains", type=_positive_int, default=config.SMC_CHAINS,
                        help="with --evidence smc: independent SMC runs; their spread is the log-evidence "
                             "uncertainty (default: %(default)s)")
    report.add_argument("--n-values", type=_n_values, default=(3, 5, 8, 10, 15, 20), metavar="N,N,...",
                        help="assumed n per arm for the n-sensitivity table (default: 3,5,8,10,15,20)")
    report.add_argument("--quiet", action="store_true", help="no progress lines")

    # --- bayes validate (simulation-based calibration; bayes.validate) ---
    from bayes import validate as _validate

    val = sub.add_parser("validate", help="simulation-based calibration of a model family: rank uniformity "
                                          "and interval coverage over simulated tables (n not reported)")
    val.add_argument("--model", choices=_validate.FAMILIES, required=True,
                     help="model family to calibrate (factorial needs --kind)")
    val.add_argument("--kind", choices=_validate.KINDS, default=None,
                     help="endpoint kind for the factorial family: positive, percent or rate")
    val.add_argument("--sims", type=_positive_int, default=_validate.DEFAULT_SIMS,
                     help="number of simulations (default: %(default)s)")
    val.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    val.add_argument("--out", required=True, help="output folder; an interrupted run resumes there")
    val.add_argument("--draws", type=_positive_int, default=_validate.DEFAULT_DRAWS,
                     help="posterior draws per chain per fit (default: %(default)s)")
    val.add_argument("--tune", type=_positive_int, default=_validate.DEFAULT_TUNE)
    val.add_argument("--chains", type=_positive_int, default=_validate.DEFAULT_CHAINS)
    val.add_argument("--thin", type=_positive_int, default=_validate.DEFAULT_THIN,
                     help="thinned draws each rank is taken among (ranks 0..THIN; default: %(default)s)")
    val.add_argument("--scheduler", default=None, metavar="ADDR|sync",
                     help="Dask scheduler address (tcp://...), or 'sync' to run in this process "
                          "(default: local worker processes)")
    val.add_argument("--workers", type=_positive_int, default=None,
                     help="local worker processes (default: bayes.batch decides)")
    val.add_argument("--report-n", action="store_true",
                     help="control run: print the true n in every simulated table (default: n unreported, summed out)")
    val.add_argument("--force", action="store_true", help="replace SBC results already in --out")
    val.add_argument("--quiet", action="store_true", help="no progress lines")
    # --- end bayes validate ---

    from bayes import bench, elicit

    elicit.add_parser(sub)
    bench.add_parser(sub)
    return parser


def cmd_fit(args) -> int:
    from bayes.analysis import fit
    from bayes.priors import load_prior_set
    from bayes.sampling import SamplerSettings
    from bayes.sensitivity import n_sensitivity

    study = _load_study(args.data)
    priors = load_prior_set(args.priors)
    out = Path(args.out)
    if not args.force and any((out / f).exists() for f in ("posterior.nc", "synergy.csv", "run.json")):
        raise BayesError(f"{out} already holds results; pass --force to replace them, or choose another --out")
    settings = SamplerSettings(sampler=args.sampler, draws=args.draws, tune=args.tune,
                               chains=args.chains, cores=args.cores, seed=args.seed)
    start = time.perf_counter()
    say = None if args.quiet else (lambda line: print(f"[{time.perf_counter() - start:5.1f}s] {line}",
                                                      file=sys.stderr, flush=True))
    nprior = _nprior(args)
    low, high = args.n_range
    common = dict(priors=priors, settings=settings, ci_prob=args.ci_prob, progress=say)
    result = fit(study, model=args.model, n=nprior, **common)
    if args.n_sensitivity:
        result.sensitivity = n_sensitivity(study, model=args.model, low=low, high=high, base=(result, priors),
                                           **common)
    result.save(out, overwrite=args.force)
    print(result.format())
    print(f"\nWrote {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))} to {out}/")
    return EXIT_OK if result.passed else EXIT_DIAGNOSTICS


def cmd_summary(args) -> int:
    from bayes.results import load_result

    result = load_result(args.out, with_posterior=False)
    print(result.format())
    return EXIT_OK if result.passed else EXIT_DIAGNOSTICS


def cmd_check(args) -> int:
    from bayes.data import consistency_checks

    study = _load_study(args.data)
    table = study.table
    print(study.describe())
    cols = ["study", "endpoint", "arm", "kind", "better", "mean", "sd", "se", "n", "percent", "day", "unit"]
    print(table[cols].to_string(index=False, na_rep=""))
    print("\nChecks:")
    for check in consistency_checks(study):
        print(f"  [{check.status}] {check.message}")
    return EXIT_OK


def cmd_link(args) -> int:
    from bayes.link import fit_link
    from bayes.priors import load_prior_set
    from bayes.sampling import SamplerSettings

    study = _load_study(args.data)
    out = Path(args.out)
    if not args.force and any((out / f).exists() for f in ("link.csv", "link.txt")):
        raise BayesError(f"{out} already holds link results; pass --force to replace them, or choose another --out")
    nprior = _nprior(args)
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, cores=args.cores,
                               seed=args.seed)
    result = fit_link(study, n=nprior, priors=load_prior_set(args.priors), settings=settings,
                      ci_prob=args.ci_prob)
    result.save(out, overwrite=args.force)
    print(result.format())
    print(f"\nWrote link.csv, link.txt to {out}/")
    return EXIT_OK if result.passed else EXIT_DIAGNOSTICS


def cmd_report(args) -> int:
    from bayes import report
    from bayes.priors import load_prior_set
    from bayes.sampling import SamplerSettings

    study = _load_study(args.data)
    prior_sets = [p.strip() for p in args.prior_sets.split(",") if p.strip()]
    for name in [args.priors, *prior_sets]:
        load_prior_set(name)                      # refuse a bad name before any sampling
    out = Path(args.out)
    if not args.force and any((out / f).exists() for f in report.REPORT_FILES):
        raise BayesError(f"{out} already holds a report; pass --force to replace it, or choose another --out")
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains, cores=args.cores,
                               seed=args.seed)
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    data = report.compute(study, priors=args.priors, settings=settings, n=_nprior(args),
                          prior_sets=tuple(prior_sets), n_values=args.n_values, evidence=args.evidence,
                          smc_draws=args.smc_draws, smc_chains=args.smc_chains,
                          ci_prob=args.ci_prob, progress=say,
                          ready=lambda fitted: report.prepare(fitted, out, overwrite=args.force))
    command = "bayes " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("bayes") else ""
    report.write(data, out, overwrite=args.force, command=command, fits_saved=True)
    print(report.format_text(data))
    print(f"\nWrote {out / 'report.html'} (open it in a browser; it works offline) and {out / 'report.md'}")
    return EXIT_OK if data.fit.passed else EXIT_DIAGNOSTICS


def cmd_elicit(args) -> int:
    from bayes import elicit

    return elicit.run(args)


def cmd_bench(args) -> int:
    from bayes import bench

    return bench.run(args)


def cmd_template(args) -> int:
    from bayes.data import write_template

    path = write_template(args.path, overwrite=args.force)
    print(f"wrote the study-table template to {path}; replace the example rows with your study's, "
          f"then: bayes check {path}")
    return EXIT_OK


# --- bayes validate ---------------------------------------------------------------------------

def cmd_validate(args) -> int:
    """Run (or resume) an SBC study and print its verdicts; exit 3 when rank uniformity fails or a
    simulation failed (the summary is written either way)."""
    from bayes import validate

    tag = validate.family_tag(args.model, args.kind)
    out = Path(args.out)
    if not args.force and (out / "summary.json").exists():
        raise BayesError(f"{out} already holds an SBC summary; pass --force to replace it, or choose another --out")
    start = time.perf_counter()
    say = None if args.quiet else (lambda line: print(f"[{time.perf_counter() - start:6.1f}s] {line}",
                                                      file=sys.stderr, flush=True))
    if say:
        say(f"SBC {tag}: {args.sims} simulations, {args.chains} chains x {args.draws} draws "
            f"(tune {args.tune}), ranks among {args.thin} thinned draws, seed {args.seed}")
    summary = validate.run_sbc(args.model, args.kind, sims=args.sims, seed=args.seed, out_dir=out,
                               draws=args.draws, tune=args.tune, chains=args.chains, thin_to=args.thin,
                               scheduler=args.scheduler, workers=args.workers, progress=say,
                               overwrite=args.force, report_n=args.report_n)
    print(validate.format_summary(summary))
    print(f"\nWrote {', '.join(validate.SUMMARY_FILES)} and sims/ to {out}/")
    if summary["failed"]:
        print(f"bayes: {len(summary['failed'])} simulation(s) failed (tracebacks in {out / 'sims'}/<key>.error.json); "
              "the summary leaves them out; rerun the same command to retry them", file=sys.stderr)
    return EXIT_OK if summary["verdict"]["uniformity_pass"] and not summary["failed"] else EXIT_DIAGNOSTICS


# --- end bayes validate -----------------------------------------------------------------------


COMMANDS = {"template": cmd_template, "fit": cmd_fit, "summary": cmd_summary, "check": cmd_check, "link": cmd_link,
            "report": cmd_report, "elicit": cmd_elicit, "bench": cmd_bench, "validate": cmd_validate}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bayes.compiled import compile_notices

    quiet = getattr(args, "quiet", False)
    try:
        with compile_notices(None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))):
            return COMMANDS[args.command](args)
    except BayesError as err:
        if args.debug:
            raise
        print(f"bayes: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("bayes: interrupted; nothing was overwritten", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
