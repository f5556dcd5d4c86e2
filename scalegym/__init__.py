"""scalegym: JAX-vectorized RL environments, agents and suites that measure speed and scaling."""

from scalegym.core import Environment, EnvParams, EnvState, list_envs, make, register, spaces
from scalegym.core.gym_registration import register_gymnasium
from scalegym.envs import register_builtin_envs

__version__ = "0.1.0"
__all__ = [
    "EnvParams",
    "EnvState",
    "Environment",
    "list_envs",
    "make",
    "register",
    "register_gymnasium",
    "spaces",
]

register_builtin_envs()
