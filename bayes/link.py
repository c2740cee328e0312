"""How credible is it that NK activity carries the antitumour synergy?

Fits the NK-link model (:mod:`bayes.models.link`) to one study and reports,
per outcome endpoint (tumour volume, survival):

* the link coefficient ``theta``, sign-aligned so that positive = more NK
  activation goes with benefit (lower volume, higher survival): mean, sd,
  credible interval, ``P(benefit)``;
* the fraction of the outcome's interaction carried by NK activation,
  ``theta * alpha_AB / (gamma_direct + theta * alpha_AB)`` on the outcome's
  link scale, per posterior draw.  It is a ratio: unbounded (and its mean
  meaningless) when the total interaction is near 0 in some draws, so the
  median, an equal-tailed interval and ``P(share > 0.5)`` are reported;
* a Savage-Dickey Bayes factor BF10 for ``theta != 0``.  ``theta = 0`` is a
  point null nested in the continuous prior ``Normal(0, 1)``, and ``theta``
  is a priori independent of every other parameter, so the Bayes factor is
  exactly prior density at 0 / posterior density at 0 (Dickey 1971;
  Wagenmakers et al. 2010).  It needs only the posterior already sampled,
  where SMC or bridge sampling would need a second model and a marginal
  likelihood, both noisy for models like this.  The posterior density at 0
  comes from the draws and the fit's compiled density
  (:func:`bayes.compare.density_at_value`, Chen 1994), accurate also when 0
  is far in the tail; without the compiled model (:func:`link_table` alone)
  it is a Gaussian KDE of the draws, and when 0 lies outside every draw a
  normal approximation, which the method column says;
* the prior-versus-posterior view of ``theta``: quantiles and densities at 0,
  and the posterior/prior sd ratio.  The four arm means of an outcome cannot
  separate direct effects from ``theta * a`` (three contrasts, five
  unknowns), so ``theta`` is only partly identified: the ratio says how
  much the data, rather than the priors, decided it.

Scales: ``theta`` is in outcome link units (log for volume, logit for
survival) per unit of activation, and activation is in the reference immune
readout's units (logit of % lysis when NK lysis is reported).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayes import config
from bayes._version import __version__
from bayes.errors import BayesError
from bayes.models.link import THETA_SD, LinkSpec, layout
from bayes.priors import PriorSet, load_prior_set
from bayes.results import retry_text, write_atomic

PRIOR_DRAWS = 20000
PRIMARY_ORDER = ("tumor_volume", "tumour_volume", "tumor_weight", "survival")


# ---------------------------------------------------------------- pure helpers

def carried_fraction(nk: np.ndarray, direct: np.ndarray) -> np.ndarray:
    """Per-draw share of the total interaction carried by NK: nk / (direct + nk).

    Unbounded: near-zero totals give huge values of either sign; NaN where the
    total is exactly 0.
    """
    nk, direct = np.asarray(nk, float), np.asarray(direct, float)
    total = direct + nk
    with np.errstate(divide="ignore", invalid="ignore"):
        out = nk / total
    return np.where(total == 0, np.nan, out)


def density_at(draws: np.ndarray, value: float = 0.0) -> tuple[float, str]:
    """Density of ``draws`` at ``value``: Gaussian KDE inside the range of the
    draws, a normal approximation outside it (the KDE would extrapolate)."""
    draws = np.asarray(draws, float).ravel()
    draws = draws[np.isfinite(draws)]
    if draws.min() < value < draws.max():
        return float(stats.gaussian_kde(draws)(value)[0]), "Savage-Dickey (KDE)"
    return float(stats.norm.pdf(value, draws.mean(), draws.std(ddof=1))), \
        "Savage-Dickey (normal approx.; 0 outside the posterior draws)"


def savage_dickey_bf10(posterior: np.ndarray, prior_sd: float = THETA_SD, *, prior_mean: float = 0.0,
                       density: tuple[float, str] | None = None) -> tuple[float, str, float, float]:
    """BF10 for ``theta != 0`` against ``theta = 0`` under a Normal prior:
    (BF10, method, prior density at 0, posterior density at 0).  ``density``:
    the posterior density at 0 and its method, when already estimated
    (:func:`bayes.compare.densities_at_zero`); otherwise from the draws (:func:`density_at`)."""
    prior_d = float(stats.norm.pdf(0.0, prior_mean, prior_sd))
    post_d, method = density if density is not None else density_at(posterior, 0.0)
    bf = prior_d / post_d if post_d > 0 else math.inf
    return bf, method, prior_d, post_d


def _interval(draws: np.ndarray, ci_prob: float) -> tuple[float, float]:
    q = (1 - ci_prob) / 2
    lo, hi = np.nanquantile(draws, [q, 1 - q])
    return float(lo), float(hi)


def _flat(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy(), float)


# ---------------------------------------------------------------- tables

def link_table(model_posterior: xr.Dataset | xr.DataTree, spec: LinkSpec, priors: PriorSet | None = None,
               *, ci_prob: float = config.CI_PROB, seed: int = 0, passed: bool | None = None,
               densities: list[tuple[float, float]] | None = None) -> pd.DataFrame:
    """The link report from the model-level posterior (``split_cells``' model tree).

    One row per outcome endpoint x quantity: ``link`` (sign-aligned theta),
    ``carried fraction``, ``NK-carried interaction``, ``direct interaction``,
    ``total interaction``; plus one ``activation interaction`` row (alpha of
    the combination, reference readout units).  ``priors`` is accepted for
    symmetry with other tables; theta's prior is fixed (Normal(0, THETA_SD)).
    ``densities``: each outcome's posterior density of theta at 0 and its relative sd
    (:func:`bayes.compare.densities_at_zero`); without them, a kernel density
    estimate of the draws.
    """
    from bayes.compare import SD_METHOD

    post = model_posterior
    if isinstance(post, xr.DataTree):
        post = (post["posterior"] if "posterior" in post.children else post).to_dataset()
    lay = layout(spec.cells)
    study = spec.cells[0].study
    ref = spec.cells[lay.immune[0]].endpoint
    q = (1 - ci_prob) / 2
    rng = np.random.default_rng(seed)
    prior_draws = rng.normal(0.0, THETA_SD, PRIOR_DRAWS)
    diag = "" if passed is None else ("ok" if passed else "FAILED")
    rows = []

    def row(endpoint, combo, quantity, scale, draws, **extra):
        lo, hi = _interval(draws, ci_prob)
        rows.append({"study": study, "endpoint": endpoint, "combination": combo, "quantity": quantity,
                     "scale": scale, "mean": float(np.nanmean(draws)), "median": float(np.nanmedian(draws)),
                     "sd": float(np.nanstd(draws, ddof=1)), "ci_low": lo, "ci_high": hi,
                     "ci_prob": ci_prob, **extra})

    for combo in post["alpha_combo"].coords["latent_combo"].to_numpy():
        row(ref, str(combo), "activation interaction", f"{ref} link units (activation)",
            _flat(post["alpha_combo"].sel(latent_combo=combo)))
    for k, i in enumerate(lay.outcome):
        cell = spec.cells[i]
        scale = f"{cell.link} scale of {cell.endpoint}"
        theta = _flat(post["link"].isel(outcome=k))
        aligned = -cell.sign * theta
        bf, method, prior_d, post_d = savage_dickey_bf10(theta, density=None if densities is None
                                                         else (densities[k][0], SD_METHOD))
        plo, pmed, phi = np.quantile(prior_draws, [q, 0.5, 1 - q])
        qlo, qmed, qhi = np.quantile(aligned, [q, 0.5, 1 - q])
        row(cell.endpoint, "", "link (sign-aligned)",
            f"{scale} per unit activation ({ref} link units); positive = benefit", aligned,
            p_benefit=float(np.mean(aligned > 0)), bf10=bf, log10_bf10=math.log10(bf) if bf > 0 else -math.inf,
            bf_method=method, density_rel_sd=math.nan if densities is None else densities[k][1],
            prior_sd=THETA_SD, prior_q_low=float(plo), prior_median=float(pmed),
            prior_q_high=float(phi), posterior_q_low=float(qlo), posterior_median=float(qmed),
            posterior_q_high=float(qhi), prior_density_0=prior_d, posterior_density_0=post_d,
            sd_ratio=float(np.std(aligned, ddof=1) / THETA_SD))
        for combo in post["nk_interaction"].coords["latent_combo"].to_numpy():
            sel = {"outcome": k, "latent_combo": list(post["latent_combo"].to_numpy()).index(combo)}
            nk = _flat(post["nk_interaction"].isel(sel))
            direct = _flat(post["direct_interaction"].isel(sel))
            share = carried_fraction(nk, direct)
            lo, hi = _interval(share, ci_prob)
            rows.append({"study": study, "endpoint": cell.endpoint, "combination": str(combo),
                         "quantity": "carried fraction", "scale": "share of the total interaction on the "
                         f"{scale} (unbounded ratio; mean not reported)", "mean": math.nan,
                         "median": float(np.nanmedian(share)), "sd": math.nan, "ci_low": lo, "ci_high": hi,
                         "ci_prob": ci_prob, "p_share_gt_half": float(np.nanmean(share > 0.5)),
                         "p_total_near_0": float(np.mean(np.abs(nk + direct) < 0.1))})
            for name, draws in (("NK-carried interaction", nk), ("direct interaction", direct),
                                ("total interaction", nk + direct)):
                row(cell.endpoint, str(combo), name, f"{scale}; sign-aligned, positive = synergy",
                    -cell.sign * draws, p_benefit=float(np.mean(-cell.sign * draws > 0)))
    table = pd.DataFrame(rows)
    if diag:
        table["diagnostics"] = diag
    return table


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def link_sentence(table: pd.DataFrame) -> str:
    """One plain-language sentence with the caveats, about the primary outcome
    (tumour volume when present, else the first outcome)."""
    links = table[table["quantity"] == "link (sign-aligned)"]
    if links.empty:
        return "No outcome endpoint to link NK activity to."
    endpoints = list(links["endpoint"])
    primary = next((e for e in PRIMARY_ORDER if e in endpoints), endpoints[0])
    lk = links[links["endpoint"] == primary].iloc[0]
    frac = table[(table["endpoint"] == primary) & (table["quantity"] == "carried fraction")]
    name = primary.replace("_", " ")
    text = ""
    if "diagnostics" in table and (table["diagnostics"] == "FAILED").any():
        text = "WARNING: the fit failed its diagnostics, so treat this as provisional: "
    text += (f"Across the four arms, higher NK activation goes with better {name} with probability "
             f"{lk['p_benefit']:.2f} (BF10 = {lk['bf10']:.3g} for a link versus none")
    if not frac.empty:
        f = frac.iloc[0]
        text += (f"), and it accounts for a median {_pct(f['median'])} of the {name} interaction "
                 f"({_pct(f['ci_prob'])} CI {_pct(f['ci_low'])} to {_pct(f['ci_high'])}; "
                 f"P(more than half) = {f['p_share_gt_half']:.2f})")
    else:
        text += ")"
    text += (f", but the data narrowed the link's prior sd only to {lk['sd_ratio']:.2f} of its prior, "
             "because four arm means per endpoint cannot separate NK-mediated from direct drug effects, "
             "the link is ecological (across arm means, not animals), and the NK readouts come from "
             "splenocytes of a separate cohort, so this is consistency with NK mediation, not proof of it.")
    return text


# ---------------------------------------------------------------- fitting

@dataclass
class LinkResult:
    table: pd.DataFrame
    sentence: str
    tree: xr.DataTree                 # raw posterior (cell variables prefixed c<i>_)
    diagnostics: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    spec: LinkSpec | None = None      # the fitted model's spec (for model comparison)

    @property
    def passed(self) -> bool:
        return bool(self.diagnostics["passed"].all())

    def format(self) -> str:
        """The table as printed by ``bayes link``: key quantities, the sentence, diagnostics."""
        meta = self.metadata
        lines = [f"bayes {meta.get('bayes_version')} | NK-link model | data: {meta.get('data_source')}",
                 *(f"n ({k}): {v}" for k, v in meta.get("n_treatment", {}).items()),
                 f"{100 * meta.get('ci_prob', config.CI_PROB):g}% equal-tailed intervals; link sign-aligned "
                 "(positive = more NK activation, better outcome)", "",
                 f"  {'endpoint':<14} {'quantity':<24} {'centre':>8}  {'interval':<19} {'P(>0)':>6} {'BF10':>7}"]
        for r in self.table.itertuples():
            centre = r.median if pd.isna(r.mean) else r.mean
            interval = f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"
            p = "" if pd.isna(r.p_benefit) else f"{r.p_benefit:.3f}"
            bf = "" if pd.isna(r.bf10) else f"{r.bf10:.2f}"
            lines.append(f"  {r.endpoint:<14} {r.quantity:<24} {centre:>8.3f}  {interval:<19} {p:>6} {bf:>7}")
        d = self.diagnostics.iloc[0]
        verdict = ("Diagnostics: passed" if d["passed"] else f"DIAGNOSTICS FAILED: {d['problems']}")
        lines += ["", self.sentence, "",
                  f"{verdict} (worst R-hat {d['rhat_max']:.3f}, lowest ESS "
                  f"{min(d['ess_bulk_min'], d['ess_tail_min']):.0f}, {d['divergences']} divergences"
                  + (f"; {retry_text(d.get('retry'))}" if retry_text(d.get("retry")) else "") + ")"]
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
        """Write link.csv and link.txt (atomically); refuse to overwrite unless asked."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "link.csv", out / "link.txt"]
        existing = [p for p in paths if p.exists()]
        if existing and not overwrite:
            raise BayesError(f"{', '.join(map(str, existing))} already exist(s); pass --force "
                             "(overwrite=True) to replace them, or choose another --out")
        write_atomic(paths[0], lambda p: self.table.to_csv(p, index=False, float_format="%.6g"))
        meta = "\n".join(f"# {k}: {v}" for k, v in self.metadata.items())
        write_atomic(paths[1], lambda p: Path(p).write_text(self.sentence + "\n\n" + meta + "\n"))
        return paths


def fit_link(study, *, n=None, priors: PriorSet | str = "default", settings=None, seed: int | None = None,
             cache=None, ci_prob: float = config.CI_PROB) -> LinkResult:
    """Fit the NK-link model to ``study`` (one study) and build the report."""
    return start_link(study, n=n, priors=priors, settings=settings, seed=seed, cache=cache, ci_prob=ci_prob).result()


def start_link(study, *, n=None, priors: PriorSet | str = "default", settings=None, seed: int | None = None,
               cache=None, ci_prob: float = config.CI_PROB):
    """:func:`fit_link`, started (:func:`bayes.sampling.start_sample`): ``result()``
    waits for the sampler and returns the :class:`LinkResult`."""
    from bayes.analysis import as_nprior, model_specs
    from bayes.sampling import DEFAULT_CACHE, Pending, SamplerSettings, start_sample

    prior_set = priors if isinstance(priors, PriorSet) else load_prior_set(priors)
    settings = settings or SamplerSettings()
    if seed is not None:
        settings = dataclasses.replace(settings, seed=int(seed))
    settings = settings.for_family("link")
    nprior = as_nprior(n)
    spec, = model_specs(study, "link", nprior)
    cache = cache or DEFAULT_CACHE
    pending = start_sample(spec, prior_set, settings=settings, key=f"link:{spec.cells[0].study}", cache=cache)
    return Pending(lambda: _finish_link(study, spec, nprior, prior_set, settings, ci_prob, pending, cache))


def _finish_link(study, spec, nprior, prior_set: PriorSet, settings, ci_prob: float, pending,
                 cache) -> LinkResult:
    from bayes.compare import densities_at_zero
    from bayes.sampling import diagnose, diagnostics_frame, split_cells

    raw, free = pending.result()
    verdict = diagnose(raw, free)
    _, model_tree = split_cells(raw, spec)
    densities = None        # pymc-sampled fits: the KDE (the compiled density is nutpie's)
    if settings.sampler == "nutpie":
        outcomes = range(len(layout(spec.cells).outcome))
        densities = densities_at_zero(spec, raw, prior_set, cache, [("link", k) for k in outcomes])
    table = link_table(model_tree, spec, prior_set, ci_prob=ci_prob, seed=settings.seed, passed=verdict.passed,
                       densities=densities)
    metadata = {"bayes_version": __version__,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "data_source": study.source, "data_hash": study.data_hash, "model": "link",
                "n_prior": nprior.to_dict(), "n_treatment": {f"{g.study}/{g.cohort}": g.note for g in spec.groups},
                "priors": prior_set.name, "prior_hash": prior_set.hash, "sampler": settings.to_dict(),
                "retried": {"link model": verdict.retry_note} if verdict.retry_note else {},
                "ci_prob": ci_prob, "ci_kind": config.CI_KIND}
    return LinkResult(table=table, sentence=link_sentence(table), tree=raw,
                      diagnostics=diagnostics_frame([(spec.cells[0].study, "link model", verdict)]),
                      metadata=metadata, spec=spec)
