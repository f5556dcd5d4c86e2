"""The `timestep` cell: train PPO to choose an integrator's step, then judge it like the paper.

Over 400 lines: one cell kind keeps its fields, checks, run, report, figure and README table.

After training, each seed's greedy policy and every fixed action (each fixed μ) run one episode on
each evaluation instance seed (0–99 × 300 steps by default, `threebody.evaluation`); the record
holds per-episode (substeps, final log10|ΔE|), a summary row per policy, and the paper's verdict
(`threebody.verdict`). With `validation_instances`, every seed and fixed action first run on
training instance seeds (100–199 for 100 evaluation seeds) and one seed is selected there, before
the evaluation is looked at. Beside them, outside the verdict: fixed η of Aarseth's criterion
(`aarseth_actions`), a search planner choosing μ by lookahead whose substeps count its own
simulations (`planner`, `planner_budgets`), and the first seed's policy transferred to REBOUND's
integrators (`transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from scalegym.envs.threebody.verdict import select_seed, selected_seed, verdict
from scalegym.suites.cells.train import (
    agent_param_problems,
    agent_rules,
    train_in_cell,
    training_problems,
)
from scalegym.suites.schema import Cell, CellContext, EnvCache, Record, Rule

if TYPE_CHECKING:
    from scalegym.agents.result import TrainResult
    from scalegym.agents.train import TrainRequest
    from scalegym.core.resolve import ResolvedEnv

AARSETH = "ThreeBodyAarseth-v0"  # fixed η of Aarseth's criterion, judged beside fixed μ


def work_planners() -> tuple[str, ...]:
    """Planners that count their simulated work (Decision.sim_work), which a timestep cell
    charges beside the real Hermite substeps."""
    from scalegym.agents import registry

    return tuple(n for n in registry.names("plan") if registry.lookup(n, "plan").counts_work)


@dataclass(frozen=True)
class TimestepCell(Cell):
    """PPO trained to choose an integrator's step, judged against every fixed action (ThreeBody)."""

    agent: str
    steps: int
    seeds: int
    seed: int
    agent_params: dict[str, Any]
    instances: int  # evaluation instance seeds 0..instances-1
    # Training instance seeds instances..instances+validation_instances-1, disjoint from the
    # evaluation seeds, on which one PPO seed is selected (0: no selection).
    validation_instances: int
    eval_steps: int  # env steps per evaluation episode
    eval_params: dict[str, Any]  # env params at evaluation (training uses env_params)
    baseline_actions: tuple[int, ...]  # fixed actions judged beside PPO; () = all
    aarseth_actions: tuple[int, ...]  # fixed η of ThreeBodyAarseth-v0 also judged (not verdict)
    transfer: tuple[str, ...]  # REBOUND integrators the first seed's policy is run on
    transfer_instances: int
    planner: str  # "" none; else a search planner judged on the same instances (not verdict)
    planner_budgets: tuple[int, ...]  # its budgets (simulated env steps per decision)
    planner_params: dict[str, Any]

    kind: ClassVar[str] = "timestep"
    title: ClassVar[str] = "Time-step policies against every fixed step"
    rules: ClassVar[dict[str, Rule]] = {
        **agent_rules("train"),
        "instances": Rule("int", default=100, minimum=1),
        "validation_instances": Rule("int", default=0, minimum=0),
        "eval_steps": Rule("int", default=300, minimum=1),
        "eval_params": Rule("table", default={}),
        "baseline_actions": Rule("int_list", default=(), minimum=0),
        "aarseth_actions": Rule("int_list", default=(), minimum=0),
        "transfer": Rule("str_or_str_list", default=()),
        "transfer_instances": Rule("int", default=10, minimum=1),
        "planner": Rule("str", default="", allowed=("", *work_planners())),
        "planner_budgets": Rule("int_list", default=(), minimum=1),
        "planner_params": Rule("table", default={}),
    }

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        """Fixed actions ThreeBody has, and REBOUND integrators a timestep cell can transfer to."""
        from scalegym.envs.threebody.initial_conditions import TRAIN_SEEDS
        from scalegym.envs.threebody.rebound_env import INTEGRATORS
        from scalegym.envs.threebody.rules import ETA_ACTIONS, MU_ACTIONS

        errors = []
        last = values["instances"] + values["validation_instances"]
        if values["validation_instances"] and last > TRAIN_SEEDS:
            errors.append(
                f'{where}: field "validation_instances": instance seeds {values["instances"]}..'
                f"{last - 1} run past the training seeds 0..{TRAIN_SEEDS - 1}; allowed: 0.."
                f"{TRAIN_SEEDS - values['instances']}"
            )
        for name, table in (("baseline_actions", MU_ACTIONS), ("aarseth_actions", ETA_ACTIONS)):
            actions = [a for a in values[name] if a >= len(table)]
            if actions:
                errors.append(f'{where}: field "{name}": {actions}; allowed: 0..{len(table) - 1}')
        unknown = [t for t in values["transfer"] if t not in INTEGRATORS]
        if unknown:
            errors.append(
                f'{where}: field "transfer": {", ".join(unknown)} unknown; '
                f"allowed: {', '.join(INTEGRATORS)}"
            )
        if bool(values["planner"]) != bool(values["planner_budgets"]):
            errors.append(f'{where}: fields "planner" and "planner_budgets" go together; give both')
        elif values["planner"]:
            from scalegym.agents.registry import make_planner

            for budget in values["planner_budgets"]:
                try:
                    make_planner(values["planner"], budget, dict(values["planner_params"]))
                except (ValueError, TypeError) as err:
                    errors.append(f'{where}: field "planner_params" at budget {budget}: {err}')
                    break
        return errors + agent_param_problems(values["agent"], values["agent_params"], where)

    def env_problems(self, where: str, envs: EnvCache) -> list[str]:
        """The training env and request, the evaluation env, and Aarseth's env if asked for."""
        problems = training_problems(self, where, envs)
        evaluated = [(self.env, self.evaluation_params(), "eval_params")]
        if self.aarseth_actions:
            evaluated.append((AARSETH, self.aarseth_params(), "aarseth_actions"))
        for env_id, params, field in evaluated:
            problem = envs.failure(env_id, params)
            if problem is not None:
                problems.append(f'{where}: field "{field}": {env_id}: {problem}')
        return problems

    def evaluation_params(self) -> dict[str, Any]:
        """Evaluation env params: one table holds the evaluation and the validation seeds."""
        return {"num_instances": self.instances + self.validation_instances, **self.eval_params}

    def aarseth_params(self) -> dict[str, Any]:
        return {"num_instances": self.instances, **self.eval_params}

    def run(self, context: CellContext) -> dict[str, Any]:
        return run_timestep(self, context)

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for record in records:
            if record["status"] == "ok":
                lines += ["", *report_lines(record["cell"], record["result"])]
        return lines

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        if not record["result"].get("episodes"):
            return None
        return timestep_figure(plt, record["cell"], record["env"], record["result"])

    @staticmethod
    def readme_table(records: list[Record], **_: Any) -> list[str]:
        """Each timestep cell's rows: PPO seeds, fixed μ, Aarseth's fixed η, planners."""
        lines = []
        for r in records:
            result = r["result"]
            lines += [
                f"`{r['cell']}`: {result['instances']} instance seeds × "
                f"{result['eval_steps']} steps",
                "",
                "| policy | median log10\\|ΔE\\| [IQR] | total substeps | mean paper reward |",
                "|---|---|---|---|",
            ]
            for row in result["rows"]:
                q25, q75 = row["iqr_log10_error"]
                substeps = f"{row['total_substeps']:,}"
                if "planner_substeps" in row:
                    substeps += f" (planning {row['planner_substeps']:,})"
                lines.append(
                    f"| {row['policy']} | {row['median_log10_error']:.2f} [{q25:.2f}, {q75:.2f}] | "
                    f"{substeps} | {row['mean_paper_reward']:.3f} |"
                )
            judged, chosen = result["verdict"], selected_seed(result)
            if chosen is not None:
                first, last = result["validation"]["instances"]
                lines += [
                    "",
                    f"The trained policy, selected on validation seeds {first}–{last} (the report "
                    f"says how): **{judged['selected']}**, on the seeds above dominated by "
                    f"{', '.join(chosen['dominated_by']) or 'no fixed μ'}; beats the best fixed "
                    f"μ's mean paper reward ({judged['best_fixed']}): "
                    + ("yes" if chosen["beats_best_fixed"] else "no")
                    + ".",
                ]
            lines.append("")
        return lines


