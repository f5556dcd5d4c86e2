"""SHIM(cli): `planner_for` until the CLI builds planners from `scalegym.agents.registry`."""

from scalegym.suites.cells.search import PLANNERS, planner_for

__all__ = ["PLANNERS", "planner_for"]
