"""The host training driver: PPO in jitted chunks over K vmapped seeds, with logging between them.

`train_agent` resolves an env id, runs `make_ppo`'s `update` in compiled chunks (all seeds in one
call), and between chunks logs scalars, advances a progress bar, evaluates, and checkpoints. Plain
gymnasium ids go to the host path (`scalegym.agents.host`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from scalegym.agents.ppo import PPO, PPOConfig, RunnerState, make_ppo, normalize
from scalegym.core.resolve import resolve_env

AGENTS = ("ppo",)
LOG_POINTS = 40  # chunks per run: how often the host logs, evaluates and checkpoints

# Per-family PPO settings (documented in the README); anything else gets PPOConfig's defaults,
# which are PureJaxRL's CartPole settings.
FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    "Rearrange": {
        "num_envs": 256,
        "num_steps": 64,
        "update_epochs": 4,
        "num_minibatches": 8,
        "learning_rate": 5e-4,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "hidden": (128, 128),
        "activation": "relu",
    },
}

Logger = Callable[[int, dict[str, float]], None]


def default_config(env_id: str) -> PPOConfig:
    """PPO defaults for an env id's family (its name without the version and namespace)."""
    name = env_id.split(":")[-1].split("/")[-1].rsplit("-v", 1)[0]
    for family, overrides in FAMILY_CONFIGS.items():
        if name.startswith(family):
            return PPOConfig(**overrides)
    return PPOConfig()