def run_timestep(cell: TimestepCell, context: CellContext) -> dict[str, Any]:
    """Train, then evaluate PPO, the fixed actions and the transfer (see the module)."""
    trained, request = train_in_cell(cell, context, share=0.5)
    evaluated = context.resolved(cell.env, cell.evaluation_params())
    with evaluated.precision():
        return evaluate_timestep(cell, context, trained, request, evaluated)


def evaluate_timestep(
    cell: TimestepCell,
    context: CellContext,
    trained: TrainResult,
    request: TrainRequest,
    evaluated: ResolvedEnv,
) -> dict[str, Any]:
    """Every PPO seed, fixed action, Aarseth η and planner budget on the instance seeds."""
    from scalegym.agents.baselines.fixed import fixed_action
    from scalegym.agents.ppo.trained import load_trained, ppo_policy, seed_runner
    from scalegym.agents.registry import make_planner
    from scalegym.envs.threebody import evaluation

    ppo, runner = load_trained(request)
    env, params = evaluated.env, evaluated.params
    table_size = cell.instances + cell.validation_instances
    instances = tuple(range(cell.instances))
    actions = cell.baseline_actions or tuple(range(len(env.actions)))
    total = (cell.seeds + len(actions)) * (2 if cell.validation_instances else 1)
    total += len(cell.aarseth_actions) + len(cell.planner_budgets)
    runs: list[tuple[str, dict[str, np.ndarray]]] = []  # the evaluation's
    checks: list[tuple[str, dict[str, np.ndarray]]] = []  # the validation's
    policy = ppo_policy(ppo)  # one compiled evaluation for every seed, another for every action

    def judge(on: tuple[int, ...], into: list[tuple[str, dict[str, np.ndarray]]]) -> None:
        """Every PPO seed and every fixed action, one episode per instance seed in `on`."""
        for k in range(cell.seeds):
            result = _evaluate(env, params, policy, seed_runner(runner, k), cell, on)
            into.append((f"ppo seed {cell.seed + k}", result))
        for a in actions:
            result = _evaluate(env, params, fixed_action, np.int32(a), cell, on)
            into.append((f"fixed {env.actions[a]:.3g}", result))
            context.advance(0.5 + 0.5 * (len(runs) + len(checks)) / total)

    validation = None
    if cell.validation_instances:  # first, so the selection cannot see the evaluation
        seen = tuple(range(cell.instances, table_size))
        judge(seen, checks)
        rows = [{"policy": name, **evaluation.summarize(result)} for name, result in checks]
        validation = {"instances": [seen[0], seen[-1]], "rows": rows, "selected": select_seed(rows)}
    judge(instances, runs)
    if cell.aarseth_actions:
        aarseth = context.resolved(AARSETH, cell.aarseth_params())
        eta_env, eta_params = aarseth.env, aarseth.params
        for a in cell.aarseth_actions:
            result = _evaluate(eta_env, eta_params, fixed_action, np.int32(a), cell, instances)
            runs.append((f"aarseth η {eta_env.actions[a]:.3g}", result))
            context.advance(0.5 + 0.5 * len(runs) / total)
    for budget in cell.planner_budgets:
        planner = make_planner(cell.planner, budget, dict(cell.planner_params))
        result = evaluation.evaluate_planner_instances(
            env, params, planner, instances, cell.eval_steps
        )
        runs.append((f"{cell.planner} budget {budget}", result))
        context.advance(0.5 + 0.5 * len(runs) / total)
    rows = [{"policy": name, **evaluation.summarize(result)} for name, result in runs]
    episodes = {
        name: {
            "substeps": evaluation.episode_substeps(result).tolist(),
            "final_log10_error": result["final_log10_error"].tolist(),
        }
        for name, result in runs
    }
    transfer = [
        {"integrator": integrator, **_transfer(ppo, seed_runner(runner, 0), integrator, cell)}
        for integrator in cell.transfer
    ]
    judged = verdict(rows)
    if validation is not None:
        judged["selected"] = validation["selected"]
    return {
        "train": trained.as_record(),
        "eval_steps": cell.eval_steps,
        "instances": cell.instances,
        "validation": validation,
        "rows": rows,
        "verdict": judged,
        "episodes": episodes,
        "transfer": transfer,
    }


