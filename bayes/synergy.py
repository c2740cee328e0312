"""Synergy scores from posterior arm means: pure functions over xarray.

For a positive endpoint with arm means C (control), A_i (single agents) and
AB (a combination of k agents), scores are on the natural-log scale of the
arm means and sign-aligned so that **positive = synergy**.  With ``s = +1``
for lower-is-better endpoints and ``s = -1`` for higher-is-better ones:

* Bliss (multiplicative independence):
  ``s * (sum_i log A_i - (k - 1) log C - log AB)``; for k = 2,
  ``log A + log B - log C - log AB`` (CombPDX, Huang et al. 2022).
* HSA (highest single agent): ``s * (log best_i A_i - log AB)`` where the
  best single agent is the lowest mean (s = +1) or the highest (s = -1).
* RA (response additivity of the changes from control):
  ``s * (log sum_i A_i - log((k - 1) C + AB))``; for k = 2,
  ``log(A + B) - log(C + AB)``.
* interaction: the model's interaction parameter on the log-median scale,
  sign-aligned (``-s * gamma``); equals Bliss on medians.
* TGI% per arm (positive, lower-is-better endpoints only): ``100 (1 - A/C)``;
  the "P > 0" column is then the probability that the arm inhibits growth.

Percentages and event rates (arm probabilities p) are scored the same way on
the probability of the *unfavourable* outcome, ``q = 1 - p`` when higher is
better (death for % survival, unlysed targets for % lysis) and ``q = p``
when lower is better, with s = +1.  Bliss is then independent action on that
probability (expected ``q_AB = q_A q_B / q_C``), HSA compares with the best
single agent, and RA adds the agents' changes in q.  The interaction row is
the model's interaction on the logit scale, sign-aligned.

Nothing here reads files or samples; a posterior in, numbers out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes import config
from bayes.design import Design

REFERENCES = ("bliss", "hsa", "ra")

SCALES = {
    ("positive", "bliss"): "log ratio of arm means",
    ("positive", "hsa"): "log ratio of arm means",
    ("positive", "ra"): "log ratio of sums of arm means",
    ("positive", "interaction"): "log median (model parameter)",
    ("positive", "tgi"): "percent of control mean",
    ("prob", "bliss"): "log ratio of probabilities of the unfavourable outcome",
    ("prob", "hsa"): "log ratio of probabilities of the unfavourable outcome",
    ("prob", "ra"): "log ratio of sums of probabilities of the unfavourable outcome",
    ("prob", "interaction"): "log odds (model parameter)",
}


def scale_label(kind: str, reference: str) -> str:
    return SCALES[("positive" if kind == "positive" else "prob", reference)]


def scoring_response(arm_mean: xr.DataArray, kind: str, better: str) -> tuple[xr.DataArray, str]:
    """(response, direction) the reference models are applied to, per endpoint kind."""
    if kind == "positive":
        return arm_mean, better
    return (1.0 - arm_mean if better == "higher" else arm_mean), "lower"


def _sign(better: str) -> float:
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
    return 1.0 if better == "lower" else -1.0


def synergy_scores(arm_mean: xr.DataArray, design: Design, better: str) -> xr.Dataset:
    """Bliss, HSA and RA for every combination arm (dim ``combo``)."""
    s = _sign(better)
    log_mean = np.log(arm_mean)
    control = design.arms[0]
    out = {r: [] for r in REFERENCES}
    for combo, agents in zip(design.arms, design.arm_agents):
        if len(agents) < 2:
            continue
        k = len(agents)
        singles = arm_mean.sel(arm=["+".join((a,)) for a in agents])
        log_c, log_ab = log_mean.sel(arm=control), log_mean.sel(arm=combo)
        best = singles.min("arm") if s > 0 else singles.max("arm")
        out["bliss"].append(s * (np.log(singles).sum("arm") - (k - 1) * log_c - log_ab))
        out["hsa"].append(s * (np.log(best) - log_ab))
        out["ra"].append(s * (np.log(singles.sum("arm"))
                              - np.log((k - 1) * arm_mean.sel(arm=control) + arm_mean.sel(arm=combo))))
    combos = list(design.combos)
    return xr.Dataset({r: xr.concat([v.drop_vars("arm", errors="ignore") for v in vals], dim="combo")
                       .assign_coords(combo=combos) for r, vals in out.items()})


def tgi_percent(arm_mean: xr.DataArray) -> xr.DataArray:
    """Tumour growth inhibition of every treated arm, in percent of control."""
    control = arm_mean.isel(arm=0)
    return 100.0 * (1.0 - arm_mean.isel(arm=slice(1, None)) / control)


def p_mcse(draws: xr.DataArray) -> float:
    """Monte Carlo standard error of P(> 0) from MCMC draws (dims ``chain, draw``):
    arviz-stats' ESS-based MCSE of the mean of the indicator; 0 when every draw
    agrees (the error is then below 1 / number of draws).  Draws without those
    dims are read as one chain."""
    import arviz_stats as azs

    if set(getattr(draws, "dims", ())) == {"chain", "draw"}:
        values = np.asarray(draws.transpose("chain", "draw"), float)
    else:                                   # draws of unknown order: one chain
        values = np.asarray(draws, float).reshape(1, -1)
    above = (values > 0).astype(float)
    if above.min() == above.max():
        return 0.0
    return float(azs.mcse(above, method="mean"))


def summarise_draws(draws: xr.DataArray, ci_prob: float = config.CI_PROB,
                    weights: xr.DataArray | None = None) -> dict[str, float]:
    """Mean, sd, equal-tailed interval, P(> 0) and its Monte Carlo error ``p_mcse``
    of a scalar posterior (dims ``chain, draw``).

    ``weights``: importance weights of the draws (dims ``chain, draw``, summing
    to 1; :mod:`bayes.sensitivity`), or ``None`` for equally weighted draws.
    With weights, ``p_mcse`` is the self-normalised importance sampling error
    ``sqrt(sum w^2 (1[x > 0] - P)^2)``, which ignores autocorrelation.
    """
    tail = (1.0 - ci_prob) / 2.0
    if weights is None:
        values = np.asarray(draws, float).ravel()
        low, high = np.quantile(values, [tail, 1.0 - tail])
        return {"mean": values.mean(), "sd": values.std(ddof=1), "ci_low": low, "ci_high": high,
                "ci_prob": ci_prob, "p_synergy": float((values > 0).mean()), "p_mcse": p_mcse(draws)}
    values = np.asarray(draws.transpose(*weights.dims), float).ravel()
    w = np.asarray(weights, float).ravel()
    mean = float(w @ values)
    sd = np.sqrt(float(w @ (values - mean) ** 2) / (1.0 - float(w @ w)))   # reliability-weights correction
    low, high = np.quantile(values, [tail, 1.0 - tail], weights=w, method="inverted_cdf")
    p = float(w @ (values > 0))
    return {"mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "ci_prob": ci_prob,
            "p_synergy": p, "p_mcse": float(np.sqrt(w**2 @ ((values > 0) - p) ** 2))}


def cell_table(posterior: xr.Dataset, design: Design, kind: str, better: str, *,
               ci_prob: float = config.CI_PROB, weights: xr.DataArray | None = None) -> pd.DataFrame:
    """All scores of one fitted cell as rows ``reference, arm, scale, mean, ...``
    (``weights``: see :func:`summarise_draws`)."""
    response, direction = scoring_response(posterior["arm_mean"], kind, better)
    rows = []
    scores = synergy_scores(response, design, direction)
    for combo in design.combos:
        for ref in REFERENCES:
            rows.append({"reference": ref, "arm": combo, "scale": scale_label(kind, ref),
                         **summarise_draws(scores[ref].sel(combo=combo), ci_prob, weights)})
        if "interaction" in posterior:
            aligned = _sign(better) * -posterior["interaction"].sel(combo=combo)
            rows.append({"reference": "interaction", "arm": combo, "scale": scale_label(kind, "interaction"),
                         **summarise_draws(aligned, ci_prob, weights)})
    if kind == "positive" and better == "lower":
        tgi = tgi_percent(posterior["arm_mean"])
        for arm in tgi["arm"].values:
            rows.append({"reference": "tgi", "arm": str(arm), "scale": scale_label(kind, "tgi"),
                         **summarise_draws(tgi.sel(arm=arm), ci_prob, weights)})
    return pd.DataFrame(rows)


def pooled_table(model_posterior: xr.Dataset, *, ci_prob: float = config.CI_PROB,
                 weights: xr.DataArray | None = None) -> pd.DataFrame:
    """The joint model's population synergy (and its spread) as score rows
    (``weights``: see :func:`summarise_draws`)."""
    if "synergy_mean" not in model_posterior:
        return pd.DataFrame()
    scale = "standardised interaction (units of the interaction prior sd)"
    rows = [{"reference": "pooled", "arm": "all combinations", "scale": scale,
             **summarise_draws(model_posterior["synergy_mean"], ci_prob, weights)}]
    spread = summarise_draws(model_posterior["synergy_sd"], ci_prob, weights)
    spread["p_synergy"] = spread["p_mcse"] = float("nan")  # a spread has no direction
    rows.append({"reference": "pooled_sd", "arm": "between endpoints", "scale": scale, **spread})
    return pd.DataFrame(rows)
