"""The README fits on a screen, opens with the two commands, lists every env and suite, and its
code runs as written (batch sizes shrunk); its CLI lines parse; its results table is the one the
reference runs give. The block parsing is tests/test_docs.py's, which does the same for the docs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from test_docs import blocks, cli_commands, shell_blocks, shrink

import scalegym
from scalegym.cli import build_parser
from scalegym.core.registry import list_host_envs, spec

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SUITES = sorted(p.stem for p in (ROOT / "scalegym" / "suites").glob("*.toml"))


def python_blocks() -> list[str]:
    return [b.body for b in blocks(README.read_text()) if b.lang == "python" and not b.skip]


def test_readme_fits_on_a_screen() -> None:
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_readme_opens_with_the_two_commands(command: str) -> None:
    first = blocks(README.read_text())[0]
    assert first.lang == "bash" and first.line <= 5
    assert [line.split("#")[0].strip() for line in first.body.splitlines()] == [
        "make run",
        "make test",
    ]
    assert command in first.body


def test_every_shipped_suite_and_env_is_listed() -> None:
    text = README.read_text()
    assert {"smoke", "search-scaling", "pomdp-scaling", "full"} <= set(SUITES)
    assert [s for s in SUITES if f"| `{s}` |" not in text] == []
    shipped = [e for e in scalegym.list_envs() if module_of(e).startswith("scalegym.")]
    assert len(shipped) >= 9  # conftest's toy envs are registered too, and left out
    assert [e for e in shipped if f"| `{e}` |" not in text] == []
    assert [e for e in list_host_envs() if f"| `{e}` |" not in text] == []


def module_of(env_id: str) -> str:
    entry = spec(env_id).entry_point
    return entry.partition(":")[0] if isinstance(entry, str) else entry.__module__


def test_readme_links_resolve() -> None:
    targets = re.findall(r"\]\(((?:docs/)[^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert len(targets) >= 10
    assert [t for t in targets if not (ROOT / t).is_file()] == []


def test_quickstart_runs() -> None:
    quickstart = shrink(python_blocks()[0], [("4096", "8")], "README quickstart")
    namespace: dict[str, Any] = {}
    exec(compile(quickstart, "README quickstart", "exec"), namespace)
    assert namespace["rewards"].shape == (8,)
    assert namespace["obs"]["view"].shape == (8, 5, 5, 4)
    assert namespace["info"]["final_observation"]["view"].shape == (5, 5, 4)


def test_gymnasium_block_runs() -> None:
    block = next(b for b in python_blocks() if "gymnasium.make_vec" in b)
    block = shrink(block, [("num_envs=4096", "num_envs=8")], "README gymnasium")
    namespace: dict[str, Any] = {}
    exec(compile(block, "README gymnasium", "exec"), namespace)
    assert namespace["reward"].shape == (8,)
    assert namespace["obs"]["view"].shape == (8, 5, 5, 4)


def test_every_scalegym_command_parses() -> None:
    # The README names no command or flag that the CLI does not have.
    parser = build_parser()
    commands = [args for block in shell_blocks(README.read_text()) for args in cli_commands(block)]
    assert {args[0] for args in commands} >= {"list", "bench", "train", "run", "tb"}
    for args in commands:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"README: `scalegym {shlex.join(args)}` does not parse")


def test_ray_recipe_block_follows_its_marker() -> None:
    # The Ray recipe is kept (and tested) by its own helper: a bash block right after the marker.
    lines = README.read_text().splitlines()
    at = lines.index("<!-- recipe: ray -->")
    assert lines[at + 1] == "```bash"
    assert any("--executor ray" in line for line in lines[at + 2 : lines.index("```", at + 2)])


def test_generated_table_matches_the_reference_results(tmp_path: Path) -> None:
    from scalegym.suites import readme_tables

    assert readme_tables.main(["--check", str(README)]) == 0
    readme = README.read_text()
    # Two headline tables (search scaling, ThreeBody beside REBOUND); the rest live in docs/.
    names = [line.split()[2] for line in readme.splitlines() if line.startswith("<!-- generated: ")]
    assert names == ["search-scaling", "threebody-work"]
    # A number edited by hand is caught: the check rebuilds the table from the files.
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace("| 3.76 [3.52, 3.99] |", "| 9.99 [3.52, 3.99] |"))
    assert copy.read_text() != readme
    assert readme_tables.main(["--check", str(copy)]) == 1
