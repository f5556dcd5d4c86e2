"""A scaling cell's instances: each (seed, size) its own, drawn from the cell seed, the run and
the size; uniform over each family's secrets and independent across sizes; `instance = k` fixes
one for every run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from scalegym.agents import registry
from scalegym.agents.budgets import BudgetLog, BudgetRequest, BudgetRun
from scalegym.core.resolve import resolve_env
from scalegym.suites.cells import ScalingCell
from scalegym.suites.rundir import read_records
from scalegym.suites.runner import run_suite
from scalegym.suites.spec import parse_suite

DRAWS = 1000


def cell(**fields: Any) -> ScalingCell:
    defaults = {
        "agent": "optimal",
        "vary": ("size",),
        "values": (8.0, 16.0),
        "budgets": {"start": 1, "stop": 2, "per_octave": 1, "cap": None},
        "unit": "episodes",
        "criterion": "exact",
        "threshold": 0.25,
        "delta": 0.1,
        "lower_bound": None,
        "lower_bound_source": "",
        "instance": None,
        "seeds": DRAWS,
        "seed": 0,
        "agent_params": {},
    }
    return ScalingCell(0, "c", "RevealingBandit-v0", {}, **{**defaults, **fields})


SIZE_FIELD = {"NoisyCombinationLock-v0": "horizon"}  # the others vary `size`


def sized(env_id: str, size: int) -> Any:
    return resolve_env(env_id, **{SIZE_FIELD.get(env_id, "size"): size})


def secrets(env_id: str, size: int, seeds: list[int], field: str) -> np.ndarray:
    """Each instance seed's secret (the params leaf `field`), [N, ...]."""
    resolved = sized(env_id, size)
    return np.stack(
        [np.asarray(getattr(resolved.with_overrides(instance_seed=s).params, field)) for s in seeds]
    )


@pytest.mark.parametrize(
    ("env_id", "field", "size", "categories"),
    [
        ("RevealingBandit-v0", "secret", 8, 8),
        ("PaninskiLock-v0", "secret", 8, None),
        ("NoisyCombinationLock-v0", "combination", 4, None),
    ],
)
def test_each_family_s_secret_is_uniform_and_independent_of_the_size(
    env_id: str, field: str, size: int, categories: int | None
) -> None:
    draw = cell(values=(float(size), float(2 * size)))
    seeds = draw.instance_seeds(float(size), sized(env_id, size))
    assert len(set(seeds)) == DRAWS  # every run its own instance
    here = secrets(env_id, size, seeds, field).reshape(DRAWS, -1)[:, 0]
    counts = np.bincount(here, minlength=categories or int(here.max()) + 1)
    assert stats.chisquare(counts).pvalue > 0.01, counts
    # The same runs at the next size: the secrets there do not follow the ones here.
    there_seeds = draw.instance_seeds(float(2 * size), sized(env_id, 2 * size))
    assert not set(seeds) & set(there_seeds)
    there = secrets(env_id, 2 * size, there_seeds, field).reshape(DRAWS, -1)[:, 0]
    table = np.zeros((counts.size, int(there.max()) + 1))
    np.add.at(table, (here, there), 1)
    table = table[:, table.sum(axis=0) > 0]
    assert stats.chi2_contingency(table).pvalue > 0.01


def bandit_suite(extra: str, seeds: int = 1) -> bytes:
    """A one-cell suite: RevealingBandit over S = 8..64, judged exactly, with `extra` fields."""
    return f"""
[suite]
name = "bandit"
seeds = {seeds}

[[cell]]
name = "c"
kind = "scaling"
env = "RevealingBandit-v0"
vary = "size"
values = [8, 16, 32, 64]
budgets = {{ start = 1, stop = 4, per_octave = 1 }}
unit = "episodes"
criterion = "exact"
threshold = 0.25
{extra}
""".encode()


def test_the_draw_is_fixed_by_the_cell_seed_and_instance_fixes_one() -> None:
    resolved = resolve_env("RevealingBandit-v0", size=8)
    a = cell(seeds=4).instance_seeds(8.0, resolved)
    assert a == cell(seeds=4).instance_seeds(8.0, resolved)  # reproducible
    assert a != cell(seeds=4, seed=1).instance_seeds(8.0, resolved)
    assert cell(seeds=4, instance=3).instance_seeds(8.0, resolved) == [3, 3, 3, 3]


def test_a_cell_with_instance_3_plays_instance_3_in_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BudgetRequest] = []

    def recorder(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
        seen.append(request)
        passes = np.ones((request.num_seeds, request.budgets.size), bool)
        return BudgetRun(request.budgets, request.unit, passes * 0.0, passes, request.criterion, {})

    spec = replace(registry.SPECS["optimal"], entry_points={"scaling": recorder})
    monkeypatch.setitem(registry.SPECS, "optimal", spec)
    suite = bandit_suite('agent = "optimal"\ninstance = 3', seeds=5)
    run_dir = run_suite(parse_suite(suite, "bandit.toml"), tmp_path / "run", progress=False)
    (record,) = read_records(run_dir / "results.jsonl")
    assert record["status"] == "ok", record.get("error")
    assert len(seen) == 4
    for request in seen:
        assert np.asarray(request.instances.instance_seed).tolist() == [3] * 5
        own = request.env.with_overrides(instance_seed=3).params.secret
        assert np.asarray(request.instances.secret).tolist() == [int(own)] * 5
    assert "every run plays instance 3" in (run_dir / "report.md").read_text()


def test_a_ppo_cell_that_would_anneal_over_the_grid_is_refused_before_work() -> None:
    from scalegym.suites.spec import SuiteError

    suite = bandit_suite('agent = "ppo"\nagent_params = { anneal_lr = true }')
    with pytest.raises(SuiteError, match="depend on the grid's end"):
        parse_suite(suite, "bandit.toml")


def test_rearrange_runs_stack_their_own_layout_pools_and_run_as_one_batch() -> None:
    # Rearrange's instance field (layout_seed) was a static field: runs on their own layouts
    # could not stack along the seed axis and the rearrange scaling cell failed at its first size.
    import jax

    from scalegym.suites.cells.scaling import stacked_instances

    resolved = resolve_env("Rearrange-v1", height=5, width=5, pool_size=16)
    seeds = cell(seeds=3).instance_seeds(5.0, resolved)
    stacked = stacked_instances(resolved, seeds)
    assert np.asarray(stacked.layout_seed).tolist() == seeds
    for k, seed in enumerate(seeds):
        own = resolved.with_overrides(layout_seed=seed).params.pool
        assert np.array_equal(np.asarray(stacked.pool.walls[k]), np.asarray(own.walls))
    assert not np.array_equal(np.asarray(stacked.pool.walls[0]), np.asarray(stacked.pool.walls[1]))
    keys = jax.random.split(jax.random.key(0), 3)
    _, state = jax.jit(jax.vmap(resolved.env.reset))(keys, stacked)
    walls = np.asarray(stacked.pool.walls)[np.arange(3), np.asarray(state.layout)]  # [3, N]
    assert not walls[np.arange(3), np.asarray(state.agent_pos)].any()  # each on its own free cell
