"""MiniGrid worlds with one-way intermediate rewards, and the tabular Q-learning protocol of the paper.

Two worlds, each in a sparse and an intermediate-reward variant (gymnasium API, minigrid 3.x):

- ``MazeEnv`` (7 x 7): turn left, turn right, forward. Reaching the goal pays 10 and ends the
  episode; the intermediate variant has four balls on the way, +1 each when stepped on, and a
  ball disappears when collected (one-way: it can never pay again).
- ``DoorsEnv`` (9 x 9): three corridors, each closed by a locked door whose key lies in the
  corridor (the top one has two doors). Actions add pickup and toggle; the agent carries every
  key it picks up; a door opens with its key. The intermediate variant pays +2 for each key
  picked up and for each door unlocked, once each; the goal pays 10.

Layouts follow the authors' ``kebaek/minigrid`` (``MazeEnv``, ``ThreeDoorsEnv``); the doors here
are locked and rewarded once, so no reward can be farmed by closing and reopening them.

``q_learning`` is the authors' asynchronous tabular Q-learning: learning rate 0.1, discount
0.9, a random action with probability 0.8, otherwise the greedy one, and an untried action
when the greedy value is still 0; episodes of at most 200 steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra

with extra("rl"):
    from gymnasium import spaces
    from minigrid.core.grid import Grid
    from minigrid.core.mission import MissionSpace
    from minigrid.core.world_object import Ball, Door, Goal, Key
    from minigrid.minigrid_env import MiniGridEnv

#: What reaching the goal pays, in both worlds and both variants.
GOAL_REWARD = 10.0
_MISSION = "get to the green goal square"


class _OneWayWorld(MiniGridEnv):
    """Shared: a fixed start, custom rewards, and a hashable ``state_key()`` for tabular learning."""

    n_actions = 3

    def __init__(
        self, size: int, start: tuple[int, int], start_dir: int, intermediate: bool, observe: bool = True, **kwargs: Any
    ) -> None:
        self.start, self.start_dir, self.intermediate, self.observe = start, start_dir, intermediate, observe
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: _MISSION), grid_size=size, max_steps=4 * size * size,
            see_through_walls=True, **kwargs,
        )  # fmt: skip
        self.action_space = spaces.Discrete(self.n_actions)

    def _place_agent(self) -> None:
        self.agent_pos, self.agent_dir = self.start, self.start_dir
        self.mission = _MISSION

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:  # an int of the action space
        self.step_count += 1
        reward, terminated = 0.0, False
        front = self.front_pos
        cell = self.grid.get(*front)
        if action == 0:
            self.agent_dir = (self.agent_dir - 1) % 4
        elif action == 1:
            self.agent_dir = (self.agent_dir + 1) % 4
        elif action == 2:
            if cell is None or cell.can_overlap():
                self.agent_pos = tuple(front)
            if cell is not None and cell.type == "goal":
                reward, terminated = GOAL_REWARD, True
            else:
                reward = self._on_enter(cell, front)
        else:
            reward = self._interact(action, cell, front)
        truncated = self.step_count >= self.max_steps
        return self.gen_obs(), reward, terminated, truncated, {}

    def gen_obs(self) -> Any:
        """MiniGrid's egocentric view; with ``observe=False`` only the tabular state (about 10x faster)."""
        return super().gen_obs() if self.observe else {"state": self.state_key()}

    def _on_enter(self, cell: Any, pos: Any) -> float:
        return 0.0

    def _interact(self, action: int, cell: Any, pos: Any) -> float:
        raise ValueError(f"Unknown action {action}; this world has {self.n_actions} actions.")

    def state_key(self) -> tuple[Any, ...]:
        """Position, direction and whatever has changed in the world (the tabular state)."""
        return (*self.agent_pos, self.agent_dir)


