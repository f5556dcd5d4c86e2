"""The env batch of a PPO run sharded over local devices (`NamedSharding`, no `pmap`).

A run's env-batched leaves — env states, observations, episode-start flags, recurrent carries,
each [K, E, ...] over K seeds and E envs — are split along E over a one-axis mesh ("env"); the
network, optimiser, observation statistics and keys are replicated. The jitted update then runs
as one SPMD program: XLA partitions the rollout over devices and inserts the collectives the
learning step needs (minibatches mix envs), while the env step itself runs per device
(`per_device`, shard_map), each device stepping its own share. On one device nothing changes.

`devices=None` takes every local device; `devices=N` the first N. E must divide evenly.
"""

from __future__ import annotations

from collections.abc import Callable
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


def env_mesh(devices: int | None, num_envs: int) -> Mesh | None:
    """A one-axis mesh over the devices to split `num_envs` envs on; None on one device."""
    chosen = local_devices(devices)
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
