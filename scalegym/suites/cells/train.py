"""The `train` cell: an agent trained on an env over seeds, with learning curves and a verdict."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from scalegym.agents.result import TrainResult
from scalegym.suites.markdown import (
    code_env_label,
    env_label,
    mean_std,
    num,
    si,
    si3,
    table_row,
    table_rule,
)
from scalegym.suites.schema import (
    INHERIT,
    Cell,
    CellContext,
    EnvCache,
    Record,
    Rule,
    base_env_problems,
    threshold_problems,
)
from scalegym.suites.statistics import iqm_cell

if TYPE_CHECKING:
    from scalegym.agents.train import TrainRequest
    from scalegym.core.resolve import ResolvedEnv

THRESHOLD_METRICS = ("success", "return")
ROLLOUTS = "rollouts"  # the run directory's folder of rollout GIFs, one folder per train cell


def agent_rules(role: str) -> dict[str, Rule]:
    """The fields of a cell that trains an agent of `role`: which, how long, over which seeds."""
    from scalegym.agents.registry import names

    return {
        "agent": Rule("str", required=True, allowed=names(role)),
        "steps": Rule("int", required=True, minimum=1),
        "seeds": Rule("int", default=INHERIT, minimum=1),
        "seed": Rule("int", default=INHERIT, minimum=0),
        "agent_params": Rule("table", default={}),
    }


def agent_param_problems(agent: str, params: dict[str, Any], at: str) -> list[str]:
    """Names and kinds in a cell's `agent_params` the agent's config refuses (env not needed)."""
    from scalegym.agents.ppo.config import override_problems

    problems = override_problems(params) if agent == "ppo" else []
    return [f'{at}: field "agent_params": {p}' for p in problems]


def training_problems(cell: Any, at: str, envs: EnvCache) -> list[str]:
    """The env built, then the training request built from it exactly as the run will build it
    (a `num_minibatches` that does not split the batch is refused here, before any work)."""
    problems = base_env_problems(cell, at, envs)
    if problems or agent_param_problems(cell.agent, cell.agent_params, at):
        return problems  # the params' names and kinds are reported by the cell's own checks
    try:
        training_request(cell, envs.get(cell.env, cell.env_params), CellContext.checks())
    except ValueError as err:
        return [f'{at}: field "agent_params": {err}']
    return []


def training_request(cell: Any, env: ResolvedEnv, context: CellContext) -> TrainRequest:
    """The `TrainRequest` of a cell with agent, steps, seeds, seed and agent_params fields."""
    from scalegym.agents.train import training_request as request

    return request(
        env,
        cell.agent,
        steps=cell.steps,
        agent_params=dict(cell.agent_params),
        num_seeds=cell.seeds,
        seed=cell.seed,
        devices=context.devices,
        checkpoint_dir=context.checkpoint_dir,
        resume=context.resuming and has_files(context.checkpoint_dir),
    )


@dataclass(frozen=True)
class TrainCell(Cell):
    """An agent trained on an env for `steps` env steps per seed over `seeds` seeds."""

    agent: str
    steps: int
    seeds: int
    seed: int
    agent_params: dict[str, Any]
    threshold: float | None
    threshold_on: str

    kind: ClassVar[str] = "train"
    title: ClassVar[str] = "Training"
    rules: ClassVar[dict[str, Rule]] = {
        **agent_rules("train"),
        "threshold": Rule("float", default=None),
        "threshold_on": Rule("str", default="success", allowed=THRESHOLD_METRICS),
    }

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        problems = threshold_problems(values["threshold"], "threshold_on", values, where)
        return problems + agent_param_problems(values["agent"], values["agent_params"], where)

    def env_problems(self, where: str, envs: EnvCache) -> list[str]:
        return training_problems(self, where, envs)

    def run(self, context: CellContext) -> dict[str, Any]:
        """Train over `seeds` seeds; curves go to TensorBoard at every chunk; then a GIF of the
        first seed's policy, `rollout_path` (`scalegym.suites.pictures`)."""
        result, request = train_in_cell(self, context)
        record = {**result.as_record(), "resumed_from_checkpoint": request.resume}
        if self.threshold is not None:
            record["threshold"] = threshold_verdict(result, self.threshold_on, self.threshold)
        from scalegym.suites.pictures import rollout_gif

        record["rollout"] = rollout_gif(request, context.run_dir, rollout_path(self.name))
        return record

    @staticmethod
    def summary_row(result: dict[str, Any]) -> dict[str, Any]:
        train = TrainResult.from_record(result)
        verdict = result.get("threshold") or {}
        return {
            "sps": train.sps,
            "steps": train.steps,
            "seeds": train.seeds,
            "final_return": train.final.eval_return,
            "final_success": train.final.eval_success,
            "final_train_return": train.final.train_return,
            "threshold": verdict.get("value"),
            "threshold_on": verdict.get("metric"),
            "passed": verdict.get("passed"),
            "compile_s": train.compile_s,
        }

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        train = TrainResult.from_record(result)
        parts = [f"eval return {num(train.final.eval_return, 3)}"]
        if train.final.eval_success is not None:
            parts.append(f"eval success {num(train.final.eval_success, 3)}")
        if result.get("threshold"):
            parts.append(verdict_text(result["threshold"]))
        parts.append(f"{si(train.sps)} env steps/s")
        return ", ".join(parts)

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        trained = [r for r in records if r["status"] == "ok"]
        if not trained:
            return []
        header = ["cell", "env", "agent", "seeds", "env steps / seed", "eval return"]
        header += ["eval return IQM [95% CI]", "eval success", "eval success IQM [95% CI]"]
        header += ["train return", "threshold", "SPS", "compile s", "wall s"]
        lines = [
            "",
            "Eval: each seed's policy on fresh envs, first episode of each (mean ± std over "
            "seeds; IQM: interquartile mean over seeds with a 95% stratified-bootstrap interval, "
            "Agarwal et al. 2021, given from 2 seeds). Train return: episodes that ended during "
            "the last chunk. SPS: env steps per second over all seeds, compile excluded.",
            "",
            table_row(header),
            table_rule(len(header)),
        ]
        for record in trained:
            result = TrainResult.from_record(record["result"])
            final = result.final
            cells = [
                record["cell"],
                env_label(record),
                result.agent + (" (host)" if result.path == "host" else ""),
                str(result.seeds),
                f"{result.steps:,}",
                mean_std(final.eval_return, final.per_seed_return),
                iqm_cell(final.per_seed_return),
                mean_std(final.eval_success, final.per_seed_success),
                iqm_cell(final.per_seed_success),
                num(final.train_return, 3),
                verdict_text(record["result"].get("threshold")),
                si(result.sps),
                num(result.compile_s, 1),
                num(record.get("wall_s"), 0),
            ]
            lines.append(table_row(cells))
        from scalegym.suites.pictures import rollout_lines

        return lines + rollout_lines(trained)

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        curve = record["result"].get("curve")
        if not curve:
            return None
        return curve_figure(plt, record["cell"], record["env"], curve)

    @staticmethod
    def readme_table(records: list[Record], **_: Any) -> list[str]:
        """End-to-end PPO SPS of each train cell (beside the bench cells of an sps run)."""
        lines = [
            "End-to-end PPO (rollout, GAE and update in one compiled program; all seeds, compile "
            "excluded):",
            "",
            "| env | seeds | envs × steps per update | env steps / seed | SPS |",
            "|---|---|---|---|---|",
        ]
        for r in records:
            result, config = r["result"], r["result"]["config"]
            lines.append(
                f"| {code_env_label(r)} | {result['seeds']} | {config['num_envs']} × "
                f"{config['num_steps']} | {result['steps']:,} | {si3(result['sps'])} |"
            )
        return lines