def _evaluate(
    env: Any, params: Any, policy: Any, theta: Any, cell: Any, instances: tuple[int, ...]
) -> Any:
    from scalegym.envs.threebody import evaluation

    return evaluation.evaluate_instances(env, params, policy, theta, instances, cell.eval_steps)


def _transfer(ppo: Any, runner: Any, integrator: str, cell: Any) -> dict[str, Any]:
    from scalegym.agents.ppo.trained import host_policy, ppo_policy
    from scalegym.envs.threebody import evaluation

    act = host_policy(ppo_policy(ppo), runner)
    result = evaluation.evaluate_host_instances(
        integrator, act, tuple(range(cell.transfer_instances)), cell.eval_steps
    )
    return evaluation.summarize(result)


def report_lines(cell_name: str, result: dict[str, Any]) -> list[str]:
    """report.md's tables for one timestep cell."""
    lines = [
        f"### {cell_name}: {result['instances']} instance seeds × {result['eval_steps']} steps",
        "",
        "| policy | median log10\\|ΔE\\| [IQR] | total substeps | mean paper reward "
        "| ended early |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(judged_row(r["policy"], r, r["ended_early"]))
    planned = [r for r in result["rows"] if "planner_substeps" in r]
    if planned:
        lines.append("")
    for r in planned:
        lines.append(
            f"{r['policy']}: total substeps = {r['env_substeps']:,} stepping the env + "
            f"{r['planner_substeps']:,} in the planner's own simulations (outside the verdict)"
        )
    v = result["verdict"]
    for seed in v["seeds"]:
        dominated = ", ".join(seed["dominated_by"]) or "none"
        lines.append(
            f"\n{seed['policy']}: dominated by {dominated}; beats the best fixed "
            f"({v['best_fixed']}) in mean paper reward: "
            + ("yes" if seed["beats_best_fixed"] else "no")
        )
    validation = result.get("validation")
    if validation:
        first, last = validation["instances"]
        chosen = selected_seed(result)
        marks = {s["policy"]: s["dominated_by"] for s in verdict(validation["rows"])["seeds"]}
        how = (
            "the highest mean paper reward of the seeds no fixed μ dominates there"
            if any(not by for by in marks.values())
            else "every seed is dominated by a fixed μ there, so the highest mean paper reward"
        )
        lines += [
            "",
            f"**The trained policy: {v['selected']}**, selected on validation instance seeds "
            f"{first}–{last} (training seeds, not the evaluation's) before the evaluation: "
            f"{how}. On the evaluation seeds it is dominated by "
            f"{', '.join(chosen['dominated_by']) or 'none'} and beats the best fixed μ's mean "
            "paper reward: " + ("yes" if chosen["beats_best_fixed"] else "no") + ".",
            "",
            f"Validation ({first}–{last}):",
            "",
            "| policy | median log10\\|ΔE\\| | total substeps | mean paper reward | dominated by |",
            "|---|---|---|---|---|",
        ]
        for r in validation["rows"]:
            by = (", ".join(marks[r["policy"]]) or "none") if r["policy"] in marks else ""
            lines.append(
                f"| {r['policy']} | {r['median_log10_error']:.2f} | {r['total_substeps']:,} | "
                f"{r['mean_paper_reward']:.3f} | {by} |"
            )
    if result.get("transfer"):
        lines += [
            "",
            "Transfer of the first seed's policy to REBOUND (no retraining):",
            "",
            "| integrator | median log10\\|ΔE\\| [IQR] | total steps | mean paper reward "
            "| episodes |",
            "|---|---|---|---|---|",
        ]
        for t in result["transfer"]:
            lines.append(judged_row(t["integrator"], t, t["episodes"]))
    return lines


def judged_row(name: str, judged: dict[str, Any], last: Any) -> str:
    """A table row of one judged policy: median error [IQR], substeps, reward, then `last`."""
    q25, q75 = judged["iqr_log10_error"]
    return (
        f"| {name} | {judged['median_log10_error']:.2f} [{q25:.2f}, {q75:.2f}] | "
        f"{judged['total_substeps']:,} | {judged['mean_paper_reward']:.3f} | {last} |"
    )


def timestep_figure(plt: Any, name: str, env: str, result: dict[str, Any]) -> Any:
    """Final log10|ΔE| against substeps per episode, one colour per policy, with marginals."""
    fig = plt.figure(figsize=(7, 7.5))
    grid = fig.add_gridspec(4, 4, hspace=0.05, wspace=0.05, bottom=0.27)
    ax = fig.add_subplot(grid[1:, :3])
    top = fig.add_subplot(grid[0, :3], sharex=ax)
    side = fig.add_subplot(grid[1:, 3], sharey=ax)
    names = list(result["episodes"])
    fixed = [n for n in names if n.startswith("fixed")]
    aarseth = [n for n in names if n.startswith("aarseth")]
    planners = [n for n in names if " budget " in n]
    all_steps = np.concatenate([result["episodes"][n]["substeps"] for n in names])
    bins_x = np.logspace(np.log10(max(1, all_steps.min())), np.log10(all_steps.max() + 1), 30)
    for n in names:
        ep = result["episodes"][n]
        steps, err = np.maximum(np.asarray(ep["substeps"]), 1), np.asarray(ep["final_log10_error"])
        is_ppo = n.startswith("ppo")
        colour = "crimson" if is_ppo else _baseline_colour(plt, n, fixed, aarseth, planners)
        marker = "*" if is_ppo else ("s" if n in aarseth else ("D" if n in planners else "o"))
        ax.scatter(
            steps, err, s=14 if is_ppo else 6, color=colour, alpha=0.7, label=n, marker=marker
        )
        if not is_ppo:  # each fixed μ (η, planner budget) marked at its medians
            ax.scatter(
                np.median(steps),
                np.median(err),
                s=80,
                color=colour,
                edgecolor="black",
                marker="D" if n in planners else "o",
            )
        top.hist(steps, bins=bins_x, color=colour, alpha=0.35 if not is_ppo else 0.7)
        side.hist(
            err, bins=30, orientation="horizontal", color=colour, alpha=0.35 if not is_ppo else 0.7
        )
    xlabel = "Hermite substeps per episode" + (" (a planner's own included)" if planners else "")
    ax.set(xscale="log", xlabel=xlabel, ylabel="final log10 |ΔE|")
    top.set(xscale="log", title=f"{name}: {env}")
    top.tick_params(labelbottom=False)
    side.tick_params(labelleft=False)
    ax.grid(True, which="both", alpha=0.3)
    # Below the axes, where it hides no point (a planner's sit far right).
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="lower center", ncol=4, frameon=False)
    return fig


def _baseline_colour(
    plt: Any, name: str, fixed: list[str], aarseth: list[str], planners: list[str]
) -> Any:
    """Fixed μ along viridis, Aarseth's fixed η along copper, planner budgets along cool."""
    group, cmap = (fixed, "viridis") if name in fixed else (aarseth, "copper")
    if name in planners:
        group, cmap = planners, "cool"
    return plt.get_cmap(cmap)(group.index(name) / max(1, len(group) - 1))
