"""One conformance harness run over every registered env id, against the gymnax-1.0 env contract.

The contract: `reset(key, params) -> (obs, state)` and `step(key, state, action, params) -> (obs,
state, reward, terminated, truncated, info)` jit and vmap; observations are finite, float32 and
inside their spaces, rewards float32, flags bool, actions int32; new values (params included) do
not retrace; the key alone fixes the trajectory; `step_env` advances `state.time` by one; `step`
truncates at exactly `max_steps_in_episode`, auto-resets and puts the last real observation in
`info["final_observation"]`.

Each env's tests share its compiled programs (`programs`): one jitted rollout, step, step_env
and reset_env per env id and precision, so the harness compiles each program once, not per test.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.core.resolve import env_precision, resolve_env

ENV_IDS = scalegym.list_envs()
BATCH = 8  # one integrator group for ThreeBody (its regrouping is tested in test_threebody_hermite)
STEPS = 40


def rollout(env, params, key, batch=BATCH, steps=STEPS):
    """Reset a batch, then step it with random actions under one jit; returns stacked outputs."""
    k_reset, k_act, k_step = jax.random.split(key, 3)
    obs0, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, batch), params)
    space = env.action_space(params)
    actions = jax.vmap(jax.vmap(space.sample))(
        jax.random.split(k_act, steps * batch).reshape(steps, batch)
    )
    step_keys = jax.random.split(k_step, steps * batch).reshape(steps, batch)

    def body(state, xs):
        key, action = xs
        obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None)
        )(key, state, action, params)
        return state, (obs, reward, terminated, truncated, info)

    state, out = jax.lax.scan(body, state, (step_keys, actions))
    return obs0, actions, out, state


class Programs:
    """One env's jitted programs, shared by its tests (params are arguments, never constants)."""

    def __init__(self, env):
        self.rollout = jax.jit(lambda params, key: rollout(env, params, key))  # [STEPS, BATCH]
        self.step = jax.jit(env.step)
        self.step_env = jax.jit(env.step_env)
        self.reset_env = jax.jit(env.reset_env)


@functools.cache
def programs(env_id: str, x64: bool) -> tuple:
    """(env, params, Programs) of `env_id`, built once per worker and precision."""
    env, params = scalegym.make(env_id)
    return env, params, Programs(env)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(params=ENV_IDS, scope="module")  # module scope: pytest groups each env's tests
def env_id(request) -> str:
    return request.param


@pytest.fixture
def env_and_params(env_id):
    # A float64 env (ThreeBody) runs the whole test under x64, as the CLI runs it.
    with env_precision(env_id):
        yield programs(env_id, bool(jax.config.jax_enable_x64))


def test_jit_vmap_rollout_is_finite_and_in_spaces(env_and_params):
    env, params, run = env_and_params
    obs0, actions, (obs, reward, terminated, truncated, info), _ = run.rollout(
        params, jax.random.key(0)
    )
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    flat = lambda tree: jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tree)
    assert bool(jnp.all(jax.vmap(obs_space.contains)(obs0)))
    assert bool(jnp.all(jax.vmap(obs_space.contains)(flat(obs))))
    assert bool(jnp.all(jax.vmap(obs_space.contains)(flat(info["final_observation"]))))
    assert bool(jnp.all(jax.vmap(act_space.contains)(actions.reshape(-1))))
    for leaf in jax.tree.leaves((obs0, obs, reward)):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    assert reward.shape == terminated.shape == truncated.shape == (STEPS, BATCH)
    assert not bool(jnp.any(terminated & truncated))


@pytest.mark.parametrize("x64", [False, True])
def test_dtypes_are_float32_and_int32(env_id, env_and_params, x64):
    if resolve_env(env_id).x64 and not x64:
        pytest.skip("a float64 env runs only under x64 (make() refuses it otherwise)")
    env, params, run = env_and_params
    if x64 != bool(jax.config.jax_enable_x64):  # the programs of this precision
        with jax.enable_x64(x64):
            env, params, run = programs(env_id, x64)
    with jax.enable_x64(x64):
        obs0, actions, (obs, reward, terminated, truncated, _), _ = run.rollout(
            params, jax.random.key(1)
        )
        sample = env.action_space(params).sample(jax.random.key(0))
    for leaf in jax.tree.leaves((obs0, obs)):
        assert leaf.dtype == jnp.float32
    assert reward.dtype == jnp.float32
    assert terminated.dtype == truncated.dtype == jnp.bool_
    assert sample.dtype == jnp.int32 and actions.dtype == jnp.int32


