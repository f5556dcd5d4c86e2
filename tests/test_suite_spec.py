"""Suite files: the shipped suites load; malformed ones fail before any work with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalegym.cli import main
from scalegym.suites.cells import BenchCell, TrainCell
from scalegym.suites.spec import SuiteError, load_suite, parse_suite, shipped_suites

HEADER = '[suite]\nname = "t"\ndescription = "test"\n'
BENCH = """
[[cell]]
name = "b"
kind = "bench"
env = "Rearrange-v1"
batch_sizes = [1, 4]
"""
TRAIN = """
[[cell]]
name = "x"
kind = "train"
env = "Rearrange-v1"
agent = "ppo"
steps = 1000
"""


def test_shipped_suites_load() -> None:
    assert {"smoke", "rearrange"} <= set(shipped_suites())
    smoke = load_suite("smoke")
    assert smoke.name == "smoke" and len(smoke.sha256) == 64
    kinds = [cell.kind for cell in smoke.cells]
    assert kinds == ["bench", "train"]
    rearrange = load_suite("rearrange")
    train = [c for c in rearrange.cells if isinstance(c, TrainCell)]
    assert {c.env for c in train} == {"Rearrange-v1", "RearrangePick-v1"}
    assert all(c.seeds == 3 and c.threshold == 0.9 for c in train)  # seeds from [suite]


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("benchmarks/*.toml")))
def test_the_benchmark_suites_load(path: Path) -> None:
    suite = load_suite(str(path))  # every env id known, every field valid
    assert suite.cells
    if "gpu" in path.name:  # one short device run: throughput and training only
        assert all(cell.kind in {"bench", "train"} for cell in suite.cells)


def test_sps_suite_benches_every_scalegym_env_beside_the_peers() -> None:
    import scalegym

    sps = load_suite("sps")
    assert {cell.kind for cell in sps.cells} == {"bench", "train"}
    bench = [cell for cell in sps.cells if cell.kind == "bench"]
    envs = {cell.env for cell in bench}
    shipped = {e for e in scalegym.list_envs() if not e.startswith("ToyChain")}  # tests' toys
    assert shipped <= envs
    assert {"xminigrid:MiniGrid-DoorKey-8x8", "navix:Navix-Empty-8x8-v0"} <= envs
    assert {"gymnax:FourRooms-misc", "gymnax:CartPole-v1"} <= envs
    host = [cell for cell in bench if cell.env == "scalegym/ThreeBodyRebound-v0"]
    assert all(
        1 in cell.batch_sizes and 64 in cell.batch_sizes for cell in bench if cell not in host
    )
    assert all(65536 in c.batch_sizes for c in bench if "ThreeBody" not in c.env)
    assert {cell.env for cell in sps.cells if cell.kind == "train"} == {
        "Rearrange-v1",
        "gymnax:CartPole-v1",
        "ThreeBody-v0",
    }


def test_sps_suite_puts_threebody_beside_rebound_at_the_same_fixed_mu() -> None:
    from scalegym.envs.threebody.rules import MU_ACTIONS

    sps = load_suite("sps")
    fixed = [c for c in sps.cells if c.kind == "bench" and c.action is not None]
    by_mu: dict[float, set[str]] = {}
    for cell in fixed:
        integrator = cell.env_params.get("integrator", "ias15")
        name = "hermite" if cell.env == "ThreeBody-v0" else integrator
        by_mu.setdefault(MU_ACTIONS[cell.action], set()).add(name)
        assert cell.note  # the table says what each row's work is
    assert set(by_mu) == {MU_ACTIONS[6], MU_ACTIONS[3]}
    assert MU_ACTIONS[6] == pytest.approx(1e-2) and MU_ACTIONS[3] == pytest.approx(1e-3)
    assert all(names == {"hermite", "leapfrog", "whfast", "ias15"} for names in by_mu.values())
    rebound = [c for c in fixed if c.env != "ThreeBody-v0"]
    ias15 = [c.note for c in rebound if c.env_params.get("integrator", "ias15") == "ias15"]
    assert len(ias15) == 2 and all("different work" in note for note in ias15)


def test_a_fixed_action_outside_the_env_s_actions_is_refused() -> None:
    source = (HEADER + BENCH.replace('"Rearrange-v1"', '"ThreeBody-v0"') + "action = 10\n").encode()
    with pytest.raises(SuiteError) as err:
        parse_suite(source, "mine.toml")
    (message,) = err.value.errors
    assert 'cell[0] "b": field "action"' in message and "allowed: 0..9" in message
    spec = parse_suite(source.replace(b"action = 10", b"action = 9"), "mine.toml")
    assert spec.cells[0].action == 9


def test_full_suite_runs_every_shipped_suite_with_prefixed_names() -> None:
    full = load_suite("full", check_envs=False)
    included = ["smoke", "sps", "rearrange", "threebody", "pomdp-scaling", "search-scaling"]
    expected = [f"{name}.{cell.name}" for name in included for cell in load_suite(name).cells]
    assert [cell.name for cell in full.cells] == expected
    (search,) = [c for c in full.cells if getattr(c, "checkpoint", "").startswith("cell:")]
    assert search.checkpoint == "cell:search-scaling.ppo-rearrange-5x5"  # its own train cell
    assert set(shipped_suites()) - {"full", "pomdp-scaling-small"} == set(included)


def test_include_names_what_it_may_include() -> None:
    source = b'[suite]\nname = "mine"\ninclude = ["smoke", "nope", "mine"]\n'
    with pytest.raises(SuiteError) as err:
        parse_suite(source, "mine.toml", check_envs=False)
    text = "\n".join(err.value.errors)
    assert "'nope' is not a shipped suite" in text and "'mine' is not" in text
    assert "allowed: full, pomdp-scaling" in text
    spec = parse_suite(source.replace(b', "nope", "mine"', b""), "mine.toml", check_envs=False)
    assert [c.name for c in spec.cells] == ["smoke.bench-rearrange", "smoke.ppo-rearrange-5x5"]


def test_defaults_and_types(tmp_path: Path) -> None:
    text = (
        HEADER
        + "seeds = 2\nseed = 7\n"
        + BENCH
        + TRAIN.replace(
            "steps = 1000", "steps = 1_000\nseeds = 3\nagent_params = { hidden = [8, 8] }"
        )
    )
    path = tmp_path / "ok.toml"
    path.write_text(text)
    spec = load_suite(path)
    bench, train = spec.cells
    assert isinstance(bench, BenchCell) and bench.batch_sizes == (1, 4)
    assert (bench.steps, bench.repeats, bench.seed) == (256, 5, 7)
    assert isinstance(train, TrainCell)
    assert (train.steps, train.seeds, train.seed) == (1000, 3, 7)
    assert train.agent_params == {"hidden": (8, 8)}  # TOML arrays become tuples
    assert train.threshold is None and train.threshold_on == "success"
    assert spec.source == path.read_bytes()


BAD_CASES = {
    "unknown kind": (
        HEADER + TRAIN.replace('kind = "train"', 'kind = "trian"'),
        ['cell[0] "x"', 'field "kind"', 'unknown kind "trian"', "allowed: bench, train"],
    ),
    "missing field": (
        HEADER + TRAIN.replace("steps = 1000\n", ""),
        ['cell[0] "x"', 'missing field "steps"'],
    ),
    "wrong type str": (
        HEADER + TRAIN.replace("steps = 1000", 'steps = "1000"'),
        ['cell[0] "x"', 'field "steps"', "expected an integer", "str"],
    ),
    "wrong type float": (
        HEADER + TRAIN.replace("steps = 1000", "steps = 1e6"),
        ['field "steps"', "expected an integer", "float"],
    ),
    "wrong type list": (
        HEADER + BENCH.replace("batch_sizes = [1, 4]", "batch_sizes = 64"),
        ['cell[0] "b"', 'field "batch_sizes"', "list of integers"],
    ),
    "non-positive": (
        HEADER + BENCH.replace("batch_sizes = [1, 4]", "batch_sizes = [0, 4]"),
        ['field "batch_sizes"', ">= 1"],
    ),
    "unknown env id": (
        HEADER + TRAIN.replace("Rearrange-v1", "Rearange-v0"),
        ['cell[0] "x"', 'field "env"', "Rearange-v0", "did you mean", "Rearrange-v1"],
    ),
    "bad env param": (
        HEADER + TRAIN + "env_params = { height = 2 }\n",
        ['cell[0] "x"', 'field "env_params"', "height", "5..64"],
    ),
    "unknown field": (
        HEADER + TRAIN + "stepz = 5\n",
        ['cell[0] "x"', 'unknown field "stepz"', "allowed:", "steps"],
    ),
    "duplicate name": (
        HEADER + TRAIN + TRAIN,
        ['cell[1] "x"', 'field "name"', "already used by cell[0]"],
    ),
    "unknown agent": (
        HEADER + TRAIN.replace('agent = "ppo"', 'agent = "dqn"'),
        ['field "agent"', '"dqn"', "allowed: ppo"],
    ),
    "unknown agent param": (
        HEADER + TRAIN + "agent_params = { lr = 0.1 }\n",
        ['field "agent_params"', '"lr"', "learning_rate"],
    ),
    "agent param type": (
        HEADER + TRAIN + 'agent_params = { num_envs = "many" }\n',
        ['field "agent_params"', '"num_envs"', "int"],
    ),
    "bad threshold metric": (
        HEADER + TRAIN + 'threshold = 0.5\nthreshold_on = "speed"\n',
        ['field "threshold_on"', "allowed: success, return"],
    ),
    "missing suite table": (TRAIN, ["[suite]", "missing table"]),
    "suite field type": (
        HEADER.replace('"test"', "3") + TRAIN,
        ["[suite]", 'field "description"', "a string"],
    ),
    "no cells": (HEADER, ["no [[cell]] tables"]),
    "invalid toml": (HEADER + "[[cell]\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_suite_fails_before_any_work(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text, needles = BAD_CASES[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)  # the default run directory would appear under results/
    code = main(["run", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("scalegym: error:") and "Traceback" not in err
    assert str(path) in err  # the file ...
    for needle in needles:  # ... the table, the field and the allowed values
        assert needle in err, (needle, err)
    assert out == ""
    assert not (tmp_path / "results").exists()


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = HEADER + TRAIN.replace("steps = 1000", 'steps = "x"') + BENCH + "repeats = 0\n"
    with pytest.raises(SuiteError) as caught:
        parse_suite(text.encode(), "many.toml")
    assert len(caught.value.errors) == 2
    assert all(e.startswith("many.toml: cell[") for e in caught.value.errors)


def test_schema_env_and_range_mistakes_in_one_pass() -> None:
    # A typo'd field, an unknown env id and an out-of-range threshold, in three cells: all three
    # are reported at once (the env check used to run only once the schema was clean).
    text = (
        HEADER
        + BENCH
        + "repeat = 3\n"
        + TRAIN.replace('name = "x"', 'name = "y"').replace("Rearrange-v1", "Rearange-v0")
        + TRAIN.replace('name = "x"', 'name = "z"')
        + 'threshold = 2.0\nthreshold_on = "success"\n'
    )
    with pytest.raises(SuiteError) as caught:
        parse_suite(text.encode(), "three.toml")
    errors = caught.value.errors
    assert len(errors) == 3, errors
    assert '"repeat"' in errors[0] and "repeats" in errors[0]
    assert any('cell[1] "y": field "env"' in e and "Rearrange-v1" in e for e in errors)
    assert any('cell[2] "z": field "threshold"' in e for e in errors)


def test_unknown_suite_name_lists_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "smok"]) == 2
    err = capsys.readouterr().err
    assert "unknown suite 'smok'" in err and "smoke" in err and "rearrange" in err


def test_missing_suite_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such suite file" in capsys.readouterr().err