def rollout_path(cell: str) -> str:
    """Where a train cell's rollout GIF goes, relative to the run directory: a folder of the
    cell's own, which a Ray task sends back like its tb/ and checkpoints/ folders."""
    return f"{ROLLOUTS}/{cell}/rollout.gif"


def threshold_verdict(result: TrainResult, metric: str, value: float) -> dict[str, Any]:
    """Whether the final evaluation reached `value` on `metric` ("success" or "return")."""
    achieved = {"success": result.final.eval_success, "return": result.final.eval_return}[metric]
    return {
        "metric": metric,
        "value": value,
        "achieved": achieved,
        "passed": None if achieved is None else bool(achieved >= value),
    }


def verdict_text(threshold: dict[str, Any] | None) -> str:
    if not threshold:
        return "–"
    passed = threshold.get("passed")
    outcome = "n/a" if passed is None else ("pass" if passed else "FAIL")
    return f"{threshold['metric']} ≥ {threshold['value']:g}: {outcome}"


def train_in_cell(
    cell: Any, context: CellContext, *, share: float = 1.0
) -> tuple[TrainResult, TrainRequest]:
    """Train the cell's agent over its seeds; (the result, the request it ran).

    A cell killed mid-way is continued from its checkpoint when resuming; otherwise it starts
    over, and the curves of the lost attempt are removed so TensorBoard shows one run. Training
    fills the first `share` of the cell's progress bar.
    """
    from scalegym.agents.train import train_agent
    from scalegym.suites.tensorboard import TensorBoardLogger

    request = training_request(cell, context.resolved(cell.env, cell.env_params), context)
    if not request.resume:
        clear(context.tb_dir)
        clear(context.checkpoint_dir)
    with TensorBoardLogger(context.tb_dir) as logger:

        def log(env_steps: int, scalars: dict[str, float]) -> None:
            logger.log_scalars(env_steps, scalars)
            context.advance(share * min(1.0, env_steps / cell.steps))

        # progress=False: the runner's own bar is live; rich allows one live display
        result = train_agent(request, log=log, progress=False)
    return result, request


