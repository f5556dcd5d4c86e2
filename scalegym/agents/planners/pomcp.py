"""Tree search over action–observation histories from belief particles (POMCP-style).

The search of Silver & Veness, "Monte-Carlo Planning in Large POMDPs" (NeurIPS 2010), written
for fixed-horizon JAX envs: every simulation draws one particle (instance params and hidden
state) from the root belief, descends the tree of histories choosing actions by UCB1
(untried actions first, lowest index first), adds the first history it reaches that the tree
lacks, finishes the episode with uniform-random actions, and backs the return up along the
path. Because each simulation carries its own sampled state down a history, the states that
reach a node are samples of the belief at that history: a node's action values estimate
Q(belief(h), a), so the search plans over future observations and actions, which flat rollouts
(one action, then random) cannot (in PaninskiLock those score every first action alike).

- Histories are keyed by (parent, action, observation symbol); an observation is one-hot, so
  its symbol is its argmax. Children live in a dense table [M+1, A, O] (row M is a scratch row
  that absorbs the writes of masked steps); `max_nodes` = M bounds memory at M·A·O int32 per
  env. Once the tree is full, simulations run on without adding nodes.
- Returns are undiscounted sums to the episode's end (the POMDP families have a fixed horizon).
- Budget: simulated env steps. A simulation from time t costs exactly H − t steps, so a search
  with `budget` steps runs ⌊budget / (H − t)⌋ simulations.

Shapes: P particles, A actions, O observation symbols, H the horizon, M nodes; one env (no
batch axis).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

CHUNK = 32  # simulations per pass of the search's while loop


@struct.dataclass
class Tree:
    children: jax.Array  # [M+1, A, O] int32 child node of (node, action, symbol); −1: none
    visits: jax.Array  # [M+1, A] int32 simulations that took action a at the node
    value: jax.Array  # [M+1, A] float32 their mean return from the node on
    size: jax.Array  # [] int32 nodes in use (the root is node 0)


def empty_tree(max_nodes: int, num_actions: int, num_symbols: int) -> Tree:
    """The root alone; row `max_nodes` is the scratch row."""
    rows = max_nodes + 1
    return Tree(
        children=jnp.full((rows, num_actions, num_symbols), -1, jnp.int32),
        visits=jnp.zeros((rows, num_actions), jnp.int32),
        value=jnp.zeros((rows, num_actions), jnp.float32),
        size=jnp.int32(1),
    )


def ucb_action(tree: Tree, node: jax.Array, exploration: float | jax.Array) -> jax.Array:
    """UCB1 at `node`: untried actions first (lowest index), then Q + c·√(ln N / N(a))."""
    visits = tree.visits[node]  # [A]
    total = jnp.maximum(jnp.sum(visits), 1).astype(jnp.float32)
    bonus = exploration * jnp.sqrt(jnp.log(total) / jnp.maximum(visits, 1).astype(jnp.float32))
    score = jnp.where(visits == 0, jnp.inf, tree.value[node] + bonus)
    return jnp.argmax(score).astype(jnp.int32)


def simulate(
    env: Any,
    params: Any,
    state: Any,
    tree: Tree,
    remaining: jax.Array,
    *,
    horizon: int,
    exploration: float | jax.Array,
    key: jax.Array,
) -> tuple[Tree, jax.Array]:
    """One simulation from the root with one particle (params, state): (tree, steps used []).

    The descent only reads the tree; the one node it adds and the backup are written after it,
    so the loop carries no copy of the tree.
    """
    scratch = tree.children.shape[0] - 1
    num_actions = tree.visits.shape[1]

    def step(carry: tuple, d: jax.Array) -> tuple[tuple, tuple]:
        node, state, done, steps = carry
        k_act, k_env = jax.random.split(jax.random.fold_in(key, d))
        live = (d < remaining) & ~done
        in_tree = live & (node >= 0)
        here = jnp.where(in_tree, node, scratch)
        guess = jax.random.randint(k_act, (), 0, num_actions, jnp.int32)
        action = jnp.where(in_tree, ucb_action(tree, here, exploration), guess)
        obs, nxt, reward, terminated, _ = env.step_env(k_env, state, action, params)
        symbol = jnp.argmax(obs).astype(jnp.int32)
        child = tree.children[here, action, symbol]
        missing = in_tree & (child < 0)  # the history to add; the rest is a random roll-out
        node = jnp.where(in_tree & (child >= 0), child, -1)
        state = jax.tree.map(lambda n, o: jnp.where(live, n, o), nxt, state)
        done = done | (live & (terminated | env.is_truncated(nxt, params)))
        reward = jnp.where(live, jnp.asarray(reward, jnp.float32), 0.0)
        carry = (node, state, done, steps + live.astype(jnp.int32))
        return carry, (here, action, symbol, missing, reward)

    start = (jnp.int32(0), state, jnp.bool_(False), jnp.int32(0))
    (_, _, _, steps), (nodes, actions, symbols, missing, rewards) = jax.lax.scan(
        step, start, jnp.arange(horizon)
    )
    # At most one history is missing on a path (the descent leaves the tree there).
    at = jnp.argmax(missing)
    grow = missing[at] & (tree.size < scratch)
    parent = jnp.where(grow, nodes[at], scratch)
    children = tree.children.at[parent, actions[at], symbols[at]].set(
        jnp.where(grow, tree.size, -1)
    )
    to_go = jnp.cumsum(rewards[::-1])[::-1]  # [H] return from depth d on
    # Each real node appears at most once on a path (depth grows); the scratch row takes the rest.
    count = tree.visits[nodes, actions] + 1
    mean = tree.value[nodes, actions]
    tree = Tree(
        children=children,
        visits=tree.visits.at[nodes, actions].set(count),
        value=tree.value.at[nodes, actions].set(mean + (to_go - mean) / count),
        size=tree.size + grow.astype(jnp.int32),
    )
    return tree, steps


def search(
    env: Any,
    params: Any,
    states: Any,
    time: jax.Array,
    *,
    budget: int,
    exploration: float | jax.Array,
    max_nodes: int,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Simulations from particles (params [P, ...], states [P]) at decision `time`.

    Returns (Q [A] of the root, visits [A] of the root, simulated steps []): as many simulations
    as fit in `budget` steps, each from a particle drawn uniformly.
    """
    num_actions = int(env.action_space(params).n)
    num_symbols = int(env.observation_space(params).shape[0])
    horizon = env.fixed_episode_length(params)
    count = jax.tree.leaves(states)[0].shape[0]
    remaining = jnp.clip(horizon - time, 1, horizon).astype(jnp.int32)

    def go(i: jax.Array, carry: tuple) -> tuple:
        tree, used, sims = carry
        k_pick, k_sim = jax.random.split(jax.random.fold_in(key, sims))
        idx = jax.random.randint(k_pick, (), 0, count)
        take = lambda x: x[idx]
        p, s = jax.tree.map(take, params), jax.tree.map(take, states)
        fits = used + remaining <= budget
        depth = jnp.where(fits, remaining, 0)  # 0: a no-op simulation (the chunk's tail)
        tree, steps = simulate(
            env, p, s, tree, depth, horizon=horizon, exploration=exploration, key=k_sim
        )
        return tree, used + steps, sims + fits.astype(jnp.int32)

    # Simulations run in chunks of CHUNK inside a while loop: under vmap the loop's exit test
    # becomes a select over the whole carry (the tree) per iteration, so it runs once per chunk.
    chunk = lambda carry: jax.lax.fori_loop(0, CHUNK, go, carry)
    fits = lambda carry: carry[1] + remaining <= budget
    start = (empty_tree(max_nodes, num_actions, num_symbols), jnp.int32(0), jnp.int32(0))
    tree, used, _ = jax.lax.while_loop(fits, chunk, start)
    return tree.value[0], tree.visits[0], used


def root_action(q: jax.Array, visits: jax.Array) -> jax.Array:
    """argmax of Q [A] among tried actions (ties: lowest index)."""
    return jnp.argmax(jnp.where(visits > 0, q, -jnp.inf)).astype(jnp.int32)
