"""DDPG — Deep Deterministic Policy Gradient — for 1-D Box actions, shaped as an ``Agent``.

Algorithm (Lillicrap et al. 2016, "Continuous control with deep reinforcement learning", ICLR,
Algorithm 1): a deterministic actor ``μ_φ(s)`` and a critic ``Q_θ(s, a)`` learned off-policy from a replay
buffer, with slowly tracking target networks (θ' ← τθ + (1 − τ)θ'):

- critic: minimise ``(Q_θ(s, a) − y)²``, ``y = r + γ (1 − terminated) · Q_θ'(s', μ_φ'(s'))`` (eq. 4–5);
- actor: deterministic policy gradient (Silver et al. 2014), i.e. minimise ``−Q_θ(s, μ_φ(s))`` (eq. 6).

Exploration adds Gaussian noise ``N(0, exploration_noise²)`` (the simpler choice of Fujimoto et al. 2018,
which works as well) or, with ``noise_type="ou"``, the paper's temporally correlated Ornstein–Uhlenbeck
noise ``x ← x − θ x dt + σ √dt ε`` (θ = 0.15; reset at each episode start) to ``μ(s)`` in ``[−1, 1]``
action units; the first ``learning_starts`` steps are uniformly random. As in Fujimoto et al.'s DDPG
re-implementation and Stable-Baselines3, the action enters the critic at its input and there is no critic
weight decay. The shared machinery (networks, interaction loop, weights, FedProx, checkpoints) is in
``agents.offpolicy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.offpolicy import ContinuousAgent, ContinuousConfig, DeterministicActor

#: Tuned hyperparameters by env id (``DDPGAgent(obs_space, act_space, **PRESETS["Pendulum-v1"])``).
PRESETS: dict[str, dict[str, Any]] = {
    # rl-zoo's DDPG Pendulum settings (γ 0.98, lr 1e-3, noise 0.1, batch 256) with a 1k-step warm-up and
    # 64-unit nets: evaluation return ≥ −250 by 4k-6k steps and ≈ −115 at 20k on seeds 0-2.
    "Pendulum-v1": dict(
        gamma=0.98,
        actor_lr=1e-3,
        critic_lr=1e-3,
        buffer_size=200_000,
        learning_starts=1_000,
        batch_size=256,
        hidden_sizes=(64, 64),
        exploration_noise=0.1,
    ),
}


@dataclass(frozen=True)
class DDPGConfig(ContinuousConfig):
    """DDPG hyperparameters (defaults in the spirit of Lillicrap et al. 2016 with the 256-unit nets and
    batch of later re-implementations). See :class:`agents.offpolicy.ContinuousConfig` for the rest."""

    actor_lr: float = 1e-4  # Lillicrap et al.: 1e-4 actor, 1e-3 critic
    critic_lr: float = 1e-3
    exploration_noise: float = 0.1  # σ of the behaviour noise, in [−1, 1] action units
    noise_type: str = "gaussian"  # "gaussian" or "ou" (Ornstein–Uhlenbeck, as in the paper)
    ou_theta: float = 0.15  # OU mean reversion θ
    ou_dt: float = 1e-2  # OU time step (as in OpenAI Baselines / Stable-Baselines3)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._float("exploration_noise", 0.0, math.inf)
        self._choice("noise_type", ("gaussian", "ou"))
        self._float("ou_theta", 0.0, math.inf)
        self._float("ou_dt", 0.0, math.inf, lo_open=True)


class DDPGAgent(ContinuousAgent):
    """DDPG on a 1-D Box action space and a 1-D Box observation space (module docstring for details)."""

    name = "ddpg"
    algorithm = "DDPG"
    config_class = DDPGConfig
    config: DDPGConfig

    critic_k = 1

    def _make_actor(self, cfg: DDPGConfig) -> DeterministicActor:
        self._ou_state = np.zeros(self.act_dim, dtype=np.float32)
        self._ou_batch: np.ndarray | None = None  # per-sub-env OU states on a vector env (not checkpointed)
        return DeterministicActor(self.obs_dim, self.act_dim, cfg.hidden_sizes, cfg.activation)

    # ----- exploration noise -----------------------------------------------------------------------------
    def _noise(self, shape: tuple[int, ...]) -> np.ndarray:
        """Behaviour noise for one action ``(A,)`` or a batch ``(N, A)`` (one OU process per sub-env)."""
        cfg = self.config
        eps = self._rng.standard_normal(shape, dtype=np.float32)
        if cfg.noise_type == "gaussian":
            return cfg.exploration_noise * eps
        # Ornstein–Uhlenbeck (Uhlenbeck & Ornstein 1930), Euler–Maruyama step with mean 0
        if len(shape) == 1 or shape[0] == 1:
            x = self._ou_state.reshape(shape)
        else:
            if self._ou_batch is None or self._ou_batch.shape != shape:
                self._ou_batch = np.zeros(shape, dtype=np.float32)
            x = self._ou_batch
        x += -cfg.ou_theta * x * cfg.ou_dt + cfg.exploration_noise * math.sqrt(cfg.ou_dt) * eps
        return x.copy()

    def _episodes_started(self, rows: np.ndarray) -> None:
        if self._stepper is None or self._stepper.num_envs == 1:
            self._ou_state[:] = 0.0
        elif self._ou_batch is not None:
            self._ou_batch[rows[rows < len(self._ou_batch)]] = 0.0

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"ou_state": torch.from_numpy(self._ou_state)}  # shares memory: load() copies into it

    def _policy(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        a = self.actor.action(obs)
        if explore:
            a += self._noise(a.shape)
            np.clip(a, -1.0, 1.0, out=a)
        return a

    # ----- one gradient step -----------------------------------------------------------------------------
    def _update(self) -> dict[str, float]:
        obs, actions, rewards, next_obs, discounts = self._sample()

        # Critic: regress Q(s, a) on y = r + γ(1 − d) Q'(s', μ'(s')).
        with torch.no_grad():
            next_q = self.critic_target(next_obs, self.actor_target(next_obs))[0]
            y = rewards + discounts * next_q
        q = self.critic(obs, actions)[0]
        critic_loss = F.mse_loss(q, y)
        self._descend(critic_loss, self.critic_optimizer, prefix="critic.")

        # Actor: ascend Q(s, μ(s)) (deterministic policy gradient); the critic is frozen in this pass.
        actor_loss = -self._q_for_actor(obs, self.actor(obs)).mean()
        self._descend(actor_loss, self.actor_optimizer, prefix="actor.")

        self._polyak("critic")
        self._polyak("actor")
        self.num_updates += 1
        return {"loss/critic": critic_loss.item(), "loss/actor": actor_loss.item()}
