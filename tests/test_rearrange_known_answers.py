"""Known-answer tests for Rearrange at K=2: symbolic obs, rewards, targets, oracle plans."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.envs.rearrange import generator
from scalegym.envs.rearrange.env import Rearrange, current_target
from scalegym.envs.rearrange.oracle import optimal_steps, oracle_action
from scalegym.envs.rearrange.types import (
    FORWARD,
    LEFT,
    PICK,
    PLACE,
    RIGHT,
    RearrangeParams,
    RearrangeState,
)

Cell = tuple[int, int]  # (row, col)
NORTH, EAST, SOUTH, WEST = range(4)

# RearrangeParams defaults (types.py), written out so a changed default fails these tests.
STEP_PENALTY = 0.01
PICK_BONUS = 1.0
SUCCESS_BONUS = 10.0

# 7×9 open room: H ≠ W so a row/column or H−1/W−1 mix-up in the symbolic scaling shows.
WIDE_ROOM = ["#########", *["#.......#"] * 5, "#########"]
# 7×7 open room: shaping distances are plain Manhattan distances, easy to count by hand.
OPEN_ROOM = ["#######", *["#.....#"] * 5, "#######"]
# A one-cell-wide snake with a dead-end pocket at (3,4), for the oracle test's unique plan.
SNAKE = [
    "#######",
    "#.....#",
    "#####.#",
    "####..#",
    "#####.#",
    "#.....#",
    "#######",
]


def hand_env(rows: list[str], **overrides: Any) -> tuple[Rearrange, RearrangeParams]:
    """Rearrange-v1 (K=2, symbolic) whose single pool layout is the hand-drawn `rows`."""
    env, params = scalegym.make(
        "Rearrange-v1",
        height=len(rows),
        width=len(rows[0]),
        num_objects=2,
        obs_mode="symbolic",
        wall_density=0.0,
        pool_size=1,
        **overrides,
    )
    # Symbolic mode needs no egocentric wall views, hence view size 0.
    pool = generator.pool_from_walls(generator.walls_from_ascii(rows)[None], 0)
    return env, params.replace(pool=pool)


def hand_state(
    width: int,
    agent: Cell,
    facing: int,
    objects: Sequence[Cell],
    goals: Sequence[Cell],
    held: int = -1,
    time: int = 0,
) -> RearrangeState:
    """A state on layout 0; `picked` marks only the held object, as after its first pick."""
    flat = lambda cells: jnp.asarray([r * width + c for r, c in cells], jnp.int32)
    return RearrangeState(
        time=jnp.int32(time),
        layout=jnp.int32(0),
        agent_pos=jnp.int32(agent[0] * width + agent[1]),
        agent_dir=jnp.int32(facing),
        obj_pos=flat(objects),
        goal_pos=flat(goals),
        held=jnp.int32(held),
        picked=jnp.arange(len(objects)) == held,
    )


def on_goal(state: RearrangeState) -> list[bool]:
    """Per object: resting (not held) on its own goal, read straight off the state fields."""
    objs, goals, held = np.asarray(state.obj_pos), np.asarray(state.goal_pos), int(state.held)
    return [bool(o == g) and k != held for k, (o, g) in enumerate(zip(objs, goals, strict=True))]


def run(
    env: Rearrange, params: RearrangeParams, state: RearrangeState, actions: Sequence[int]
) -> tuple[RearrangeState, list[dict[str, Any]]]:
    """Step `actions` through the jitted step_env; one record per step of what the tests check."""
    step = jax.jit(env.step_env)
    records = []
    for action in actions:
        _, state, reward, terminated, info = step(jax.random.key(0), state, action, params)
        records.append(
            {
                "reward": float(reward),
                "terminated": bool(terminated),
                "success": bool(info["success"]),
                "target": int(current_target(state)),
                "held": int(state.held),
                "on_goal": on_goal(state),
            }
        )
    return state, records


# ----------------------------------------------------------------- 1. symbolic observation

# Layout of the float32[8 + 6K] vector (env.symbolic_obs): agent row/(H−1), col/(W−1), facing
# one-hot [N, E, S, W], holding, then per object (row, col) — the agent's cell while held —, goal
# (row, col), on-goal, held; last the steps-left fraction 1 − t/max_steps. Here H−1 = 6, W−1 = 8.
SYMBOLIC_CASES = {
    "free_objects": (
        # Default max_steps_in_episode is 4·H·W = 4·7·9 = 252, so t = 63 leaves 0.75.
        {},
        dict(agent=(2, 3), facing=WEST, objects=[(1, 1), (5, 7)], goals=[(4, 2), (3, 6)], time=63),
        [
            *(2 / 6, 3 / 8, 0, 0, 0, 1, 0),  # agent row, col; facing N E S W; holding
            *(1 / 6, 1 / 8, 4 / 6, 2 / 8, 0, 0),  # object 0: row, col, goal row, col, on goal, held
            *(5 / 6, 7 / 8, 3 / 6, 6 / 8, 0, 0),  # object 1: same fields
            0.75,  # steps left
        ],
    ),
    "holding_0_and_1_on_goal": (
        # Object 0's stored cell (1,1) is stale while held: the vector must show the agent's cell.
        {"max_steps_in_episode": 40},
        dict(
            agent=(4, 5),
            facing=NORTH,
            objects=[(1, 1), (3, 6)],
            goals=[(4, 2), (3, 6)],
            held=0,
            time=30,
        ),
        [
            *(4 / 6, 5 / 8, 1, 0, 0, 0, 1),  # agent row, col; facing N E S W; holding
            *(4 / 6, 5 / 8, 4 / 6, 2 / 8, 0, 1),  # object 0: row, col, goal row, col, on goal, held
            *(3 / 6, 6 / 8, 3 / 6, 6 / 8, 1, 0),  # object 1: same fields
            0.25,  # steps left
        ],
    ),
    "holding_1_lifted_off_its_goal": (
        # Object 1's stale cell equals its goal, yet a held object is never "on goal".
        {"max_steps_in_episode": 40},
        dict(
            agent=(5, 6),
            facing=EAST,
            objects=[(2, 4), (5, 7)],
            goals=[(2, 4), (5, 7)],
            held=1,
            time=10,
        ),
        [
            *(5 / 6, 6 / 8, 0, 1, 0, 0, 1),  # agent row, col; facing N E S W; holding
            *(2 / 6, 4 / 8, 2 / 6, 4 / 8, 1, 0),  # object 0: row, col, goal row, col, on goal, held
            *(5 / 6, 6 / 8, 5 / 6, 7 / 8, 0, 1),  # object 1: same fields
            0.75,  # steps left
        ],
    ),
    "all_placed_out_of_time": (
        {"max_steps_in_episode": 40},
        dict(agent=(1, 4), facing=SOUTH, objects=[(5, 1), (1, 7)], goals=[(5, 1), (1, 7)], time=40),
        [
            *(1 / 6, 4 / 8, 0, 0, 1, 0, 0),  # agent row, col; facing N E S W; holding
            *(5 / 6, 1 / 8, 5 / 6, 1 / 8, 1, 0),  # object 0: row, col, goal row, col, on goal, held
            *(1 / 6, 7 / 8, 1 / 6, 7 / 8, 1, 0),  # object 1: same fields
            0.0,  # steps left
        ],
    ),
}


@pytest.mark.parametrize("case", list(SYMBOLIC_CASES))
def test_symbolic_observation_matches_hand_derived_vector(case: str) -> None:
    overrides, fields, expected = SYMBOLIC_CASES[case]
    env, params = hand_env(WIDE_ROOM, **overrides)
    state = hand_state(9, **fields)
    space = env.observation_space(params)
    assert space.shape == (20,)  # 8 + 6·2
    for obs in (env.get_obs(state, params), jax.jit(env.get_obs)(state, params)):
        assert obs.dtype == jnp.float32
        assert obs.shape == (20,)
        np.testing.assert_allclose(np.asarray(obs), np.float32(expected), rtol=0, atol=1e-6)


# ----------------------------------------------------------------- 2. scripted K=2 episode

S, B, G = -STEP_PENALTY, PICK_BONUS, SUCCESS_BONUS  # short names for the reward table


def test_scripted_two_object_episode_targets_rewards_and_termination() -> None:
    env, params = hand_env(OPEN_ROOM)
    # a at (1,4), A at (3,3); b at (5,5), B at (5,2); agent at (1,2) facing west.
    state = hand_state(
        7, agent=(1, 2), facing=WEST, objects=[(1, 4), (5, 5)], goals=[(3, 3), (5, 2)]
    )
    assert int(current_target(state)) == 0
    # (action, reward, target after the step). Shaping is Φ(s') − Φ(s), Φ = −(cells of the rest
    # of the tour: carry the held object home, then walk to and carry each object off its goal in
    # index order). Φ starts at −(2 + 3 + 4 + 3) = −12: agent→a, a→A, A→b, b→B.
    script = [
        (FORWARD, S - 1, 0),  # (1,1): 2 → 3 cells from a, a step away
        (RIGHT, S, 0),  # facing north
        (RIGHT, S, 0),  # facing east
        (FORWARD, S + 1, 0),  # (1,2): 3 → 2
        (FORWARD, S + 1, 0),  # (1,3): 2 → 1
        (PICK, S + B + 2, 0),  # a's first pick: Φ −(1 + 3 + 7) → −(2 + 7), A 2 from the agent
        (RIGHT, S, 0),  # facing south; carried a is 2 from A
        (FORWARD, S + 1, 0),  # (2,3): 2 → 1
        (PLACE, S, 1),  # a on A; b becomes the target, no success yet; Φ −(1 + 7) → −(5 + 3)
        (LEFT, S, 1),  # facing east; b is 5 from (2,3)
        (FORWARD, S + 1, 1),  # (2,4): 5 → 4
        (RIGHT, S, 1),  # facing south
        (FORWARD, S + 1, 1),  # (3,4): 4 → 3
        (FORWARD, S + 1, 1),  # (4,4): 3 → 2
        (FORWARD, S + 1, 1),  # (5,4): 2 → 1
        (LEFT, S, 1),  # facing east, b ahead
        (PICK, S + B + 2, 1),  # b's first pick: Φ −(1 + 3) → −2, carried b is 2 from B
        (RIGHT, S, 1),  # facing south
        (RIGHT, S, 1),  # facing west
        (FORWARD, S + 1, 1),  # (5,3): 2 → 1
        (PLACE, S + G + 1, 0),  # b on B: success, Φ −1 → 0 (a solved state's target is 0)
    ]
    state, records = run(env, params, state, [a for a, _, _ in script])
    np.testing.assert_allclose(
        [r["reward"] for r in records], [r for _, r, _ in script], rtol=0, atol=1e-5
    )
    assert [r["target"] for r in records] == [t for _, _, t in script]
    assert [r["held"] for r in records] == [-1] * 5 + [0] * 3 + [-1] * 8 + [1] * 4 + [-1]
    assert [r["terminated"] for r in records] == [False] * 20 + [True]
    assert [r["success"] for r in records] == [False] * 20 + [True]
    assert records[8]["on_goal"] == [True, False]  # after the first place
    assert records[-1]["on_goal"] == [True, True]
    assert int(state.time) == 21


def test_non_target_object_can_be_placed_first_and_target_stays_object_0() -> None:
    env, params = hand_env(OPEN_ROOM)
    # Agent at (3,3) facing east onto b at (3,4); B at (4,3) just south; a at (1,1), A at (5,5).
    state = hand_state(
        7, agent=(3, 3), facing=EAST, objects=[(1, 1), (3, 4)], goals=[(5, 5), (4, 3)]
    )
    assert int(current_target(state)) == 0
    # Any object in front may be picked; the held object is the target while carried, and once
    # b rests on B the target falls back to a, the lowest-index object off its goal.
    # Φ starts at −17: agent→a 4, a→A 8, A→b 3, b→B 2.
    script = [
        (PICK, S + B + 3, 1),  # b's first pick: carry b home (1), then B→a→A (5 + 8): Φ −14
        (RIGHT, S, 1),  # facing south onto B
        (PLACE, S + 2, 0),  # b on B: not a success while a is off A; target back to a; Φ −12
        (FORWARD, S, 0),  # blocked by b on (4,3): no move, a stays 4 away
        (PICK, S - 2, 1),  # re-picking b from its goal: no second bonus, Φ −14 again
        (PLACE, S + 2, 0),  # b back on B: the re-pick/place cycle's shaping sums to 0
        (LEFT, S, 0),  # facing east
        (LEFT, S, 0),  # facing north
        (FORWARD, S + 1, 0),  # (2,3): the walk to a shrinks (4 → 3)
    ]
    _, records = run(env, params, state, [a for a, _, _ in script])
    np.testing.assert_allclose(
        [r["reward"] for r in records], [r for _, r, _ in script], rtol=0, atol=1e-5
    )
    assert [r["target"] for r in records] == [t for _, _, t in script]
    assert [r["on_goal"] for r in records] == [
        [False, False],
        [False, False],
        [False, True],
        [False, True],
        [False, False],  # b is held, so not on its goal
        *[[False, True]] * 4,
    ]
    assert not any(r["terminated"] or r["success"] for r in records)


# ----------------------------------------------------------------- 3. oracle plan at K=2

# SNAKE with a at (1,3), A in the pocket (3,4), b at (5,3), B at (5,1); agent (1,1) facing east.
# The corridor is one cell wide, so a must go first (it blocks the way to b) and each goal has one
# free neighbour: A is placed from (3,5) facing west, B from (5,2) facing west. No 180° turn is
# needed, so the shortest plan is unique (no LEFT/RIGHT ties), 10 actions for a, then 9 for b.
SNAKE_PLAN_A = [
    FORWARD,  # (1,2)
    PICK,  # a from (1,3)
    FORWARD,  # (1,3)
    FORWARD,  # (1,4)
    FORWARD,  # (1,5)
    RIGHT,  # south
    FORWARD,  # (2,5)
    FORWARD,  # (3,5)
    RIGHT,  # west, facing the pocket
    PLACE,  # a on A (3,4)
]
SNAKE_PLAN_B = [
    LEFT,  # south
    FORWARD,  # (4,5)
    FORWARD,  # (5,5)
    RIGHT,  # west
    FORWARD,  # (5,4)
    PICK,  # b from (5,3)
    FORWARD,  # (5,3)
    FORWARD,  # (5,2)
    PLACE,  # b on B (5,1)
]


def test_oracle_plans_object_by_object_on_unique_snake_plan() -> None:
    env, params = hand_env(SNAKE)
    state = hand_state(
        7, agent=(1, 1), facing=EAST, objects=[(1, 3), (5, 3)], goals=[(3, 4), (5, 1)]
    )
    act = jax.jit(lambda s: oracle_action(env, s, params))
    steps_to_go = jax.jit(lambda s: optimal_steps(env, s, params))
    step = jax.jit(env.step_env)
    # optimal_steps counts only the current target's stage (oracle.py: "for the current target"),
    # so it must read 10, 9, ..., 1 while a is handled, then 9, ..., 1 for b.
    expected_to_go = [*range(10, 0, -1), *range(9, 0, -1)]
    actions, to_go, targets, successes, placed = [], [], [], [], []
    for _ in range(40):  # well past 19, so an oracle that wanders would show
        actions.append(int(act(state)))
        to_go.append(int(steps_to_go(state)))
        targets.append(int(current_target(state)))
        _, state, _, success, _ = step(jax.random.key(0), state, actions[-1], params)
        successes.append(bool(success))
        placed.append(on_goal(state))
        if successes[-1]:
            break
    assert actions == SNAKE_PLAN_A + SNAKE_PLAN_B
    assert to_go == expected_to_go
    assert targets == [0] * 10 + [1] * 9  # object 0 is handled first, then object 1
    assert successes == [False] * 18 + [True]
    # a lands on A with the 10th action and stays there; b joins it with the 19th.
    assert placed == [[False, False]] * 9 + [[True, False]] * 9 + [[True, True]]
