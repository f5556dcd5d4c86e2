"""PPO on the host path: a plain gymnasium env stepped in Python, policy and update jitted."""

import numpy as np

from scalegym.agents.host import with_final_obs
from scalegym.agents.train import train_agent


def test_final_obs_replaces_only_finished_lanes():
    next_obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    final = np.array([None, np.array([9.0, 9.0], np.float32), None], dtype=object)
    done = np.array([False, True, False])
    out = with_final_obs(next_obs, {"final_obs": final}, done)
    np.testing.assert_array_equal(out, [[0, 1], [9, 9], [4, 5]])
    np.testing.assert_array_equal(next_obs[1], [2, 3])  # the reset obs is left intact


def test_dict_final_obs():
    next_obs = {"a": np.zeros((2, 1)), "b": np.ones((2, 2))}
    final = np.array([{"a": np.array([5.0]), "b": np.array([7.0, 7.0])}, None], dtype=object)
    out = with_final_obs(next_obs, {"final_obs": final}, np.array([True, False]))
    assert out["a"][0, 0] == 5.0 and out["b"][0].tolist() == [7.0, 7.0]
    assert out["a"][1, 0] == 0.0 and out["b"][1].tolist() == [1.0, 1.0]


def test_gymnasium_cartpole_learns_on_the_host_path():
    logged = []
    record = train_agent(
        "CartPole-v1",
        total_steps=40_000,
        seed=1,
        log=lambda step, scalars: logged.append((step, scalars)),
        progress=False,
    )
    assert record.path == "host" and record.steps == 39_936
    steps = [s for s, _ in logged]
    assert steps == sorted(steps) and steps[-1] == 39_936
    early = np.mean([s["train/return"] for _, s in logged[:5] if "train/return" in s])
    # Random play on CartPole averages about 22; PPO after 40k steps is far beyond it.
    assert early < 60 and record.final.eval_return > 100, (early, record.final)
    # Evaluation and training returns are reported apart; SPS leaves out the compiling update.
    assert record.final.train_return is not None and record.final.per_seed_return is not None
    assert "eval/return" in logged[0][1] and "eval/return" in logged[-1][1]
    assert record.sps is not None and record.compile_s > 0