def train_agent(
    env_id: str,
    agent: str = "ppo",
    *,
    total_steps: int,
    num_seeds: int = 1,
    seed: int = 0,
    env_overrides: dict[str, Any] | None = None,
    agent_overrides: dict[str, Any] | None = None,
    log: Logger | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `agent` on `env_id` for `total_steps` env steps per seed; returns a result record.

    The record: env, agent, steps (per seed), sps (env steps per second over all seeds, compile
    excluded), compile_s, wall_s, seeds, final {return, success, train_return, ...} and curve.
    """
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; allowed: {', '.join(AGENTS)}")
    if total_steps < 1 or num_seeds < 1:
        raise ValueError("total_steps and num_seeds must be >= 1")
    config = default_config(env_id).replace(
        total_timesteps=int(total_steps), **(agent_overrides or {})
    )
    resolved = resolve_env(env_id, **(env_overrides or {}))
    if resolved.kind == "host":
        from scalegym.agents.host import train_host

        return train_host(
            env_id,
            resolved.make_vector,
            config,
            num_seeds=num_seeds,
            seed=seed,
            log=log,
            progress=progress,
        )
    ppo = make_ppo(resolved.env, resolved.params, config)
    return ChunkedRun(env_id, ppo, resolved.params, num_seeds, seed, checkpoint_dir).run(
        log=log, resume=resume, progress=progress
    )


class ChunkedRun:
    """One PPO run over K seeds, stepped in compiled chunks of updates."""

    def __init__(
        self,
        env_id: str,
        ppo: PPO,
        env_params: Any,
        num_seeds: int,
        seed: int,
        checkpoint_dir: Path | None,
    ):
        self.env_id, self.ppo, self.env_params = env_id, ppo, env_params
        self.config = ppo.config
        self.num_seeds, self.seed = num_seeds, seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        total = self.config.num_updates
        self.chunk = max(1, math.ceil(total / LOG_POINTS))
        self._compiled: dict[int, Any] = {}

    def compiled_chunk(self, length: int, runner: RunnerState) -> tuple[Any, float]:
        """The compiled `length`-update chunk over all seeds, and the seconds compiling took."""
        if length in self._compiled:
            return self._compiled[length], 0.0
        scan = lambda r: jax.lax.scan(lambda c, _: self.ppo.update(c), r, None, length=length)
        start = time.perf_counter()
        self._compiled[length] = jax.jit(jax.vmap(scan)).lower(runner).compile()
        return self._compiled[length], time.perf_counter() - start

    def run(self, *, log: Logger | None, resume: bool, progress: bool) -> dict[str, Any]:
        config = self.config
        keys = jax.random.split(jax.random.key(self.seed), self.num_seeds)
        runner = jax.jit(jax.vmap(self.ppo.init))(keys)
        meta: dict[str, Any] = {}
        if resume and self.checkpoint_dir and (self.checkpoint_dir / "state.msgpack").exists():
            runner, meta = self.load(runner)
        done_updates = int(meta.get("updates", 0))
        curve: list[dict[str, Any]] = meta.get("curve", [])
        compile_s, run_s = float(meta.get("compile_s", 0.0)), float(meta.get("run_s", 0.0))
        start = time.perf_counter()
        total = config.num_updates
        evaluate = jax.jit(jax.vmap(lambda r, k: evaluate_policy(self.ppo, r, k, self.env_params)))
        bar = _progress(progress, f"ppo {self.env_id}", total * config.batch_size)
        evaluated = [c for c in curve if "eval/return" in c]  # a resumed run keeps its last eval
        last_eval: dict[str, Any] = {
            k: v
            for k, v in (evaluated[-1] if evaluated else {}).items()
            if k.startswith(("eval/", "per_seed"))
        }
        try:
            while done_updates < total:
                length = min(self.chunk, total - done_updates)
                compiled, seconds = self.compiled_chunk(length, runner)
                compile_s += seconds
                t0 = time.perf_counter()
                runner, metrics = jax.block_until_ready(compiled(runner))
                elapsed = time.perf_counter() - t0
                run_s += elapsed
                done_updates += length
                steps = done_updates * config.batch_size
                scalars = chunk_scalars(metrics)
                scalars["perf/sps"] = length * config.batch_size * self.num_seeds / elapsed
                final_chunk = done_updates >= total
                if final_chunk or len(curve) % 5 == 0:
                    eval_keys = jax.random.split(
                        jax.random.key(self.seed + 1_000_003), self.num_seeds
                    )
                    last_eval = eval_scalars(evaluate(runner, eval_keys))
                    scalars.update(last_eval)
                curve.append({"step": steps, **scalars})
                if log is not None:
                    log(steps, scalars)
                if self.checkpoint_dir:
                    self.save(runner, done_updates, curve, compile_s, run_s)
                if bar:
                    bar.update(steps, scalars)
        finally:
            if bar:
                bar.close()
        steps = total * config.batch_size
        final = {
            "return": last_eval.get("eval/return"),
            "success": last_eval.get("eval/success"),
            "train_return": curve[-1].get("train/return") if curve else None,
            "train_success": curve[-1].get("train/success") if curve else None,
            "per_seed_return": last_eval.get("per_seed_return"),
            "per_seed_success": last_eval.get("per_seed_success"),
        }
        return {
            "env": self.env_id,
            "agent": "ppo",
            "steps": steps,
            "seeds": self.num_seeds,
            "sps": steps * self.num_seeds / run_s if run_s else None,
            "compile_s": compile_s,
            "wall_s": time.perf_counter() - start,
            "config": config.as_dict(),
            "final": final,
            "curve": [{k: v for k, v in c.items() if not k.startswith("per_seed")} for c in curve],
        }

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: env, seeds and the PPO config."""
        return {
            "env": self.env_id,
            "seed": self.seed,
            "num_seeds": self.num_seeds,
            "config": self.config.as_dict(),
        }

    def save(
        self,
        runner: RunnerState,
        done_updates: int,
        curve: list[dict],
        compile_s: float,
        run_s: float,
    ) -> None:
        """Write the runner state and progress atomically (tmp file + rename)."""
        assert self.checkpoint_dir is not None
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        progress = {
            **self.identity(),
            "updates": done_updates,
            "compile_s": compile_s,
            "run_s": run_s,
            "curve": curve,
        }
        for name, data in (
            ("state.msgpack", serialization.to_bytes(jax.device_get(_unwrap_keys(runner)))),
            ("progress.json", json.dumps(progress).encode()),
        ):
            tmp = self.checkpoint_dir / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.checkpoint_dir / name)

    def load(self, template: RunnerState) -> tuple[RunnerState, dict[str, Any]]:
        """The saved runner and progress; ValueError if the checkpoint is of another run."""
        assert self.checkpoint_dir is not None
        meta = json.loads((self.checkpoint_dir / "progress.json").read_text())
        expected = self.identity()
        differ = [k for k in expected if meta.get(k) != expected[k]]
        if "config" in differ:
            fields = sorted(
                f
                for f in expected["config"]
                if meta.get("config", {}).get(f) != expected["config"][f]
            )
            differ = [*(d for d in differ if d != "config"), *(f"config.{f}" for f in fields)]
        if differ:
            raise ValueError(
                f"checkpoint {self.checkpoint_dir} is of another run: {', '.join(differ)} differ; "
                "resume with the same env, seeds, steps and agent settings, or start afresh"
            )
        raw = serialization.from_bytes(
            jax.device_get(_unwrap_keys(template)),
            (self.checkpoint_dir / "state.msgpack").read_bytes(),
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
        return runner, meta


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: Any) -> Any:
    """Typed PRNG keys as their raw uint32 data, which serialization can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def chunk_scalars(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Mean over seeds of per-chunk means: episode return/length/success and losses."""
    m = {k: np.asarray(v) for k, v in metrics.items()}  # each [K, updates]
    episodes = m["episodes"].sum(1)  # [K]
    out: dict[str, float] = {}
    has = episodes > 0
    if has.any():
        out["train/return"] = float((m["return_sum"].sum(1)[has] / episodes[has]).mean())
        out["train/episode_length"] = float((m["length_sum"].sum(1)[has] / episodes[has]).mean())
        if "success_sum" in m:
            out["train/success"] = float((m["success_sum"].sum(1)[has] / episodes[has]).mean())
    for name in ("loss", "actor_loss", "value_loss", "entropy", "approx_kl", "clip_frac"):
        out[f"train/{name}"] = float(m[name].mean())
    return out


