"""Test-wide setup: every test env is registered before any test module is collected.

The conformance harness (`test_conformance.py`) is parametrized over `scalegym.list_envs()` when
it is collected; registering the toy envs here, first, puts them under it too. An env registered
later (by a test module at import) would escape it, so collection fails if that happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile

# One persistent XLA compilation cache per test session, shared by the xdist workers and the CLI
# subprocesses (they inherit the environment): many tests compile the same PPO or env program, and
# a cache hit returns the same executable. A fresh directory each session, so nothing stale is read.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set in the controller; workers inherit it
    os.environ["SCALEGYM_TEST_XLA_CACHE_OWNER"] = str(os.getpid())
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="scalegym-test-xla-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# Tests compile with XLA's backend (LLVM) optimisation off: compiling is most of the suite's time on
# 2 cores, and this cuts the suite's test time by about 30%. Results are the same up to the last
# bits of floating-point rounding (a multiply-add may be contracted differently); benchmarks and
# suites run at XLA's default level. Set --xla_backend_optimization_level in XLA_FLAGS to override.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()

import jax
import pytest
import toy_envs  # noqa: F401  (registers ToyChain-v0 and ToyChainBox-v0)

import scalegym

# In case jax was imported (by a plugin) before the variables above were set.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# A test process keeps JAX's one CPU device, as a library user's does; only the `scalegym` command
# (the CLI subprocesses of the tests) gives the CPU one device per core. Set here, an in-process
# call that would do so (a Ray task body, run directly) leaves the count alone.
jax.config.update("jax_num_cpu_devices", 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (learning tests beyond one per env family)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `make test` (CI, under 15 minutes on 2 cores) runs one PPO learning test per env family;
    # the further learning tests (CNN, GRU, the host path, a gymnax peer) run with --slow.
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="a slow learning test: run with --slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("SCALEGYM_TEST_XLA_CACHE_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


CONFORMANCE_MODULE = "test_conformance.py"


@pytest.fixture
def out_of_memory_at_batch_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench_jax_env` raising as a device out of memory would, at batch size 3 only."""
    from scalegym.suites import measures

    real = measures.bench_jax_env

    def bench(env, params, batch_sizes, *args, **kwargs):  # type: ignore[no-untyped-def]
        if list(batch_sizes) == [3]:
            raise MemoryError("RESOURCE_EXHAUSTED: out of memory allocating the batch")
        return real(env, params, batch_sizes, *args, **kwargs)

    monkeypatch.setattr(measures, "bench_jax_env", bench)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The ids the conformance module parametrized over when it was imported, whatever subset of
    # its tests was then selected (-k, node ids).
    modules = {item.module for item in session.items if item.path.name == CONFORMANCE_MODULE}
    if not modules:
        return  # the conformance module was not selected (e.g. `pytest tests/test_ppo.py`)
    covered = set(next(iter(modules)).ENV_IDS)
    missed = sorted(set(scalegym.list_envs()) - covered)
    if missed:
        raise pytest.UsageError(
            f"registered after the conformance tests were collected: {', '.join(missed)}; "
            "register test envs in tests/conftest.py (via toy_envs) instead"
        )
