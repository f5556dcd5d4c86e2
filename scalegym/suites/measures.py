"""Env-only steps per second over batch sizes, with the hardware and versions they ran on.

Over 400 lines: one harness for jitted and host envs (actions, checksums, substeps) and its report.

Measured the XLand-MiniGrid way: random actions (or one fixed action, `action`) and step keys
pre-sampled outside the timed region,
one jitted `lax.scan` over vmapped steps (auto-reset inside), compilation timed apart, every run
ended by `block_until_ready`, and the median over repeats reported with its min and max.

A step counts only with what an agent reads from it: every observation leaf, the reward and the
terminated/truncated flags are folded into a checksum that the rollout returns. Without that, XLA
deletes the observation as dead code and the figure measures a step no agent could use.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from scalegym.core.gym_adapters import env_name
from scalegym.core.resolve import ResolvedEnv
from scalegym.progress import count_progress

# Distributions whose versions go next to every number; the peers only where installed.
_VERSIONED = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "gymnasium",
    "numpy",
    "scalegym",
    "gymnax",
    "xminigrid",
    "navix",
)
_OPTIONAL = {"gymnax", "xminigrid", "navix"}
# What every timed step feeds into the rollout's result (recorded in each report).
CONSUMED = "observation, reward, terminated, truncated"
CONSUMED_WITHOUT_OBS = "reward, terminated, truncated (diagnostic: observation not consumed)"


def bench_jax_env(
    env: Any,
    params: Any,
    batch_sizes: Sequence[int],
    num_steps: int = 256,
    repeats: int = 5,
    seed: int = 0,
    *,
    warmup: int = 1,
    progress: bool | None = None,
    consume_obs: bool = True,
    devices: int | None = None,
    action: int | None = None,
) -> list[dict[str, Any]]:
    """Env steps per second of a functional (scalegym or gymnax) env, one record per batch size.

    Each record: `batch_size`, `sps` (median over `repeats` of B·num_steps/seconds), `sps_min`,
    `sps_max`, `compile_s`, `repeats`, `num_steps`, `devices`. `warmup` untimed runs precede the
    timed ones. `progress=None` shows a progress bar on stderr only when stderr is a terminal.
    `consume_obs=False` is a diagnostic: XLA then drops the observation, and the difference to
    the default is what the observation costs. Each batch is split over local devices
    (`split_rollout`): `devices=N` the first N (B must be a multiple of N), by default the most
    that B divides evenly over (`bench_split`; the `scalegym` command has one CPU device per
    core). `action` takes that action in every step of every env instead of random ones (a
    Discrete space's index).
    """
    from scalegym.agents.devices import bench_split

    _check_sizes(batch_sizes, num_steps, repeats)
    check_action(action, discrete_size(env.action_space(params)))
    rollout = make_rollout(env, consume_obs=consume_obs)
    compiled_for: dict[int, Callable[..., Any]] = {}  # one jit per device count
    batch_reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    sample_action = jax.vmap(jax.vmap(env.action_space(params).sample))
    records = []
    with count_progress(len(batch_sizes), f"bench {env_name(env)}", progress) as advance:
        for batch_size in batch_sizes:
            split = bench_split(batch_size, devices)
            if split not in compiled_for:
                compiled_for[split] = jax.jit(
                    rollout if split == 1 else split_rollout(rollout, split)
                )
            # Raw uint32 keys: what gymnax-era envs expect.
            key = jax.random.fold_in(jax.random.PRNGKey(seed), batch_size)
            key_reset, key_actions, key_steps = jax.random.split(key, 3)
            _, state = batch_reset(jax.random.split(key_reset, batch_size), params)
            actions = step_actions(sample_action, key_actions, num_steps, batch_size, action)
            step_keys = jax.random.split(key_steps, (num_steps, batch_size))
            jax.block_until_ready((state, actions, step_keys))

            start = time.perf_counter()
            compiled = compiled_for[split].lower(state, actions, step_keys, params).compile()
            compile_s = time.perf_counter() - start

            # Runs continue from the previous final state so later repeats see mid-episode states.
            for _ in range(warmup):
                state, *_ = jax.block_until_ready(compiled(state, actions, step_keys, params))
            seconds, works = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                state, _, work = jax.block_until_ready(compiled(state, actions, step_keys, params))
                seconds.append(time.perf_counter() - start)
                works.append(np.asarray(work, np.float64))
            record = _record(batch_size, num_steps, seconds, compile_s)
            record["devices"] = split
            if works[0][1] > 0:  # the env reports integrator substeps (ThreeBody)
                record.update(_substep_record(seconds, works))
            records.append(record)
            advance()
    return records


def sizes_by_split(rows: Sequence[dict[str, Any]]) -> dict[int, list[int]]:
    """Bench result rows' batch sizes by the device count each was split over (ascending)."""
    sizes: dict[int, set[int]] = {}
    for row in rows:
        sizes.setdefault(row.get("devices", 1), set()).add(row["batch_size"])
    return {n: sorted(found) for n, found in sorted(sizes.items())}


def step_actions(
    sample_action: Callable[[jax.Array], jax.Array],
    key: jax.Array,
    num_steps: int,
    batch_size: int,
    action: int | None = None,
) -> jax.Array:
    """[T, B] actions: sampled (`sample_action` over [T, B] keys), or `action` in every slot in
    the dtype the space samples."""
    actions = sample_action(jax.random.split(key, (num_steps, batch_size)))
    return actions if action is None else jnp.full_like(actions, action)


def make_rollout(
    env: Any, *, consume_obs: bool = True
) -> Callable[..., tuple[Any, jax.Array, jax.Array]]:
    """`rollout(state, actions, keys, params)` over `[T, B]` inputs → (state, checksum, work).

    The checksum (float32 []) sums every observation leaf, the reward and the done flags of every
    step, so each of them must be computed; it is not a return (see `step_checksum`). With
    `consume_obs=False` (diagnostic only) the observation is left out and XLA drops it.
    `work` (float32 [2]) is (Σ substeps, Σ over steps of B · the slowest lane's substeps) for an
    env whose info reports `substeps` (an integrator's inner steps), else zeros: under vmap every
    lane waits for the slowest, so 1 − work[0]/work[1] is the fraction of lane-steps left idle.
    """
    batch_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(
        state: Any, actions: Any, keys: jax.Array, params: Any
    ) -> tuple[Any, jax.Array, jax.Array]:
        def one_step(carry: tuple[Any, jax.Array, jax.Array], xs: tuple[Any, jax.Array]) -> Any:
            state, total, work = carry
            action, key = xs
            out = batch_step(key, state, action, params)
            # gymnax 1.0 and scalegym: (obs, state, reward, terminated, truncated, info);
            # older gymnax: (obs, state, reward, done, info).
            obs, state, reward = out[0] if consume_obs else None, out[1], out[2]
            flags = out[3:5] if len(out) == 6 else out[3:4]
            info = out[-1]
            if isinstance(info, dict) and "substeps" in info:
                substeps = jnp.asarray(info["substeps"], jnp.float32)
                work = work + jnp.stack([substeps.sum(), substeps.max() * substeps.size])
            return (state, total + step_checksum(obs, reward, *flags), work), None

        zero = jnp.zeros((), jnp.float32)
        (state, total, work), _ = jax.lax.scan(
            one_step, (state, zero, jnp.zeros(2, jnp.float32)), (actions, keys)
        )
        return state, total, work

    return rollout


def split_rollout(rollout: Callable[..., Any], devices: int) -> Callable[..., Any]:
    """`rollout` with its batch split over the first `devices` local devices (`shard_map`).

    Each device steps its B/N envs on its own, so a device waits only for its own slowest lane
    (an integrator's while loop runs on one core; N CPU devices run N of them at once). The
    checksums and work of the devices are summed; params are replicated.
    """
    from jax.sharding import Mesh, PartitionSpec

    from scalegym.agents.devices import local_devices

    batch = PartitionSpec("batch")
    per_step = PartitionSpec(None, "batch")  # [T, B, ...] actions and keys

    def per_device(state: Any, actions: Any, keys: jax.Array, params: Any) -> Any:
        state, total, work = rollout(state, actions, keys, params)
        return state, total[None], work[None]  # [1], [1, 2] per device

    mesh = Mesh(local_devices(devices), ("batch",))
    # check_vma=False: the integrator's while loops carry per-lane values that the varying-axis
    # check cannot type (their initial carries mix replicated constants with batch leaves).
    sharded = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(batch, per_step, per_step, PartitionSpec()),
        out_specs=(batch, batch, batch),
        check_vma=False,
    )

    def run(state: Any, actions: Any, keys: jax.Array, params: Any) -> Any:
        state, totals, works = sharded(state, actions, keys, params)
        return state, totals.sum(), works.sum(axis=0)

    return run


