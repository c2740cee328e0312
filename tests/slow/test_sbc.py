"""Slow tier (opt in with --run-slow): simulation-based calibration of every
model family with bayes.validate, on a local Dask cluster of 2 workers.

Each family runs a moderate, seeded SBC (the same simulations as the first
ones of the full runs in docs/validation.md, which used 200 per family; 100
for the NK link) and the test asserts:

* no simulation failed;
* rank uniformity is not rejected (arviz-stats ``pot_c``) for any parameter,
  at the Bonferroni level 0.05 / (parameters checked in the family);
* every synergy and effect parameter's 50/80/95% central intervals cover the
  truth within the binomial range for that many simulations (Bonferroni
  over the coverage cells checked).

Parameters whose miscalibration is documented in docs/validation.md can be
listed in ``KNOWN`` with the reason; for them only a bound is asserted (95%
intervals cover at least ``KNOWN_FLOOR``), so that the test still fails if
they get worse.  Since the skewness/kurtosis-matched likelihood, the
factorial and joint families need no such exemption (the earlier ones, for
the normal-theory likelihood, are in the History section of
docs/validation.md); the link family has one, its tumour direct interaction
(not calibrated: docs/validation.md).
"""

from __future__ import annotations

import pytest

from bayes import validate

pytestmark = pytest.mark.slow

SEED = 20261129
DRAWS = dict(draws=250, tune=250, chains=4, thin_to=99)
RUNS = {("factorial", "positive"): 100, ("factorial", "percent"): 100, ("factorial", "rate"): 100,
        ("joint", None): 100, ("link", None): 50}
KNOWN_FLOOR = 0.80
# tag -> {parameter label prefix: why}; see docs/validation.md, "Results"
KNOWN: dict[str, dict[str, str]] = {
    "link": {"tumor_volume: direct interaction": "not calibrated in its tails: with rounding modelled, p = 0.008 "
             "on this seed's 50 tables (95% coverage 0.86; it was 0.00017 before), too many truths below the "
             "posterior: docs/validation.md, 'NK-link model'"}}


def _known(tag: str, parameter: str) -> bool:
    return any(parameter.startswith(prefix) for prefix in KNOWN.get(tag, {}))


def problems(summary: dict) -> list[str]:
    """What the calibration test objects to in one family's SBC summary (empty: calibrated).

    Both checks are corrected for the number of tests in the family
    (Bonferroni), so that a calibrated family passes with probability >= 95%.
    """
    tag = summary["tag"]
    out = [f"simulation {key} failed: {error}" for key, error in summary["failed"].items()]
    uniform, coverage = summary["uniformity"], summary["coverage"]
    level = validate.ALPHA / len(uniform)
    for row in uniform:
        if not _known(tag, row["parameter"]) and row["p_value"] < level:
            out.append(f"{row['parameter']}: ranks not uniform (pot_c p = {row['p_value']:.4f} < {level:.4f})")
    checked = [r for r in coverage if not _known(tag, r["parameter"]) and r["role"] in ("synergy", "effect")]
    for row in coverage:
        name, q, seen = row["parameter"], row["nominal"], row["observed"]
        if _known(tag, name) and q == 0.95 and seen < KNOWN_FLOOR:
            out.append(f"{name}: 95% intervals cover {seen:.2f} < {KNOWN_FLOOR} (known deviation got worse)")
    for row in checked:
        low, high = validate.binomial_range(row["sims"], row["nominal"], 1 - validate.ALPHA / len(checked))
        if not low <= row["observed"] <= high:
            out.append(f"{row['parameter']}: {row['nominal']:.0%} intervals cover {row['observed']:.2f}, "
                       f"outside {low:.2f}-{high:.2f}")
    return out


@pytest.mark.parametrize("family, kind", list(RUNS), ids=[validate.family_tag(*k) for k in RUNS])
def test_family_is_calibrated(family, kind, tmp_path):
    summary = validate.run_sbc(family, kind, sims=RUNS[(family, kind)], seed=SEED, out_dir=tmp_path,
                               workers=2, **DRAWS)
    assert summary["simulations"] == RUNS[(family, kind)]
    assert problems(summary) == []
