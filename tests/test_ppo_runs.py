"""Whole PPO runs: determinism, seeds under vmap, the GRU and CNN policies learning, resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.agents.ppo.algorithm import make_ppo, make_train
from scalegym.agents.ppo.config import PPOConfig, default_config
from scalegym.agents.ppo.evaluation import evaluate_policy
from scalegym.agents.ppo.networks import RecurrentActorCritic
from scalegym.agents.train import train_agent, training_request
from scalegym.core.resolve import resolve_env

# A run small enough to compile in seconds: 3 updates of 4 envs x 16 steps.
TINY = dict(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2)
SMALL_REARRANGE = dict(height=5, width=5, wall_density=0.0)
# Long enough to learn the toy chain or a 5x5 room: 40 updates of 16 envs x 16 steps.
LEARN = dict(num_envs=16, num_steps=16, total_timesteps=16 * 16 * 40, num_minibatches=4)


def test_make_train_is_deterministic_per_key() -> None:
    env, params = scalegym.make("ToyChain-v0")
    config = PPOConfig(**TINY)
    run_a = jax.jit(make_train(env, params, config))
    run_b = jax.jit(make_train(env, params, config))  # a fresh trace and compile
    _, metrics_a = run_a(jax.random.key(3))
    _, metrics_b = run_b(jax.random.key(3))
    _, metrics_c = run_a(jax.random.key(4))
    assert set(metrics_a) >= {"loss", "actor_loss", "value_loss", "entropy", "episodes"}
    for name in metrics_a:
        assert metrics_a[name].shape == (config.num_updates,)
        np.testing.assert_array_equal(metrics_a[name], metrics_b[name], err_msg=name)
    assert not np.array_equal(metrics_a["loss"], metrics_c["loss"])
    assert float(metrics_a["episodes"].sum()) > 0  # ToyChain episodes are short


def test_vmapped_seeds_train_in_one_call_as_each_seed_alone() -> None:
    env, params = scalegym.make("ToyChain-v0")
    config = PPOConfig(**TINY)  # test_make_train_is_deterministic_per_key's run: one compile
    keys = jax.random.split(jax.random.key(0), 2)
    train = make_train(env, params, config)
    batched_train = jax.jit(jax.vmap(train))
    # The hang this guards against is jaxlib's batched LAPACK QR deadlocking on a 2-thread pool
    # under vmap (networks.orthogonal). It is found by what the program contains, not by a clock:
    # the compiled vmapped run must hold no QR at all.
    compiled = batched_train.lower(keys).compile()
    hlo = compiled.as_text().lower()
    assert not any(name in hlo for name in ("geqrf", "householder", "orgqr", "lapack")), [
        line for line in hlo.splitlines() if "custom-call" in line
    ][:5]
    _, batched = jax.block_until_ready(compiled(keys))
    _, single = jax.block_until_ready(jax.jit(train)(keys[1]))
    assert batched["loss"].shape == (2, 3)
    assert np.isfinite(batched["loss"]).all()
    assert not np.allclose(batched["loss"][0], batched["loss"][1])  # seeds differ
    # Seed 1 of the batch is the same run as training seed 1 alone.
    for name, value in single.items():
        np.testing.assert_allclose(batched[name][1], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_recurrent_network_resets_its_carry_at_episode_starts() -> None:
    network = RecurrentActorCritic(num_actions=3, hidden=(8,), memory=8)
    t, b = 4, 3
    obs = jax.random.normal(jax.random.key(0), (t, b, 5))
    starts = np.zeros((t, b), bool)
    starts[0, 0] = True  # lane 0 starts an episode at t=0
    starts[2, 1] = True  # lane 1 at t=2; lane 2 continues throughout
    starts = jnp.asarray(starts)
    carry_a = jax.random.normal(jax.random.key(1), (b, 8))
    carry_b = jax.random.normal(jax.random.key(2), (b, 8))
    params = network.init(jax.random.key(3), carry_a, obs, starts)
    end_a, logits_a, values_a = network.apply(params, carry_a, obs, starts)
    end_b, logits_b, values_b = network.apply(params, carry_b, obs, starts)
    assert logits_a.shape == (t, b, 3) and values_a.shape == (t, b)

    def same(x, y) -> bool:
        return bool(np.allclose(x, y, atol=1e-6))

    # From a start on, outputs do not depend on the carry passed in.
    assert same(values_a[:, 0], values_b[:, 0]) and same(logits_a[:, 0], logits_b[:, 0])
    assert same(values_a[2:, 1], values_b[2:, 1]) and same(end_a[1], end_b[1])
    # Before a start, and on a lane that never starts, they do.
    assert not same(values_a[:2, 1], values_b[:2, 1])
    assert not same(values_a[:, 2], values_b[:, 2]) and not same(end_a[2], end_b[2])
    # A start resets to zeros: the same as passing a zero carry.
    _, _, values_zero = network.apply(params, jnp.zeros((b, 8)), obs, starts)
    assert same(values_zero[:, 0], values_a[:, 0])


def train_and_evaluate(env_id: str, env_overrides: dict, config: PPOConfig) -> tuple:
    """(runner, metrics, (return, success) before training, (return, success) after), evaluated
    as train_agent does: the sampled policy on 64 fresh envs, first episodes."""
    env, params = scalegym.make(env_id, **env_overrides)
    ppo = make_ppo(env, params, config)
    run = jax.jit(lambda r, k: evaluate_policy(ppo, r, k, params))

    def evaluate(runner) -> tuple[float, float]:
        out = {k: float(v) for k, v in run(runner, jax.random.key(9)).items()}
        episodes = max(out["episodes"], 1.0)
        return out["return_sum"] / episodes, out.get("success_sum", 0.0) / episodes

    # ppo.train(key) is these updates from ppo.init(key); started from the runner evaluated
    # before, the init is compiled once instead of a second time inside the training program.
    start = jax.jit(ppo.init)(jax.random.key(0))
    before = evaluate(start)
    updates = lambda r: jax.lax.scan(lambda r, _: ppo.update(r), r, None, config.num_updates)
    runner, metrics = jax.jit(updates)(start)
    return runner, metrics, before, evaluate(runner)


@pytest.mark.slow  # beyond one learning test per env family: make test-all
def test_gru_ppo_learns_the_toy_chain() -> None:
    # ToyChain: +1 at the right end, -0.1 a step. Going right from cells 0..2 returns 0.6..0.8
    # (less slips); a fresh policy wanders and scores about 0.3.
    config = PPOConfig(network="gru", memory=16, hidden=(16,), learning_rate=3e-3, **LEARN)
    runner, metrics, (before, _), (after, _) = train_and_evaluate("ToyChain-v0", {}, config)
    assert runner.carry.shape == (16, 16) and "gru" in runner.train_state.params["params"]
    assert np.isfinite(metrics["loss"]).all()
    assert after > before + 0.2 and after > 0.55, (before, after)


def test_cnn_torso_convolves_the_view_and_sees_where_things_are() -> None:
    # The CNN's learning test is marked slow; this checks the network itself, forward only.
    from scalegym.agents.ppo.policy import build_network

    env, params = scalegym.make("Rearrange-v1", **SMALL_REARRANGE)
    config = default_config(resolve_env("Rearrange-v1")).replace(network="cnn", hidden=(32,))
    network = build_network(config, env.action_space(params).n)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 4), params)
    variables = network.init(jax.random.key(1), obs)
    torso = variables["params"]["actor_torso"]
    assert {"Conv_0", "Conv_1"} <= set(torso)
    view = obs["view"].shape[-3:]  # [V, V, C]
    assert torso["Conv_0"]["kernel"].shape == (3, 3, view[-1], 16)
    apply = jax.jit(network.apply)  # one program for both views
    logits, values = apply(variables, obs)
    assert logits.shape == (4, env.action_space(params).n) and values.shape == (4,)
    # The view feeds the output: a different view changes the logits.
    other = {**obs, "view": jnp.roll(obs["view"], 1, axis=1)}
    assert not np.allclose(apply(variables, other)[0], logits)


@pytest.mark.slow  # beyond one learning test per env family: make test-all
def test_cnn_ppo_learns_small_rearrange() -> None:
    # A 5x5 open room, seed 0: success of the sampled policy 0.03 before; after 40 / 60 / 80
    # updates of 16 x 16 steps, 0.70 / 1.0 / 1.0 (2026-11-29). 80 updates (20k steps) leaves margin.
    learn = dict(LEARN, total_timesteps=16 * 16 * 80)
    config = default_config(resolve_env("Rearrange-v1")).replace(
        network="cnn", hidden=(32,), learning_rate=1e-3, **learn
    )
    runner, _, (_, before), (_, after) = train_and_evaluate("Rearrange-v1", SMALL_REARRANGE, config)
    torso = runner.train_state.params["params"]["actor_torso"]
    assert {"Conv_0", "Conv_1"} <= set(torso)
    assert before < 0.2 and after > 0.8, (before, after)


# ---------------------------------------------------------------------------------------------
# Checkpoint and resume (train_agent)
# ---------------------------------------------------------------------------------------------

CHECKPOINT_ENV = "ToyChain-v0"  # the cheapest env to compile: these tests are about the driver
# 6 updates of 16 envs x 16 steps, 2 seeds: the run test_trained_policy.py and the CLI's
# one-writer test (test_cli_edges.py) make too, so all compile the same programs once.
CHECKPOINT_STEPS, CHECKPOINT_PPO = 16 * 16 * 6, dict(num_envs=16, num_steps=16)


def checkpoint_run(directory, resume=False, **agent_params):  # type: ignore[no-untyped-def]
    """The request of the checkpoint tests' run (other `agent_params` make another run)."""
    return training_request(
        resolve_env(CHECKPOINT_ENV),
        "ppo",
        steps=CHECKPOINT_STEPS,
        agent_params=agent_params or CHECKPOINT_PPO,
        num_seeds=2,
        seed=0,
        checkpoint_dir=directory,
        resume=resume,
    )


