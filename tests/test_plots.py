"""The run's figures: one PNG per finished bench or train cell, none for failed cells."""

from scalegym.suites.plots import write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_for_finished_cells_only(tmp_path):
    records = {
        "bench": {
            "kind": "bench",
            "env": "Rearrange-v1",
            "status": "ok",
            "result": {
                "results": [
                    {"batch_size": b, "sps": 1e3 * b, "sps_min": 9e2 * b, "sps_max": 1.1e3 * b}
                    for b in (1, 64, 1024)
                ]
            },
        },
        "ppo": {
            "kind": "train",
            "env": "Rearrange-v1",
            "status": "ok",
            "result": {
                "curve": [
                    {"step": 100 * i, "train/return": float(i), "train/success": i / 10}
                    for i in range(1, 11)
                ]
                + [{"step": 1100, "eval/return": 10.0, "eval/success": 1.0}]
            },
        },
        "broken": {"kind": "train", "env": "Rearrange-v1", "status": "failed", "result": None},
    }
    paths = write_plots(tmp_path, records)
    assert sorted(p.name for p in paths) == ["bench.png", "ppo.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert not (tmp_path / "plots" / "broken.png").exists()


def _draw(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _labels_apart(ax, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    return len(boxes) >= 2 and all(
        not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]
    )


def test_curve_figure_draws_eval_success_legend_outside_and_ticks_apart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells.train import curve_figure

    # Early chunks: only the successes have finished, so train/success reads 1.0 throughout;
    # the evaluation on fresh envs shows the learning as it is.
    curve = []
    for i in range(1, 41):
        point = {"step": 75_000 * i, "train/return": 15.0, "train/success": 1.0}
        point["train/episodes"] = 10.0 * i
        if i % 5 == 0 or i == 1:
            point.update({"eval/return": i / 4, "eval/success": i / 40})
        curve.append(point)
    fig = curve_figure(plt, "ppo-rearrange", "Rearrange-v1", curve)
    renderer = _draw(fig)
    ax, twin = fig.axes
    lines = {line.get_label(): line for a in (ax, twin) for line in a.get_lines()}
    assert set(lines) == {
        "return, training episodes",
        "return, eval on fresh envs",
        "success, eval",
    }
    evals = [p for p in curve if "eval/success" in p]
    assert list(lines["success, eval"].get_ydata()) == [p["eval/success"] for p in evals]
    legend = fig.legends[0].get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))  # it hides no curve
    assert _labels_apart(ax, renderer)
    assert any(t.get_text().endswith("M") for t in ax.get_xticklabels())  # 3M, not 3000000
    plt.close(fig)


def test_eval_success_is_drawn_even_without_training_curves() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells.train import curve_figure

    fig = curve_figure(plt, "x", "E-v0", [{"step": 10, "eval/return": 1.0, "eval/success": 0.5}])
    assert [line.get_label() for a in fig.axes for line in a.get_lines()] == [
        "return, eval on fresh envs",
        "success, eval",
    ]
    plt.close(fig)


def test_sps_figure_tick_labels_stay_apart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells import BenchCell

    rows = [{"batch_size": 4**k, "sps": 1e4 * 4**k} for k in range(8)]
    record = {"cell": "bench", "env": "Rearrange-v1", "result": {"results": rows}}
    fig = BenchCell.figure(plt, record)
    assert _labels_apart(fig.axes[0], _draw(fig))
    plt.close(fig)


def test_curve_figure_bands_the_seeds_iqm_interval_at_evaluations() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells.train import curve_figure, seed_band

    curve = [
        {"step": 100, "eval/return": 1.0, "per_seed_return": [0.0, 1.0, 2.0, 1.0]},
        {"step": 200, "train/return": 2.0},
        {"step": 300, "eval/return": 5.0, "per_seed_return": [4.0, 5.0, 6.0, 5.0]},
        {"step": 400, "eval/return": 7.0, "per_seed_return": [7.0]},  # one seed: no band
    ]
    steps, low, high = seed_band(curve, "per_seed_return")
    assert steps == [100, 300]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(low, (1.0, 5.0), high, strict=True))
    assert low[0] < high[0] and high[0] < low[1]
    fig = curve_figure(plt, "ppo", "ToyChain-v0", curve)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "eval IQM 95% CI, seeds" in labels
    plt.close(fig)
    assert seed_band(curve[1:2], "per_seed_return") is None


def test_eval_returns_are_drawn_over_the_success_markers() -> None:
    """Late in training both series sit at the top: the returns' axes are drawn over the success
    axes (with no background of their own), and the success markers are hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells.train import curve_figure

    curve = [{"step": 1000 * i, "eval/return": 14.0 + i / 10, "eval/success": 1.0} for i in (1, 2)]
    fig = curve_figure(plt, "ppo", "Rearrange-v1", curve)
    ax, twin = fig.axes
    returns = {line.get_label(): line for line in ax.get_lines()}["return, eval on fresh envs"]
    success = {line.get_label(): line for line in twin.get_lines()}["success, eval"]
    assert ax.get_zorder() > twin.get_zorder() and not ax.patch.get_visible()
    assert success.get_markerfacecolor() == "none"  # the return dot shows through the square
    assert returns.get_markersize() < success.get_markersize()
    plt.close(fig)


def test_bench_figure_counts_like_the_report_and_says_what_its_bars_are() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalegym.suites.cells import BenchCell
    from scalegym.suites.markdown import si

    rows = [
        {"batch_size": 1, "sps": 87_800.0, "sps_min": 80_000.0, "sps_max": 90_000.0},
        {"batch_size": 256, "sps": 2_010_000.0, "sps_min": 1.8e6, "sps_max": 2.05e6},
        {"batch_size": 4096, "sps": 3_540_000.0, "sps_min": 3.5e6, "sps_max": 3.6e6},
    ]
    record = {"cell": "bench", "env": "Rearrange-v1", "result": {"results": rows, "repeats": 3}}
    fig = BenchCell.figure(plt, record)
    fig.canvas.draw()
    (ax,) = fig.axes
    shown = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert shown and all(t[-1] in "kM" or t.isdigit() for t in shown), shown
    assert not any("times" in t or "^" in t for t in shown)  # no 4×10^6 beside report's 3.54M
    assert [t.get_text() for t in ax.texts] == [si(r["sps"]) for r in rows]  # report's numbers
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("bars: min–max over 3 repeats" in t for t in legend), legend
    plt.close(fig)
