"""Agents: PPO (feed-forward and recurrent) under jit or on a host env, the search planners and
the baselines, each named once in `scalegym.agents.registry`."""