def step_checksum(obs: Any, reward: Any, *flags: Any) -> jax.Array:
    """float32 []: the sum of every element of every observation leaf, the reward and the flags.

    Cheap next to a step, yet it reads each element an agent would read, so none can be dropped.
    """
    parts = [*jax.tree.leaves(obs), reward, *flags]
    return sum((jnp.sum(jnp.asarray(x).astype(jnp.float32)) for x in parts), jnp.float32(0.0))


def host_step_checksum(obs: Any, reward: Any, *flags: Any) -> float:
    """`step_checksum` for NumPy results of a host (gymnasium) vector env."""
    parts = [*jax.tree.leaves(obs), reward, *flags]
    return float(sum(np.sum(np.asarray(x, dtype=np.float64)) for x in parts))


def bench_host_env(
    make_vector: Callable[[int], gymnasium.vector.VectorEnv],
    batch_sizes: Sequence[int],
    num_steps: int = 256,
    repeats: int = 5,
    seed: int = 0,
    *,
    progress: bool | None = None,
    description: str = "bench host env",
    consume_obs: bool = True,
    action: int | None = None,
) -> list[dict[str, Any]]:
    """Env steps per second of a gymnasium vector env on the host, in `bench_jax_env`'s records.

    `compile_s` is the time to construct the vector env and take its first reset. An env whose
    step info has "substeps" (ThreeBodyRebound-v0: REBOUND's steps) also gets `substeps_per_s`.
    `action`: that action in every step of every env instead of random ones.
    """
    _check_sizes(batch_sizes, num_steps, repeats)
    records = []
    with count_progress(len(batch_sizes), description, progress) as advance:
        for batch_size in batch_sizes:
            start = time.perf_counter()
            vector_env = make_vector(batch_size)
            vector_env.reset(seed=seed)
            compile_s = time.perf_counter() - start
            try:
                check_action(action, discrete_size(vector_env.single_action_space))
                vector_env.action_space.seed(seed)
                actions = [vector_env.action_space.sample() for _ in range(num_steps)]
                if action is not None:
                    actions = [np.full_like(a, action) for a in actions]
                seconds, works = [], []
                total = 0.0
                for _ in range(repeats):
                    substeps = 0
                    start = time.perf_counter()
                    for batch_action in actions:
                        obs, reward, terminated, truncated, info = vector_env.step(batch_action)
                        # What an agent reads, as on the jitted path (there XLA needs it).
                        read = obs if consume_obs else None
                        total += host_step_checksum(read, reward, terminated, truncated)
                        substeps += host_substeps(info)
                    seconds.append(time.perf_counter() - start)
                    works.append(substeps)
            finally:
                vector_env.close()
            record = _record(batch_size, num_steps, seconds, compile_s)
            if works[0] > 0:
                rates = [w / max(s, 1e-12) for s, w in zip(seconds, works, strict=True)]
                record["substeps_per_s"] = float(statistics.median(rates))
            records.append(record)
            advance()
    return records


