"""Joint-model pooling units: combinations match across studies whatever the agent order."""

from __future__ import annotations

from pathlib import Path

import bayes
from bayes.analysis import model_specs
from bayes.models.builder import build_model
from bayes.nprior import NPrior
from bayes.priors import load_prior_set

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_two_studies_share_one_synergy_unit_despite_agent_order():
    study = bayes.read_study(FIXTURES / "two_studies.csv")   # lab_two lists IL-2 first
    (spec,) = model_specs(study, "joint", NPrior())
    assert [c.design.combos for c in spec.cells] == [("imatinib+IL-2",), ("IL-2+imatinib",)]
    units, studies = spec.units("combo")
    assert units == [("tumor_volume", "IL-2+imatinib")]
    assert studies[units[0]] == {"lab_one", "lab_two"}
    agent_units, agent_studies = spec.units("agent")
    assert sorted(agent_units) == [("tumor_volume", "IL-2"), ("tumor_volume", "imatinib")]
    model = build_model(spec, load_prior_set())
    names = {rv.name: rv for rv in model.free_RVs}
    # one deviation per study for the shared synergy, and per study x agent for the effects
    assert names["study_dev_synergy"].type.shape == (2,)
    assert names["study_dev_effect"].type.shape == (4,)
    assert spec.coords()["synergy_unit"] == ["tumor_volume: IL-2+imatinib"]
