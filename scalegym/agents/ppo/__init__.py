"""PPO, PureJaxRL style: the algorithm, its config and loss, networks, the chunked driver, the
host path, checkpoints and the read-back of a trained policy, and PPO as a budget agent."""

from scalegym.agents.ppo.algorithm import PPO, RunnerState, make_ppo, make_train
from scalegym.agents.ppo.config import PPOConfig

__all__ = ["PPO", "PPOConfig", "RunnerState", "make_ppo", "make_train"]
