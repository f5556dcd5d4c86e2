"""The paper's verdict on a time-step policy: which fixed μ dominate it, does it beat the best.

Rows are `evaluation.summarize` outputs named by `policy` ("ppo seed K", "fixed 0.01", ...). A
fixed action dominates a policy when it has both a lower median final log10|ΔE| and fewer total
substeps; a policy beats the best fixed action when its mean paper reward is higher.
"""

from __future__ import annotations

from typing import Any


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
