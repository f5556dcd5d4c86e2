"""Agents: PPO (feed-forward and recurrent) under jit or on a host env, and the training driver."""

AGENTS = ("ppo",)  # the agent names `train_agent`, `scalegym train` and suite cells accept
