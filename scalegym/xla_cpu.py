"""XLA:CPU's small-while-loop threshold, raised so that a small loop runs as one compiled kernel.

XLA's CPU backend runs a while loop as a series of thunks, one per fused kernel, on every
iteration. A loop whose bytes accessed (as XLA's cost analysis counts them) are fewer than the
backend option `xla_cpu_small_while_loop_byte_threshold` (1 kB by default) is hoisted into a
single compiled function instead; loops that hold a dot, convolution, scatter, custom call or
collective never are, so network training keeps Eigen's threads. ThreeBody's Hermite substep is
about 64 small kernels, so on the default path a step of a few lanes costs ~2 µs where its
arithmetic takes a tenth of that, and the slowest lanes of a batch (close encounters, tens of
thousands of substeps in one env step) set the batch's time.

scalegym raises the threshold to `THRESHOLD_BYTES` in `XLA_FLAGS` when it is imported (XLA reads
the variable when its CPU backend starts, at the first computation). Measured on the 2-core CPU
(`benchmarks/hermite_substeps.py`): a substep of 2 lanes 1.85 µs → 0.24 µs, of 64 lanes 5.2 µs →
1.9 µs. ThreeBody's integrator steps its lanes in tiles of 64 and smaller groups so that every
one of its loops stays below the threshold (`integrator.LaneSchedule`). A loop above the
threshold (a bench's scan over a large batch) keeps the default path, whose kernels can use
several cores.

A value of the option already in `XLA_FLAGS` is left alone: set
`--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024` for XLA's default.
This module imports nothing from jax, so that it can run before jax starts.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping

OPTION = "xla_cpu_small_while_loop_byte_threshold"
EXTRA_OPTIONS = "--xla_backend_extra_options="
# Measured on the 2-core CPU: at 256 kB, a plain Hermite loop of up to 64 lanes runs as one kernel
# (80 do not: 10 µs per substep against 1.9 µs for 64; one substep per loop iteration, K = 1, as
# `benchmarks/hermite_substeps.py` shows), and a bench's scan over batch 4,096 (its pre-sampled
# actions alone are 1 MiB) keeps the default path, whose kernels use both cores: hoisted, such a
# scan ran at 0.6-0.7x (PaninskiLock, gymnax FourRooms at a threshold of 1 MiB).
THRESHOLD_BYTES = 256 << 10


def with_small_loop_threshold(flags: str, threshold: int = THRESHOLD_BYTES) -> str:
    """`flags` (an XLA_FLAGS value) with the threshold set, or unchanged if it already sets it."""
    if OPTION in flags:
        return flags
    setting = f"{OPTION}={int(threshold)}"
    tokens = flags.split()
    for index, token in enumerate(tokens):
        if token.startswith(EXTRA_OPTIONS):  # one map flag: add to it (a second would replace it)
            listed = token[len(EXTRA_OPTIONS) :]
            tokens[index] = EXTRA_OPTIONS + (f"{listed},{setting}" if listed else setting)
            return " ".join(tokens)
    return " ".join([*tokens, EXTRA_OPTIONS + setting])


def configure(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the threshold in `environ["XLA_FLAGS"]`; for this process's own environment, warn if
    JAX's backends already started (they have read XLA_FLAGS then)."""
    before = environ.get("XLA_FLAGS", "")
    after = with_small_loop_threshold(before)
    if after == before:
        return
    environ["XLA_FLAGS"] = after
    if environ is os.environ and _jax_backends_started():
        warnings.warn(
            "scalegym was imported after JAX started its backends, so XLA_FLAGS is read already: "
            f"loops (ThreeBody's Hermite integrator) run several times slower. Import scalegym "
            f"before running any JAX computation, or set XLA_FLAGS='{after}' before starting "
            "Python.",
            stacklevel=3,
        )


def _jax_backends_started() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started is not None and started())
