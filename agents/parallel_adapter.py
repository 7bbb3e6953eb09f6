"""Run one single-agent learner for every agent of a PettingZoo ``ParallelEnv`` with shared parameters.

:class:`ParallelToVector` presents a ParallelEnv as a ``gymnasium.vector.VectorEnv`` whose sub-environments
are the env's ``possible_agents`` (``num_envs`` = their number, in that order): observations, actions,
rewards, terminations and truncations are batched along the first axis, so any agent of the zoo acts for all
agents with one batched forward pass and learns from all of their experience (agents reach it through
:class:`agents.vector_stepping.VectorStepper`, which every ``learn`` uses for vector forms) — parameter sharing, as in
Gupta, Egorov & Kochenderfer (2017, "Cooperative Multi-agent Control Using Deep Reinforcement Learning",
AAMAS workshops) and Terry et al. (2020, "Revisiting Parameter Sharing in Multi-Agent Deep RL").

Semantics (``metadata["autoreset_mode"] = SAME_STEP``, like gymnasium's vector envs in that mode):

- An agent that is not alive (terminated/truncated earlier in the episode, or absent after ``reset``) is
  *padding*: zero observation, reward 0, terminated = truncated = False, its action ignored.
  ``info["agent_mask"]`` (bool ``(num_envs,)``, in the infos of ``reset`` and ``step``) says which agents
  will act on the returned observation; learners mask padded slots out of their losses.
- When an agent's episode ends at a step, its final observation is in ``info["final_obs"][i]`` (a dense
  ``(num_envs, ...)`` array, zeros elsewhere) with ``info["_final_obs"][i] = True``, and ``obs[i]`` is
  already padding (or the new episode's observation after an autoreset).
- When no agent is left, the whole env is reset (autoreset) within the same ``step`` call.

All agents must share one observation space (1-D Box or Discrete) and one action space.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

AGENT_MASK = "agent_mask"


class ParallelToVector(VectorEnv):
    """A ``VectorEnv`` over the agents of a PettingZoo ``ParallelEnv`` (see the module docstring)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, parallel_env: Any) -> None:
        agents = list(getattr(parallel_env, "possible_agents", []) or [])
        if not agents:
            raise ValueError("ParallelToVector needs a PettingZoo ParallelEnv with non-empty possible_agents")
        obs_space = parallel_env.observation_space(agents[0])
        act_space = parallel_env.action_space(agents[0])
        for a in agents[1:]:
            if parallel_env.observation_space(a) != obs_space or parallel_env.action_space(a) != act_space:
                raise ValueError(
                    f"all agents must share one observation and one action space for parameter sharing; "
                    f"agent {a!r} has {parallel_env.observation_space(a)!r} / {parallel_env.action_space(a)!r}, "
                    f"agent {agents[0]!r} has {obs_space!r} / {act_space!r}"
                )
        self.parallel_env = parallel_env
        self.agent_ids = agents
        self.index = {a: i for i, a in enumerate(agents)}
        self.num_envs = len(agents)
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(act_space, self.num_envs)
        self.metadata = {**getattr(parallel_env, "metadata", {}), "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = getattr(parallel_env, "render_mode", None)
        N = self.num_envs
        self._obs_shape = tuple(obs_space.shape) if obs_space.shape is not None else ()
        self._obs_dtype = obs_space.dtype if obs_space.dtype is not None else np.int64
        self._obs = np.zeros((N, *self._obs_shape), dtype=self._obs_dtype)
        self._mask = np.zeros(N, dtype=bool)

    # ----- gymnasium.vector API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list | tuple):  # one env underneath: the first seed seeds it
            seed = seed[0] if seed else None
        observations, _ = self.parallel_env.reset(seed=seed, options=options)
        self._fill(observations, self.parallel_env.agents)
        return self._obs.copy(), {AGENT_MASK: self._mask.copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        N = self.num_envs
        joint = {a: actions[self.index[a]] for a in self.parallel_env.agents}
        observations, rewards, terminations, truncations, _ = self.parallel_env.step(joint)
        rew = np.zeros(N, dtype=np.float64)
        term = np.zeros(N, dtype=bool)
        trunc = np.zeros(N, dtype=bool)
        for a, r in rewards.items():
            rew[self.index[a]] = r
        for a, v in terminations.items():
            term[self.index[a]] = bool(v)
        for a, v in truncations.items():
            trunc[self.index[a]] = bool(v)
        ended = (term | trunc) & self._mask
        term &= self._mask
        trunc &= self._mask
        infos: dict[str, Any] = {}
        if ended.any():
            final = np.zeros_like(self._obs)
            for a, o in observations.items():
                i = self.index[a]
                if ended[i]:
                    final[i] = o
            infos["final_obs"], infos["_final_obs"] = final, ended
        alive = [a for a in self.parallel_env.agents if not ended[self.index[a]]]
        if alive:
            self._fill(observations, alive)
        else:  # everybody is done: autoreset the whole env
            observations, _ = self.parallel_env.reset()
            self._fill(observations, self.parallel_env.agents)
        infos[AGENT_MASK] = self._mask.copy()
        return self._obs.copy(), rew, term, trunc, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.parallel_env.close()

    def _fill(self, observations: dict[Any, Any], alive: list[Any]) -> None:
        """Write the observations of the ``alive`` agents; everyone else becomes padding."""
        self._obs[...] = 0
        self._mask[:] = False
        for a in alive:
            if a in observations:
                i = self.index[a]
                self._obs[i] = observations[a]
                self._mask[i] = True

    def __repr__(self) -> str:
        return f"ParallelToVector({self.parallel_env!r}, num_envs={self.num_envs})"


def is_parallel_env(env: Any) -> bool:
    """Duck-typed PettingZoo ParallelEnv check (not a gymnasium Env or VectorEnv)."""
    return (
        not isinstance(env, gym.Env | VectorEnv)
        and hasattr(env, "possible_agents")
        and callable(getattr(env, "step", None))
        and callable(getattr(env, "observation_space", None))
    )
