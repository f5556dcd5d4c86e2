"""Rearrange: the batched pick-and-place gridworld (generator, env, BFS oracle)."""
