"""Core: the env base class, spaces, registry, wrappers and gymnasium adapters."""

from scalegym.core import spaces
from scalegym.core.environment import Environment, EnvParams, EnvState, select_tree
from scalegym.core.fusion import compute_once
from scalegym.core.gym_adapters import FunctionalGymEnv
from scalegym.core.gym_vector import FunctionalVectorEnv
from scalegym.core.registry import list_envs, register, spec
from scalegym.core.resolve import make
from scalegym.core.wrappers import EpisodeStatistics

__all__ = [
    "EnvParams",
    "EnvState",
    "Environment",
    "EpisodeStatistics",
    "FunctionalGymEnv",
    "FunctionalVectorEnv",
    "compute_once",
    "list_envs",
    "make",
    "register",
    "select_tree",
    "spaces",
    "spec",
]
