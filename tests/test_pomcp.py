"""The POMCP-style tree search (agents.planners.pomcp): UCB1, node growth, step accounting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.agents.planners import pomcp
from scalegym.envs.pomdp.paninski_lock import PaninskiLock


def test_ucb_tries_untried_actions_first_then_trades_value_for_visits() -> None:
    tree = pomcp.empty_tree(4, num_actions=3, num_symbols=2)
    root = jnp.int32(0)
    assert int(pomcp.ucb_action(tree, root, 1.0)) == 0  # nothing tried: lowest index
    tree = tree.replace(visits=tree.visits.at[0].set(jnp.array([5, 0, 3])))
    assert int(pomcp.ucb_action(tree, root, 1.0)) == 1  # the untried one
    # All tried: Q = (0.9, 0.5, 0.2), N = (100, 1, 100). Bonus √(ln 201 / N): 0.23, 2.30, 0.23.
    tree = tree.replace(
        visits=tree.visits.at[0].set(jnp.array([100, 1, 100])),
        value=tree.value.at[0].set(jnp.array([0.9, 0.5, 0.2])),
    )
    assert int(pomcp.ucb_action(tree, root, 1.0)) == 1  # rarely tried: its bonus wins
    assert int(pomcp.ucb_action(tree, root, 0.0)) == 0  # no exploration: the best mean
    q, visits = jnp.array([0.3, 0.9, 0.5]), jnp.array([4, 0, 2])
    assert int(pomcp.root_action(q, visits)) == 2  # the untried action's Q is not an estimate


def paninski() -> tuple:
    env = PaninskiLock()
    params = env.make_params(size=4, num_elements=4)
    _, state = env.reset_env(jax.random.PRNGKey(0), params)
    one = lambda x: jnp.asarray(x)[None]  # one particle
    return env, params, jax.tree.map(one, params), jax.tree.map(one, state)


@pytest.mark.parametrize("budget", [6, 7, 300])
def test_search_spends_whole_simulations_within_budget(budget: int) -> None:
    # From the start (H = 3) each simulation costs 3 steps: ⌊budget/3⌋ of them, and the root's
    # visits count them.
    env, _, particles, states = paninski()
    search = jax.jit(
        lambda key: pomcp.search(
            env,
            particles,
            states,
            jnp.int32(0),
            budget=budget,
            exploration=1.0,
            max_nodes=64,
            key=key,
        )
    )
    q, visits, steps = search(jax.random.PRNGKey(1))
    sims = budget // 3
    assert int(steps) == 3 * sims and int(visits.sum()) == sims
    assert np.all(np.asarray(q) >= 0) and np.all(np.asarray(q) <= 1)  # mean returns of 0/1
    assert int(visits.min()) >= 1  # untried actions come first


def test_a_full_tree_stops_growing_and_search_goes_on() -> None:
    env, params, _, states = paninski()
    tree = pomcp.empty_tree(3, num_actions=2, num_symbols=int(env.num_obs(params)))
    step = jax.jit(
        lambda tree, key: pomcp.simulate(
            env,
            params,
            jax.tree.map(lambda x: x[0], states),
            tree,
            jnp.int32(3),
            horizon=3,
            exploration=1.0,
            key=key,
        )
    )
    sizes = []
    for i in range(6):
        tree, steps = step(tree, jax.random.PRNGKey(i))
        sizes.append(int(tree.size))
        assert int(steps) == 3
    assert sizes == [2, 3, 3, 3, 3, 3]  # one node per simulation until max_nodes = 3
    assert int(tree.visits[0].sum()) == 6
    assert int(tree.children[3].max()) == -1  # the scratch row never holds a child
