"""The MiniGrid worlds, tabular Q-learning and the reproduction's JSON (the rl extra)."""

import pytest

minigrid = pytest.importorskip("minigrid", reason="the rl extra, which make test installs")

from ontheline.research.rewards.minigrid import DoorsEnv, MazeEnv, q_learning  # noqa: E402


def _walk(env, actions):
    rewards = []
    for a in actions:
        _, r, terminated, truncated, _ = env.step(a)
        rewards.append(r)
    return rewards, terminated


def test_the_worlds_follow_the_gymnasium_api():
    from gymnasium.utils.env_checker import check_env

    for world in (MazeEnv(intermediate=True), DoorsEnv(intermediate=True)):
        check_env(world, skip_render_check=True)
        obs, info = world.reset(seed=0)
        assert "image" in obs and isinstance(info, dict)
        assert len(world.step(0)) == 5


def test_a_maze_ball_pays_once_and_disappears_and_the_goal_pays_10():
    env = MazeEnv(intermediate=True)
    env.reset(seed=0)
    # From (1, 5) facing east: forward to (2, 5), (3, 5) holds a ball.
    rewards, _ = _walk(env, [2, 2])
    assert rewards == [0.0, 1.0] and env.grid.get(3, 5) is None
    rewards, _ = _walk(env, [0, 0, 2, 0, 0, 2])  # turn back, step off, turn, step onto the empty cell
    assert 1.0 not in rewards
    sparse = MazeEnv(intermediate=False)
    sparse.reset(seed=0)
    assert _walk(sparse, [2, 2])[0] == [0.0, 0.0]
    env.reset(seed=0)
    env.agent_pos, env.agent_dir = (4, 1), 0  # next to the goal at (5, 1), facing it
    rewards, terminated = _walk(env, [2])
    assert rewards == [10.0] and terminated


def test_doors_need_their_key_and_pay_once_in_the_intermediate_variant():
    env = DoorsEnv(intermediate=True)
    env.reset(seed=0)
    env.agent_pos, env.agent_dir = (5, 6), 0  # facing the yellow door at (6, 6), no key yet
    assert _walk(env, [4])[0] == [0.0] and env.grid.get(6, 6).is_locked
    env.agent_pos, env.agent_dir = (1, 6), 0  # facing the yellow key at (2, 6)
    assert _walk(env, [3, 3])[0] == [2.0, 0.0]  # picked up once
    env.agent_pos = (5, 6)
    assert _walk(env, [4, 4, 4])[0] == [2.0, 0.0, 0.0]  # unlocked once; closing and reopening pays nothing
    sparse = DoorsEnv(intermediate=False)
    sparse.reset(seed=0)
    sparse.agent_pos, sparse.agent_dir = (1, 6), 0
    assert _walk(sparse, [3])[0] == [0.0]


def test_q_learning_is_seeded_and_intermediate_rewards_help_on_the_maze():
    budgets = (18,)
    runs = {
        v: [q_learning(MazeEnv(intermediate=v, observe=False), budgets, seed=s)[18] for s in range(6)] for v in (0, 1)
    }
    again = [q_learning(MazeEnv(intermediate=True, observe=False), budgets, seed=s)[18] for s in range(6)]
    assert again == runs[1]
    assert sum(r.success for r in runs[1]) > sum(r.success for r in runs[0])


def test_the_rewards_reproduction_prints_the_documented_json(capsys, monkeypatch):
    import json

    from ontheline.cli import main
    from ontheline.research.rewards import repro as rewards

    small = rewards.run
    monkeypatch.setattr(rewards, "run", lambda quick, progress: small(seeds=2, progress=progress))
    assert main(["repro", "rewards", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["subgoals"] for r in result["chain"]] == [0, 1, 3, 7]
    assert [r["iterations_intermediate"] for r in result["chain"]] == [40, 20, 10, 5]
    assert {"ratio", "iterations_sparse", "iterations_intermediate", "route_length_sparse",
            "route_length_intermediate"} <= set(result["multipath"][0])  # fmt: skip
    assert result["re_entry"]["reaches_goal"] is False and result["goals"]["chain_counts_are_the_longest_segment"]
