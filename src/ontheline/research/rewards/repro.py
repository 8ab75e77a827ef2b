"""Intermediate rewards cut the computation of goal-reaching policies (Zhai, Baek, Zhou, Jiao, Ma; JAIR 2022).

Three parts: exact synchronous value-iteration counts on chains of length 40 with 0, 1, 3 and
7 evenly spaced one-way subgoals (sparse vs intermediate rewards) and on four rooms joined by
one-way doorways; a two-route MDP (a short route with no subgoal, a long one with three) over
a sweep of terminal-to-intermediate reward ratios, with the route the converged policy takes;
and the authors' tabular Q-learning on the MiniGrid maze and doors worlds, sparse vs
intermediate, at their episode budgets. Nothing is selected: every count, reward ratio, episode
budget and seed is reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.research.rewards.mdp import chain, rooms, two_routes, value_iteration

CHAIN_LENGTH = 40
SUBGOALS = (0, 1, 3, 7)
RATIOS = (1, 2, 5, 10, 20, 50, 100)
BUDGETS = {"maze": (18, 24, 30, 36), "doors": (40, 80, 120, 160)}  # the authors' table 3 budgets
SUBGOAL_REWARD = 0.1  # with a terminal reward of 1 and gamma 0.9, as in the spec's pilot


def run(quick: bool = False, *, seeds: int | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The JSON object of ``ontheline repro rewards``; ``quick`` runs 20 Q-learning seeds instead of 100."""
    n_seeds = seeds or (20 if quick else 100)
    result: dict[str, Any] = {
        "chain": [
            {
                "subgoals": n,
                "iterations_sparse": value_iteration(chain(CHAIN_LENGTH, n, subgoal_reward=0.0)).iterations,
                "iterations_intermediate": value_iteration(
                    chain(CHAIN_LENGTH, n, subgoal_reward=SUBGOAL_REWARD)
                ).iterations,
            }
            for n in SUBGOALS
        ],
        "rooms": {
            "iterations_sparse": value_iteration(rooms(subgoal_reward=0.0)).iterations,
            "iterations_intermediate": value_iteration(rooms(subgoal_reward=SUBGOAL_REWARD)).iterations,
        },
        "multipath": [_two_routes(ratio) for ratio in RATIOS],
        "re_entry": _re_entry(),
        "minigrid": _minigrid(n_seeds, progress),
    }
    maze = result["minigrid"]["maze"]
    first = str(BUDGETS["maze"][0])
    result["goals"] = {
        "chain_counts_are_the_longest_segment": all(
            r["iterations_sparse"] == CHAIN_LENGTH
            and r["iterations_intermediate"] == CHAIN_LENGTH // (r["subgoals"] + 1)
            for r in result["chain"]
        ),
        "maze_success_gain_at_the_smallest_budget_pp": 100
        * (maze["intermediate"][first]["success_rate"] - maze["sparse"][first]["success_rate"]),
    }
    return result


def _two_routes(ratio: float) -> dict[str, Any]:
    sparse, _, _ = two_routes(goal_reward=1.0, subgoal_reward=0.0)
    shaped, _, _ = two_routes(goal_reward=1.0, subgoal_reward=1.0 / ratio)
    a, b = value_iteration(sparse), value_iteration(shaped)
    return {
        "ratio": float(ratio), "iterations_sparse": a.iterations, "iterations_intermediate": b.iterations,
        "route_length_sparse": a.route_length, "route_length_intermediate": b.route_length,
    }  # fmt: skip


def _re_entry() -> dict[str, Any]:
    """The negative control: subgoals that can be re-entered let the policy farm them instead of reaching the goal."""
    looped = value_iteration(chain(CHAIN_LENGTH, 3, subgoal_reward=SUBGOAL_REWARD, one_way=False))
    return {"reaches_goal": looped.reaches_goal, "route_tail": list(looped.route[-4:])}


def _minigrid(n_seeds: int, progress: Progress | None = None) -> dict[str, Any]:
    from ontheline.research.rewards.minigrid import WORLDS, q_learning

    out: dict[str, Any] = {}
    total, done = 4 * n_seeds, 0
    for world, budgets in BUDGETS.items():
        out[world] = {}
        for variant, intermediate in (("sparse", False), ("intermediate", True)):
            env = WORLDS[world](intermediate=intermediate, observe=False)
            runs = []
            for seed in range(n_seeds):
                if progress and seed % 10 == 0:
                    progress(f"Q-learning: {world}, {variant}", done, total)
                runs.append(q_learning(env, budgets, seed=seed))
                done += 1
            out[world][variant] = {
                str(b): {
                    "success_rate": float(np.mean([r[b].success for r in runs])),
                    "mean_greedy_steps": _mean_or_none([r[b].steps for r in runs if r[b].success]),
                }
                for b in budgets
            }
    out["seeds"] = n_seeds
    if progress:
        progress("Q-learning", total, total)
    return out


def _mean_or_none(values: list[int]) -> float | None:
    return float(np.mean(values)) if values else None


def text(result: dict[str, Any]) -> str:
    lines = [f"Value iterations until the greedy policy is optimal (chain of {CHAIN_LENGTH}):", ""]
    lines.append(f"{'subgoals':>9} {'sparse':>7} {'intermediate':>13}")
    lines += [
        f"{r['subgoals']:>9} {r['iterations_sparse']:>7} {r['iterations_intermediate']:>13}" for r in result["chain"]
    ]
    rooms_ = result["rooms"]
    lines += ["", f"Four rooms, one-way doorways: {rooms_['iterations_sparse']} iterations sparse, "
              f"{rooms_['iterations_intermediate']} with intermediate rewards.", ""]  # fmt: skip
    lines.append("Two routes (short: 10 steps, no subgoal; long: 20 steps, 3 subgoals):")
    lines.append(f"{'r_T/r_I':>8} {'iter sparse':>12} {'iter inter.':>12} {'route sparse':>13} {'route inter.':>13}")
    lines += [
        f"{r['ratio']:>8g} {r['iterations_sparse']:>12} {r['iterations_intermediate']:>12} "
        f"{r['route_length_sparse']:>13} {r['route_length_intermediate']:>13}"
        for r in result["multipath"]
    ]
    loop = result["re_entry"]
    lines += ["", f"Re-enterable subgoals (negative control): the converged policy reaches the goal: "
              f"{loop['reaches_goal']} (it ends in the loop {loop['route_tail']}).", ""]  # fmt: skip
    grid = result["minigrid"]
    lines.append(
        f"Tabular Q-learning on MiniGrid, {grid['seeds']} seeds: success rate of the greedy policy (mean steps)"
    )
    for world in BUDGETS:
        for variant in ("sparse", "intermediate"):
            cells = [
                f"{b}: {v['success_rate']:.2f} ({_steps(v['mean_greedy_steps'])})"
                for b, v in grid[world][variant].items()
            ]
            lines.append(f"  {world:<6} {variant:<13} " + "   ".join(cells))
    return "\n".join(lines)


def _steps(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
