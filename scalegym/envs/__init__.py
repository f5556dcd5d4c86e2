"""The built-in env families, registered on import of scalegym."""

import gymnasium

from scalegym.core.gym_registration import gymnasium_id
from scalegym.core.registry import list_envs, register, retire

BUILTIN_ENVS: dict[str, tuple[str, dict]] = {
    "Rearrange-v1": ("scalegym.envs.rearrange.env:Rearrange", {"task": "place"}),
    "RearrangePick-v1": ("scalegym.envs.rearrange.env:Rearrange", {"task": "pick"}),
    "PaninskiLock-v0": ("scalegym.envs.pomdp.paninski_lock:PaninskiLock", {}),
    "RevealingBandit-v0": ("scalegym.envs.pomdp.revealing_bandit:RevealingBandit", {}),
    "PerRoomSecret-v0": ("scalegym.envs.pomdp.per_room_secret:PerRoomSecret", {}),
    "Tiger-v0": ("scalegym.envs.pomdp.tiger:Tiger", {}),
    "NoisyCombinationLock-v0": (
        "scalegym.envs.pomdp.noisy_combination_lock:NoisyCombinationLock",
        {},
    ),
    "ThreeBody-v0": ("scalegym.envs.threebody.env:ThreeBody", {}),
    "ThreeBodyAarseth-v0": ("scalegym.envs.threebody.env:ThreeBodyAarseth", {}),
}
# Host envs: gymnasium.Env classes (no jitted path), registered in gymnasium only, as scalegym/<id>.
HOST_ENVS: dict[str, str] = {
    "ThreeBodyRebound-v0": "scalegym.envs.threebody.rebound_env:ThreeBodyRebound",
}
_V0_REWARD = (
    "v0's shaping skipped stage changes, so a place/re-pick cycle could be farmed; v1 shapes "
    "with one potential over the whole task"
)
RETIRED_ENVS: dict[str, tuple[str, str]] = {
    "Rearrange-v0": ("Rearrange-v1", _V0_REWARD),
    "RearrangePick-v0": ("RearrangePick-v1", _V0_REWARD),
}


def register_builtin_envs() -> None:
    """Register every built-in id once (entry points load lazily, so this imports no env code)."""
    known = set(list_envs())
    for env_id, (entry_point, env_kwargs) in BUILTIN_ENVS.items():
        if env_id not in known:
            register(env_id, entry_point, env_kwargs=env_kwargs)
    for env_id, entry_point in HOST_ENVS.items():
        if gymnasium_id(env_id) not in gymnasium.registry:
            gymnasium.register(id=gymnasium_id(env_id), entry_point=entry_point)
    for old_id, (replacement, why) in RETIRED_ENVS.items():
        retire(old_id, replacement, why)
