"""Checkpoints of a chunked training run: the runner state and its progress, written atomically.

A checkpoint carries the identity of its run (env, seeds, agent config); loading it into a run
with another identity is refused with the fields that differ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

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
    raw = serialization.from_bytes(
        jax.device_get(_unwrap_keys(template)), (directory / STATE).read_bytes()
    )
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


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: Any) -> Any:
    """Typed PRNG keys as their raw uint32 data, which serialization can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)