def evaluate_policy(
    ppo: PPO, runner: RunnerState, key: jax.Array, env_params: Any, num_envs: int = 64
) -> dict[str, jax.Array]:
    """Sampled-policy episodes on fresh envs for one seed: sums and counts of finished episodes."""
    env = ppo.env
    limit = int(getattr(env_params, "max_steps_in_episode", 500))
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_reset, num_envs), env_params
    )
    carry0 = jnp.zeros_like(runner.carry[:1]).repeat(num_envs, 0)
    params, cfg = runner.train_state.params, ppo.config

    def body(c, key):
        obs, state, carry, starts, first = c
        k_act, k_env = jax.random.split(key)
        add_time = lambda tree: jax.tree.map(lambda x: x[None], tree)
        carry, logits, _ = ppo.apply(
            params,
            carry,
            add_time(normalize(runner.obs_norm, obs, cfg.normalize_obs)),
            starts[None],
        )
        action = jax.random.categorical(k_act, logits[0]).astype(jnp.int32)
        obs, state, _, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, num_envs), state, action, env_params
        )
        done = term | trunc
        counted = done & first  # only each env's first episode: no bias toward short episodes
        out = {
            "episodes": counted.sum(),
            "return_sum": (info["returned_episode_returns"] * counted).sum(),
        }
        if "returned_episode_success" in info:
            out["success_sum"] = (info["returned_episode_success"] * counted).sum()
        return (obs, state, carry, done, first & ~done), out

    init = (obs, state, carry0, jnp.ones(num_envs, bool), jnp.ones(num_envs, bool))
    _, out = jax.lax.scan(body, init, jax.random.split(k_run, limit + 1))
    return {k: v.sum() for k, v in out.items()}


def eval_scalars(out: dict[str, jax.Array]) -> dict[str, Any]:
    m = {k: np.asarray(v, np.float64) for k, v in out.items()}
    episodes = np.maximum(m["episodes"], 1)
    per_seed_return = m["return_sum"] / episodes
    out_scalars: dict[str, Any] = {
        "eval/return": float(per_seed_return.mean()),
        "per_seed_return": per_seed_return.tolist(),
    }
    if "success_sum" in m:
        per_seed_success = m["success_sum"] / episodes
        out_scalars["eval/success"] = float(per_seed_success.mean())
        out_scalars["per_seed_success"] = per_seed_success.tolist()
    return out_scalars


class _Bar:
    def __init__(self, description: str, total: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
            console=Console(stderr=True),  # stdout stays clean for --json
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, info="")

    def update(self, steps: int, scalars: dict[str, float]) -> None:
        info = " ".join(
            f"{k.split('/')[-1]}={scalars[k]:.3g}"
            for k in ("train/return", "train/success", "eval/success", "perf/sps")
            if k in scalars
        )
        self.progress.update(self.task, completed=steps, info=info)

    def close(self) -> None:
        self.progress.stop()


def _progress(enabled: bool, description: str, total: int) -> _Bar | None:
    return _Bar(description, total) if enabled else None
