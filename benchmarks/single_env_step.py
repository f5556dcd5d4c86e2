"""Cost of one step of a single gymnasium env, next to the floor one jitted dispatch sets.

    .venv/bin/python benchmarks/single_env_step.py

Medians of 7 repeats x 3000 steps, compile excluded, random actions, resets included.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import scalegym  # noqa: F401  (registers the scalegym/ ids)


def per_call_us(fn: Callable[[], object], n: int = 3000, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def gym_step_us(env_id: str, actions: np.ndarray) -> float:
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    it = iter(actions.tolist())

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(next(it) % env.action_space.n)
        if terminated or truncated:
            env.reset()

    return per_call_us(step)


def main() -> None:
    actions = np.random.default_rng(0).integers(0, 6, 10**6)
    rows = {
        env_id: gym_step_us(env_id, actions)
        for env_id in ("scalegym/Rearrange-v1", "scalegym/RearrangePick-v1", "CartPole-v1")
    }
    env = gymnasium.make("scalegym/Rearrange-v1").unwrapped
    env.reset(seed=0)
    env.step(0)
    action = np.int32(0)
    index = np.int32(0)
    rows["Rearrange-v1 compiled step alone"] = per_call_us(
        lambda: jax.block_until_ready(
            env._packed_step_fn(env._block, index, env._state, action, env.params)
        )
    )
    add_one = jax.jit(lambda x: x + 1)
    x = jnp.int32(0)
    rows["floor: a trivial jitted call + host copy"] = per_call_us(lambda: np.asarray(add_one(x)))
    for name, us in rows.items():
        print(f"{name:45s} {us:8.1f} us/step")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__}, {jax.devices()[0].platform}"
    )


if __name__ == "__main__":
    main()
