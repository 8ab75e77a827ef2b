"""Intermediate rewards: one-way subgoal MDPs with exact value-iteration counts (:mod:`.mdp`), and MiniGrid
worlds with tabular Q-learning (:mod:`.minigrid`, needs the ``rl`` extra) (``ontheline repro rewards``)."""

from ontheline.research.rewards.mdp import (
    MDP,
    VIResult,
    chain,
    distances_to_goal,
    graph_mdp,
    q_values,
    rooms,
    two_routes,
    value_iteration,
)

__all__ = [
    "MDP",
    "VIResult",
    "chain",
    "distances_to_goal",
    "graph_mdp",
    "q_values",
    "rooms",
    "two_routes",
    "value_iteration",
]
