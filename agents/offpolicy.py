"""Off-policy agents learning from a replay buffer: the interaction loop of DQN, DDPG, TD3 and SAC, written
once (the counterpart of :mod:`agents.onpolicy`), and the continuous-control pieces DDPG/TD3/SAC share.

- :class:`ReplayConfig` / :class:`ReplayAgent`: the loop. Every step the behaviour policy acts for all
  sub-envs (a single env is the N = 1 case of :class:`agents.vector_stepping.VectorStepper`), the
  transitions go to a :class:`agents.buffers.ReplayBuffer`, and every ``train_freq`` steps after
  ``learning_starts`` the algorithm's ``_update`` runs ``gradient_steps`` times (Mnih et al. 2015;
  Lillicrap et al. 2016, Algorithm 1). Time limits: a *terminated* transition cuts the bootstrap, a
  *truncated* one does not (Pardo et al. 2018).
- :class:`ContinuousConfig` / :class:`ContinuousAgent`: 1-D Box actions, uniformly random for the first
  ``learning_starts`` steps, stored normalised in ``[−1, 1]^A`` (only the env sees
  ``low + (a + 1)/2 · (high − low)``); Polyak target updates; critic-frozen actor losses.
- the networks: :class:`DeterministicActor` ``μ(s) = tanh(f(s))`` (Lillicrap et al. 2016),
  :class:`SquashedGaussianActor` ``a = tanh(u), u ~ N(μ(s), σ(s)²)`` with the tanh log-prob correction
  (Haarnoja et al. 2018, appendix C) and :class:`EnsembleCritic`, ``k`` Q-networks in one batched matmul
  per layer (k = 1 for DDPG, 2 for the clipped double-Q of TD3 and SAC).

Weight names (what the federation layer sees): ``actor.body.<i>.*``, ``actor.head.*``, ``critic.body.<i>.*``,
``critic.head.*`` (a critic tensor has a leading ensemble axis, stored ``(in, out)``). ``personal="head"``
keeps the heads local (FedPer, Arivazhagan et al. 2019). Targets and the SAC temperature are never shared.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import AgentError, check_num_steps, learn_stats, stored_batch
from agents.buffers import ReplayBuffer
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, NumpyActing, activation_class, mlp, seeded_init
from agents.torch_agent import TorchAgent
from agents.vector_stepping import VectorStepper, adopt_env, updates_due

LOG_2 = math.log(2.0)


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayConfig(ConfigChecks):
    """What every replay agent has. Steps are env steps (summed over sub-envs) and persist across
    ``learn`` calls: every ``train_freq`` steps once ``learning_starts`` were taken, ``gradient_steps``
    updates on batches of ``batch_size``."""

    gamma: float = 0.99  # discount
    buffer_size: int = 100_000  # replay capacity (transitions)
    batch_size: int = 256
    learning_starts: int = 1_000  # env steps before the first update
    train_freq: int = 1  # an update round every train_freq env steps ...
    gradient_steps: int = 1  # ... of this many gradient steps
    tau: float = 0.005  # Polyak coefficient of the target networks, θ' ← τθ + (1 − τ)θ'
    hidden_sizes: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    personal: str = "none"  # "none" or "head" (FedPer: the heads stay local)
    prox_mu: float = 0.0  # FedProx μ (0: off; set_proximal changes it per round)

    def __post_init__(self) -> None:
        for name, lo in (("buffer_size", 1), ("batch_size", 1), ("learning_starts", 0), ("train_freq", 1),
                         ("gradient_steps", 1)):
            self._int(name, lo)
        self._float("gamma", 0.0, 1.0)
        self._float("tau", 0.0, 1.0, lo_open=True)
        self._float("prox_mu", 0.0, math.inf)
        self._choice("activation", tuple(ACTIVATIONS))
        self._choice("personal", ("none", "head"))
        self._sizes("hidden_sizes")


@dataclass(frozen=True)
class ContinuousConfig(ReplayConfig):
    """Hyperparameters shared by DDPG, TD3 and SAC."""

    actor_lr: float = 1e-3  # Adam step size of the actor
    critic_lr: float = 1e-3  # Adam step size of the critic(s)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._float("actor_lr", 0.0, math.inf, lo_open=True)
        self._float("critic_lr", 0.0, math.inf, lo_open=True)
        self._sizes("hidden_sizes", non_empty=True)


# ----- networks ------------------------------------------------------------------------------------------
class EnsembleLinear(nn.Module):
    """``k`` independent linear layers applied at once: ``y_i = x_i W_i + b_i`` as one ``baddbmm``.

    ``weight`` is stored ``(k, in, out)`` and ``bias`` ``(k, 1, out)`` — the layout ``baddbmm`` consumes, so
    a forward pass is a single op (``weight[i]`` is the *transpose* of an ``nn.Linear`` weight). Each
    member is initialised like ``nn.Linear`` (uniform in ``±1/√in``). The input is ``(k, B, in)``, or
    ``(B, in)`` shared by all members; ``first`` uses only members ``[:first]``.
    """

    def __init__(self, k: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(k, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, first: int | None = None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if first is None else (self.weight[:first], self.bias[:first])
        if x.dim() == 2:
            x = x.expand(w.shape[0], *x.shape)
        return torch.baddbmm(b, x, w)


class EnsembleCritic(nn.Module):
    """``k`` Q-networks ``Q_i(s, a) = head_i(body_i([s, a]))`` as one module (Fujimoto et al. 2018 use
    k = 2 for clipped double Q-learning; DDPG has k = 1). The action enters at the input, as in
    Fujimoto et al.'s DDPG re-implementation and Stable-Baselines3."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        activation: str | type[nn.Module] = "relu",
        *,
        k: int = 2,
    ) -> None:
        super().__init__()
        act = activation_class(activation)
        layers: list[nn.Module] = []
        width = obs_dim + act_dim
        for h in hidden:
            layers += [EnsembleLinear(k, width, int(h)), act()]
            width = int(h)
        self.body = nn.Sequential(*layers)
        self.head = EnsembleLinear(k, width, 1)
        self.k = k

    def forward(self, obs: torch.Tensor, action: torch.Tensor, *, first: int | None = None) -> torch.Tensor:
        """``(k, B)`` Q-values, or ``(first, B)`` from members ``[:first]`` only."""
        h = torch.cat((obs, action), dim=-1)
        for layer in self.body:
            h = layer(h, first) if isinstance(layer, EnsembleLinear) else layer(h)
        return self.head(h, first).squeeze(-1)