def clear(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def has_files(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))


def curve_figure(plt: Any, name: str, env: str, curve: list[dict[str, Any]]) -> Any:
    """Learning curves against env steps per seed, legend below the axes.

    Left axis: return of the training episodes that finished in each chunk (a line) and of
    evaluations on fresh envs (dots: the mean over seeds; with two or more seeds, a band: the
    95% stratified-bootstrap interval of their IQM). Right axis: evaluation success, whenever it
    was measured (hollow squares, drawn under the returns).
    Training success is not drawn: early in training only the episodes that end early, the
    successes, have finished, so it starts near 1.0 whatever the policy (it stays in TensorBoard
    beside `train/episodes`, the count it is taken over).
    """
    from matplotlib.ticker import EngFormatter, MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [p["step"] for p in curve]

    def points(tag: str) -> list[tuple[float, float]]:
        return [(s, p[tag]) for s, p in zip(steps, curve, strict=True) if tag in p]

    handles = []
    for tag, style, label in (
        ("train/return", "-", "return, training episodes"),
        ("eval/return", "o", "return, eval on fresh envs"),
    ):
        if points(tag):
            handles += ax.plot(*zip(*points(tag), strict=True), style, label=label, markersize=5)
    band = seed_band(curve, "per_seed_return")
    if band:
        handles.append(
            ax.fill_between(*band, color="tab:orange", alpha=0.25, label="eval IQM 95% CI, seeds")
        )
    ax.set(xlabel="env steps per seed", ylabel="return", title=f"{name}: {env}")
    success = points("eval/success")
    if success:
        twin = ax.twinx()
        handles += twin.plot(
            *zip(*success, strict=True),
            "s--",
            color="tab:green",
            markerfacecolor="none",
            markersize=8,
            label="success, eval",
        )
        twin.set(ylabel="success (eval)", ylim=(-0.02, 1.05))
        # Late in training return and success both sit at the top: the return axes go over the
        # success axes (without their own background), and the hollow squares let it show.
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    # Short engineering labels ("1.5M") on a few ticks, so they never run together.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)
    if handles:  # below the axes, where it cannot hide a curve
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=len(handles),
            frameon=False,
            fontsize="small",
        )
    fig.tight_layout()
    return fig


def seed_band(
    curve: list[dict[str, Any]], key: str
) -> tuple[list[float], list[float], list[float]] | None:
    """(steps, low, high) of the IQM's 95% stratified-bootstrap interval over seeds at every
    evaluation with two or more seeds (`statistics.iqm_with_ci`); None if there is none."""
    from scalegym.suites.statistics import iqm_with_ci

    rows = [(p["step"], p[key]) for p in curve if len(p.get(key) or []) >= 2]
    if not rows:
        return None
    intervals = [iqm_with_ci(values) for _, values in rows]
    return [s for s, _ in rows], [i["low"] for i in intervals], [i["high"] for i in intervals]
