"""The built-in env families, registered on import of scalegym."""

from scalegym.core.registry import list_envs, register

BUILTIN_ENVS: dict[str, tuple[str, dict]] = {
    "Rearrange-v0": ("scalegym.envs.rearrange.env:Rearrange", {"task": "place"}),
    "RearrangePick-v0": ("scalegym.envs.rearrange.env:Rearrange", {"task": "pick"}),
}


def register_builtin_envs() -> None:
    """Register every built-in id once (entry points load lazily, so this imports no env code)."""
    known = set(list_envs())
    for env_id, (entry_point, env_kwargs) in BUILTIN_ENVS.items():
        if env_id not in known:
            register(env_id, entry_point, env_kwargs=env_kwargs)
