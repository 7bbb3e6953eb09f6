"""Batched core of ``frl/CartPoleHetero-v0``: B carts, each with its own pole and masses, in numpy array operations.

``gymnasium.make_vec("frl/CartPoleHetero-v0", num_envs=B, vectorization_mode="vector_entry_point",
configs=[cfg_0, ..., cfg_{B-1}])`` (or ``config=cfg`` for every instance) returns a
:class:`CartPoleHeteroVectorEnv`. Instance ``i`` is ``gymnasium.make("frl/CartPoleHetero-v0", config=configs[i])``
(CartPole-v1 dynamics of Barto, Sutton & Anderson 1983 as Gymnasium writes them, Euler steps of 0.02 s,
the 500-step time limit) bit for bit: the same observations, rewards, terminations and truncations as a
``SyncVectorEnv`` of single envs given the same seeds and actions (autoreset mode ``NEXT_STEP``; ``reset(seed=s)``
seeds instance ``i`` with ``s + i``, a list seeds each one).

Why it is exact: each instance keeps its own ``np_random`` (Gymnasium's seeding, as the single env) and draws its
start state from it at every reset, in instance order, exactly as the single env; the dynamics are Gymnasium's
``CartPoleEnv.step`` expressions evaluated elementwise over the instance axis with per-instance parameters, in
the same operation order (IEEE double arithmetic does not depend on the batching). Gymnasium's own
``CartPoleVectorEnv`` cannot serve here: it has one pole length and one generator for all instances.
``tests/envs/test_batched_cartpole_hetero.py`` checks equality with a ``SyncVectorEnv`` of single envs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random as make_np_random
from gymnasium.vector.utils import batch_space

from envs.batched import ArrayVectorEnv, instance_configs, step_actions
from envs.cartpole_hetero import ENTRY, CartPoleHeteroConfig, CartPoleHeteroEnv
from envs.registry import EnvConfigError

__all__ = ["CartPoleHeteroVectorEnv", "make_vector_env"]


class CartPoleHeteroVectorEnv(ArrayVectorEnv):
    """B heterogeneous carts stepped together (see the module docstring)."""

    def __init__(self, num_envs: int | None = None, configs: Sequence[CartPoleHeteroConfig] | None = None,
                 config: CartPoleHeteroConfig | None = None, render_mode: str | None = None,
                 max_episode_steps: int | None = None, **overrides: Any) -> None:
        if render_mode is not None:
            raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None (the batched core does not render)")
        cfgs = instance_configs(CartPoleHeteroConfig, num_envs, configs, config, overrides)
        self.configs = cfgs
        self.num_envs = b = len(cfgs)
        self.render_mode = None
        self.max_episode_steps = int(max_episode_steps or ENTRY.max_episode_steps)
        proto = CartPoleHeteroEnv(cfgs[0])
        self.single_action_space = proto.action_space
        self.single_observation_space = proto.observation_space
        self.action_space = batch_space(self.single_action_space, b)
        self.observation_space = batch_space(self.single_observation_space, b)
        # per-instance parameters, computed as the single env computes them (Python floats, then arrays)
        def col(f: Any) -> np.ndarray:
            return np.array([f(c) for c in cfgs], dtype=np.float64)

        self._length = col(lambda c: c.half_pole_length)
        self._masspole = col(lambda c: c.masspole)
        self._total_mass = col(lambda c: c.masspole + c.masscart)
        self._polemass_length = col(lambda c: c.masspole * c.half_pole_length)
        self._force_mag = col(lambda c: c.force_mag)
        self.gravity, self.tau = proto.gravity, proto.tau
        self.x_threshold, self.theta_threshold_radians = proto.x_threshold, proto.theta_threshold_radians
        self._state = np.zeros((4, b))
        self._steps = np.zeros(b, dtype=np.int64)
        self._autoreset = np.zeros(b, dtype=bool)
        self._np_random: list[np.random.Generator | None] = [None] * b
        self._has_reset = False

    def _reset_many(self, idx: Sequence[int], seeds: Sequence[int | None]) -> None:
        for i, seed in zip(idx, seeds, strict=True):
            if seed is not None or self._np_random[i] is None:
                self._np_random[i] = make_np_random(seed)[0]
            self._state[:, i] = self._np_random[i].uniform(low=-0.05, high=0.05, size=(4,))
            self._steps[i] = 0

    def _reset_observation(self) -> np.ndarray:
        return self._state.T.astype(np.float32)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        b = self.num_envs
        a = step_actions(actions, b, 2, self._has_reset)
        x, x_dot, theta, theta_dot = self._state
        # CartPoleEnv.step's expressions, in its operation order, over the instance axis
        force = np.where(a == 1, self._force_mag, -self._force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self._polemass_length * np.square(theta_dot) * sintheta) / self._total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self._length * (4.0 / 3.0 - self._masspole * np.square(costheta) / self._total_mass))
        xacc = temp - self._polemass_length * thetaacc * costheta / self._total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        state = np.stack((x, x_dot, theta, theta_dot))
        terminated = ((x < -self.x_threshold) | (x > self.x_threshold)
                      | (theta < -self.theta_threshold_radians) | (theta > self.theta_threshold_radians))
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps       # TimeLimit: elapsed steps >= the limit
        reward = np.ones(b)
        ar = self._autoreset
        if ar.any():  # NEXT_STEP: an instance whose episode ended last step restarts now, its action ignored
            keep = ~ar
            self._state = state
            self._reset_many(np.flatnonzero(ar).tolist(), [None] * int(ar.sum()))
            reward[ar] = 0.0
            terminated &= keep
            truncated &= keep
        else:
            self._state = state
        self._autoreset = terminated | truncated
        return self._state.T.astype(np.float32), reward, terminated, truncated, {}


def make_vector_env(num_envs: int | None = None, configs: Sequence[CartPoleHeteroConfig] | None = None,
                    config: CartPoleHeteroConfig | None = None, **kwargs: Any) -> CartPoleHeteroVectorEnv:
    """``vector_entry_point`` of ``frl/CartPoleHetero-v0`` (``gymnasium.make_vec`` passes ``num_envs``)."""
    return CartPoleHeteroVectorEnv(num_envs=num_envs, configs=configs, config=config, **kwargs)