class DeterministicActor(NumpyActing):
    """``μ(s) = tanh(head(body(s))) ∈ [−1, 1]^A`` (Lillicrap et al. 2016; Fujimoto et al. 2018)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str | type[nn.Module] = "relu"
    ) -> None:
        super().__init__()
        self.body = mlp(obs_dim, hidden, None, activation)
        self.head = nn.Linear(int(hidden[-1]), act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.body(obs)))

    def _acting_layers(self) -> list[nn.Module]:
        return [*self.body, self.head]

    def action(self, obs: np.ndarray) -> np.ndarray:
        """``μ(obs)`` for one float32 observation (or a batch of rows), as a fresh numpy array (the acting
        fast path)."""
        return np.tanh(self.acting_output(obs))


class SquashedGaussianActor(NumpyActing):
    """SAC policy ``a = tanh(u)``, ``u ~ N(m(s), diag σ(s)²)`` with ``head`` giving ``[m, log σ]``.

    Log-likelihood with the change of variables (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and
    Applications", appendix C, eq. 26):  ``log π(a|s) = log N(u; m, σ²) − Σ_j log(1 − tanh²(u_j))``, using
    the stable identity ``log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u))``. ``log σ`` is clipped to
    ``[log_std_min, log_std_max]`` as in the authors' code.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        activation: str | type[nn.Module] = "relu",
        *,
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
    ) -> None:
        super().__init__()
        self.body = mlp(obs_dim, hidden, None, activation)
        self.head = nn.Linear(int(hidden[-1]), 2 * act_dim)
        self.act_dim = act_dim
        self.log_std_min, self.log_std_max = log_std_bounds
        self._log_prob_const = act_dim * (0.5 * math.log(2.0 * math.pi) + 2.0 * LOG_2)

    def _acting_layers(self) -> list[nn.Module]:
        return [*self.body, self.head]

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample ``a = tanh(m + σ ε)`` and its log-probability ``(B,)``."""
        mean, log_std = self.head(self.body(obs)).split(self.act_dim, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        eps = torch.randn(mean.shape, generator=generator)
        u = mean + log_std.exp() * eps
        # Σ_j [log N(u_j; m_j, σ_j²) − log(1 − tanh² u_j)]
        #   = Σ_j [−ε_j²/2 − log σ_j − log(2π)/2 − 2 (log 2 − u_j − softplus(−2 u_j))]
        log_prob = (2.0 * (u + F.softplus(-2.0 * u)) - 0.5 * eps.square() - log_std).sum(-1)
        return torch.tanh(u), log_prob - self._log_prob_const

    def action(self, obs: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        """``tanh(m + σ·noise)`` for one float32 observation or a batch of rows (``tanh(m)``, the mode's
        image, if noise is None), as a fresh numpy array (the acting fast path)."""
        out = self.acting_output(obs)
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim :]
        if noise is None:
            return np.tanh(mean)
        return np.tanh(mean + np.exp(np.clip(log_std, self.log_std_min, self.log_std_max)) * noise)


# ----- the replay loop ---------------------------------------------------------------------------------------
class ReplayAgent(TorchAgent):
    """The interaction loop of the replay agents. A subclass builds ``net``/``target_net``, ``buffer`` (via
    :meth:`_new_buffer`) and implements :meth:`_behaviour` (actions for a batch of stored observations),
    :meth:`_update` (one gradient step, returns named losses) and :meth:`_to_stored` (one observation)."""

    config: ReplayConfig

    def _stored_batch(self, obs: Any) -> np.ndarray:
        return stored_batch(obs, False, self.obs_dim, 0)

    def _to_env(self, a: np.ndarray) -> np.ndarray:
        return a

    def _episodes_started(self, rows: np.ndarray) -> None:
        """Called with the sub-envs whose new episode starts (temporally correlated noise resets here)."""

    def _after_step(self, t_prev: int, t: int) -> None:
        """Called after each vector step moved the step counter from ``t_prev`` to ``t`` (target syncs)."""

    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """:meth:`agents.base.Agent.learn`: all sub-envs' transitions feed one buffer; ``train_freq`` and
        ``learning_starts`` count steps summed over sub-envs. Adds ``train/updates`` (total)."""
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        cfg, st, buffer = self.config, self._stepper, self.buffer
        N = st.num_envs
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(-(-num_steps // N)):
            obs = st.obs
            a = self._behaviour(obs)
            tr = st.step(self._to_env(a))
            buffer.add_batch(obs, a, tr.rewards, tr.next_obs, tr.terminated, tr.truncated, tr.valid)
            if tr.terminated[0] or tr.truncated[0] or N > 1:
                done = tr.terminated | tr.truncated
                if done.any():
                    self._episodes_started(np.flatnonzero(done))
            t_prev = self.total_steps
            self.total_steps = t = t_prev + N
            if t >= cfg.learning_starts and buffer.num_valid:
                for _ in range(updates_due(t_prev, t, cfg.train_freq, cfg.learning_starts) * cfg.gradient_steps):
                    for key, value in self._update().items():
                        sums[key] = sums.get(key, 0.0) + value
                        counts[key] = counts.get(key, 0) + 1
            self._after_step(t_prev, t)
        returns, lengths = st.drain_episodes()
        losses = {key: sums[key] / counts[key] for key in sums}
        return learn_stats(losses, returns, lengths, self._totals())

    def _totals(self) -> dict[str, float]:
        return {"train/updates": self.num_updates, "train/steps": self.total_steps}

    def _start(self, env: Any) -> None:
        """Adopt a new env: check its spaces, close the previous (abandoned) episode in the buffer, reset
        with a seed. Another number of sub-envs than the buffer's layout gets a fresh buffer (stored
        transitions cannot be re-strided)."""
        venv = adopt_env(env, self, action_bounds=isinstance(self.action_space, gym.spaces.Box))
        num_envs = 1 if venv is None else int(venv.num_envs)
        if self.buffer.num_envs != num_envs:
            self.buffer = self._new_buffer(num_envs)
        self.buffer.mark_episode_end()  # n-step lookahead must not chain into the new env's transitions
        self._env = env
        self._stepper = VectorStepper(env if venv is None else venv, self._stored_batch,
                                      int(self._rng.integers(2**31 - 1)))
        self._episodes_started(np.arange(num_envs))

    def _sample(self) -> tuple[torch.Tensor, ...]:
        """A replay batch as tensors ``(obs, actions, rewards, next_obs, discounts)`` sharing the numpy
        arrays' memory; ``discounts = γ^m · (1 − terminated)`` (n-step returns: :mod:`agents.buffers`)."""
        b = self.buffer.sample(self.config.batch_size)
        return tuple(torch.from_numpy(x) for x in (b.obs, b.actions, b.rewards, b.next_obs, b.discounts))


