"""Functional env classes (scalegym `Environment` subclasses or gymnax-style) built from kwargs.

One place decides what a functional class is and how keyword arguments split between its
constructor and its params, for `resolve_env` (bench, train, suites) and for the gymnasium entry
points of `register_gymnasium` alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium

from scalegym.core.environment import Environment
from scalegym.core.fields import check_fields, dataclass_fields

_FUNCTIONAL_METHODS = ("step_env", "reset_env", "default_params")


def is_functional_env_class(obj: Any) -> bool:
    """True for a scalegym `Environment` subclass or a gymnax-style class (duck-typed)."""
    if not isinstance(obj, type):
        return False
    return issubclass(obj, Environment) or all(hasattr(obj, m) for m in _FUNCTIONAL_METHODS)


def declares_float64(cls: Any) -> bool:
    """Whether an env class asks for JAX's x64 mode (`requires_x64 = True`, e.g. ThreeBody)."""
    return bool(getattr(cls, "requires_x64", False))


def load_env_class(entry_point: str | type, where: str) -> type:
    """The class named by `entry_point` ("module:Class" or the class); refuses anything else."""
    try:
        loaded = (
            gymnasium.envs.registration.load_env_creator(entry_point)
            if isinstance(entry_point, str)
            else entry_point
        )
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}: cannot load entry point {entry_point!r}: {err}") from None
    if not is_functional_env_class(loaded):
        raise ValueError(
            f"{where}: entry point {entry_point!r} is not a JAX env class (a scalegym.Environment "
            "subclass, or a gymnax-style class with reset_env, step_env and default_params); "
            "register a gymnasium.Env class with gymnasium.register instead"
        )
    return loaded


def build_functional(
    env_id: str, cls: type, kwargs: dict[str, Any], time_limit: int | None = None
) -> tuple[Any, Any]:
    """Instantiate a functional env; kwargs its constructor names go there, the rest to params."""
    ctor_names = explicit_parameters(cls)
    env = cls(**{k: v for k, v in kwargs.items() if k in ctor_names})
    param_kwargs = {k: v for k, v in kwargs.items() if k not in ctor_names}
    fields = dataclass_fields(env.default_params)
    # gymnasium's `max_episode_steps` becomes the env's own episode limit when it has one.
    if time_limit is not None and "max_steps_in_episode" in fields:
        param_kwargs.setdefault("max_steps_in_episode", time_limit)
    if hasattr(env, "make_params"):
        return env, env.make_params(**param_kwargs)
    check_fields(f"{env_id} params", param_kwargs, fields)
    params = env.default_params
    return env, params.replace(**param_kwargs) if param_kwargs else params


def explicit_parameters(fn: Callable[..., Any]) -> set[str]:
    """Names a callable accepts by keyword (empty when it cannot be inspected)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in signature.parameters.values() if p.kind in kinds}
