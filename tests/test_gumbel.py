"""Gumbel MuZero through mctx on the env's own model (`scalegym.agents.planners.gumbel`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from scalegym.agents.planners.gumbel import GumbelMuZero, PriorNetwork, from_checkpoint, make_gumbel
from scalegym.agents.planners.planning import run_episodes
from scalegym.agents.ppo.algorithm import make_ppo
from scalegym.agents.ppo.checkpoint import save_checkpoint
from scalegym.agents.ppo.config import PPOConfig, default_config
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.core import Environment, spaces
from scalegym.core.resolve import resolve_env

pytest.importorskip("mctx")

SECRET = (2, 0, 3)  # the one action sequence that pays


@struct.dataclass
class SecretParams:
    max_steps_in_episode: int = 3


@struct.dataclass
class SecretState:
    on_path: jax.Array  # [] bool every action so far was the secret's
    time: jax.Array  # [] int32


class SecretCode(Environment):
    """Three steps, four actions; reward 1 at the end iff the actions spelled SECRET (1 in 64).

    | obs     | Box f32 [2]: (time / 3, on_path)                        |
    | action  | Discrete(4)                                             |
    | reward  | 1 on the third step if all three actions were SECRET's  |
    | episode | terminates after three steps                            |
    """

    @property
    def default_params(self) -> SecretParams:
        return SecretParams()

    def get_obs(self, state: SecretState, params: SecretParams, key: Any = None) -> jax.Array:
        return jnp.stack([state.time / 3.0, state.on_path]).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: SecretParams) -> tuple[jax.Array, SecretState]:
        state = SecretState(on_path=jnp.bool_(True), time=jnp.int32(0))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: SecretState, action: Any, params: SecretParams):
        wanted = jnp.asarray(SECRET)[jnp.minimum(state.time, len(SECRET) - 1)]
        state = SecretState(on_path=state.on_path & (action == wanted), time=state.time + 1)
        done = state.time >= len(SECRET)
        reward = (done & state.on_path).astype(jnp.float32)
        return self.get_obs(state, params), state, reward, done, {"success": done & state.on_path}

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)


def test_pure_search_finds_the_one_paying_sequence_under_jit_and_vmap():
    # Uniform prior, zero value: only the search finds the reward. 256 simulations: sequential
    # halving's first round gives each of the 4 root actions 256 / (2 phases · 4) = 32 visits,
    # more than the 1 + 4 + 16 = 21 nodes of a root action's subtree, so the paying leaf is
    # seen before any root action is dropped. Each decision costs exactly `budget` env steps.
    env, params = SecretCode(), SecretParams()
    planner = make_gumbel(256)
    out = run_episodes(env, params, planner, 8, jax.random.key(0))
    again = run_episodes(env, params, planner, 8, jax.random.key(0))
    for name in out:
        np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(again[name]))
    assert np.all(np.isfinite(np.asarray(out["return"])))
    np.testing.assert_array_equal(np.asarray(out["return"]), np.ones(8))
    assert bool(jnp.all(out["success"]))
    np.testing.assert_array_equal(np.asarray(out["sim_steps"]), np.full(8, 3 * 256))


NET = PriorNetwork.from_config(PPOConfig())  # ToyChain-v0's PPO network: MLP (64, 64), tanh


@jax.jit
def _act(planner: GumbelMuZero, obs: Any, state: Any, key: jax.Array) -> jax.Array:
    """One decision on ToyChain-v0; the planner is an argument, so its params are data."""
    env = _toy()
    return planner.act(env, env.default_params, None, obs, state, key)[0].action


def _toy() -> Any:
    from toy_envs import ToyChain

    return ToyChain()


def test_the_network_prior_decides_a_one_simulation_search():
    # With one simulation the search visits one root action, the best of (gumbel +) prior logits;
    # a prior preferring k makes that k, even "left" (0), which the env never pays.
    env = _toy()
    obs, state = env.reset_env(jax.random.key(0), env.default_params)
    params = NET.module(2).init(jax.random.key(1), jax.tree.map(lambda x: x[None], obs))
    chosen = []
    for k in (0, 1):
        bias = jnp.zeros(2).at[k].set(50.0)
        biased = jax.tree.map(lambda x: x, params)
        biased["params"]["actor_head"]["bias"] = bias
        planner = make_gumbel(1, network=NET, network_params=biased, gumbel_scale=0.0)
        for seed in range(3):  # one compile for every params and key
            chosen.append((k, int(_act(planner, obs, state, jax.random.key(seed)))))
    assert all(k == a for k, a in chosen)
    assert _act._cache_size() == 1


def test_a_checkpoint_prior_acts_as_ppo_greedy(tmp_path):
    # A checkpoint as `scalegym train` writes it (ChunkedRun's identity, save_checkpoint), of an
    # untrained run: its logits are as good a prior to compare as trained ones, and cheaper.
    toy = resolve_env("ToyChain-v0")
    config = default_config(toy).replace(num_envs=16, num_steps=16, total_timesteps=256)
    env = _toy()
    ppo = make_ppo(env, env.default_params, config)
    run = ChunkedRun("ToyChain-v0", ppo, 1, 0, tmp_path / "checkpoint")
    runner = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.key(0), 1))
    save_checkpoint(tmp_path / "checkpoint", runner, {**run.identity(), "updates": 0})
    # With gumbel_scale 0 and one simulation the search acts as the prior's argmax: PPO greedy.
    planner = from_checkpoint(tmp_path, 1, gumbel_scale=0.0)  # the run dir, as `train` writes
    assert planner.network == NET and planner.obs_norm is None
    obs, state = jax.vmap(env.reset_env, in_axes=(0, None))(
        jax.random.split(jax.random.key(2), 4), env.default_params
    )
    logits, _ = NET.module(2).apply(jax.tree.map(lambda x: x[0], runner.train_state.params), obs)
    for i in range(4):  # the same compiled decision as the test above (params are data)
        one = jax.tree.map(lambda x, i=i: x[i], (obs, state))
        assert int(_act(planner, *one, jax.random.key(i))) == int(jnp.argmax(logits[i]))
    # A recurrent run is refused by name, before its weights are read.
    config = config.replace(network="gru", hidden=(16,), memory=16)
    run = ChunkedRun("ToyChain-v0", make_ppo(env, env.default_params, config), 1, 0, None)
    save_checkpoint(tmp_path / "gru", {}, run.identity())
    with pytest.raises(ValueError, match="gru"):
        from_checkpoint(tmp_path / "gru", 1)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="budget"):
        make_gumbel(0)
    with pytest.raises(ValueError, match="gumbel_scale"):
        make_gumbel(4, gumbel_scale=-1.0)
    with pytest.raises(ValueError, match="max_num_considered_actions"):
        make_gumbel(4, max_num_considered_actions=0)
    with pytest.raises(ValueError, match="discount"):
        make_gumbel(4, discount=0.0)
    with pytest.raises(ValueError, match="sims"):
        make_gumbel(4, sims=3)
    with pytest.raises(ValueError, match="gru"):
        make_gumbel(4, network=PPOConfig(network="gru"), network_params={})
    with pytest.raises(ValueError, match="network_params"):
        make_gumbel(4, network=NET)
    with pytest.raises(ValueError, match="obs_norm"):
        make_gumbel(4, network=PriorNetwork(normalize_obs=True), network_params={})
