"""The chunked driver: a PPO run over K vmapped seeds in compiled chunks of updates.

Between chunks the host logs scalars, advances the progress bar, evaluates on fresh envs (every
`EVAL_EVERY` chunks and after the last) and checkpoints, so a killed run resumes where it was. A
resumed run may be given a longer `total_timesteps` than it was saved with: it goes on to the new
length (`EXTENDABLE`); with `anneal_lr` the rate from there on is the one a run of the new length
has at that update.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from scalegym.agents.devices import describe, env_mesh, shard_runner
from scalegym.agents.ppo.algorithm import PPO, RunnerState
from scalegym.agents.ppo.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.evaluation import EVAL_SEED_OFFSET, eval_scalars, evaluate_policy
from scalegym.agents.result import (
    FinalMetrics,
    Logger,
    TrainResult,
    evaluates_at,
    updates_per_log,
)
from scalegym.progress import training_bar

EXTENDABLE = ("total_timesteps",)  # config fields a resumed run may change: its length


class ChunkedRun:
    """One PPO run over K seeds, stepped in compiled chunks of updates."""

    def __init__(
        self,
        env_id: str,
        ppo: PPO,
        num_seeds: int,
        seed: int,
        checkpoint_dir: Path | None = None,
        devices: int | None = None,
    ):
        self.env_id, self.config = env_id, ppo.config
        self.num_seeds, self.seed = num_seeds, seed
        # The env batch split over local devices (all by default; scalegym.agents.devices).
        self.mesh = env_mesh(devices, self.config.num_envs)
        self.ppo = ppo._replace(mesh=self.mesh)  # in training, each device steps its own envs
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.chunk = updates_per_log(self.config.num_updates)
        self._compiled: dict[int, Any] = {}
        evaluate = lambda r, k: evaluate_policy(ppo, r, k, ppo.env_params, ppo.config.eval_envs)
        self._evaluate = jax.jit(jax.vmap(evaluate))

    def compiled_chunk(self, length: int, runner: RunnerState) -> tuple[Any, float]:
        """The compiled `length`-update chunk over all seeds, and the seconds compiling took."""
        if length in self._compiled:
            return self._compiled[length], 0.0
        scan = lambda r: jax.lax.scan(lambda c, _: self.ppo.update(c), r, None, length=length)
        start = time.perf_counter()
        self._compiled[length] = jax.jit(jax.vmap(scan)).lower(runner).compile()
        return self._compiled[length], time.perf_counter() - start

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: env, seeds and the PPO config."""
        return run_identity(self.env_id, self.num_seeds, self.seed, self.config)

    def evaluate(self, runner: RunnerState) -> dict[str, Any]:
        keys = jax.random.split(jax.random.key(self.seed + EVAL_SEED_OFFSET), self.num_seeds)
        return eval_scalars(self._evaluate(runner, keys))

    def run(self, *, log: Logger | None, resume: bool, progress: bool) -> TrainResult:
        config = self.config
        keys = jax.random.split(jax.random.key(self.seed), self.num_seeds)
        runner = jax.jit(jax.vmap(self.ppo.init))(keys)
        saved: dict[str, Any] = {}
        if resume and has_checkpoint(self.checkpoint_dir):
            assert self.checkpoint_dir is not None
            runner, saved = load_checkpoint(
                self.checkpoint_dir, runner, self.identity(), extendable=EXTENDABLE
            )
        runner = shard_runner(runner, self.mesh)
        done_updates = int(saved.get("updates", 0))
        extended = resume_extensions(saved, config, self.checkpoint_dir)
        curve: list[dict[str, Any]] = saved.get("curve", [])
        compile_s, run_s = float(saved.get("compile_s", 0.0)), float(saved.get("run_s", 0.0))
        start = time.perf_counter()
        total = config.num_updates
        with training_bar(progress, f"ppo {self.env_id}", total * config.batch_size) as bar:
            while done_updates < total:
                length = min(self.chunk, total - done_updates)
                compiled, seconds = self.compiled_chunk(length, runner)
                compile_s += seconds
                t0 = time.perf_counter()
                runner, metrics = jax.block_until_ready(compiled(runner))
                runner = shard_runner(runner, self.mesh)  # as the chunk was compiled for
                elapsed = time.perf_counter() - t0
                run_s += elapsed
                done_updates += length
                steps = done_updates * config.batch_size
                scalars = chunk_scalars(metrics)
                scalars["perf/sps"] = length * config.batch_size * self.num_seeds / elapsed
                if evaluates_at(len(curve), done_updates >= total):
                    scalars.update(self.evaluate(runner))
                curve.append({"step": steps, **scalars})
                if log is not None:
                    log(steps, scalars)
                if self.checkpoint_dir:
                    progress_record = {
                        **self.identity(),
                        "updates": done_updates,
                        "compile_s": compile_s,
                        "run_s": run_s,
                        "curve": curve,
                        "extended": extended,
                    }
                    save_checkpoint(self.checkpoint_dir, runner, progress_record)
                if bar:
                    bar.update(steps, scalars)
        steps = total * config.batch_size
        return TrainResult(
            env=self.env_id,
            agent="ppo",
            path="jax",
            steps=steps,
            seeds=self.num_seeds,
            sps=steps * self.num_seeds / run_s if run_s else None,
            compile_s=compile_s,
            wall_s=time.perf_counter() - start,
            config=config.as_dict(),
            devices=describe(self.mesh),
            final=final_metrics(curve),
            curve=curve,  # evaluations keep per_seed_* (the plots' seed bands)
        )