# ----- DDPG / TD3 / SAC --------------------------------------------------------------------------------------
class ContinuousAgent(ReplayAgent):
    """Spaces, action scaling, targets and the actor-critic steps shared by DDPG, TD3 and SAC. A subclass
    sets ``name``, ``algorithm``, ``config_class``, ``critic_k`` (critics in the ensemble), ``target_actor``
    (whether the actor has a target) and implements :meth:`_make_actor`, :meth:`_policy` and :meth:`_update`;
    the networks, targets and Adam optimisers are built here in a seeded torch RNG scope."""

    config_class: type[ContinuousConfig] = ContinuousConfig
    head_prefixes = ("actor.head.", "critic.head.")
    critic_k = 2
    target_actor = True
    actor: nn.Module
    critic: EnsembleCritic
    critic_target: EnsembleCritic

    def _build(self, cfg: ContinuousConfig, seed: int | np.random.SeedSequence) -> None:
        observation_space, action_space = self.observation_space, self.action_space
        if not isinstance(action_space, gym.spaces.Box):
            raise AgentError(
                f"{self.algorithm} supports Box action spaces; use dqn/ppo for Discrete (got {action_space!r})")
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if len(action_space.shape) != 1 or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise AgentError(
                f"{self.algorithm} supports 1-D Box action spaces with finite bounds; got {action_space!r}")
        if not (low < high).all():
            raise AgentError(f"action space {action_space!r} needs low < high in every dimension")
        if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
            raise AgentError(f"{self.algorithm} supports 1-D Box observation spaces; got {observation_space!r}")
        self.obs_dim, self.act_dim = int(observation_space.shape[0]), int(action_space.shape[0])
        self._act_low, self._act_high = action_space.low, action_space.high
        self._act_mid = ((high + low) / 2.0).astype(action_space.dtype)
        self._act_half = ((high - low) / 2.0).astype(action_space.dtype)
        with seeded_init(self._setup(cfg, seed)):
            self.actor = self._make_actor(cfg)
            self.critic = EnsembleCritic(self.obs_dim, self.act_dim, cfg.hidden_sizes, cfg.activation,
                                         k=self.critic_k)
        self.net = nn.ModuleDict({"actor": self.actor, "critic": self.critic})
        self.target_net = copy.deepcopy(self.net if self.target_actor else nn.ModuleDict({"critic": self.critic}))
        self.target_net.requires_grad_(False)
        self.critic_target = self.target_net["critic"]
        self.actor_target = self.target_net["actor"] if self.target_actor else None
        self.actor_optimizer = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_optimizer = adam(self.critic.parameters(), cfg.critic_lr)
        self._params = {k: list(m.parameters()) for k, m in self.net.items()}
        self._target_params = {k: list(m.parameters()) for k, m in self.target_net.items()}
        self.buffer = self._new_buffer(1)

    def _make_actor(self, cfg: Any) -> nn.Module:
        raise NotImplementedError

    def _policy(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Normalised actions in ``[−1, 1]^A`` for one stored observation ``(d,)`` or a batch ``(N, d)``."""
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def act(self, obs: np.ndarray, *, explore: bool = True) -> np.ndarray:
        """An action in the env's bounds: the exploration policy when ``explore``, else the deterministic
        one (``μ(s)``, or for SAC the squashed mean)."""
        return self._to_env(self._policy(self._stored_batch(np.asarray(obs)[None])[0], explore))

    def _behaviour(self, obs: np.ndarray) -> np.ndarray:
        if self.total_steps < self.config.learning_starts:
            return self._rng.uniform(-1.0, 1.0, (len(obs), self.act_dim)).astype(np.float32)
        return self._policy(obs, True)

    def _new_buffer(self, num_envs: int) -> ReplayBuffer:
        return ReplayBuffer(self.config.buffer_size, (self.obs_dim,), np.float32, (self.act_dim,), np.float32,
                            self._rng, gamma=self.config.gamma, num_envs=num_envs)

    def _to_env(self, a: np.ndarray) -> np.ndarray:
        """``[−1, 1]^A`` → ``[low, high]``: ``low + (a + 1)/2 · (high − low)``, clipped against rounding."""
        return np.clip(self._act_mid + self._act_half * a, self._act_low, self._act_high)

    def _q_for_actor(self, obs: torch.Tensor, action: torch.Tensor, *, first: int | None = None) -> torch.Tensor:
        """``Q_i(s, a)`` for an actor loss: the gradient flows into ``a`` only. The critic's parameters are
        frozen while the graph is recorded (as in OpenAI Spinning Up), so no critic gradient is computed."""
        params = self._params["critic"]
        trainable = [p.requires_grad for p in params]  # restore set_trainable's choice afterwards
        for p in params:
            p.requires_grad_(False)
        try:
            return self.critic(obs, action, first=first)
        finally:
            for p, flag in zip(params, trainable, strict=True):
                p.requires_grad_(flag)

    @torch.no_grad()
    def _polyak(self, name: str) -> None:
        """``θ' ← τθ + (1 − τ)θ'`` for the target of ``name`` ("actor"/"critic") in one fused call
        (Lillicrap et al. 2016, "soft" target updates)."""
        torch._foreach_lerp_(self._target_params[name], self._params[name], self.config.tau)


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with the fused kernel: one call updates every parameter of a network."""
    return torch.optim.Adam(params, lr=lr, fused=True)
