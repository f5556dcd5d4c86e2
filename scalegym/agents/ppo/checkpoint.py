"""Checkpoints of a chunked training run: the runner state and its progress, written atomically.

A checkpoint carries the identity of its run (env, seeds, agent config); loading it into a run
with another identity is refused with the fields that differ, except the config fields the caller
lets differ (`extendable`: a resumed run may be given a longer `total_timesteps`). A checkpoint
written before a config field or a runner field existed still loads: the config field reads as
the value every earlier run had (`config.ADDED_FIELDS`), the runner field as absent (None, as a
run that does not use it holds it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from scalegym.agents.ppo.config import with_added_fields

STATE, PROGRESS = "state.msgpack", "progress.json"


def has_checkpoint(directory: Path | None) -> bool:
    return directory is not None and (Path(directory) / STATE).exists()


def save_checkpoint(directory: Path, runner: Any, progress: dict[str, Any]) -> None:
    """Write the runner state and the progress record, each by tmp file + rename."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (
        (STATE, serialization.to_bytes(jax.device_get(_unwrap_keys(runner)))),
        (PROGRESS, json.dumps(progress).encode()),
    ):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


def load_checkpoint(
    directory: Path,
    template: Any,
    identity: dict[str, Any],
    *,
    extendable: Collection[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """(runner shaped like `template`, progress); ValueError if it is of another run.

    `extendable`: config fields that may differ from the checkpoint's (e.g. `total_timesteps`
    when a run is resumed to a new length); the caller checks what the difference allows.
    """
    progress = json.loads((directory / PROGRESS).read_text())
    check_identity(directory, progress, identity, extendable=extendable)
    target = jax.device_get(_unwrap_keys(template))
    state = serialization.msgpack_restore((directory / STATE).read_bytes())
    raw = serialization.from_state_dict(target, _with_absent_fields(target, state))
    runner = jax.tree.map(
        lambda t, x: (
            jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))
            if _is_key(t)
            else jnp.asarray(x)
        ),
        template,
        raw,
    )
    return runner, progress


def check_identity(
    directory: Path,
    progress: dict[str, Any],
    identity: dict[str, Any],
    *,
    extendable: Collection[str] = (),
) -> None:
    """ValueError naming the fields that differ when the checkpoint's `progress` record is of
    another run than `identity` (config fields in `extendable` may differ); fills in the config
    fields the record predates."""
    if isinstance(progress.get("config"), dict):
        progress["config"] = with_added_fields(progress["config"])
    differ = identity_differences(progress, identity, extendable)
    if differ:
        same = "seeds and agent settings" if extendable else "seeds, steps and agent settings"
        raise ValueError(
            f"checkpoint {directory} is of another run: {', '.join(differ)} differ; "
            f"resume with the same env, {same}, or start afresh"
        )


def identity_differences(
    saved: dict[str, Any], identity: dict[str, Any], extendable: Collection[str] = ()
) -> list[str]:
    """The keys of `identity` (config fields as `config.<field>`) whose saved value differs,
    leaving out the config fields in `extendable`."""
    differ = [k for k in identity if k != "config" and saved.get(k) != identity[k]]
    if "config" in identity:
        config = saved.get("config") or {}
        wanted = identity["config"]
        differ += [
            f"config.{f}"
            for f in sorted(wanted)
            if f not in extendable and config.get(f) != wanted[f]
        ]
    return differ


def _with_absent_fields(target: Any, state: Any) -> Any:
    """The saved state with the fields it predates filled in as None, where the target holds
    None too (a field this run does not use, e.g. `RunnerState.prev` without prev_action_reward).
    """
    fields = serialization.to_state_dict(target)
    if not (isinstance(fields, dict) and isinstance(state, dict)):
        return state
    return {**{k: None for k, v in fields.items() if v is None}, **state}


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: Any) -> Any:
    """Typed PRNG keys as their raw uint32 data, which serialization can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)
