"""Suites: env throughput measures; later the TOML suite runner, scaling fits and reports."""
