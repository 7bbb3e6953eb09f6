"""Shared machinery of the continuous-control off-policy agents (``ddpg``, ``td3``, ``sac``).

Each algorithm's update lives, readable top to bottom, in its own module (``agents/ddpg.py``,
``agents/td3.py``, ``agents/sac.py``). This module holds what the three have in common:

- :class:`OffPolicyConfig`: the hyperparameters they share, validated like ``DQNConfig``;
- the networks: :class:`DeterministicActor` ``μ(s) = tanh(f(s))`` (Lillicrap et al. 2016),
  :class:`SquashedGaussianActor` ``a = tanh(u), u ~ N(μ(s), σ(s)²)`` with the tanh log-prob correction
  (Haarnoja et al. 2018, appendix C) and :class:`EnsembleCritic`, ``k`` Q-networks ``Q_i(s, a)`` evaluated
  in one batched matmul per layer (k = 1 for DDPG, 2 for the clipped double-Q of TD3 and SAC);
- :class:`OffPolicyAgent`: spaces, seeding, the interaction loop (uniform random actions for
  ``learning_starts`` steps, then the algorithm's exploration), Polyak target updates, the FedProx term,
  named weights, checkpoints and pickling.

Actions: the networks work in ``[−1, 1]^A``; the replay buffer stores those normalised actions, and only
the env sees ``low + (a + 1)/2 · (high − low)``. Time limits: a *terminated* transition cuts the
bootstrap, a *truncated* one does not (Pardo et al. 2018).

Parameter names (what the federation layer sees): ``actor.body.<i>.{weight,bias}``, ``actor.head.*``,
``critic.body.<i>.*`` and ``critic.head.*``, where a critic tensor has a leading ensemble axis
(``critic.body.0.weight[i]`` is critic ``i``'s first-layer weight, stored ``(in, out)``). ``personal="head"`` keeps
``actor.head.*`` and ``critic.head.*`` local (FedPer, Arivazhagan et al. 2019). Target networks and the SAC
temperature are never shared.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import Agent, AgentError, Weights, check_num_steps, checked_weights, learn_stats, seed_sequence
from agents.buffers import ReplayBuffer
from agents.checkpoint import read_checkpoint, save_checkpoint
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, CachedViews, activation_class, mlp, seeded_init
from agents.vector_stepping import VectorStepper, adopt_env, updates_due

LOG_2 = math.log(2.0)


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OffPolicyConfig(ConfigChecks):
    """Hyperparameters shared by DDPG, TD3 and SAC. Steps are env steps and persist across ``learn`` calls.

    Every ``train_freq`` env steps (once ``learning_starts`` steps have been taken with uniform random
    actions) the agent does ``gradient_steps`` updates on batches of ``batch_size`` transitions.
    """

    actor_lr: float = 1e-3  # Adam step size of the actor
    critic_lr: float = 1e-3  # Adam step size of the critic(s)
    gamma: float = 0.99  # discount
    buffer_size: int = 100_000  # replay capacity (transitions)
    batch_size: int = 256
    learning_starts: int = 1_000  # env steps with uniform random actions and no updates
    train_freq: int = 1  # an update round every train_freq env steps ...
    gradient_steps: int = 1  # ... of this many gradient steps
    tau: float = 0.005  # Polyak coefficient of the target networks, θ' ← τθ + (1 − τ)θ'
    hidden_sizes: tuple[int, ...] = (256, 256)  # actor and critic trunks
    activation: str = "relu"
    personal: str = "none"  # "none" or "head" (FedPer: actor and critic heads stay local)
    prox_mu: float = 0.0  # FedProx μ on the actor and critic losses (0: off)

    def __post_init__(self) -> None:
        inf = math.inf
        for name, lo in (
            ("buffer_size", 1),
            ("batch_size", 1),
            ("learning_starts", 0),
            ("train_freq", 1),
            ("gradient_steps", 1),
        ):
            self._int(name, lo)
        self._float("actor_lr", 0.0, inf, lo_open=True)
        self._float("critic_lr", 0.0, inf, lo_open=True)
        self._float("gamma", 0.0, 1.0)
        self._float("tau", 0.0, 1.0, lo_open=True)
        self._float("prox_mu", 0.0, inf)
        self._choice("activation", tuple(ACTIVATIONS))
        self._choice("personal", ("none", "head"))
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


_NUMPY_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.ReLU: lambda h: np.maximum(h, 0.0, out=h),
    nn.Tanh: lambda h: np.tanh(h, out=h),
}


class _NumpyFastPath(CachedViews):
    """``head(body(x))`` for one unbatched observation as plain numpy ``W @ h + b`` on cached views.

    The views (``param.detach().numpy()``) share storage with the parameters, so in-place updates
    (optimiser steps, ``copy_``, ``load_state_dict``) are seen; the cache is dropped whenever parameters
    may be replaced (:class:`agents.nets.CachedViews`). Activations without a numpy
    form run through torch on a zero-copy view. Several times cheaper per env step than a module call.
    """

    body: nn.Sequential
    head: nn.Linear

    def __init__(self) -> None:
        super().__init__()
        self._plan: list[tuple[np.ndarray, np.ndarray, Callable | None]] | None = None

    def head_output(self, obs: np.ndarray) -> np.ndarray:
        """The head's output for one observation ``(obs_dim,)`` or a batch ``(N, obs_dim)``."""
        plan = self._plan if self._plan is not None else self._build_plan()
        h = obs
        batched = obs.ndim == 2
        for weight, bias, act in plan:
            h = h @ weight.T if batched else weight @ h
            h += bias
            if act is not None:
                h = act(h)
        return h

    def _build_plan(self) -> list[tuple[np.ndarray, np.ndarray, Callable | None]]:
        plan: list[list] = []
        for layer in self.body:
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                plan.append([layer.weight.detach().numpy(), layer.bias.detach().numpy(), None])
            elif plan and plan[-1][2] is None and not any(True for _ in layer.parameters()):
                fn = _NUMPY_ACTIVATIONS.get(type(layer))
                plan[-1][2] = fn if fn is not None else _torch_activation(layer)
            else:
                raise TypeError(f"the fast path cannot run body layer {layer!r}")
        plan.append([self.head.weight.detach().numpy(), self.head.bias.detach().numpy(), None])
        self._plan = [(w, b, a) for w, b, a in plan]
        return self._plan



