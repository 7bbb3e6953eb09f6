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
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents import register_agent
from agents.base import (
    Agent,
    AgentError,
    Weights,
    check_num_steps,
    checked_weights,
    flat_observation_layout,
    learn_stats,
    linear_epsilon,
    seed_sequence,
)
from agents.buffers import ReplayBuffer
from agents.checkpoint import read_checkpoint, save_checkpoint
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, QNetwork, seeded_init
from agents.vector_stepping import VectorStepper, adopt_env, updates_due


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DQNConfig(ConfigChecks):
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
        inf = math.inf
        self._int("buffer_size", 1)
        self._int("batch_size", 1)
        self._int("learning_starts", 0)
        self._int("train_freq", 1)
        self._int("gradient_steps", 1)
        self._int("target_update_interval", 1)
        self._int("exploration_steps", 0)
        self._int("n_step", 1)
        self._int("embedding_dim", 0)
        self._float("lr", 0.0, inf, lo_open=True)
        self._float("gamma", 0.0, 1.0)
        self._float("tau", 0.0, 1.0, lo_open=True)
        self._float("exploration_initial_eps", 0.0, 1.0)
        self._float("exploration_final_eps", 0.0, 1.0)
        self._float("prox_mu", 0.0, inf)
        self._optional_float("max_grad_norm", 0.0, inf, lo_open=True)
        self._bool("double_q", "dueling")
        self._choice("activation", tuple(ACTIVATIONS))
        self._choice("loss", ("huber", "mse"))
        self._choice("personal", ("none", "head"))
        self._sizes("hidden_sizes")


