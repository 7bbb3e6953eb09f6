"""A preallocated on-policy rollout buffer and Generalized Advantage Estimation.

The buffer holds ``T`` steps of ``N`` sub-environments as ``(T, N, ...)`` numpy arrays (written in place by
the acting loop, handed to torch with ``torch.from_numpy``). Besides the usual fields it keeps

- ``valid``: whether slot ``(t, i)`` is a real transition. Padding appears when a vector env in
  ``NEXT_STEP`` autoreset mode spends a step resetting a finished sub-env, and for dead agents of a
  multi-agent env (see :mod:`agents.parallel_adapter`). Losses average over valid slots only. Invariant:
  a padding slot follows an episode end or another padding slot, so no valid step chains into padding.
- ``dones``: the episode ended at this step (terminated *or* truncated); ``bootstrap``: it was truncated
  (time limit, or the rollout was abandoned) rather than terminated, and ``final_obs`` holds the
  observation to bootstrap from. Only termination means "no future reward"; a truncated episode still
  bootstraps with V(final_obs) (Pardo et al. 2018, "Time Limits in Reinforcement Learning", ICML).

GAE (Schulman, Moritz, Levine, Jordan & Abbeel 2016, "High-Dimensional Continuous Control Using
Generalized Advantage Estimation", ICLR, eqs. 11–16):

    δ_t = r_t + γ V_next(t) − V(s_t),     Â_t = δ_t + γλ (1 − done_t) Â_{t+1},     R̂_t = Â_t + V(s_t),

where V_next(t) = V(s_{t+1}) inside an episode, V(final_obs_t) after a truncation, 0 after a termination,
and V(s_T) (the observation after the last stored step) at the end of the rollout. λ = 1 gives the Monte
Carlo advantage R_t − V(s_t) (n-step returns up to the rollout end, Mnih et al. 2016); with V ≡ 0 and no
rollout-end bootstrap it gives the discounted return-to-go used by REINFORCE.
"""

from __future__ import annotations

import numpy as np


class RolloutBuffer:
    """``capacity`` time steps × ``num_envs`` sub-environments of on-policy experience.

    ``obs_shape``/``obs_dtype``: the *stored* observation (normalised float32 vector, or int64 index for a
    Discrete observation space); ``action_shape``/``action_dtype``: ``()``/int64 or ``(d,)``/float32.
    ``pos`` is the next row to write; ``new_start`` the first row not yet seen by the normalisation
    statistics (rows before it were carried over from a previous rollout, see REINFORCE).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        action_shape: tuple[int, ...],
        action_dtype: np.dtype | type,
        *,
        keep_raw_obs: bool = False,
    ) -> None:
        if capacity < 1 or num_envs < 1:
            raise ValueError(f"capacity={capacity} and num_envs={num_envs} must be >= 1")
        self.capacity, self.num_envs = int(capacity), int(num_envs)
        T, N = self.capacity, self.num_envs
        self.obs = np.zeros((T, N, *obs_shape), dtype=obs_dtype)
        self.final_obs = np.zeros((T, N, *obs_shape), dtype=obs_dtype)
        self.raw_obs = np.zeros((T, N, *obs_shape), dtype=np.float32) if keep_raw_obs else None
        self.actions = np.zeros((T, N, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros((T, N), dtype=np.float32)
        self.dones = np.zeros((T, N), dtype=bool)
        self.bootstrap = np.zeros((T, N), dtype=bool)
        self.valid = np.ones((T, N), dtype=bool)
        # filled when the rollout is processed (PPO: the behaviour policy's log-probs and values)
        self.log_probs = np.zeros((T, N), dtype=np.float32)
        self.values = np.zeros((T, N), dtype=np.float32)
        self.boot_values = np.zeros((T, N), dtype=np.float32)
        self.pos = 0
        self.new_start = 0
        self.evaluated = 0  # rows [0, evaluated) have log_probs/values of the policy that collected them

    @property
    def full(self) -> bool:
        return self.pos == self.capacity

    def reset(self) -> None:
        self.pos = self.new_start = self.evaluated = 0

    def tail_starts(self) -> np.ndarray:
        """Per sub-env, the first row of its unfinished episode: the first valid row after its last
        episode end (``pos`` if there is none, i.e. the sub-env's last stored step ended an episode)."""
        end = self.pos
        starts = np.full(self.num_envs, end, dtype=np.int64)
        for i in range(self.num_envs):
            ended = np.flatnonzero(self.dones[:end, i] & self.valid[:end, i])
            lo = ended[-1] + 1 if len(ended) else 0
            live = np.flatnonzero(self.valid[lo:end, i])
            if len(live):
                starts[i] = lo + live[0]
        return starts

    def carry_tails(self, max_len: int) -> np.ndarray:
        """Move each sub-env's unfinished episode (rows ``tail_starts() .. pos``) to the front,
        right-aligned at row ``L − 1`` (``L`` = the longest tail) so rows stay time-aligned; rows before a
        shorter tail become padding. Tails longer than ``max_len`` must have been cut by the caller.
        Returns the tail lengths ``(N,)``; afterwards ``pos = new_start = L``.
        """
        end = self.pos
        tails = end - self.tail_starts()
        L = int(tails.max())
        if L > max_len:
            raise ValueError(f"unfinished episode of {L} steps exceeds max_len={max_len}")
        fields = [self.obs, self.final_obs, self.actions, self.rewards, self.dones, self.bootstrap, self.valid]
        if self.raw_obs is not None:
            fields.append(self.raw_obs)
        for i in range(self.num_envs):
            n = int(tails[i])
            if n:
                for f in fields:
                    f[L - n : L, i] = f[end - n : end, i].copy()
            self.valid[: L - n, i] = False
            self.dones[: L - n, i] = True  # padding never chains into the tail
            self.bootstrap[: L - n, i] = False
        self.pos = self.new_start = L
        self.evaluated = 0
        return tails


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    boot_values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages Â and returns R̂ = Â + V for ``(T, N)`` float32 arrays (see the module docstring).

    ``boot_values`` is V(final_obs) where an episode was truncated and must be 0 where it terminated;
    ``last_values`` ``(N,)`` is V of the observation after the last row.
    """
    rewards = np.asarray(rewards, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    next_values = np.empty_like(values)
    next_values[:-1] = values[1:]
    next_values[-1] = last_values
    next_values = np.where(dones, boot_values, next_values)
    deltas = rewards + np.float32(gamma) * next_values - values
    decay = np.where(dones, np.float32(0.0), np.float32(gamma * lam))
    adv = np.empty_like(deltas)
    T, N = deltas.shape
    if N == 1:  # a plain Python loop beats T small numpy calls for a single env
        d, k = deltas[:, 0].tolist(), decay[:, 0].tolist()
        out = [0.0] * T
        acc = 0.0
        for t in range(T - 1, -1, -1):
            acc = d[t] + k[t] * acc
            out[t] = acc
        adv[:, 0] = out
    else:
        acc = np.zeros(N, dtype=np.float32)
        for t in range(T - 1, -1, -1):
            acc = deltas[t] + decay[t] * acc
            adv[t] = acc
    return adv, adv + values
