"""Turn any env id (scalegym, gymnax/xminigrid/navix peers, `module:`, gymnasium) into an env."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium
import jax

from scalegym.core import peers, registry
from scalegym.core.fields import check_fields
from scalegym.core.functional import (
    build_functional,
    declares_float64,
    explicit_parameters,
    is_functional_env_class,
    load_env_class,
)
from scalegym.core.gym_registration import ENTRY_POINT

SCALEGYM_NAMESPACE = "scalegym/"


@dataclass(frozen=True)
class ResolvedEnv:
    """An env ready to benchmark: kind "jax" has `env` and `params`, kind "host" `make_vector`."""

    id: str
    kind: Literal["jax", "host"]
    env: Any = None
    params: Any = None
    make_vector: Callable[[int], gymnasium.vector.VectorEnv] | None = None


def resolve_env(env_id: str, **overrides: Any) -> ResolvedEnv:
    """Resolve `env_id`, applying `overrides` to its params (jax) or constructor (host).

    Rules, in order: `gymnax:Name` → gymnax; `xminigrid:Id` → XLand-MiniGrid and `navix:Id` →
    NAVIX (`scalegym.core.peers`, benchmarking only); a scalegym id → `scalegym.make`;
    `scalegym/X` → the scalegym id X; `module:Name-vN` → import `module` (which registers the env),
    then resolve `Name-vN`; a gymnasium id whose entry point is a functional env class (scalegym or
    gymnax style) → jax; any other gymnasium id → host (a synchronous gymnasium vector env).
    """
    if env_id.startswith(registry.GYMNAX_PREFIX):
        env, params = registry.make(env_id, **overrides)
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    # Before the `module:` rule, which would otherwise import xminigrid/navix and look up the rest.
    if peers.is_peer_id(env_id):
        env, params = peers.make_peer(env_id, **overrides)
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    if env_id in registry.list_envs():
        env, params = registry.make(env_id, **overrides)
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    if env_id.startswith(SCALEGYM_NAMESPACE) and not _is_host_scalegym_id(env_id):
        name = env_id[len(SCALEGYM_NAMESPACE) :]
        env, params = registry.make(name, **overrides)  # unknown names get scalegym's hint
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ValueError(f"env id {env_id!r}: cannot import module {module!r} ({err})") from err
        return resolve_env(name, **overrides)
    if env_id in gymnasium.registry:
        return _resolve_gymnasium(env_id, overrides)
    raise ValueError(_unknown_id_message(env_id))


def declares_x64(env_id: str) -> bool:
    """Whether the env behind `env_id` declares float64 physics (`requires_x64`), unbuilt.

    Follows the rules of `resolve_env`; peers and host envs never do. An id that cannot be
    looked up answers False and is left for `resolve_env` to explain.
    """
    if env_id.startswith(registry.GYMNAX_PREFIX) or peers.is_peer_id(env_id):
        return False
    if env_id.startswith(SCALEGYM_NAMESPACE):
        env_id = env_id[len(SCALEGYM_NAMESPACE) :]
    if env_id in registry.list_envs():
        return declares_float64(registry.spec(env_id).load())
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return declares_x64(name)
    if env_id in gymnasium.registry:
        try:
            source = _jax_source(gymnasium.spec(env_id))
        except ValueError:  # a broken entry point: resolve_env explains it
            return False
        if isinstance(source, str):
            return declares_x64(source)
        return source is not None and declares_float64(source[0])
    return False


def env_precision(env_id: str) -> contextlib.AbstractContextManager[Any]:
    """JAX's x64 mode switched on while inside, for an env that declares float64 physics.

    Any other env runs under JAX's setting as it is (32-bit by default): x64 for every command
    would slow down float32 work, peers' PPO included, and bias every comparison. Build the env
    and run everything that uses it inside the same block.
    """
    return jax.enable_x64(True) if declares_x64(env_id) else contextlib.nullcontext()


def _resolve_gymnasium(env_id: str, overrides: dict[str, Any]) -> ResolvedEnv:
    gym_spec = gymnasium.spec(env_id)
    source = _jax_source(gym_spec)
    if isinstance(source, str):  # registered by scalegym.register under another gymnasium id
        env, params = registry.make(source, **overrides)
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    if source is not None:
        cls, kwargs = source
        env, params = build_functional(
            env_id, cls, {**kwargs, **overrides}, gym_spec.max_episode_steps
        )
        return ResolvedEnv(env_id, "jax", env=env, params=params)
    entry = gym_spec.entry_point
    creator = (
        gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    )
    _check_constructor_kwargs(env_id, creator, overrides)

    def make_vector(num_envs: int) -> gymnasium.vector.VectorEnv:
        # Same-step autoreset, like the JAX envs: the last observation arrives in the step's info.
        return gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
            **overrides,
        )

    return ResolvedEnv(env_id, "host", make_vector=make_vector)


def _is_host_scalegym_id(env_id: str) -> bool:
    """A host env of scalegym's (`scalegym.envs.HOST_ENVS`): a plain gymnasium id, no JAX env."""
    return env_id in gymnasium.registry and not _is_adapter_entry(gymnasium.spec(env_id))


def _is_adapter_entry(gym_spec: Any) -> bool:
    """True when gymnasium builds this id through scalegym's adapter (`register_gymnasium`)."""
    entry = gym_spec.entry_point
    if isinstance(entry, str):
        return entry == ENTRY_POINT
    return getattr(entry, "__module__", None) == ENTRY_POINT.partition(":")[0]


def _jax_source(gym_spec: Any) -> str | tuple[type, dict[str, Any]] | None:
    """What builds a gymnasium id on the jitted path, or None for a host env.

    A scalegym id, for an id scalegym's adapter builds from one (`scalegym.register`); or a JAX
    env class with the kwargs it is registered with, whether the entry point is the class itself
    (`gymnasium.register(id, entry_point=Walk)`) or scalegym's adapter with `env_class`
    (`scalegym.register_gymnasium(id, "my_envs:Walk")`).
    """
    kwargs = dict(gym_spec.kwargs)
    if _is_adapter_entry(gym_spec):
        if "env_id" in kwargs:
            return str(kwargs["env_id"])
        if "env_class" not in kwargs:
            return None
        return load_env_class(kwargs.pop("env_class"), gym_spec.id), kwargs
    entry = gym_spec.entry_point
    try:
        creator = (
            gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        )
    except (ImportError, AttributeError):
        return None
    return (creator, kwargs) if is_functional_env_class(creator) else None


def _check_constructor_kwargs(env_id: str, creator: Any, overrides: dict[str, Any]) -> None:
    """Reject overrides a host env's constructor cannot take, before any env is built."""
    if not overrides:
        return
    try:
        signature = inspect.signature(creator)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    check_fields(f"{env_id} constructor", overrides, explicit_parameters(creator))


def _unknown_id_message(env_id: str) -> str:
    scalegym_ids = registry.list_envs()
    candidates = scalegym_ids + sorted(gymnasium.registry)
    close = difflib.get_close_matches(env_id, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    known = ", ".join(scalegym_ids) or "none"
    return (
        f"unknown env id {env_id!r}: not a scalegym, peer or gymnasium id{hint} "
        f"(scalegym ids: {known}; peer ids look like 'gymnax:CartPole-v1', "
        f"'{peers.XMINIGRID_PREFIX}MiniGrid-Empty-8x8' or '{peers.NAVIX_PREFIX}Navix-Empty-8x8-v0')"
    )
