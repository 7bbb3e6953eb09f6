"""REINFORCE with a learned state-value baseline, readable top to bottom.

Algorithm (Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist
Reinforcement Learning", Machine Learning 8; with the baseline of Sutton & Barto 2018, §13.4): the policy
gradient is estimated from complete episodes with Monte Carlo returns-to-go

    G_t = Σ_{k≥t} γ^{k−t} r_k,      ∇J ≈ E[∇ log π(a_t|s_t) (G_t − V(s_t))],

and V is regressed on G_t (loss c_v E[(V(s_t) − G_t)²]). One gradient step per batch.

Batches: the agent collects ``n_steps`` steps per sub-env; at the update it uses every step whose episode
has *finished* (each sub-env up to its last episode end) and carries the unfinished episode tails over to
the next batch (:meth:`agents.rollout.RolloutBuffer.carry_tails`), so returns are never cut at a batch
boundary. Two documented exceptions keep memory and latency bounded:

- an episode ended by a time limit (truncated) or abandoned (new env object) adds γ^k V(final observation)
  to its returns — the return of an infinite-horizon task does not stop at the time limit (Pardo et al.
  2018, "Time Limits in Reinforcement Learning");
- a tail longer than ``n_steps // 2`` is cut the same way (bootstrapped with the critic), so every update
  sees at least half a batch of new steps. Choose ``n_steps`` ≥ 2 × the typical episode length to stay
  purely Monte Carlo.

Carried tails were collected by the previous policy, which makes their first use one update off-policy
(the usual price of batching by steps rather than by episodes).

Options: ``normalize_returns`` standardises G over the batch (zero mean, unit std) before it is used as
the critic's target and in the advantage — the classic variance-reduction trick of e.g. PyTorch's
REINFORCE example; ``normalize_advantage`` standardises G − V; ``baseline=False`` gives plain REINFORCE
(the critic is still built, so weights have the same names, but it is not trained or used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agents.base import AgentError
from agents.onpolicy import OnPolicyAgent, OnPolicyConfig
from agents.rollout import gae


@dataclass(frozen=True)
class REINFORCEConfig(OnPolicyConfig):
    """REINFORCE hyperparameters (Adam; one gradient step per batch of ≥ n_steps / 2 new steps per sub-env)."""

    lr: float = 1e-3
    n_steps: int = 2048  # batch size in steps per sub-env (tails of unfinished episodes carry over)
    gae_lambda: float = 1.0  # fixed: Monte Carlo returns
    normalize_advantage: bool = False
    normalize_returns: bool = False  # standardise G over the batch
    baseline: bool = True  # subtract the learned V(s) from G
    max_grad_norm: float | None = 0.5

    def _validate(self) -> None:
        super()._validate()
        if self.gae_lambda != 1.0:
            raise AgentError(f"gae_lambda={self.gae_lambda!r} not supported: REINFORCE uses Monte Carlo returns (1.0)")
        if self.n_steps < 2:
            raise AgentError(f"n_steps={self.n_steps!r} out of range: must be an int >= 2 for REINFORCE")
        self._bool("normalize_returns", "baseline")


# Tuned for the benchmark (bench/agents.py): REINFORCE ≥ 200 evaluation return on CartPole-v1 within 200k
# steps. Keys are env ids; values are REINFORCEConfig overrides plus "n_envs" and "total_steps" (see
# agents.ppo.PRESETS).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=1,
        total_steps=200_000,
        n_steps=1024,
        lr=2e-3,
        gamma=0.99,
        normalize_advantage=True,
    ),
}


class REINFORCEAgent(OnPolicyAgent):
    """Monte Carlo policy gradient with a learned baseline (see the module docstring)."""

    name = "reinforce"
    config_class = REINFORCEConfig
    algorithm = "REINFORCE"
    config: REINFORCEConfig

    def _process_rollout(self) -> dict[str, float]:
        cfg, buf, policy = self.config, self.buffer, self.policy
        T, N = buf.pos, buf.num_envs

        # 1. unfinished episode tails; cut those too long to carry (bootstrap from the current observation)
        max_tail = cfg.n_steps // 2
        starts = buf.tail_starts()
        too_long = T - starts > max_tail
        if too_long.any():
            buf.dones[T - 1] |= too_long
            buf.bootstrap[T - 1] |= too_long
            current = self._stepper.obs if self._obs_discrete else self._current_input().numpy()
            buf.final_obs[T - 1][too_long] = current[too_long]
            starts = np.where(too_long, T, starts)

        # 2. Monte Carlo returns-to-go of the finished episodes (GAE with V ≡ 0, λ = 1, no end bootstrap)
        boot_values = self._boot_values(T) if cfg.baseline else np.zeros((T, N), dtype=np.float32)
        self._end_of_rollout_statistics()
        zeros = np.zeros((T, N), dtype=np.float32)
        returns, _ = gae(buf.rewards[:T], zeros, buf.dones[:T], boot_values, zeros[0], cfg.gamma, 1.0)
        use = buf.valid[:T] & (np.arange(T)[:, None] < starts[None, :])
        n_used = int(use.sum())
        stats: dict[str, float] = {"train/batch_steps": float(n_used)}

        if n_used:
            # 3. one gradient step on the policy-gradient and baseline losses
            sel = torch.from_numpy(np.flatnonzero(use.reshape(-1)))
            obs = self._policy_input(buf.obs[:T].reshape(T * N, *buf.obs.shape[2:]))[sel]
            actions = torch.from_numpy(buf.actions[:T].reshape(T * N, *buf.actions.shape[2:]))[sel]
            g = torch.from_numpy(returns.reshape(-1))[sel]
            if cfg.normalize_returns and n_used > 1:
                g = (g - g.mean()) / (g.std() + 1e-8)
            out, v = policy(obs)
            log_prob, entropy = policy.log_prob_entropy(out, actions)
            adv = g - v.detach() if cfg.baseline else g
            if cfg.normalize_advantage and n_used > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = -(log_prob * adv).mean()
            v_loss = torch.mean((v - g) ** 2)
            entropy = entropy.mean()
            loss = pg_loss - cfg.ent_coef * entropy
            if cfg.baseline:
                loss = loss + cfg.vf_coef * v_loss
            self._step_optimizer(loss)
            stats.update({"loss/policy": pg_loss.item(), "loss/value": v_loss.item(), "loss/entropy": entropy.item()})

        # 4. unfinished episodes move to the front of the buffer for the next batch
        buf.carry_tails(max_tail)
        return stats
