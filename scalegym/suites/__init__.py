"""Suites: TOML suite files, the runner, env throughput measures, TensorBoard output, reports."""
