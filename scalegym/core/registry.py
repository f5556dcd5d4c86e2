"""The env registry: ids `Name-vN`, `register`, `list_envs`, scalegym's host envs, and the
`gymnax:` peer builder — the building blocks `scalegym.core.resolve` looks ids up in."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from scalegym.core.extras import import_extra
from scalegym.core.fields import check_fields, dataclass_fields
from scalegym.core.gym_registration import gymnasium_id, register_scalegym_id

ENV_ID_PATTERN = re.compile(r"^[A-Za-z][\w.]*-v\d+$")  # no namespace: gymnasium adds "scalegym/"
GYMNAX_PREFIX = "gymnax:"


@dataclass(frozen=True)
class EnvSpec:
    """What `make` needs to build one registered env."""

    id: str
    entry_point: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)  # param overrides applied at build()
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # constructor arguments
    # Per agent, the settings this env's family trains with, e.g. {"ppo": {"num_envs": 256}}.
    agent_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        if callable(self.entry_point):
            return self.entry_point
        module, _, attr = self.entry_point.partition(":")
        if not attr:
            raise ValueError(
                f"entry_point {self.entry_point!r} of {self.id} must look like 'module:Class'"
            )
        return getattr(importlib.import_module(module), attr)

    def build(self, overrides: dict[str, Any]) -> tuple[Any, Any]:
        """A fresh env and its validated params, `overrides` on top of the registered defaults."""
        env = self.load()(**self.env_kwargs)
        return env, env.make_params(**{**self.kwargs, **overrides})


_REGISTRY: dict[str, EnvSpec] = {}
_RETIRED: dict[str, str] = {}  # old id -> why, and which id replaces it
_HOST: dict[str, dict[str, dict[str, Any]]] = {}  # gymnasium id of a host env -> agent defaults


def retire(id: str, replacement: str, why: str) -> None:
    """Mark `id` as replaced by `replacement`: asking for it explains why instead of "unknown"."""
    _RETIRED[id] = f"{id} was replaced by {replacement}: {why}"


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    env_kwargs: dict[str, Any] | None = None,
    agent_defaults: dict[str, dict[str, Any]] | None = None,
    **defaults: Any,
) -> EnvSpec:
    """Register an env class (or factory) under `id`; `defaults` are param overrides and
    `agent_defaults` the settings agents train the family with (`{"ppo": {...}}`)."""
    if not ENV_ID_PATTERN.match(id):
        raise ValueError(f"env id {id!r} must look like 'Name-vN' (e.g. 'Rearrange-v1')")
    if id in _REGISTRY:
        raise ValueError(f"env id {id!r} is already registered; bump its version to change it")
    spec = EnvSpec(id, entry_point, dict(defaults), dict(env_kwargs or {}), agent_defaults or {})
    _REGISTRY[id] = spec
    register_scalegym_id(id)
    return spec


def is_retired(id: str) -> bool:
    """Whether `id` was replaced by another (`spec(id)` says by which, and why)."""
    return id in _RETIRED


def list_envs() -> list[str]:
    """All registered scalegym ids, sorted."""
    return sorted(_REGISTRY)


def spec(id: str) -> EnvSpec:
    """The registered spec of `id`; unknown ids get a 'did you mean' list."""
    if id in _RETIRED:
        raise ValueError(f"env id {id!r} is retired; {_RETIRED[id]}")
    if id not in _REGISTRY:
        close = difflib.get_close_matches(id, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(list_envs())
        raise ValueError(f"unknown env id {id!r}{hint} (registered: {known})")
    return _REGISTRY[id]


def register_host(
    id: str, entry_point: str, *, agent_defaults: dict[str, dict[str, Any]] | None = None
) -> None:
    """Register one of scalegym's host envs (a `gymnasium.Env` class, no jitted path) in
    gymnasium only, as `scalegym/<id>`, with the settings agents train it with."""
    gym_id = gymnasium_id(id)
    if gym_id not in gymnasium.registry:
        gymnasium.register(id=gym_id, entry_point=entry_point)
    _HOST[gym_id] = dict(agent_defaults or {})


def host_agent_defaults(gym_id: str) -> dict[str, dict[str, Any]] | None:
    """The agent defaults of a host env scalegym registered; None for anyone else's id."""
    return _HOST.get(gym_id)


def make_gymnax(name: str, **overrides: Any) -> tuple[Any, Any]:
    """A gymnax env and params, e.g. `make_gymnax("CartPole-v1")`."""
    gymnax = import_extra("gymnax", f"{GYMNAX_PREFIX}{name}")
    if name not in gymnax.registered_envs:
        known = list(gymnax.registered_envs)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(GYMNAX_PREFIX + c for c in close)}?" if close else ""
        raise ValueError(
            f"unknown gymnax env {name!r}{hint} (gymnax has: {', '.join(sorted(known))})"
        )
    env, params = gymnax.make(name)
    if overrides:
        check_fields(f"gymnax:{name} params", overrides, dataclass_fields(params))
        params = params.replace(**overrides)
    return env, params
