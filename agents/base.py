"""The Agent contract every RL algorithm of the zoo implements.

Why a contract: the federation layer treats every algorithm the same way — it broadcasts named weights,
asks the agent to learn on its own environment for a budget of steps, and collects named weights back.
Weights are a flat ``name -> np.ndarray`` mapping named like a torch ``state_dict`` (never a positional
list), so strategies can match layers by name and personal parameters can be filtered by prefix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

Weights = dict[str, np.ndarray]


def is_int(v: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def is_number(v: Any) -> bool:
    """A Python or numpy real number, not a bool."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """An agent's ``seed`` argument as the SeedSequence its generators are spawned from."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if not (is_int(seed) and seed >= 0):
        raise AgentError(f"seed={seed!r} must be a non-negative int")
    return np.random.SeedSequence(int(seed))


def flat_observation_layout(space: gym.Space, algo: str) -> tuple[bool, int, int, tuple[int, ...]]:
    """``(discrete, dim, start, stored shape)`` of an observation space a network agent accepts: a 1-D Box
    (float vectors of ``dim``) or a Discrete (stored as 0-based indices, one-hot encoded to ``dim``)."""
    if isinstance(space, gym.spaces.Discrete):
        return True, int(space.n), int(space.start), ()
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return False, int(space.shape[0]), 0, (int(space.shape[0]),)
    raise AgentError(
        f"{algo} supports observation spaces Box with a 1-D shape or Discrete (one-hot encoded); got {space!r}"
    )


def stored_batch(obs: Any, discrete: bool, dim: int, start: int) -> np.ndarray:
    """A batch of raw observations as a network agent stores them: fresh float32 rows, or 0-based indices
    of a Discrete space (refused outside it)."""
    if not discrete:
        x = np.array(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != dim:
            raise AgentError(f"observation shape {x.shape[1:]} does not match the expected {(dim,)}")
        return x
    x = np.asarray(obs, dtype=np.int64) - start
    if x.ndim != 1 or ((x < 0) | (x >= dim)).any():
        raise AgentError(f"observation {obs!r} outside Discrete({dim}, start={start})")
    return x


def linear_epsilon(t: int, start: float, end: float, steps: int) -> float:
    """ε annealed linearly from ``start`` to ``end`` over ``steps`` steps, then held (Mnih et al. 2015);
    ``steps = 0`` means ``end`` from the start."""
    frac = min(1.0, t / steps) if steps > 0 else 1.0
    return start + frac * (end - start)


def check_num_steps(num_steps: Any) -> None:
    """``learn``'s budget must be an int >= 0."""
    if not is_int(num_steps) or num_steps < 0:
        raise AgentError(f"num_steps={num_steps!r} must be an int >= 0")


def learn_stats(
    losses: Mapping[str, float], returns: Sequence[float], lengths: Sequence[int], totals: Mapping[str, float]
) -> dict[str, float]:
    """What every ``learn`` returns: its mean losses (absent without updates), the mean return and length
    of the episodes completed in the call (absent if none), their count, then ``totals`` (e.g. steps)."""
    stats = {k: float(v) for k, v in losses.items()}
    if returns:
        stats["train/episode_return"] = float(np.mean(returns))
        stats["train/episode_length"] = float(np.mean(lengths))
    stats["train/episodes"] = float(len(returns))
    stats.update({k: float(v) for k, v in totals.items()})
    return stats


def checked_weights(
    weights: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]], what: str = "weight"
) -> Weights:
    """Fresh float32 copies of ``weights`` after checking every entry against ``shapes`` (name -> shape).

    Raises ``AgentError`` naming the key for an unknown name, a non-numeric value, a wrong shape or a
    non-finite value, before anything is returned: callers commit only what passed, so a refused
    ``set_weights`` / ``set_anchor`` changes nothing. ``what`` names the values in messages."""
    if not isinstance(weights, Mapping):
        raise AgentError(f"{what}s must be a mapping name -> array, got {type(weights).__name__}")
    out: Weights = {}
    for key, value in weights.items():
        if key not in shapes:
            raise AgentError(f"unknown {what} {key!r}; expected names: {', '.join(shapes)}")
        try:
            arr = np.array(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise AgentError(f"{what} {key!r} is not a numeric array: {exc}") from None
        expected = tuple(shapes[key])
        if arr.shape != expected:
            raise AgentError(f"{what} {key!r} has shape {arr.shape}, expected {expected}")
        if not np.isfinite(arr).all():
            raise AgentError(f"{what} {key!r} contains non-finite values")
        out[key] = arr
    return out


class AgentError(ValueError):
    """Bad input to an agent (wrong weight names/shapes, unsupported spaces, bad hyperparameters)."""


class Agent(ABC):
    """An RL learner that owns its networks, optimiser and buffers.

    Subclasses set ``name`` (kebab-case, as in the CLI) and may set ``personal_prefixes``: parameter-name
    prefixes that are personal, i.e. never leave the client (FedPer-style heads, environment embeddings).
    """

    name: str = "agent"
    personal_prefixes: tuple[str, ...] = ()
    #: attributes bound to the env being learned on: pickling (worker processes, ``deepcopy``) drops them,
    #: so a copy adopts its next env afresh
    _env_bound: tuple[str, ...] = ("_env", "_stepper")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._env_bound:
            if key in state:
                state[key] = None
        return state

    @abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool = True) -> np.ndarray | int:
        """Choose an action for one observation (greedy when ``explore`` is False)."""

    @abstractmethod
    def learn(self, env: gym.Env, num_steps: int) -> dict[str, float]:
        """Interact with ``env`` for ``num_steps`` environment steps and learn from it.

        ``env`` is a gymnasium Env, a gymnasium VectorEnv or a PettingZoo ParallelEnv (one learner acts for
        every sub-env / agent: parameter sharing); ``num_steps`` counts steps summed over sub-envs, rounded
        up to a multiple of ``num_envs``. Continues the running episode across calls on the same env object
        (a federated round is a slice of one long training run); a new env object is reset with a seed from
        the agent's generator. Returns the mean losses of this call's updates (absent if none), the mean
        ``train/episode_return`` / ``train/episode_length`` of the episodes completed in it (absent if
        none), ``train/episodes`` and ``train/steps`` (total).
        """

    @abstractmethod
    def get_weights(self) -> Weights:
        """All parameters as independent numpy copies, named like a state_dict."""

    @abstractmethod
    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load a subset (or all) of the parameters by name.

        Raises ``AgentError`` naming the key for an unknown name or a wrong shape, and for non-finite values;
        nothing is modified in that case.
        """

    # ----- shared / personal split -------------------------------------------------------------------
    def is_personal(self, key: str) -> bool:
        return any(key.startswith(p) for p in self.personal_prefixes)

    def get_shared_weights(self) -> Weights:
        """What the client uploads: every parameter that is not personal."""
        return {k: v for k, v in self.get_weights().items() if not self.is_personal(k)}
