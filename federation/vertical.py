"""Vertical federated RL (FedRL; Zhuo, Feng, Lin, Xu, Yang, "Federated Deep Reinforcement Learning", 2019).

In vertical FRL the parties do not own separate environments: they observe *different parts of one shared
environment*. Each party keeps a local network f_i that turns its private observation o_i into a message
z_i = f_i(o_i) (+ Gaussian noise N(0, σ²) for privacy, as FedRL perturbs what is shared); only z_i leaves
the party. A Q-network agent g combines the messages, learns the joint Q-function and sends each party
the gradient ∂L/∂z_i, with which the party updates f_i. Raw observations and local weights never move.

The shared environment here is any PettingZoo ``ParallelEnv`` with 1-D Box observations and Discrete
actions per agent (one party per agent id). The joint action space is exponential in the number of
parties, so the joint Q-function is factorised as a sum of per-party utilities computed from *all*
messages, Q(s, a) = Σ_i Q_i(z_1..z_N, a_i) (value decomposition, Sunehag et al. 2018, "Value-Decomposition
Networks For Cooperative Multi-Agent Learning"); the team reward is the mean of the agents' rewards and
the TD target is r + γ Σ_i max_a Q_i^target(z', a) (Mnih et al. 2015 with a target network).

``double_q=True`` picks each party's next action with the online network and scores it with the target
network (van Hasselt, Guez & Silver 2016, "Deep Reinforcement Learning with Double Q-learning"), against
the overestimation that a sum of N maxima compounds. At a truncation the TD target bootstraps from the
episode's final observation (before: the last pre-step observation, a one-step-stale state).

``VerticalFRL(..., share=False)`` is the comparison FedRL makes: every party learns alone from its own
observation — the same encoder and network sizes, the same team reward and hyperparameters, but no messages:
independent Q-learners (Tan 1993), Q_i(o_i, a_i) with target r + γ max_a Q_i^target(o_i', a).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.nets import mlp
from federation.evaluation import evaluate_parallel
from federation.types import FederationError


@dataclass(frozen=True)
class VerticalConfig:
    message_dim: int = 16          # size of each party's message z_i
    encoder_hidden: tuple[int, ...] = (64,)
    q_hidden: tuple[int, ...] = (128,)
    noise_std: float = 0.0         # Gaussian privacy noise σ added to every message
    lr: float = 1e-3
    gamma: float = 0.95
    buffer_size: int = 20_000
    batch_size: int = 64
    learning_starts: int = 500
    train_freq: int = 2
    target_update_interval: int = 250
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    exploration_steps: int = 3_000
    double_q: bool = False         # double Q-learning target (van Hasselt et al. 2016)

    def __post_init__(self) -> None:
        for name, lo, hi in (("message_dim", 1, 4096), ("buffer_size", 1, 10**8), ("batch_size", 1, 10**6),
                             ("learning_starts", 0, 10**9), ("train_freq", 1, 10**6),
                             ("target_update_interval", 1, 10**9), ("exploration_steps", 0, 10**9)):
            v = getattr(self, name)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise FederationError(f"{name}={v!r} is out of range; allowed: integer in [{lo}, {hi}]")
        if not isinstance(self.double_q, bool):
            raise FederationError(f"double_q={self.double_q!r} must be a bool; allowed: True, False")
        for name, lo, hi in (("noise_std", 0.0, 1e3), ("lr", 1e-9, 1.0), ("gamma", 0.0, 1.0),
                             ("exploration_initial_eps", 0.0, 1.0), ("exploration_final_eps", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise FederationError(f"{name}={v!r} is out of range; allowed: [{lo}, {hi}]")


def _spaces(env: Any) -> tuple[list[str], int, int]:
    agents = list(env.possible_agents)
    obs_dims, n_actions = set(), set()
    for a in agents:
        o, s = env.observation_space(a), env.action_space(a)
        if not (isinstance(o, gym.spaces.Box) and len(o.shape) == 1 and isinstance(s, gym.spaces.Discrete)):
            raise FederationError(f"vertical FRL needs 1-D Box observations and Discrete actions; agent {a!r} has "
                                  f"{o!r} and {s!r}")
        obs_dims.add(o.shape[0])
        n_actions.add(int(s.n))
    if len(obs_dims) != 1 or len(n_actions) != 1:
        raise FederationError("vertical FRL needs the same observation and action sizes for every agent")
    return agents, obs_dims.pop(), n_actions.pop()


class _Joint(nn.Module):
    """Party encoders f_i (one per agent) and the Q-network agent g with one utility head per party
    (``share=False``: one private Q head per party that sees only its own encoding)."""

    def __init__(self, n: int, obs_dim: int, n_actions: int, cfg: VerticalConfig, share: bool = True) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            [nn.Sequential(mlp(obs_dim, cfg.encoder_hidden, cfg.message_dim), nn.Tanh()) for _ in range(n)])
        self.share = share
        if share:
            self.q = mlp(n * cfg.message_dim, cfg.q_hidden, n * n_actions)
        else:
            self.q = nn.ModuleList([mlp(cfg.message_dim, cfg.q_hidden, n_actions) for _ in range(n)])
        self.n, self.n_actions, self.d = n, n_actions, cfg.message_dim

    def messages(self, obs: torch.Tensor) -> list[torch.Tensor]:
        """obs [B, N, obs_dim] → each party's message z_i [B, d] (computed on the party's side)."""
        return [enc(obs[:, i]) for i, enc in enumerate(self.encoders)]

    def utilities(self, z: torch.Tensor) -> torch.Tensor:
        """Concatenated messages [B, N·d] → per-party utilities Q_i(z, ·) [B, N, A]."""
        if self.share:
            return self.q(z).view(-1, self.n, self.n_actions)
        parts = z.split(self.d, dim=1)
        return torch.stack([head(p) for head, p in zip(self.q, parts, strict=True)], dim=1)


class VerticalFRL:
    """FedRL's learner: N parties with private encoders and one Q-network agent, trained by message and
    gradient exchange. ``bytes_messages`` / ``bytes_gradients`` count exactly what crossed party borders."""

    def __init__(self, env: Any, *, seed: int = 0, config: VerticalConfig | None = None, share: bool = True,
                 **overrides: Any) -> None:
        names = {f.name for f in fields(VerticalConfig)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise FederationError(f"unknown vertical FRL option {bad[0]!r}; allowed: {', '.join(sorted(names))}")
        if config is not None and overrides:
            raise FederationError("give either config= or keyword overrides, not both")
        self.config = cfg = config or VerticalConfig(**overrides)
        self.share = share
        self.agents, self.obs_dim, self.n_actions = _spaces(env)
        n = len(self.agents)
        ss = np.random.SeedSequence(seed)
        np_ss, torch_ss, noise_ss = ss.spawn(3)
        self._rng = np.random.default_rng(np_ss)
        self._noise = torch.Generator().manual_seed(int(noise_ss.generate_state(1, np.uint64)[0] >> 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch_ss.generate_state(1, np.uint64)[0] >> 1))
            self.net = _Joint(n, self.obs_dim, self.n_actions, cfg, share)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        # Each party optimises its own encoder; the Q-network agent optimises g.
        self.party_opts = [torch.optim.Adam(e.parameters(), lr=cfg.lr) for e in self.net.encoders]
        self.q_opt = torch.optim.Adam(self.net.q.parameters(), lr=cfg.lr)
        # Noise is part of the message protocol; independent learners send nothing.
        cap = cfg.buffer_size
        self._obs = np.zeros((cap, n, self.obs_dim), np.float32)
        self._next = np.zeros((cap, n, self.obs_dim), np.float32)
        self._act = np.zeros((cap, n), np.int64)
        self._rew = np.zeros(cap, np.float32)
        self._term = np.zeros(cap, np.float32)
        self._size = self._pos = 0
        self.total_steps = 0
        self.bytes_messages = 0
        self.bytes_gradients = 0
        self._env: Any = None
        self._cur: np.ndarray | None = None
        self._ep_ret = 0.0  # team return of the running episode, carried across learn() calls

    # ----- acting ----------------------------------------------------------------------------------------
    def _stack(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [a for a in self.agents if a not in obs]
        if missing:
            raise FederationError(f"vertical FRL needs every agent alive for the whole episode; missing {missing}")
        return np.stack([np.asarray(obs[a], np.float32) for a in self.agents])

    @property
    def epsilon(self) -> float:
        c = self.config
        frac = min(1.0, self.total_steps / c.exploration_steps) if c.exploration_steps else 1.0
        return c.exploration_initial_eps + frac * (c.exploration_final_eps - c.exploration_initial_eps)

    @torch.no_grad()
    def _greedy(self, obs: np.ndarray) -> np.ndarray:
        z = torch.cat(self.net.messages(torch.from_numpy(obs)[None]), dim=1)
        return self.net.utilities(z)[0].argmax(dim=1).numpy()

    def act(self, obs: dict[str, np.ndarray], *, explore: bool = True) -> dict[str, int]:
        x = self._stack(obs)
        acts = self._greedy(x)
        if explore:
            rand = self._rng.random(len(self.agents)) < self.epsilon
            acts = np.where(rand, self._rng.integers(self.n_actions, size=len(self.agents)), acts)
        return {a: int(u) for a, u in zip(self.agents, acts, strict=True)}

    # ----- learning ------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        cfg = self.config
        if env is not self._env:
            obs, _ = env.reset(seed=int(self._rng.integers(2**31 - 1)))
            self._env, self._cur = env, self._stack(obs)
        losses, returns, ep_ret = [], [], self._ep_ret
        for _ in range(num_steps):
            acts = self.act({a: self._cur[i] for i, a in enumerate(self.agents)}, explore=True)
            nxt, rew, term, trunc, _ = env.step(acts)
            r = float(np.mean([rew[a] for a in self.agents]))
            done_t = any(term.get(a, False) for a in self.agents)
            done = done_t or any(trunc.get(a, False) for a in self.agents) or not env.agents
            p = self._pos
            self._obs[p] = self._cur
            self._act[p] = [acts[a] for a in self.agents]
            self._rew[p] = r
            self._term[p] = float(done_t)
            if done:  # bootstrap (unless terminated) from the episode's final observation
                self._next[p] = self._stack(nxt) if all(a in nxt for a in self.agents) else self._cur
                nobs, _ = env.reset(seed=int(self._rng.integers(2**31 - 1)))
                self._cur = self._stack(nobs)
                returns.append(ep_ret + r)
                ep_ret = 0.0
            else:
                self._cur = self._stack(nxt)
                self._next[p] = self._cur
                ep_ret += r
            self._pos = (p + 1) % cfg.buffer_size
            self._size = min(self._size + 1, cfg.buffer_size)
            self.total_steps += 1
            if self.total_steps >= cfg.learning_starts and self.total_steps % cfg.train_freq == 0:
                losses.append(self._update())
            if self.total_steps % cfg.target_update_interval == 0:
                self.target.load_state_dict(self.net.state_dict())
        self._ep_ret = ep_ret
        out = {"train/steps": float(self.total_steps), "comm/message_bytes": float(self.bytes_messages),
               "comm/gradient_bytes": float(self.bytes_gradients)}
        if losses:
            out["loss/td"] = float(np.mean(losses))
        if returns:
            out["train/episode_return"] = float(np.mean(returns))
        return out

    def _update(self) -> float:
        cfg = self.config
        idx = self._rng.integers(self._size, size=cfg.batch_size)
        obs, nxt = torch.from_numpy(self._obs[idx]), torch.from_numpy(self._next[idx])
        acts = torch.from_numpy(self._act[idx])
        # 1. Parties compute and send their (noised) messages; the Q agent receives leaf tensors.
        sent = self.net.messages(obs)
        if cfg.noise_std > 0:
            sent = [z + cfg.noise_std * torch.randn(z.shape, generator=self._noise) for z in sent]
        received = [z.detach().requires_grad_(True) for z in sent]
        if self.share:
            self.bytes_messages += sum(z.numel() * 4 for z in received)
        # 2. The Q agent computes the VDN joint Q and the TD loss, and updates g. (Independent learners:
        #    one TD loss per party on its own utility, and nothing crosses a party border.)
        q_all = self.net.utilities(torch.cat(received, dim=1)).gather(2, acts.unsqueeze(2)).squeeze(2)
        with torch.no_grad():
            q_next = self.target.utilities(torch.cat(self.target.messages(nxt), dim=1))
            if cfg.double_q:  # online net picks a'_i, target net scores it
                pick = self.net.utilities(torch.cat(self.net.messages(nxt), dim=1)).argmax(2, keepdim=True)
                v_all = q_next.gather(2, pick).squeeze(2)
            else:
                v_all = q_next.max(2).values
            not_done = cfg.gamma * (1 - torch.from_numpy(self._term[idx]))
            rew = torch.from_numpy(self._rew[idx])
            if self.share:
                target = rew + not_done * v_all.sum(1)
            else:
                target = rew.unsqueeze(1) + not_done.unsqueeze(1) * v_all
        q = q_all.sum(1) if self.share else q_all
        loss = F.smooth_l1_loss(q, target)
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()
        # 3. Gradient messages ∂L/∂z_i go back; each party back-propagates them through its encoder.
        if self.share:
            self.bytes_gradients += sum(z.grad.numel() * 4 for z in received)
        for opt, z, r in zip(self.party_opts, sent, received, strict=True):
            opt.zero_grad(set_to_none=True)
            z.backward(r.grad)
            opt.step()
        return float(loss.item())

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}


def evaluate_team(env: Any, policy: VerticalFRL | Callable[[dict[str, Any]], dict[str, Any]],
                  seeds: list[int], kpis: tuple[str, ...] = ()) -> dict[str, float]:
    """Team return (sum over steps of the mean agent reward), one episode per seed, of a learner (acting
    greedily) or of any joint policy ``obs_dict -> action_dict`` (e.g. the env's parallel heuristics), plus the
    mean of each of ``kpis``; see :func:`federation.evaluation.evaluate_parallel`."""
    act = (lambda obs: policy.act(obs, explore=False)) if isinstance(policy, VerticalFRL) else policy
    out = evaluate_parallel(env, act, seeds, kpis, joint=True)
    return {"return": out["team_return"], "return_std": out["team_return_std"], **{k: out[k] for k in kpis}}