def run_identity(env_id: str, num_seeds: int, seed: int, config: PPOConfig) -> dict[str, Any]:
    """What a checkpoint of a run must match to be resumed: env, seeds and the PPO config."""
    return {"env": env_id, "seed": seed, "num_seeds": num_seeds, "config": config.as_dict()}


def resume_extensions(
    saved: dict[str, Any], config: PPOConfig, where: Path | None = None
) -> list[dict[str, int]]:
    """The length changes of a saved run (`saved`: its progress record; {} for a fresh run)
    with this one when `config`'s length differs: `from` and `to` in env steps per seed.
    ValueError when the saved run has already trained past `config`'s length."""
    extended = list(saved.get("extended", []))
    if not saved:
        return extended
    batch = config.batch_size
    done, length = int(saved.get("updates", 0)) * batch, config.num_updates * batch
    if done > length:
        raise ValueError(
            f"checkpoint {where} has already trained {done:,} env steps per seed, more than the "
            f"{length:,} asked; a run is not shortened: ask for {done:,} or more, or start afresh"
        )
    saved_length = max(1, int(saved["config"]["total_timesteps"]) // batch) * batch
    if saved_length != length:
        extended.append({"from": saved_length, "to": length})
    return extended


def final_metrics(curve: list[dict[str, Any]]) -> FinalMetrics:
    """The last evaluation and the last chunk's training episodes of a curve."""
    evaluated = [c for c in curve if "eval/return" in c]
    return FinalMetrics.from_scalars({**(evaluated[-1] if evaluated else {}), **curve[-1]})


def chunk_scalars(metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Mean over seeds of per-chunk means: episode return/length/success and losses."""
    m = {k: np.asarray(v) for k, v in metrics.items()}  # each [K, updates]
    episodes = m["episodes"].sum(1)  # [K]
    out: dict[str, float] = {}
    has = episodes > 0
    # How many episodes finished in the chunk (all seeds): train/return and train/success are
    # means over these, which early in training are only the episodes that ended early.
    out["train/episodes"] = float(episodes.sum())
    if has.any():
        out["train/return"] = float((m["return_sum"].sum(1)[has] / episodes[has]).mean())
        out["train/episode_length"] = float((m["length_sum"].sum(1)[has] / episodes[has]).mean())
        if "success_sum" in m:
            out["train/success"] = float((m["success_sum"].sum(1)[has] / episodes[has]).mean())
    for name in ("loss", "actor_loss", "value_loss", "entropy", "approx_kl", "clip_frac"):
        out[f"train/{name}"] = float(m[name].mean())
    return out
