"""What `scalegym train` says about its run directory: the command that continues it after a
Ctrl-C, the note when `--resume --steps N` extends it, and the code it ran."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalegym.cli.common import Interrupted, UsageError

if TYPE_CHECKING:
    from scalegym.agents.train import TrainRequest

PROGRESS = "progress.json"  # scalegym.agents.ppo.checkpoint.PROGRESS, read without importing jax

RESUME_HELP = (
    "continue the run in --out DIR from its checkpoint (same directory, the curves go on); "
    "--steps N extends a finished or interrupted run to N env steps per seed. Anything else "
    "that differs (the env, --set, --seeds, --seed, --agent-set) is refused. With anneal_lr "
    "(PPO's default) the linear decay is redrawn over the new length: from the point it was "
    "extended, the rate is the one a fresh N-step run uses there, down to 0 at N (before it, "
    "the rate fell faster than in that run); with --agent-set anneal_lr=False the extended run "
    "trains as a fresh N-step run does"
)


def saved_progress(run_dir: Path) -> dict[str, Any] | None:
    """The progress record of the run's checkpoint (updates, config, curve), None without one."""
    path = run_dir / "checkpoint" / PROGRESS
    return json.loads(path.read_text()) if path.is_file() else None


def check_resume(run_dir: Path, request: TrainRequest) -> None:
    """Before any work: UsageError when the checkpoint in `run_dir` is of another run (a length
    change is allowed) or has trained past the length asked; else a note on stderr when the
    length changes, and what that does to an annealed learning rate."""
    from scalegym.agents.ppo.checkpoint import check_identity
    from scalegym.agents.ppo.driver import EXTENDABLE, resume_extensions, run_identity

    saved = saved_progress(run_dir)
    if saved is None:
        return
    config = request.config
    identity = run_identity(request.env.id, request.num_seeds, request.seed, config)
    try:
        check_identity(run_dir / "checkpoint", saved, identity, extendable=EXTENDABLE)
        changes = resume_extensions(saved, config, run_dir / "checkpoint")
    except ValueError as err:
        raise UsageError(str(err)) from None
    if len(changes) == len(saved.get("extended", [])):
        return
    before, after = changes[-1]["from"], changes[-1]["to"]
    done = int(saved.get("updates", 0)) * config.batch_size
    state = "finished" if done >= before else f"interrupted at {done:,} env steps of the"
    note = f"note: extending the {state} {before:,}-step run in {run_dir} to {after:,} env steps"
    if config.anneal_lr:
        note += (
            f"; anneal_lr: the rate goes on from {1 - done / after:.0%} of learning_rate (where "
            f"a fresh {after:,}-step run would be) down to 0 at {after:,}"
        )
    print(note, file=sys.stderr)


def extensions(run_dir: Path) -> list[dict[str, int]]:
    """The length changes --resume made to the run (`from`, `to` env steps per seed)."""
    saved = saved_progress(run_dir)
    return list(saved.get("extended", [])) if saved else []


def train_interrupted(args: argparse.Namespace, run_dir: Path) -> Interrupted:
    """What a Ctrl-C kept of a training run, and the command that continues it."""
    saved = saved_progress(run_dir)
    if saved is None:
        kept = f"no checkpoint was written yet in {run_dir}; start again"
        return Interrupted(kept, train_command(args, run_dir, resume=False))
    batch = int(saved["config"]["num_envs"]) * int(saved["config"]["num_steps"])
    done = int(saved["updates"]) * batch
    kept = f"the checkpoint after {done:,} env steps per seed is kept in {run_dir / 'checkpoint'}"
    return Interrupted(kept, train_command(args, run_dir, resume=True))


def train_command(args: argparse.Namespace, run_dir: Path, *, resume: bool) -> list[str]:
    """`scalegym train` with this command's settings, writing to `run_dir`."""
    command = ["scalegym", "train", args.env_id]
    if args.agent != "ppo":
        command += ["--agent", args.agent]
    command += ["--steps", str(args.steps)]
    for flag, value, default in (("--seeds", args.seeds, 1), ("--seed", args.seed, 0)):
        if value != default:
            command += [flag, str(value)]
    for flag, overrides in (("--set", args.overrides), ("--agent-set", args.agent_overrides)):
        for name, value in overrides:
            command += [flag, f"{name}={override_text(value)}"]
    if args.devices is not None:
        command += ["--devices", str(args.devices)]
    for module in args.imports:
        command += ["--import", module]
    return [*command, *(["--resume"] if resume else []), "--out", str(run_dir)]


def override_text(value: Any) -> str:
    """The FIELD=VALUE text that `parse_override` reads back as `value`."""
    return repr(value)
