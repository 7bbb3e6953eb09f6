"""Shared by the continuous-control agent tests (DDPG, TD3, SAC): a tiny learnable task and weight checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


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
