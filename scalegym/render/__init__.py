"""Pictures of rollouts: per-family frames (`frames.rollout_frames`) and animated GIFs
(`gif.write_gif`). Host-side NumPy and Pillow only; nothing here runs under jit.

Import the submodules themselves: this package imports nothing at import time, so an env
family's `draw.py` can use `scalegym.render.canvas` without a cycle.
"""
