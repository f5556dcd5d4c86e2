"""The README's code runs as written (the quickstart, a custom env benchmarked by the CLI), and
its results tables are the ones the reference runs give."""

import json
import re
import sys
from pathlib import Path

import gymnasium
import pytest

from scalegym.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_runs():
    quickstart = python_blocks()[0].replace("4096", "8")
    namespace: dict = {}
    exec(compile(quickstart, "README quickstart", "exec"), namespace)
    assert namespace["rewards"].shape == (8,)
    assert namespace["obs"]["view"].shape == (8, 5, 5, 4)


def test_gymnasium_block_runs():
    block = python_blocks()[1].replace("4096", "8")
    namespace: dict = {}
    exec(compile(block, "README gymnasium", "exec"), namespace)
    assert namespace["reward"].shape == (8,)


def test_next_step_block_runs_under_gymnasiums_wrappers():
    block = next(b for b in python_blocks() if "AutoresetMode.NEXT_STEP" in b)
    namespace: dict = {}
    exec(compile(block, "README next-step autoreset", "exec"), namespace)
    envs = namespace["envs"]
    obs, _ = envs.reset(seed=0)
    assert obs.ndim == 2 and obs.shape[0] == 16  # flattened dict observation
    for _ in range(5):
        obs, *_ = envs.step(envs.action_space.sample())
    assert obs.shape[0] == 16


def test_custom_jax_env_and_plain_gymnasium_env_are_benchmarked(tmp_path, monkeypatch, capsys):
    module = next(b for b in python_blocks() if b.startswith("# my_envs.py"))
    (tmp_path / "my_envs.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_envs", raising=False)
    if "Walk-v0" in gymnasium.registry:
        del gymnasium.registry["Walk-v0"]
    args = ["--batch-sizes", "1,16", "--steps", "8", "--repeats", "2", "--json"]
    assert main(["bench", "Walk-v0", "--import", "my_envs", *args]) == 0
    walk = json.loads(capsys.readouterr().out)
    assert walk["kind"] == "jax" and walk["env"] == "Walk-v0"
    assert main(["bench", "CartPole-v1", *args]) == 0
    cartpole = json.loads(capsys.readouterr().out)
    assert cartpole["kind"] == "host"
    for report in (walk, cartpole):
        assert [r["batch_size"] for r in report["results"]] == [1, 16]
        assert all(
            r["sps"] > 0 and r["sps_min"] <= r["sps"] <= r["sps_max"] for r in report["results"]
        )


def test_custom_jax_env_through_gymnasium_make_and_make_vec(tmp_path, monkeypatch):
    blocks = python_blocks()
    module = next(b for b in blocks if b.startswith("# my_envs.py"))
    usage = blocks[blocks.index(module) + 1]
    (tmp_path / "my_envs.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_envs", raising=False)
    if "Walk-v0" in gymnasium.registry:
        del gymnasium.registry["Walk-v0"]
    namespace: dict = {}
    exec(compile(usage, "README gymnasium.make of a custom env", "exec"), namespace)
    assert namespace["reward"] == 1.0 and namespace["obs"].shape == (64, 1)
    assert namespace["rewards"].shape == namespace["terminated"].shape == (64,)
    assert namespace["env"].unwrapped.functional_env.__class__.__name__ == "Walk"
    from gymnasium.utils.env_checker import check_env

    check_env(gymnasium.make("Walk-v0").unwrapped, skip_render_check=True)


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_readme_opens_with_the_two_commands(command):
    head = README.read_text().split("## Quickstart")[0]
    assert command in head


def test_ppo_block_trains_two_seeds():
    # The block as written, on ToyChain with test_ppo_runs.py's TINY config instead of the 5x5
    # room (its vmapped-seeds test compiles the same program: the README's own config would cost
    # half a minute of compiling for no coverage the block's lines do not already get).
    block = next(b for b in python_blocks() if "make_train" in b)
    env_line = next(line for line in block.splitlines() if "scalegym.make(" in line)
    config = block[block.index("config = PPOConfig(") : block.index("runner, metrics")]
    block = block.replace(env_line, 'env, params = scalegym.make("ToyChain-v0")').replace(
        config,
        "config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, "
        "num_minibatches=2)\n",
    )
    namespace: dict = {}
    exec(compile(block, "README ppo", "exec"), namespace)
    assert namespace["success"].shape == (2, 3)  # [seeds, updates]
    assert bool(((namespace["success"] >= 0) & (namespace["success"] <= 1)).all())


def test_readme_suite_blocks_are_valid_suites():
    from scalegym.suites.spec import parse_suite

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    assert any('kind = "scaling"' in b for b in blocks)
    for index, block in enumerate(blocks):
        if "[suite]" not in block:  # a cell shown on its own
            block = '[suite]\nname = "readme"\n' + block
        spec = parse_suite(block.encode(), f"README toml block {index}")
        assert spec.cells


def test_generated_tables_match_the_reference_results(tmp_path):
    from scalegym.suites import readme_tables

    assert readme_tables.main(["--check"]) == 0
    readme = README.read_text()
    assert readme.count("<!-- generated: ") == len(readme_tables.TABLES)
    # A number edited by hand is caught: the check rebuilds the table from the files.
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace("| 3.76 [3.52, 3.99] |", "| 9.99 [3.52, 3.99] |"))
    (tmp_path / "results").symlink_to(README.parent / "results")
    assert readme_tables.main(["--check", "--readme", str(copy)]) == 1
