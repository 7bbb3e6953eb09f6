"""Tabular Q-learning and SARSA, readable top to bottom and shaped as ``Agent``\\ s.

Both learn a table ``Q[s, a]`` with a constant step size α from ε-greedy interaction (ε annealed linearly,
then held, as in ``agents.dqn``); they differ only in the bootstrap of the TD target (Sutton & Barto 2018,
"Reinforcement Learning: An Introduction", 2nd ed., eqs. 6.8 and 6.7):

- Q-learning (Watkins 1989, PhD thesis "Learning from Delayed Rewards"; Watkins & Dayan 1992), off-policy:
  ``Q(s,a) ← Q(s,a) + α [R + γ (1 − terminated) max_a' Q(s',a') − Q(s,a)]``.
- SARSA (Rummery & Niranjan 1994, "On-line Q-learning using connectionist systems", CUED/F-INFENG/TR 166),
  on-policy: ``Q(s,a) ← Q(s,a) + α [R + γ (1 − terminated) Q(s',a') − Q(s,a)]`` with ``a'`` the ε-greedy
  action actually taken next (on CliffWalking it learns the safe path, Sutton & Barto Example 6.6).

Time limits: a *terminated* transition cuts the bootstrap, a *truncated* one does not (Pardo et al. 2018).

Spaces: Discrete actions; Discrete or 1-D MultiDiscrete observations (a MultiDiscrete vector is one state
via ``numpy.ravel_multi_index``), or a 1-D Box observation discretised on a uniform grid: config ``bins``
(one int for every dimension, or one per dimension) and clip bounds ``low`` / ``high`` (default: the space's
bounds, which must then be finite). A component ``x_i`` is clipped to ``[low_i, high_i]`` and falls in bin
``min(bins_i − 1, ⌊bins_i (x_i − low_i) / (high_i − low_i)⌋)``; the grid cell is one state.

Federation: the only parameter is the table, shared under the name ``"q_table"`` (float32, shape
``(n_states, n_actions)``), so FedAvg of the tables is QAvg in its tabular form (Jin et al. 2022,
"Federated Reinforcement Learning with Environment Heterogeneity", AISTATS). A table has no head:
``personal`` is ``"none"`` only. The FedProx term (Li et al. 2020) ``(μ/2)·||Q − Q_anchor||²`` becomes, for
a table learned by stochastic steps of size α, one gradient step on it after every TD update:
``Q ← Q − α·μ·(Q − Q_anchor)`` over the whole table (so α·μ ≤ 1 is required: a larger step overshoots the
anchor), the anchor being the last table given to ``set_weights`` / ``set_anchor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import AgentError, check_num_steps, is_int, is_number, learn_stats, linear_epsilon
from agents.config import ConfigChecks
from agents.torch_agent import TorchAgent, check_mu
from agents.vector_stepping import VectorStepper, adopt_env

Q_KEY = "q_table"

#: Tuned settings by env id, shared by both agents: ``env_kwargs`` go to ``gymnasium.make(env_id,
#: **env_kwargs)`` (FrozenLake non-slippery; CliffWalking-v1 has no time limit of its own, so one is added),
#: ``total_steps`` is the training budget of ``bench/agents.py``; the rest are ``TabularConfig`` overrides.
#: Pop ``env_kwargs`` and ``total_steps`` before building an agent.
PRESETS: dict[str, dict[str, Any]] = {
    # measured: greedy return 1.0 for both agents on seeds 0-19 after 4000 steps
    "FrozenLake-v1": dict(
        env_kwargs={"is_slippery": False},
        total_steps=4_000,
        alpha=0.5,
        gamma=0.95,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.01,
        exploration_steps=2_000,
    ),
    # measured on seeds 0-19 after 6000 steps: Q-learning greedy return −13 (the optimal cliff-edge path)
    # every time; SARSA −17 (the safe path, 16 seeds) or −15. ε ends at 0 so SARSA's Q is that of the
    # greedy policy (with ε held > 0 its greedy policy can loop at the top wall under α = 0.5 noise).
    "CliffWalking-v1": dict(
        env_kwargs={"max_episode_steps": 200},
        total_steps=6_000,
        alpha=0.5,
        gamma=0.99,
        exploration_initial_eps=0.2,
        exploration_final_eps=0.0,
        exploration_steps=3_000,
    ),
}


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TabularConfig(ConfigChecks):
    """Q-learning / SARSA hyperparameters. Steps are environment steps and persist across ``learn`` calls."""

    alpha: float = 0.1  # constant step size α
    gamma: float = 0.99  # discount
    exploration_initial_eps: float = 1.0  # ε decays linearly from this ...
    exploration_final_eps: float = 0.05  # ... to this ...
    exploration_steps: int = 10_000  # ... over this many env steps (0: final ε from the start)
    initial_q: float = 0.0  # every entry of the table starts here (optimistic if > the returns)
    bins: int | tuple[int, ...] | None = None  # Box observations only: grid cells per dimension
    low: float | tuple[float, ...] | None = None  # Box only: clip bounds of the grid (None: the space's)
    high: float | tuple[float, ...] | None = None
    personal: str = "none"  # a table has no head: "none" only
    prox_mu: float = 0.0  # FedProx μ (0: off); α·μ ≤ 1

    def __post_init__(self) -> None:
        inf = math.inf
        self._int("exploration_steps", 0)
        self._float("alpha", 0.0, 1.0, lo_open=True)
        self._float("gamma", 0.0, 1.0)
        self._float("exploration_initial_eps", 0.0, 1.0)
        self._float("exploration_final_eps", 0.0, 1.0)
        self._float("initial_q", -inf, inf)
        self._float("prox_mu", 0.0, inf)
        if self.alpha * self.prox_mu > 1.0:
            raise AgentError(f"prox_mu={self.prox_mu!r} out of range: alpha * prox_mu must be <= 1")
        if self.personal not in ("none",):
            raise AgentError(
                f"personal={self.personal!r} not supported; allowed: none (a Q-table has no head to keep local)"
            )
        if self.bins is not None:
            object.__setattr__(self, "bins", _tuple(self.bins, "bins", int))
            if not all(b >= 1 for b in self.bins):
                raise AgentError(f"bins={self.bins!r} out of range: every entry must be an int >= 1")
        for name in ("low", "high"):
            if getattr(self, name) is not None:
                value = _tuple(getattr(self, name), name, float)
                if not all(math.isfinite(v) for v in value):
                    raise AgentError(f"{name}={value!r} must be finite")
                object.__setattr__(self, name, value)

def _tuple(value: Any, name: str, kind: type) -> tuple:
    """A scalar or a sequence → a tuple of ints (``kind=int``) or floats."""
    items = (value,) if np.ndim(value) == 0 else tuple(np.asarray(value, dtype=object).ravel())
    check = (lambda v: is_int(v) or (isinstance(v, float) and v.is_integer())) if kind is int else is_number
    if not items or not all(check(v) for v in items):
        what = "ints" if kind is int else "numbers"
        raise AgentError(f"{name}={value!r} must be one of {what} or a sequence of them")
    return tuple(kind(v) for v in items)


# ----- observation → state index -------------------------------------------------------------------------
class _StateIndexer:
    """Maps an observation of a supported space to a row of the table (see the module docstring)."""

    def __init__(self, space: gym.Space, cfg: TabularConfig, algo: str) -> None:
        self.space = space
        supported = (
            f"{algo} supports Discrete observations, 1-D MultiDiscrete observations, or a 1-D Box with a "
            "uniform discretisation (config bins=..., and low=/high= unless the Box bounds are finite)"
        )
        if isinstance(space, gym.spaces.Discrete):
            self.kind, self.n_states, self.start = "discrete", int(space.n), int(space.start)
        elif isinstance(space, gym.spaces.MultiDiscrete) and len(space.shape) == 1:
            self.kind = "multidiscrete"
            self.nvec = tuple(int(n) for n in space.nvec)
            self.starts = np.asarray(getattr(space, "start", np.zeros(len(self.nvec))), dtype=np.int64)
            self.n_states = int(np.prod(self.nvec))
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            if cfg.bins is None:
                raise AgentError(f"{supported}; got {space!r} without bins")
            dim = int(space.shape[0])
            bins = cfg.bins * dim if len(cfg.bins) == 1 else cfg.bins
            if len(bins) != dim:
                raise AgentError(f"bins={cfg.bins!r} must have 1 or {dim} entries for {space!r}")
            low = self._bound(cfg.low, space.low, "low", dim, space)
            high = self._bound(cfg.high, space.high, "high", dim, space)
            if not np.all(high > low):
                raise AgentError(f"high={tuple(high)} must exceed low={tuple(low)} in every dimension")
            self.kind, self.dim = "box", dim
            self.bins = np.asarray(bins, dtype=np.int64)
            self.low, self.high = low, high
            self.scale = self.bins / (high - low)
            self.n_states = int(np.prod(self.bins))
            self.strides = np.cumprod((1, *bins[:0:-1]))[::-1].astype(np.int64)  # C order, like ravel
        else:
            raise AgentError(f"{supported}; got {space!r}")
        if self.kind != "box" and (cfg.bins is not None or cfg.low is not None or cfg.high is not None):
            raise AgentError(f"bins/low/high apply to Box observations only; got {space!r}")

    @staticmethod
    def _bound(given: tuple[float, ...] | None, space_bound: np.ndarray, name: str, dim: int,
               space: gym.Space) -> np.ndarray:
        if given is None:
            b = np.asarray(space_bound, dtype=np.float64)
            if not np.all(np.isfinite(b)):
                raise AgentError(f"{space!r} has infinite bounds: give {name}=... (clip bounds of the grid)")
            return b
        b = np.asarray(given * dim if len(given) == 1 else given, dtype=np.float64)
        if b.shape != (dim,):
            raise AgentError(f"{name}={given!r} must have 1 or {dim} entries for {space!r}")
        return b

    def __call__(self, obs: Any) -> int:
        """One observation's state index (a Discrete one without array overhead: the tabular hot path)."""
        if self.kind == "discrete" and 0 <= int(obs) - self.start < self.n_states:
            return int(obs) - self.start
        return int(self.batch(np.asarray(obs)[None])[0])

    def batch(self, obs: Any) -> np.ndarray:
        """State indices ``(N,)`` int64 of a batch of observations (leading axis: sub-envs)."""
        if self.kind == "discrete":
            x = np.asarray(obs, dtype=np.int64) - self.start
            if x.ndim != 1 or ((x < 0) | (x >= self.n_states)).any():
                raise AgentError(
                    f"observations {obs!r} are not a batch in Discrete({self.n_states}, start={self.start})"
                )
            return x
        if self.kind == "multidiscrete":
            x = np.asarray(obs, dtype=np.int64) - self.starts
            try:
                if x.ndim != 2:
                    raise ValueError
                return np.ravel_multi_index(tuple(x.T), self.nvec).astype(np.int64)
            except ValueError:
                raise AgentError(f"observations {obs!r} are not a batch in {self.space!r}") from None
        x = np.asarray(obs, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise AgentError(f"observation batch shape {x.shape} does not match (N, {self.dim})")
        cell = ((np.clip(x, self.low, self.high) - self.low) * self.scale).astype(np.int64)
        np.minimum(cell, self.bins - 1, out=cell)
        return cell @ self.strides


# ----- the agents ----------------------------------------------------------------------------------------
class _Table(nn.Module):
    """The table as the one parameter ``q_table``, so that weights, anchor, freezing and checkpoints come
    from :class:`agents.torch_agent.TorchAgent`; the agent updates it in place through a numpy view."""

    def __init__(self, n_states: int, n_actions: int, initial_q: float) -> None:
        super().__init__()
        self.q_table = nn.Parameter(torch.full((n_states, n_actions), float(initial_q)), requires_grad=True)


class TabularAgent(TorchAgent):
    """Shared machinery of the tabular agents; subclasses set ``name``, ``algorithm`` and ``on_policy``
    (False: Q-learning's max bootstrap; True: SARSA's bootstrap on the next action taken)."""

    name = "tabular"
    algorithm = "tabular"
    config_class = TabularConfig
    on_policy = False
    _counters = ("total_steps",)
    _env_bound = ("_env", "_stepper", "_pending")

    def _build(self, cfg: TabularConfig, seed: int | np.random.SeedSequence) -> None:
        observation_space, action_space = self.observation_space, self.action_space
        if not isinstance(action_space, gym.spaces.Discrete):
            raise AgentError(f"{self.algorithm} supports Discrete action spaces only; got {action_space!r}")
        self.num_actions = int(action_space.n)
        self._action_start = int(action_space.start)
        self._index = _StateIndexer(observation_space, cfg, self.algorithm)
        self.n_states = self._index.n_states
        self._setup(cfg, seed)  # numpy generator: ε-greedy, tie-breaking, env reset seeds
        self.net = _Table(self.n_states, self.num_actions, cfg.initial_q)
        self._pending: np.ndarray | None = None  # SARSA: the next action per sub-env, already chosen (−1: none)

    @property
    def q(self) -> np.ndarray:
        """The table ``(n_states, n_actions)``, a float32 numpy view of the parameter (writes go through)."""
        return self.net.q_table.detach().numpy()

    # ----- acting --------------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        """Linearly annealed ε at the current step, then held at ``exploration_final_eps``."""
        cfg = self.config
        return linear_epsilon(self.total_steps, cfg.exploration_initial_eps, cfg.exploration_final_eps,
                              cfg.exploration_steps)

    def act(self, obs: Any, *, explore: bool = True) -> int:
        """ε-greedy action with the current ε when ``explore`` (ties broken at random), else the greedy
        action (ties broken toward the lowest index, so evaluation consumes no randomness)."""
        s = self._index(obs)
        if explore:
            return int(self._explore_batch(np.array([s]), self.epsilon)[0]) + self._action_start
        return int(self.q[s].argmax()) + self._action_start

    # ----- learning ------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """:meth:`agents.base.Agent.learn`, a TD update after every step (``loss/td``: the mean squared TD
        error). The updates of one vector step are applied together, each computed from the table before
        that step (``numpy.add.at``, so two agents updating the same entry both count)."""
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        if self._stepper.venv is None:
            return self._learn_single(num_steps)
        cfg, st = self.config, self._stepper
        q, N, start = self.q, st.num_envs, self._action_start
        alpha, gamma, sarsa, train = cfg.alpha, cfg.gamma, self.on_policy, self.net.q_table.requires_grad
        anchor = self._anchor[Q_KEY].numpy() if Q_KEY in self._anchor else None
        prox, keep = self.prox_mu > 0.0 and anchor is not None, 1.0 - cfg.alpha * self.prox_mu
        pending = self._pending if self._pending is not None else np.full(N, -1, dtype=np.int64)
        sq_sum, n_updates = 0.0, 0
        for _ in range(-(-num_steps // N)):
            s = st.obs
            a = self._explore_batch(s, self.epsilon)
            if sarsa:
                a = np.where(pending >= 0, pending, a)
            tr = st.step(a + start if start else a)
            self.total_steps += N
            s2, v = tr.next_obs, tr.valid
            a2 = np.full(N, -1, dtype=np.int64)
            if sarsa:  # the next action, with the ε of the step it will be taken at
                a2 = np.where(v & ~tr.terminated, self._explore_batch(s2, self.epsilon), -1)
                boot = q[s2, np.maximum(a2, 0)]
            else:
                boot = q[s2].max(axis=1)
            if train and v.any():
                target = tr.rewards + np.where(tr.terminated, 0.0, gamma * boot)
                delta = (target - q[s, a])[v]
                np.add.at(q, (s[v], a[v]), (alpha * delta).astype(q.dtype))
                sq_sum += float(delta @ delta)
                n_updates += len(delta)
                if prox:  # the FedProx step after each of the k updates, in closed form
                    q[...] = anchor + keep ** len(delta) * (q - anchor)
            pending = np.where(tr.done, -1, a2)  # a new episode starts without a chosen action
        self._pending = pending
        returns, lengths = st.drain_episodes()
        losses = {"loss/td": sq_sum / n_updates} if n_updates else {}
        return learn_stats(losses, returns, lengths, {"train/epsilon": self.epsilon, "train/steps": self.total_steps})

    def _learn_single(self, num_steps: int) -> dict[str, float]:
        """The single-env case of :meth:`learn` in scalar arithmetic: a table lookup is so cheap that the
        batched loop's per-step array overhead made it 3–4× slower (``bench/agents.py``). Same updates, same
        random draws as the batched loop with N = 1; the stepper still keeps the episode and its statistics."""
        cfg, st, q, rng, start = self.config, self._stepper, self.q, self._rng, self._action_start
        alpha, gamma, sarsa, train, n_act = cfg.alpha, cfg.gamma, self.on_policy, self.net.q_table.requires_grad, \
            self.num_actions
        anchor = self._anchor[Q_KEY].numpy() if Q_KEY in self._anchor else None
        prox, keep = self.prox_mu > 0.0 and anchor is not None, 1.0 - cfg.alpha * self.prox_mu

        def explore(s: int) -> int:
            row = q[s]
            a = int((rng.random(n_act) * (row == row.max())).argmax())
            return int(rng.integers(n_act)) if rng.random() < self.epsilon else a
        s, a, sq_sum = int(st.obs[0]), (int(self._pending[0]) if self._pending is not None else -1), 0.0
        for _ in range(num_steps):
            a = explore(s) if a < 0 else a
            raw, reward, terminated, truncated, _ = st.env.step(a + start)
            self.total_steps += 1
            s2, reward = int(self._index(raw)), float(reward)
            a2 = explore(s2) if sarsa and not terminated else -1
            if train:
                delta = reward + (0.0 if terminated else gamma * float(q[s2, a2] if sarsa else q[s2].max())) - q[s, a]
                q[s, a] += np.float32(alpha * delta)
                sq_sum += float(delta) ** 2
                if prox:
                    q[...] = anchor + keep * (q - anchor)
            if st.account(reward, terminated or truncated):
                s, a = int(self._index(st.env.reset()[0])), -1
            else:
                s, a = s2, a2
        st.obs, self._pending = np.array([s]), np.array([a])
        returns, lengths = st.drain_episodes()
        losses = {"loss/td": sq_sum / num_steps} if train and num_steps else {}
        return learn_stats(losses, returns, lengths, {"train/epsilon": self.epsilon, "train/steps": self.total_steps})

    def _explore_batch(self, states: np.ndarray, eps: float) -> np.ndarray:
        """ε-greedy actions for a batch of states, greedy ties broken uniformly at random."""
        rng, q = self._rng, self.q[states]
        keys = rng.random(q.shape) * (q == q.max(axis=1, keepdims=True))  # argmax: a random best action
        a = keys.argmax(axis=1)
        explore = rng.random(len(states)) < eps
        if explore.any():
            a = np.where(explore, rng.integers(self.num_actions, size=len(states)), a)
        return a

    def _start(self, env: Any) -> None:
        """Adopt a new env: check its spaces, abandon the previous episode, reset with a seed."""
        venv = adopt_env(env, self)
        self._env, self._pending = env, None
        self._stepper = VectorStepper(env if venv is None else venv, self._index.batch,
                                      int(self._rng.integers(2**31 - 1)))

    def set_proximal(self, mu: float) -> None:
        """FedProx / Ditto weight μ of the proximal term (module docstring); α·μ ≤ 1."""
        mu = check_mu(mu)
        if self.config.alpha * mu > 1.0:
            raise AgentError(f"prox_mu={mu!r} is out of range; allowed: <= 1/alpha = {1 / self.config.alpha:g}")
        self.prox_mu = mu


class QLearningAgent(TabularAgent):
    """Tabular Q-learning (Watkins 1989): off-policy TD control with the max bootstrap (S&B eq. 6.8)."""

    name = "q-learning"
    algorithm = "Q-learning"
    on_policy = False


class SARSAAgent(TabularAgent):
    """Tabular SARSA (Rummery & Niranjan 1994): on-policy TD control bootstrapping on the next ε-greedy
    action actually taken (S&B eq. 6.7)."""

    name = "sarsa"
    algorithm = "SARSA"
    on_policy = True
