"""Core: the env base class, spaces, registry, wrappers and gymnasium adapters."""

from scalegym.core import spaces
from scalegym.core.environment import EnvParams, EnvState, Environment, select_tree
from scalegym.core.registry import list_envs, make, register, spec

__all__ = [
    "EnvParams",
    "EnvState",
    "Environment",
    "list_envs",
    "make",
    "register",
    "select_tree",
    "spaces",
    "spec",
]
