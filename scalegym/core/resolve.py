"""The one resolver: any env id (scalegym, gymnax/xminigrid/navix peers, `module:`, gymnasium)
into a `ResolvedEnv` that carries what later steps need (env, params, precision, source, agent
defaults), so a command looks its id up once and passes the result down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

VectorFactory = Callable[[int], gymnasium.vector.VectorEnv]
# overrides -> (env, params, make_vector): a jax env fills the first two, a host env the last.
Builder = Callable[[dict[str, Any]], tuple[Any, Any, VectorFactory | None]]


def x64_mode(x64: bool) -> contextlib.AbstractContextManager[Any]:
    """JAX's x64 mode switched on while inside when `x64`, else JAX's setting as it is."""
    return jax.enable_x64(True) if x64 else contextlib.nullcontext()


@dataclass(frozen=True)
class LocatedEnv:
    """Where an id's env comes from, found by `resolve_env`'s rules before anything is built."""

    id: str  # as given
    kind: Literal["jax", "host"]
    source: str  # "scalegym", "gymnax", "xminigrid", "navix" or "gymnasium"
    build: Builder = field(repr=False)
    x64: bool = False  # the env class declares float64 physics (`requires_x64`)
    agent_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def precision(self) -> contextlib.AbstractContextManager[Any]:
        return x64_mode(self.x64)

    def resolve(self, overrides: Mapping[str, Any]) -> ResolvedEnv:
        """The env built with `overrides`, under x64 where the env declares it."""
        with self.precision():
            env, params, make_vector = self.build(dict(overrides))
        return ResolvedEnv(
            id=self.id,
            kind=self.kind,
            source=self.source,
            env=env,
            params=params,
            make_vector=make_vector,
            overrides=dict(overrides),
            x64=self.x64,
            agent_defaults=self.agent_defaults,
            located=self,
        )


@dataclass(frozen=True)
class ResolvedEnv:
    """An env ready to run: kind "jax" has `env` and `params`, kind "host" `make_vector`.

    `x64`: the env declares float64 physics; run everything that uses it inside `precision()`.
    `agent_defaults`: per agent name, the settings the env's family trains with
    (`{"ppo": {...}}`, registered with the env; empty for peers and unknown envs).
    """

    id: str
    kind: Literal["jax", "host"]
    source: str = ""  # "scalegym", "gymnax", "xminigrid", "navix", "gymnasium"; "" by hand
    env: Any = None
    params: Any = None
    make_vector: VectorFactory | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    x64: bool = False
    agent_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    located: LocatedEnv | None = field(default=None, repr=False, compare=False)

    def precision(self) -> contextlib.AbstractContextManager[Any]:
        """JAX's x64 mode on while inside, for an env that declares float64 physics; any other
        env runs under JAX's setting as it is (x64 for every env would slow float32 work)."""
        return x64_mode(self.x64)

    def with_overrides(self, **more: Any) -> ResolvedEnv:
        """The same env source rebuilt with `more` params on top (the id is not looked up again)."""
        if self.located is None:
            raise ValueError(f"{self.id}: built by hand, not by resolve_env; cannot rebuild it")
        return self.located.resolve({**self.overrides, **more})


def resolve_env(env_id: str, **overrides: Any) -> ResolvedEnv:
    """Resolve `env_id`, applying `overrides` to its params (jax) or constructor (host).

    Rules, in order: `gymnax:Name` → gymnax; `xminigrid:Id` → XLand-MiniGrid and `navix:Id` →
    NAVIX (`scalegym.core.peers`, benchmarking only); a scalegym id (or a retired one, which
    says what replaced it); `scalegym/X` → the scalegym id X; `module:Name-vN` → import `module`
    (which registers the env), then resolve `Name-vN`; a gymnasium id whose entry point is a
    functional env class (scalegym or gymnax style) → jax; any other gymnasium id → host (a
    synchronous gymnasium vector env). A float64 env is built under x64.
    """
    return _locate(env_id).resolve(overrides)


