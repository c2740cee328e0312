"""Unit tests for bayes.design: arms -> agent indicators and interaction columns."""

from __future__ import annotations

import numpy as np
import pytest

from bayes.design import Design, make_design

TWO_BY_TWO = [(), ("A",), ("B",), ("A", "B")]


def test_two_by_two_matrices_labels_and_combos():
    d = make_design(TWO_BY_TWO)
    assert isinstance(d, Design)
    assert d.agents == ("A", "B")
    np.testing.assert_array_equal(d.agent_matrix, [[0, 0], [1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(d.interaction_matrix, [[0], [0], [0], [1]])
    assert d.agent_matrix.shape == (4, 2) and d.interaction_matrix.shape == (4, 1)
    assert d.arms == ("control", "A", "B", "A+B")
    assert d.arm_agents == ((), ("A",), ("B",), ("A", "B"))
    assert d.combos == ("A+B",)


def test_combination_agents_are_put_in_agent_order():
    d = make_design([(), ("A",), ("B",), ("B", "A")])
    assert d.arms[-1] == "A+B"
    assert d.arm_agents[-1] == ("A", "B")
    np.testing.assert_array_equal(d.agent_matrix[-1], [1, 1])


def test_explicit_agent_order():
    d = make_design(TWO_BY_TWO, agents=("B", "A"))
    assert d.agents == ("B", "A")
    np.testing.assert_array_equal(d.agent_matrix, [[0, 0], [0, 1], [1, 0], [1, 1]])
    assert d.arms == ("control", "A", "B", "B+A")


def test_default_agent_order_is_the_order_of_single_arms():
    d = make_design([(), ("B",), ("A",), ("A", "B")])
    assert d.agents == ("B", "A")
    np.testing.assert_array_equal(d.agent_matrix, [[0, 0], [1, 0], [0, 1], [1, 1]])
    assert d.arms == ("control", "B", "A", "B+A")


def test_three_agent_design_with_two_combinations():
    d = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "B", "C")])
    assert d.agents == ("A", "B", "C")
    assert d.arms == ("control", "A", "B", "C", "A+B", "A+B+C")
    assert d.combos == ("A+B", "A+B+C")
    np.testing.assert_array_equal(d.agent_matrix, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                                                   [1, 1, 0], [1, 1, 1]])
    # every combination arm carries its own interaction, nothing else does
    np.testing.assert_array_equal(d.interaction_matrix, [[0, 0], [0, 0], [0, 0], [0, 0],
                                                         [1, 0], [0, 1]])
    # the linear predictor adds up as documented
    baseline, effects, gammas = 7.0, np.array([-0.1, -0.3, -0.5]), np.array([-0.7, 0.2])
    eta = baseline + d.agent_matrix @ effects + d.interaction_matrix @ gammas
    np.testing.assert_allclose(eta, [7.0, 6.9, 6.7, 6.5, 7.0 - 0.4 - 0.7, 7.0 - 0.9 + 0.2])


def test_design_without_combination_has_empty_interaction_matrix():
    d = make_design([(), ("A",), ("B",)])
    assert d.combos == ()
    assert d.interaction_matrix.shape == (3, 0)


def test_structure_ignores_agent_names():
    d1 = make_design(TWO_BY_TWO)
    d2 = make_design([(), ("imatinib",), ("IL-2",), ("imatinib", "IL-2")])
    assert d1.structure == d2.structure
    assert d1.structure == (2, ((), (0,), (1,), (0, 1)))
    assert hash(d1.structure) == hash(d2.structure)


def test_structure_differs_for_different_layouts():
    two = make_design(TWO_BY_TWO)
    three = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "B", "C")])
    three_pairs = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "C")])
    no_combo = make_design([(), ("A",), ("B",)])
    reordered = make_design([(), ("A",), ("A", "B"), ("B",)])
    structures = {two.structure, three.structure, three_pairs.structure, no_combo.structure,
                  reordered.structure}
    assert len(structures) == 5


def test_no_control_arm_is_refused():
    with pytest.raises(ValueError, match="needs a control arm"):
        make_design([("A",), ("B",), ("A", "B")])


def test_missing_single_agent_arm_is_refused():
    with pytest.raises(ValueError, match=r"combination A\+B lacks single-agent arm\(s\) \['B'\]"):
        make_design([(), ("A",), ("A", "B")])


def test_missing_single_in_three_agent_combination():
    with pytest.raises(ValueError, match=r"A\+B\+C lacks single-agent arm\(s\) \['C'\]"):
        make_design([(), ("A",), ("B",), ("A", "B"), ("A", "B", "C")])


def test_arm_index():
    d = make_design([(), ("A",), ("B",), ("C",), ("A", "B"), ("A", "B", "C")])
    assert d.arm_index(()) == 0
    assert d.arm_index(("A",)) == 1
    assert d.arm_index(("C",)) == 3
    assert d.arm_index(("A", "B")) == 4
    assert d.arm_index(("B", "A")) == 4          # order of agents does not matter
    assert d.arm_index(("C", "B", "A")) == 5
    with pytest.raises(ValueError):
        d.arm_index(("A", "C"))                  # no such arm


def test_design_is_frozen():
    d = make_design(TWO_BY_TWO)
    with pytest.raises(AttributeError):
        d.agents = ("X", "Y")  # type: ignore[misc]
