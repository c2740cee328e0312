"""The per-endpoint factorial model for positive endpoints, fitted from summaries.

Each animal's value in arm j is log-normal with log-median ``m_j`` and log-sd
``s_j``.  The arm's population mean is ``E_j = exp(m_j + s_j^2 / 2)`` and its
variance ``V_j = (exp(s_j^2) - 1) E_j^2``.  A paper reports, from n_j animals,
the sample mean and SD; their sampling distributions give the likelihood
(DESIGN.md section 3)::

    reported mean     ~ Normal(E_j, sqrt(V_j / n_j))
    reported SD^2     ~ Gamma((n_j - 1) / 2, rate = (n_j - 1) / (2 V_j))

and on the log scale ``m_j = baseline + sum(agent effects) + interaction``.
All values are divided by the reported control mean before fitting (the
``scale``), so priors are unit-free; every reported quantity that depends on
units is multiplied back afterwards.  The ``additive`` variant drops the
interaction.  This module builds models; it does not sample them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes.design import Design, make_design
from bayes.priors import PriorSet

MODEL_NAMES = ("factorial", "additive")


@dataclass(frozen=True)
class CellData:
    """Numbers one factorial fit needs, in canonical arm order.

    ``mean`` and ``sd`` are in the data's own units; ``scale`` is the reported
    control mean they are divided by inside the model; ``n`` is the number of
    animals per arm used by the likelihood (reported or assumed).
    """

    design: Design
    mean: np.ndarray
    sd: np.ndarray
    n: np.ndarray
    scale: float

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The ``pm.Data`` values, keyed by container name."""
        return {"obs_mean": self.mean / self.scale,
                "obs_var": (self.sd / self.scale) ** 2,
                "n_animals": self.n.astype(float)}


def cell_data(rows: pd.DataFrame, n_assumed: float | None = None) -> CellData:
    """CellData from one cell of a normalised study table (canonical order).

    A row's own n wins; otherwise ``n_assumed`` is used.  A reported SE is
    turned into an SD with the n in use.
    """
    design = make_design([tuple(a) for a in rows["agents"]])
    n = rows["n"].to_numpy(float).copy()
    if np.isnan(n).any():
        if n_assumed is None:
            raise ValueError("n is not reported for every arm and no n assumption was given")
        n[np.isnan(n)] = float(n_assumed)
    sd = rows["sd"].to_numpy(float).copy()
    from_se = np.isnan(sd)
    sd[from_se] = rows["se"].to_numpy(float)[from_se] * np.sqrt(n[from_se])
    mean = rows["mean"].to_numpy(float)
    return CellData(design, mean, sd, n, float(mean[0]))


def build_factorial(data: CellData, priors: PriorSet, *, interaction: bool = True) -> pm.Model:
    """The log-normal summary-statistics model of one factorial cell."""
    design = data.design
    coords = {"arm": list(design.arms), "agent": list(design.agents)}
    if interaction:
        coords["combo"] = list(design.combos)
    inputs = data.model_inputs()
    with pm.Model(coords=coords) as model:
        obs_mean = pm.Data("obs_mean", inputs["obs_mean"], dims="arm")
        obs_var = pm.Data("obs_var", inputs["obs_var"], dims="arm")
        n = pm.Data("n_animals", inputs["n_animals"], dims="arm")

        baseline = priors["baseline"].create_variable("baseline")
        agent_effect = priors["agent_effect"].create_variable("agent_effect", dims="agent")
        log_median = baseline + pt.dot(design.agent_matrix, agent_effect)
        if interaction:
            inter = priors["interaction"].create_variable("interaction", dims="combo")
            log_median = log_median + pt.dot(design.interaction_matrix, inter)
        sd_log = priors["sd_log"].create_variable("sd_log", dims="arm")

        log_median = pm.Deterministic("log_median", log_median, dims="arm")
        arm_mean = pm.Deterministic("arm_mean", pt.exp(log_median + sd_log**2 / 2), dims="arm")
        arm_var = pt.expm1(sd_log**2) * arm_mean**2

        pm.Normal("mean_obs", mu=arm_mean, sigma=pt.sqrt(arm_var / n), observed=obs_mean, dims="arm")
        pm.Gamma("var_obs", alpha=(n - 1) / 2, beta=(n - 1) / (2 * arm_var), observed=obs_var, dims="arm")
    return model
