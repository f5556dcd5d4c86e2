"""Known-answer tests for PPO's parts: GAE, the loss, the initializer, config, obs norm, runs."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_envs  # noqa: F401  (registers ToyChain-v0)

import scalegym
from scalegym.agents.networks import RecurrentActorCritic, orthogonal
from scalegym.agents.normalization import init_obs_norm, update_obs_norm
from scalegym.agents.ppo import (
    PPOConfig,
    Transition,
    build_network,
    calculate_gae,
    make_apply,
    make_ppo,
    make_train,
    ppo_loss,
)
from scalegym.agents.train import train_agent

# A run small enough to compile in seconds: 3 updates of 4 envs x 16 steps.
TINY = dict(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2)
SMALL_REARRANGE = dict(height=5, width=5, wall_density=0.0)


def transition(**columns) -> Transition:
    """A [T, E] Transition from per-field nested lists; obs/starts/action/log_prob are dummies."""
    f = {k: jnp.asarray(v, jnp.float32) for k, v in columns.items() if k not in ("term", "trunc")}
    shape = f["reward"].shape
    return Transition(
        obs=jnp.zeros((*shape, 1)),
        starts=jnp.zeros(shape, bool),
        action=jnp.zeros(shape, jnp.int32),
        log_prob=jnp.zeros(shape),
        value=f["value"],
        reward=f["reward"],
        terminated=jnp.asarray(columns["term"], bool),
        truncated=jnp.asarray(columns["trunc"], bool),
        final_value=f["final_value"],
    )


# ---------------------------------------------------------------------------------------------
# calculate_gae
# ---------------------------------------------------------------------------------------------

GAMMA, LAMBDA = 0.9, 0.8  # gamma * lambda = 0.72


def test_gae_termination_and_truncation_hand_computed() -> None:
    # Rows are time t = 0, 1, 2; column 0 terminates at t=1, column 1 is truncated at t=1.
    traj = transition(
        reward=[[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]],
        value=[[0.5, 2.0], [1.0, 1.0], [1.5, 0.5]],
        # final_value[t] = V(s_{t+1}), or V(last real obs) where the episode ended at t.
        # 100.0 at the terminated step must be ignored; 4.0 at the truncated step must be used
        # (and differs from value[2] = 0.5, the first value of the next episode).
        final_value=[[1.0, 1.0], [100.0, 4.0], [2.0, 0.0]],
        term=[[False, False], [True, False], [False, False]],
        trunc=[[False, False], [False, True], [False, False]],
    )
    adv, targets = calculate_gae(traj, GAMMA, LAMBDA)

    # Column 0 (termination at t=1):
    #   d0 = 1 + 0.9*1.0 - 0.5 = 1.4
    #   d1 = 2 + 0 (terminated: no bootstrap) - 1.0 = 1.0
    #   d2 = 3 + 0.9*2.0 - 1.5 = 3.3
    #   A2 = 3.3;  A1 = d1 = 1.0 (recursion cut);  A0 = 1.4 + 0.72*1.0 = 2.12
    # Column 1 (truncation at t=1):
    #   d0 = 0 + 0.9*1.0 - 2.0 = -1.1
    #   d1 = 1 + 0.9*4.0 - 1.0 = 3.6 (bootstraps from the last real obs)
    #   d2 = -1 + 0.9*0.0 - 0.5 = -1.5
    #   A2 = -1.5;  A1 = d1 = 3.6 (recursion cut);  A0 = -1.1 + 0.72*3.6 = 1.492
    expected_adv = np.array([[2.12, 1.492], [1.0, 3.6], [3.3, -1.5]])
    np.testing.assert_allclose(adv, expected_adv, rtol=1e-6, atol=1e-6)
    # Targets are advantages plus the behaviour values.
    expected_targets = expected_adv + np.array([[0.5, 2.0], [1.0, 1.0], [1.5, 0.5]])
    np.testing.assert_allclose(targets, expected_targets, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(expected_targets, [[2.62, 3.492], [2.0, 4.6], [4.8, -1.0]])


def test_gae_continuing_steps_chain_with_gamma_lambda() -> None:
    traj = transition(
        reward=[[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]],
        value=[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]],
        final_value=[[2.0, 0.0], [3.0, 0.0], [5.0, 10.0]],  # V(s_{t+1}); the last bootstraps
        term=[[False] * 2] * 3,
        trunc=[[False] * 2] * 3,
    )
    adv, targets = calculate_gae(traj, GAMMA, LAMBDA)
    # Column 0: d0 = 1 + 0.9*2 - 1 = 1.8;  d1 = 0 + 0.9*3 - 2 = 0.7;  d2 = 2 + 0.9*5 - 3 = 3.5
    #   A2 = 3.5;  A1 = 0.7 + 0.72*3.5 = 3.22;  A0 = 1.8 + 0.72*3.22 = 4.1184
    # Column 1: d0 = 0;  d1 = 0;  d2 = 1 + 0.9*10 - 0 = 10
    #   A2 = 10;  A1 = 0.72*10 = 7.2;  A0 = 0.72*7.2 = 5.184
    expected_adv = np.array([[4.1184, 5.184], [3.22, 7.2], [3.5, 10.0]])
    np.testing.assert_allclose(adv, expected_adv, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(targets, expected_adv + np.asarray(traj.value), rtol=1e-6)


def test_gae_with_lambda_one_gives_discounted_returns_minus_values() -> None:
    # With lambda = 1 and no episode end, A_t + V_t is the bootstrapped discounted return.
    traj = transition(
        reward=[[1.0], [2.0], [3.0]],
        value=[[0.3], [0.2], [0.1]],
        final_value=[[0.2], [0.1], [4.0]],
        term=[[False]] * 3,
        trunc=[[False]] * 3,
    )
    _, targets = calculate_gae(traj, 0.5, 1.0)
    # G2 = 3 + 0.5*4 = 5;  G1 = 2 + 0.5*5 = 4.5;  G0 = 1 + 0.5*4.5 = 3.25
    np.testing.assert_allclose(targets[:, 0], [3.25, 4.5, 5.0], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# ppo_loss
# ---------------------------------------------------------------------------------------------


LOSS_CONFIG = PPOConfig(hidden=(16, 16), clip_eps=0.2, vf_coef=0.5, ent_coef=0.01)


@functools.cache
def behaviour_policy():
    """A small MLP ActorCritic, its params, and its outputs on a [T=4, E=5] batch of obs."""
    network = build_network(LOSS_CONFIG, num_actions=3)
    apply = make_apply(network, recurrent=False)
    k_obs, k_net, k_act, k_adv, k_tgt = jax.random.split(jax.random.key(0), 5)
    obs = jax.random.normal(k_obs, (4, 5, 6))  # [T, E, F]
    starts = jnp.zeros((4, 5), bool)
    params = jax.jit(network.init)(k_net, obs[0])
    _, logits, values = jax.jit(apply)(params, jnp.zeros((5, 1)), obs, starts)
    action = jax.random.categorical(k_act, logits).astype(jnp.int32)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], -1)[..., 0]
    advantages = jax.random.normal(k_adv, (4, 5)) * 2.0 + 0.5
    targets = values + jax.random.normal(k_tgt, (4, 5))
    return params, apply, obs, starts, action, log_prob, advantages, targets, logits, values


def behaviour_loss(old_value_offset: float = 0.0, old_log_prob_offset: float = 0.0):
    """`ppo_loss` metrics on the behaviour batch, with the stored old values/log-probs shifted."""
    params, apply, obs, starts, action, log_prob, adv, targets, _, values = behaviour_policy()
    zeros = jnp.zeros((4, 5))
    batch = Transition(
        obs=obs,
        starts=starts,
        action=action,
        log_prob=log_prob + old_log_prob_offset,
        value=values + old_value_offset,
        reward=zeros,
        terminated=zeros.astype(bool),
        truncated=zeros.astype(bool),
        final_value=zeros,
    )
    return ppo_loss(params, apply, jnp.zeros((5, 1)), batch, adv, targets, LOSS_CONFIG)


def test_ppo_loss_at_the_behaviour_policy() -> None:
    # Old values 0.1 below the new ones: inside clip_eps = 0.2, so value clipping is inactive.
    total, m = behaviour_loss(old_value_offset=-0.1)
    *_, targets, logits, values = behaviour_policy()

    assert float(m["clip_frac"]) == 0.0
    assert abs(float(m["approx_kl"])) < 1e-6
    # ratio == 1, so the surrogate is -mean(normalised advantages) == 0.
    assert abs(float(m["actor_loss"])) < 1e-6
    v, t = np.asarray(values), np.asarray(targets)
    np.testing.assert_allclose(m["value_loss"], 0.5 * np.mean((v - t) ** 2), rtol=1e-5)
    p = np.asarray(jax.nn.softmax(logits))
    entropy = -(p * np.log(p)).sum(-1).mean()
    np.testing.assert_allclose(m["entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(
        total, m["actor_loss"] + 0.5 * m["value_loss"] - 0.01 * m["entropy"], rtol=1e-5
    )
    # A near-uniform initial policy over 3 actions (the 0.01-scaled head).
    assert abs(entropy - np.log(3)) < 1e-3


def test_ppo_loss_value_clipping_outside_the_trust_region() -> None:
    # Old values 1.0 below: the clipped prediction is old + 0.2 = v - 0.8.
    _, m = behaviour_loss(old_value_offset=-1.0)
    *_, targets, _, values = behaviour_policy()
    v, t = np.asarray(values), np.asarray(targets)
    expected = 0.5 * np.mean(np.maximum((v - t) ** 2, (v - 0.8 - t) ** 2))
    np.testing.assert_allclose(m["value_loss"], expected, rtol=1e-5)
    assert expected > 0.5 * np.mean((v - t) ** 2) + 1e-3  # the clip actually bit


def test_ppo_loss_clips_a_doubled_ratio() -> None:
    # The old policy had half the new probability everywhere: ratio == 2 > 1 + clip_eps.
    _, m = behaviour_loss(old_log_prob_offset=-np.log(2.0))
    adv = np.asarray(behaviour_policy()[6])
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    # min(2A, 1.2A) is 1.2A for positive A and 2A for negative A.
    expected_actor = -np.mean(np.where(a > 0, 1.2 * a, 2.0 * a))
    np.testing.assert_allclose(m["actor_loss"], expected_actor, rtol=1e-5)
    assert float(m["clip_frac"]) == 1.0
    np.testing.assert_allclose(m["approx_kl"], (2.0 - 1.0) - np.log(2.0), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# orthogonal initializer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (5, 5), (3, 8), (3, 3, 4, 16)])
def test_orthogonal_has_orthonormal_columns_or_rows(shape: tuple[int, ...]) -> None:
    w = np.asarray(orthogonal(2.0)(jax.random.key(1), shape), np.float64)
    assert w.shape == shape
    q = w.reshape(-1, shape[-1]) / 2.0  # conv kernels: [kh*kw*in, out]
    rows, cols = q.shape
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-5)
    # The scale multiplies every singular value.
    np.testing.assert_allclose(np.linalg.svd(w.reshape(rows, cols), compute_uv=False), 2.0, 1e-5)


@pytest.mark.parametrize("shape", [(8, 3), (3, 8)])
def test_orthogonal_matches_flax_qr_initializer(shape: tuple[int, ...]) -> None:
    # Gram-Schmidt with positive R diagonal is QR with the signs folded in: the same matrix
    # as flax's initializer for the same key (one QR at a time, so no deadlock risk here).
    key = jax.random.key(7)
    ours = orthogonal(0.5)(key, shape)
    theirs = nn.initializers.orthogonal(0.5)(key, shape)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_orthogonal_is_deterministic_per_key() -> None:
    init = orthogonal()
    a = init(jax.random.key(0), (6, 4))
    np.testing.assert_array_equal(a, init(jax.random.key(0), (6, 4)))
    assert not np.allclose(a, init(jax.random.key(1), (6, 4)))
    assert init(jax.random.key(0), (6, 4), jnp.bfloat16).dtype == jnp.bfloat16


# ---------------------------------------------------------------------------------------------
# PPOConfig
# ---------------------------------------------------------------------------------------------


def test_config_replace_rejects_unknown_fields_listing_allowed() -> None:
    with pytest.raises(ValueError, match="unknown PPO config field") as err:
        PPOConfig().replace(num_env=8, lr=1e-3)
    message = str(err.value)
    assert "lr" in message and "num_env" in message
    assert "allowed:" in message and "num_envs" in message and "learning_rate" in message


def test_config_replace_copies_and_validates() -> None:
    base = PPOConfig()
    changed = base.replace(num_envs=8, hidden=[32])
    assert changed.num_envs == 8 and changed.hidden == (32,)
    assert base.num_envs == 4  # frozen original untouched
    assert changed.batch_size == 8 * 128
    assert changed.num_updates == 500_000 // (8 * 128)
    assert PPOConfig(total_timesteps=10).num_updates == 1  # never zero updates


def test_config_num_minibatches_must_divide_the_batch() -> None:
    with pytest.raises(ValueError, match=r"num_minibatches=4 must divide num_envs \* num_steps=15"):
        PPOConfig().replace(num_envs=3, num_steps=5)
    # Recurrent minibatches split whole env sequences.
    with pytest.raises(ValueError, match=r"num_minibatches=4 must divide num_envs=6"):
        PPOConfig().replace(network="gru", num_envs=6)
    PPOConfig().replace(network="gru", num_envs=8)  # fine


def test_config_bad_values_name_the_field_and_allowed_values() -> None:
    with pytest.raises(ValueError, match="network='transformer': allowed: mlp, cnn, gru"):
        PPOConfig().replace(network="transformer")
    with pytest.raises(ValueError, match="activation='gelu': allowed: tanh, relu"):
        PPOConfig().replace(activation="gelu")
    with pytest.raises(ValueError, match=r"num_envs=0: allowed: integers >= 1"):
        PPOConfig().replace(num_envs=0)
    with pytest.raises(ValueError, match=r"gamma=0.0: allowed: > 0"):
        PPOConfig().replace(gamma=0.0)


# ---------------------------------------------------------------------------------------------
# update_obs_norm
# ---------------------------------------------------------------------------------------------


def test_update_obs_norm_matches_moments_of_the_concatenation() -> None:
    rng = np.random.default_rng(0)
    first = {"a": rng.normal(3.0, 2.0, (16, 5, 3)), "b": rng.normal(-1.0, 0.5, (16, 5))}
    second = {"a": rng.normal(1.0, 4.0, (7, 3)), "b": rng.normal(2.0, 0.1, (7,))}
    as_jnp = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)

    norm = init_obs_norm(as_jnp({"a": second["a"], "b": second["b"]}))  # shapes from [E, ...]
    norm = update_obs_norm(norm, as_jnp(first))  # leaves [T, E, ...]
    norm = update_obs_norm(norm, as_jnp(second))  # leaves [E, ...]

    c0 = 1e-4  # the initial pseudo-count, holding mean 0 and variance 1
    assert float(norm.count) == pytest.approx(16 * 5 + 7 + c0)
    for name in ("a", "b"):
        feature_shape = second[name].shape[1:]
        x = np.concatenate(
            [first[name].reshape(-1, *feature_shape), second[name].reshape(-1, *feature_shape)]
        )
        n = len(x)
        mean = x.sum(0) / (n + c0)
        # The pseudo-sample's squared deviation about the pooled mean: c0 * (1 + mean^2).
        var = (((x - mean) ** 2).sum(0) + c0 * (1.0 + mean**2)) / (n + c0)
        np.testing.assert_allclose(norm.mean[name], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norm.var[name], var, rtol=1e-5, atol=1e-6)
        # And, within the pseudo-count's weight, numpy's moments of the concatenation.
        np.testing.assert_allclose(norm.mean[name], x.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(norm.var[name], x.var(0), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Whole runs: determinism, vmapped seeds, network kinds
# ---------------------------------------------------------------------------------------------


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


VMAPPED_SEEDS = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import scalegym
    from scalegym.agents.ppo import PPOConfig, make_train

    env, params = scalegym.make("Rearrange-v0", height=5, width=5, wall_density=0.0)
    config = PPOConfig(
        num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2, hidden=(32, 32)
    )
    keys = jax.random.split(jax.random.key(0), 2)
    train = make_train(env, params, config)
    _, batched = jax.block_until_ready(jax.jit(jax.vmap(train))(keys))
    _, single = jax.block_until_ready(jax.jit(train)(keys[1]))
    print(json.dumps({
        "batched": {k: np.asarray(v).tolist() for k, v in batched.items()},
        "single": {k: np.asarray(v).tolist() for k, v in single.items()},
    }))
    """
)


