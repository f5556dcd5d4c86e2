"""PPO's hyperparameters: a frozen config, its validation, and the check of user overrides."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from scalegym.agents.ppo.networks import NETWORKS
from scalegym.core.fields import check_fields, same_kind, unknown_field_message

if TYPE_CHECKING:
    from scalegym.core.resolve import ResolvedEnv


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters; the defaults are PureJaxRL's CartPole settings."""

    num_envs: int = 4
    num_steps: int = 128  # rollout length per env per update
    total_timesteps: int = 500_000  # env steps per seed
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    network: str = "mlp"  # mlp | cnn | gru
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"  # tanh | relu
    memory: int = 128  # GRU width
    # gru only: the GRU also takes its previous action (one-hot) and reward, zeros at an
    # episode's start (RL², R2D2). The POMDP families' defaults turn it on (the exact judge feeds
    # each history's previous action and reward).
    prev_action_reward: bool = False
    normalize_obs: bool = False
    reward_scale: float = 1.0  # rewards are multiplied by this before GAE (ThreeBody's are ~1e3)
    eval_envs: int = 64  # fresh envs per seed at each of the driver's evaluations

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)

    @property
    def recurrent(self) -> bool:
        return self.network == "gru"

    def validate(self) -> None:
        """Raise ValueError naming the field and the allowed values."""
        positive = (
            "num_envs",
            "num_steps",
            "total_timesteps",
            "update_epochs",
            "num_minibatches",
            "eval_envs",
        )
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"PPOConfig.{name}={getattr(self, name)!r}: allowed: integers >= 1"
                )
        if self.network not in NETWORKS:
            raise ValueError(f"PPOConfig.network={self.network!r}: allowed: {', '.join(NETWORKS)}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"PPOConfig.activation={self.activation!r}: allowed: tanh, relu")
        if self.prev_action_reward and not self.recurrent:
            raise ValueError(
                f"PPOConfig.prev_action_reward=True is an input of recurrent policies only "
                f"(network: gru); network={self.network!r} needs prev_action_reward=False"
            )
        split = self.num_envs if self.recurrent else self.batch_size
        if split % self.num_minibatches:
            what = "num_envs" if self.recurrent else "num_envs * num_steps"
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide {what}={split}"
            )
        for name in (
            "learning_rate",
            "gamma",
            "gae_lambda",
            "clip_eps",
            "max_grad_norm",
            "reward_scale",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"PPOConfig.{name}={getattr(self, name)!r}: allowed: > 0")

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists), for records and checkpoints."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with `changes`, validated; unknown names raise ValueError listing the fields."""
        check_fields("PPOConfig", changes, field_names())
        if "hidden" in changes:
            changes["hidden"] = tuple(changes["hidden"])
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(PPOConfig)]


# Fields added after runs were recorded, with the value every earlier run had: a config dict
# (a checkpoint's, a result's) without one was made with that value.
ADDED_FIELDS: dict[str, Any] = {"prev_action_reward": False}


def with_added_fields(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded config dict of any age, with the fields added since at their earlier value."""
    return {**ADDED_FIELDS, **recorded}


def override_problems(overrides: dict[str, Any]) -> list[str]:
    """What is wrong with user overrides of PPOConfig (names and kinds of value), one line each.

    Used before any work by the CLI's `--agent-set` and a suite cell's `agent_params`; the step
    budget is not an override there, because the command or the cell sets it.
    """
    fields = {f.name: f for f in dataclasses.fields(PPOConfig)}
    problems = []
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        problems.append(unknown_field_message("PPOConfig", unknown, fields))
    for key, value in overrides.items():
        if key == "total_timesteps":
            problems.append('"total_timesteps" is set by the step budget (--steps, "steps")')
        elif key in fields and not same_kind(fields[key].default, value):
            default = fields[key].default
            kind = type(default).__name__
            problems.append(f'PPOConfig "{key}" expects {kind} like {default!r}, got {value!r}')
    return problems


def default_config(env: ResolvedEnv) -> PPOConfig:
    """PPO's defaults for `env`: its family's settings where it was registered with them
    (`agent_defaults={"ppo": ...}`, `scalegym.envs`), else PureJaxRL's CartPole settings."""
    return PPOConfig(**env.agent_defaults.get("ppo", {}))
