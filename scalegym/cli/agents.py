"""`scalegym train` and `scalegym plan`: an agent trained on an env, a planner's episodes.

Each command resolves its env id once (`scalegym.core.resolve.resolve_env`) and hands the result
down; agent and planner names come from `scalegym.agents.registry`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalegym.agents import registry
from scalegym.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_devices,
    add_import,
    add_overrides,
    add_progress,
    check_devices,
    check_writable_dir,
    env_id_error,
    fail,
    import_user_module,
    positive_int,
    print_next_steps,
    write_json,
)
from scalegym.cli.train_runs import RESUME_HELP, check_resume, extensions, train_interrupted
from scalegym.progress import progress_enabled

if TYPE_CHECKING:
    from scalegym.agents.result import TrainResult
    from scalegym.agents.train import TrainRequest
    from scalegym.core.resolve import ResolvedEnv


def _choices(role: str) -> str:
    """`name: summary; name: summary` of the registry's names in `role`, for help texts."""
    rows = registry.describe()
    return "; ".join(f"{row['name']}: {row['summary']}" for row in rows if role in row["roles"])


def _resolve(env_id: str, overrides: dict[str, Any]) -> ResolvedEnv:
    """The command's one lookup of its env id; a bad id or param is a usage error."""
    from scalegym.core.resolve import resolve_env

    try:
        return resolve_env(env_id, **overrides)
    except ValueError as err:
        raise env_id_error(err) from None


# ------------------------------------------------------------------------------------------- train


