"""Running statistics for observation normalisation and reward scaling in on-policy agents.

:class:`RunningMeanStd` keeps the mean and (population) variance of a stream of vectors. Batches are merged
with the parallel-variance formula of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise
algorithm for computing sample variances"), which with a batch of one is Welford's (1962) update:

    δ = μ_B − μ_A,   n = n_A + n_B,   μ = μ_A + δ·n_B/n,
    M2 = M2_A + M2_B + δ²·n_A·n_B/n,   σ² = M2 / n.

Everything is float64 numpy; :meth:`RunningMeanStd.normalize` returns float32 ``clip((x − μ)/√(σ² + ε))``
as PPO implementations do (Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients", ICLR,
list "observation normalisation" and "reward scaling" among the code-level optimisations).

:class:`RewardScaler` divides rewards by the running standard deviation of the discounted return
``R_t = γ R_{t−1} + r_t`` (reset at episode ends), the reward scaling of Engstrom et al. (2020, §3 and
Appendix A.2) and of Stable-Baselines3's ``VecNormalize``; rewards are not centred.

The statistics are local to a client (they are not parameters and are not part of ``get_weights``); they are
saved in checkpoints through :meth:`state_dict` / :meth:`load_state_dict` (plain tensors, so
``torch.load(weights_only=True)`` reads them).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


class RunningMeanStd:
    """Mean and variance of vectors of ``shape`` seen so far (``count`` starts at ``epsilon`` so an empty
    tracker normalises with mean 0 and variance 1)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.ones(self.shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of vectors (leading axis = samples) with the parallel formula (Chan et al. 1979)."""
        x = np.asarray(batch, dtype=np.float64).reshape(-1, *self.shape)
        if x.shape[0] == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        self.mean = np.asarray(self.mean + delta * (batch_count / total), dtype=np.float64)
        self.var = np.asarray(m2 / total, dtype=np.float64)
        self.count = float(total)

    def normalize(self, x: np.ndarray, clip: float = 10.0, eps: float = 1e-8) -> np.ndarray:
        """``clip((x − μ) / √(σ² + eps), −clip, clip)`` as float32."""
        mean, scale = self.affine(eps)
        return np.clip((np.asarray(x, dtype=np.float32) - mean) * scale, -clip, clip)

    def affine(self, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
        """``(μ, 1/√(σ² + eps))`` as float32 arrays, for a cached per-step normaliser."""
        return self.mean.astype(np.float32), (1.0 / np.sqrt(self.var + eps)).astype(np.float32)

    # ----- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "count": torch.tensor(self.count, dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`; raises ``ValueError`` on a missing entry or a wrong shape."""
        mean = np.asarray(state["mean"], dtype=np.float64)
        var = np.asarray(state["var"], dtype=np.float64)
        count = float(state["count"])
        if mean.shape != self.shape or var.shape != self.shape:
            raise ValueError(f"statistics of shape {mean.shape}/{var.shape}, expected {self.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all() and count > 0):
            raise ValueError("statistics are not finite / non-negative")
        self.mean, self.var, self.count = mean.copy(), var.copy(), count


class RewardScaler:
    """Scale rewards by the running std of the discounted return, one running return per sub-environment.

    :meth:`scale_block` walks a ``(T, N)`` block of rewards in time order, updating ``R ← γR + r`` per
    sub-env (``R`` reset after an episode end), merges all the block's returns into the statistics, then
    divides the whole block by the updated ``√(Var[R] + ε)`` and clips it. On-policy agents call it once per
    rollout, so the scale is constant within a rollout (like the observation statistics).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(int(num_envs), dtype=np.float64)

    def scale_block(self, rewards: np.ndarray, dones: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``rewards`` ``(T, N)``; ``dones`` ends episodes, ``valid`` masks padding."""
        r = np.where(valid, rewards, 0.0).astype(np.float64)
        seen = np.empty_like(r)
        ret = self.returns
        for t in range(r.shape[0]):
            ret = ret * self.gamma + r[t]
            seen[t] = ret
            ret = np.where(dones[t] & valid[t], 0.0, ret)
        self.returns = ret
        self.rms.update(seen[valid])
        out = np.clip(r / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)
        return out.astype(np.float32)

    def resize(self, num_envs: int) -> None:
        """A new environment (maybe another number of sub-envs): restart the running returns."""
        self.returns = np.zeros(int(num_envs), dtype=np.float64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.rms.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.rms.load_state_dict(state)
