"""Deterministic goal-reaching MDPs with one-way subgoals, and exact value-iteration counts.

Zhai, Baek, Zhou, Jiao and Ma (JAIR 2022): with sparse rewards, synchronous value iteration
(VI) from V = 0 needs as many iterations as the longest distance to the goal before its
greedy policy is optimal; rewarding one-way subgoals cuts that to the longest distance to the
next subgoal. With several routes, the cheaper computation may settle on a longer route that
collects more intermediate reward.

An MDP here is a table of successors ``next_state[s, a]`` (``-1``: action unavailable) and
rewards ``reward[s, a]`` received on taking the action; terminal states have value 0. One-way
subgoals are encoded in the transitions: a subgoal cannot be entered again once left.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOLERANCE = 1e-9  # actions within this of the best Q* are all optimal


@dataclass(frozen=True)
class MDP:
    """A deterministic MDP: ``next_state`` and ``reward`` of shape ``(n_states, n_actions)``.

    Attributes
    ----------
    next_state : ndarray of shape (n_states, n_actions), int
        The successor of each state and action; -1 where the action is unavailable.
    reward : ndarray of shape (n_states, n_actions)
        Received on taking the action.
    terminal : ndarray of shape (n_states,), bool
        Terminal states have value 0.
    start : int
    gamma : float in (0, 1), default 0.9
    labels : tuple of str
        Optional names of states, for routes.

    Examples
    --------
    >>> mdp = chain(3)  # 0 - 1 - 2 - goal; actions left and right
    >>> mdp.next_state.tolist(), mdp.reward[2].tolist(), mdp.n_states
    ([[0, 1], [0, 2], [1, 3], [-1, -1]], [0.0, 1.0], 4)
    """

    next_state: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray  # (n_states,) bool
    start: int
    gamma: float = 0.9
    labels: tuple[str, ...] = ()  # optional names of states, for routes

    def __post_init__(self) -> None:
        if self.next_state.shape != self.reward.shape or self.next_state.ndim != 2:
            raise ValueError("next_state and reward must both have shape (n_states, n_actions).")
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must be in (0, 1); got {self.gamma}.")
        if not np.asarray((self.next_state >= 0).any(axis=1))[~self.terminal].all():
            raise ValueError("Every non-terminal state needs at least one available action.")

    @property
    def n_states(self) -> int:
        return self.next_state.shape[0]


@dataclass(frozen=True)
class VIResult:
    """``iterations``: the first iteration from which the greedy policy is optimal in every
    state and stays so; ``route``: the states the converged greedy policy visits from the start
    (ending at a terminal state, or at the first repeated state of a loop); ``reaches_goal``.

    Examples
    --------
    >>> result = value_iteration(chain(4))
    >>> result.iterations, result.route, result.route_length, result.reaches_goal
    (4, (0, 1, 2, 3, 4), 4, True)
    >>> result.values.round(3).tolist()
    [0.729, 0.81, 0.9, 1.0, 0.0]
    """

    iterations: int
    route: tuple[int, ...]
    reaches_goal: bool
    values: np.ndarray

    @property
    def route_length(self) -> int:
        return len(self.route) - 1


def q_values(mdp: MDP, values: np.ndarray) -> np.ndarray:
    """``Q(s, a) = r(s, a) + gamma * V(next(s, a))``; unavailable actions are -inf.

    Examples
    --------
    >>> q_values(chain(3), np.zeros(4)).tolist()  # one step of value iteration from V = 0
    [[0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [-inf, -inf]]
    """
    successor = np.where(mdp.next_state >= 0, mdp.next_state, 0)
    q = mdp.reward + mdp.gamma * values[successor]
    return np.where(mdp.next_state >= 0, q, -np.inf)


def value_iteration(mdp: MDP, *, max_iterations: int = 100_000) -> VIResult:
    """Synchronous VI from V = 0; iteration t computes ``Q_t = r + gamma V_{t-1}`` and its greedy policy.

    The greedy policy of an iteration is optimal in a state when every action tied for its
    best ``Q_t`` is optimal under ``Q*`` (ties broken arbitrarily could otherwise look optimal
    by luck, e.g. while every ``Q_t`` is still 0).

    Parameters
    ----------
    mdp : MDP
    max_iterations : int
        Raise RuntimeError if the values have not converged by then.

    Returns
    -------
    VIResult

    References
    ----------
    .. [1] Y. Zhai, C. Baek, Z. Zhou, J. Jiao and Y. Ma, "Computational Benefits of Intermediate Rewards
       for Goal-Reaching Policy Learning", JAIR 2022, arXiv:2107.03961.

    Examples
    --------
    Sparse rewards need as many iterations as the distance to the goal; a one-way subgoal halfway
    halves them:

    >>> value_iteration(chain(10)).iterations, value_iteration(chain(10, n_subgoals=1)).iterations
    (10, 5)
    """
    values = np.zeros(mdp.n_states)
    greedy_ok = []
    for _ in range(max_iterations):
        q = q_values(mdp, values)
        new = np.where(mdp.terminal, 0.0, q.max(axis=1))
        greedy_ok.append(q)
        converged = np.abs(new - values).max() < 1e-12
        values = new
        if converged:
            break
    else:
        raise RuntimeError(f"Value iteration did not converge in {max_iterations} iterations.")
    q_star = q_values(mdp, values)
    optimal = q_star >= q_star.max(axis=1, keepdims=True) - _TOLERANCE
    live = ~mdp.terminal
    last_wrong = 0
    for t, q in enumerate(greedy_ok, start=1):
        tied = q >= q.max(axis=1, keepdims=True) - _TOLERANCE
        if (tied & ~optimal)[live].any():
            last_wrong = t
    route = _route(mdp, q_star)
    return VIResult(last_wrong + 1, route, bool(mdp.terminal[route[-1]]), values)


def _route(mdp: MDP, q_star: np.ndarray) -> tuple[int, ...]:
    """Follow the greedy policy of Q* (lowest action index among ties) from the start."""
    route, seen = [mdp.start], {mdp.start}
    state = mdp.start
    while not mdp.terminal[state]:
        state = int(mdp.next_state[state, int(np.argmax(q_star[state]))])
        route.append(state)
        if state in seen:
            break
        seen.add(state)
    return tuple(route)


def chain(
    length: int, n_subgoals: int = 0, *, goal_reward: float = 1.0, subgoal_reward: float = 0.1,
    one_way: bool = True, gamma: float = 0.9,
) -> MDP:  # fmt: skip
    """States 0 .. length, the goal at ``length``; actions left and right; ``n_subgoals`` evenly spaced.

    Entering the goal pays ``goal_reward``; entering a subgoal pays ``subgoal_reward`` (0 for
    sparse rewards). ``one_way``: moving left is unavailable from a subgoal and from the state
    after it, so a subgoal is entered at most once. Without it the subgoal reward can be farmed.

    Examples
    --------
    >>> mdp = chain(4, n_subgoals=1)  # the subgoal is state 2
    >>> mdp.reward[1].tolist(), mdp.next_state[2].tolist(), mdp.next_state[3].tolist()  # no way back into it
    ([0.0, 0.1], [-1, 3], [-1, 4])
    """
    if length < 1 or not 0 <= n_subgoals < length:
        raise ValueError(f"chain needs length >= 1 and 0 <= n_subgoals < length; got {length}, {n_subgoals}.")
    subgoals = {round(length * (i + 1) / (n_subgoals + 1)) for i in range(n_subgoals)}
    next_state = np.full((length + 1, 2), -1)
    reward = np.zeros((length + 1, 2))
    for s in range(length):
        right = s + 1
        next_state[s, 1] = right
        reward[s, 1] = goal_reward if right == length else subgoal_reward if right in subgoals else 0.0
        left = max(s - 1, 0)
        if not (one_way and (s in subgoals or s - 1 in subgoals)):
            next_state[s, 0] = left
            reward[s, 0] = subgoal_reward if left in subgoals and left != s else 0.0
    terminal = np.zeros(length + 1, bool)
    terminal[length] = True
    return MDP(next_state, reward, terminal, 0, gamma)


def graph_mdp(
    edges: Sequence[tuple[int, int]], n_states: int, goal: int, start: int, *, subgoals: Sequence[int] = (),
    goal_reward: float = 1.0, subgoal_reward: float = 0.1, gamma: float = 0.9,
) -> MDP:  # fmt: skip
    """An MDP whose actions follow directed ``edges`` (a one-way subgoal has no edge back into it).

    Examples
    --------
    >>> mdp = graph_mdp([(0, 1), (1, 2), (0, 2)], n_states=3, goal=2, start=0)  # a direct edge and a detour
    >>> mdp.next_state.tolist(), mdp.reward.tolist()
    ([[1, 2], [2, -1], [-1, -1]], [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    >>> value_iteration(mdp).route
    (0, 2)
    """
    out: list[list[int]] = [[] for _ in range(n_states)]
    for a, b in edges:
        out[a].append(b)
    width = max(1, max(len(o) for o in out))
    next_state = np.full((n_states, width), -1)
    reward = np.zeros((n_states, width))
    marks = set(subgoals)
    for s, targets in enumerate(out):
        for k, t in enumerate(targets):
            next_state[s, k] = t
            reward[s, k] = goal_reward if t == goal else subgoal_reward if t in marks else 0.0
    terminal = np.zeros(n_states, bool)
    terminal[goal] = True
    return MDP(next_state, reward, terminal, start, gamma)


def two_routes(
    short: int = 10, long: int = 20, n_subgoals: int = 3, *, goal_reward: float = 1.0,
    subgoal_reward: float = 0.1, gamma: float = 0.9,
) -> tuple[MDP, tuple[int, ...], tuple[int, ...]]:  # fmt: skip
    """A start, a short route without subgoals and a long route with ``n_subgoals`` subgoals.

    Both routes are one-way corridors (OWMP: once on a route, the agent goes on to the goal), so
    the only decision is the start's. Returns the MDP and the state ids of the short and the
    long route (start and goal excluded).

    Examples
    --------
    Rich intermediate rewards make value iteration converge faster, onto the longer route:

    >>> for subgoal_reward in (0.0, 0.5):
    ...     mdp, short, long = two_routes(10, 20, n_subgoals=3, subgoal_reward=subgoal_reward)
    ...     result = value_iteration(mdp)
    ...     print(result.iterations, result.route_length, result.route[1] in long)
    10 10 False
    5 20 True
    """
    start, goal = 0, 1
    short_ids = tuple(range(2, 2 + short - 1))
    long_ids = tuple(range(2 + short - 1, 2 + short - 1 + long - 1))
    n_states = 2 + len(short_ids) + len(long_ids)
    spaced = {long_ids[round(len(long_ids) * (i + 1) / (n_subgoals + 1)) - 1] for i in range(n_subgoals)}
    edges = [(a, b) for route in (short_ids, long_ids) for a, b in zip([start, *route], [*route, goal])]
    mdp = graph_mdp(edges, n_states, goal, start, subgoals=sorted(spaced), goal_reward=goal_reward,
                    subgoal_reward=subgoal_reward, gamma=gamma)  # fmt: skip
    return mdp, short_ids, long_ids


def rooms(
    n_rooms: int = 4, size: int = 5, *, goal_reward: float = 1.0, subgoal_reward: float = 0.1, gamma: float = 0.9
) -> MDP:
    """``n_rooms`` square rooms in a row, joined by one-way doorways (the subgoals), start in the
    first room's top-left corner, goal in the last room's bottom-right corner; four moves.

    Examples
    --------
    >>> sparse, rewarded = rooms(2, 3, subgoal_reward=0.0), rooms(2, 3)
    >>> sparse.n_states, value_iteration(sparse).iterations, value_iteration(rewarded).iterations
    (19, 7, 3)
    """
    width = n_rooms * size + (n_rooms - 1)
    cells: dict[tuple[int, int], int] = {}
    for x in range(width):
        for y in range(size):
            door = x % (size + 1) == size
            if not door or y == size // 2:
                cells[(x, y)] = len(cells)
    doors = {cells[(r * (size + 1) + size, size // 2)] for r in range(n_rooms - 1)}
    edges = []
    for (x, y), s in cells.items():
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            t = cells.get((x + dx, y + dy))
            # A doorway is entered from the west only and left to the east only.
            if t is not None and not (dx == -1 and (t in doors or s in doors)):
                edges.append((s, t))
    goal = cells[(width - 1, size - 1)]
    return graph_mdp(edges, len(cells), goal, cells[(0, 0)], subgoals=sorted(doors), goal_reward=goal_reward,
                     subgoal_reward=subgoal_reward, gamma=gamma)  # fmt: skip


def distances_to_goal(mdp: MDP) -> np.ndarray:
    """Shortest number of steps from each state to a terminal state (inf if none): the sparse VI count.

    Examples
    --------
    >>> distances_to_goal(chain(4)).tolist()
    [4.0, 3.0, 2.0, 1.0, 0.0]
    """
    back: list[list[int]] = [[] for _ in range(mdp.n_states)]
    for s, a in zip(*np.nonzero(mdp.next_state >= 0)):
        back[int(mdp.next_state[s, a])].append(int(s))
    distance = np.full(mdp.n_states, np.inf)
    queue = deque(np.flatnonzero(mdp.terminal).tolist())
    distance[list(queue)] = 0
    while queue:
        t = queue.popleft()
        for s in back[t]:
            if distance[s] == np.inf:
                distance[s] = distance[t] + 1
                queue.append(s)
    return distance


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
