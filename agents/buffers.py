"""A preallocated numpy replay buffer for off-policy agents, with n-step returns computed at sample time.

Why numpy and preallocation: adding a transition is a handful of array writes into fixed arrays (no
per-step Python objects), and a batch is one fancy-indexing gather per field, handed to torch with
``torch.from_numpy`` without a copy.

n-step returns (Sutton 1988; used in Rainbow, Hessel et al. 2018) are computed when sampling by looking
ahead along the ring of stored transitions, so the buffer stores single steps and the lookahead never
crosses an episode end:

    R = Σ_{k<m} γ^k r_{t+k},    discount = γ^m · (1 − terminated_{t+m−1}),

where m ≤ n is cut at the first terminated *or* truncated transition and at the newest stored one. A
truncated episode (time limit) still bootstraps from its last ``next_obs``; only termination cuts the
bootstrap (Pardo et al. 2018, "Time Limits in Reinforcement Learning"). The target is then
``R + discount · Q(next_obs)``.

Vector envs (``num_envs = N > 1``, e.g. the agents of a PettingZoo env sharing one learner): a step writes N
consecutive rows with :meth:`ReplayBuffer.add_batch`, so sub-env ``e``'s transitions sit ``N`` rows apart and
the n-step lookahead walks with stride ``N`` (the layout of Stable-Baselines3's ``(buffer_size / n_envs,
n_envs)`` arrays, flattened). Rows that are not transitions (dead agents, the reset step of NEXT_STEP
autoreset) are stored with ``valid`` False and never sampled.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ReplayBatch(NamedTuple):
    """A sampled batch (all numpy arrays with leading dimension ``batch_size``).

    ``rewards`` are n-step returns and ``discounts`` already include γ^m and the termination cut, so the
    TD target is ``rewards + discounts * V(next_obs)``. ``terminated`` is whether the bootstrap is cut.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    discounts: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """Ring buffer of transitions ``(obs, action, reward, next_obs, terminated, truncated)``.

    Parameters: ``capacity`` transitions; observation and action shapes/dtypes (e.g. ``(4,), float32``
    and ``(), int64``); ``rng`` the owner's ``numpy.random.Generator`` (sampling is uniform with
    replacement). ``n_step`` and ``gamma`` define the returned returns and discounts. ``num_envs`` rows are
    written per :meth:`add_batch`; the capacity is rounded up to a multiple of it.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        action_shape: tuple[int, ...],
        action_dtype: np.dtype | type,
        rng: np.random.Generator,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
        num_envs: int = 1,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be >= 1")
        if n_step < 1:
            raise ValueError(f"n_step={n_step} must be >= 1")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma={gamma} must be in [0, 1]")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        self.num_envs = int(num_envs)
        self.capacity = -(-int(capacity) // self.num_envs) * self.num_envs
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.rng = rng
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=bool)
        self.truncated = np.zeros(self.capacity, dtype=bool)
        self.valid = np.ones(self.capacity, dtype=bool)
        self._invalid = 0  # number of stored rows with valid False (sampling skips them)
        self.pos = 0  # next write index
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray | int, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool) -> None:
        """Store one transition (overwrites the oldest when full); single-env buffers only."""
        rows = (np.asarray(x)[None] for x in (obs, action, reward, next_obs, terminated, truncated))
        self.add_batch(*rows, np.ones(1, dtype=bool))

    def add_batch(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Store one vector step: ``num_envs`` rows (arrays with that leading axis); rows with ``valid``
        False are kept in place (so the stride-N lookahead stays aligned) but never sampled."""
        N, i = self.num_envs, self.pos
        rows = slice(i, i + N)
        if self.size == self.capacity:
            self._invalid -= int(N - np.count_nonzero(self.valid[rows]))
        self.obs[rows] = obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.next_obs[rows] = next_obs
        self.terminated[rows] = terminated
        self.truncated[rows] = truncated
        self.valid[rows] = valid
        self._invalid += int(N - np.count_nonzero(valid))
        self.pos = 0 if i + N == self.capacity else i + N
        if self.size < self.capacity:
            self.size += N

    @property
    def num_valid(self) -> int:
        """Stored rows that are transitions (what :meth:`sample` draws from)."""
        return self.size - self._invalid

    def mark_episode_end(self) -> None:
        """Mark the newest transition as truncated: its episode was abandoned (e.g. the env changed), so
        an n-step lookahead must not run into the next, unrelated transition. Bootstrapping from its
        ``next_obs`` stays valid."""
        if self.size:
            newest = (self.pos - self.num_envs) % self.capacity  # the newest step's first row
            self.truncated[newest : newest + self.num_envs] = True

    def sample(self, batch_size: int) -> ReplayBatch:
        """Uniformly sample ``batch_size`` transitions (with replacement) as numpy arrays."""
        if self.num_valid == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        if self._invalid:
            idx = self._redraw_invalid(idx)
        if self.n_step == 1:
            term = self.terminated[idx]
            return ReplayBatch(
                obs=self.obs[idx],
                actions=self.actions[idx],
                rewards=self.rewards[idx],
                next_obs=self.next_obs[idx],
                discounts=np.where(term, 0.0, self.gamma).astype(np.float32),
                terminated=term,
            )
        return self._sample_n_step(idx)

    def _redraw_invalid(self, idx: np.ndarray) -> np.ndarray:
        """Uniform over the valid rows: redraw the invalid picks (rejection sampling, a few rounds while
        most rows are valid), then fall back to drawing from the explicit list of valid rows."""
        for _ in range(8):
            bad = ~self.valid[idx]
            if not bad.any():
                return idx
            idx[bad] = self.rng.integers(0, self.size, size=int(bad.sum()))
        bad = ~self.valid[idx]
        if bad.any():
            choices = np.flatnonzero(self.valid[: self.size])
            idx[bad] = choices[self.rng.integers(0, len(choices), size=int(bad.sum()))]
        return idx

    def _sample_n_step(self, idx: np.ndarray) -> ReplayBatch:
        cap, N = self.capacity, self.num_envs
        # steps of idx's sub-env stored at or after idx (in time order): idx, idx+N, ..., its newest row
        base = idx - idx % N
        avail = ((self.pos - base) % cap) // N
        avail[avail == 0] = cap // N if self.size == cap else 0  # only when full (idx's step is the oldest)
        ret = np.zeros(idx.shape, dtype=np.float64)
        disc = np.ones(idx.shape, dtype=np.float64)
        last = idx.copy()
        alive = np.ones(idx.shape, dtype=bool)
        for k in range(self.n_step):
            j = (idx + k * N) % cap
            take = alive & (k < avail)
            ret += np.where(take, disc * self.rewards[j], 0.0)
            disc = np.where(take, disc * self.gamma, disc)
            last = np.where(take, j, last)
            alive = take & ~(self.terminated[j] | self.truncated[j])
        term = self.terminated[last]
        return ReplayBatch(
            obs=self.obs[idx],
            actions=self.actions[idx],
            rewards=ret.astype(np.float32),
            next_obs=self.next_obs[last],
            discounts=np.where(term, 0.0, disc).astype(np.float32),
            terminated=term,
        )
