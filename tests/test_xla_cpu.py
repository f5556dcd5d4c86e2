"""scalegym raises XLA:CPU's small-while-loop threshold in XLA_FLAGS, and leaves a user's own."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from scalegym import xla_cpu

SETTING = f"{xla_cpu.OPTION}={xla_cpu.THRESHOLD_BYTES}"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("", f"--xla_backend_extra_options={SETTING}"),
        (
            "--xla_backend_optimization_level=0",
            f"--xla_backend_optimization_level=0 --xla_backend_extra_options={SETTING}",
        ),
        # An existing map flag gains the entry: a second --xla_backend_extra_options would
        # replace the first.
        (
            "--xla_backend_extra_options=foo=1 --xla_dump_to=/tmp/x",
            f"--xla_backend_extra_options=foo=1,{SETTING} --xla_dump_to=/tmp/x",
        ),
        ("--xla_backend_extra_options=", f"--xla_backend_extra_options={SETTING}"),
    ],
)
def test_threshold_is_added_to_the_flags(flags: str, expected: str) -> None:
    assert xla_cpu.with_small_loop_threshold(flags) == expected


def test_a_users_own_threshold_is_kept() -> None:
    flags = f"--xla_backend_extra_options={xla_cpu.OPTION}=1024"
    assert xla_cpu.with_small_loop_threshold(flags) == flags
    environ = {"XLA_FLAGS": flags}
    xla_cpu.configure(environ)
    assert environ == {"XLA_FLAGS": flags}


def test_configure_sets_an_empty_environment() -> None:
    environ: dict[str, str] = {}
    xla_cpu.configure(environ)
    assert environ == {"XLA_FLAGS": f"--xla_backend_extra_options={SETTING}"}


def test_configure_warns_once_jax_has_started(monkeypatch: pytest.MonkeyPatch) -> None:
    jax.numpy.zeros(1).block_until_ready()  # this process's backend is up
    monkeypatch.setenv("XLA_FLAGS", "")  # restored after the test
    with pytest.warns(UserWarning, match="imported after JAX started"):
        xla_cpu.configure()
    assert os.environ["XLA_FLAGS"] == f"--xla_backend_extra_options={SETTING}"


def loop_program(lanes: int) -> str:
    """The optimized HLO of a while loop over `lanes` float64 values (8 bytes each)."""

    def run(x: jax.Array) -> jax.Array:
        return jax.lax.while_loop(lambda c: c[0] < 10, lambda c: (c[0] + 1, c[1] * 1.5), (0, x))[1]

    return jax.jit(run).lower(jnp.zeros(lanes, jnp.float32)).compile().as_text()


def test_importing_scalegym_hoists_a_mid_sized_loop_in_this_process() -> None:
    """A loop of 64 kB (above XLA's 1 kB default, below the raised threshold) is one kernel."""
    assert SETTING in os.environ["XLA_FLAGS"]  # conftest imported scalegym before any computation
    assert 'xla_cpu_small_call="true"' in loop_program(16_384)
    assert 'xla_cpu_small_call="true"' not in loop_program(2 << 20)  # 8 MiB in and out: too big


def test_a_fresh_process_gets_the_threshold_from_import_alone() -> None:
    code = (
        "import os, scalegym, jax, jax.numpy as jnp\n"
        "run = lambda x: jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + 1),"
        " (0, x))[1]\n"
        "text = jax.jit(run).lower(jnp.zeros(4096)).compile().as_text()\n"
        "print('xla_cpu_small_call' in text, os.environ['XLA_FLAGS'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    hoisted, flags = out.stdout.strip().split(" ", 1)
    assert hoisted == "True" and flags == f"--xla_backend_extra_options={SETTING}"
