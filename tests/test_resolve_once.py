"""The one resolver: what a `ResolvedEnv` carries, PPO's family defaults attached to the env, and
commands that look their env id up exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import pytest

import scalegym
from scalegym.agents.ppo.config import PPOConfig, default_config
from scalegym.agents.train import training_request
from scalegym.cli import main
from scalegym.core import resolve
from scalegym.core.resolve import resolve_env

# The table `default_config` read before the defaults moved to the envs' registration: a family
# name matched as a prefix of the id without namespace, module and version.
_POMDP = {
    "network": "gru",
    "prev_action_reward": True,
    "num_envs": 64,
    "num_steps": 32,
    "update_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 1e-3,
    "gamma": 1.0,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "hidden": (64,),
    "memory": 64,
}
OLD_FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    "Rearrange": {
        "num_envs": 256,
        "num_steps": 64,
        "update_epochs": 4,
        "num_minibatches": 8,
        "learning_rate": 5e-4,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "hidden": (128, 128),
        "activation": "relu",
    },
    "PaninskiLock": _POMDP,
    "RevealingBandit": _POMDP,
    "PerRoomSecret": _POMDP,
    "Tiger": _POMDP,
    "NoisyCombination": _POMDP,
    "ThreeBody": {
        "num_envs": 64,
        "num_steps": 100,
        "update_epochs": 4,
        "num_minibatches": 4,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "hidden": (64, 64),
        "normalize_obs": True,
        "reward_scale": 1e-3,
    },
}


def old_default_config(env_id: str) -> PPOConfig:
    name = env_id.split(":")[-1].split("/")[-1].rsplit("-v", 1)[0]
    for family, overrides in OLD_FAMILY_CONFIGS.items():
        if name.startswith(family):
            return PPOConfig(**overrides)
    return PPOConfig()


@pytest.mark.parametrize("env_id", [*scalegym.list_envs(), "scalegym/ThreeBodyRebound-v0"])
def test_every_registered_id_keeps_its_ppo_defaults(env_id: str) -> None:
    expected = old_default_config(env_id)
    assert default_config(resolve_env(env_id)) == expected
    if "/" not in env_id:  # the namespaced id is the same env
        assert default_config(resolve_env(f"scalegym/{env_id}")) == expected


def test_peers_and_unknown_families_get_ppo_defaults() -> None:
    assert default_config(resolve_env("gymnax:CartPole-v1")) == PPOConfig()
    assert default_config(resolve_env("CartPole-v1")) == PPOConfig()


def test_resolved_env_carries_source_precision_and_overrides() -> None:
    toy = resolve_env("ToyChain-v0", length=7)
    assert (toy.kind, toy.source, toy.x64, dict(toy.overrides)) == (
        "jax",
        "scalegym",
        False,
        {"length": 7},
    )
    assert resolve_env("gymnax:CartPole-v1").source == "gymnax"
    host = resolve_env("CartPole-v1")
    assert (host.kind, host.source, host.env) == ("host", "gymnasium", None)
    assert resolve_env("scalegym/ThreeBodyRebound-v0").source == "scalegym"

    assert not jax.config.jax_enable_x64
    x64 = resolve_env("ToyChainX64-v0")  # built under x64 without the caller's help
    assert x64.x64 and not jax.config.jax_enable_x64
    with x64.precision():
        assert jax.config.jax_enable_x64
    with toy.precision():
        assert not jax.config.jax_enable_x64
    with resolve.env_precision("ToyChainX64-v0"):
        assert jax.config.jax_enable_x64


def test_with_overrides_rebuilds_without_a_second_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = resolve_env("ToyChain-v0", length=7)
    monkeypatch.setattr(resolve, "_locate", lambda env_id: pytest.fail("looked up again"))
    longer = resolved.with_overrides(slip_prob=0.0)
    assert longer.params.length == 7 and float(longer.params.slip_prob) == 0.0
    assert dict(longer.overrides) == {"length": 7, "slip_prob": 0.0}
    assert longer.id == resolved.id and longer.agent_defaults == resolved.agent_defaults


def test_make_goes_through_the_resolver() -> None:
    _, params = scalegym.make("scalegym/ToyChain-v0", length=6)  # any id resolve_env takes
    assert params.length == 6
    with pytest.raises(ValueError, match="host env"):
        scalegym.make("CartPole-v1")
    with pytest.raises(ValueError, match="retired"):
        scalegym.make("Rearrange-v0")


def test_namespaced_ids_train_like_the_plain_ones() -> None:
    for env_id in ("Rearrange-v1", "scalegym/Rearrange-v1"):
        request = training_request(
            resolve_env(env_id), "ppo", steps=10_000, agent_params={}, num_seeds=1, seed=0
        )
        assert request.config.num_envs == 256 and request.env.id == env_id


# ------------------------------------------------------------------------- one lookup per command


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of `resolve_env` (and of the lookup behind it), by the ids asked for."""
    calls: list[str] = []
    real_resolve, real_locate = resolve.resolve_env, resolve._locate

    def counting_resolve(env_id: str, **overrides: Any) -> Any:
        calls.append(env_id)
        return real_resolve(env_id, **overrides)

    def counting_locate(env_id: str) -> Any:
        calls.append(f"lookup:{env_id}")
        return real_locate(env_id)

    monkeypatch.setattr(resolve, "resolve_env", counting_resolve)
    monkeypatch.setattr(resolve, "_locate", counting_locate)
    return calls


