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
