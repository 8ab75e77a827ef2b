"""Intermediate rewards: exact value-iteration counts, the re-entry loop, the two-route trade-off, the worlds."""

import numpy as np
import pytest

from ontheline.research.rewards.mdp import MDP, chain, distances_to_goal, rooms, two_routes, value_iteration


def test_tiny_chains_match_hand_counted_iterations():
    # States 0-1-2-3, goal 3: the start is 3 steps away, so the third iteration fixes its action.
    assert value_iteration(chain(3, subgoal_reward=0.0)).iterations == 3
    # Goal 4, a subgoal at 2: each half is 2 steps long.
    assert value_iteration(chain(4, 1, subgoal_reward=0.0)).iterations == 4
    assert value_iteration(chain(4, 1)).iterations == 2


@pytest.mark.parametrize(("subgoals", "expected"), [(0, 40), (1, 20), (3, 10), (7, 5)])
def test_chain_of_40_needs_the_longest_segment_with_subgoals_and_40_without(subgoals, expected):
    sparse = value_iteration(chain(40, subgoals, subgoal_reward=0.0))
    shaped = value_iteration(chain(40, subgoals, subgoal_reward=0.1))
    assert sparse.iterations == 40 == distances_to_goal(chain(40, subgoals)).max()
    assert shaped.iterations == expected
    assert shaped.reaches_goal and shaped.route == tuple(range(41))


def test_re_enterable_subgoals_make_a_reward_farming_loop():
    looped = value_iteration(chain(40, 3, subgoal_reward=0.1, one_way=False))
    assert not looped.reaches_goal
    a, b = looped.route[-2:]
    assert {a, b} & {10, 20, 30}  # the loop goes in and out of a subgoal
    assert value_iteration(chain(40, 3, subgoal_reward=0.1)).reaches_goal  # one-way: it does not


def test_two_routes_trade_path_length_for_computation():
    sparse, short, long_ = two_routes(goal_reward=1.0, subgoal_reward=0.0)
    result = value_iteration(sparse)
    assert result.route_length == 10 and set(result.route[1:-1]) == set(short)
    cheap = value_iteration(two_routes(goal_reward=1.0, subgoal_reward=1.0)[0])  # r_T / r_I = 1
    assert cheap.route_length == 20 and cheap.iterations < result.iterations  # the long route, found sooner
    big = value_iteration(two_routes(goal_reward=1.0, subgoal_reward=0.01)[0])  # r_T / r_I = 100
    assert big.route_length == 10


def test_rooms_with_one_way_doorways_cut_the_iterations():
    sparse, shaped = value_iteration(rooms(subgoal_reward=0.0)), value_iteration(rooms())
    assert shaped.iterations < sparse.iterations and shaped.reaches_goal and sparse.reaches_goal


def _farthest_state_with_a_move_that_is_not_optimal(mdp):
    """The sparse count's rule: the largest distance to the goal of a live state with a non-optimal move."""
    values = value_iteration(mdp).values
    successor = np.where(mdp.next_state >= 0, mdp.next_state, 0)
    q = np.where(mdp.next_state >= 0, mdp.reward + mdp.gamma * values[successor], -np.inf)
    wrong_move = ((mdp.next_state >= 0) & (q < q.max(axis=1, keepdims=True) - 1e-9)).any(axis=1) & ~mdp.terminal
    return int(distances_to_goal(mdp)[wrong_move].max())


def test_the_sparse_count_is_the_distance_of_the_farthest_state_with_a_move_that_is_not_optimal():
    # Rooms: the start corner is 26 steps from the goal, but both its moves (right, down) are optimal,
    # so all-zero tied Q values there are never wrong; the farthest state with a wrong move is 25 away.
    world = rooms(subgoal_reward=0.0)
    result = value_iteration(world)
    assert distances_to_goal(world)[world.start] == result.route_length == 26
    assert result.iterations == _farthest_state_with_a_move_that_is_not_optimal(world) == 25
    # A chain's start can step left onto itself, a wrong move, so its count is the full distance.
    line = chain(40, subgoal_reward=0.0)
    assert value_iteration(line).iterations == _farthest_state_with_a_move_that_is_not_optimal(line) == 40
    for size, n_rooms in ((3, 2), (5, 3), (4, 4)):
        world = rooms(n_rooms, size, subgoal_reward=0.0)
        assert value_iteration(world).iterations == _farthest_state_with_a_move_that_is_not_optimal(world)


def test_value_iteration_reaches_the_fixed_point():
    mdp = chain(12, 2)
    result = value_iteration(mdp)
    successor = np.where(mdp.next_state >= 0, mdp.next_state, 0)
    q = np.where(mdp.next_state >= 0, mdp.reward + mdp.gamma * result.values[successor], -np.inf)
    np.testing.assert_allclose(np.where(mdp.terminal, 0, q.max(axis=1)), result.values, atol=1e-10)


def test_an_mdp_is_checked():
    with pytest.raises(ValueError, match="gamma"):
        MDP(np.zeros((2, 1), int), np.zeros((2, 1)), np.array([False, True]), 0, gamma=1.0)
    with pytest.raises(ValueError, match="at least one available action"):
        MDP(np.full((2, 1), -1), np.zeros((2, 1)), np.array([False, True]), 0)