def test_train_resolves_its_env_once(
    lookups: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "ToyChain-v0", "--steps", "512", "--agent-set", "num_envs=16"]
    argv += ["--agent-set", "num_steps=16", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.splitlines()[0])["steps"] == 512
    assert lookups == ["ToyChain-v0", "lookup:ToyChain-v0"]


def test_bench_resolves_its_env_once(
    lookups: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "ToyChainX64-v0", "--batch-sizes", "1", "--steps", "4", "--repeats", "1"]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["x64"] is True
    assert lookups == ["ToyChainX64-v0", "lookup:ToyChainX64-v0"]


def test_plan_resolves_its_env_once(lookups: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "ToyChain-v0", "--planner", "beam", "--budget", "4", "--episodes", "2"]
    assert main([*argv, "--json"]) == 0
    assert lookups == ["ToyChain-v0", "lookup:ToyChain-v0"]


def test_a_suite_looks_each_env_id_up_once_from_validation_to_the_run(
    lookups: list[str], tmp_path: Path
) -> None:
    """Validation builds each cell's envs (a train cell's request too); the run takes those same
    objects. A search cell on the namespaced id validates and runs like the plain one."""
    from scalegym.suites.runner import run_suite
    from scalegym.suites.spec import parse_suite

    suite = b"""
[suite]
name = "once"

[[cell]]
name = "bench"
kind = "bench"
env = "ToyChainX64-v0"
batch_sizes = [2]
steps = 4
repeats = 1

[[cell]]
name = "train"
kind = "train"
agent = "ppo"
env = "ToyChain-v0"
steps = 256
agent_params = { num_envs = 8, num_steps = 16, num_minibatches = 2 }

[[cell]]
name = "search"
kind = "search"
env = "scalegym/Rearrange-v1"
env_params = { height = 5, width = 5 }
planner = "random-shooting"
budgets = [4]
planner_params = { horizon = 2 }
episodes = 1
max_steps = 2
"""
    spec = parse_suite(suite, "once.toml")
    run_dir = run_suite(spec, out_dir=tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] * 3, [r.get("error") for r in records]
    assert records[0]["result"]["x64"] is True  # the float64 env ran under its own precision
    looked_up = [call for call in lookups if call.startswith("lookup:")]
    assert looked_up == [
        "lookup:ToyChainX64-v0",
        "lookup:ToyChain-v0",
        "lookup:scalegym/Rearrange-v1",
    ]


def test_a_train_cell_s_config_is_checked_as_the_run_builds_it() -> None:
    from scalegym.suites.spec import SuiteError, parse_suite

    suite = b"""
[suite]
name = "bad"

[[cell]]
name = "train"
kind = "train"
agent = "ppo"
env = "ToyChain-v0"
steps = 256
agent_params = { num_envs = 8, num_steps = 16, num_minibatches = 3 }
"""
    with pytest.raises(
        SuiteError, match=r'cell\[0\] "train": field "agent_params": .*num_minibatches'
    ):
        parse_suite(suite, "bad.toml")
