"""Synchronous Advantage Actor-Critic (A2C), readable top to bottom.

Algorithm (Mnih, Badia, Mirza, Graves, Lillicrap, Harley, Silver & Kavukcuoglu 2016, "Asynchronous Methods
for Deep Reinforcement Learning", ICML, Algorithm S3, run synchronously over ``N`` sub-environments as in
OpenAI baselines' A2C): collect ``n_steps`` steps per sub-env, compute advantages Â_t and returns R̂_t, and
take *one* gradient step on

    L = −E[log π(a_t|s_t) Â_t] + c_v E[(V(s_t) − R̂_t)²] − c_e E[H(π(·|s_t))].

With ``gae_lambda = 1`` (default) Â_t = R̂_t − V(s_t) where R̂_t is the n-step return bootstrapped from
V at the rollout end (the paper's "forward view" n-step return); λ < 1 gives GAE (Schulman et al. 2016),
see :mod:`agents.rollout`. Truncated episodes bootstrap from V(final observation), terminated ones do not.

Optimiser: RMSprop (α = 0.99, ε = 1e-5 as in Stable-Baselines3 / baselines; the paper's shared RMSprop
statistics are a per-process choice that does not apply here) or Adam. Defaults follow Stable-Baselines3's
A2C (``lr=7e-4, n_steps=5, vf_coef=0.5, max_grad_norm=0.5``, no advantage normalisation).

Because A2C has no importance ratio, a rollout that spans a ``set_weights`` between ``learn`` calls is
treated as on-policy for the new parameters (a small bias limited to that one update). See
:mod:`agents.onpolicy` for environments, normalisation, FedProx and personal heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from agents.onpolicy import OnPolicyAgent, OnPolicyConfig
from agents.rollout import gae


@dataclass(frozen=True)
class A2CConfig(OnPolicyConfig):
    """A2C hyperparameters (defaults: Stable-Baselines3's A2C)."""

    lr: float = 7e-4
    n_steps: int = 5  # rollout length per sub-env: one gradient step per n_steps × num_envs samples
    gae_lambda: float = 1.0  # 1.0: n-step returns (Mnih et al. 2016); < 1: GAE
    normalize_advantage: bool = False
    optimizer: str = "rmsprop"  # "rmsprop" or "adam"
    rms_alpha: float = 0.99  # RMSprop smoothing constant
    optimizer_eps: float = 1e-5

    def _validate(self) -> None:
        super()._validate()
        self._choice("optimizer", ("rmsprop", "adam"))
        self._float("rms_alpha", 0.0, 1.0, lo_open=True)
        self._float("optimizer_eps", 0.0, math.inf, lo_open=True)


# Tuned for the benchmark (bench/agents.py): A2C ≥ 200 evaluation return on CartPole-v1 within 200k steps.
# Keys are env ids; values are A2CConfig overrides plus "n_envs" and "total_steps" (see agents.ppo.PRESETS).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=8,
        total_steps=200_000,
        n_steps=5,
        lr=7e-4,
        gamma=0.99,
        ent_coef=0.0,
    ),
}


class A2CAgent(OnPolicyAgent):
    """Synchronous advantage actor-critic for Discrete or 1-D Box actions (see the module docstring)."""

    name = "a2c"
    config_class = A2CConfig
    algorithm = "A2C"
    config: A2CConfig

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "adam":
            return torch.optim.Adam(self._params, lr=cfg.lr, eps=cfg.optimizer_eps, fused=True)
        return torch.optim.RMSprop(self._params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.optimizer_eps, foreach=True)

    def _process_rollout(self) -> dict[str, float]:
        cfg, buf, policy = self.config, self.buffer, self.policy
        T, N = buf.pos, buf.num_envs

        # 1. one forward pass over the rollout (with gradients), bootstrap values without
        flat_obs = self._policy_input(buf.obs[:T].reshape(T * N, *buf.obs.shape[2:]))
        flat_act = torch.from_numpy(buf.actions[:T].reshape(T * N, *buf.actions.shape[2:]))
        out, v = policy(flat_obs)
        with torch.no_grad():
            last_values = policy.value(self._current_input()).numpy()
        boot_values = self._boot_values(T)
        self._end_of_rollout_statistics()

        # 2. n-step / GAE advantages and returns from the detached values
        values = v.detach().numpy().reshape(T, N)
        adv, ret = gae(buf.rewards[:T], values, buf.dones[:T], boot_values, last_values, cfg.gamma, cfg.gae_lambda)
        adv_t, ret_t = torch.from_numpy(adv.reshape(-1)), torch.from_numpy(ret.reshape(-1))

        # 3. one gradient step, averaged over the valid samples
        log_prob, entropy = policy.log_prob_entropy(out, flat_act)
        valid = buf.valid[:T].reshape(-1)
        if not valid.all():
            sel = torch.from_numpy(np.flatnonzero(valid))
            log_prob, v, adv_t, ret_t = log_prob[sel], v[sel], adv_t[sel], ret_t[sel]
            entropy = entropy[sel] if entropy.dim() else entropy
        if cfg.normalize_advantage and adv_t.numel() > 1:
            adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
        pg_loss = -(log_prob * adv_t).mean()
        v_loss = torch.mean((v - ret_t) ** 2)
        entropy = entropy.mean()
        self._step_optimizer(pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy)
        buf.reset()
        return {
            "loss/policy": pg_loss.item(),
            "loss/value": v_loss.item(),
            "loss/entropy": entropy.item(),
        }
