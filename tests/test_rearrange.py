"""Known-answer tests for Rearrange: scripted moves against expected grids, oracle vs plain BFS."""

import dataclasses
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.envs.rearrange import generator
from scalegym.envs.rearrange.oracle import optimal_steps, oracle_action
from scalegym.envs.rearrange.types import (
    FORWARD,
    NOOP,
    PICK,
    PLACE,
    RIGHT,
    RearrangeState,
)

ROOM = [
    "#######",
    "#.....#",
    "#.#...#",
    "#.#...#",
    "#.....#",
    "#.....#",
    "#######",
]


def cell(row: int, col: int, width: int = 7) -> int:
    return row * width + col


def room_env(task: str = "place"):
    env, params = scalegym.make(
        "Rearrange-v1" if task == "place" else "RearrangePick-v1", height=7, width=7, pool_size=1
    )
    pool = generator.pool_from_walls(generator.walls_from_ascii(ROOM)[None], params.view_size)
    return env, params.replace(pool=pool)


def room_state(agent, facing, obj, goal) -> RearrangeState:
    return RearrangeState(
        time=jnp.int32(0),
        layout=jnp.int32(0),
        agent_pos=jnp.int32(cell(*agent)),
        agent_dir=jnp.int32(facing),
        obj_pos=jnp.array([cell(*obj)], jnp.int32),
        goal_pos=jnp.array([cell(*goal)], jnp.int32),
        held=jnp.int32(-1),
        picked=jnp.zeros((1,), bool),
    )


def run_script(env, params, state, actions):
    frames, rewards, terms = [], [], []
    for action in actions:
        _, state, reward, terminated, _ = env.step_env(jax.random.key(0), state, action, params)
        frames.append(env.render_text(state, params))
        rewards.append(float(reward))
        terms.append(bool(terminated))
    return state, frames, rewards, terms


def test_scripted_pick_and_place_grids_and_rewards():
    env, params = room_env()
    state = room_state(agent=(1, 1), facing=1, obj=(1, 4), goal=(4, 3))
    assert env.render_text(state, params) == "\n".join(
        [
            "#######",
            "#>..a.#",
            "#.#...#",
            "#.#...#",
            "#..A..#",
            "#.....#",
            "#######",
            "held: -  t: 0",
        ]
    )
    script = [FORWARD, FORWARD, PICK, RIGHT, FORWARD, FORWARD, PLACE]
    state, frames, rewards, terms = run_script(env, params, state, script)
    assert frames[1].splitlines()[1] == "#..>a.#"
    assert frames[2].splitlines()[1] == "#..>..#"  # the object is carried
    assert frames[2].splitlines()[-1] == "held: a  t: 3"
    assert frames[5].splitlines()[3] == "#.#v..#"
    assert frames[6] == "\n".join(
        [
            "#######",
            "#.....#",
            "#.#...#",
            "#.#v..#",
            "#..*..#",
            "#.....#",
            "#######",
            "held: -  t: 7",
        ]
    )
    # −0.01 per step; +1 per cell less to walk or carry (shortest path); +1 first pick; +10
    # success. Φ = −(walk + carry): −(3 + 4) at the start. The pick takes Φ from −(1 + 4) to −3
    # (the goal is 3 from the agent, who carries the object now): +2. The place, from −1 to 0: +1.
    np.testing.assert_allclose(rewards, [0.99, 0.99, 2.99, -0.01, 0.99, 0.99, 10.99], atol=1e-6)
    assert terms == [False] * 6 + [True]


def test_blocked_actions_change_nothing_but_time():
    env, params = room_env()
    state = room_state(agent=(1, 1), facing=0, obj=(2, 1), goal=(5, 5))
    before = env.render_text(state, params).splitlines()[:-1]
    # Facing the border wall: forward, pick and place all fail; no-op does nothing.
    state, frames, rewards, _ = run_script(env, params, state, [FORWARD, PICK, PLACE, NOOP])
    assert frames[-1].splitlines()[:-1] == before
    np.testing.assert_allclose(rewards, [-0.01] * 4, atol=1e-6)
    # Objects block movement too: face south onto the object and try to walk through it.
    state, frames, rewards, _ = run_script(env, params, state, [RIGHT, RIGHT, FORWARD])
    assert frames[-1].splitlines()[1] == "#v....#"
    assert frames[-1].splitlines()[2] == "#a#...#"


