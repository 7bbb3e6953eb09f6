"""TD3 — Twin Delayed Deep Deterministic policy gradient — for 1-D Box actions, shaped as an ``Agent``.

Algorithm (Fujimoto, van Hoof & Meger 2018, "Addressing Function Approximation Error in Actor-Critic
Methods", ICML, Algorithm 1), three changes to DDPG:

1. Clipped double Q-learning: two critics regress on one target built from the smaller target estimate,
   ``y = r + γ (1 − terminated) · min_{i=1,2} Q'_i(s', ã)`` (eq. 10).
2. Target policy smoothing: ``ã = clip(μ'(s') + clip(ε, −c, c), −1, 1)``, ``ε ~ N(0, σ̃²)`` (eq. 14).
3. Delayed policy updates: the actor ``∇_φ J = E[∇_a Q_1(s, a)|_{a=μ_φ(s)} ∇_φ μ_φ(s)]`` and the targets
   (Polyak τ) are updated once every ``policy_delay`` critic updates.

Exploration adds Gaussian noise ``N(0, exploration_noise²)`` to ``μ(s)`` in ``[−1, 1]`` action units;
the first ``learning_starts`` steps are uniformly random. The shared machinery (networks, interaction loop,
weights, FedProx, checkpoints) is in ``agents.offpolicy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.ddpg import PRESETS as DDPG_PRESETS
from agents.offpolicy import ContinuousAgent, ContinuousConfig, DeterministicActor

#: Tuned hyperparameters by env id (``TD3Agent(obs_space, act_space, **PRESETS["Pendulum-v1"])``): rl-zoo's
#: TD3 Pendulum settings are its DDPG ones; evaluation return ≥ −250 by 6k-8k steps, ≈ −110 at 20k (seeds 0-2).
PRESETS: dict[str, dict[str, Any]] = {env: dict(hp) for env, hp in DDPG_PRESETS.items()}


@dataclass(frozen=True)
class TD3Config(ContinuousConfig):
    """TD3 hyperparameters (defaults: Fujimoto et al. 2018, Table 3, with the 256-unit nets and 3e-4 step
    sizes of the authors' updated code). See :class:`agents.offpolicy.ContinuousConfig` for the rest."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    exploration_noise: float = 0.1  # σ of the Gaussian behaviour noise, in [−1, 1] action units
    policy_noise: float = 0.2  # σ̃ of the target policy smoothing noise
    noise_clip: float = 0.5  # c: the smoothing noise is clipped to [−c, c]
    policy_delay: int = 2  # d: actor and target updates every d critic updates

    def __post_init__(self) -> None:
        super().__post_init__()
        self._float("exploration_noise", 0.0, math.inf)
        self._float("policy_noise", 0.0, math.inf)
        self._float("noise_clip", 0.0, math.inf)
        self._int("policy_delay", 1)


class TD3Agent(ContinuousAgent):
    """TD3 on a 1-D Box action space and a 1-D Box observation space (module docstring for details)."""

    name = "td3"
    algorithm = "TD3"
    config_class = TD3Config
    config: TD3Config

    def _make_actor(self, cfg: TD3Config) -> DeterministicActor:
        return DeterministicActor(self.obs_dim, self.act_dim, cfg.hidden_sizes, cfg.activation)

    def _policy(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        a = self.actor.action(obs)
        if explore:
            a += self.config.exploration_noise * self._rng.standard_normal(a.shape, dtype=np.float32)
            np.clip(a, -1.0, 1.0, out=a)
        return a

    def _smoothed_target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Target policy smoothing (eq. 14): ``ã = clip(μ'(s') + clip(ε, −c, c), −1, 1)``, ``ε ~ N(0, σ̃²)``."""
        cfg = self.config
        noise = torch.randn((len(next_obs), self.act_dim), generator=self._gen).mul_(cfg.policy_noise)
        noise.clamp_(-cfg.noise_clip, cfg.noise_clip)
        return (self.actor_target(next_obs) + noise).clamp_(-1.0, 1.0)

    def _update(self) -> dict[str, float]:
        cfg = self.config
        obs, actions, rewards, next_obs, discounts = self._sample()

        # Critic: both Q_i regress on y = r + γ(1 − d) min_i Q'_i(s', ã), ã the smoothed target action.
        with torch.no_grad():
            next_q = self.critic_target(next_obs, self._smoothed_target_actions(next_obs)).amin(dim=0)
            y = rewards + discounts * next_q
        q = self.critic(obs, actions)  # (2, B)
        critic_loss = 2.0 * F.mse_loss(q, y.expand_as(q))  # Σ_i MSE(Q_i, y), in one fused op
        self._descend(critic_loss, self.critic_optimizer, prefix="critic.")
        self.num_updates += 1
        stats = {"loss/critic": critic_loss.item()}

        # Delayed actor and target updates: maximise Q_1(s, μ(s)); the critic is frozen in this pass.
        if self.num_updates % cfg.policy_delay == 0:
            actor_loss = -self._q_for_actor(obs, self.actor(obs), first=1).mean()
            self._descend(actor_loss, self.actor_optimizer, prefix="actor.")
            self._polyak("critic")
            self._polyak("actor")
            stats["loss/actor"] = actor_loss.item()
        return stats