def host_substeps(info: dict[str, Any]) -> int:
    """Σ info["substeps"] over the envs of a vector step that report it (0 without the key)."""
    if "substeps" not in info:
        return 0
    counts = np.asarray(info["substeps"], np.int64)
    reported = np.asarray(info.get("_substeps", np.ones(counts.shape, bool)), bool)
    return int(counts[reported].sum())


def discrete_size(space: Any) -> int | None:
    """The action count of a Discrete space (scalegym's, gymnax's or gymnasium's); else None."""
    for name in ("n", "num_categories"):
        if isinstance(getattr(space, name, None), int | np.integer):
            return int(getattr(space, name))
    return None


def check_action(action: int | None, count: int | None) -> None:
    """A fixed action must be an index of a Discrete action space."""
    if action is None:
        return
    if count is None:
        raise ValueError(f"action {action}: a fixed action needs a Discrete action space")
    if not 0 <= action < count:
        raise ValueError(
            f"action {action} is not in the env's Discrete({count}); allowed: 0..{count - 1}"
        )


def bench_report(
    resolved: ResolvedEnv,
    batch_sizes: Sequence[int],
    num_steps: int = 256,
    repeats: int = 5,
    seed: int = 0,
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool | None = None,
    consume_obs: bool = True,
    devices: int | None = None,
    action: int | None = None,
) -> dict[str, Any]:
    """Benchmark a resolved env and return the JSON-ready report (`scalegym bench --json`).

    Batch sizes run one at a time; one that fails (out of memory at a large batch, an env error)
    is listed under "failed" with its error, and the sizes before and after it are kept. An
    `action` outside the env's action space is refused before any size runs.
    """
    _check_sizes(batch_sizes, num_steps, repeats)
    if action is not None:
        check_action(action, action_count(resolved))
    records: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with count_progress(len(batch_sizes), f"bench {resolved.id}", progress) as advance:
        for batch_size in batch_sizes:
            try:
                records += _bench_one_size(
                    resolved, batch_size, num_steps, repeats, seed, consume_obs, devices, action
                )
            except Exception as err:  # kept in the report; the other sizes still run
                failed.append(
                    {"batch_size": int(batch_size), "error": f"{type(err).__name__}: {err}"}
                )
            advance()
    keep = (
        "batch_size",
        "sps",
        "sps_min",
        "sps_max",
        "compile_s",
        "substeps_per_s",
        "idle_lanes",
        "devices",
    )
    return {
        "env": resolved.id,
        "kind": resolved.kind,
        "overrides": dict(overrides or {}),
        "consumes": CONSUMED if consume_obs else CONSUMED_WITHOUT_OBS,
        "seed": seed,
        "device": device_info(),
        "jax": jax.__version__,
        "x64": bool(jax.config.jax_enable_x64),  # float64 mode, on only for envs that declare it
        "versions": versions(),
        "num_steps": num_steps,
        "repeats": repeats,
        "devices": devices,  # as asked: N, or None for bench_split's default (rows: the split)
        "action": action,  # the one action of every step; None: random actions
        "results": [{k: r[k] for k in keep if k in r} for r in records],
        "failed": failed,
    }


