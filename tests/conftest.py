"""Test-wide setup: every test env is registered before any test module is collected.

The conformance harness (`test_conformance.py`) is parametrized over `scalegym.list_envs()` when
it is collected; registering the toy envs here, first, puts them under it too. An env registered
later (by a test module at import) would escape it, so collection fails if that happens.
"""

from __future__ import annotations

import pytest
import toy_envs  # noqa: F401  (registers ToyChain-v0 and ToyChainBox-v0)

import scalegym

CONFORMANCE_MODULE = "test_conformance.py"


def pytest_collection_finish(session: pytest.Session) -> None:
    covered = {
        item.callspec.params["env_id"]
        for item in session.items
        if item.path.name == CONFORMANCE_MODULE
        and hasattr(item, "callspec")
        and "env_id" in item.callspec.params
    }
    if not covered:
        return  # the conformance module was not selected (e.g. `pytest tests/test_ppo.py`)
    missed = sorted(set(scalegym.list_envs()) - covered)
    if missed:
        raise pytest.UsageError(
            f"registered after the conformance tests were collected: {', '.join(missed)}; "
            "register test envs in tests/conftest.py (via toy_envs) instead"
        )
