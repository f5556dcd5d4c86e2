"""Layout pools for Rearrange: procedural walls and rooms, free-cell lists, all-pairs distances.

A pool of `pool_size` layouts is generated once per params on the host (NumPy + SciPy) from
`layout_seed`; reset then only draws a pool index and cells, so auto-reset under vmap stays cheap.
Cells are flat indices `row * width + col`. Facing: 0 north (row - 1), 1 east, 2 south, 3 west.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

DIR_ROW = np.array([-1, 0, 1, 0])  # [4] row step of each facing
DIR_COL = np.array([0, 1, 0, -1])  # [4] column step of each facing
UNREACHABLE = 10_000  # distance-table value between cells in different components (never used)
MAX_POOL_BYTES = 1 << 30


@struct.dataclass
class LayoutPool:
    """`P` layouts of an H×W grid (N = H·W cells, V the view size)."""

    walls: jnp.ndarray  # [P, N] bool
    free_cells: jnp.ndarray  # [P, N] int32 free cells first, padded with the first free cell
    num_free: jnp.ndarray  # [P] int32
    dist: jnp.ndarray  # [P, N, N] int16 shortest-path steps between cells (walls block)
    wall_view: jnp.ndarray  # [P, N, 4, V*V] bool egocentric wall channel (V=0 when unused)
    # The seed that drew a generated pool ([] int32; None for a hand-drawn one): a leaf, so the
    # pools of different instances stack along a seed axis (a scaling cell's runs).
    layout_seed: jnp.ndarray | None = None
    # What the pool was built for, as (name, value) pairs: height, width, view, pool_size, and for
    # generated pools wall_density and min_free. RearrangeParams checks it (and layout_seed)
    # against its own fields, so a pool cannot silently outlive a change of them.
    built_for: tuple[tuple[str, Any], ...] = struct.field(pytree_node=False, default=())


def pool_bytes(height: int, width: int, view_size: int, pool_size: int) -> int:
    """Host memory of one pool, to refuse pools that would not fit before generating them."""
    n = height * width
    return pool_size * (n * n * 2 + n * 4 * view_size * view_size + 2 * n * 4)


def generate_walls(
    rng: np.random.Generator, height: int, width: int, wall_density: float
) -> np.ndarray:
    """One connected layout: border walls, room walls with doors, then stray wall cells.

    Interior walls are straight segments with one door cell each, added until the share of
    interior cells that are walls reaches `wall_density`; cells cut off from the largest free
    region are then filled, so every free cell is reachable from every other.
    """
    walls = np.zeros((height, width), dtype=bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    interior = (height - 2) * (width - 2)
    target = round(wall_density * interior)
    attempts = 0
    while walls[1:-1, 1:-1].sum() < target and attempts < 200:
        attempts += 1
        # A vertical segment is a horizontal one of the transpose (a view, so writes land).
        grid = walls if rng.random() < 0.5 else walls.T
        rows, cols = grid.shape
        row = int(rng.integers(1, rows - 1))
        start = int(rng.integers(1, cols - 1))
        length = int(rng.integers(2, max(3, cols - 1)))
        span = np.arange(start, min(start + length, cols - 1))
        grid[row, span] = True
        grid[row, span[rng.integers(len(span))]] = False  # the door
        excess = walls[1:-1, 1:-1].sum() - target
        if excess > 0:  # a long segment overshot: reopen random cells of it
            cand = np.argwhere(walls[1:-1, 1:-1]) + 1
            for r, c in cand[rng.permutation(len(cand))[:excess]]:
                walls[r, c] = False
    return keep_largest_region(walls)


def grid_adjacency(walls: np.ndarray) -> csr_matrix:
    """4-neighbour adjacency between free cells of one layout, as a sparse N×N matrix."""
    height, width = walls.shape
    free = ~walls.reshape(-1)
    idx = np.arange(height * width).reshape(height, width)
    src, dst = [], []
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        a, b = a.reshape(-1), b.reshape(-1)
        ok = free[a] & free[b]
        src += [a[ok], b[ok]]
        dst += [b[ok], a[ok]]
    src, dst = np.concatenate(src), np.concatenate(dst)
    n = height * width
    return csr_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))


def keep_largest_region(walls: np.ndarray) -> np.ndarray:
    """Fill every free cell outside the largest 4-connected free region."""
    _, labels = connected_components(grid_adjacency(walls), directed=False)
    free = ~walls.reshape(-1)
    counts = np.bincount(labels[free], minlength=labels.max() + 1)
    keep = labels == np.argmax(counts)
    return (walls.reshape(-1) | ~keep).reshape(walls.shape)


def distance_table(walls: np.ndarray) -> np.ndarray:
    """All-pairs shortest-path steps between cells (BFS on free cells), int16 [N, N]."""
    dist = shortest_path(grid_adjacency(walls), method="D", unweighted=True, directed=False)
    dist[~np.isfinite(dist)] = UNREACHABLE
    return dist.astype(np.int16)


def egocentric_offsets(view_size: int) -> tuple[np.ndarray, np.ndarray]:
    """World (row, col) offsets of each view cell for each facing: two [4, V*V] int arrays.

    The agent sits at the centre of the V×V view looking "up": view row i is `r - i` cells ahead,
    view column j is `j - r` cells to the agent's right (r = V // 2).
    """
    r = view_size // 2
    i, j = np.meshgrid(np.arange(view_size), np.arange(view_size), indexing="ij")
    ahead, right = (r - i).reshape(-1), (j - r).reshape(-1)
    # World step of "ahead" is DIR[d]; "right" is DIR[(d + 1) % 4].
    drow = np.stack([ahead * DIR_ROW[d] + right * DIR_ROW[(d + 1) % 4] for d in range(4)])
    dcol = np.stack([ahead * DIR_COL[d] + right * DIR_COL[(d + 1) % 4] for d in range(4)])
    return drow, dcol


def wall_views(walls: np.ndarray, view_size: int) -> np.ndarray:
    """The egocentric wall channel for every cell and facing of one layout: [N, 4, V*V] bool."""
    height, width = walls.shape
    r = view_size // 2
    padded = np.pad(walls, r, constant_values=True)  # outside the grid reads as wall
    drow, dcol = egocentric_offsets(view_size)
    rows, cols = np.divmod(np.arange(height * width), width)
    vr = rows[:, None, None] + r + drow[None]  # [N, 4, V*V]
    vc = cols[:, None, None] + r + dcol[None]
    return padded[vr, vc]


@lru_cache(maxsize=16)
def generate_pool(
    height: int,
    width: int,
    wall_density: float,
    view_size: int,
    pool_size: int,
    layout_seed: int,
    min_free: int,
) -> LayoutPool:
    """`pool_size` layouts with at least `min_free` free cells each, deterministic in the seed."""
    rng = np.random.default_rng(layout_seed)
    layouts = []
    for _ in range(pool_size):
        for _ in range(100):
            walls = generate_walls(rng, height, width, wall_density)
            if (~walls).sum() >= min_free:
                break
        else:
            raise ValueError(
                f"could not generate a {height}x{width} layout with wall_density={wall_density} "
                f"and at least {min_free} free cells; lower wall_density or enlarge the grid"
            )
        layouts.append(walls)
    pool = pool_from_walls(np.stack(layouts), view_size)
    generated = (("wall_density", wall_density), ("min_free", min_free))
    return pool.replace(layout_seed=np.int32(layout_seed), built_for=(*pool.built_for, *generated))


def pool_from_walls(walls: np.ndarray, view_size: int) -> LayoutPool:
    """A pool from given wall grids [P, H, W] bool (e.g. hand-drawn layouts for tests)."""
    walls = np.asarray(walls, dtype=bool)
    pool_size, height, width = walls.shape
    n = height * width
    free_all = np.zeros((pool_size, n), dtype=np.int32)
    num_free = np.zeros(pool_size, dtype=np.int32)
    dist_all = np.zeros((pool_size, n, n), dtype=np.int16)
    views = np.zeros((pool_size, n, 4, view_size * view_size), dtype=bool)
    for p in range(pool_size):
        free = np.flatnonzero(~walls[p].reshape(-1))
        free_all[p, : len(free)] = free
        free_all[p, len(free) :] = free[0]
        num_free[p] = len(free)
        dist_all[p] = distance_table(walls[p])
        if view_size:
            views[p] = wall_views(walls[p], view_size)
    return LayoutPool(
        walls=jnp.asarray(walls.reshape(pool_size, n)),
        free_cells=jnp.asarray(free_all),
        num_free=jnp.asarray(num_free),
        dist=jnp.asarray(dist_all),
        wall_view=jnp.asarray(views),
        built_for=(
            ("height", height),
            ("width", width),
            ("view", view_size),
            ("pool_size", pool_size),
        ),
    )


def walls_from_ascii(rows: list[str]) -> np.ndarray:
    """A wall grid [H, W] from text rows where '#' is a wall and anything else is floor."""
    return np.array([[ch == "#" for ch in row] for row in rows], dtype=bool)