def _bench_one_size(
    resolved: ResolvedEnv,
    batch_size: int,
    num_steps: int,
    repeats: int,
    seed: int,
    consume_obs: bool,
    devices: int | None = None,
    action: int | None = None,
) -> list[dict[str, Any]]:
    sizes = ([batch_size], num_steps, repeats, seed)
    if resolved.kind == "jax":
        return bench_jax_env(
            resolved.env,
            resolved.params,
            *sizes,
            progress=False,
            consume_obs=consume_obs,
            devices=devices,
            action=action,
        )
    if devices not in (None, 1):
        raise ValueError(f"{resolved.id}: devices={devices}: a host env runs on the host only")
    records = bench_host_env(
        resolved.make_vector, *sizes, progress=False, consume_obs=consume_obs, action=action
    )
    return [{**record, "devices": 1} for record in records]


def action_count(resolved: ResolvedEnv) -> int | None:
    """The Discrete action count of a resolved env (None for another space)."""
    if resolved.kind == "jax":
        return discrete_size(resolved.env.action_space(resolved.params))
    vector_env = resolved.make_vector(1)
    try:
        return discrete_size(vector_env.single_action_space)
    finally:
        vector_env.close()


def device_info() -> dict[str, Any]:
    """The accelerator and host CPU the numbers were measured on."""
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "machine": platform.machine(),
        # XLA's flags as this process started its backend (scalegym adds its loop threshold).
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def versions() -> dict[str, str]:
    """Python and package versions (the peers only where installed)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name not in _OPTIONAL:
                found[name] = "not installed"
    return found


def _record(
    batch_size: int, num_steps: int, seconds: Sequence[float], compile_s: float
) -> dict[str, Any]:
    sps = [batch_size * num_steps / max(s, 1e-12) for s in seconds]
    return {
        "batch_size": int(batch_size),
        "sps": float(statistics.median(sps)),
        "sps_min": float(np.min(sps)),
        "sps_max": float(np.max(sps)),
        "compile_s": float(compile_s),
        "repeats": len(seconds),
        "num_steps": int(num_steps),
    }


def _substep_record(seconds: Sequence[float], works: Sequence[np.ndarray]) -> dict[str, float]:
    """Integrator throughput: median substeps per second and the fraction of idle lane-steps."""
    rates = [work[0] / max(s, 1e-12) for s, work in zip(seconds, works, strict=True)]
    done, offered = sum(w[0] for w in works), sum(w[1] for w in works)
    return {
        "substeps_per_s": float(statistics.median(rates)),
        "idle_lanes": float(1.0 - done / offered),
    }


def _check_sizes(batch_sizes: Sequence[int], num_steps: int, repeats: int) -> None:
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
