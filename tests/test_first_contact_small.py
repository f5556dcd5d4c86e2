"""Issue 28, point 9: what a first-time user sees — the bars while compiling, `scalegym train`'s
learning-curve plot, and the bench table's "idle lanes" column said in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalegym.cli import main
from scalegym.progress import CellBar, TrainingBar


def test_training_bar_says_compiling_until_the_first_update() -> None:
    bar = TrainingBar("ppo Rearrange-v1", total=1_000)
    try:
        (task,) = bar.progress.tasks
        assert task.completed == 0 and "compiling" in task.fields["info"]
        bar.update(100, {"train/return": 1.5})
        (task,) = bar.progress.tasks
        assert task.completed == 100 and "compiling" not in task.fields["info"]
        assert "train.return=1.5" in task.fields["info"]
    finally:
        bar.close()


def test_a_suite_cell_bar_says_compiling_until_its_cell_first_advances() -> None:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(file=open("/dev/null", "w")))  # noqa: SIM115
    bar = CellBar(progress, progress.console, total=2, completed=0)
    bar.start("ppo-rearrange-5x5")
    current = progress.tasks[-1]
    assert current.description.startswith("ppo-rearrange-5x5") and "compiling" in (
        current.description
    )
    bar.update(0.25)
    assert progress.tasks[-1].description == "ppo-rearrange-5x5"
    bar.update(0.5)  # later updates keep the plain name
    assert progress.tasks[-1].description == "ppo-rearrange-5x5"


def test_plain_train_writes_the_learning_curve_plot_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    out = tmp_path / "run"
    argv = ["train", "ToyChain-v0", "--steps", "512", "--agent-set", "num_envs=16"]
    argv += ["--agent-set", "num_steps=16", "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    plot = out / "plots" / "learning-curve.png"
    assert plot.is_file()
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300
    assert str(plot) in printed.out + printed.err
    recorded = json.loads((out / "result.json").read_text())
    assert recorded["pictures"]["plot"] == "plots/learning-curve.png"
    # The rollout of the trained policy sits beside it (its frames are tested in test_gif.py).
    gif = out / recorded["pictures"]["rollout_gif"]
    assert gif.is_file() and str(gif) in printed.out + printed.err


def test_bench_table_says_what_idle_lanes_are(capsys: pytest.CaptureFixture[str]) -> None:
    from scalegym.cli.envs import _print_bench_table

    row = {"batch_size": 64, "sps": 1e4, "sps_min": 9e3, "sps_max": 1.1e4, "compile_s": 1.0}
    report = {
        "env": "ThreeBody-v0",
        "kind": "jax",
        "results": [{**row, "substeps_per_s": 1e6, "idle_lanes": 0.42}],
        "device": {
            "backend": "cpu",
            "device_kind": "cpu",
            "num_devices": 1,
            "cpu_count": 2,
            "processor": "x86_64",
        },
        "jax": "0.10.2",
        "num_steps": 16,
        "repeats": 3,
        "consumes": "reward",
    }
    _print_bench_table(report)
    text = " ".join(capsys.readouterr().out.split())
    assert "42%" in text
    assert "idle lanes: the share of lane-steps" in text
    assert "slowest" in text  # why: under vmap every lane waits for the slowest one
