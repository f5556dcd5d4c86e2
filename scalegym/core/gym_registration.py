"""JAX envs in gymnasium's registry, each with a single and a vector entry point.

scalegym's own ids appear as `scalegym/Name-vN`; `register_gymnasium` adds a user's JAX env class
under any gymnasium id. Entry points are named by string, so registering loads no env code and
imports neither the registry nor the adapters (`scalegym.core.gym_adapters` builds the envs when
gymnasium asks).
"""

from __future__ import annotations

from typing import Any

import gymnasium

__all__ = [
    "ENTRY_POINT",
    "GYMNASIUM_NAMESPACE",
    "VECTOR_ENTRY_POINT",
    "gymnasium_id",
    "register_gymnasium",
    "register_scalegym_id",
]

GYMNASIUM_NAMESPACE = "scalegym"
_ADAPTERS = "scalegym.core.gym_adapters"
ENTRY_POINT = f"{_ADAPTERS}:make_gymnasium_env"
VECTOR_ENTRY_POINT = "scalegym.core.gym_vector:make_gymnasium_vector_env"


def gymnasium_id(env_id: str) -> str:
    """The gymnasium id of a scalegym id: `Name-vN` -> `scalegym/Name-vN`.

    An id that already names its own namespace (`team/Name-vN`) keeps it, because gymnasium ids
    allow only one namespace.
    """
    return env_id if "/" in env_id else f"{GYMNASIUM_NAMESPACE}/{env_id}"


def register_scalegym_id(env_id: str) -> None:
    """Register scalegym's `env_id` in gymnasium (once); `gymnasium.make` and `make_vec` then
    call `make_gymnasium_env` / `make_gymnasium_vector_env` with `env_id` and the user's kwargs."""
    gym_id = gymnasium_id(env_id)
    if gym_id in gymnasium.registry:
        return
    gymnasium.register(
        id=gym_id,
        entry_point=ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"env_id": env_id},
    )


def register_gymnasium(id: str, entry_point: str | type, **kwargs: Any) -> None:
    """Register a JAX env class under the gymnasium id `id`, for `make` and `make_vec` alike.

    `entry_point` is a scalegym `Environment` subclass or a gymnax-style class, or its
    "module:Class" name (loaded when gymnasium first builds the env). `kwargs` are the defaults
    of the env's constructor arguments and params; `gymnasium.make(id, **more)` adds to them.
    `gymnasium.make(id)` then gives a NumPy `gymnasium.Env` (one jitted step per call) and
    `gymnasium.make_vec(id, num_envs=N)` one jitted, vmapped step for all N; `scalegym bench id`
    and suites run the class on the jitted path. (`gymnasium.register(id, entry_point=Walk)`
    on its own cannot work for `gymnasium.make`: gymnasium requires a `gymnasium.Env` there.)
    """
    if not isinstance(entry_point, str):
        from scalegym.core.functional import load_env_class  # checks the class now

        load_env_class(entry_point, id)
    gymnasium.register(
        id=id,
        entry_point=ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"env_class": entry_point, **kwargs},
    )
