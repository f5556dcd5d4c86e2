"""Gumbel MuZero / AlphaZero search through `mctx`, with the env itself as the model.

The embedding of a search node is the env state (plus a `done` flag); `recurrent_fn` steps the
env's own `step_env` on it with keys split from the planner's key, never the real env's. Priors
and values come from a PPO feed-forward actor-critic applied to the simulated observation
(normalised as the run did), or are uniform / zero (`network=None`: pure search, AlphaZero-style
without a learned prior).

Budget: `mctx` calls `recurrent_fn` once per simulation (the root's prior and value come from the
real observation, no step), and here one call is one simulated env step, so
`Decision.sim_steps = budget = num_simulations` — steps taken past a simulated episode's end
included (they are absorbing: reward 0, discount 0).

Discount: `mctx` backs up `reward + discount · value(child)`; the discount is 0 on the step that
ends a simulated episode (terminated, or truncated by `env.is_truncated`, where the real episode
ends too) and `discount` (default 1.0, undiscounted, for episodic envs) otherwise.

The network's parameters and observation statistics are data (pytree fields), so one compiled
`act` serves every checkpoint of one architecture; the architecture, the budget and the search
options are static (changing one recompiles). For `run_episodes` (which caches its compiled
runner by planner) the planner hashes by its static fields and the identity of its arrays.

The model steps the true state, so on a partially observed env this planner is an oracle: build
it with `oracle=True` there. Recurrent (GRU) PPO policies are not supported (a prior per node
would need the GRU carry along every simulated path).

Shapes: one env (no batch axis) as in `planning`; inside the search a batch B = 1, A actions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from scalegym.agents.planners.planning import Decision
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.networks import ActorCritic
from scalegym.agents.ppo.normalization import normalize
from scalegym.core.environment import select_tree
from scalegym.core.fields import check_fields, is_int, is_number, require


@dataclasses.dataclass(frozen=True)
class PriorNetwork:
    """The static description of a PPO feed-forward actor-critic (the search's prior and value).

    `reward_scale` is the run's: its critic learned returns of scaled rewards, so values are
    divided by it to be in the env's reward units, like the search's rewards.
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    conv: bool = False
    normalize_obs: bool = False
    reward_scale: float = 1.0

    @classmethod
    def from_config(cls, config: PPOConfig) -> PriorNetwork:
        """The network a PPO run with `config` trained; ValueError for a recurrent (GRU) one."""
        if config.recurrent:
            raise ValueError(
                f"GumbelMuZero: network={config.network!r} (a recurrent GRU policy) is not "
                "supported; the search needs a feed-forward PPO network (mlp or cnn)"
            )
        return cls(
            hidden=tuple(config.hidden),
            activation=config.activation,
            conv=config.network == "cnn",
            normalize_obs=config.normalize_obs,
            reward_scale=float(config.reward_scale),
        )

    def module(self, num_actions: int) -> ActorCritic:
        return ActorCritic(num_actions, self.hidden, self.activation, self.conv)


@struct.dataclass
class GumbelMuZero:
    """Gumbel MuZero search (`mctx.gumbel_muzero_policy`) on the env's own `step_env`.

    Fields: `budget` simulations per decision (= simulated env steps); `max_num_considered_actions`
    at the root (None: min(16, A)); `gumbel_scale` (0: no root noise, deterministic given the
    model); `discount` per simulated step; `network` (None: uniform prior and zero value) with its
    `network_params` and `obs_norm` (the PPO run's `ObsNorm`, needed if it normalised obs).
    No memory.
    """

    name: ClassVar[str] = "gumbel-muzero"
    budget: int = struct.field(pytree_node=False)
    max_num_considered_actions: int | None = struct.field(pytree_node=False, default=None)
    gumbel_scale: float = struct.field(pytree_node=False, default=1.0)
    discount: float = struct.field(pytree_node=False, default=1.0)
    network: PriorNetwork | None = struct.field(pytree_node=False, default=None)
    oracle: bool = struct.field(pytree_node=False, default=False)
    network_params: Any = None  # the actor-critic's flax params (data: no recompile per run)
    obs_norm: Any = None  # ObsNorm of the run, or None

    def __post_init__(self) -> None:
        b = self.budget
        require(is_int(b, 1), "GumbelMuZero", "budget", b, "integers >= 1")
        m = self.max_num_considered_actions
        require(
            m is None or is_int(m, 1),
            "GumbelMuZero",
            "max_num_considered_actions",
            m,
            "integers >= 1, or None for min(16, number of actions)",
        )
        g = self.gumbel_scale
        require(is_number(g) and g >= 0.0, "GumbelMuZero", "gumbel_scale", g, ">= 0")
        d = self.discount
        require(is_number(d) and 0.0 < d <= 1.0, "GumbelMuZero", "discount", d, "0 < d <= 1")
        n = self.network
        require(
            n is None or isinstance(n, PriorNetwork),
            "GumbelMuZero",
            "network",
            n,
            "None (uniform prior, zero value) or a PriorNetwork",
        )
        if n is not None:
            require(
                self.network_params is not None,
                "GumbelMuZero",
                "network_params",
                None,
                "the network's flax params (a network needs them)",
            )
            require(
                not n.normalize_obs or self.obs_norm is not None,
                "GumbelMuZero",
                "obs_norm",
                None,
                "the run's ObsNorm (the network was trained on normalised observations)",
            )

    # Hash and equality for `run_episodes`' cache: static fields by value, arrays by identity
    # (arrays have no hash; two planners with equal static fields but other params must not share
    # a compiled runner, which closes over the params).
    def _key(self) -> tuple:
        static = tuple(
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.metadata.get("pytree_node", True)
        )
        data = jax.tree.leaves((self.network_params, self.obs_norm))
        return static + tuple(id(x) for x in data)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> None:
        return None

    def prior_and_value(self, obs: Any, num_actions: int) -> tuple[jax.Array, jax.Array]:
        """Prior logits [B, A] and values [B] (env reward units) of observations [B, ...]."""
        batch = jax.tree.leaves(obs)[0].shape[0]
        if self.network is None:
            return jnp.zeros((batch, num_actions), jnp.float32), jnp.zeros(batch, jnp.float32)
        x = normalize(self.obs_norm, obs, self.network.normalize_obs)
        logits, value = self.network.module(num_actions).apply(self.network_params, x)
        return logits.astype(jnp.float32), value.astype(jnp.float32) / self.network.reward_scale

    def act(
        self, env: Any, params: Any, memory: None, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, None]:
        batched = jax.tree.map(lambda x: jnp.asarray(x)[None], (obs, state))  # B = 1
        action = self.search(env, params, *batched, key)[0]
        return Decision(action=action, sim_steps=jnp.int32(self.budget)), memory

    def search(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> jax.Array:
        """One mctx search per row of a batch: obs and state leaves [B, ...] → actions [B]."""
        import mctx  # the `search` extra

        a = env.num_actions
        considered = self.max_num_considered_actions or min(16, a)

        def recurrent_fn(
            _: Any, k: jax.Array, action: jax.Array, embedding: tuple
        ) -> tuple[Any, tuple]:
            states, dones = embedding  # [B] pytree, [B] bool

            def step(s: Any, done: jax.Array, act: jax.Array, kk: jax.Array) -> tuple:
                o, nxt, reward, terminated, _ = env.step_env(kk, s, act, params)
                ended = done | terminated | env.is_truncated(nxt, params)
                # Past the end the node is absorbing: the state stays, nothing more is earned.
                nxt = select_tree(done, s, nxt)
                reward = jnp.where(done, 0.0, jnp.asarray(reward, jnp.float32))
                return o, nxt, reward, ended

            keys = jax.random.split(k, action.shape[0])  # [B]
            o, nxt, reward, ended = jax.vmap(step)(states, dones, action, keys)
            logits, value = self.prior_and_value(o, a)  # [B, A], [B]
            discount = jnp.where(ended, 0.0, self.discount).astype(jnp.float32)
            out = mctx.RecurrentFnOutput(
                reward=reward, discount=discount, prior_logits=logits, value=value
            )
            return out, (nxt, ended)

        batch = jax.tree.leaves(state)[0].shape[0]
        logits, value = self.prior_and_value(obs, a)
        root = mctx.RootFnOutput(
            prior_logits=logits, value=value, embedding=(state, jnp.zeros(batch, bool))
        )
        out = mctx.gumbel_muzero_policy(
            params=None,
            rng_key=key,
            root=root,
            recurrent_fn=recurrent_fn,
            num_simulations=self.budget,
            max_num_considered_actions=considered,
            gumbel_scale=self.gumbel_scale,
        )
        return out.action.astype(jnp.int32)  # [B]

    def observe(self, env: Any, params: Any, memory: None, action: jax.Array, obs: Any) -> None:
        return memory


OPTIONS = ("max_num_considered_actions", "gumbel_scale", "discount", "oracle")


def make_gumbel(
    budget: int,
    *,
    network: PPOConfig | PriorNetwork | None = None,
    network_params: Any = None,
    obs_norm: Any = None,
    **options: Any,
) -> GumbelMuZero:
    """A GumbelMuZero with `budget` simulations; `network` a PPO config (feed-forward only) or a
    PriorNetwork, with its params, or None for a uniform prior and zero value.

    Options: max_num_considered_actions, gumbel_scale, discount, oracle. Bad names and values
    raise ValueError naming the field.
    """
    check_fields("GumbelMuZero options", options, OPTIONS)
    if isinstance(network, PPOConfig):
        network = PriorNetwork.from_config(network)
    if network is None and network_params is not None:
        raise ValueError("GumbelMuZero: network_params given without a network; pass network=")
    return GumbelMuZero(
        budget=budget,
        network=network,
        network_params=network_params,
        # Kept only where used: one pytree structure (one compile) for every unnormalised run.
        obs_norm=obs_norm if network is not None and network.normalize_obs else None,
        **options,
    )


def from_checkpoint(
    path: str | Path,
    budget: int,
    *,
    seed_index: int = 0,
    env_overrides: dict[str, Any] | None = None,
    **options: Any,
) -> GumbelMuZero:
    """A GumbelMuZero with the prior and value of a PPO run saved by `scalegym train`.

    `path` is the run directory (holding `checkpoint/`) or the checkpoint directory itself. The
    env id, seeds and PPO config are read from the checkpoint; `env_overrides` must be the
    run's (`--set`), which the checkpoint does not record. `seed_index` picks one of its seeds.
    """
    from scalegym.agents.ppo.trained import load_trained, seed_runner
    from scalegym.agents.train import training_request
    from scalegym.core.resolve import resolve_env

    directory = Path(path)
    if (directory / "checkpoint" / "progress.json").exists():
        directory = directory / "checkpoint"
    if not (directory / "progress.json").exists():
        raise ValueError(f"from_checkpoint: {path} holds no checkpoint (no progress.json)")
    saved = json.loads((directory / "progress.json").read_text())
    config = saved["config"]
    PriorNetwork.from_config(PPOConfig(**{**config, "hidden": tuple(config["hidden"])}))
    num_seeds = int(saved["num_seeds"])
    if not 0 <= seed_index < num_seeds:
        raise ValueError(
            f"from_checkpoint: seed_index={seed_index} is invalid; the run has {num_seeds} seed(s)"
        )
    request = training_request(
        resolve_env(saved["env"], **(env_overrides or {})),
        "ppo",
        steps=int(config["total_timesteps"]),
        agent_params={k: v for k, v in config.items() if k != "total_timesteps"},
        num_seeds=num_seeds,
        seed=int(saved["seed"]),
        devices=1,
        checkpoint_dir=directory,
    )
    ppo, runner = load_trained(request)
    one = seed_runner(runner, seed_index)
    return make_gumbel(
        budget,
        network=ppo.config,
        network_params=one.train_state.params,
        obs_norm=one.obs_norm,
        **options,
    )
