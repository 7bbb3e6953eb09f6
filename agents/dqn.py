"""Deep Q-Network for discrete actions, readable top to bottom (CleanRL-style) and shaped as an ``Agent``.

Algorithm (Mnih et al. 2015, "Human-level control through deep reinforcement learning", Nature 518):
ε-greedy interaction, a replay buffer sampled uniformly, a periodically synchronised target network and the
TD target ``y = R + γ^m (1 − terminated) · Q_target(s', a*)`` regressed with a Huber loss (the paper's
error clipping). Options:

- Double DQN (van Hasselt, Guez & Silver 2016, "Deep Reinforcement Learning with Double Q-learning",
  AAAI): ``a* = argmax_a Q_online(s', a)`` evaluated by the target network (default on); otherwise
  ``a* = argmax_a Q_target(s', a)``.
- Dueling head (Wang et al. 2016, "Dueling Network Architectures for Deep RL", ICML), see
  ``agents.nets.DuelingHead``.
- n-step returns (Sutton 1988; Hessel et al. 2018 "Rainbow"), computed by ``agents.buffers.ReplayBuffer``.
- Soft target updates ``θ' ← τθ + (1 − τ)θ'`` when ``tau < 1`` (Lillicrap et al. 2016), else hard copies.
- FedProx proximal term ``(μ/2)·||θ − θ_anchor||²`` (Li et al. 2020, "Federated Optimization in
  Heterogeneous Networks", MLSys), the anchor being the last weights given to ``set_weights``.
- ``personal="head"`` keeps the Q head local (FedPer, Arivazhagan et al. 2019, "Federated Learning with
  Personalization Layers").

Time limits: a *terminated* transition cuts the bootstrap, a *truncated* one does not (Pardo et al. 2018).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents.base import AgentError, flat_observation_layout, linear_epsilon, stored_batch
from agents.buffers import ReplayBuffer
from agents.nets import QNetwork, seeded_init
from agents.offpolicy import ReplayAgent, ReplayConfig
from agents.vector_stepping import updates_due


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DQNConfig(ReplayConfig):
    """DQN hyperparameters. Steps are environment steps and persist across ``learn`` calls.

    Defaults are small-problem defaults (CartPole-sized MLPs, budgets of 10⁴–10⁵ steps), in the spirit of
    the DQN settings of Stable-Baselines3 / rl-zoo and CleanRL rather than the Atari ones of Mnih et al.
    """

    lr: float = 5e-4  # Adam step size
    gamma: float = 0.99  # discount
    buffer_size: int = 50_000  # replay capacity (transitions)
    batch_size: int = 64
    learning_starts: int = 1_000  # env steps before the first update
    train_freq: int = 4  # an update round every train_freq env steps ...
    gradient_steps: int = 1  # ... of this many gradient steps
    target_update_interval: int = 500  # env steps between target updates
    tau: float = 1.0  # 1.0: hard copy; < 1: Polyak averaging at each target update
    exploration_initial_eps: float = 1.0  # ε decays linearly from this ...
    exploration_final_eps: float = 0.05  # ... to this ...
    exploration_steps: int = 10_000  # ... over this many env steps (0: final ε from the start)
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    double_q: bool = True
    dueling: bool = False
    n_step: int = 1
    loss: str = "huber"  # "huber" (Mnih et al. 2015 error clipping) or "mse"
    max_grad_norm: float | None = 10.0  # None: no clipping
    personal: str = "none"  # "none" or "head" (FedPer: the Q head stays local)
    embedding_dim: int = 0  # > 0: a learnable per-client environment embedding (Jin et al. 2022), personal
    prox_mu: float = 0.0  # FedProx μ (0: off)

    def __post_init__(self) -> None:
        super().__post_init__()
        inf = math.inf
        self._int("target_update_interval", 1)
        self._int("exploration_steps", 0)
        self._int("n_step", 1)
        self._int("embedding_dim", 0)
        self._float("lr", 0.0, inf, lo_open=True)
        self._float("exploration_initial_eps", 0.0, 1.0)
        self._float("exploration_final_eps", 0.0, 1.0)
        self._optional_float("max_grad_norm", 0.0, inf, lo_open=True)
        self._bool("double_q", "dueling")
        self._choice("loss", ("huber", "mse"))


# ----- the agent -----------------------------------------------------------------------------------------
class DQNAgent(ReplayAgent):
    """DQN / Double / Dueling / n-step DQN on a Discrete action space and a 1-D Box (or Discrete,
    one-hot encoded) observation space. See the module docstring for the algorithm and its sources."""

    name = "dqn"
    algorithm = "DQN"
    config_class = DQNConfig
    head_prefixes = ("head.",)
    config: DQNConfig

    def _build(self, cfg: DQNConfig, seed: int | np.random.SeedSequence) -> None:
        observation_space, action_space = self.observation_space, self.action_space
        if not isinstance(action_space, gym.spaces.Discrete):
            raise AgentError(f"DQN supports Discrete action spaces only; got {action_space!r}")
        self.num_actions, self._action_start = int(action_space.n), int(action_space.start)
        self._obs_discrete, self.obs_dim, self._obs_start, self._obs_shape = flat_observation_layout(
            observation_space, "DQN")
        self._eye = np.eye(self.obs_dim, dtype=np.float32) if self._obs_discrete else None

        # networks: the online Q-network (its state_dict is the weights) and a frozen target copy
        with seeded_init(self._setup(cfg, seed)):
            self.q = self.net = QNetwork(self.obs_dim, self.num_actions, cfg.hidden_sizes, cfg.activation,
                                         dueling=cfg.dueling, embedding_dim=cfg.embedding_dim)
        self.target = self.target_net = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=cfg.lr, fused=True)
        self.buffer = self._new_buffer(1)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.optimizer}

    def _new_buffer(self, num_envs: int) -> ReplayBuffer:
        cfg = self.config
        return ReplayBuffer(cfg.buffer_size, self._obs_shape, np.int64 if self._obs_discrete else np.float32,
                            (), np.int64, self._rng, n_step=cfg.n_step, gamma=cfg.gamma, num_envs=num_envs)

    def _stored_batch(self, obs: Any) -> np.ndarray:
        return stored_batch(obs, self._obs_discrete, self.obs_dim, self._obs_start)

    def _encode(self, stored: np.ndarray) -> np.ndarray:
        """Stored observations → network input (one-hot rows for Discrete observations)."""
        return self._eye[stored] if self._obs_discrete else stored

    # ----- acting --------------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        """Linearly annealed ε at the current step (Mnih et al. 2015 anneal ε linearly, then hold it)."""
        cfg = self.config
        return linear_epsilon(self.total_steps, cfg.exploration_initial_eps, cfg.exploration_final_eps,
                              cfg.exploration_steps)

    def act(self, obs: np.ndarray | int, *, explore: bool = True) -> int:
        """ε-greedy action with the current ε when ``explore``, else the greedy action."""
        if explore and self._rng.random() < self.epsilon:
            return int(self._rng.integers(self.num_actions)) + self._action_start
        x = self._stored_batch(np.asarray(obs)[None])
        return int(self.q.greedy(self._encode(x))[0]) + self._action_start

    def _behaviour(self, obs: np.ndarray) -> np.ndarray:
        """ε-greedy for every sub-env: a random action where a uniform draw falls below ε, else greedy."""
        explore = self._rng.random(len(obs)) < self.epsilon
        if explore.all():
            return self._rng.integers(self.num_actions, size=len(obs))
        a = self.q.greedy(self._encode(obs))
        if explore.any():
            a = np.where(explore, self._rng.integers(self.num_actions, size=len(obs)), a)
        return a

    def _to_env(self, a: np.ndarray) -> np.ndarray:
        return a + self._action_start if self._action_start else a

    def _totals(self) -> dict[str, float]:
        return {**super()._totals(), "train/epsilon": self.epsilon}

    # ----- learning ------------------------------------------------------------------------------------
    def _update(self) -> dict[str, float]:
        """One gradient step on a replay batch: ``y = R + γ^m (1 − terminated) Q_target(s', a*)``."""
        cfg = self.config
        obs, actions, rewards, next_obs, discounts = self._sample()
        if self._obs_discrete:
            obs, next_obs = (torch.from_numpy(self._eye).index_select(0, x) for x in (obs, next_obs))
        with torch.no_grad():
            valid = self._valid_next_actions(next_obs)
            next_q = self.target(next_obs)
            if cfg.double_q:  # van Hasselt et al. 2016: the online net selects, the target net evaluates
                online = self.q(next_obs)
                if valid is not None:
                    online = online.masked_fill(~valid, -torch.inf)
                next_v = next_q.gather(1, online.argmax(1, keepdim=True)).squeeze(1)
            else:  # Mnih et al. 2015: max over the target net
                if valid is not None:
                    next_q = next_q.masked_fill(~valid, -torch.inf)
                next_v = next_q.max(1).values
            td_target = rewards + discounts * next_v
        q = self.q(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        td_loss = F.smooth_l1_loss(q, td_target) if cfg.loss == "huber" else F.mse_loss(q, td_target)
        self._descend(td_loss, self.optimizer, clip=cfg.max_grad_norm)
        self.num_updates += 1
        return {"loss/td": td_loss.item()}

    def _valid_next_actions(self, next_obs: torch.Tensor) -> torch.Tensor | None:
        """Boolean ``(B, A)`` rows of the actions the TD target may maximise over; None: every action
        (:class:`agents.masked_dqn.MaskedDQNAgent` reads them from the observation)."""
        return None

    def _after_step(self, t_prev: int, t: int) -> None:
        """Target sync every ``target_update_interval`` steps: a hard copy, or Polyak averaging if τ < 1."""
        cfg = self.config
        if t >= cfg.learning_starts and updates_due(t_prev, t, cfg.target_update_interval, cfg.learning_starts):
            with torch.no_grad():
                torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), cfg.tau)