def test_no_retrace_on_new_values(env_and_params):
    # The shared jitted step: a retrace would add an entry to its cache of traced programs.
    env, params, run = env_and_params
    _, state = run.reset_env(jax.random.key(0), params)
    action = env.action_space(params).sample(jax.random.key(0))
    _, state, *_ = run.step(jax.random.key(9), state, action, params)
    traced = run.step._cache_size()
    for i in range(3):
        action = env.action_space(params).sample(jax.random.key(i))
        # New values of every argument, params included (an env step is one program per shape).
        params = params.replace(max_steps_in_episode=params.max_steps_in_episode + i + 1)
        _, state, *_ = run.step(jax.random.key(10 + i), state, action, params)
    assert run.step._cache_size() == traced


def test_same_key_same_trajectory_different_keys_differ(env_and_params):
    env, params, run = env_and_params
    a, b, c = (run.rollout(params, jax.random.key(k)) for k in (3, 3, 4))
    assert_trees_equal(a, b)
    first_obs = lambda out: jnp.concatenate(
        [x.reshape(BATCH, -1) for x in jax.tree.leaves(out[0])], 1
    )
    # Everything the steps emitted: obs, rewards, flags and info (final observations included).
    emitted = lambda out: np.concatenate(
        [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(out[2])]
    )
    assert not np.array_equal(emitted(a), emitted(c))
    if getattr(env, "deterministic_reset", False):
        return  # a POMDP whose episodes all start at one node: its randomness is in the steps
    assert not np.array_equal(np.asarray(first_obs(a)), np.asarray(first_obs(c)))
    # Different reset keys give different start states within one batch too.
    assert len({tuple(row) for row in np.asarray(first_obs(a)).round(5)}) > 1


def test_truncation_and_auto_reset_semantics(env_and_params):
    env, params, run = env_and_params
    limit = 3
    params = params.replace(max_steps_in_episode=limit)
    # All jitted, so float64 physics rounds the same way in each (eager op-by-op evaluation may
    # differ in the last bit, and an energy error magnifies that).
    step_env, reset_env = run.step_env, run.reset_env
    _, state = env.reset(jax.random.key(0), params)
    for t in range(1, 2 * limit + 2):
        key = jax.random.key(100 + t)
        action = env.action_space(params).sample(jax.random.key(t))
        obs_st, state_st, reward_st, term_st, _ = step_env(
            jax.random.split(key)[0], state, action, params
        )
        obs, next_state, reward, terminated, truncated, info = run.step(key, state, action, params)
        np.testing.assert_allclose(reward, reward_st)
        assert bool(terminated) == bool(term_st)
        expect_trunc = bool(env.is_truncated(state_st, params)) and not bool(term_st)
        assert bool(truncated) == expect_trunc
        assert_trees_equal(info["final_observation"], obs_st)
        if bool(terminated) or bool(truncated):
            assert_trees_equal((obs, next_state), reset_env(jax.random.split(key)[1], params))
        else:
            assert_trees_equal((obs, next_state), (obs_st, state_st))
        assert int(state_st.time) <= limit
        state = next_state


def test_step_env_advances_the_step_counter_by_one(env_and_params):
    # The env's one job in episode bookkeeping (environment.py); the base class relies on it.
    env, params, run = env_and_params
    _, state = env.reset(jax.random.key(0), params)
    for t in range(5):
        action = env.action_space(params).sample(jax.random.key(t))
        _, next_state, *_ = run.step_env(jax.random.key(50 + t), state, action, params)
        assert int(next_state.time) == int(state.time) + 1
        state = next_state


def test_truncation_at_exactly_the_limit(env_and_params):
    # With a limit of 1, every step that does not terminate truncates (each is an episode's
    # first), and every lane is reset after it.
    _, params, run = env_and_params
    params = params.replace(max_steps_in_episode=1)
    _, _, (_, _, terminated, truncated, _), state = run.rollout(params, jax.random.key(2))
    np.testing.assert_array_equal(np.asarray(truncated), ~np.asarray(terminated))  # [STEPS, BATCH]
    np.testing.assert_array_equal(np.asarray(state.time), 0)


def test_unknown_id_suggests_the_close_one():
    with pytest.raises(ValueError, match="Rearrange-v1"):
        scalegym.make("Rearange-v0")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        scalegym.register("Rearrange-v1", "scalegym.envs.rearrange.env:Rearrange")
