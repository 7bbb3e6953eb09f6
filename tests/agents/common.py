"""Shared by the agent tests: tiny learnable tasks (single-agent and PettingZoo), evaluation, equality checks,
and a wrapper that records resets and actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from pettingzoo import ParallelEnv

#: DDPG/TD3/SAC settings that learn :class:`LinearBandit` (and :class:`BanditSwarm`) within a few hundred steps
BANDIT = dict(
    hidden_sizes=(32,), batch_size=32, learning_starts=100, actor_lr=5e-3, critic_lr=5e-3, gamma=0.5, tau=0.05
)


class LinearBandit(gym.Env):
    """A contextual bandit in episodes of 10 steps (ending by truncation, so targets bootstrap):
    obs ``x ~ U[−1, 1]^d``, the best action is the linear ``a* = 0.5 + x_0 − 0.5 x_1`` (in every action
    dimension), reward ``−mean((a − a*)²)``. The action bounds ``[−1, 3]`` are asymmetric on purpose."""

    def __init__(self, obs_dim: int = 2, act_dim: int = 1) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 3.0, (act_dim,), np.float32)
        self._t = 0

    def _obs(self) -> np.ndarray:
        self._x = self.np_random.uniform(-1.0, 1.0, self.observation_space.shape).astype(np.float32)
        return self._x

    def best_action(self, x: np.ndarray) -> float:
        return 0.5 + x[0] - 0.5 * x[1]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, np.float32)), action
        reward = -float(np.mean((np.asarray(action) - self.best_action(self._x)) ** 2))
        self._t += 1
        return self._obs(), reward, False, self._t >= 10, {}


def mean_reward(policy, n: int = 300, seed: int = 123) -> float:
    env = LinearBandit()
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(n):
        obs, r, term, trunc, _ = env.step(policy(obs))
        total += r
        if term or trunc:
            obs, _ = env.reset()
    return total / n


def assert_weights_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def modules_equal(m1: torch.nn.Module, m2: torch.nn.Module) -> bool:
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


def eval_return(env: gym.Env, policy, episodes: int = 10) -> float:
    """Mean undiscounted return of ``policy`` over ``episodes`` episodes seeded 10000, 10001, ..."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + i)
        done, ret = False, 0.0
        while not done:
            obs, r, terminated, truncated, _ = env.step(policy(obs))
            ret += float(r)
            done = terminated or truncated
        returns.append(ret)
    return float(np.mean(returns))


class ResetCounter(gym.Wrapper):
    """Records the seed of every reset and every action taken."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.reset_seeds: list[int | None] = []
        self.actions: list[np.ndarray] = []

    @property
    def resets(self) -> int:
        return len(self.reset_seeds)

    def reset(self, *, seed=None, options=None):
        self.reset_seeds.append(seed)
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.actions.append(np.array(action))
        return super().step(action)


# ----- PettingZoo tasks (one learner acting for every agent) -------------------------------------------------
class StaggeredTask(ParallelEnv):
    """A PettingZoo task whose agent ``i`` lives ``first + stride * i`` steps, then terminates or (if
    ``truncates(i)``) is truncated, so dead agents are padding for a while. Subclasses draw observations
    (``_draw``, per live agent) and score actions (``_reward``)."""

    metadata = {"name": "staggered_task_v0"}
    first, stride = 3, 2

    def __init__(self, agents: list[str], obs_space: gym.Space, act_space: gym.Space) -> None:
        self.possible_agents = agents
        self.agents: list[str] = []
        self._spaces = obs_space, act_space
        self._rng = np.random.default_rng()

    def observation_space(self, agent):
        return self._spaces[0]  # the same object every call, as the API test wants

    def action_space(self, agent):
        return self._spaces[1]

    def truncates(self, i: int) -> bool:
        return False

    def _observe(self):
        self.current = {a: self._draw() for a in self.agents}
        return dict(self.current)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        index = {a: i for i, a in enumerate(self.possible_agents)}
        rewards = {a: self._reward(self.current[a], actions[a]) for a in self.agents}
        ends = {a: self.t >= self.first + self.stride * index[a] for a in self.agents}
        term = {a: ends[a] and not self.truncates(index[a]) for a in self.agents}
        trunc = {a: ends[a] and self.truncates(index[a]) for a in self.agents}
        obs = self._observe()
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not ends[a]]
        return obs, rewards, term, trunc, infos


class BitMatch(StaggeredTask):
    """Three agents; each sees a random bit (one-hot) and earns 1 for outputting it. Agent i's episode
    lasts 3 + 2i steps (a0 and a1 terminate, a2 is truncated)."""

    metadata = {"name": "bit_match_v0"}

    def __init__(self) -> None:
        super().__init__(["a0", "a1", "a2"], gym.spaces.Box(0.0, 1.0, (2,), np.float32), gym.spaces.Discrete(2))

    def truncates(self, i: int) -> bool:
        return i == 2

    def _draw(self):
        return np.eye(2, dtype=np.float32)[int(self._rng.integers(2))]

    def _reward(self, obs, action) -> float:
        return float(int(action) == int(obs[1]))


class BanditSwarm(StaggeredTask):
    """Four agents, each facing its own :class:`LinearBandit` draw (same spaces and reward). Agent i's
    episode lasts 6 + 2i steps and then terminates (i even) or is truncated (i odd)."""

    metadata = {"name": "bandit_swarm_v0"}
    first = 6

    def __init__(self) -> None:
        self._task = LinearBandit()
        super().__init__([f"r{i}" for i in range(4)], self._task.observation_space, self._task.action_space)

    def truncates(self, i: int) -> bool:
        return i % 2 == 1

    def _draw(self):
        return self._rng.uniform(-1.0, 1.0, 2).astype(np.float32)

    def _reward(self, obs, action) -> float:
        return -float(np.mean((np.asarray(action) - self._task.best_action(obs)) ** 2))
