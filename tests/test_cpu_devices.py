"""One CPU device per core in the `scalegym` command; a bench splits its batches over them.

`one_cpu_device_per_core` must run before JAX starts its backend, so each case runs in a fresh
interpreter (this test process keeps its one CPU device: conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import jax
import pytest

from scalegym.agents.devices import bench_split, training_devices, usable_cores
from scalegym.suites.cells.bench import BenchCell

PROBE = textwrap.dedent(
    """
    import json, sys
    import jax
    import scalegym
    from scalegym.agents.devices import one_cpu_device_per_core
    if sys.argv[1] == "computed":
        jax.numpy.zeros(1).block_until_ready()  # the backend has started
    set_to = one_cpu_device_per_core()
    print(json.dumps({"set": set_to, "devices": len(jax.local_devices())}))
    """
)


def fresh_env(**extra: str) -> dict[str, str]:
    """This process's environment without any CPU device count, plus `extra`."""
    environ = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    flags = [f for f in environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    environ["XLA_FLAGS"] = " ".join(flags)
    environ.update(extra)
    return environ


def probe(when: str = "first", **extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, when],
        env=fresh_env(**extra),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cpu_gets_one_device_per_usable_core() -> None:
    cores = usable_cores()
    assert probe() == {"set": cores, "devices": cores}


@pytest.mark.parametrize(
    ("when", "extra", "devices"),
    [
        ("first", {"JAX_NUM_CPU_DEVICES": "1"}, 1),  # the user's count wins
        ("first", {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, 3),
        ("computed", {}, 1),  # too late: the backend started with XLA's one device
    ],
)
def test_a_count_set_elsewhere_or_too_late_is_left_alone(
    when: str, extra: dict[str, str], devices: int
) -> None:
    assert probe(when, **extra) == {"set": None, "devices": devices}


SPLITS = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_num_cpu_devices", 3)
    from scalegym.agents.devices import bench_split, training_devices
    print(json.dumps({
        "bench": {b: bench_split(b) for b in (1, 2, 3, 4, 6, 1024)},
        "bench_2": bench_split(1024, 2),
        "train": len(training_devices()),
        "train_2": len(training_devices(2)),
    }))
    """
)


def test_a_bench_splits_over_the_most_devices_its_batch_divides_training_takes_one_cpu() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SPLITS], env=fresh_env(), capture_output=True, text=True, check=True
    )
    splits = json.loads(out.stdout)
    assert splits["bench"] == {"1": 1, "2": 2, "3": 3, "4": 2, "6": 3, "1024": 2}
    assert splits["bench_2"] == 2
    assert splits["train"] == 1 and splits["train_2"] == 2  # one CPU device unless asked


def test_on_one_device_nothing_is_split_and_bad_counts_are_named() -> None:
    assert len(jax.local_devices()) == 1  # conftest.py
    assert bench_split(1024) == 1 and len(training_devices()) == 1
    with pytest.raises(ValueError, match="only 1 local cpu device"):
        bench_split(1024, 2)


def test_the_bench_command_splits_each_batch_over_the_cores(tmp_path: Any) -> None:
    """`scalegym bench` with no device flag: B = 1 on one device, B = 4 over the most of the
    machine's cores that divide it; the report says how many devices the process had."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "scalegym.cli", "bench", "PaninskiLock-v0"]
    command += ["--batch-sizes", "1,4", "--steps", "4", "--repeats", "1", "--out", str(out)]
    subprocess.run(command, env=fresh_env(), capture_output=True, text=True, check=True)
    report = json.loads(out.read_text())
    cores = usable_cores()
    assert report["device"]["num_devices"] == cores and report["devices"] is None
    split_4 = max(n for n in range(1, min(cores, 4) + 1) if 4 % n == 0)
    assert [(r["batch_size"], r["devices"]) for r in report["results"]] == [(1, 1), (4, split_4)]


def bench_record(cell: str, splits: dict[int, int]) -> dict[str, Any]:
    timing = {"sps": 1e6, "sps_min": 1e6, "sps_max": 1e6, "compile_s": 1.0}
    rows = [{"batch_size": b, **timing, "devices": n} for b, n in splits.items()]
    result = {"results": rows, "consumes": "observation, reward", "action": None}
    return {"cell": cell, "env": "Tiger-v0", "status": "ok", "result": result}


def test_the_report_says_which_batches_were_split() -> None:
    split = [bench_record("a", {1: 1, 64: 2, 1024: 2}), bench_record("b", {1024: 2})]
    text = "\n".join(BenchCell.report_section(split, {}))
    assert "1 device for B = 1; 2 devices for B = 64, 1,024." in text
    whole = [bench_record("a", {1: 1, 64: 1})]
    assert "split over local devices" not in "\n".join(BenchCell.report_section(whole, {}))
