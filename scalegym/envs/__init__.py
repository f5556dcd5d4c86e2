"""The built-in env families, registered on import of scalegym."""

from typing import Any

from scalegym.core.registry import list_envs, register, register_host, retire

# PPO's settings per family (README, "Training (PPO)"); an env without them gets PPOConfig's
# defaults, which are PureJaxRL's CartPole settings.
REARRANGE_PPO: dict[str, Any] = {
    "num_envs": 256,
    "num_steps": 64,
    "update_epochs": 4,
    "num_minibatches": 8,
    "learning_rate": 5e-4,
    "gamma": 0.99,
    "ent_coef": 0.01,
    "hidden": (128, 128),
    "activation": "relu",
}
# The revealing POMDPs: a GRU policy (the agent must remember what it spelled and saw) that also
# takes its previous action and reward (the exact judge feeds them per history), many short
# episodes per rollout, undiscounted returns as the finite horizon defines them.
POMDP_PPO: dict[str, Any] = {
    "network": "gru",
    "prev_action_reward": True,
    "num_envs": 64,
    "num_steps": 32,
    "update_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 1e-3,
    "gamma": 1.0,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "hidden": (64,),
    "memory": 64,
}
# ThreeBody: an MLP on the 13 normalised numbers; the paper's reward spans ±1e4 per step, so it
# is scaled by 1e-3 for the value loss; gamma 0.99 over 100-step episodes.
THREEBODY_PPO: dict[str, Any] = {
    "num_envs": 64,
    "num_steps": 100,
    "update_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "ent_coef": 0.01,
    "hidden": (64, 64),
    "normalize_obs": True,
    "reward_scale": 1e-3,
}

# id -> (entry point, constructor arguments, PPO settings)
BUILTIN_ENVS: dict[str, tuple[str, dict, dict]] = {
    "Rearrange-v1": ("scalegym.envs.rearrange.env:Rearrange", {"task": "place"}, REARRANGE_PPO),
    "RearrangePick-v1": ("scalegym.envs.rearrange.env:Rearrange", {"task": "pick"}, REARRANGE_PPO),
    "PaninskiLock-v0": ("scalegym.envs.pomdp.paninski_lock:PaninskiLock", {}, POMDP_PPO),
    "RevealingBandit-v0": ("scalegym.envs.pomdp.revealing_bandit:RevealingBandit", {}, POMDP_PPO),
    "PerRoomSecret-v1": ("scalegym.envs.pomdp.per_room_secret:PerRoomSecret", {}, POMDP_PPO),
    "Tiger-v0": ("scalegym.envs.pomdp.tiger:Tiger", {}, POMDP_PPO),
    "NoisyCombinationLock-v0": (
        "scalegym.envs.pomdp.noisy_combination_lock:NoisyCombinationLock",
        {},
        POMDP_PPO,
    ),
    "ThreeBody-v0": ("scalegym.envs.threebody.env:ThreeBody", {}, THREEBODY_PPO),
    "ThreeBodyAarseth-v0": ("scalegym.envs.threebody.env:ThreeBodyAarseth", {}, THREEBODY_PPO),
}
# Host envs: gymnasium.Env classes (no jitted path), registered in gymnasium only, as scalegym/<id>:
# id -> (entry point, PPO settings).
HOST_ENVS: dict[str, tuple[str, dict]] = {
    "ThreeBodyRebound-v0": (
        "scalegym.envs.threebody.rebound_env:ThreeBodyRebound",
        THREEBODY_PPO,
    ),
}
_V0_REWARD = (
    "v0's shaping skipped stage changes, so a place/re-pick cycle could be farmed; v1 shapes "
    "with one potential over the whole task"
)
RETIRED_ENVS: dict[str, tuple[str, str]] = {
    "Rearrange-v0": ("Rearrange-v1", _V0_REWARD),
    "RearrangePick-v0": ("RearrangePick-v1", _V0_REWARD),
    "PerRoomSecret-v0": (
        "PerRoomSecret-v1",
        "v0 had one live (room, key) pair among S² candidates and no room observed, which is "
        "RevealingBandit over S² (exponent 1 in candidates); v1 draws each episode's room and "
        "shows it, and every room hides its own key, so ε-optimality needs all K keys "
        "(N ≈ K²/g², exponent 2 in K)",
    ),
}


def register_builtin_envs() -> None:
    """Register every built-in id once (entry points load lazily, so this imports no env code)."""
    known = set(list_envs())
    for env_id, (entry_point, env_kwargs, ppo) in BUILTIN_ENVS.items():
        if env_id not in known:
            register(env_id, entry_point, env_kwargs=env_kwargs, agent_defaults={"ppo": ppo})
    for env_id, (entry_point, ppo) in HOST_ENVS.items():
        register_host(env_id, entry_point, agent_defaults={"ppo": ppo})
    for old_id, (replacement, why) in RETIRED_ENVS.items():
        retire(old_id, replacement, why)
