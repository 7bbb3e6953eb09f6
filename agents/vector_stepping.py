"""Step a single Env, a gymnasium ``VectorEnv`` or a PettingZoo ``ParallelEnv`` and hand back transitions.

Why one module: every learner's one interaction loop runs on it (a single env is the N = 1 case). The three
vector-env autoreset modes of gymnasium ≥ 1.0 and the padded agents of
:class:`agents.parallel_adapter.ParallelToVector` each change which rows of a step are real transitions and
where an ended episode's last observation is:

- ``SAME_STEP`` (and ``ParallelToVector``): a sub-env whose episode ends is reset inside the same ``step``;
  its final observation is in ``info["final_obs"][i]`` (an object array from gymnasium's vector envs, a
  dense array from the adapter).
- ``NEXT_STEP`` (gymnasium's default): the ended sub-env returns its final observation, and its *next*
  ``step`` ignores the action and resets it; that row is not a transition (``valid`` is False).
- ``DISABLED``: the stepper resets the ended sub-envs itself with ``options={"reset_mask": done}``.
- ``info["agent_mask"]`` (ParallelToVector): agents that are not alive are padding, not transitions.

Each :meth:`VectorStepper.step` returns a :class:`VectorTransition` whose ``next_obs`` is the successor
state *of the transition* (the final observation where an episode ended), so ``(obs, action, reward,
next_obs, terminated, truncated)`` rows with ``valid`` set can go straight into a replay buffer. Episode
returns and lengths of the completed episodes are collected in ``returns`` / ``lengths`` for the caller to
drain. Parameter sharing across agents follows Gupta, Egorov & Kochenderfer (2017) and Terry et al. (2020).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from agents.base import AgentError
from agents.parallel_adapter import AGENT_MASK, ParallelToVector, is_parallel_env


def as_vector_env(env: Any) -> VectorEnv | None:
    """``env`` itself if it is a VectorEnv, a :class:`ParallelToVector` over it if it is a PettingZoo
    ParallelEnv, None if it is a single gymnasium Env (anything else is refused)."""
    if is_parallel_env(env):
        return ParallelToVector(env)
    if isinstance(env, VectorEnv):
        return env
    if isinstance(env, gym.Env):
        return None
    raise AgentError(
        f"agents learn from a gymnasium Env, a gymnasium VectorEnv or a PettingZoo ParallelEnv; "
        f"got {type(env).__name__}"
    )


def same_space(ours: gym.Space, theirs: gym.Space, *, bounds: bool = False) -> bool:
    """Whether an env's space fits an agent's: same Discrete ``n``/``start``, MultiDiscrete ``nvec`` or Box
    shape (and, with ``bounds``, the same Box bounds: off-policy agents rescale actions to them)."""
    if isinstance(ours, gym.spaces.Discrete):
        return isinstance(theirs, gym.spaces.Discrete) and (int(ours.n), int(ours.start)) == (
            int(theirs.n), int(theirs.start))
    if isinstance(ours, gym.spaces.MultiDiscrete):
        return isinstance(theirs, gym.spaces.MultiDiscrete) and np.array_equal(ours.nvec, theirs.nvec)
    return isinstance(theirs, gym.spaces.Box) and theirs.shape == ours.shape and (
        not bounds or (np.array_equal(ours.low, theirs.low) and np.array_equal(ours.high, theirs.high)))


def adopt_env(env: Any, agent: Any, *, action_bounds: bool = False) -> VectorEnv | None:
    """The vector form of what ``agent`` was given (None for a single Env), after checking that its
    (per-sub-env, per-agent) spaces fit the agent's ``observation_space`` / ``action_space``."""
    venv = as_vector_env(env)
    obs_space, act_space = (env.observation_space, env.action_space) if venv is None else (
        venv.single_observation_space, venv.single_action_space)
    if not same_space(agent.action_space, act_space, bounds=action_bounds):
        raise AgentError(f"env action space {act_space!r} does not match the agent's {agent.action_space!r}")
    if not same_space(agent.observation_space, obs_space):
        raise AgentError(
            f"env observation space {obs_space!r} does not match the agent's {agent.observation_space!r}")
    return venv


