"""The agent of a POMDP family sees the emitted symbols and nothing else: two instances with
different secrets hand it the same observations wherever its histories coincide."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from pomdp_rollouts import (
    ROLLOUT_SHAPES,
    make,
    uniform_rollout,
)

from scalegym.core import spaces

# -- the agent sees the symbols and nothing else ---------------------------------------------

LEAK_ENVS = 256  # the envs whose histories are checked one by one in Python

# (env id, static fields): with Tiger H=4 these are the shapes the table rollouts compile for.
LEAK_CASES = [
    (*ROLLOUT_SHAPES[0], {"alpha": 0.7, "epsilon": 0.9}, 0, 1),  # same secret, other θ
    (*ROLLOUT_SHAPES[0], {"alpha": 0.7, "epsilon": 0.9}, 0, 3),  # other secret
    (*ROLLOUT_SHAPES[1], {"alpha": 0.7, "epsilon": 0.9}, 0, 1),
    (*ROLLOUT_SHAPES[2], {"alpha": 0.7, "epsilon": 0.9}, 0, 1),
    (*ROLLOUT_SHAPES[3], {"alpha": 0.5}, 0, 1),
]
SECRET_FIELDS = ("secret", "theta", "keys", "combination")


def assert_one_hot(obs: np.ndarray, num_obs: int) -> None:
    """obs [..., O] float32 with a single 1: a symbol and nothing more."""
    assert obs.dtype == np.float32 and obs.shape[-1] == num_obs
    assert np.all((obs == 0.0) | (obs == 1.0))
    assert np.all(obs.sum(axis=-1) == 1.0)


@pytest.mark.parametrize(("env_id", "shape", "overrides", "seed_a", "seed_b"), LEAK_CASES)
def test_hidden_state_never_leaks(env_id, shape, overrides, seed_a, seed_b):
    """Two instances, driven by the same actions and keys: wherever their observation histories
    coincide, everything the agent is handed (obs, reward, flags, info) coincides too."""
    env, params_a = make(env_id, instance_seed=seed_a, **shape, **overrides)
    params_b = env.make_params(instance_seed=seed_b, **shape, **overrides)
    differs = [
        f
        for f in SECRET_FIELDS
        if getattr(params_a, f, None) is not None
        and not np.array_equal(getattr(params_a, f), getattr(params_b, f))
    ]
    assert differs  # the two instances hide different secrets
    num_obs = env.tabular(params_a).num_obs
    space = env.observation_space(params_a)
    assert isinstance(space, spaces.Box) and space.shape == (num_obs,)
    assert np.all(space.low == 0.0) and np.all(space.high == 1.0)

    runs = []
    for params in (params_a, params_b):
        trajectory, last_obs = uniform_rollout(env, params, jax.random.key(5))
        runs.append((jax.tree.map(lambda x: x[:, :LEAK_ENVS], trajectory), last_obs[:LEAK_ENVS]))
    (traj_a, _), (traj_b, _) = runs
    assert np.array_equal(traj_a["action"], traj_b["action"])
    num_steps = traj_a["action"].shape[0]

    symbols, finals = [], []
    for trajectory, last_obs in runs:
        obs = np.concatenate([trajectory["obs"], last_obs[None]])  # [T+1, E, O]
        final = trajectory["info"]["final_observation"]  # [T, E, O] before any reset
        assert_one_hot(obs, num_obs)
        assert_one_hot(final, num_obs)
        done = trajectory["terminated"] | trajectory["truncated"]
        # Without a reset, the obs the agent continues from is the step's own obs.
        assert np.array_equal(obs[1:][~done], final[~done])
        symbols.append(obs.argmax(-1))
        finals.append(final.argmax(-1))

    info_a = {k: v for k, v in traj_a["info"].items() if k != "final_observation"}
    info_b = {k: v for k, v in traj_b["info"].items() if k != "final_observation"}
    assert info_a.keys() == info_b.keys()
    same = symbols[0][0] == symbols[1][0]  # [E] the episode's symbols so far coincide
    coincided = diverged = 0
    for t in range(num_steps):
        extended = same & (finals[0][t] == finals[1][t])  # ... and the step's new symbol too
        for name in ("reward", "terminated", "truncated"):
            assert np.array_equal(traj_a[name][t][extended], traj_b[name][t][extended]), (t, name)
        for name in info_a:
            assert np.array_equal(info_a[name][t][same], info_b[name][t][same]), (t, name)
        coincided += int(extended.sum())
        diverged += int((~extended).sum())
        done = traj_a["terminated"][t]
        assert np.array_equal(done, traj_b["terminated"][t])
        same = np.where(done, symbols[0][t + 1] == symbols[1][t + 1], extended)
    assert coincided > 0 and diverged > 0  # both cases occur, so the check above has teeth
    assert not np.array_equal(traj_a["reward"], traj_b["reward"])  # the secrets do matter

    # Across both instances and all rollouts, one action-observation history gives one obs.
    seen: dict[tuple[int, ...], tuple[bytes, set[int]]] = {}

    def record(history: tuple[int, ...], obs_row: np.ndarray, which: int) -> None:
        want, instances = seen.setdefault(history, (obs_row.tobytes(), set()))
        assert obs_row.tobytes() == want, history
        instances.add(which)

    for which, (trajectory, last_obs) in enumerate(runs):
        obs = np.concatenate([trajectory["obs"], last_obs[None]])
        final, action = trajectory["info"]["final_observation"], trajectory["action"]
        syms, final_syms, done = symbols[which], finals[which], trajectory["terminated"]
        for e in range(LEAK_ENVS):
            history: tuple[int, ...] = (int(syms[0, e]),)
            record(history, obs[0, e], which)
            for t in range(num_steps):
                history = (*history, int(action[t, e]), int(final_syms[t, e]))
                record(history, final[t, e], which)
                if done[t, e]:
                    history = (int(syms[t + 1, e]),)
                    record(history, obs[t + 1, e], which)
    assert sum(len(instances) == 2 for _, instances in seen.values()) > 10
