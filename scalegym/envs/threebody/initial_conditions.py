"""The paper's initial conditions: instance seed → three bodies in a plane, in N-body units.

Units (G = 1): length 1 au, mass 3 M_sun (each body has m = 1/3). The unit constants are those
of AMUSE's N-body converter, which reproduce the paper's stated units (time unit 0.09188 yr,
velocity unit 51.595 km/s, so 0.1 yr = 1.0884 time units).

Seed s draws, exactly as the paper does, `numpy.random.RandomState(s).uniform(low=[5, 0, 0, 5],
high=[20, 10, -10, 20])` for (x1, y1, x2, y2) in au; then
- body 0 sits at the origin moving (0, +10) km/s,
- body 1 sits at (x1, y1) moving (−10, 0) km/s,
- body 2 sits at (x2, y2) at rest (x2 ∈ (−10, 0]: NumPy draws low + (high − low)·u),
and the system moves to its centre-of-mass frame. Built on the host into a table that the env's
params carry, so the same seed gives the same system on every device.
"""

from __future__ import annotations

import numpy as np

G_SI = 6.67428e-11  # m³ kg⁻¹ s⁻²
M_SUN_KG = 1.98892e30
AU_M = 149_597_870_691.0
YEAR_S = 365.242199 * 86_400.0

MASS_UNIT_KG = 3 * M_SUN_KG
VELOCITY_UNIT_KM_S = float(np.sqrt(G_SI * MASS_UNIT_KG / AU_M)) / 1e3  # 51.595
TIME_UNIT_YR = AU_M / (VELOCITY_UNIT_KM_S * 1e3) / YEAR_S  # 0.09188
ENV_STEP_YR = 0.1
ENV_STEP_TIME = ENV_STEP_YR / TIME_UNIT_YR  # 1.0884 N-body time units per env step

NUM_BODIES = 3
MASSES = np.full(NUM_BODIES, 1.0 / NUM_BODIES)  # three equal bodies: 1 M_sun each
TRAIN_SEEDS = 1000  # instance seeds 0..999 for training
EVAL_SEEDS = 100  # 0..99 for evaluation

POSITION_LOW = (5.0, 0.0, 0.0, 5.0)  # (x1, y1, x2, y2) au, the paper's bounds as written
POSITION_HIGH = (20.0, 10.0, -10.0, 20.0)
SPEED_KM_S = 10.0


def paper_initial_condition(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions [3, 2], velocities [3, 2]) float64 in N-body units, centre-of-mass frame."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"instance seed must be an integer >= 0, got {seed!r}")
    x1, y1, x2, y2 = np.random.RandomState(int(seed)).uniform(low=POSITION_LOW, high=POSITION_HIGH)
    pos = np.array([[0.0, 0.0], [x1, y1], [x2, y2]])
    speed = SPEED_KM_S / VELOCITY_UNIT_KM_S
    vel = np.array([[0.0, speed], [-speed, 0.0], [0.0, 0.0]])
    return centre_of_mass_frame(pos, vel, MASSES)


def centre_of_mass_frame(
    pos: np.ndarray, vel: np.ndarray, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities [N, D] less their mass-weighted means."""
    weights = mass[:, None] / mass.sum()
    return pos - (weights * pos).sum(0), vel - (weights * vel).sum(0)


def initial_condition_table(num_seeds: int) -> np.ndarray:
    """[num_seeds, 2, 3, 2] float64: (positions, velocities) of seeds 0..num_seeds−1."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    return np.stack([np.stack(paper_initial_condition(s)) for s in range(num_seeds)])


def pythagorean_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Burrau's problem: masses 3, 4, 5 at rest at (1, 3), (−2, −1), (1, −1); E₀ = −769/60."""
    pos = np.array([[1.0, 3.0], [-2.0, -1.0], [1.0, -1.0]])
    return pos, np.zeros_like(pos), np.array([3.0, 4.0, 5.0])