def test_shaping_uses_shortest_path_not_manhattan():
    env, params = room_env()
    # Agent at (3,1) below the inner wall column, object at (3,3) behind it: Manhattan 2, path 4.
    state = room_state(agent=(3, 1), facing=2, obj=(3, 3), goal=(1, 5))
    _, _, rewards, _ = run_script(env, params, state, [FORWARD])  # (4,1): path 3
    np.testing.assert_allclose(rewards, [0.99], atol=1e-6)
    state = room_state(agent=(3, 1), facing=0, obj=(3, 3), goal=(1, 5))
    _, _, rewards, _ = run_script(env, params, state, [FORWARD])  # (2,1): path 5
    np.testing.assert_allclose(rewards, [-1.01], atol=1e-6)


def test_pick_task_succeeds_on_pick():
    env, params = room_env("pick")
    state = room_state(agent=(1, 3), facing=1, obj=(1, 4), goal=(4, 3))
    _, _, rewards, terms = run_script(env, params, state, [PICK])
    # The pick task's Φ is minus the walk to the object: −1 → 0 once it is held.
    np.testing.assert_allclose(rewards, [11.99], atol=1e-6)
    assert terms == [True]


def test_egocentric_wall_view_matches_rotated_grid():
    env, params = room_env()
    walls = generator.walls_from_ascii(ROOM)
    padded = np.pad(walls, 2, constant_values=True)
    for facing in range(4):
        state = room_state(agent=(2, 3), facing=facing, obj=(5, 5), goal=(5, 1))
        view = np.asarray(env.get_obs(state, params)["view"][..., 0])
        window = padded[2:7, 3:8]  # grid rows 0..4, cols 1..5: centred on (2, 3)
        # Turn the world so the facing direction points up: counter-clockwise, once per facing.
        expected = np.rot90(window, k=facing)
        np.testing.assert_array_equal(view, expected, err_msg=f"facing {facing}")


