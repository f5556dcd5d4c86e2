"""scalegym: JAX-vectorized RL environments, agents and suites that measure speed and scaling."""

from scalegym import xla_cpu

# Before anything below can run a computation: JAX's CPU backend reads XLA_FLAGS when it starts.
xla_cpu.configure()

from scalegym.core import (  # noqa: E402
    Environment,
    EnvParams,
    EnvState,
    list_envs,
    make,
    register,
    spaces,
)
from scalegym.core.gym_registration import register_gymnasium  # noqa: E402
from scalegym.core.resolve import env_precision  # noqa: E402
from scalegym.envs import register_builtin_envs  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "EnvParams",
    "EnvState",
    "Environment",
    "env_precision",
    "list_envs",
    "make",
    "register",
    "register_gymnasium",
    "spaces",
]

register_builtin_envs()