class Interrupted(Exception):
    pass


def without_timing(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in point.items() if k != "perf/sps"} for point in curve]


def test_checkpoint_resume_continues_the_same_run(tmp_path) -> None:
    whole = train_agent(checkpoint_run(tmp_path / "whole"), progress=False)
    assert len(whole.curve) == 6
    # Every chunk says how many training episodes its train/* means are taken over.
    counts = [point["train/episodes"] for point in whole.curve]
    assert all(c == int(c) and c >= 0 for c in counts) and sum(counts) > 0
    assert all(("train/return" in p) == (p["train/episodes"] > 0) for p in whole.curve)
    assert (tmp_path / "whole" / "state.msgpack").exists()
    progress = json.loads((tmp_path / "whole" / "progress.json").read_text())
    assert progress["updates"] == 6 and len(progress["curve"]) == 6

    # Interrupt after 3 chunks: the log callback runs before that chunk's checkpoint is written.
    def stop_at_third(step: int, scalars: dict) -> None:
        if step >= 3 * 256:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_agent(checkpoint_run(tmp_path / "cut"), log=stop_at_third, progress=False)
    assert json.loads((tmp_path / "cut" / "progress.json").read_text())["updates"] == 2

    resumed = train_agent(checkpoint_run(tmp_path / "cut", resume=True), progress=False)
    # The restored runner (keys included) continues exactly where the interrupted run stopped.
    assert [p["step"] for p in resumed.curve] == [256 * (i + 1) for i in range(6)]
    assert without_timing(resumed.curve) == without_timing(whole.curve)
    assert resumed.final.eval_success == whole.final.eval_success
    assert (tmp_path / "cut" / "state.msgpack").read_bytes() == (
        tmp_path / "whole" / "state.msgpack"
    ).read_bytes()

    # Resuming a finished run does no more updates.
    again = train_agent(checkpoint_run(tmp_path / "whole", resume=True), progress=False)
    assert without_timing(again.curve) == without_timing(whole.curve)
    # It reports the finished run's numbers (saved with the checkpoint), not a fresh measurement.
    assert again.final == whole.final and again.sps == whole.sps
    assert again.compile_s == whole.compile_s
    assert json.loads((tmp_path / "whole" / "progress.json").read_text())["updates"] == 6


def test_resume_from_a_checkpoint_of_another_run_names_what_differs(tmp_path) -> None:
    train_agent(checkpoint_run(tmp_path), progress=False)
    other = checkpoint_run(tmp_path, resume=True, num_envs=32, num_steps=16)
    with pytest.raises(ValueError, match=r"config\.num_envs"):
        train_agent(other, progress=False)
