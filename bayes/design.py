"""Arms -> agent indicators and interaction columns.

A factorial cell (one study x endpoint) has a control arm, one arm per single
agent and one or more combination arms.  On the link scale every arm is

    arm effect = baseline + sum(agent effects in the arm) + interaction(arm)

where each combination arm carries its own interaction term (its departure
from additivity on the link scale).  This module turns a list of arms into
the two indicator matrices that say so; it knows nothing about likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Design:
    """Design of one factorial cell.

    ``arms`` are labels in canonical order (control first), ``arm_agents`` the
    agents of each arm, ``agent_matrix`` is arms x agents (1 = agent given)
    and ``interaction_matrix`` is arms x combinations (1 = that combination).
    """

    agents: tuple[str, ...]
    arms: tuple[str, ...]
    arm_agents: tuple[tuple[str, ...], ...]
    agent_matrix: np.ndarray
    interaction_matrix: np.ndarray

    @property
    def combos(self) -> tuple[str, ...]:
        return tuple(a for a, ag in zip(self.arms, self.arm_agents) if len(ag) >= 2)

    @property
    def combo_keys(self) -> tuple[str, ...]:
        """Combination labels that do not depend on agent order ('A+B' == 'B+A'),
        aligned with :attr:`combos`; used to match combinations across studies."""
        return tuple("+".join(sorted(ag)) for ag in self.arm_agents if len(ag) >= 2)

    @property
    def structure(self) -> tuple:
        """Hashable shape of the design: cells with equal structure share a compiled model."""
        index = {a: i for i, a in enumerate(self.agents)}
        return (len(self.agents),
                tuple(tuple(index[a] for a in ag) for ag in self.arm_agents))

    def arm_index(self, agents: tuple[str, ...]) -> int:
        """Position of the arm given exactly ``agents`` (empty tuple = control)."""
        return self.arm_agents.index(tuple(a for a in self.agents if a in agents))


def make_design(arm_agents: list[tuple[str, ...]] | tuple[tuple[str, ...], ...],
                agents: tuple[str, ...] | None = None) -> Design:
    """Build the design from each arm's agents, in the order given.

    ``agents`` fixes the agent order; by default it is the order of the
    single-agent arms.  The caller (the data layer) has already checked that
    the arms form a factorial; this function re-checks cheaply because a
    design built from a bad arm list would silently mean something else.
    """
    arm_agents = [tuple(a) for a in arm_agents]
    if agents is None:
        agents = tuple(a[0] for a in arm_agents if len(a) == 1)
    if () not in arm_agents:
        raise ValueError("a factorial design needs a control arm (no agents)")
    for ag in arm_agents:
        missing = [a for a in ag if (a,) not in arm_agents]
        if len(ag) >= 2 and missing:
            raise ValueError(f"combination {'+'.join(ag)} lacks single-agent arm(s) {missing}")
    ordered = [tuple(a for a in agents if a in ag) for ag in arm_agents]
    combos = [ag for ag in ordered if len(ag) >= 2]
    x = np.array([[1.0 if a in ag else 0.0 for a in agents] for ag in ordered])
    z = np.array([[1.0 if ag == c else 0.0 for c in combos] for ag in ordered]).reshape(len(ordered), len(combos))
    labels = tuple("control" if not ag else "+".join(ag) for ag in ordered)
    return Design(tuple(agents), labels, tuple(ordered), x, z)
