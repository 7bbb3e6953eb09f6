"""DQN with invalid-action masking and a per-client, time-varying ε schedule (what SSCO's DRL placement needs).

Action masking (Huang & Ontañón 2022, "A Closer Look at Invalid Action Masking in Policy Gradient
Algorithms", FLAIRS; for value methods: acting and bootstrapping only over valid actions): the env appends
its 0/1 action mask as the last ``n_actions`` entries of the observation (e.g. ``frl/SfcOrchestration-v0``),
so the mask travels through the replay buffer with the observation and no agent API changes. With a mask:

- acting: greedy ``argmax_{a valid} Q(s, a)``; exploring: uniform over the valid actions;
- the TD target maximises over the valid actions of ``s'`` only: ``a* = argmax_{a valid(s')} Q_online(s', a)``
  (double DQN) or ``max_{a valid(s')} Q_target(s', a)``.

A row whose mask is all zero (not produced by envs that mask) falls back to every action.

Time-varying local exploration (SSCO, Huang et al., IEEE JSAC 39(8) 2021, "time-variant local model
explorations"): with ``exploration_schedule="exponential"`` client ``i``'s ε decays as
``ε_i(t) = ε_final + (ε_init − ε_final) exp(−t / T_i)`` with ``T_i = exploration_steps / 3 ·
2**(exploration_spread · U(−1, 1))`` drawn once from the agent's seed, so the clients of a federation explore
on different, decaying schedules (the exact schedule of the paper is not published in a reproducible form;
this one is a documented design choice). ``"linear"`` is DQN's schedule.

Everything else (networks, replay, weights, federation hooks) is :class:`agents.dqn.DQNAgent` unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from agents.base import AgentError, linear_epsilon
from agents.dqn import DQNAgent, DQNConfig

__all__ = ["MaskedDQNAgent", "MaskedDQNConfig"]


@dataclass(frozen=True)
class MaskedDQNConfig(DQNConfig):
    """DQN hyperparameters plus the mask layout and the exploration schedule."""

    mask_in_obs: bool = True  # the last n_actions observation entries are the action mask (> 0.5: valid)
    exploration_schedule: str = "linear"  # "linear" (DQN) or "exponential" (SSCO-style, per-client time constant)
    exploration_spread: float = 0.0  # per-client spread of the exponential schedule's time constant, [0, 1]

    def __post_init__(self) -> None:
        super().__post_init__()
        self._bool("mask_in_obs")
        self._choice("exploration_schedule", ("linear", "exponential"))
        self._float("exploration_spread", 0.0, 1.0)


class MaskedDQNAgent(DQNAgent):
    """DQN acting and bootstrapping over the valid actions only, with a per-client time-varying ε (SSCO; see the
    module doc)."""

    name = "masked-dqn"
    algorithm = "DQN (masked)"
    config_class = MaskedDQNConfig
    config: MaskedDQNConfig

    def _build(self, cfg: MaskedDQNConfig, seed: int | np.random.SeedSequence) -> None:
        super()._build(cfg, seed)
        if cfg.mask_in_obs and (self._obs_discrete or self.obs_dim < self.num_actions):
            raise AgentError(f"mask_in_obs needs a Box observation of at least {self.num_actions} entries "
                             f"(the action mask); got {self.observation_space!r}")
        spread = 2.0 ** (cfg.exploration_spread * self._rng.uniform(-1.0, 1.0))
        # a live tensor, so checkpoints keep it (``_extra_state``): a loaded agent explores on the same schedule
        self._eps_tau = torch.tensor([max(cfg.exploration_steps, 1) / 3.0 * spread], dtype=torch.float64)

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"exploration_time_constant": self._eps_tau}

    @property
    def exploration_time_constant(self) -> float:
        """``T_i`` of this client's exponential ε schedule (steps)."""
        return float(self._eps_tau[0])

    # ----- masks ---------------------------------------------------------------------------------------
    def _mask(self, stored: np.ndarray) -> np.ndarray | None:
        """Valid-action rows ``(N, A)`` of stored observations, every action where a row has none."""
        if not self.config.mask_in_obs:
            return None
        m = stored[:, -self.num_actions:] > 0.5
        none = ~m.any(1)
        if none.any():
            m[none] = True
        return m

    @property
    def epsilon(self) -> float:
        cfg = self.config
        if cfg.exploration_schedule == "linear":
            return linear_epsilon(self.total_steps, cfg.exploration_initial_eps, cfg.exploration_final_eps,
                                  cfg.exploration_steps)
        return cfg.exploration_final_eps + (cfg.exploration_initial_eps - cfg.exploration_final_eps) * math.exp(
            -self.total_steps / self.exploration_time_constant)

    def _greedy(self, stored: np.ndarray) -> np.ndarray:
        scores = self.q.acting_output(self._encode(stored))      # argmax-equivalent to Q (dueling: A)
        m = self._mask(stored)
        if m is not None:
            scores = np.where(m, scores, -np.inf)
        return scores.argmax(-1)

    def _random_valid(self, stored: np.ndarray) -> np.ndarray:
        m = self._mask(stored)
        if m is None:
            return self._rng.integers(self.num_actions, size=len(stored))
        # uniform over the valid actions: the argmax of uniform keys on valid entries
        keys = np.where(m, self._rng.random(m.shape), -1.0)
        return keys.argmax(-1)

    # ----- acting --------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray | int, *, explore: bool = True) -> int:
        x = self._stored_batch(np.asarray(obs)[None])
        if explore and self._rng.random() < self.epsilon:
            return int(self._random_valid(x)[0]) + self._action_start
        return int(self._greedy(x)[0]) + self._action_start

    def _behaviour(self, obs: np.ndarray) -> np.ndarray:
        explore = self._rng.random(len(obs)) < self.epsilon
        a = self._greedy(obs)
        if explore.any():
            a = np.where(explore, self._random_valid(obs), a)
        return a

    # ----- learning ------------------------------------------------------------------------------------
    def _valid_next_actions(self, next_obs: torch.Tensor) -> torch.Tensor | None:
        """The TD target maximises over the valid actions of ``s'`` only (module docstring)."""
        if not self.config.mask_in_obs:
            return None
        valid = next_obs[:, -self.num_actions:] > 0.5
        return valid | ~valid.any(1, keepdim=True)