class MazeEnv(_OneWayWorld):
    """The 7 x 7 maze; ``intermediate=True`` adds four one-way +1 balls.

    Actions: 0 turn left, 1 turn right, 2 forward. ``observe=False`` skips MiniGrid's image
    observation (the tabular state is ``state_key()``), about ten times faster.

    References
    ----------
    .. [1] Y. Zhai, C. Baek, Z. Zhou, J. Jiao and Y. Ma, "Computational Benefits of Intermediate Rewards
       for Goal-Reaching Policy Learning", JAIR 2022, arXiv:2107.03961 (its MiniGrid experiments).

    Examples
    --------
    >>> env = MazeEnv(intermediate=True, observe=False)
    >>> _ = env.reset(seed=0)
    >>> env.state_key()  # x, y, direction, and which balls are still there
    (1, 5, 0, True, True, True, True)
    >>> _, reward, terminated, _, _ = env.step(2)  # forward
    >>> reward, terminated, env.n_actions
    (0.0, False, 3)
    """

    BALLS = ((2, 1), (2, 3), (5, 3), (3, 5))

    def __init__(self, intermediate: bool = False, observe: bool = True, **kwargs: Any) -> None:
        super().__init__(7, (1, 5), 0, intermediate, observe, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.grid.horz_wall(1, 4, length=4)
        self.grid.horz_wall(2, 2, length=4)
        self.put_obj(Goal(), width - 2, 1)
        if self.intermediate:
            for x, y in self.BALLS:
                self.grid.set(x, y, Ball())
        self._place_agent()

    def _on_enter(self, cell: Any, pos: Any) -> float:
        if cell is not None and cell.type == "ball":  # the ball is collected and gone: one-way
            self.grid.set(pos[0], pos[1], None)
            return 1.0
        return 0.0

    def state_key(self) -> tuple[Any, ...]:
        balls = tuple(self.grid.get(x, y) is not None for x, y in self.BALLS) if self.intermediate else ()
        return (*self.agent_pos, self.agent_dir, *balls)


class DoorsEnv(_OneWayWorld):
    """The 9 x 9 world of locked doors and keys; ``intermediate=True`` pays +2 per key and per door, once.

    Actions: 0 turn left, 1 turn right, 2 forward, 3 pick up, 4 toggle (a door opens with its key).

    References
    ----------
    .. [1] Y. Zhai, C. Baek, Z. Zhou, J. Jiao and Y. Ma, "Computational Benefits of Intermediate Rewards
       for Goal-Reaching Policy Learning", JAIR 2022, arXiv:2107.03961 (its MiniGrid experiments).

    Examples
    --------
    >>> env = DoorsEnv(intermediate=True, observe=False)
    >>> _ = env.reset(seed=0)
    >>> env.n_actions, env.max_steps, len(env.state_key())  # position, direction, keys held, doors' states
    (5, 324, 11)
    """

    n_actions = 5  # left, right, forward, pickup, toggle
    KEYS = (((1, 2), "purple"), ((4, 2), "green"), ((3, 4), "blue"), ((2, 6), "yellow"))
    DOORS = (((3, 2), "purple"), ((6, 2), "green"), ((5, 4), "blue"), ((6, 6), "yellow"))
    STEP_REWARD = 2.0

    def __init__(self, intermediate: bool = False, observe: bool = True, **kwargs: Any) -> None:
        super().__init__(9, (1, 7), 3, intermediate, observe, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        for y in (1, 3, 5, 7):
            self.grid.horz_wall(2, y, length=5)
        self.put_obj(Goal(), 7, 1)
        for (x, y), color in self.KEYS:
            self.grid.set(x, y, Key(color))
        for (x, y), color in self.DOORS:
            self.grid.set(x, y, Door(color, is_locked=True))
        self.keys: set[str] = set()
        self._place_agent()

    def _interact(self, action: int, cell: Any, pos: Any) -> float:
        pay = self.STEP_REWARD if self.intermediate else 0.0
        if action == 3 and cell is not None and cell.type == "key":
            self.keys.add(cell.color)
            self.grid.set(pos[0], pos[1], None)  # picked up: gone, pays once
            return pay
        if action == 4 and cell is not None and cell.type == "door":
            if cell.is_locked:
                if cell.color in self.keys:
                    cell.is_locked, cell.is_open = False, True  # unlocked once: pays once
                    return pay
                return 0.0
            cell.is_open = not cell.is_open
            return 0.0
        if action in (3, 4):
            return 0.0
        return super()._interact(action, cell, pos)

    def state_key(self) -> tuple[Any, ...]:
        keys = tuple(color in self.keys for _, color in self.KEYS)
        doors = tuple(_door_state(self.grid.get(x, y)) for (x, y), _ in self.DOORS)
        return (*self.agent_pos, self.agent_dir, *keys, *doors)


#: The worlds by the name the reproduction (``ontheline repro rewards``) uses.
WORLDS: dict[str, Callable[..., _OneWayWorld]] = {"maze": MazeEnv, "doors": DoorsEnv}


def _door_state(door: Any) -> tuple[bool, bool]:
    """``(locked, open)`` of a door cell (every door of the world stays where it was placed)."""
    return bool(door.is_locked), bool(door.is_open)


@dataclass(frozen=True)
class GreedyRun:
    """The learned greedy policy followed from the start: did it reach the goal, and in how many steps.

    Examples
    --------
    >>> q_learning(MazeEnv(intermediate=True, observe=False), (50,), seed=0)[50]
    GreedyRun(success=True, steps=24)
    """

    success: bool
    steps: int


def q_learning(
    env: _OneWayWorld, budgets: tuple[int, ...], *, seed: int, lr: float = 0.1, discount: float = 0.9,
    eps: float = 0.8, max_episode_length: int = 200,
) -> dict[int, GreedyRun]:  # fmt: skip
    """Train for ``max(budgets)`` episodes; after each budget, evaluate the greedy policy once.

    One run serves every budget: with the same seed, training for b episodes is a prefix of
    training for more. An unseen state (or a greedy value of 0) takes a random action in the
    evaluation, as in the authors' evaluation script.

    Parameters
    ----------
    env : MazeEnv or DoorsEnv
    budgets : tuple of int
        The numbers of training episodes after which the greedy policy is evaluated.
    seed : int
        Seeds the exploration and the world.
    lr, discount, eps : float
        Learning rate, discount and the probability of a random action.
    max_episode_length : int

    Returns
    -------
    dict of int to GreedyRun
        One evaluation per budget.

    References
    ----------
    .. [1] Y. Zhai, C. Baek, Z. Zhou, J. Jiao and Y. Ma, "Computational Benefits of Intermediate Rewards
       for Goal-Reaching Policy Learning", JAIR 2022, arXiv:2107.03961 (its MiniGrid experiments).

    Examples
    --------
    With the same budget, intermediate rewards find a far shorter route than the sparse goal reward:

    >>> for intermediate in (False, True):
    ...     print(q_learning(MazeEnv(intermediate=intermediate, observe=False), (50, 200), seed=0))
    {50: GreedyRun(success=True, steps=168), 200: GreedyRun(success=True, steps=20)}
    {50: GreedyRun(success=True, steps=24), 200: GreedyRun(success=True, steps=24)}
    """
    rng = np.random.default_rng(seed)
    n = env.n_actions
    q: dict[tuple[Any, ...], np.ndarray] = {}
    tried: dict[tuple[Any, ...], np.ndarray] = {}
    results = {}
    for episode in range(1, max(budgets) + 1):
        env.reset(seed=seed)
        state = env.state_key()
        for _ in range(max_episode_length):
            values = q.setdefault(state, np.zeros(n))
            if rng.random() <= eps:
                action = int(rng.integers(n))
            else:
                action = int(np.argmax(values))
                if values[action] == 0:
                    untried = np.flatnonzero(~tried.setdefault(state, np.zeros(n, bool)))
                    action = int(untried[0]) if len(untried) else int(rng.integers(n))
            tried.setdefault(state, np.zeros(n, bool))[action] = True
            _, reward, terminated, _, _ = env.step(action)
            following = env.state_key()
            future = 0.0 if terminated else q.setdefault(following, np.zeros(n)).max()
            values[action] = (1 - lr) * values[action] + lr * (reward + discount * future)
            state = following
            if terminated:
                break
        if episode in budgets:
            results[episode] = greedy_run(env, q, rng, seed)
    return results


def greedy_run(
    env: _OneWayWorld, q: dict[tuple[Any, ...], np.ndarray], rng: np.random.Generator, seed: int
) -> GreedyRun:
    """Follow the greedy policy of the Q-table ``q`` from the start, once, for at most ``env.max_steps`` steps.

    A state the table has not seen, or whose values are all 0, takes a random action from ``rng``.

    Examples
    --------
    >>> greedy_run(MazeEnv(observe=False), {}, np.random.default_rng(0), seed=0)  # an empty table: a random walk
    GreedyRun(success=False, steps=196)
    """
    env.reset(seed=seed)
    for step in range(1, env.max_steps + 1):
        values = q.get(env.state_key())
        action = (
            int(np.argmax(values)) if values is not None and values.max() != 0 else int(rng.integers(env.n_actions))
        )
        _, _, terminated, _, _ = env.step(action)
        if terminated:
            return GreedyRun(True, step)
    return GreedyRun(False, env.max_steps)


__all__ = ["GOAL_REWARD", "WORLDS", "DoorsEnv", "GreedyRun", "MazeEnv", "greedy_run", "q_learning"]
