"""What an agent sees and is paid in ThreeBody, shared by the JAX env and the REBOUND env.

Every function takes its array module (`xp`: `numpy` or `jax.numpy`), so `ThreeBody-v0` (jitted)
and `ThreeBodyRebound-v0` (host, NumPy) compute the observation and the reward with the same code.

- Observation (13, float32): positions / 10 (x, y of bodies 0, 1, 2), velocities (vx, vy of
  bodies 0, 1, 2) in N-body units, and −log10|ΔE| with |ΔE| floored at 1e-16 (ΔE = 0 at reset).
- ΔE = (E − E₀)/E₀, cumulative from the episode's start.
- Reward "paper": R_t = −W₀·log10(|ΔE_t|/1e-10) / (|log10|ΔE_t||³ · t) + W₂/|log10 μ_t| with
  W = (3000, 4) and t the 1-based index of the env step; the first step (t = 1) pays 0, as in the
  paper's environment. |ΔE| is clipped to [1e-16, 0.1] inside the formula (past 0.1 the episode
  terminates; the clip keeps the denominator away from log10 1 = 0).
- Reward "cost" (scalegym's own): the same accuracy term, and W₂/log10(10 + substeps) in place of
  W₂/|log10 μ|, so the agent is paid for the Hermite substeps it really spent (about the paper's
  term where substeps ≈ 1/μ, but it also charges close encounters that make a large μ expensive).
- A non-finite state ends the episode with the accuracy term at |ΔE| = 0.1 and t = 1
  (`NONFINITE_REWARD` = −27,000): the worst the paper's reward pays for an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MU_ACTIONS = tuple(float(m) for m in np.logspace(-4, -1, 10))  # μ ∈ {1e-4 … 1e-1}
ETA_ACTIONS = tuple(float(e) for e in np.logspace(-3, -0.5, 10))  # Aarseth η ∈ {1e-3 … 0.32}
W_ACCURACY = 3000.0  # W₀
W_COMPUTE = 4.0  # W₂
ENERGY_LIMIT = 0.1  # |ΔE| beyond this terminates
ENERGY_FLOOR = 1e-16  # |ΔE| below this reads as this (−log10 = 16)
POSITION_SCALE = 10.0
REWARDS = ("paper", "cost")
OBS_SIZE = 13


def energy_error(energy: Any, energy0: Any) -> Any:
    """ΔE = (E − E₀)/E₀ (signed)."""
    return (energy - energy0) / energy0


def observation(pos: Any, vel: Any, delta_e: Any, xp: Any = np) -> Any:
    """[13] float32 from positions and velocities [3, 2] and ΔE []."""
    log_err = -xp.log10(xp.maximum(xp.abs(delta_e), ENERGY_FLOOR))
    parts = [
        xp.reshape(pos / POSITION_SCALE, (-1,)),
        xp.reshape(vel, (-1,)),
        xp.reshape(log_err, (1,)),
    ]
    return xp.concatenate([xp.asarray(p, xp.float32) for p in parts])


def accuracy_term(delta_e: Any, t: Any, xp: Any = np) -> Any:
    """−W₀·log10(|ΔE|/1e-10) / (|log10|ΔE||³ · t), |ΔE| clipped to [1e-16, 0.1]."""
    err = xp.clip(xp.abs(delta_e), ENERGY_FLOOR, ENERGY_LIMIT)
    log_err = xp.log10(err)
    return -W_ACCURACY * (log_err + 10.0) / (xp.abs(log_err) ** 3 * t)


def paper_reward(delta_e: Any, mu: Any, t: Any, xp: Any = np) -> Any:
    """The paper's R_t (float32); t is the 1-based env step index and R_1 = 0."""
    value = accuracy_term(delta_e, t, xp) + W_COMPUTE / xp.abs(xp.log10(mu))
    return xp.asarray(xp.where(t > 1, value, 0.0), xp.float32)


def cost_reward(delta_e: Any, substeps: Any, t: Any, xp: Any = np) -> Any:
    """The "cost" reward (float32): the paper's accuracy term, paid for real substeps."""
    value = accuracy_term(delta_e, t, xp) + W_COMPUTE / xp.log10(10.0 + substeps)
    return xp.asarray(xp.where(t > 1, value, 0.0), xp.float32)


NONFINITE_REWARD = float(accuracy_term(ENERGY_LIMIT, 1.0))  # −27,000
# A capped step under on_cap = "terminate" (training under a low cap): it takes back the most
# the compute term can pay over a 100-step training episode (W₂ · 100). Not −27,000: a penalty
# that large swamps PPO's value loss, and the clipped gradient then leaves the policy unmoved.
CAPPED_PENALTY = -W_COMPUTE * 100.0


def step_reward(
    kind: str, delta_e: Any, mu: Any, substeps: Any, t: Any, nonfinite: Any, xp: Any = np
) -> Any:
    """The reward of one env step of either kind, with the non-finite penalty folded in."""
    if kind not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}; got {kind!r}")
    if kind == "paper":
        value = paper_reward(delta_e, mu, t, xp)
    else:
        value = cost_reward(delta_e, substeps, t, xp)
    return xp.asarray(xp.where(nonfinite, NONFINITE_REWARD, value), xp.float32)