def test_vmapped_seeds_train_in_one_call_without_deadlock() -> None:
    # A subprocess, so a regression to the batched-QR deadlock fails here instead of hanging.
    proc = subprocess.run(
        [sys.executable, "-c", VMAPPED_SEEDS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    batched = {k: np.asarray(v) for k, v in out["batched"].items()}
    single = {k: np.asarray(v) for k, v in out["single"].items()}
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


def test_gru_ppo_runs_on_toy_chain() -> None:
    env, params = scalegym.make("ToyChain-v0")
    config = PPOConfig(network="gru", memory=16, hidden=(16,), **TINY)
    ppo = make_ppo(env, params, config)
    runner, metrics = jax.jit(ppo.train)(jax.random.key(0))
    assert runner.carry.shape == (4, 16)
    assert int(runner.update) == 3
    assert float(metrics["episodes"].sum()) > 0
    for name in ("loss", "actor_loss", "value_loss", "entropy", "approx_kl"):
        assert np.isfinite(metrics[name]).all(), name
    assert "gru" in runner.train_state.params["params"]


def test_cnn_ppo_runs_on_rearrange_dict_obs() -> None:
    env, params = scalegym.make("Rearrange-v0", **SMALL_REARRANGE)
    config = PPOConfig(network="cnn", hidden=(32,), activation="relu", **TINY)
    ppo = make_ppo(env, params, config)
    runner, metrics = jax.jit(ppo.train)(jax.random.key(0))
    assert isinstance(runner.obs, dict) and "view" in runner.obs
    torso = runner.train_state.params["params"]["actor_torso"]
    assert {"Conv_0", "Conv_1"} <= set(torso)
    for name in ("loss", "actor_loss", "value_loss", "entropy"):
        assert np.isfinite(metrics[name]).all(), name


# ---------------------------------------------------------------------------------------------
# Checkpoint and resume (train_agent)
# ---------------------------------------------------------------------------------------------

CHECKPOINT_RUN = dict(
    total_steps=16 * 16 * 6,  # 6 updates of 16 envs x 16 steps
    env_overrides=SMALL_REARRANGE,
    agent_overrides=dict(num_envs=16, num_steps=16),
    progress=False,
)


class Interrupted(Exception):
    pass


def without_timing(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in point.items() if k != "perf/sps"} for point in curve]


def test_checkpoint_resume_continues_the_same_run(tmp_path) -> None:
    whole = train_agent("Rearrange-v0", checkpoint_dir=tmp_path / "whole", **CHECKPOINT_RUN)
    assert len(whole["curve"]) == 6
    assert (tmp_path / "whole" / "state.msgpack").exists()
    progress = json.loads((tmp_path / "whole" / "progress.json").read_text())
    assert progress["updates"] == 6 and len(progress["curve"]) == 6

    # Interrupt after 3 chunks: the log callback runs before that chunk's checkpoint is written.
    def stop_at_third(step: int, scalars: dict) -> None:
        if step >= 3 * 256:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_agent(
            "Rearrange-v0", checkpoint_dir=tmp_path / "cut", log=stop_at_third, **CHECKPOINT_RUN
        )
    assert json.loads((tmp_path / "cut" / "progress.json").read_text())["updates"] == 2

    resumed = train_agent(
        "Rearrange-v0", checkpoint_dir=tmp_path / "cut", resume=True, **CHECKPOINT_RUN
    )
    # The restored runner (keys included) continues exactly where the interrupted run stopped.
    assert [p["step"] for p in resumed["curve"]] == [256 * (i + 1) for i in range(6)]
    assert without_timing(resumed["curve"]) == without_timing(whole["curve"])
    assert resumed["final"]["success"] == whole["final"]["success"]
    assert (tmp_path / "cut" / "state.msgpack").read_bytes() == (
        tmp_path / "whole" / "state.msgpack"
    ).read_bytes()

    # Resuming a finished run does no more updates.
    again = train_agent(
        "Rearrange-v0", checkpoint_dir=tmp_path / "whole", resume=True, **CHECKPOINT_RUN
    )
    assert without_timing(again["curve"]) == without_timing(whole["curve"])
    # It reports the finished run's numbers (saved with the checkpoint), not a fresh measurement.
    assert again["final"] == whole["final"] and again["sps"] == whole["sps"]
    assert again["compile_s"] == whole["compile_s"]
    assert json.loads((tmp_path / "whole" / "progress.json").read_text())["updates"] == 6


def test_resume_from_a_checkpoint_of_another_run_names_what_differs(tmp_path) -> None:
    train_agent("Rearrange-v0", checkpoint_dir=tmp_path, **CHECKPOINT_RUN)
    other = {**CHECKPOINT_RUN, "agent_overrides": dict(num_envs=32, num_steps=16)}
    with pytest.raises(ValueError, match=r"config\.num_envs"):
        train_agent("Rearrange-v0", checkpoint_dir=tmp_path, resume=True, **other)


def test_obs_norm_handles_tuple_observations() -> None:
    obs = (jnp.ones((4, 3)), 2 * jnp.ones((4, 2)))
    norm = update_obs_norm(init_obs_norm(obs), obs)
    assert [m.shape for m in norm.mean] == [(3,), (2,)]
    np.testing.assert_allclose(norm.mean[1], 2.0, rtol=1e-4)
