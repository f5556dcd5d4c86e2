"""The env registry: ids `Name-vN`, `register`, `list_envs`, scalegym's host envs, the import of a
user's env module, and the `gymnax:` peer builder — the building blocks `scalegym.core.resolve`
looks ids up in."""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium

from scalegym.core.extras import import_extra
from scalegym.core.fields import check_fields, dataclass_fields
from scalegym.core.gym_registration import gymnasium_id, register_scalegym_id

ENV_ID_PATTERN = re.compile(r"^[A-Za-z][\w.]*-v\d+$")  # no namespace: gymnasium adds "scalegym/"
MODULE_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")  # a dotted Python module name
GYMNAX_PREFIX = "gymnax:"
IMPORT_HINT = "an env of your own is registered by importing its module first"


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


def list_host_envs() -> list[str]:
    """The gymnasium ids (`scalegym/<id>`) of scalegym's host envs, sorted."""
    return sorted(_HOST)


def spec(id: str) -> EnvSpec:
    """The registered spec of `id`; unknown ids get a 'did you mean' list and the import hint."""
    if id in _RETIRED:
        raise ValueError(f"env id {id!r} is retired; {_RETIRED[id]}")
    if id not in _REGISTRY:
        close = difflib.get_close_matches(id, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(list_envs())
        raise ValueError(f"unknown env id {id!r}{hint} (registered: {known}; {IMPORT_HINT})")
    return _REGISTRY[id]


def is_module_path(target: str) -> bool:
    """Whether `target` names a .py file (`my_envs.py`, `./envs/my_envs.py`), not a module."""
    return target.endswith(".py") or "/" in target or os.sep in target


def import_env_module(target: str) -> str:
    """Import the module that registers a user's envs; returns the module's name.

    `target` is a module name (`my_envs`, `pkg.envs`; the working folder is searched too, as a
    console script does not search it) or a path to a .py file (`./my_envs.py`), imported as
    the module of its file name from the file's folder. ImportError says what was not found;
    an error raised by the module's own code is the module's, and passes through.
    """
    if not is_module_path(target):
        if not MODULE_PATTERN.match(target):
            raise ImportError(f"{target!r} is not a module name (like my_envs) or a .py file")
        _search(os.getcwd())
        importlib.invalidate_caches()  # a module file written since the last import
        importlib.import_module(target)
        return target
    path = Path(target).expanduser()
    if not path.is_file():
        raise ImportError(f"no such file: {path.resolve()}")
    name = path.stem
    if path.suffix != ".py" or not MODULE_PATTERN.match(name):
        raise ImportError(f"{path} is not a Python module file (like my_envs.py)")
    _search(str(path.resolve().parent))
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != path.resolve():
        raise ImportError(
            f"{path}: a module named {name!r} is already imported from {loaded}; "
            "rename the file or pass the module name"
        )
    return name


def _search(folder: str) -> None:
    if folder not in sys.path and not (folder == os.getcwd() and "" in sys.path):
        sys.path.insert(0, folder)


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
