"""The docs site builds in strict mode, and its code runs as written: every page's python blocks
(batch sizes shrunk), every `scalegym ...` line parses, and the tutorial's commands run.

A block that is not meant to run is preceded by `<!-- no-test: why -->`. A block whose first line
is `# NAME.py` or `# NAME.toml` is a file the reader saves: it is written to the working folder,
not executed. The python blocks of one page run in order in one namespace, in a fresh folder.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import pytest

from scalegym.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
FENCE = re.compile(
    r"^(?:<!-- no-test: (?P<skip>[^>]+?) -->\n)?```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^```[ \t]*$",
    flags=re.S | re.M,
)
SAVED_FILE = re.compile(r"# (?P<name>[\w-]+\.(?:py|toml))\n")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    lang: str
    body: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # the `<!-- no-test: why -->` reason, if any

    @property
    def saved_as(self) -> str | None:
        """The file name a `# NAME.py` / `# NAME.toml` first line asks the reader to save it as."""
        match = SAVED_FILE.match(self.body)
        return match["name"] if match else None


def blocks(text: str) -> list[Block]:
    out = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        out.append(Block(match["lang"], match["body"], line, match["skip"]))
    return out


def cli_commands(block: Block) -> list[list[str]]:
    """The `scalegym ...` commands of a shell block, continuation lines joined, comments dropped."""
    commands = []
    for line in block.body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "scalegym":
            commands.append(words[1:])
    return commands


def shell_blocks(text: str) -> list[Block]:
    return [b for b in blocks(text) if b.lang in ("bash", "sh", "") and not b.skip]


def shrink(text: str, rules: list[tuple[str, str]], where: str) -> str:
    """`text` with each (old, new) replaced; an `old` the page no longer holds fails the test,
    so a rule cannot silently stop applying."""
    for old, new in rules:
        assert old in text, f"{where}: the test shrinks {old!r}, which is no longer there"
        text = text.replace(old, new)
    return text


@contextmanager
def fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in an empty folder that is on sys.path, with no Walk-v0 left by an earlier page."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("my_envs",):
        monkeypatch.delitem(sys.modules, module, raising=False)
    if "Walk-v0" in gymnasium.registry:
        monkeypatch.delitem(gymnasium.registry, "Walk-v0")
    yield tmp_path
    if "Walk-v0" in gymnasium.registry:
        del gymnasium.registry["Walk-v0"]


def run_python(page_text: str, where: str, folder: Path) -> dict[str, Any]:
    """Save the page's file blocks, execute its python blocks in order; the shared namespace."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks(page_text):
        if block.skip:
            continue
        if block.saved_as:
            (folder / block.saved_as).write_text(block.body)
        elif block.lang == "python":
            code = compile(block.body, f"{where}:{block.line}", "exec")
            exec(code, namespace)
    return namespace


# ------------------------------------------------------------------------------- the site builds


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    # Strict: a broken link, a missing anchor, an unknown `::: module` or a missing snippet fails.
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The API reference was generated from the docstrings, not left empty.
    api = re.sub(r"\s+", " ", text_of(site / "api" / "core" / "index.html"))
    assert "list_envs() -> list[str] All registered scalegym ids" in api
    assert "make(env_id: str, **overrides: Any)" in api
    # The scale-out page includes the README's Ray recipe, which lives in one place.
    assert "ray start --head" in text_of(site / "scale-out" / "index.html")


