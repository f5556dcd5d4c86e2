"""Checkpoints of a chunked training run: the runner state and its progress, written atomically.

A checkpoint carries the identity of its run (env, seeds, agent config); loading it into a run
with another identity is refused with the fields that differ. A checkpoint written before a config
field or a runner field existed still loads: the config field reads as the value every earlier run
had (`config.ADDED_FIELDS`), the runner field as absent (None, as a run that does not use it holds
it).
"""

from __future__ import annotations

import json
import os
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
    directory: Path, template: Any, identity: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """(runner shaped like `template`, progress); ValueError if it is of another run."""
    progress = json.loads((directory / PROGRESS).read_text())
    if isinstance(progress.get("config"), dict):
        progress["config"] = with_added_fields(progress["config"])
    differ = [k for k in identity if progress.get(k) != identity[k]]
    if "config" in differ:
        saved = progress.get("config") or {}
        fields = sorted(f for f in identity["config"] if saved.get(f) != identity["config"][f])
        differ = [*(d for d in differ if d != "config"), *(f"config.{f}" for f in fields)]
    if differ:
        raise ValueError(
            f"checkpoint {directory} is of another run: {', '.join(differ)} differ; "
            "resume with the same env, seeds, steps and agent settings, or start afresh"
        )
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
