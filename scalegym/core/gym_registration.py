"""scalegym ids in gymnasium's registry: `scalegym/Name-vN`, with a single and a vector entry point.

Entry points are named by string, so registering loads no env code and imports neither the
registry nor the adapters (`scalegym.core.gym_adapters` builds the envs when gymnasium asks).
"""

from __future__ import annotations

import gymnasium

__all__ = ["GYMNASIUM_NAMESPACE", "gymnasium_id", "register_gymnasium"]

GYMNASIUM_NAMESPACE = "scalegym"
_ADAPTERS = "scalegym.core.gym_adapters"


def gymnasium_id(env_id: str) -> str:
    """The gymnasium id of a scalegym id: `Name-vN` -> `scalegym/Name-vN`.

    An id that already names its own namespace (`team/Name-vN`) keeps it, because gymnasium ids
    allow only one namespace.
    """
    return env_id if "/" in env_id else f"{GYMNASIUM_NAMESPACE}/{env_id}"


def register_gymnasium(env_id: str) -> None:
    """Register scalegym's `env_id` in gymnasium (once); `gymnasium.make` and `make_vec` then
    call `make_gymnasium_env` / `make_gymnasium_vector_env` with `env_id` and the user's kwargs."""
    gym_id = gymnasium_id(env_id)
    if gym_id in gymnasium.registry:
        return
    gymnasium.register(
        id=gym_id,
        entry_point=f"{_ADAPTERS}:make_gymnasium_env",
        vector_entry_point=f"{_ADAPTERS}:make_gymnasium_vector_env",
        kwargs={"env_id": env_id},
    )
