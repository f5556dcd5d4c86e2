"""Known-answer tests for PPO's parts: GAE, the loss, the initializer, config, obs norm, runs."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.agents.ppo.config import PPOConfig, override_problems
from scalegym.agents.ppo.loss import Transition, calculate_gae, ppo_loss
from scalegym.agents.ppo.networks import orthogonal
from scalegym.agents.ppo.normalization import init_obs_norm, update_obs_norm
from scalegym.agents.ppo.policy import build_network, make_apply


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
    with pytest.raises(ValueError, match="PPOConfig: unknown fields") as err:
        PPOConfig().replace(num_env=8, lr=1e-3)
    message = str(err.value)
    assert '"lr"' in message and '"num_env"' in message and 'did you mean "num_envs"' in message
    assert "allowed:" in message and "num_envs" in message and "learning_rate" in message


def test_override_problems_name_each_field_and_kind() -> None:
    problems = override_problems({"lr": 1e-3, "num_envs": "8", "total_timesteps": 5})
    assert any('unknown field "lr"' in p for p in problems)
    assert any("\"num_envs\" expects int like 4, got '8'" in p for p in problems)
    assert any('"total_timesteps" is set by the step budget' in p for p in problems)
    assert override_problems({"hidden": [32, 32], "learning_rate": 1, "anneal_lr": False}) == []
    assert override_problems({"anneal_lr": 1}) != []  # an int is not a bool


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


def test_obs_norm_handles_tuple_observations() -> None:
    obs = (jnp.ones((4, 3)), 2 * jnp.ones((4, 2)))
    norm = update_obs_norm(init_obs_norm(obs), obs)
    assert [m.shape for m in norm.mean] == [(3,), (2,)]
    np.testing.assert_allclose(norm.mean[1], 2.0, rtol=1e-4)