def make(env_id: str, **overrides: Any) -> tuple[Any, Any]:
    """A functional env and its validated params: `env, params = scalegym.make("Rearrange-v1")`.

    Any id `resolve_env` takes except host envs, built under JAX's precision as it is: a float64
    env (ThreeBody) raises, saying what to do, unless x64 is on; build and step it inside
    `with scalegym.env_precision(id):`, which leaves the rest of the process as it was.
    """
    located = _locate(env_id)
    if located.kind == "host":
        raise ValueError(
            f"{env_id} is a host env (a gymnasium.Env, no functional JAX env to return): use "
            f"gymnasium.make({env_id!r}), or resolve_env({env_id!r}).make_vector(N)"
        )
    env, params, _ = located.build(dict(overrides))
    return env, params


def env_precision(env_id: str) -> contextlib.AbstractContextManager[Any]:
    """`resolve_env(env_id).precision()` without building the env: x64 while inside, for an env
    that declares float64 physics, and JAX's setting as it was after the block. Build, reset and
    step such an env inside it (`scalegym.env_precision("ThreeBody-v0")`). An id that cannot be
    looked up gets JAX's setting as it is (`resolve_env` explains what is wrong with it)."""
    try:
        return _locate(env_id).precision()
    except (ValueError, ImportError):
        return contextlib.nullcontext()


def _locate(env_id: str) -> LocatedEnv:
    """What builds `env_id`, by the rules of `resolve_env`; ValueError for an unknown id."""
    if env_id.startswith(registry.GYMNAX_PREFIX):
        name = env_id[len(registry.GYMNAX_PREFIX) :]
        return LocatedEnv(env_id, "jax", "gymnax", _jax(lambda o: registry.make_gymnax(name, **o)))
    # Before the `module:` rule, which would otherwise import xminigrid/navix and look up the rest.
    if peers.is_peer_id(env_id):
        source = "xminigrid" if env_id.startswith(peers.XMINIGRID_PREFIX) else "navix"
        return LocatedEnv(env_id, "jax", source, _jax(lambda o: peers.make_peer(env_id, **o)))
    if env_id in registry.list_envs() or registry.is_retired(env_id):
        return _registered(env_id, env_id)
    if env_id.startswith(SCALEGYM_NAMESPACE) and not _is_host_scalegym_id(env_id):
        return _registered(env_id, env_id[len(SCALEGYM_NAMESPACE) :])  # unknown: scalegym's hint
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ValueError(f"env id {env_id!r}: cannot import module {module!r} ({err})") from err
        return dataclasses.replace(_locate(name), id=env_id)
    if env_id in gymnasium.registry:
        return _gymnasium(env_id)
    raise ValueError(_unknown_id_message(env_id))


def _jax(make: Callable[[dict[str, Any]], tuple[Any, Any]]) -> Builder:
    def build(overrides: dict[str, Any]) -> tuple[Any, Any, None]:
        env, params = make(overrides)
        return env, params, None

    return build


def _registered(env_id: str, name: str) -> LocatedEnv:
    """A scalegym id `name` (registered with `scalegym.register`), located as `env_id`."""
    spec = registry.spec(name)  # unknown and retired ids raise, with a hint
    return LocatedEnv(
        env_id,
        "jax",
        "scalegym",
        _jax(spec.build),
        x64=declares_float64(spec.load()),
        agent_defaults=spec.agent_defaults,
    )


def _gymnasium(env_id: str) -> LocatedEnv:
    gym_spec = gymnasium.spec(env_id)
    source = _jax_source(gym_spec)
    if isinstance(source, str):  # registered by scalegym.register under another gymnasium id
        return _registered(env_id, source)
    if source is not None:
        cls, kwargs = source
        limit = gym_spec.max_episode_steps
        build = _jax(lambda o: build_functional(env_id, cls, {**kwargs, **o}, limit))
        return LocatedEnv(env_id, "jax", "gymnasium", build, x64=declares_float64(cls))
    entry = gym_spec.entry_point
    creator = (
        gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    )

    def build_host(overrides: dict[str, Any]) -> tuple[None, None, VectorFactory]:
        _check_constructor_kwargs(env_id, creator, overrides)

        def make_vector(num_envs: int) -> gymnasium.vector.VectorEnv:
            # Same-step autoreset, like the JAX envs: the last observation arrives in the info.
            return gymnasium.make_vec(
                env_id,
                num_envs=num_envs,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
                **overrides,
            )

        return None, None, make_vector

    defaults = registry.host_agent_defaults(env_id)
    if defaults is None:
        return LocatedEnv(env_id, "host", "gymnasium", build_host)
    return LocatedEnv(env_id, "host", "scalegym", build_host, agent_defaults=defaults)


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