def reference_view(env, state, params) -> np.ndarray:
    """The [V, V, 4] view built the slow way: paint a padded world grid, cut, rotate."""
    h, w, v = params.height, params.width, params.view_size
    r = v // 2
    walls = np.asarray(params.pool.walls[int(state.layout)]).reshape(h, w)
    world = np.zeros((h + 2 * r, w + 2 * r, 4), np.float32)
    world[..., 0] = np.pad(walls, r, constant_values=True)
    held = int(state.held)
    cells = zip(np.asarray(state.obj_pos), np.asarray(state.goal_pos), strict=True)
    for k, (obj, goal) in enumerate(cells):
        on_goal = obj == goal and k != held
        if on_goal:
            world[obj // w + r, obj % w + r, 3] = 1.0
        else:
            world[goal // w + r, goal % w + r, 2] = 1.0
            if k != held:
                world[obj // w + r, obj % w + r, 1] = 1.0
    row, col = divmod(int(state.agent_pos), w)
    window = world[row : row + v, col : col + v]  # centred on the agent (padding shifts by r)
    return np.rot90(window, k=int(state.agent_dir))


def test_egocentric_view_matches_painted_grid_on_random_states():
    """All four channels, with several objects, held ones and ones resting on their goals."""
    env, params = scalegym.make("Rearrange-v1", height=9, width=9, num_objects=3, pool_size=8)
    rng = np.random.default_rng(0)
    get_obs = jax.jit(env.get_obs)
    checked_on_goal = checked_held = 0
    for i in range(200):
        _, state = env.reset(jax.random.key(i), params)
        free = np.asarray(params.pool.free_cells[int(state.layout)])
        free = free[: int(params.pool.num_free[int(state.layout)])]
        obj = rng.choice(free, 3, replace=False)
        goal = np.where(rng.random(3) < 0.4, obj, rng.choice(free, 3, replace=False))
        held = int(rng.integers(-1, 3))
        state = state.replace(
            obj_pos=jnp.asarray(obj, jnp.int32),
            goal_pos=jnp.asarray(goal, jnp.int32),
            held=jnp.int32(held),
            agent_dir=jnp.int32(i % 4),
        )
        checked_on_goal += int(np.any((obj == goal) & (np.arange(3) != held)))
        checked_held += held >= 0
        view = np.asarray(get_obs(state, params)["view"])
        np.testing.assert_array_equal(view, reference_view(env, state, params), err_msg=str(i))
    assert checked_on_goal > 20 and checked_held > 20


def test_vector_points_to_target_in_agent_frame():
    env, params = room_env()
    state = room_state(agent=(4, 1), facing=1, obj=(1, 4), goal=(5, 5))  # facing east
    vector = np.asarray(env.get_obs(state, params)["vector"])
    # Object is 3 ahead (east) and 3 to the left (north); goal 4 ahead, 1 right (south).
    np.testing.assert_allclose(vector[:5] * 7, [0, 3, -3, 4, 1], atol=1e-5)
    assert vector[5] == pytest.approx(1.0)


def parse_grid(text: str):
    rows = text.splitlines()[:-1]
    walls = {(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "#"}
    find = lambda chars: next(
        (r, c, chars.index(ch))
        for r, row in enumerate(rows)
        for c, ch in enumerate(row)
        if ch in chars
    )
    agent = find("^>v<")
    obj = find("a")[:2]
    goal = find("A")[:2]
    return walls, agent, obj, goal


def bfs_optimal_steps(text: str, task: str) -> int:
    """Fewest actions to success by breadth-first search over (row, col, facing, holding)."""
    walls, (r0, c0, d0), obj, goal = parse_grid(text)
    steps = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    start = (r0, c0, d0, False)
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        (r, c, d, holding), n = queue.popleft()
        front = (r + steps[d][0], c + steps[d][1])
        if not holding and front == obj and task == "pick":
            return n + 1
        if holding and front == goal and front not in walls:
            return n + 1
        nexts = [(r, c, (d + 3) % 4, holding), (r, c, (d + 1) % 4, holding)]
        if front not in walls and (holding or front != obj):
            nexts.append((*front, d, holding))
        if not holding and front == obj:
            nexts.append((r, c, d, True))
        for nxt in nexts:
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, n + 1))
    raise AssertionError("unsolvable layout")


def states_on_every_layout(params, rng) -> RearrangeState:
    """One start state per pool layout: distinct free cells for agent, object and goal."""
    free = np.asarray(params.pool.free_cells)
    num_free = np.asarray(params.pool.num_free)
    picks = np.stack([free[p, rng.choice(num_free[p], 3, replace=False)] for p in range(len(free))])
    size = len(free)
    return RearrangeState(
        time=jnp.zeros(size, jnp.int32),
        layout=jnp.arange(size, dtype=jnp.int32),
        agent_pos=jnp.asarray(picks[:, 0]),
        agent_dir=jnp.asarray(rng.integers(0, 4, size), jnp.int32),
        obj_pos=jnp.asarray(picks[:, 1:2]),
        goal_pos=jnp.asarray(picks[:, 2:3]),
        held=jnp.full(size, -1, jnp.int32),
        picked=jnp.zeros((size, 1), bool),
    )


@pytest.mark.parametrize("env_id", ["Rearrange-v1", "RearrangePick-v1"])
def test_oracle_solves_1000_layouts_in_bfs_optimal_steps(env_id):
    batch = 1000
    env, params = scalegym.make(env_id, pool_size=batch, layout_seed=11)
    states = states_on_every_layout(params, np.random.default_rng(0))

    limit = int(params.height * 12)

    @jax.jit
    def rollout(states):
        # Up to `limit` steps, stopping early once every layout is solved (a solved lane's
        # count no longer changes, so the counts are those of the full `limit` steps).
        def unsolved(carry):
            _, done, _, t = carry
            return ~jnp.all(done) & (t < limit)

        def body(carry):
            states, done, steps, t = carry
            actions = jax.vmap(lambda s: oracle_action(env, s, params))(states)
            key = jax.random.key(0)
            _, nxt, _, success, _ = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))(
                key, states, actions, params
            )
            steps = steps + (~done).astype(jnp.int32)
            return nxt, done | success, steps, t + 1

        init = (states, jnp.zeros(batch, bool), jnp.zeros(batch, jnp.int32), jnp.int32(0))
        _, done, steps, _ = jax.lax.while_loop(unsolved, body, init)
        return done, steps

    done, steps = rollout(states)
    predicted = jax.jit(jax.vmap(lambda s: optimal_steps(env, s, params)))(states)
    assert bool(jnp.all(done)), "oracle success must be 1.0"
    task = "pick" if env_id == "RearrangePick-v1" else "place"
    # Rendered on the host from numpy copies: 1000 device-array slices would dominate the test.
    host_states = jax.tree.map(np.asarray, states)
    host_params = params.replace(pool=jax.tree.map(np.asarray, params.pool))
    reference = [
        bfs_optimal_steps(
            env.render_text(jax.tree.map(lambda x, i=i: x[i], host_states), host_params), task
        )
        for i in range(batch)
    ]
    np.testing.assert_array_equal(np.asarray(steps), reference)
    np.testing.assert_array_equal(np.asarray(predicted), reference)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"height": 5, "width": 5, "num_objects": 3}, "grid too small"),
        ({"view_size": 4}, "view_size"),
        ({"view_size": 11}, "view_size"),
        ({"num_objects": 0}, "num_objects"),
        ({"height": 3}, "height"),
        ({"wall_density": 0.9}, "wall_density"),
        ({"obs_mode": "pixels"}, "obs_mode"),
        ({"max_steps_in_episode": 0}, "max_steps_in_episode"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_params_raise_at_make(overrides, field):
    with pytest.raises(ValueError, match=field):
        scalegym.make("Rearrange-v1", **overrides)


def test_invalid_view_size_names_allowed_range():
    with pytest.raises(ValueError, match=r"view_size=4 .*odd integers 3\.\.9"):
        scalegym.make("Rearrange-v1", view_size=4)


def test_generated_layouts_are_walled_connected_and_seeded():
    pool = generator.generate_pool(11, 13, 0.25, 5, 32, 3, 3)
    again = generator.generate_pool.__wrapped__(11, 13, 0.25, 5, 32, 3, 3)
    np.testing.assert_array_equal(np.asarray(pool.walls), np.asarray(again.walls))
    walls = np.asarray(pool.walls).reshape(32, 11, 13)
    assert (
        walls[:, 0].all() and walls[:, -1].all() and walls[:, :, 0].all() and walls[:, :, -1].all()
    )
    dist = np.asarray(pool.dist)
    density = walls[:, 1:-1, 1:-1].mean()
    assert 0.15 < density < 0.45
    for p in range(32):
        free = np.flatnonzero(~walls[p].reshape(-1))
        assert np.asarray(pool.num_free)[p] == len(free)
        assert dist[p][np.ix_(free, free)].max() < generator.UNREACHABLE  # one region
    other = generator.generate_pool(11, 13, 0.25, 5, 32, 4, 3)
    assert not np.array_equal(np.asarray(other.walls), np.asarray(pool.walls))


def test_reset_cells_are_distinct_free_and_cover_the_pool():
    env, params = scalegym.make("Rearrange-v1", num_objects=3)
    keys = jax.random.split(jax.random.key(1), 2000)
    _, s = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    cells = np.concatenate(
        [np.asarray(s.agent_pos)[:, None], np.asarray(s.obj_pos), np.asarray(s.goal_pos)], axis=1
    )
    assert all(len(set(row)) == 7 for row in cells)
    walls = np.asarray(params.pool.walls)[np.asarray(s.layout)]
    assert not np.take_along_axis(walls, cells, axis=1).any()
    assert len(np.unique(np.asarray(s.agent_pos))) > 40
    assert len(np.unique(np.asarray(s.layout))) > 240  # of 256: different keys, different layouts
    assert set(np.unique(np.asarray(s.agent_dir))) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"height": 7}, "height=7, but the layout pool was built for height=9"),
        ({"width": 11}, "width=11"),
        ({"obs_mode": "symbolic"}, "obs_mode/view_size=symbolic/5"),
        ({"view_size": 3}, "wall views 5x5"),
        ({"num_objects": 2}, "num_objects=2"),
        ({"wall_density": 0.0}, "wall_density=0.0"),
        ({"pool_size": 8}, "pool_size=8"),
        ({"layout_seed": 1}, "layout_seed=1"),
    ],
)
def test_static_params_cannot_drift_from_the_pool(change: dict, needle: str) -> None:
    _, params = scalegym.make("Rearrange-v1")
    with pytest.raises(ValueError, match=r"env\.make_params") as caught:
        params.replace(**change)
    assert needle in str(caught.value)
    with pytest.raises(ValueError, match=r"env\.make_params"):
        dataclasses.replace(params, **change)  # the flax `replace` is this one


def test_tunable_params_still_replace_and_trace() -> None:
    env, params = scalegym.make("Rearrange-v1")
    cheaper = params.replace(step_penalty=0.5, max_steps_in_episode=7)
    _, state = env.reset(jax.random.key(0), cheaper)
    _, _, reward, _, _, _ = jax.jit(env.step)(jax.random.key(1), state, 5, cheaper)  # noop
    assert float(reward) == pytest.approx(-0.5)
    rebuilt = env.make_params(height=7, width=7)  # the way to change a static field
    assert rebuilt.pool.walls.shape == (rebuilt.pool_size, 49)
