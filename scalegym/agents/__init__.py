"""Agents: PPO (feed-forward and recurrent), networks, and the host training driver."""
