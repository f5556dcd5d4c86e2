"""Env id resolution (scalegym, gymnax, module:, gymnasium) and the env-only throughput measures."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import pytest
from flax import struct

import scalegym  # noqa: F401  (registers the built-in ids, as a user's import would)
from scalegym.core import spaces
from scalegym.core.environment import Environment
from scalegym.core.resolve import ResolvedEnv, is_functional_env_class, resolve_env
from scalegym.suites import measures
from scalegym.suites.measures import (
    bench_host_env,
    bench_jax_env,
    bench_report,
    device_info,
    make_rollout,
    step_actions,
    versions,
)

RECORD_KEYS = {"batch_size", "sps", "sps_min", "sps_max", "compile_s", "repeats", "num_steps"}


@struct.dataclass
class ChainState:
    position: jax.Array  # [] int32, 0 .. length - 1
    time: jax.Array  # [] int32


@struct.dataclass
class ChainParams:
    length: int = 4
    max_steps_in_episode: int = 20


class ChainEnv(Environment[ChainState, ChainParams]):
    """A chain: action 1 moves right, 0 left; reaching the last cell pays 1 and terminates."""

    @property
    def default_params(self) -> ChainParams:
        return ChainParams()

    def reset_env(self, key: jax.Array, params: ChainParams) -> tuple[jax.Array, ChainState]:
        state = ChainState(position=jnp.int32(0), time=jnp.int32(0))
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: ChainState, action: Any, params: ChainParams
    ) -> tuple[jax.Array, ChainState, jax.Array, jax.Array, dict[str, Any]]:
        move = jnp.where(action == 1, 1, -1).astype(jnp.int32)
        position = jnp.clip(state.position + move, 0, params.length - 1)
        state = ChainState(position=position, time=state.time + 1)
        terminated = position == params.length - 1
        reward = terminated.astype(jnp.float32)
        return self.get_obs(state, params), state, reward, terminated, {}

    def get_obs(self, state: ChainState, params: ChainParams, key: Any = None) -> jax.Array:
        return (state.position / (params.length - 1)).astype(jnp.float32)[None]

    def validate_params(self, params: ChainParams) -> None:
        if params.length < 2:
            raise ValueError(f"ChainEnv: length must be >= 2, got {params.length}")

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: ChainParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params: ChainParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,))


# Registered the way a user would; guarded because test modules may be imported twice.
if "TestChain-v0" not in gymnasium.registry:
    gymnasium.register(id="TestChain-v0", entry_point=ChainEnv, kwargs={"length": 3})
if "TestGymnaxCartPole-v0" not in gymnasium.registry:
    gymnasium.register(
        id="TestGymnaxCartPole-v0",
        entry_point="gymnax.environments.classic_control.cartpole:CartPole",
        max_episode_steps=50,
    )


TOY = "ToyChainBox-v0"  # registered for all tests by conftest.py (tests/toy_envs.py)


# ----------------------------------------------------------------------------------- resolve_env


def test_gymnasium_registered_functional_env_resolves_to_jax() -> None:
    resolved = resolve_env("TestChain-v0")
    assert isinstance(resolved, ResolvedEnv)
    assert resolved.kind == "jax" and resolved.make_vector is None
    assert isinstance(resolved.env, ChainEnv)
    assert resolved.params.length == 3  # the gymnasium spec's kwargs become params
    assert resolve_env("TestChain-v0", length=6).params.length == 6


def test_functional_env_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="nosuchfield"):
        resolve_env("TestChain-v0", nosuchfield=1)
    with pytest.raises(ValueError, match="length"):
        resolve_env("TestChain-v0", length=1)


def test_gymnax_style_class_behind_a_string_entry_point_is_jax() -> None:
    resolved = resolve_env("TestGymnaxCartPole-v0", gravity=9.0)
    assert resolved.kind == "jax"
    assert resolved.params.gravity == 9.0
    assert resolved.params.max_steps_in_episode == 50  # gymnasium's max_episode_steps
    with pytest.raises(ValueError, match="nosuchfield"):
        resolve_env("TestGymnaxCartPole-v0", nosuchfield=1)


def test_gymnax_prefix_resolves_to_jax() -> None:
    resolved = resolve_env("gymnax:CartPole-v1")
    assert resolved.kind == "jax" and resolved.params is not None


def test_plain_gymnasium_env_resolves_to_host() -> None:
    resolved = resolve_env("CartPole-v1")
    assert resolved.kind == "host" and resolved.env is None
    vector_env = resolved.make_vector(3)
    try:
        assert vector_env.num_envs == 3
    finally:
        vector_env.close()
    with pytest.raises(ValueError, match="nosuchfield"):
        resolve_env("CartPole-v1", nosuchfield=1)


def test_scalegym_ids_and_namespace() -> None:
    direct = resolve_env(TOY)
    namespaced = resolve_env(f"scalegym/{TOY}")
    assert direct.kind == namespaced.kind == "jax"
    assert direct.params.length == namespaced.params.length == 5


def test_module_prefix_imports_then_resolves() -> None:
    resolved = resolve_env(f"{__name__}:TestChain-v0")
    assert resolved.kind == "jax" and resolved.id == f"{__name__}:TestChain-v0"  # as given
    with pytest.raises(ValueError, match="cannot import"):
        resolve_env("no_such_module_xyz:TestChain-v0")


def test_unknown_id_says_what_it_is_not_and_suggests() -> None:
    with pytest.raises(ValueError) as err:
        resolve_env("ToyChainBx-v0")
    message = str(err.value)
    assert "scalegym, peer or gymnasium" in message and "xminigrid:" in message
    assert f"'{TOY}'" in message


def test_functional_class_detection() -> None:
    from gymnasium.envs.classic_control import CartPoleEnv  # imported here, not by another test

    assert is_functional_env_class(ChainEnv)
    assert not is_functional_env_class(CartPoleEnv)
    assert not is_functional_env_class(ChainEnv())  # an instance, not a class


# -------------------------------------------------------------------------------------- measures


def test_rollout_checksum_counts_obs_reward_and_flags() -> None:
    env, params = ChainEnv(), ChainParams(length=3, max_steps_in_episode=5)
    batch, steps = 4, 10
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), batch), params
    )
    actions = jnp.ones((steps, batch), jnp.int32)  # always right: the goal every 2 steps
    keys = jax.random.split(jax.random.key(1), (steps, batch))
    final, total, _ = jax.jit(make_rollout(env))(state, actions, keys, params)
    # Per env and 2 steps: obs 0.5 then the reset obs 0.0, reward 0 then 1, one termination.
    assert float(total) == batch * (steps // 2) * (0.5 + 0.0 + 1.0 + 1.0)
    assert final.position.shape == (batch,)

    # Truncation counts too: always left never reaches the goal; the limit cuts at step 5.
    _, total, _ = jax.jit(make_rollout(env))(state, 1 - actions, keys, params)
    assert float(total) == batch * 2  # obs 0 throughout, reward 0, two truncations per env


@struct.dataclass
class WideObsParams:
    length: int = 4
    max_steps_in_episode: int = 20


class WideObsChain(ChainEnv):
    """ChainEnv with a [64] observation; `expensive` runs 400 rounds of sin/cos to make it."""

    def __init__(self, expensive: bool):
        self.expensive = expensive

    @property
    def default_params(self) -> WideObsParams:
        return WideObsParams()

    def get_obs(self, state: ChainState, params: Any, key: Any = None) -> jax.Array:
        x = state.position.astype(jnp.float32) + jnp.linspace(0.0, 1.0, 64, dtype=jnp.float32)
        if self.expensive:
            x = jax.lax.fori_loop(0, 400, lambda _, y: jnp.sin(y) + 0.5 * jnp.cos(y), x)
        return x

    def observation_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(-2.0, 2.0, (64,))


def test_rollout_keeps_the_observation_that_xla_would_drop() -> None:
    env = WideObsChain(expensive=True)
    params = env.default_params
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 8), params
    )
    actions = jnp.ones((4, 8), jnp.int32)
    keys = jax.random.split(jax.random.key(1), (4, 8))

    def reward_only(state: Any, actions: Any, keys: Any, params: Any) -> tuple[Any, jax.Array]:
        def one(carry: Any, xs: Any) -> tuple[Any, None]:
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(xs[1], carry[0], xs[0], params)
            return (out[1], carry[1] + out[2].sum()), None

        return jax.lax.scan(one, (state, jnp.float32(0)), (actions, keys))[0]

    compiled = lambda fn: jax.jit(fn).lower(state, actions, keys, params).compile().as_text()
    # The old harness's shape: XLA deletes the observation, sin and cos included.
    assert "sine" not in compiled(reward_only)
    assert "sine" in compiled(make_rollout(env))


def test_expensive_observation_benches_slower() -> None:
    cheap = bench_jax_env(WideObsChain(False), WideObsParams(), [64], num_steps=16, repeats=3)
    dear = bench_jax_env(WideObsChain(True), WideObsParams(), [64], num_steps=16, repeats=3)
    # 400 rounds of sin/cos on 64 floats per env step against a handful of integer ops.
    assert dear[0]["sps"] < cheap[0]["sps"]


class ScriptedClock:
    """A stand-in for the `time` module whose `perf_counter` reads start, stop, start, stop, ...:
    each stop is its start plus the next of `durations` (seconds), so a timed region lasts
    exactly what the test says, whatever the machine is doing."""

    def __init__(self, durations: list[float]) -> None:
        self.durations, self.now, self.started = list(durations), 0.0, False

    def perf_counter(self) -> float:
        if self.started:
            assert self.durations, "the harness timed more regions than the test scripted"
            self.now += self.durations.pop(0)
        else:
            self.now += 1.0  # untimed time between regions
        self.started = not self.started
        return self.now


@pytest.mark.parametrize("env_id", ["TestChain-v0", "gymnax:CartPole-v1"])
def test_bench_jax_env_records(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Per batch size the harness times the compile, then each repeat; powers of two keep the
    # arithmetic exact. Batch 8 x 8 steps = 64 steps per run: runs of 1/4, 1/2 and 1/8 s are
    # 256, 128 and 512 steps/s, median 256 (the mean would be 298.7); batch 1: 8 steps per run.
    clock = ScriptedClock([0.5, 0.25, 0.5, 0.125, 2.0, 0.25, 0.5, 0.125])
    monkeypatch.setattr(measures, "time", clock)
    resolved = resolve_env(env_id)
    records = bench_jax_env(resolved.env, resolved.params, [8, 1], num_steps=8, repeats=3)
    assert clock.durations == []  # every scripted region was timed: compile and 3 repeats, twice
    assert [r["batch_size"] for r in records] == [8, 1]
    for record in records:
        assert set(record) == RECORD_KEYS | {"devices"}
        assert record["repeats"] == 3 and record["num_steps"] == 8 and record["devices"] == 1
    big, one = records
    assert (big["sps"], big["sps_min"], big["sps_max"], big["compile_s"]) == (256, 128, 512, 0.5)
    assert (one["sps"], one["sps_min"], one["sps_max"], one["compile_s"]) == (32, 16, 64, 2.0)


def test_bench_host_env_records() -> None:
    records = bench_host_env(resolve_env("CartPole-v1").make_vector, [2], num_steps=8, repeats=2)
    (record,) = records
    assert set(record) == RECORD_KEYS
    assert record["batch_size"] == 2 and record["sps"] > 0 and math.isfinite(record["sps"])


def test_bench_rejects_bad_sizes() -> None:
    env = ChainEnv()
    with pytest.raises(ValueError, match="batch sizes"):
        bench_jax_env(env, env.default_params, [0], num_steps=4, repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        bench_jax_env(env, env.default_params, [1], num_steps=4, repeats=0)


def test_device_info_and_versions() -> None:
    info = device_info()
    assert info["backend"] == jax.default_backend() and info["num_devices"] >= 1
    assert "xla_cpu_small_while_loop_byte_threshold" in info["xla_flags"]  # set by scalegym
    found = versions()
    assert found["python"] == platform.python_version()
    for name in ("jax", "jaxlib", "flax", "optax", "gymnasium", "numpy", "scalegym"):
        assert found[name] == importlib.metadata.version(name), name


# ---------------------------------------------------------------------------------- fixed actions


def test_step_actions_are_sampled_or_one_action_in_the_sampled_dtype() -> None:
    space = spaces.Discrete(10)
    sample = jax.vmap(jax.vmap(space.sample))
    key = jax.random.PRNGKey(3)
    drawn = step_actions(sample, key, 6, 5)
    assert drawn.shape == (6, 5) and len(set(drawn.ravel().tolist())) > 1
    fixed = step_actions(sample, key, 6, 5, action=7)
    assert fixed.shape == (6, 5) and fixed.dtype == drawn.dtype
    assert set(fixed.ravel().tolist()) == {7}


class ActionLog(gymnasium.Env):
    """A host env that logs the actions it is given and reports action + 1 "substeps" a step."""

    taken: list[int] = []  # noqa: RUF012 (shared by the vector env's copies)

    def __init__(self) -> None:
        self.action_space = gymnasium.spaces.Discrete(3)
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (1,))

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return jnp.zeros(1, jnp.float32).__array__(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        ActionLog.taken.append(int(action))
        obs = jnp.zeros(1, jnp.float32).__array__()
        return obs, 0.0, False, False, {"substeps": int(action) + 1}


def test_host_bench_takes_the_fixed_action_and_counts_the_env_s_substeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2 envs x 4 steps a run; runs of 1/2, 1/4, 1 s: a step of action 2 reports 3 substeps, so
    # 24 substeps a run, median 48 substeps/s (16 env steps/s).
    clock = ScriptedClock([0.5, 0.5, 0.25, 1.0])
    monkeypatch.setattr(measures, "time", clock)
    ActionLog.taken = []

    def make_vector(batch: int) -> gymnasium.vector.VectorEnv:
        return gymnasium.vector.SyncVectorEnv([ActionLog] * batch)

    (record,) = bench_host_env(make_vector, [2], num_steps=4, repeats=3, action=2)
    assert ActionLog.taken == [2] * 24  # 3 runs x 4 steps x 2 envs, all of them action 2
    assert record["sps"] == 16 and record["substeps_per_s"] == 48
    monkeypatch.undo()  # the real clock again
    with pytest.raises(
        ValueError, match=r"action 3 is not in the env's Discrete\(3\); allowed: 0..2"
    ):
        bench_host_env(make_vector, [1], num_steps=1, repeats=1, action=3)


def test_bench_report_refuses_an_action_the_env_does_not_have_before_measuring() -> None:
    resolved = resolve_env("TestChain-v0")
    with pytest.raises(ValueError, match=r"allowed: 0..1"):
        bench_report(resolved, [1, 2], num_steps=2, repeats=1, action=2)
    report = bench_report(resolved, [2], num_steps=2, repeats=1, action=1)
    assert report["action"] == 1 and report["failed"] == [] and len(report["results"]) == 1


def test_threebody_benched_at_a_fixed_mu_takes_that_mu_s_substeps() -> None:
    # Substeps per env step (substeps/s ÷ env steps/s of one timed run) at mu = 1e-2 (action 6)
    # and 1e-4 (action 0): the Hermite step is mu times the collision time, so 1e-4 takes
    # about 100 times as many; random actions would give both the same mix.
    resolved = resolve_env("ThreeBody-v0")
    per_step = {}
    with resolved.precision():
        for action in (6, 0):
            report = bench_report(resolved, [2], num_steps=2, repeats=1, action=action)
            (row,) = report["results"]
            per_step[action] = row["substeps_per_s"] / row["sps"]
    assert 1 <= per_step[6] <= 300, per_step
    assert per_step[0] > 30 * per_step[6], per_step


def test_integrator_work_table_puts_substeps_per_env_step_beside_each_fixed_action() -> None:
    from scalegym.suites.cells.bench import BenchCell

    def record(cell: str, env: str, action: int | None, rows: list[dict[str, Any]]) -> dict:
        kind = "host" if env.startswith("scalegym/") else "jax"
        result = {"action": action, "note": f"{cell} work", "results": rows, "env_kind": kind}
        return {"cell": cell, "env": env, "env_params": {}, "status": "ok", "result": result}

    row = {"batch_size": 1024, "sps": 2e5, "substeps_per_s": 5e6, "devices": 2}
    hermite = record("h", "ThreeBody-v0", 6, [row])
    host = record("r", "scalegym/ThreeBodyRebound-v0", 6, [{"batch_size": 64, "sps": 1.5e4}])
    ias15 = {"batch_size": 64, "sps": 1.5e4, "substeps_per_s": 3e4, "devices": 1}
    host_steps = record("i", "scalegym/ThreeBodyRebound-v0", 6, [ias15])
    randomly = record("x", "Rearrange-v1", None, [{"batch_size": 64, "sps": 1e6}])
    lines = BenchCell.readme_table([hermite, host, host_steps, randomly], integrator_work=True)
    assert lines[2] == "| `ThreeBody-v0` | action 6 | 1,024 | 2 | 200k | 5.00M | 25.0 | h work |"
    # REBOUND steps one simulation after another on the host: one core, whatever the batch.
    assert lines[3].split(" | ")[3:5] == ["host, 1 core", "15.0k"]
    assert len(lines) == 4  # a host row without substeps and random actions are not listed
    # The sps table lists random-action cells only: fixed actions are the work table's.
    sps = BenchCell.readme_table([hermite, host, randomly])
    assert [line.split(" | ")[0] for line in sps[2:]] == ["| `Rearrange-v1`"]
