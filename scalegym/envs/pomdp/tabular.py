"""The tabular form of a finite-horizon POMDP family instance: what the exact tools read.

Every POMDP family in this folder steps a compact JAX state for speed, and exports the same
instance as a `TabularPOMDP` (NumPy, float64) for the exact tools in `exact.py`. Tests check that
the two agree (the exact value of a policy against a Monte-Carlo estimate on the JAX env).

The episode, in the model's terms (S states, A actions, O observation symbols, H actions):

    s_0 ~ initial;  o_0 ~ emission[s_0];  the agent sees obs_inputs[o_0]
    for t in 0..H-1:
        a_t ~ policy(o_0, a_0, ..., o_t)
        s_{t+1} ~ transition[a_t, s_t];  o_{t+1} ~ emission[s_{t+1}]
        r_t = reward[s_t, a_t] + obs_reward[o_{t+1}]
    the episode terminates after H actions (a finite-horizon POMDP; nothing is truncated)

So an observation is emitted by the state it arrives in, and a reward may depend on the state
and action (Tiger's doors) or on the observation emitted (a revealing family's "w").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalegym.core.fields import ParamError


@dataclass(frozen=True)
class TabularPOMDP:
    """One instance as arrays; rows of `transition`, `emission` and `initial` sum to 1."""

    transition: np.ndarray  # [A, S, S] float64, transition[a, s, s'] = P(s' | s, a)
    emission: np.ndarray  # [S, O] float64, emission[s, o] = P(o | arrived in s)
    reward: np.ndarray  # [S, A] float64, paid for taking a in s
    obs_reward: np.ndarray  # [O] float64, paid when o is emitted after an action
    initial: np.ndarray  # [S] float64, distribution of s_0
    horizon: int  # H, actions per episode
    obs_inputs: np.ndarray  # [O, D] float32, the env's observation for each symbol
    name: str = "POMDP"  # family name, used in messages
    state_names: tuple[str, ...] = field(default=(), compare=False)  # [S] for messages, optional

    @property
    def num_states(self) -> int:
        return int(self.transition.shape[1])

    @property
    def num_actions(self) -> int:
        return int(self.transition.shape[0])

    @property
    def num_obs(self) -> int:
        return int(self.emission.shape[1])

    def validate(self) -> None:
        """Raise ValueError naming the array whose shape or rows are wrong."""
        a, s, o = self.num_actions, self.num_states, self.num_obs
        shapes = {
            "transition": (self.transition.shape, (a, s, s)),
            "emission": (self.emission.shape, (s, o)),
            "reward": (self.reward.shape, (s, a)),
            "obs_reward": (self.obs_reward.shape, (o,)),
            "initial": (self.initial.shape, (s,)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise ValueError(f"{self.name} tabular model: {name} has shape {got}, needs {want}")
        if self.obs_inputs.shape[0] != o:
            raise ValueError(
                f"{self.name} tabular model: obs_inputs has {self.obs_inputs.shape[0]} rows, "
                f"needs one per observation symbol ({o})"
            )
        for name, rows in (
            ("transition", self.transition),
            ("emission", self.emission),
            ("initial", self.initial),
        ):
            if np.any(rows < 0) or not np.allclose(rows.sum(-1), 1.0, atol=1e-9):
                raise ValueError(f"{self.name} tabular model: rows of {name} must be distributions")
        if self.horizon < 1:
            raise ValueError(f"{self.name} tabular model: horizon={self.horizon}; allowed: >= 1")


MAX_TABULAR_STATES = 4_096  # dense [A, S, S] float64 tables: 2 x 4,096² x 8 B = 268 MB at A = 2


@dataclass(frozen=True)
class EmissionBlock:
    """States whose m-step emissions the revealing constant is computed on (m = len(actions)+1)."""

    label: str
    states: tuple[int, ...]
    actions: tuple[int, ...]  # the actions between the m emissions
    alpha: float  # the family's stated constant for this block


def revealing_emission(alpha: float) -> np.ndarray:
    """[2, 2] emission of (W, L) over (w, l): the right symbol with probability (1 + α)/2."""
    hi, lo = (1 + alpha) / 2, (1 - alpha) / 2
    return np.array([[hi, lo], [lo, hi]])


def check_tabular_size(family: str, states: int, field: str) -> None:
    """Raise ParamError when a family's dense tables would pass MAX_TABULAR_STATES states."""
    if states > MAX_TABULAR_STATES:
        raise ParamError(
            f"{family}: the tabular model would have {states:,} states (limit "
            f"{MAX_TABULAR_STATES:,}: its dense transition table would need "
            f"{2 * states**2 * 8 / 2**30:.1f} GiB or more); the exact tools need a smaller {field}"
        )


def tabular_model(
    name: str,
    transition: np.ndarray,
    emission: np.ndarray,
    obs_reward: np.ndarray,
    horizon: int,
    *,
    reward: np.ndarray | None = None,
    initial: np.ndarray | None = None,
) -> TabularPOMDP:
    """A validated model; by default the episode starts at state 0 and only symbols pay.

    transition [A, S, S], emission [S, O], obs_reward [O], reward [S, A], initial [S].
    """
    a_count, s_count, _ = transition.shape
    if initial is None:
        initial = np.zeros(s_count)
        initial[0] = 1.0
    model = TabularPOMDP(
        transition=transition,
        emission=emission,
        reward=np.zeros((s_count, a_count)) if reward is None else reward,
        obs_reward=obs_reward,
        initial=initial,
        horizon=horizon,
        obs_inputs=np.eye(emission.shape[1], dtype=np.float32),
        name=name,
    )
    model.validate()
    return model