def text_of(html_page: Path) -> str:
    """A built page's text, tags dropped (code is split into highlighted spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_page.read_text()))


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    assert [p for p in PAGES if f" {p}" not in nav] == []


# ---------------------------------------------------------------------- python blocks of each page

# Shrinks that keep a page's blocks cheap in a test: batch sizes and the PPO run's size.
SHRINK: dict[str, list[tuple[str, str]]] = {
    "getting-started.md": [("4096", "8")],
    "gymnasium.md": [("num_envs=4096", "num_envs=8")],
    "agents.md": [
        # test_ppo_runs.py's TINY config on ToyChain instead of the 5x5 room: the same lines,
        # without half a minute of compiling the room's network.
        (
            'scalegym.make("Rearrange-v1", height=5, width=5, wall_density=0.0)',
            'scalegym.make("ToyChain-v0")',
        ),
        (
            "num_envs=64, num_steps=32, total_timesteps=200_000,",
            "num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2,",
        ),
    ],
}


def _getting_started(ns: dict[str, Any]) -> None:
    assert ns["rewards"].shape == (8,)
    assert ns["obs"]["view"].shape == (8, 5, 5, 4)
    assert ns["terms"].dtype == bool and ns["truncs"].dtype == bool


def _rearrange(ns: dict[str, Any]) -> None:
    assert ns["obs"]["view"].shape == (5, 5, 4) and ns["obs"]["vector"].shape == (6,)
    grid = ns["env"].render_text(ns["state"], ns["params"]).splitlines()[:7]
    assert [len(row) for row in grid] == [7] * 7  # the 7x7 room
    assert sum(row.count("a") + row.count("b") for row in grid) == 2  # two objects
    assert sum(row.count("A") + row.count("B") for row in grid) == 2  # and their goals


def _threebody(ns: dict[str, Any]) -> None:
    assert ns["obs"].shape == (13,) and str(ns["obs"].dtype) == "float32"
    assert int(ns["info"]["substeps"]) > 0
    assert not bool(ns["terminated"])


def _pomdp(ns: dict[str, Any]) -> None:
    assert ns["v_star"] == pytest.approx(0.5 + 0.5 * 0.5 / 2)  # 1/2 + αε/2
    assert ns["v_dp"] == pytest.approx(ns["v_star"], abs=1e-6)


def _agents(ns: dict[str, Any]) -> None:
    assert ns["success"].shape == (2, 3)  # [seeds, updates]
    assert bool(((ns["success"] >= 0) & (ns["success"] <= 1)).all())


def _gymnasium(ns: dict[str, Any]) -> None:
    # The page's last block: Walk-v0 through gymnasium.make and make_vec.
    assert ns["reward"] == 1.0 and ns["obs"].shape == (64, 1)
    assert ns["rewards"].shape == ns["terminated"].shape == (64,)
    assert ns["env"].unwrapped.functional_env.__class__.__name__ == "Walk"
    from gymnasium.utils.env_checker import check_env

    check_env(gymnasium.make("Walk-v0").unwrapped, skip_render_check=True)


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "getting-started.md": _getting_started,
    "envs/rearrange.md": _rearrange,
    "envs/threebody.md": _threebody,
    "envs/pomdp.md": _pomdp,
    "agents.md": _agents,
    "gymnasium.md": _gymnasium,
}
PYTHON_PAGES = [
    p
    for p in PAGES
    if p != "tutorial.md" and any(b.lang == "python" for b in blocks((DOCS / p).read_text()))
]


def test_every_page_with_python_blocks_has_checks() -> None:
    # A page's blocks must produce values a test looks at, not merely run.
    assert sorted(PYTHON_PAGES) == sorted(CHECKS)


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = shrink((DOCS / page).read_text(), SHRINK.get(page, []), page)
    with fresh_folder(tmp_path, monkeypatch) as folder:
        namespace = run_python(text, f"docs/{page}", folder)
        CHECKS[page](namespace)


def test_gymnasium_next_step_block_runs_under_gymnasiums_wrappers() -> None:
    block = next(b for b in blocks((DOCS / "gymnasium.md").read_text()) if "NEXT_STEP" in b.body)
    namespace: dict[str, Any] = {}
    exec(compile(block.body, "docs/gymnasium.md next-step", "exec"), namespace)
    envs = namespace["envs"]
    obs, _ = envs.reset(seed=0)
    assert obs.ndim == 2 and obs.shape[0] == 16  # flattened dict observation
    for _ in range(5):
        obs, *_ = envs.step(envs.action_space.sample())
    assert obs.shape[0] == 16


# ---------------------------------------------------------------------- shell and toml blocks


def test_every_scalegym_command_in_the_docs_parses() -> None:
    # No page documents a command or flag the CLI does not have.
    parser = build_parser()
    seen = 0
    for page in PAGES:
        for block in shell_blocks((DOCS / page).read_text()):
            for args in cli_commands(block):
                try:
                    parser.parse_args(args)
                except SystemExit:
                    pytest.fail(
                        f"docs/{page}:{block.line}: `scalegym {shlex.join(args)}` does not parse"
                    )
                seen += 1
    assert seen >= 10


def test_suite_blocks_are_valid_suites() -> None:
    from scalegym.suites.spec import parse_suite

    checked = 0
    for page in PAGES:
        for block in blocks((DOCS / page).read_text()):
            if block.lang != "toml" or block.skip or "Walk-v0" in block.body:
                continue  # the tutorial's suite needs its env module: its test runs it
            body = (
                block.body if "[suite]" in block.body else '[suite]\nname = "docs"\n' + block.body
            )
            spec = parse_suite(body.encode(), f"docs/{page}:{block.line}")
            assert spec.cells
            checked += 1
    assert checked >= 3


# ------------------------------------------------------------------------------------ generated


def test_generated_tables_match_the_reference_results(tmp_path: Path) -> None:
    from scalegym.suites import readme_tables

    assert readme_tables.main(["--check"]) == 0
    texts = [p.read_text() for p in readme_tables.pages()]
    for name in readme_tables.TABLES:  # every table is shown somewhere
        assert any(f"<!-- generated: {name} " in text for text in texts), name
    # A number edited by hand in a docs page is caught: the check rebuilds it from the files.
    page = DOCS / "performance.md"
    copy = tmp_path / "performance.md"
    text = page.read_text()
    edited = re.sub(r"(\| `Rearrange-v1` \| )[\d.]+k", r"\g<1>999k", text, count=1)
    assert edited != text
    copy.write_text(edited)
    assert readme_tables.main(["--check", str(copy)]) == 1
    copy.write_text(text)
    assert readme_tables.main(["--check", str(copy)]) == 0


# ------------------------------------------------------------------------------------- tutorial


def _tutorial_steps(text: str) -> list[tuple[str, Any]]:
    """("file", block) / ("python", block) / ("cli", (block, args)) in page order."""
    steps: list[tuple[str, Any]] = []
    for block in blocks(text):
        if block.skip:
            continue
        if block.saved_as:
            steps.append(("file", block))
        elif block.lang == "python":
            steps.append(("python", block))
        elif block.lang in ("bash", "sh"):
            steps += [("cli", (block, args)) for args in cli_commands(block)]
    return steps


def test_tutorial_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command and block of the tutorial, in order, as a reader would run them: the smoke
    suite, the custom env benched, trained and run in a suite, its curves read back."""
    from scalegym.suites import tensorboard

    served: list[Path] = []

    def serve_nothing(log_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> str:
        served.append(Path(log_dir))
        return f"http://{host}:{port or 6006}/"

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    text = (DOCS / "tutorial.md").read_text()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    ran: list[str] = []
    with fresh_folder(tmp_path, monkeypatch) as folder:
        for kind, item in _tutorial_steps(text):
            if kind == "file":
                (folder / item.saved_as).write_text(item.body)
            elif kind == "python":
                exec(compile(item.body, f"docs/tutorial.md:{item.line}", "exec"), namespace)
            else:
                block, args = item
                if args[0] == "tb":  # it serves until Ctrl-C: a stub server, then a Ctrl-C
                    with monkeypatch.context() as patch:
                        patch.setattr(tensorboard, "launch_tensorboard", serve_nothing)
                        patch.setattr("scalegym.cli.suites.time.sleep", interrupt)
                        code = main(args)
                else:
                    code = main(args)
                assert code == 0, f"docs/tutorial.md:{block.line}: scalegym {shlex.join(args)}"
                ran.append(args[0])
        out = capsys.readouterr().out

        assert ran == ["list", "run", "bench", "train", "tb", "run"]
        # 1. The smoke suite: both cells ok, and its PPO cell passed its threshold.
        assert [r["status"] for r in namespace["records"]] == ["ok", "ok"]
        assert namespace["ppo"]["result"]["final"]["success"] >= 0.5
        assert [row["batch_size"] for row in namespace["bench"]["result"]["results"]] == [
            1,
            256,
            4096,
        ]
        # 2. Walk-v0 trained to (near) its optimum of 20, as the page says.
        assert namespace["result"]["final"]["return"] > 18
        assert namespace["obs"].shape == (64, 1) and namespace["reward"] == 1.0
        # 3. The curves read back: eval return rose to the optimum; tb served the run's tb/.
        assert len(namespace["steps"]) >= 2 and namespace["returns"][-1] > 18
        assert namespace["returns"][0] < namespace["returns"][-1]
        assert served == [Path("runs/walk/tb")] and "http://127.0.0.1:6006/" in out
        # 4. The suite of one's own: both cells ok, the PPO cell over its threshold.
        records = [
            json.loads(line)
            for line in (folder / "runs/walk-suite/results.jsonl").read_text().splitlines()
        ]
        assert [(r["cell"], r["status"]) for r in records] == [("bench", "ok"), ("ppo", "ok")]
        assert records[1]["result"]["final"]["return"] >= 18
        assert "pass" in (folder / "runs/walk-suite/report.md").read_text()
