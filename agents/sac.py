"""SAC — Soft Actor-Critic with automatic entropy tuning — for 1-D Box actions, shaped as an ``Agent``.

Algorithm (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905,
Algorithm 1 — the "v2" without a separate value network):

- twin soft Q-functions regress on ``y = r + γ (1 − terminated) · (min_i Q'_i(s', a') − α log π(a'|s'))``,
  ``a' ~ π(·|s')`` (eq. 3, 5, with the clipped double-Q of Fujimoto et al. 2018), loss ``½ (Q_i − y)²``;
- the policy ``a = tanh(u)``, ``u ~ N(m(s), σ(s)²)`` minimises ``E[α log π(a|s) − min_i Q_i(s, a)]`` with the
  reparameterisation trick (eq. 7, 11) and the tanh log-prob correction (appendix C; see
  :class:`agents.offpolicy.SquashedGaussianActor`);
- the temperature minimises ``J(α) = E[−α (log π(a|s) + H̄)]`` (eq. 18), with target entropy ``H̄ = −|A|``
  (section 5), optimised over ``log α`` as in the authors' code;
- critic targets track by Polyak averaging (τ); there is no target actor.

The first ``learning_starts`` steps are uniformly random; afterwards actions are sampled from π, and
``act(obs, explore=False)`` returns ``tanh(m(s))``. The shared machinery (networks, interaction loop,
weights, FedProx, checkpoints) is in ``agents.offpolicy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.base import AgentError
from agents.offpolicy import ContinuousAgent, ContinuousConfig, SquashedGaussianActor, adam

#: Tuned hyperparameters by env id (``SACAgent(obs_space, act_space, **PRESETS["Pendulum-v1"])``).
PRESETS: dict[str, dict[str, Any]] = {
    # rl-zoo's SAC Pendulum settings (lr 1e-3, batch 256, τ 0.005, γ 0.99, α auto) with a 1k-step warm-up
    # and 64-unit nets: evaluation return ≥ −250 by 4k-6k steps and ≈ −110 at 20k on seeds 0-2.
    "Pendulum-v1": dict(
        actor_lr=1e-3,
        critic_lr=1e-3,
        alpha_lr=1e-3,
        learning_starts=1_000,
        batch_size=256,
        hidden_sizes=(64, 64),
    ),
}


@dataclass(frozen=True)
class SACConfig(ContinuousConfig):
    """SAC hyperparameters (defaults: Haarnoja et al. 2018, Table 1: lr 3e-4, 256-unit nets, batch 256,
    τ 0.005, γ 0.99). See :class:`agents.offpolicy.ContinuousConfig` for the rest."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4  # Adam step size of log α
    init_alpha: float = 1.0  # initial temperature α
    autotune: bool = True  # learn α (eq. 18); False keeps α = init_alpha
    target_entropy: float | None = None  # H̄; None means −|A| (the paper's heuristic)
    log_std_min: float = -20.0  # clip range of the policy's log σ (as in the authors' code)
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._float("alpha_lr", 0.0, math.inf, lo_open=True)
        self._float("init_alpha", 0.0, math.inf, lo_open=True)
        self._bool("autotune")
        if self.target_entropy is not None:
            self._float("target_entropy", -math.inf, math.inf)
        self._float("log_std_min", -math.inf, math.inf)
        self._float("log_std_max", -math.inf, math.inf)
        if self.log_std_min >= self.log_std_max:
            raise AgentError(f"log_std_min={self.log_std_min!r} must be < log_std_max={self.log_std_max!r}")


class SACAgent(ContinuousAgent):
    """SAC on a 1-D Box action space and a 1-D Box observation space (module docstring for details)."""

    name = "sac"
    algorithm = "SAC"
    config_class = SACConfig
    config: SACConfig

    target_actor = False  # SAC has no target actor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        # temperature: a local parameter (never shared), learned over log α
        self.log_alpha = torch.nn.Parameter(torch.full((1,), math.log(cfg.init_alpha)))
        self.alpha_optimizer = adam([self.log_alpha], cfg.alpha_lr)
        self.target_entropy = -float(self.act_dim) if cfg.target_entropy is None else cfg.target_entropy

    def _make_actor(self, cfg: SACConfig) -> SquashedGaussianActor:
        return SquashedGaussianActor(self.obs_dim, self.act_dim, cfg.hidden_sizes, cfg.activation,
                                     log_std_bounds=(cfg.log_std_min, cfg.log_std_max))

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super()._optimizers(), "alpha": self.alpha_optimizer}

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"log_alpha": self.log_alpha.data}

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def _policy(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        shape = (*obs.shape[:-1], self.act_dim)  # one row per observation row
        noise = self._rng.standard_normal(shape, dtype=np.float32) if explore else None
        return self.actor.action(obs, noise)

    def _update(self) -> dict[str, float]:
        cfg = self.config
        obs, actions, rewards, next_obs, discounts = self._sample()
        alpha = self.log_alpha.detach().exp()

        # Critics: ½ (Q_i(s, a) − y)², y = r + γ(1 − d)(min_i Q'_i(s', a') − α log π(a'|s')), a' ~ π(·|s').
        with torch.no_grad():
            next_actions, next_log_prob = self.actor(next_obs, self._gen)
            next_q = self.critic_target(next_obs, next_actions).amin(dim=0) - alpha * next_log_prob
            y = rewards + discounts * next_q
        q = self.critic(obs, actions)  # (2, B)
        critic_loss = F.mse_loss(q, y.expand_as(q))  # Σ_i ½ MSE(Q_i, y), in one fused op
        self._descend(critic_loss, self.critic_optimizer, prefix="critic.")

        # Actor: E[α log π(ã|s) − min_i Q_i(s, ã)], ã = tanh(m + σε) reparameterised (critics frozen).
        new_actions, log_prob = self.actor(obs, self._gen)
        q_new = self._q_for_actor(obs, new_actions).amin(dim=0)
        actor_loss = (alpha * log_prob - q_new).mean()
        loss = actor_loss
        stats = {"loss/critic": critic_loss.item(), "loss/actor": actor_loss.item()}
        # Temperature: J(log α) = −E[log α · (log π(ã|s) + H̄)] pulls the policy entropy towards H̄. Its
        # parameter is disjoint from the actor's, so one backward pass serves both losses.
        if cfg.autotune:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            loss = loss + alpha_loss
            stats["loss/alpha"] = alpha_loss.item()
        self._descend(loss, self.actor_optimizer, *((self.alpha_optimizer,) if cfg.autotune else ()), prefix="actor.")

        self._polyak("critic")
        self.num_updates += 1
        stats["train/alpha"] = alpha.item()
        return stats