def add_train_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "train",
        help="train an agent on an env over seeds, with TensorBoard curves",
        description=(
            "Train an agent on any env id for a budget of env steps per seed; all seeds in one "
            "compiled call. Writes <out>/tb (TensorBoard), <out>/checkpoint and "
            "<out>/result.json. Planners have their own command: scalegym plan."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v1, gymnax:CartPole-v1")
    cmd.add_argument("--agent", default="ppo", help=f"the agent (default ppo): {_choices('train')}")
    cmd.add_argument(
        "--steps",
        type=positive_int,
        default=1_000_000,
        help="env steps per seed (default 1M; 1e6 is read as 1000000); with --resume, the "
        "length the run goes on to",
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
    cmd.add_argument("--resume", action="store_true", help=RESUME_HELP)
    add_devices(cmd)
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_progress(cmd)
    cmd.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from scalegym.agents.train import train_agent, training_request
    from scalegym.cli.train_pictures import train_pictures
    from scalegym.suites.lock import RunDirBusy, hold_run_dir
    from scalegym.suites.rundir import DEFAULT_ROOT, code_state, new_run_dir
    from scalegym.suites.tensorboard import TensorBoardLogger

    for module in args.imports:
        import_user_module(module)
    if args.agent in registry.names("plan"):
        raise UsageError(
            f"--agent {args.agent} is a planner; run it with: scalegym plan {args.env_id} "
            f"--planner {args.agent} --budget N"
        )
    try:
        registry.lookup(args.agent, "train")
    except ValueError as err:
        raise UsageError(f"--agent: {err}") from None
    if args.resume and args.out is None:
        raise UsageError("--resume continues the run in --out DIR; give --out")
    if args.resume and not args.out.exists():
        raise UsageError(
            f"--resume: {args.out}: no such directory, so it holds no training run to continue; "
            "drop --resume to start one there"
        )
    if args.resume and not _holds_training(args.out):
        raise UsageError(
            f"--resume: {args.out} holds no training run to continue (no checkpoint/ or "
            "result.json); drop --resume to start one there"
        )
    if args.out is not None and not args.resume and _holds_training(args.out):
        raise UsageError(f"{args.out} already holds a training run; add --resume or pick --out")
    check_writable_dir(args.out if args.out is not None else DEFAULT_ROOT, "--out")
    resolved = _resolve(args.env_id, dict(args.overrides))
    if args.resume and resolved.kind == "host":
        raise UsageError(
            f"--resume: {args.env_id} is a host env, whose training keeps no checkpoint to "
            "continue; --resume continues runs on JAX envs"
        )
    check_devices(args.devices)
    stamped = DEFAULT_ROOT / "train" / re.sub(r"[^A-Za-z0-9_.-]", "_", args.env_id)
    try:  # the whole run as it will be built, before any folder is made
        request = training_request(
            resolved,
            args.agent,
            steps=args.steps,
            agent_params=dict(args.agent_overrides),
            num_seeds=args.seeds,
            seed=args.seed,
            devices=args.devices,
            checkpoint_dir=None if args.out is None else args.out / "checkpoint",
            resume=args.resume,
        )
    except ValueError as err:  # a config override, or a batch the devices cannot split
        raise UsageError(f"--agent-set: {err}" if args.agent_overrides else str(err)) from None
    _note_whole_updates(request, args.steps)
    if args.out is None:  # a fresh stamped folder, made only now
        run_dir = new_run_dir(stamped)
        request = _with_checkpoint(request, run_dir / "checkpoint")
    else:
        run_dir = args.out
    if args.resume:
        check_resume(run_dir, request)
    try:
        with hold_run_dir(run_dir), TensorBoardLogger(run_dir / "tb") as logger:
            result = train_agent(
                request, log=logger.log_scalars, progress=progress_enabled(args.progress)
            )
    except (ValueError, RunDirBusy) as err:  # e.g. another run's checkpoint, a busy directory
        raise UsageError(str(err)) from None
    except (TypeError, RuntimeError, MemoryError) as err:
        return fail(f"train {args.env_id} failed: {type(err).__name__}: {err}", EXIT_FAILURE)
    except KeyboardInterrupt:  # what the checkpoint kept, and the command that goes on
        raise train_interrupted(args, run_dir) from None
    record = result.as_record() | train_pictures(run_dir, request, result, to_stderr=args.json)
    extended = {"extended": extensions(run_dir)} if extensions(run_dir) else {}
    write_json(
        run_dir / "result.json",
        {
            **record,
            **extended,
            "run_dir": str(run_dir),
            "command": args.command_line,
            "code": code_state(),
        },
    )
    keys = ("env", "agent", "path", "steps", "sps", "compile_s", "seeds", "final")
    summary = {key: record[key] for key in keys} | {"run_dir": str(run_dir)}
    if args.json:
        print(json.dumps(summary, default=float))
    else:
        _print_train_summary(result)
    print_next_steps(run_dir, to_stderr=args.json)
    return EXIT_OK


def _with_checkpoint(request: TrainRequest, checkpoint_dir: Path) -> TrainRequest:
    """The same request saving to `checkpoint_dir` (a folder, which no check depends on)."""
    import dataclasses

    return dataclasses.replace(request, checkpoint_dir=checkpoint_dir)


def _note_whole_updates(request: TrainRequest, steps: int) -> None:
    """Say on stderr when PPO's whole updates make the run differ from --steps."""
    config = request.config
    trained = config.num_updates * config.batch_size
    if trained != steps:
        print(
            f"note: --steps {steps:,} trains {trained:,} env steps per seed: PPO runs whole "
            f"updates of num_envs x num_steps = {config.num_envs} x {config.num_steps} "
            f"= {config.batch_size:,} steps" + (", at least one" if steps < trained else ""),
            file=sys.stderr,
        )


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


# -------------------------------------------------------------------------------------------- plan


def add_plan_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "plan",
        help="play episodes with a search planner at a budget (no training)",
        description=(
            "Play --episodes episodes per seed with a planner on the env's own model, all in one "
            "compiled call; report return, success (for an env with a success flag) and "
            "simulated env steps per decision."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v1, PaninskiLock-v0")
    cmd.add_argument(
        "--planner",
        required=True,
        choices=registry.names("plan"),
        metavar="NAME",
        help=f"the planner: {_choices('plan')}",
    )
    cmd.add_argument(
        "--budget",
        type=positive_int,
        required=True,
        metavar="N",
        help="simulated env steps per decision",
    )
    cmd.add_argument("--episodes", type=positive_int, default=32, help="episodes per seed")
    cmd.add_argument("--seeds", type=positive_int, default=1, help="seeds (default 1)")
    cmd.add_argument("--seed", type=int, default=0, help="first seed")
    add_overrides(cmd, "--set", "overrides", "env param override (repeatable)")
    add_overrides(
        cmd,
        "--planner-set",
        "planner_options",
        "planner option (repeatable), e.g. horizon=4 (random-shooting, cem), width=8 (beam), "
        "model=known|prior and search=tree|rollouts (belief)",
    )
    cmd.add_argument(
        "--checkpoint",
        default="",
        metavar="RUN_DIR",
        help="gumbel-muzero: a `scalegym train` run directory on this env (and --set), whose "
        "PPO prior and value guide the search",
    )
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    cmd.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    from scalegym.agents.planners.planning import planner_summary

    for module in args.imports:
        import_user_module(module)
    overrides = dict(args.overrides)
    resolved = _resolve(args.env_id, overrides)
    if resolved.kind != "jax":
        raise UsageError(
            f"{args.env_id} is a host env: planners step a functional JAX env's own model"
        )
    count = args.seeds * args.episodes
    with resolved.precision():
        try:
            planner = registry.make_planner(
                args.planner,
                args.budget,
                dict(args.planner_options),
                checkpoint=args.checkpoint,
                env_overrides=overrides,
            )
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise UsageError(f"--planner {args.planner}: {err}") from None
        played = planner_summary(resolved.env, resolved.params, planner, count, args.seed)
        if not reports_success(resolved.env, resolved.params):
            played["success"] = None  # the planner's "success" would only say the episode ended
    summary = {"env": args.env_id, "planner": args.planner, "budget": args.budget, **played}
    if args.json:
        print(json.dumps(summary))
    else:
        label = args.planner + (" (oracle)" if summary["oracle"] else "")
        success = "" if summary["success"] is None else f"success {summary['success']:.2f}, "
        print(
            f"{args.env_id} {label} at budget {args.budget:,}: {count} episodes; return "
            f"{summary['return']:.3f}, {success}"
            f"{summary['sim_steps_per_decision']:.0f} simulated steps per decision "
            f"(wall {summary['wall_s']:.1f} s with compile)"
        )
    return EXIT_OK


def reports_success(env: Any, params: Any) -> bool:
    """Whether the env's step info carries a `success` flag (from shapes alone, nothing run)."""
    import jax

    def step_info(key: jax.Array) -> Any:
        _, state = env.reset_env(key, params)
        action = env.action_space(params).sample(key)
        return env.step_env(key, state, action, params)[4]

    info = jax.eval_shape(step_info, jax.random.key(0))
    return isinstance(info, dict) and "success" in info
