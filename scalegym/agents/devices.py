"""The env batch of a PPO run sharded over local devices (`NamedSharding`, no `pmap`).

A run's env-batched leaves — env states, observations, episode-start flags, recurrent carries,
each [K, E, ...] over K seeds and E envs — are split along E over a one-axis mesh ("env"); the
network, optimiser, observation statistics and keys are replicated. The jitted update then runs
as one SPMD program: XLA partitions the rollout over devices and inserts the collectives the
learning step needs (minibatches mix envs), while the env step itself runs per device
(`per_device`, shard_map), each device stepping its own share. On one device nothing changes.

`devices=None` takes every local accelerator, and one device of the CPU (`training_devices`);
`devices=N` the first N. E must divide evenly.

The `scalegym` command gives JAX's CPU backend one device per usable core before its first
computation (`one_cpu_device_per_core`), so that a bench can split its batch over the cores: a
loop XLA compiles into one kernel (ThreeBody's integrator) runs on one core, and two CPU devices
run two of them at once. Training stays on one CPU device unless asked: PPO's learning step
across CPU devices cost more than the split saved (Rearrange-v1, 2M steps on the 2-core CPU,
2026-12-06: 79k env steps/s on one device, 47k on two).
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

ENV_AXIS = "env"
ENV_FIELDS = ("env_state", "obs", "starts", "carry")  # RunnerState fields with an env axis


def local_devices(devices: int | None = None) -> list[jax.Device]:
    """The first `devices` local devices (all when None); a clear error past what there is."""
    available = jax.local_devices()
    if devices is None:
        return available
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ValueError(f"devices={devices!r}; allowed: integers >= 1")
    if devices > len(available):
        raise ValueError(
            f"devices={devices}: only {len(available)} local {available[0].platform} device(s)"
        )
    return available[:devices]


CPU_DEVICES_VARIABLE = "JAX_NUM_CPU_DEVICES"
FORCE_DEVICES_FLAG = "xla_force_host_platform_device_count"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def one_cpu_device_per_core(environ: MutableMapping[str, str] = os.environ) -> int | None:
    """Give JAX's CPU backend one device per usable core; returns the count, or None where it
    was left alone: `JAX_NUM_CPU_DEVICES` or XLA_FLAGS' `--xla_force_host_platform_device_count`
    sets it, `jax_num_cpu_devices` was set in this process, or JAX's backends have started (a
    count can only be set before the first computation). Other backends are not touched."""
    from jax._src import xla_bridge

    if CPU_DEVICES_VARIABLE in environ or FORCE_DEVICES_FLAG in environ.get("XLA_FLAGS", ""):
        return None
    if jax.config.jax_num_cpu_devices >= 0 or xla_bridge.backends_are_initialized():
        return None
    cores = usable_cores()
    jax.config.update("jax_num_cpu_devices", cores)
    return cores


def training_devices(devices: int | None = None) -> list[jax.Device]:
    """The devices a training run splits its env batch over: the first `devices`, or by default
    every local accelerator, and one device of the CPU (see the module docstring)."""
    if devices is None and jax.local_devices()[0].platform == "cpu":
        devices = 1
    return local_devices(devices)


def bench_split(batch_size: int, devices: int | None = None) -> int:
    """How many local devices a bench splits a batch of `batch_size` over: `devices` (checked
    to divide the batch), or by default the most local devices the batch divides evenly over
    (B = 1 on one; 1,024 over two)."""
    if devices is not None:
        local_devices(devices)
        if batch_size % devices:
            raise ValueError(
                f"batch size {batch_size:,} does not split over devices={devices}; "
                f"use a multiple of {devices}"
            )
        return devices
    available = len(jax.local_devices())
    return max(n for n in range(1, available + 1) if batch_size % n == 0)


def env_mesh(devices: int | None, num_envs: int) -> Mesh | None:
    """A one-axis mesh over the devices to split `num_envs` envs on (`training_devices`); None
    on one device."""
    chosen = training_devices(devices)
    if len(chosen) == 1:
        return None
    if num_envs % len(chosen):
        raise ValueError(
            f"num_envs={num_envs} does not split over {len(chosen)} devices; use a multiple "
            f"of {len(chosen)} or --devices"
        )
    return Mesh(chosen, (ENV_AXIS,))


def shard_runner(runner: Any, mesh: Mesh | None, env_axis: int = 1) -> Any:
    """`runner` (a RunnerState, seeds first) placed on `mesh`: env leaves split along
    `env_axis`, everything else replicated. Without a mesh, `runner` as it is."""
    if mesh is None:
        return runner
    spec = PartitionSpec(*([None] * env_axis), ENV_AXIS)
    split, whole = NamedSharding(mesh, spec), NamedSharding(mesh, PartitionSpec())
    placed = {}
    for field in runner._fields:
        value = getattr(runner, field)
        sharding = split if field in ENV_FIELDS else whole
        placed[field] = jax.tree.map(lambda x, s=sharding: jax.device_put(x, s), value)
    return runner._replace(**placed)


def per_device(step: Callable, mesh: Mesh | None) -> Callable:
    """The batched env step `step(keys [E], states [E], actions [E], params)` run by each device
    on its own share of the E envs (`shard_map`), params replicated; without a mesh, `step`.

    The env step has no reason to talk across envs, and left to XLA's partitioner an env whose
    step sorts or gathers across its batch (ThreeBody's lane regrouping) would do so across
    devices. Outputs keep the env axis first, split over the mesh like the inputs.
    """
    if mesh is None:
        return step
    split = PartitionSpec(ENV_AXIS)
    return jax.shard_map(
        step,
        mesh=mesh,
        in_specs=(split, split, split, PartitionSpec()),
        out_specs=split,
        check_vma=False,
    )


def describe(mesh: Mesh | None) -> dict[str, Any]:
    """What a record says about the devices a run used."""
    devices = list(mesh.devices.flat) if mesh is not None else jax.local_devices()[:1]
    return {"device_kind": devices[0].device_kind, "devices": len(devices)}
