"""Agents that learn nothing or learn at a known rate: fixed actions and random (`fixed`), the
calibration learner and the exact-optimal policy (`calibration`)."""