def _torch_activation(layer: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    return lambda h: layer(torch.from_numpy(h)).numpy()


class DeterministicActor(_NumpyFastPath):
    """``μ(s) = tanh(head(body(s))) ∈ [−1, 1]^A`` (Lillicrap et al. 2016; Fujimoto et al. 2018)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str | type[nn.Module] = "relu"
    ) -> None:
        super().__init__()
        self.body = mlp(obs_dim, hidden, None, activation)
        self.head = nn.Linear(int(hidden[-1]), act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.body(obs)))

    def action(self, obs: np.ndarray) -> np.ndarray:
        """``μ(obs)`` for one float32 observation (or a batch of rows), as a fresh numpy array (the acting
        fast path)."""
        return np.tanh(self.head_output(obs))


class SquashedGaussianActor(_NumpyFastPath):
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
        out = self.head_output(obs)
        mean, log_std = out[..., : self.act_dim], out[..., self.act_dim :]
        if noise is None:
            return np.tanh(mean)
        return np.tanh(mean + np.exp(np.clip(log_std, self.log_std_min, self.log_std_max)) * noise)


# ----- the agent base --------------------------------------------------------------------------------------
class OffPolicyAgent(Agent):
    """Everything but the update rule of an off-policy actor-critic agent on 1-D Box spaces.

    A subclass sets ``name``, ``algo`` (for messages) and ``config_class``, and implements :meth:`_build`
    (``actor``, ``critic``, ``critic_target``, optimisers ``actor_optimizer`` / ``critic_optimizer``; called
    inside a seeded torch RNG scope), :meth:`_policy` (acting) and :meth:`_update` (one gradient step).
    Optional hooks: :meth:`_targets` (target network of each shared module), :meth:`_optimizers`,
    :meth:`_extra_state` (more checkpointed state) and :meth:`_reset_noise` (at episode starts).
    """

    algo: ClassVar[str] = "off-policy"
    _env_bound = ("_env", "_stepper", "_obs")
    config_class: ClassVar[type[OffPolicyConfig]] = OffPolicyConfig

    actor: nn.Module
    critic: EnsembleCritic
    critic_target: EnsembleCritic

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        seed: int | np.random.SeedSequence = 0,
        config: OffPolicyConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.config = cfg = self.config_class.resolve(config, overrides, self.algo)
        self.observation_space = observation_space
        self.action_space = action_space

        # Spaces: a 1-D Box of actions with finite bounds, a 1-D Box of observations.
        if not isinstance(action_space, gym.spaces.Box):
            raise AgentError(f"{self.algo} supports Box action spaces; use dqn/ppo for Discrete (got {action_space!r})")
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if len(action_space.shape) != 1 or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise AgentError(f"{self.algo} supports 1-D Box action spaces with finite bounds; got {action_space!r}")
        if not (low < high).all():
            raise AgentError(f"action space {action_space!r} needs low < high in every dimension")
        if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
            raise AgentError(f"{self.algo} supports 1-D Box observation spaces; got {observation_space!r}")
        self.obs_dim = int(observation_space.shape[0])
        self.act_dim = int(action_space.shape[0])
        self._obs_shape = (self.obs_dim,)
        self._act_low, self._act_high = action_space.low, action_space.high
        self._act_mid = ((high + low) / 2.0).astype(action_space.dtype)
        self._act_half = ((high - low) / 2.0).astype(action_space.dtype)

        # Randomness: a numpy Generator (exploration, replay sampling, env reset seeds), a torch seed used
        # only in a forked RNG scope for the initialisation, and a torch Generator for update-time noise.
        ss = seed_sequence(seed)
        np_ss, init_ss, noise_ss = ss.spawn(3)
        self._rng = np.random.default_rng(np_ss)
        self._gen = torch.Generator().manual_seed(int(noise_ss.generate_state(1, np.uint64)[0] >> 1))
        with seeded_init(init_ss):
            self._build(cfg)
        self._shared = {"actor": self.actor, "critic": self.critic}
        self._params = {k: list(m.parameters()) for k, m in self._shared.items()}
        self._target_params = {k: list(m.parameters()) for k, m in self._targets().items()}
        if cfg.personal == "head":
            self.personal_prefixes = ("actor.head.", "critic.head.")

        self.buffer = self._new_buffer(1)

        # FedProx anchor: "actor.*"/"critic.*" -> tensor of the last weights given to set_weights / set_anchor;
        # μ starts at config.prox_mu and may be changed per round by the strategy (set_proximal).
        self.prox_mu = cfg.prox_mu
        self._anchor: dict[str, torch.Tensor] = {}
        self._prox_pairs: dict[str, list[tuple[nn.Parameter, torch.Tensor]]] = {"actor": [], "critic": []}

        # Interaction state that persists across learn() calls.
        self.total_steps = 0
        self.num_updates = 0
        self._env: Any = None
        self._stepper: VectorStepper | None = None  # set while learning on a VectorEnv / ParallelEnv
        self._obs: np.ndarray | None = None
        self._episode_return = 0.0
        self._episode_length = 0

    # ----- hooks ---------------------------------------------------------------------------------------
    @abstractmethod
    def _build(self, cfg: Any) -> None:
        """Create ``actor``, ``critic``, ``critic_target`` (and any other nets) and their optimisers."""

    @abstractmethod
    def _policy(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """A normalised action in ``[−1, 1]^A`` for one stored (float32) observation ``(obs_dim,)``, or
        one row of actions per row of a batch ``(N, obs_dim)`` (vector envs)."""

    @abstractmethod
    def _update(self) -> dict[str, float]:
        """One gradient step on a replay batch; returns named losses of this step."""

    def _targets(self) -> dict[str, nn.Module]:
        """Target network of each shared module (kept in sync by ``set_weights``)."""
        return {"critic": self.critic_target}

    def _modules(self) -> dict[str, nn.Module]:
        """Every module a checkpoint holds."""
        return {
            "actor": self.actor,
            "critic": self.critic,
            **{f"{k}_target": m for k, m in self._targets().items()},
        }

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def _reset_noise(self, rows: np.ndarray | None = None) -> None:
        """Called at every episode start (temporally correlated exploration noise resets here): of the
        single env (``rows`` None) or of the sub-envs ``rows`` of a vector env."""

    def _extra_state(self) -> dict[str, torch.Tensor]:
        """Algorithm state a checkpoint keeps besides modules and optimisers, as tensors that *share
        memory* with the live state (``load`` copies into them in place), e.g. SAC's ``log α``."""
        return {}

    # ----- acting --------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, *, explore: bool = True) -> np.ndarray:
        """An action in the env's bounds: the exploration policy when ``explore``, else the deterministic
        one (``μ(s)``, or for SAC the squashed mean)."""
        return self._to_env(self._policy(self._to_stored(obs), explore))

    def _to_stored(self, obs: Any) -> np.ndarray:
        x = np.array(obs, dtype=np.float32)  # a copy: an env may reuse its observation array
        if x.shape != self._obs_shape:
            raise AgentError(f"observation shape {x.shape} does not match the expected {self._obs_shape}")
        return x

    def _stored_batch(self, obs: Any) -> np.ndarray:
        x = np.array(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1:] != self._obs_shape:
            raise AgentError(f"observation batch shape {x.shape} does not match (N, {self.obs_dim})")
        return x

    def _new_buffer(self, num_envs: int) -> ReplayBuffer:
        cfg = self.config
        return ReplayBuffer(
            cfg.buffer_size, self._obs_shape, np.float32, (self.act_dim,), np.float32, self._rng,
            gamma=cfg.gamma, num_envs=num_envs,
        )

    def _to_env(self, a: np.ndarray) -> np.ndarray:
        """``[−1, 1]^A`` → ``[low, high]``: ``low + (a + 1)/2 · (high − low)``, clipped against rounding."""
        return np.clip(self._act_mid + self._act_half * a, self._act_low, self._act_high)

    # ----- learning ------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """Interact with ``env`` for ``num_steps`` steps, storing transitions and training every
        ``train_freq`` steps once ``learning_starts`` steps (with uniform random actions) have been taken.

        ``env`` is a gymnasium Env, a gymnasium VectorEnv or a PettingZoo ParallelEnv (one actor acts for
        every agent, batched, and all their transitions feed one replay buffer: parameter sharing, as in
        FLDDPG-style swarms). For the vector forms ``num_steps`` counts steps summed over sub-envs, rounded
        up to a multiple of ``num_envs``, and ``train_freq`` / ``learning_starts`` count summed steps too.

        The running episode continues across calls on the same env object; a new env object is reset with
        a seed drawn from the agent's generator. Returns the mean of each loss over this call's updates
        (``loss/critic``, ``loss/actor``, ...; absent if none), ``train/episode_return`` and
        ``train/episode_length`` (means over episodes completed in this call; absent if none),
        ``train/episodes``, ``train/updates`` and ``train/steps`` (totals).
        """
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        if self._stepper is not None:
            return self._learn_vector(num_steps)
        cfg = self.config
        rng, buffer, act_dim = self._rng, self.buffer, self.act_dim
        learning_starts, train_freq, gradient_steps = cfg.learning_starts, cfg.train_freq, cfg.gradient_steps

        obs = self._obs
        t = self.total_steps
        returns: list[float] = []
        lengths: list[int] = []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(num_steps):
            if t < learning_starts:
                a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                a = self._policy(obs, True)
            next_raw, reward, terminated, truncated, _ = env.step(self._to_env(a))
            next_obs = self._to_stored(next_raw)
            buffer.add(obs, a, reward, next_obs, terminated, truncated)
            self._episode_return += float(reward)
            self._episode_length += 1
            if terminated or truncated:
                returns.append(self._episode_return)
                lengths.append(self._episode_length)
                self._episode_return, self._episode_length = 0.0, 0
                obs = self._to_stored(env.reset()[0])
                self._reset_noise()
            else:
                obs = next_obs
            t += 1
            self.total_steps = t

            if t >= learning_starts and t % train_freq == 0:
                for _ in range(gradient_steps):
                    for key, value in self._update().items():
                        sums[key] = sums.get(key, 0.0) + value
                        counts[key] = counts.get(key, 0) + 1
        self._obs = obs
        return self._stats(sums, counts, returns, lengths)

    def _learn_vector(self, num_steps: int) -> dict[str, float]:
        """:meth:`learn` on a VectorEnv / ParallelEnv: one batched actor pass per step for all sub-envs."""
        cfg, st = self.config, self._stepper
        assert st is not None
        rng, buffer, N = self._rng, self.buffer, st.num_envs
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for _ in range(-(-num_steps // N)):
            obs = st.obs
            if self.total_steps < cfg.learning_starts:
                a = rng.uniform(-1.0, 1.0, (N, self.act_dim)).astype(np.float32)
            else:
                a = self._policy(obs, True)
            tr = st.step(self._to_env(a))
            buffer.add_batch(obs, a, tr.rewards, tr.next_obs, tr.terminated, tr.truncated, tr.valid)
            done = tr.done
            if done.any():
                self._reset_noise(np.flatnonzero(done))
            t_prev = self.total_steps
            self.total_steps = t = t_prev + N
            if buffer.num_valid:
                for _ in range(updates_due(t_prev, t, cfg.train_freq, cfg.learning_starts) * cfg.gradient_steps):
                    for key, value in self._update().items():
                        sums[key] = sums.get(key, 0.0) + value
                        counts[key] = counts.get(key, 0) + 1
        returns, lengths = st.drain_episodes()
        return self._stats(sums, counts, returns, lengths)

    def _stats(
        self, sums: dict[str, float], counts: dict[str, int], returns: list[float], lengths: list[int]
    ) -> dict[str, float]:
        losses = {key: sums[key] / counts[key] for key in sums}
        totals = {"train/updates": self.num_updates, "train/steps": self.total_steps}
        return learn_stats(losses, returns, lengths, totals)

    def _start(self, env: Any) -> None:
        """Adopt a new env: check its spaces, close the previous (abandoned) episode, reset with a seed.

        A VectorEnv / ParallelEnv with a different number of sub-envs than the replay buffer's layout gets
        a fresh buffer (the stored transitions cannot be re-strided)."""
        venv, obs_space, act_space = adopt_env(env)
        ok = (
            isinstance(act_space, gym.spaces.Box)
            and act_space.shape == self.action_space.shape
            and np.array_equal(act_space.low, self._act_low)
            and np.array_equal(act_space.high, self._act_high)
        )
        if not ok:
            raise AgentError(f"env action space {act_space!r} does not match the agent's {self.action_space!r}")
        if not (isinstance(obs_space, gym.spaces.Box) and tuple(obs_space.shape) == self._obs_shape):
            raise AgentError(
                f"env observation space {obs_space!r} does not match the agent's {self.observation_space!r}"
            )
        num_envs = 1 if venv is None else int(venv.num_envs)
        if self.buffer.num_envs != num_envs:
            self.buffer = self._new_buffer(num_envs)
        self.buffer.mark_episode_end()
        seed = int(self._rng.integers(2**31 - 1))
        self._env = env
        self._episode_return, self._episode_length = 0.0, 0
        if venv is not None:
            self._stepper = VectorStepper(venv, self._stored_batch, seed)
            self._obs = None
            self._reset_noise(np.arange(num_envs))
        else:
            self._stepper = None
            self._obs = self._to_stored(env.reset(seed=seed)[0])
            self._reset_noise()

    def _sample(self) -> tuple[torch.Tensor, ...]:
        """A replay batch as tensors ``(obs, actions, rewards, next_obs, discounts)`` sharing the numpy
        arrays' memory; ``discounts = γ · (1 − terminated)``."""
        b = self.buffer.sample(self.config.batch_size)
        return (
            torch.from_numpy(b.obs),
            torch.from_numpy(b.actions),
            torch.from_numpy(b.rewards),
            torch.from_numpy(b.next_obs),
            torch.from_numpy(b.discounts),
        )

    def _prox(self, loss: torch.Tensor, group: str) -> torch.Tensor:
        """``loss + (μ/2)·||θ − θ_anchor||²`` over the ``group`` ("actor"/"critic") parameters that have an
        anchor (FedProx, Li et al. 2020, "Federated Optimization in Heterogeneous Networks", eq. 2)."""
        pairs = self._prox_pairs[group]
        if self.prox_mu > 0.0 and pairs:
            loss = loss + 0.5 * self.prox_mu * sum(torch.sum((p - a) ** 2) for p, a in pairs if p.requires_grad)
        return loss

    def _descend(self, loss: torch.Tensor, group: str, *optimizers: torch.optim.Optimizer) -> None:
        """One step of ``optimizers`` on ``loss`` plus the ``group``'s proximal term; skipped when nothing
        it depends on is trainable (FedRep's phases freeze whole groups with ``set_trainable``)."""
        loss = self._prox(loss, group)
        if not loss.requires_grad:
            return
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()

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

    # ----- weights ---------------------------------------------------------------------------------------
    def _state(self) -> dict[str, torch.Tensor]:
        return {f"{m}.{k}": v for m, mod in self._shared.items() for k, v in mod.state_dict().items()}

    def get_weights(self) -> Weights:
        """Actor and critic parameters as independent float32 numpy copies (``actor.*``, ``critic.*``)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self._state().items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load a subset of the actor/critic parameters by name into the online *and* target networks (a
        freshly broadcast model gets a consistent target). The given values become the FedProx anchor.
        Validates everything first: on an unknown key, wrong shape or non-finite value nothing changes.
        Optimiser states, the replay buffer (and SAC's temperature) stay: they are local to the client."""
        current = self._state()
        staged = self._stage(weights, "weight")
        targets = {m: t.state_dict() for m, t in self._targets().items()}
        with torch.no_grad():
            for key, value in staged.items():
                current[key].copy_(value)
                module, _, name = key.partition(".")
                if module in targets:
                    targets[module][name].copy_(value)
        self._anchor.update(staged)
        self._rebuild_prox_pairs()

    def _stage(self, weights: Mapping[str, np.ndarray], what: str) -> dict[str, torch.Tensor]:
        """Checked float32 tensor copies of ``weights`` (:func:`agents.base.checked_weights`)."""
        shapes = {k: tuple(v.shape) for k, v in self._state().items()}
        return {k: torch.from_numpy(v) for k, v in checked_weights(weights, shapes, what).items()}

    def set_anchor(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set the proximal anchor without touching the parameters (Ditto pulls the personal model toward
        the global one). Validates everything first: on a bad key, shape or value nothing changes."""
        self._anchor.update(self._stage(weights, "anchor weight"))
        self._rebuild_prox_pairs()

    def set_proximal(self, mu: float) -> None:
        """FedProx / Ditto: weight μ of (μ/2)·||θ − θ_anchor||² on the actor and critic losses, the anchor
        being the last ``set_weights`` / ``set_anchor``."""
        if not (isinstance(mu, int | float | np.floating) and not isinstance(mu, bool) and math.isfinite(mu)
                and mu >= 0.0):
            raise AgentError(f"prox_mu={mu!r} is out of range; allowed: finite >= 0")
        self.prox_mu = float(mu)

    def set_trainable(self, prefixes: tuple[str, ...] | None) -> None:
        """Train only the parameters whose names (``actor.*`` / ``critic.*``) start with one of ``prefixes``
        (None: all). FedRep (Collins et al. 2021) alternates head-only and body-only local updates."""
        for m, module in self._shared.items():
            for n, p in module.named_parameters():
                p.requires_grad_(prefixes is None or f"{m}.{n}".startswith(tuple(prefixes)))

    def _rebuild_prox_pairs(self) -> None:
        self._prox_pairs = {
            m: [(p, self._anchor[f"{m}.{n}"]) for n, p in mod.named_parameters() if f"{m}.{n}" in self._anchor]
            for m, mod in self._shared.items()
        }

    # ----- checkpoints -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write networks (with targets), optimiser states, step counters, RNG states, the FedProx anchor and
        algorithm state atomically (temp file in the same directory, then ``os.replace``). The replay buffer
        is not saved."""
        payload = {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": dataclasses.asdict(self.config),
            "modules": {k: m.state_dict() for k, m in self._modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "total_steps": self.total_steps,
            "num_updates": self.num_updates,
            "rng_state": json.dumps(self._rng.bit_generator.state),
            "torch_generator": self._gen.get_state(),
            "anchor": dict(self._anchor),
            "extra": {k: v.detach().clone() for k, v in self._extra_state().items()},
        }
        save_checkpoint(path, self.name, payload)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save` (``torch.load(weights_only=True)``).

        Refuses (AgentError, nothing modified) a file that is not a checkpoint of this algorithm or whose
        network shapes differ. The agent keeps its own config (optimiser step sizes are reset to it).
        """
        p = os.fspath(path)
        payload = read_checkpoint(p, self.name)
        modules, saved = self._modules(), payload.get("modules")
        if not isinstance(saved, Mapping) or set(saved) != set(modules):
            raise AgentError(
                f"checkpoint {p!r} is malformed: modules {sorted(saved or {})}, expected {sorted(modules)}"
            )
        for name, module in modules.items():
            expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            got = saved[name]
            shapes = {k: tuple(v.shape) for k, v in got.items()} if isinstance(got, Mapping) else None
            if shapes != expected:
                raise AgentError(
                    f"checkpoint {p!r} has network shapes {shapes} ({name}); this agent expects {expected}"
                )
        # Stage everything that can fail on fresh copies first, then commit.
        try:
            optimizers = {}
            for name, opt in self._optimizers().items():
                fresh = adam(opt.param_groups[0]["params"], opt.defaults["lr"])
                fresh.load_state_dict(payload["optimizers"][name])
                optimizers[name] = fresh
            rng_state = json.loads(payload["rng_state"])
            gen_state = payload["torch_generator"]
            total_steps, num_updates = int(payload["total_steps"]), int(payload["num_updates"])
            anchor = {k: v.clone() for k, v in payload.get("anchor", {}).items() if k in self._state()}
            live, extra = self._extra_state(), payload["extra"]
            if set(extra) != set(live) or any(extra[k].shape != live[k].shape for k in live):
                raise ValueError(f"algorithm state {sorted(extra)} does not match {sorted(live)}")
        except Exception as exc:
            raise AgentError(f"checkpoint {p!r} is malformed: {exc}") from None
        for name, module in modules.items():
            module.load_state_dict(saved[name])
        for name, opt in optimizers.items():
            for group in opt.param_groups:
                group["lr"] = opt.defaults["lr"]  # the agent's own config, not the checkpoint's
            setattr(self, f"{name}_optimizer", opt)
        self._rng.bit_generator.state = rng_state
        self._gen.set_state(gen_state)
        self.total_steps, self.num_updates = total_steps, num_updates
        self._anchor = anchor
        self._rebuild_prox_pairs()
        with torch.no_grad():
            for key, value in live.items():
                value.copy_(extra[key])

    # ----- pickling (worker processes): the env is not part of the agent's state -------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_gen"] = self._gen.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        gen_state = state.pop("_gen")
        self.__dict__.update(state)
        self._gen = torch.Generator()
        self._gen.set_state(gen_state)


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015) with the fused kernel: one call updates every parameter of a network."""
    return torch.optim.Adam(params, lr=lr, fused=True)
