"""Proximal Policy Optimization with clipped surrogate objective and GAE, readable top to bottom.

Algorithm (Schulman, Wolski, Dhariwal, Radford & Klimov 2017, "Proximal Policy Optimization Algorithms",
arXiv:1707.06347, Algorithm 1): collect ``n_steps`` steps from each of ``N`` sub-environments with the
current policy π_old, compute advantages with GAE (Schulman et al. 2016, see :mod:`agents.rollout`), then
run ``n_epochs`` passes of minibatch gradient steps on

    L = −E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)] + c_v E[(V(s) − R̂)²] − c_e E[H(π(·|s))],
    ρ = π(a|s) / π_old(a|s)                                                      (PPO paper, eqs. 7 and 9)

Options, all in :class:`PPOConfig`:

- advantage standardisation per minibatch (``normalize_advantage``, on), entropy bonus ``ent_coef``,
  global gradient-norm clipping ``max_grad_norm`` (Engstrom et al. 2020, "Implementation Matters in Deep
  Policy Gradients", ICLR, list these code-level details);
- value clipping (``clip_range_vf``, off): the value loss is max((V − R̂)², (V_clip − R̂)²) with
  V_clip = V_old + clip(V − V_old, ±clip_range_vf), as in the OpenAI baselines ``ppo2`` code;
- early stop of the epochs once the approximate KL (Schulman 2020, "Approximating KL divergence",
  k3 = (ρ − 1) − log ρ) exceeds 1.5 × ``target_kl`` (off), as Stable-Baselines3 does;
- observation normalisation / reward scaling (off) and linear learning-rate annealing
  (``anneal_lr_steps``, off: federated rounds do not know the total budget), see
  :mod:`agents.onpolicy`;
- FedProx term (μ/2)||θ − θ_anchor||² (Li et al. 2020) and ``personal="head"`` (FedPer), see
  :mod:`agents.onpolicy`.

Rollouts span ``learn`` calls (the partial rollout stays in the buffer; see :mod:`agents.onpolicy`). The
behaviour log-probabilities π_old(a|s) are computed in one batched pass when the rollout is processed — or,
if parameters are replaced mid-rollout (``set_weights``/``load`` between ``learn`` calls), for the rows
collected so far just before the replacement, so the importance ratio always refers to the policy that
acted. Values V_old are those of the critic at processing time. Reported losses, approximate KL and clip
fraction are averages over the minibatches of the last epoch (of all epochs when ``target_kl`` is set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from agents.onpolicy import OnPolicyAgent, OnPolicyConfig
from agents.rollout import gae


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    """PPO hyperparameters. Defaults are those of Schulman et al. (2017, Table 3, MuJoCo) as used by
    Stable-Baselines3 (``n_steps=2048, batch_size=64, n_epochs=10, gae_lambda=0.95, clip_range=0.2``)."""

    lr: float = 3e-4
    n_steps: int = 2048  # rollout length per sub-env
    batch_size: int = 64  # minibatch size (over n_steps × num_envs samples)
    n_epochs: int = 10  # passes over the rollout per update
    clip_range: float = 0.2  # ε of the clipped surrogate
    clip_range_vf: float | None = None  # value clipping around V_old (None: off)
    target_kl: float | None = None  # early-stop the epochs when approx. KL > 1.5 target_kl (None: off)

    def _validate(self) -> None:
        super()._validate()
        self._int("batch_size", 1)
        self._int("n_epochs", 1)
        self._float("clip_range", 0.0, math.inf, lo_open=True)
        self._optional_float("clip_range_vf", 0.0, math.inf, lo_open=True)
        self._optional_float("target_kl", 0.0, math.inf, lo_open=True)


# Tuned for the benchmark (bench/agents.py): PPO ≥ 475 evaluation return on CartPole-v1 within 100k steps.
# Keys are env ids; values are PPOConfig overrides, plus "n_envs" (sub-envs of a gymnasium SyncVectorEnv;
# 1 = the plain env) and "total_steps" (the budget, also the annealing horizon where annealing is used).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=1,
        total_steps=100_000,
        n_steps=256,
        batch_size=64,
        n_epochs=10,
        lr=1e-3,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        anneal_lr_steps=100_000,
    ),
    "Pendulum-v1": dict(  # measured: evaluation return ≥ −250 from 40k steps on (seed 0), −179 at 100k
        n_envs=1,
        total_steps=100_000,
        n_steps=1024,
        batch_size=64,
        n_epochs=10,
        lr=1e-3,
        gamma=0.9,
        gae_lambda=0.95,
        clip_range=0.2,
        normalize_obs=True,
        log_std_init=-0.5,
    ),
}


class PPOAgent(OnPolicyAgent):
    """Clipped PPO with GAE for Discrete or 1-D Box actions (see the module docstring)."""

    name = "ppo"
    config_class = PPOConfig
    algorithm = "PPO"
    config: PPOConfig

    # ----- behaviour log-probabilities ------------------------------------------------------------------
    @torch.no_grad()
    def _record_behaviour(self) -> None:
        """log π_old(a|s) for the rows collected since the last call, with the current (acting) policy."""
        buf = self.buffer
        lo, hi = buf.evaluated, buf.pos
        if hi <= lo:
            return
        N = buf.num_envs
        obs = self._policy_input(buf.obs[lo:hi].reshape((hi - lo) * N, *buf.obs.shape[2:]))
        actions = torch.from_numpy(buf.actions[lo:hi].reshape((hi - lo) * N, *buf.actions.shape[2:]))
        out = self.policy.actor_out(obs)
        log_prob, _ = self.policy.log_prob_entropy(out, actions)
        buf.log_probs[lo:hi] = log_prob.reshape(hi - lo, N).numpy()
        buf.evaluated = hi

    def _before_params_change(self) -> None:
        if self.buffer is not None:
            self._record_behaviour()

    # ----- the update ----------------------------------------------------------------------------------
    def _process_rollout(self) -> dict[str, float]:
        cfg, buf, policy = self.config, self.buffer, self.policy
        T, N = buf.pos, buf.num_envs

        # 1. behaviour log-probs, values V_old(s_t), V(final obs) at truncations, V(s_T) after the rollout
        self._record_behaviour()
        flat_obs = self._policy_input(buf.obs[:T].reshape(T * N, *buf.obs.shape[2:]))
        with torch.no_grad():
            values = policy.value(flat_obs).numpy().reshape(T, N)
            last_values = policy.value(self._current_input()).numpy()
        boot_values = self._boot_values(T)
        self._end_of_rollout_statistics()  # observation statistics / reward scaling of this rollout

        # 2. GAE advantages and returns (Schulman et al. 2016)
        adv, ret = gae(buf.rewards[:T], values, buf.dones[:T], boot_values, last_values, cfg.gamma, cfg.gae_lambda)

        # 3. the valid samples as flat tensors
        valid = buf.valid[:T].reshape(-1)
        sel = None if valid.all() else torch.from_numpy(np.flatnonzero(valid))

        def flat(a: np.ndarray | torch.Tensor) -> torch.Tensor:
            t = a if isinstance(a, torch.Tensor) else torch.from_numpy(a.reshape(T * N, *a.shape[2:]))
            return t if sel is None else t[sel]

        obs_t = flat(flat_obs)
        act_t = flat(buf.actions[:T])
        old_logp_t = flat(buf.log_probs[:T])
        old_v_t, adv_t, ret_t = flat(values), flat(adv), flat(ret)
        n = obs_t.shape[0]

        # 4. n_epochs of minibatch steps on the clipped surrogate
        eps, eps_vf = cfg.clip_range, cfg.clip_range_vf
        sums = torch.zeros(5, dtype=torch.float64)
        n_mb = 0
        stop = False
        for epoch in range(cfg.n_epochs):
            # statistics of the last epoch only (every epoch when the KL early stop needs them)
            track = epoch == cfg.n_epochs - 1 or cfg.target_kl is not None
            perm = torch.from_numpy(self._rng.permutation(n))
            for start in range(0, n, cfg.batch_size):
                mb = perm[start : start + cfg.batch_size]
                out, v = policy(obs_t[mb])
                log_prob, entropy = policy.log_prob_entropy(out, act_t[mb])
                log_ratio = log_prob - old_logp_t[mb]
                ratio = torch.exp(log_ratio)
                a = adv_t[mb]
                if cfg.normalize_advantage and a.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)).mean()
                r = ret_t[mb]
                if eps_vf is None:
                    v_loss = torch.mean((v - r) ** 2)
                else:
                    v_old = old_v_t[mb]
                    v_clip = v_old + torch.clamp(v - v_old, -eps_vf, eps_vf)
                    v_loss = torch.mean(torch.max((v - r) ** 2, (v_clip - r) ** 2))
                entropy = entropy.mean()
                if track:
                    with torch.no_grad():
                        approx_kl = torch.mean((ratio - 1.0) - log_ratio)
                        clipped = torch.mean(((ratio - 1.0).abs() > eps).float())
                    if cfg.target_kl is not None and float(approx_kl) > 1.5 * cfg.target_kl:
                        stop = True
                        break
                self._step_optimizer(pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy)
                if track:
                    sums += torch.stack([pg_loss.detach(), v_loss.detach(), entropy.detach(), approx_kl, clipped])
                    n_mb += 1
            if stop:
                break
        buf.reset()

        stats = dict(
            zip(
                ("loss/policy", "loss/value", "loss/entropy", "train/approx_kl", "train/clip_fraction"),
                (sums / max(n_mb, 1)).tolist(),
                strict=True,
            )
        )
        var_ret = float(ret_t.var()) if n > 1 else 0.0
        stats["train/explained_variance"] = (
            1.0 - float((ret_t - old_v_t).var()) / var_ret if var_ret > 0 else float("nan")
        )
        return stats
