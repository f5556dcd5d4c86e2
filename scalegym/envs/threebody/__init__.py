"""ThreeBody: RL-chosen time steps for a float64 Hermite integrator of three gravitating bodies."""