@dataclass
class VectorTransition:
    """One vector step, arrays with leading axis ``num_envs``. Rows with ``valid`` False are padding
    (dead agents, or the reset step of NEXT_STEP autoreset) and must not be learned from; their reward is 0
    and their flags are False."""

    valid: np.ndarray  # bool (N,)
    rewards: np.ndarray  # float64 (N,)
    next_obs: np.ndarray  # (N, ...) stored observations: s' of the transition (final obs if it ended)
    terminated: np.ndarray  # bool (N,)
    truncated: np.ndarray  # bool (N,)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VectorStepper:
    """Drives a VectorEnv, a ParallelEnv (through :class:`ParallelToVector`) or a single Env (the N = 1
    case, stepped directly: the one fast path of every learner's interaction loop) for a learner.

    ``convert`` turns a batch of raw observations into the learner's stored form (e.g. float32 rows or
    0-based state indices) and must return a fresh array. ``obs`` is the current batch of stored
    observations and ``active`` which rows of it will yield transitions on the next ``step``.
    """

    def __init__(self, env: Any, convert: Callable[[Any], np.ndarray], seed: int) -> None:
        venv = as_vector_env(env)
        self.venv, self.convert = venv, convert
        self.env = env
        self.num_envs = 1 if venv is None else int(venv.num_envs)
        self.episode_return = np.zeros(self.num_envs)
        self.episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []
        if venv is None:
            self.autoreset = None
            self.obs = convert(np.asarray(env.reset(seed=int(seed))[0])[None])
            self.active = np.ones(1, dtype=bool)
            return
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        obs, info = venv.reset(seed=int(seed))
        self.obs = convert(obs)
        self.active = self._mask(info, np.ones(self.num_envs, dtype=bool))

    def step(self, actions: np.ndarray) -> VectorTransition:
        """Apply ``actions`` (one row per sub-env; padded rows are ignored by the env) and return the
        transitions; afterwards ``obs``/``active`` describe the next step."""
        if self.venv is None:
            return self._step_single(actions[0])
        valid = self.active
        raw_next, reward, terminated, truncated, info = self.venv.step(actions)
        terminated = np.asarray(terminated, dtype=bool) & valid
        truncated = np.asarray(truncated, dtype=bool) & valid
        done = terminated | truncated
        rewards = np.where(valid, np.asarray(reward, dtype=np.float64), 0.0)
        next_obs = self.convert(raw_next)
        successor = next_obs
        self.episode_return += rewards
        self.episode_length += valid
        if done.any():
            ended = np.flatnonzero(done)
            self.returns.extend(self.episode_return[ended].tolist())
            self.lengths.extend(self.episode_length[ended].tolist())
            self.episode_return[ended], self.episode_length[ended] = 0.0, 0
            if self.autoreset == AutoresetMode.SAME_STEP:  # next_obs rows of ended envs are new episodes
                final = info["final_obs"]
                successor = next_obs.copy()
                successor[ended] = self.convert(np.stack([np.asarray(final[i]) for i in ended]))
            elif self.autoreset == AutoresetMode.DISABLED:  # next_obs holds the final obs; reset them
                raw_next, info = self.venv.reset(options={"reset_mask": done})
                next_obs = self.convert(raw_next)
        self.obs = next_obs
        if self.autoreset == AutoresetMode.NEXT_STEP:  # the next step of an ended sub-env is its reset
            self.active = self._mask(info, ~done)
        else:
            self.active = self._mask(info, np.ones(self.num_envs, dtype=bool))
        return VectorTransition(valid, rewards, successor, terminated, truncated)

    def _step_single(self, action: Any) -> VectorTransition:
        """One step of a single Env; an ended episode is reset here (like SAME_STEP autoreset)."""
        raw, reward, terminated, truncated, _ = self.env.step(action)
        successor = self.convert(np.asarray(raw)[None])
        if self.account(reward, terminated or truncated):
            self.obs = self.convert(np.asarray(self.env.reset()[0])[None])
        else:
            self.obs = successor
        return VectorTransition(self.active, np.array([reward], dtype=np.float64), successor,
                                np.array([terminated]), np.array([truncated]))

    def account(self, reward: float, ended: bool) -> bool:
        """Add one single-env step to the running episode's statistics, closing the episode if it ended."""
        self.episode_return[0] += reward
        self.episode_length[0] += 1
        if ended:
            self.returns.append(float(self.episode_return[0]))
            self.lengths.append(int(self.episode_length[0]))
            self.episode_return[0], self.episode_length[0] = 0.0, 0
        return ended

    def drain_episodes(self) -> tuple[list[float], list[int]]:
        """Returns and lengths of the episodes completed since the last call."""
        out = self.returns, self.lengths
        self.returns, self.lengths = [], []
        return out

    @staticmethod
    def _mask(info: Any, base: np.ndarray) -> np.ndarray:
        mask = info.get(AGENT_MASK) if isinstance(info, Mapping) else None
        return base if mask is None else base & np.asarray(mask, dtype=bool)


def updates_due(t_prev: int, t: int, every: int, start: int) -> int:
    """How many multiples ``m`` of ``every`` with ``m >= start`` lie in ``(t_prev, t]``: the number of
    training rounds a learner that trains "every ``every`` steps once ``start`` steps were taken" owes
    after a vector step moved its step counter from ``t_prev`` to ``t`` (for ``t = t_prev + 1`` this is the
    single-env rule ``t >= start and t % every == 0``)."""
    if t < start:
        return 0
    lo = max(t_prev, start - 1)
    return max(0, t // every - lo // every)
