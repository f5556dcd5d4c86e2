"""What a training run returns and records, built the same way by the jitted and the host path.

`TrainResult.as_record()` is the JSON a suite writes to results.jsonl and `scalegym train` to
result.json; `TrainResult.from_record` reads one back (older records included) for the report.
`final.return`/`final.success` are always evaluation on fresh envs; the mean over recent training
episodes has its own names, `train_return`/`train_success`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

Logger = Callable[[int, dict[str, float]], None]  # (env steps per seed, scalars) after a chunk
LOG_POINTS = 40  # chunks per run: how often the host logs, evaluates and checkpoints
EVAL_EVERY = 5  # evaluate on fresh envs every this many chunks, and after the last


def updates_per_log(num_updates: int) -> int:
    """Updates per chunk, the same on both paths: chunks of this length, the last one shorter."""
    return max(1, math.ceil(num_updates / LOG_POINTS))


def evaluates_at(chunk_index: int, last: bool) -> bool:
    """Whether the chunk at `chunk_index` (0-based) ends with an evaluation on fresh envs."""
    return last or chunk_index % EVAL_EVERY == 0


@dataclasses.dataclass(frozen=True)
class FinalMetrics:
    """End-of-run numbers. Evaluation: each seed's policy sampled on fresh envs, first episode of
    each env. Training: the episodes that finished during the last chunk, averaged per seed."""

    eval_return: float | None = None  # mean over seeds
    eval_success: float | None = None  # mean over seeds; None for envs without success
    per_seed_return: list[float] | None = None
    per_seed_success: list[float] | None = None
    train_return: float | None = None
    train_success: float | None = None

    def as_record(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in RECORD_KEYS.items()}

    @classmethod
    def from_record(cls, final: dict[str, Any]) -> FinalMetrics:
        return cls(**{name: final.get(key) for name, key in RECORD_KEYS.items()})

    @classmethod
    def from_scalars(cls, scalars: dict[str, Any]) -> FinalMetrics:
        """From logged scalars: `eval/*` and `per_seed_*` of an evaluation, `train/*` of a chunk."""
        return cls(**{name: scalars.get(key) for name, key in SCALAR_KEYS.items()})


# FinalMetrics field -> its key in a JSON record ("return" and "success" are evaluation's).
RECORD_KEYS = {
    "eval_return": "return",
    "eval_success": "success",
    "per_seed_return": "per_seed_return",
    "per_seed_success": "per_seed_success",
    "train_return": "train_return",
    "train_success": "train_success",
}
# FinalMetrics field -> the scalar it comes from in a training curve.
SCALAR_KEYS = {
    "eval_return": "eval/return",
    "eval_success": "eval/success",
    "per_seed_return": "per_seed_return",
    "per_seed_success": "per_seed_success",
    "train_return": "train/return",
    "train_success": "train/success",
}


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """One training run over `seeds` seeds of `steps` env steps each."""

    env: str
    agent: str
    path: str  # "jax": env and learner under jit; "host": a gymnasium env stepped on the host
    steps: int  # env steps per seed
    seeds: int
    sps: float | None  # env steps per second over all seeds; steps while compiling not counted
    compile_s: float
    wall_s: float
    config: dict[str, Any]
    final: FinalMetrics
    curve: list[dict[str, Any]]  # per chunk: {"step": env steps per seed, scalar: value, ...}
    devices: dict[str, Any] | None = None  # {"device_kind", "devices"} the env batch ran on

    def as_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["final"] = self.final.as_record()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainResult:
        """The result in a record; records written before `path` existed were all "jax"."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values.setdefault("path", "jax")
        values.setdefault("curve", [])
        values["final"] = FinalMetrics.from_record(record.get("final") or {})
        return cls(**values)
