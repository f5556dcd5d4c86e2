"""The `timestep` cell: train PPO to choose an integrator's step, then judge it like the paper.

After training (all seeds vmapped, curves to TensorBoard), each seed's greedy policy and every
fixed action (each fixed μ) run one episode on each evaluation instance seed (0–99 × 300 steps
by default, `threebody.evaluation`). The record holds per-episode (substeps, final log10|ΔE|) for
the scatter plot, a summary row per policy, and the verdict the paper's claim needs:
- `dominated_by`: fixed actions with both a lower median final |ΔE| and fewer total substeps,
- `beats_best_fixed`: the policy's mean paper reward above the best fixed action's.
With `validation_instances`, every seed and every fixed action also run on training instance
seeds after the evaluation ones (100–199 for 100 evaluation seeds), and one seed is selected
there, before the evaluation is looked at (`select_seed`: dominated by no fixed action, then the
highest mean paper reward); the verdict names it as `selected`, beside every seed's own.
Fixed η of Aarseth's criterion (`ThreeBodyAarseth-v0`, `aarseth_actions`) can be judged on the
same instances beside them: rows named "aarseth η …", outside the verdict. So can a search
planner that chooses μ by lookahead in the model (`planner`, `planner_budgets`): rows named
"<planner> budget B", whose substeps count the planner's own simulations as well as the real
steps (also apart: `planner_substeps`). Optionally the first seed's policy is transferred to
REBOUND's integrators on the host (`ThreeBodyRebound-v0`) without retraining.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scalegym.suites.training import train_in_cell


def run_timestep_cell(cell: Any, context: Any) -> dict[str, Any]:
    """Train, then evaluate PPO, the fixed actions and the transfer (see the module)."""
    import scalegym
    from scalegym.agents.baselines.fixed import fixed_action
    from scalegym.agents.planners.search import make_planner
    from scalegym.agents.ppo.trained import load_trained, ppo_policy, seed_runner
    from scalegym.envs.threebody import evaluation

    trained, _ = train_in_cell(cell, context, share=0.5)
    ppo, runner = load_trained(
        cell.env,
        context.checkpoint_dir,
        total_steps=cell.steps,
        num_seeds=cell.seeds,
        seed=cell.seed,
        env_overrides=dict(cell.env_params),
        agent_overrides=dict(cell.agent_params),
    )
    # One table holds the evaluation and the validation seeds (`instance` picks one system).
    table_size = cell.instances + cell.validation_instances
    env, params = scalegym.make(cell.env, num_instances=table_size, **dict(cell.eval_params))
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
        eta_env, eta_params = scalegym.make(
            "ThreeBodyAarseth-v0", num_instances=cell.instances, **dict(cell.eval_params)
        )
        for a in cell.aarseth_actions:
            result = _evaluate(eta_env, eta_params, fixed_action, np.int32(a), cell, instances)
            runs.append((f"aarseth η {eta_env.actions[a]:.3g}", result))
            context.advance(0.5 + 0.5 * len(runs) / total)
    for budget in cell.planner_budgets:
        planner = make_planner(cell.planner, budget, **dict(cell.planner_params))
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


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per PPO seed: the fixed actions that dominate it, and whether it beats the best fixed."""
    fixed = [r for r in rows if r["policy"].startswith("fixed")]
    best = max(fixed, key=lambda r: r["mean_paper_reward"]) if fixed else None
    out: dict[str, Any] = {"best_fixed": best["policy"] if best else None, "seeds": []}
    for row in rows:
        if not row["policy"].startswith("ppo"):
            continue
        dominated_by = [
            f["policy"]
            for f in fixed
            if f["median_log10_error"] < row["median_log10_error"]
            and f["total_substeps"] < row["total_substeps"]
        ]
        out["seeds"].append(
            {
                "policy": row["policy"],
                "dominated_by": dominated_by,
                "beats_best_fixed": bool(
                    best is not None and row["mean_paper_reward"] > best["mean_paper_reward"]
                ),
            }
        )
    return out


def select_seed(rows: list[dict[str, Any]]) -> str:
    """The PPO seed judged as the trained policy, from rows of other instances than the verdict's:
    among the seeds no fixed action dominates (all seeds if every one is dominated), the highest
    mean paper reward."""
    reward = {row["policy"]: row["mean_paper_reward"] for row in rows}
    seeds = verdict(rows)["seeds"]
    if not seeds:
        raise ValueError("select_seed: no PPO rows to select from")
    pool = [s["policy"] for s in seeds if not s["dominated_by"]] or [s["policy"] for s in seeds]
    return max(pool, key=lambda name: reward[name])


def selected_seed(result: dict[str, Any]) -> dict[str, Any] | None:
    """The verdict's entry for the seed selected on validation (None without validation)."""
    v = result["verdict"]
    if not v.get("selected"):
        return None
    return next(s for s in v["seeds"] if s["policy"] == v["selected"])


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
        q25, q75 = r["iqr_log10_error"]
        lines.append(
            f"| {r['policy']} | {r['median_log10_error']:.2f} [{q25:.2f}, {q75:.2f}] | "
            f"{r['total_substeps']:,} | {r['mean_paper_reward']:.3f} | {r['ended_early']} |"
        )
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
            q25, q75 = t["iqr_log10_error"]
            lines.append(
                f"| {t['integrator']} | {t['median_log10_error']:.2f} [{q25:.2f}, {q75:.2f}] | "
                f"{t['total_substeps']:,} | {t['mean_paper_reward']:.3f} | {t['episodes']} |"
            )
    return lines


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
