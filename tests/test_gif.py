"""Pictures of a policy (issue 28, A): a rollout drawn frame by frame per env family, written as
an animated GIF, linked from a train cell's report. Checked on the decoded data: frame count,
size, frames that change over time, the link — never pixel equality."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from scalegym.agents.ppo.algorithm import make_ppo
from scalegym.agents.rollout import MAX_FRAMES, policy_rollout
from scalegym.agents.train import training_request
from scalegym.core.resolve import resolve_env
from scalegym.render.frames import rollout_frames
from scalegym.render.gif import write_gif

GIF_LIMIT = 1_000_000  # bytes: a picture for a report, not a video


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame of a GIF as RGB [H, W, 3] uint8."""
    frames = []
    with Image.open(path) as image:
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return frames


def test_write_gif_keeps_every_frame_at_its_rate(tmp_path: Path) -> None:
    frames = np.zeros((6, 20, 30, 3), np.uint8)
    for t in range(6):
        frames[t, :, 5 * t : 5 * t + 5] = (200, 40, 40)  # a bar that moves right
    path = write_gif(tmp_path / "bar.gif", frames, fps=5)
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == 6 and image.size == (30, 20)
        assert image.info["duration"] == 200  # ms per frame at 5 fps
        assert image.info.get("loop") == 0  # plays on repeat
    back = decoded(path)
    np.testing.assert_array_equal(back[2][:, 10:15], frames[2][:, 10:15])
    assert not np.array_equal(back[0], back[1])


def test_write_gif_refuses_what_is_not_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\] uint8"):
        write_gif(tmp_path / "x.gif", np.zeros((4, 4, 3), np.uint8), fps=4)
    with pytest.raises(ValueError, match="fps"):
        write_gif(tmp_path / "x.gif", np.zeros((2, 4, 4, 3), np.uint8), fps=0)


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("Rearrange-v1", {"height": 5, "width": 5, "wall_density": 0.0}),
        ("ThreeBody-v0", {}),
        ("PaninskiLock-v0", {}),  # a GRU fed its previous action and reward
        ("ToyChain-v0", {}),  # no drawing of its own: the step strip
    ],
)
def test_each_family_draws_a_rollout_that_moves(env_id: str, overrides: dict) -> None:
    env = resolve_env(env_id, **overrides)
    request = training_request(
        env, "ppo", steps=64, agent_params={"num_envs": 4}, num_seeds=1, seed=0
    )
    with env.precision():
        ppo = make_ppo(env.env, env.params, request.config)
        runner = ppo.init(jax.random.key(0))  # an untrained policy acts as well as a trained one
        trajectory = policy_rollout(ppo, runner, jax.random.key(1), frames=24)
    assert trajectory.actions.shape == (24,)
    frames = rollout_frames(env.env, env.params, trajectory)
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == 24
    assert frames.shape[3] == 3 and 48 <= frames.shape[1] <= 400 and 48 <= frames.shape[2] <= 400
    moved = [not np.array_equal(a, b) for a, b in itertools.pairwise(frames)]
    assert all(moved)  # at least the step counter changes every frame


def test_rollout_frames_show_an_episode_end_then_a_fresh_start() -> None:
    env = resolve_env("PaninskiLock-v0")
    request = training_request(env, "ppo", steps=64, agent_params={}, num_seeds=1, seed=0)
    ppo = make_ppo(env.env, env.params, request.config)
    trajectory = policy_rollout(ppo, ppo.init(jax.random.key(0)), jax.random.key(1), frames=20)
    horizon = int(env.params.max_steps_in_episode)
    starts = np.flatnonzero(np.asarray(trajectory.starts))
    ends = np.flatnonzero(np.asarray(trajectory.ends))
    # Every episode shows its first state, H actions, and its last state (no action from it).
    assert list(starts) == list(range(0, 20, horizon + 1))
    assert list(ends) == [s + horizon for s in starts if s + horizon < 20]
    assert all(np.asarray(trajectory.actions)[ends] == -1)
    assert all(np.asarray(trajectory.actions)[np.setdiff1d(np.arange(20), ends)] >= 0)


def test_a_train_cell_writes_its_rollout_gif_and_the_report_links_it(tmp_path: Path) -> None:
    from scalegym.suites.rundir import REPORT, latest_records, read_records
    from scalegym.suites.runner import run_suite
    from scalegym.suites.spec import parse_suite

    suite = b"""
[suite]
name = "gif"

[[cell]]
name = "ppo-rearrange"
kind = "train"
env = "Rearrange-v1"
env_params = { height = 5, width = 5, wall_density = 0.0 }
agent = "ppo"
steps = 512
agent_params = { num_envs = 16, num_steps = 16 }
"""
    run = run_suite(parse_suite(suite, "gif.toml"), tmp_path / "run", progress=False)
    record = latest_records(read_records(run / "results.jsonl"))["ppo-rearrange"]
    assert record["status"] == "ok", record.get("error")
    rollout = record["result"]["rollout"]
    assert rollout["gif"] == "rollouts/ppo-rearrange/rollout.gif"
    assert rollout["frames"] == MAX_FRAMES
    path = run / rollout["gif"]
    assert 0 < path.stat().st_size < GIF_LIMIT
    frames = decoded(path)
    assert len(frames) == MAX_FRAMES
    with Image.open(path) as image:
        assert list(image.size) == [rollout["width"], rollout["height"]]
    assert len({f.tobytes() for f in frames}) == MAX_FRAMES  # every frame differs from the rest
    report = (run / REPORT).read_text()
    assert "](rollouts/ppo-rearrange/rollout.gif)" in report


def test_the_rollout_reads_the_same_runner_as_load_trained(tmp_path: Path) -> None:
    """Its template is built from shapes alone (no compiled init), the runner read is the same."""
    from scalegym.agents.ppo.trained import load_trained
    from scalegym.agents.rollout import load_runner
    from scalegym.agents.train import train_agent

    env = resolve_env("ToyChain-v0")
    params = {"num_envs": 8, "num_steps": 8}
    request = training_request(
        env,
        "ppo",
        steps=128,
        agent_params=params,
        num_seeds=2,
        seed=3,
        devices=1,
        checkpoint_dir=tmp_path / "checkpoint",
    )
    train_agent(request, progress=False)
    read, expected = load_runner(request)[1], load_trained(request)[1]
    leaves, wanted = jax.tree.leaves(_raw(read)), jax.tree.leaves(_raw(expected))
    assert len(leaves) == len(wanted)
    for a, b in zip(leaves, wanted, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _raw(tree: object) -> object:
    """Typed PRNG keys as their uint32 data, every other leaf as it is."""

    def raw(x: object) -> object:
        is_key = hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return jax.random.key_data(x) if is_key else x

    return jax.tree.map(raw, tree)


def test_a_ray_task_sends_its_train_cell_s_gif_back(tmp_path: Path) -> None:
    """A Ray task runs its cell in a scratch directory: the GIF must be among what comes back."""
    from scalegym.suites.cells.train import rollout_path
    from scalegym.suites.ray_executor import cell_files, pack
    from scalegym.suites.spec import parse_suite

    suite = b"""
[suite]
name = "ray-gif"

[[cell]]
name = "ppo"
kind = "train"
env = "ToyChain-v0"
agent = "ppo"
steps = 64
"""
    (cell,) = parse_suite(suite, "ray-gif.toml").cells
    gif = tmp_path / rollout_path(cell.name)
    gif.parent.mkdir(parents=True)
    gif.write_bytes(b"GIF89a")
    assert pack(tmp_path, cell_files(cell)) == {rollout_path(cell.name): b"GIF89a"}
