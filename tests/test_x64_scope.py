"""A float64 env's x64 mode stays with that env: float32 work elsewhere stays float32.

Each check runs in a fresh interpreter (JAX's x64 flag is process state that other tests flip);
one script per scenario prints what it saw as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

_PRELUDE = """
import json, warnings
import jax, jax.numpy as jnp
import gymnasium
import scalegym
warnings.simplefilter("ignore")
seen = {}
def default_dtype():
    return str(jnp.zeros(2).dtype)
"""


def _run(body: str) -> dict[str, Any]:
    """Run `body` after the prelude in a fresh interpreter; the `seen` dict it fills."""
    script = _PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(seen))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gymnasium_run() -> dict[str, Any]:
    return _run(
        """
        env = gymnasium.make("scalegym/ThreeBody-v0")
        seen["after_make"] = default_dtype()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        seen["after_step"] = default_dtype()
        seen["state_dtype"] = str(env.unwrapped._state.pos.dtype)
        vec = gymnasium.make_vec("scalegym/ThreeBody-v0", num_envs=2)
        vec.reset(seed=0)
        vec.step(vec.action_space.sample())
        seen["after_vector_step"] = default_dtype()
        seen["vector_state_dtype"] = str(vec.unwrapped._state.pos.dtype)
        """
    )


def test_gymnasium_make_leaves_the_process_float32(gymnasium_run: dict[str, Any]) -> None:
    assert gymnasium_run["after_make"] == "float32"
    assert gymnasium_run["after_step"] == "float32"
    assert gymnasium_run["after_vector_step"] == "float32"


def test_threebody_still_steps_in_float64_through_gymnasium(gymnasium_run: dict[str, Any]) -> None:
    assert gymnasium_run["state_dtype"] == "float64"
    assert gymnasium_run["vector_state_dtype"] == "float64"


def test_env_precision_is_exported_and_scoped() -> None:
    seen = _run(
        """
        with scalegym.env_precision("ThreeBody-v0"):
            env, params = scalegym.make("ThreeBody-v0")
            obs, state = env.reset(jax.random.PRNGKey(0), params)
            state = env.step(jax.random.PRNGKey(1), state, 0, params)[1]
            seen["inside"] = default_dtype()
        seen["state_dtype"] = str(state.pos.dtype)
        seen["after"] = default_dtype()
        """
    )
    assert seen == {"inside": "float64", "state_dtype": "float64", "after": "float32"}


def test_stepping_an_x64_env_after_its_block_says_what_to_do() -> None:
    seen = _run(
        """
        with scalegym.env_precision("ThreeBody-v0"):
            env, params = scalegym.make("ThreeBody-v0")
            obs, state = env.reset(jax.random.PRNGKey(0), params)
        for call in ("step", "reset"):
            try:
                if call == "step":
                    env.step(jax.random.PRNGKey(1), state, 0, params)
                else:
                    env.reset(jax.random.PRNGKey(1), params)
                seen[call] = "no error"
            except Exception as err:
                seen[call] = f"{type(err).__name__}: {err}"
        try:
            scalegym.make("ThreeBody-v0")
        except Exception as err:
            seen["make"] = f"{type(err).__name__}: {err}"
        """
    )
    for call in ("step", "reset", "make"):
        message = seen[call]
        assert message.startswith("RuntimeError"), message
        assert "ThreeBody" in message and "scalegym.env_precision('ThreeBody-v0')" in message
        assert "carry" not in message