# ----- the agent -----------------------------------------------------------------------------------------
@register_agent
class DQNAgent(Agent):
    """DQN / Double / Dueling / n-step DQN on a Discrete action space and a 1-D Box (or Discrete,
    one-hot encoded) observation space. See the module docstring for the algorithm and its sources."""

    name = "dqn"
    _env_bound = ("_env", "_stepper", "_obs")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        seed: int | np.random.SeedSequence = 0,
        config: DQNConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.config = cfg = DQNConfig.resolve(config, overrides, "DQN")
        self.observation_space = observation_space
        self.action_space = action_space

        # Spaces: Discrete actions; a 1-D Box or a Discrete observation (stored as index, one-hot in torch).
        if not isinstance(action_space, gym.spaces.Discrete):
            raise AgentError(f"DQN supports Discrete action spaces only; got {action_space!r}")
        self.num_actions = int(action_space.n)
        self._action_start = int(action_space.start)
        self._obs_discrete, self.obs_dim, self._obs_start, self._obs_shape = flat_observation_layout(
            observation_space, "DQN"
        )
        if self._obs_discrete:
            self._eye = torch.eye(self.obs_dim, dtype=torch.float32)

        # Randomness: one SeedSequence → a numpy Generator (ε-greedy, replay sampling, env reset seeds)
        # and a torch seed used only, in a forked RNG scope, for the network initialisation.
        ss = seed_sequence(seed)
        np_ss, torch_ss = ss.spawn(2)
        self._rng = np.random.default_rng(np_ss)
        with seeded_init(torch_ss):
            self.q = QNetwork(
                self.obs_dim, self.num_actions, cfg.hidden_sizes, cfg.activation, dueling=cfg.dueling,
                embedding_dim=cfg.embedding_dim,
            )
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self._params = list(self.q.parameters())
        self._target_params = list(self.target.parameters())
        self.optimizer = torch.optim.Adam(self._params, lr=cfg.lr, fused=True)
        if cfg.personal == "head":
            self.personal_prefixes = ("head.",)
        if cfg.embedding_dim > 0:
            self.personal_prefixes = (*self.personal_prefixes, "embedding")
        self.prox_mu = cfg.prox_mu  # may be changed per round by the strategy (set_proximal)

        self.buffer = self._new_buffer(1)

        # FedProx anchor: name -> tensor of the last weights given to set_weights (only while prox_mu > 0).
        self._anchor: dict[str, torch.Tensor] = {}
        self._prox_pairs: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

        # Interaction state that persists across learn() calls.
        self.total_steps = 0
        self._env: Any = None
        self._stepper: VectorStepper | None = None  # set while learning on a VectorEnv / ParallelEnv
        self._obs: np.ndarray | int | None = None
        self._episode_return = 0.0
        self._episode_length = 0

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
        return self._greedy(self._to_stored(obs)) + self._action_start

    def _to_stored(self, obs: Any) -> np.ndarray | int:
        """Observation as stored in the buffer: a fresh float32 vector, or a 0-based index."""
        if self._obs_discrete:
            i = int(obs) - self._obs_start
            if not 0 <= i < self.obs_dim:
                raise AgentError(
                    f"observation {obs!r} outside Discrete({self.obs_dim}, start={self._obs_start})"
                )
            return i
        x = np.array(obs, dtype=np.float32)  # a copy: an env may reuse its observation array
        if x.shape != self._obs_shape:
            raise AgentError(f"observation shape {x.shape} does not match the expected {self._obs_shape}")
        return x

    def _stored_batch(self, obs: Any) -> np.ndarray:
        """A batch of observations (leading axis: sub-envs) as stored: float32 rows or 0-based indices."""
        if self._obs_discrete:
            x = np.asarray(obs, dtype=np.int64) - self._obs_start
            if x.ndim != 1 or ((x < 0) | (x >= self.obs_dim)).any():
                raise AgentError(
                    f"observations {obs!r} are not a batch in Discrete({self.obs_dim}, start={self._obs_start})"
                )
            return x
        x = np.array(obs, dtype=np.float32)
        if x.shape[1:] != self._obs_shape or x.ndim != 2:
            raise AgentError(f"observation batch shape {x.shape} does not match (N, {self.obs_dim})")
        return x

    def _new_buffer(self, num_envs: int) -> ReplayBuffer:
        cfg = self.config
        return ReplayBuffer(
            cfg.buffer_size,
            self._obs_shape,
            np.int64 if self._obs_discrete else np.float32,
            (),
            np.int64,
            self._rng,
            n_step=cfg.n_step,
            gamma=cfg.gamma,
            num_envs=num_envs,
        )

    def _encode(self, stored: np.ndarray | int) -> torch.Tensor:
        """Stored observation(s) → network input (one-hot rows for Discrete observations)."""
        if self._obs_discrete:
            return self._eye[stored] if isinstance(stored, int) else self._eye[torch.from_numpy(stored)]
        return torch.from_numpy(stored)

    def _greedy(self, stored: np.ndarray | int) -> int:
        return self.q.greedy_action(self._encode(stored))

    # ----- learning ------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """Interact with ``env`` for ``num_steps`` steps, storing transitions and training every
        ``train_freq`` steps once ``learning_starts`` steps have been taken.

        ``env`` is a gymnasium Env, a gymnasium VectorEnv or a PettingZoo ParallelEnv (one Q-network acts
        for every agent, batched, and learns from all their transitions: parameter sharing). For the
        vector forms ``num_steps`` counts steps summed over sub-envs, rounded up to a multiple of
        ``num_envs``; updates and target syncs keep the single-env rate per step (``train_freq`` and
        ``target_update_interval`` count summed steps too).

        The running episode continues across calls on the same env object; a new env object is reset with
        a seed drawn from the agent's generator. Returns ``loss/td`` (mean over this call's updates; absent
        if none), ``train/episode_return`` and ``train/episode_length`` (means over episodes completed in
        this call; absent if none), ``train/episodes``, ``train/epsilon`` and ``train/steps`` (total).
        """
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        if self._stepper is not None:
            return self._learn_vector(num_steps)
        cfg = self.config
        rng, buffer = self._rng, self.buffer
        start, n_actions = self._action_start, self.num_actions
        eps0, eps1, eps_steps = cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_steps
        learning_starts, train_freq = cfg.learning_starts, cfg.train_freq
        target_every, gradient_steps = cfg.target_update_interval, cfg.gradient_steps

        obs = self._obs
        t = self.total_steps
        returns: list[float] = []
        lengths: list[int] = []
        loss_sum, n_updates = 0.0, 0
        for _ in range(num_steps):
            # ε-greedy action with a linearly annealed ε
            eps = eps1 if t >= eps_steps else eps0 + (t / eps_steps) * (eps1 - eps0)
            a = int(rng.integers(n_actions)) if rng.random() < eps else self._greedy(obs)

            next_raw, reward, terminated, truncated, _ = env.step(a + start)
            next_obs = self._to_stored(next_raw)
            buffer.add(obs, a, reward, next_obs, terminated, truncated)
            self._episode_return += float(reward)
            self._episode_length += 1
            if terminated or truncated:
                returns.append(self._episode_return)
                lengths.append(self._episode_length)
                self._episode_return, self._episode_length = 0.0, 0
                obs = self._to_stored(env.reset()[0])
            else:
                obs = next_obs
            t += 1
            self.total_steps = t

            if t >= learning_starts:
                if t % train_freq == 0:
                    for _ in range(gradient_steps):
                        loss_sum += self._update()
                        n_updates += 1
                if t % target_every == 0:
                    self._update_target()
        self._obs = obs
        return self._stats(loss_sum, n_updates, returns, lengths)

    def _learn_vector(self, num_steps: int) -> dict[str, float]:
        """:meth:`learn` on a VectorEnv / ParallelEnv: ε-greedy for all sub-envs in one forward pass."""
        cfg, st = self.config, self._stepper
        assert st is not None
        rng, buffer, N = self._rng, self.buffer, st.num_envs
        start, n_actions = self._action_start, self.num_actions
        loss_sum, n_updates = 0.0, 0
        for _ in range(-(-num_steps // N)):
            obs = st.obs
            with torch.no_grad():
                a = self.q(self._encode(obs)).argmax(1).numpy()
            explore = rng.random(N) < self.epsilon
            if explore.any():
                a = np.where(explore, rng.integers(n_actions, size=N), a)
            tr = st.step(a + start if start else a)
            buffer.add_batch(obs, a, tr.rewards, tr.next_obs, tr.terminated, tr.truncated, tr.valid)
            t_prev = self.total_steps
            self.total_steps = t = t_prev + N
            if buffer.num_valid:
                for _ in range(updates_due(t_prev, t, cfg.train_freq, cfg.learning_starts) * cfg.gradient_steps):
                    loss_sum += self._update()
                    n_updates += 1
            for _ in range(min(1, updates_due(t_prev, t, cfg.target_update_interval, cfg.learning_starts))):
                self._update_target()
        returns, lengths = st.drain_episodes()
        return self._stats(loss_sum, n_updates, returns, lengths)

    def _stats(self, loss_sum: float, n_updates: int, returns: list[float], lengths: list[int]) -> dict[str, float]:
        losses = {"loss/td": loss_sum / n_updates} if n_updates else {}
        return learn_stats(losses, returns, lengths, {"train/epsilon": self.epsilon, "train/steps": self.total_steps})

    def _start(self, env: Any) -> None:
        """Adopt a new env: check its spaces, close the previous (abandoned) episode, reset with a seed.

        A VectorEnv / ParallelEnv with a different number of sub-envs than the replay buffer's layout gets
        a fresh buffer (the stored transitions cannot be re-strided)."""
        venv, obs_space, act_space = adopt_env(env)
        expected_actions = (self.num_actions, self._action_start)
        if not isinstance(act_space, gym.spaces.Discrete) or (
            (int(act_space.n), int(act_space.start)) != expected_actions
        ):
            raise AgentError(
                f"env action space {act_space!r} does not match the agent's {self.action_space!r}"
            )
        if self._obs_discrete:
            ok = isinstance(obs_space, gym.spaces.Discrete) and int(obs_space.n) == self.obs_dim
        else:
            ok = isinstance(obs_space, gym.spaces.Box) and tuple(obs_space.shape) == self._obs_shape
        if not ok:
            raise AgentError(
                f"env observation space {obs_space!r} does not match the agent's {self.observation_space!r}"
            )
        num_envs = 1 if venv is None else int(venv.num_envs)
        if self.buffer.num_envs != num_envs:
            self.buffer = self._new_buffer(num_envs)
        self.buffer.mark_episode_end()  # n-step lookahead must not chain into the new env's transitions
        seed = int(self._rng.integers(2**31 - 1))
        self._env = env
        if venv is not None:
            self._stepper = VectorStepper(venv, self._stored_batch, seed)
            self._obs = None
        else:
            self._stepper = None
            self._obs = self._to_stored(env.reset(seed=seed)[0])
        self._episode_return, self._episode_length = 0.0, 0

    def _update(self) -> float:
        """One gradient step on a replay batch; returns the TD loss."""
        cfg = self.config
        b = self.buffer.sample(cfg.batch_size)
        obs, next_obs = self._encode(b.obs), self._encode(b.next_obs)
        actions = torch.from_numpy(b.actions).unsqueeze(1)
        with torch.no_grad():
            next_q = self.target(next_obs)
            if cfg.double_q:  # van Hasselt et al. 2016: online net selects, target net evaluates
                next_v = next_q.gather(1, self.q(next_obs).argmax(1, keepdim=True)).squeeze(1)
            else:  # Mnih et al. 2015: max over the target net
                next_v = next_q.max(1).values
            td_target = torch.from_numpy(b.rewards) + torch.from_numpy(b.discounts) * next_v
        q = self.q(obs).gather(1, actions).squeeze(1)
        td_loss = F.smooth_l1_loss(q, td_target) if cfg.loss == "huber" else F.mse_loss(q, td_target)
        loss = td_loss
        if self.prox_mu > 0.0 and self._prox_pairs:  # FedProx, Li et al. 2020, eq. (2)
            prox = sum(torch.sum((p - a) ** 2) for p, a in self._prox_pairs if p.requires_grad)
            loss = loss + 0.5 * self.prox_mu * prox
        if not loss.requires_grad:  # everything frozen (set_trainable): nothing to update
            return float(td_loss.item())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
        self.optimizer.step()
        return float(td_loss.item())

    @torch.no_grad()
    def _update_target(self) -> None:
        tau = self.config.tau
        for tp, p in zip(self._target_params, self._params, strict=True):
            if tau == 1.0:
                tp.copy_(p)
            else:
                tp.lerp_(p, tau)

    # ----- weights ---------------------------------------------------------------------------------------
    def get_weights(self) -> Weights:
        """Online Q-network parameters as independent float32 numpy copies, named like its state_dict."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.q.state_dict().items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load a subset of the Q-network parameters by name into the online *and* target networks (a
        freshly broadcast model gets a consistent target). The given values become the FedProx anchor.
        Validates everything first: on an unknown key, wrong shape or non-finite value nothing changes.
        The optimiser state (Adam moments) and the replay buffer are kept: they are local to the client."""
        online, target = self.q.state_dict(), self.target.state_dict()
        staged = self._stage(weights, online, "weight")
        with torch.no_grad():
            for key, value in staged.items():
                online[key].copy_(value)
                target[key].copy_(value)
        self._anchor.update(staged)
        self._rebuild_prox_pairs()

    @staticmethod
    def _stage(
        weights: Mapping[str, np.ndarray], known: Mapping[str, torch.Tensor], what: str
    ) -> dict[str, torch.Tensor]:
        """Checked float32 tensor copies of ``weights`` (:func:`agents.base.checked_weights`)."""
        shapes = {k: tuple(v.shape) for k, v in known.items()}
        return {k: torch.from_numpy(v) for k, v in checked_weights(weights, shapes, what).items()}

    def set_anchor(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set the proximal anchor without touching the parameters (Ditto's personal model is pulled
        toward the global model while keeping its own values). Refuses what ``set_weights`` refuses."""
        staged = self._stage(weights, dict(self.q.named_parameters()), "anchor weight")
        self._anchor.update(staged)
        self._rebuild_prox_pairs()

    def set_proximal(self, mu: float) -> None:
        """FedProx / Ditto: weight μ of (μ/2)·||θ − θ_anchor||², the anchor being the last set_weights."""
        if not (isinstance(mu, (int, float)) and mu >= 0.0 and math.isfinite(mu)):
            raise AgentError(f"prox_mu={mu!r} is out of range; allowed: finite >= 0")
        self.prox_mu = float(mu)

    def set_trainable(self, prefixes: tuple[str, ...] | None) -> None:
        """Train only the parameters whose names start with one of ``prefixes`` (None: all).

        FedRep (Collins et al. 2021) alternates head-only and body-only local updates with this."""
        for name, p in self.q.named_parameters():
            p.requires_grad_(prefixes is None or name.startswith(prefixes))

    def _rebuild_prox_pairs(self) -> None:
        named = dict(self.q.named_parameters())
        self._prox_pairs = [(named[k], a) for k, a in self._anchor.items() if k in named]

    # ----- checkpoints -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights, target, optimiser state, step counter, RNG state and FedProx anchor atomically
        (temp file in the same directory, then ``os.replace``). The replay buffer is not saved."""
        payload = {
            "obs_dim": self.obs_dim,
            "num_actions": self.num_actions,
            "config": dataclasses.asdict(self.config),
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "total_steps": self.total_steps,
            "rng_state": json.dumps(self._rng.bit_generator.state),
            "anchor": dict(self._anchor),
        }
        save_checkpoint(path, self.name, payload)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save` (``torch.load(weights_only=True)``).

        Refuses (AgentError, nothing modified) a file that is not a DQN checkpoint or whose network shapes
        differ. The agent keeps its own config (the optimiser's lr is reset to ``config.lr``).
        """
        payload = read_checkpoint(path, self.name)
        expected = {k: tuple(v.shape) for k, v in self.q.state_dict().items()}
        for part in ("q", "target"):
            got = payload.get(part)
            shapes = {k: tuple(v.shape) for k, v in got.items()} if isinstance(got, Mapping) else None
            if shapes != expected:
                raise AgentError(
                    f"checkpoint {os.fspath(path)!r} has network shapes {shapes} ({part}), "
                    f"but this agent expects {expected}"
                )
        optimizer = torch.optim.Adam(self._params, lr=self.config.lr, fused=True)
        try:
            optimizer.load_state_dict(payload["optimizer"])
            rng_state = json.loads(payload["rng_state"])
            total_steps = int(payload["total_steps"])
            anchor = {k: v.clone() for k, v in payload.get("anchor", {}).items() if k in expected}
        except Exception as exc:
            raise AgentError(f"checkpoint {os.fspath(path)!r} is malformed: {exc}") from None
        for group in optimizer.param_groups:
            group["lr"] = self.config.lr
        self.q.load_state_dict(payload["q"])
        self.target.load_state_dict(payload["target"])
        self.optimizer = optimizer
        self._rng.bit_generator.state = rng_state
        self.total_steps = total_steps
        self._anchor = anchor
        self._rebuild_prox_pairs()
