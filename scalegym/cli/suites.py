"""`scalegym run`, `train`, `report` and `tb`: suites, training runs and their results."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalegym.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_import,
    add_overrides,
    add_progress,
    check_devices,
    check_writable_dir,
    fail,
    import_user_module,
    positive_int,
    print_next_steps,
    write_json,
)
from scalegym.progress import progress_enabled

if TYPE_CHECKING:
    from scalegym.agents.result import TrainResult

# --------------------------------------------------------------------------------------------- run


def add_run_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "run",
        help="run a suite (shipped name or TOML file) and write its results",
        description=(
            "Run a suite: validate it, then run its cells in order, writing "
            "results/runs/<suite>/<stamp>/ (manifest.json, results.jsonl, summary.csv, report.md, "
            "tb/<cell>/). Exit code 1 when a cell failed, 2 for an invalid suite."
        ),
    )
    cmd.add_argument(
        "suite",
        nargs="?",
        metavar="SUITE|FILE",
        help="a shipped suite (smoke, rearrange, ...) or a path to a suite .toml; "
        "optional with --resume (the run's own copy is used)",
    )
    cmd.add_argument("--out", type=Path, metavar="DIR", help="the run directory (default: stamped)")
    cmd.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run, skipping finished cells"
    )
    add_devices(cmd)
    cmd.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: cells one after another in this process (default); ray: each cell a Ray "
        "task (needs the ray extra)",
    )
    cmd.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="with --executor ray: the cluster to join (e.g. ray://head:10001 or auto); "
        "default: start a local Ray",
    )
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_progress(cmd)
    cmd.set_defaults(handler=_run)


def check_executor(executor: str, address: str | None) -> None:
    """--address only with --executor ray, and ray installed for it: refused before any work."""
    if address is not None and executor != "ray":
        raise UsageError("--address is the Ray cluster to join; it needs --executor ray")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError(
            "--executor ray: ray is not installed; install the extra: pip install 'scalegym[ray]'"
        )


def add_devices(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        metavar="N",
        help="split the training env batch over the first N local devices (default: all)",
    )


def _run(args: argparse.Namespace) -> int:
    from scalegym.suites import report
    from scalegym.suites.lock import RunDirBusy
    from scalegym.suites.runner import DEFAULT_ROOT, SUITE_COPY, RunDirError, run_suite
    from scalegym.suites.spec import SuiteError, load_suite

    for module in args.imports:
        import_user_module(module)
    if args.suite is None and args.resume is None:
        raise UsageError("give a SUITE name or .toml file, or --resume RUN_DIR")
    if args.resume is not None and args.out is not None:
        raise UsageError("--out starts a new run and --resume continues one; give only one")
    if args.resume is not None and not (args.resume / report.MANIFEST).is_file():
        raise UsageError(f"--resume {args.resume}: not a run directory (no {report.MANIFEST})")
    if args.resume is not None:
        check_writable_dir(args.resume, "--resume")
    elif args.out is not None:
        check_writable_dir(args.out, "--out")
    else:
        check_writable_dir(DEFAULT_ROOT, "results root")
    check_devices(args.devices)
    check_executor(args.executor, args.address)
    source = args.suite if args.suite is not None else args.resume / SUITE_COPY
    try:
        spec = load_suite(source)  # every cell validated before any work starts
        run_dir = run_suite(
            spec,
            out_dir=args.out,
            resume_dir=args.resume,
            progress=progress_enabled(args.progress),
            command=args.command_line,
            devices=args.devices,
            executor=args.executor,
            address=args.address,
            imports=args.imports,
        )
    except (SuiteError, RunDirError, RunDirBusy) as err:  # the input, not the run, is wrong
        raise UsageError(str(err)) from None
    latest = report.latest_records(report.read_records(run_dir / report.RESULTS))
    records = [latest[cell.name] for cell in spec.cells if cell.name in latest]
    failed = sum(record["status"] != "ok" for record in records)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "cells": records, "failed": failed}))
    else:
        print((run_dir / report.REPORT).read_text())
    print_next_steps(run_dir, to_stderr=args.json)
    if failed:
        return fail(f"{failed} cell(s) failed; see {run_dir / report.REPORT}", EXIT_FAILURE)
    return EXIT_OK


# ------------------------------------------------------------------------------------------- train


def add_train_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "train",
        help="train an agent on an env over seeds, with TensorBoard curves",
        description=(
            "Train an agent (PPO) on any env id for a budget of env steps per seed; all seeds "
            "in one compiled call. Writes <out>/tb (TensorBoard), <out>/checkpoint and "
            "<out>/result.json."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v1, gymnax:CartPole-v1")
    cmd.add_argument(
        "--agent",
        default="ppo",
        help=(
            "the agent (default ppo), or a planner (random-shooting, cem, beam, gumbel-muzero, "
            "belief, oracle): it plays --episodes episodes per seed with --agent-set budget=N "
            "(simulated env steps per decision) and its options; checkpoint=RUN_DIR gives "
            "gumbel-muzero a `scalegym train` run's prior and value; belief takes "
            "model=known|prior and search=tree|rollouts"
        ),
    )
    cmd.add_argument(
        "--episodes", type=positive_int, default=32, help="a planner's episodes per seed"
    )
    cmd.add_argument(
        "--steps", type=positive_int, default=1_000_000, help="env steps per seed (default 1M)"
    )
    cmd.add_argument("--seeds", type=positive_int, default=1, help="seeds trained together")
    cmd.add_argument("--seed", type=int, default=0, help="first seed")
    add_overrides(cmd, "--set", "overrides", "env param override (repeatable)")
    add_overrides(cmd, "--agent-set", "agent_overrides", "agent config override (repeatable)")
    cmd.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run directory (default results/runs/train/<env>/<stamp>/)",
    )
    cmd.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out DIR"
    )
    add_devices(cmd)
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_progress(cmd)
    cmd.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from scalegym.agents import AGENTS
    from scalegym.agents.ppo.config import default_config, override_problems
    from scalegym.core.resolve import env_precision, resolve_env
    from scalegym.suites.runner import DEFAULT_ROOT, new_run_dir
    from scalegym.suites.search import PLANNERS
    from scalegym.suites.tensorboard import TensorBoardLogger

    for module in args.imports:
        import_user_module(module)
    if args.resume and args.out is None:
        raise UsageError("--resume continues the run in --out DIR; give --out")
    if args.resume and not _holds_training(args.out):
        raise UsageError(
            f"--resume: {args.out} holds no training run to continue (no checkpoint/ or "
            "result.json); drop --resume to start one there"
        )
    if args.out is not None and not args.resume and _holds_training(args.out):
        raise UsageError(f"{args.out} already holds a training run; add --resume or pick --out")
    check_writable_dir(args.out if args.out is not None else DEFAULT_ROOT, "--out")
    env_overrides, agent_overrides = dict(args.overrides), dict(args.agent_overrides)
    try:  # x64 only for an env that declares float64 physics, here and for training below
        with env_precision(args.env_id):
            resolve_env(args.env_id, **env_overrides)  # bad ids and params fail before any work
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.agent in PLANNERS:
        return _plan(args, env_overrides, agent_overrides)
    if args.agent not in AGENTS:
        allowed = ", ".join((*AGENTS, *PLANNERS))
        raise UsageError(f"--agent: unknown agent {args.agent!r}; allowed: {allowed}")
    problems = override_problems(agent_overrides)
    if problems:
        raise UsageError(f"--agent-set: {'; '.join(problems)}")
    check_devices(args.devices)
    try:  # the whole config, as training will build it, before any folder is made
        config = default_config(args.env_id).replace(total_timesteps=args.steps, **agent_overrides)
    except ValueError as err:
        raise UsageError(f"--agent-set: {err}") from None
    trained = config.num_updates * config.batch_size
    if trained != args.steps:
        print(
            f"note: --steps {args.steps:,} trains {trained:,} env steps per seed: PPO runs whole "
            f"updates of num_envs x num_steps = {config.num_envs} x {config.num_steps} "
            f"= {config.batch_size:,} steps" + (", at least one" if args.steps < trained else ""),
            file=sys.stderr,
        )
    run_dir = args.out
    if run_dir is None:
        run_dir = new_run_dir(DEFAULT_ROOT / "train" / re.sub(r"[^A-Za-z0-9_.-]", "_", args.env_id))
    from scalegym.agents.train import train_agent
    from scalegym.suites.lock import RunDirBusy, hold_run_dir

    try:
        with (
            env_precision(args.env_id),
            hold_run_dir(run_dir),
            TensorBoardLogger(run_dir / "tb") as logger,
        ):
            result = train_agent(
                args.env_id,
                args.agent,
                total_steps=args.steps,
                num_seeds=args.seeds,
                seed=args.seed,
                env_overrides=env_overrides,
                agent_overrides=agent_overrides,
                log=logger.log_scalars,
                checkpoint_dir=run_dir / "checkpoint",
                resume=args.resume,
                progress=progress_enabled(args.progress),
                devices=args.devices,
            )
    except (ValueError, RunDirBusy) as err:  # the agent or its config, or a busy directory
        raise UsageError(str(err)) from None
    except (TypeError, RuntimeError, MemoryError) as err:
        return fail(f"train {args.env_id} failed: {type(err).__name__}: {err}", EXIT_FAILURE)
    record = result.as_record()
    write_json(
        run_dir / "result.json", {**record, "run_dir": str(run_dir), "command": args.command_line}
    )
    keys = ("env", "agent", "path", "steps", "sps", "compile_s", "seeds", "final")
    summary = {key: record[key] for key in keys} | {"run_dir": str(run_dir)}
    if args.json:
        print(json.dumps(summary, default=float))
    else:
        _print_train_summary(result)
    print_next_steps(run_dir, to_stderr=args.json)
    return EXIT_OK


def _plan(args: argparse.Namespace, env_overrides: dict, options: dict) -> int:
    """A planner's episodes (no training): return, success and simulated steps per decision."""
    import jax
    import numpy as np

    import scalegym
    from scalegym.agents.planners.planning import run_episodes
    from scalegym.core.resolve import env_precision
    from scalegym.suites.search import planner_for

    budget = options.pop("budget", None)
    if not isinstance(budget, int) or budget < 1:
        raise UsageError(
            f"--agent {args.agent} needs --agent-set budget=N (simulated env steps per "
            f"decision, an integer >= 1); got {budget!r}"
        )
    checkpoint = str(options.pop("checkpoint", ""))
    with env_precision(args.env_id):
        try:
            env, params = scalegym.make(args.env_id, **env_overrides)
            planner = planner_for(args.agent, budget, options, checkpoint, env_overrides)
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise UsageError(f"--agent {args.agent}: {err}") from None
        count = args.seeds * args.episodes
        key = jax.random.key(args.seed)
        start = time.perf_counter()
        out = jax.block_until_ready(run_episodes(env, params, planner, count, key))
        wall = time.perf_counter() - start  # compile included: one call
    out = {k: np.asarray(v) for k, v in out.items()}
    decisions = max(1, int(out["length"].sum()))
    summary = {
        "env": args.env_id,
        "agent": args.agent,
        "budget": budget,
        "episodes": count,
        "return": float(out["return"].mean()),
        "return_sem": float(out["return"].std(ddof=1) / np.sqrt(count)) if count > 1 else None,
        "success": float(out["success"].mean()),
        "sim_steps_per_decision": float(out["sim_steps"].sum() / decisions),
        "wall_s": wall,
        "oracle": bool(getattr(planner, "oracle", False)),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        label = args.agent + (" (oracle)" if summary["oracle"] else "")
        print(
            f"{args.env_id} {label} at budget {budget:,}: {count} episodes; return "
            f"{summary['return']:.3f}, success {summary['success']:.2f}, "
            f"{summary['sim_steps_per_decision']:.0f} simulated steps per decision "
            f"(wall {wall:.1f} s with compile)"
        )
    return EXIT_OK


def _holds_training(out: Path) -> bool:
    checkpoint = out / "checkpoint"
    return (out / "result.json").exists() or (checkpoint.is_dir() and any(checkpoint.iterdir()))


def _print_train_summary(result: TrainResult) -> None:
    final = result.final
    parts = [f"eval return {_fmt(final.eval_return)}"]
    if final.eval_success is not None:
        parts.append(f"eval success {_fmt(final.eval_success)}")
    if final.train_return is not None:
        parts.append(f"train return {_fmt(final.train_return)}")
    sps = "–" if result.sps is None else f"{result.sps:,.0f}"
    print(
        f"{result.env} {result.agent} ({result.path}): {result.seeds} seed(s) x "
        f"{result.steps:,} env steps; final {', '.join(parts)}; {sps} env steps/s "
        f"(compile {result.compile_s:.1f} s, wall {result.wall_s:.0f} s)"
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------------------------------ report


def add_report_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "report",
        help="rewrite a run's summary.csv and report.md and print the report",
        description="Regenerate summary.csv and report.md from a run's results.jsonl.",
    )
    cmd.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a results/runs/... directory")
    cmd.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from scalegym.suites.report import write_outputs

    try:
        _, report_path = write_outputs(args.run_dir)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(report_path.read_text())
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- tb


def add_tb_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "tb",
        help="serve a run's TensorBoard curves on 127.0.0.1",
        description="Start TensorBoard on RUN_DIR/tb, print its URL, and serve until Ctrl-C.",
    )
    cmd.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run or train directory")
    cmd.add_argument("--port", type=int, default=None, help="port (default: first free from 6006)")
    cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    cmd.set_defaults(handler=_tb)


def _tb(args: argparse.Namespace) -> int:

    from scalegym.suites.tensorboard import launch_tensorboard

    log_dir = args.run_dir / "tb"
    if not log_dir.is_dir():
        raise UsageError(f"{args.run_dir}: no tb/ folder; give a directory written by run or train")
    try:
        url = launch_tensorboard(log_dir, host=args.host, port=args.port)
    except Exception as err:  # e.g. the port is taken: TensorBoard raises its own error types
        return fail(f"TensorBoard did not start: {err}", EXIT_FAILURE)
    print(f"TensorBoard for {args.run_dir} at {url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
