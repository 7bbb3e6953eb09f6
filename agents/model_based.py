"""Ensemble model-based RL: learn dynamics from env steps, train the policy on imagined transitions only.

The client learner of FEMRL (J. Wang, J. Hu, J. Mills, G. Min, M. Xia, N. Georgalas, "Federated Ensemble
Model-based Reinforcement Learning in Edge Computing", IEEE TPDS 34(6):1848-1859, 2023; arXiv:2109.05549):
each client fits an *ensemble* of dynamics models to its own transitions and trains its policy "by solely
using the ensemble model without interacting with the environment" (abstract). In the federation the model
the policy trains on is the server's distillation of every client's ensemble
(:mod:`federation.strategies.femrl`); standalone (``local_distill=True``) the agent distils its own ensemble.

Pieces, top to bottom:

- :class:`DynamicsEnsemble`: ``k`` MLPs ``f_i(s, onehot(a)) → (Δs, r, logit P(terminated))`` in one batched
  matmul per layer (:class:`agents.offpolicy.EnsembleLinear`), inputs and regression targets standardised with
  statistics stored as buffers (so a model's weights carry their normalisation). Deterministic members trained
  on independently drawn minibatches with an MSE loss on standardised (Δs, r) and a BCE loss on termination,
  as the deterministic ensembles of ME-TRPO (Kurutach et al. 2018, "Model-Ensemble Trust-Region Policy
  Optimization", ICLR) that FEMRL builds on; Δs targets as in Nagabandi et al. (2018, ICRA).
- :func:`distill`: ensemble knowledge distillation (Hinton, Vinyals & Dean 2015; ensemble distillation for
  model fusion in FL, Lin et al. 2020 "FedDF", NeurIPS): a student model is regressed onto the teachers'
  mean prediction ``f̄(s, a) = Σ_j w_j · (1/k) Σ_i f_{j,i}(s, a)`` (soft termination probabilities as BCE
  targets) on given states × every action. Used by the server (teachers: the clients' ensembles) and by a
  standalone agent (teacher: its own ensemble).
- the policy: a double DQN (Mnih et al. 2015; van Hasselt et al. 2016; Huber TD loss, target network) whose
  every update samples a buffer of *model-generated* transitions: MBPO-style branched rollouts (Janner et al.
  2019, "When to Trust Your Model", NeurIPS, Alg. 2) of ``rollout_length`` steps of the distilled model from
  start states drawn from the client's own visited states. Real transitions train the dynamics only.

``learn(env, n)``: (1) if the model has been trained (its ``model.fits`` count > 0), ``policy_updates`` DQN steps
on model rollouts — no env in reach (:attr:`ModelBasedAgent.env_steps_in_policy_updates` counts env steps taken
while planning and stays 0; a test pins it); (2) exactly ``n`` env steps with ε-greedy actions, stored in the
client's dataset; (3) ``model_updates`` gradient steps on the ensemble; (4) ``kd_states`` refreshed (a uniform
sample of visited states, the distillation inputs the client uploads) and, with ``local_distill``, the own
ensemble distilled into ``model``. Discrete actions and 1-D Box observations only.

Weights (``net.state_dict()``): ``ensemble.*`` (the client's ensemble, uploaded), ``model.*`` (the distilled
model, broadcast), ``q.*`` (the Q-network), ``kd_states`` (uploaded distillation states). A checkpoint leaves
out the env dataset and the imagined-transition buffer (as replay buffers elsewhere in the zoo).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.base import AgentError, check_num_steps, learn_stats, linear_epsilon, stored_batch
from agents.buffers import ReplayBuffer
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, QNetwork, activation_class, seeded_init
from agents.offpolicy import EnsembleLinear
from agents.torch_agent import TorchAgent
from agents.vector_stepping import VectorStepper, adopt_env

_OBS_STD_FLOOR = 1e-2  # a (nearly) constant feature must not blow up when it moves at prediction time
_OUT_STD_FLOOR = 1e-4


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelBasedConfig(ConfigChecks):
    """Hyperparameters. ``model_*`` are the dynamics ensemble's, the rest the DQN trained on model rollouts."""

    ensemble_size: int = 5  # k members per client (ME-TRPO / PETS use 5-10)
    model_hidden: tuple[int, ...] = (64, 64)
    model_activation: str = "silu"  # swish, as PETS / MBPO
    model_lr: float = 1e-3
    model_weight_decay: float = 1e-5
    model_batch_size: int = 128
    model_updates: int = 300  # ensemble gradient steps per learn call
    data_size: int = 50_000  # capacity of the client's dataset of real transitions
    kd_samples: int = 256  # visited states uploaded as distillation inputs
    local_distill: bool = True  # distil the own ensemble into ``model`` after each learn (standalone)
    distill_steps: int = 300
    distill_batch_size: int = 256
    distill_lr: float = 1e-3
    rollout_batch: int = 128  # parallel imagined rollouts (MBPO's M)
    rollout_length: int = 5  # imagined steps before restarting from a real state (MBPO's k)
    policy_updates: int = 500  # DQN gradient steps on model samples per learn call
    updates_per_model_step: int = 5  # DQN steps per batched imagined step
    model_buffer_size: int = 20_000  # imagined transitions kept
    plan_epsilon: float = 0.1  # ε of the rollout policy in the model
    gamma: float = 0.99
    lr: float = 1e-3
    batch_size: int = 128
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    target_update_interval: int = 200  # DQN gradient steps between hard target copies
    exploration_initial_eps: float = 1.0  # ε of the real-env data collection, annealed over env steps
    exploration_final_eps: float = 0.05
    exploration_steps: int = 1_000
    max_grad_norm: float = 10.0
    prox_mu: float = 0.0  # FedProx μ on the Q-network (0: off)

    def __post_init__(self) -> None:
        for name, lo in (("ensemble_size", 1), ("model_batch_size", 1), ("model_updates", 0), ("data_size", 1),
                         ("kd_samples", 1), ("distill_steps", 0), ("distill_batch_size", 1), ("rollout_batch", 1),
                         ("rollout_length", 1), ("policy_updates", 0), ("updates_per_model_step", 1),
                         ("model_buffer_size", 1), ("batch_size", 1), ("target_update_interval", 1),
                         ("exploration_steps", 0)):
            self._int(name, lo)
        inf = math.inf
        for name in ("model_lr", "distill_lr", "lr", "max_grad_norm"):
            self._float(name, 0.0, inf, lo_open=True)
        self._float("model_weight_decay", 0.0, inf)
        self._float("prox_mu", 0.0, inf)
        for name in ("gamma", "plan_epsilon", "exploration_initial_eps", "exploration_final_eps"):
            self._float(name, 0.0, 1.0)
        self._choice("model_activation", tuple(ACTIVATIONS))
        self._choice("activation", tuple(ACTIVATIONS))
        self._sizes("model_hidden", non_empty=True)
        self._sizes("hidden_sizes")
        self._bool("local_distill")


# ----- the dynamics model ----------------------------------------------------------------------------------
class DynamicsEnsemble(nn.Module):
    """``k`` deterministic MLPs ``(s, onehot a) → (Δs, r, termination logit)``, standardised in and out.

    Buffers: ``obs_mean``/``obs_std`` (input states), ``out_mean``/``out_std`` (targets Δs and r) and
    ``fits`` (how often it was fitted or distilled: the policy trains on a model only once it is > 0)."""

    def __init__(self, k: int, obs_dim: int, num_actions: int, hidden: Sequence[int],
                 activation: str = "silu") -> None:
        super().__init__()
        self.k, self.obs_dim, self.num_actions = int(k), int(obs_dim), int(num_actions)
        sizes = [obs_dim + num_actions, *hidden, obs_dim + 2]
        self.layers = nn.ModuleList(EnsembleLinear(k, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.act = activation_class(activation)()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("out_mean", torch.zeros(obs_dim + 1))
        self.register_buffer("out_std", torch.ones(obs_dim + 1))
        self.register_buffer("fits", torch.zeros(()))

    @classmethod
    def from_weights(cls, weights: Mapping[str, np.ndarray], prefix: str, activation: str = "silu"
                     ) -> DynamicsEnsemble:
        """Rebuild a model from its named weights (``prefix`` + state_dict names); the architecture is read off
        the shapes, so a server can hold any client's ensemble without knowing its config."""
        n = 0
        while f"{prefix}layers.{n}.weight" in weights:
            n += 1
        if n < 2:
            raise AgentError(f"no dynamics model under {prefix!r} in the weights (need {prefix}layers.<i>.weight)")
        shapes = [np.shape(weights[f"{prefix}layers.{i}.weight"]) for i in range(n)]
        obs_dim = int(np.shape(weights[f"{prefix}obs_mean"])[0])
        k = int(shapes[0][0])
        model = cls(k, obs_dim, int(shapes[0][1]) - obs_dim, [int(s[2]) for s in shapes[:-1]], activation)
        state = {key[len(prefix):]: torch.as_tensor(np.asarray(v, dtype=np.float32))
                 for key, v in weights.items() if key.startswith(prefix)}
        model.load_state_dict(state)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised inputs ``(B, in)`` or ``(k, B, in)`` → standardised outputs ``(k, B, obs_dim + 2)``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[(s − μ)/σ, onehot(a)]`` for raw states ``(..., obs_dim)`` and 0-based actions ``(...)``."""
        return torch.cat([(obs - self.obs_mean) / self.obs_std,
                          F.one_hot(actions.long(), self.num_actions).to(obs.dtype)], dim=-1)

    def predict(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per member, in raw units: next state ``s + Δs`` ``(k, B, obs_dim)``, reward ``(k, B)`` and termination
        probability ``(k, B)``."""
        out = self(self.inputs(obs, actions))
        raw = out[..., :-1] * self.out_std + self.out_mean
        return obs + raw[..., :-1], raw[..., -1], torch.sigmoid(out[..., -1])

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, delta: torch.Tensor, rewards: torch.Tensor,
             done: torch.Tensor) -> torch.Tensor:
        """Mean over members of MSE on standardised (Δs, r) plus BCE on termination (``done`` may be soft);
        inputs with a leading member axis ``(k, B, ...)`` give each member its own minibatch."""
        out = self(self.inputs(obs, actions))
        target = (torch.cat([delta, rewards.unsqueeze(-1)], dim=-1) - self.out_mean) / self.out_std
        mse = torch.mean((out[..., :-1] - target) ** 2)
        bce = F.binary_cross_entropy_with_logits(out[..., -1], done.expand(out.shape[:-1]) if done.dim() == 1
                                                 else done)
        return mse + bce

    @torch.no_grad()
    def set_statistics(self, obs: torch.Tensor, delta: torch.Tensor, rewards: torch.Tensor,
                       writable: Callable[[str], bool] = lambda name: True,
                       obs_moments: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Standardisation from data: input state mean/std (or the given ``obs_moments``), target (Δs, r)
        mean/std, floored; only the buffers ``writable`` admits are written (frozen ones stay, see
        ``TorchAgent.set_trainable``)."""
        target = torch.cat([delta, rewards.unsqueeze(-1)], dim=-1)
        mean, std = obs_moments if obs_moments is not None else (obs.mean(0), obs.std(0, unbiased=False))
        values = {"obs_mean": mean, "obs_std": std.clamp_min(_OBS_STD_FLOOR),
                  "out_mean": target.mean(0), "out_std": target.std(0, unbiased=False).clamp_min(_OUT_STD_FLOOR)}
        for name, value in values.items():
            if writable(name):
                getattr(self, name).copy_(value)

    @torch.no_grad()
    def count_fit(self, writable: Callable[[str], bool] = lambda name: True) -> None:
        if writable("fits"):
            self.fits.add_(1.0)


@torch.no_grad()
def mixture_prediction(teachers: Sequence[DynamicsEnsemble], weights: Sequence[float], obs: torch.Tensor,
                       actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ensemble-of-ensembles mean ``Σ_j w_j (1/k_j) Σ_i f_{j,i}(s, a)`` (weights normalised): next state,
    reward and termination probability."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64) / float(np.sum(weights)), dtype=torch.float32)
    parts = [t.predict(obs, actions) for t in teachers]
    return tuple(sum(wj * p[i].mean(0) for wj, p in zip(w, parts, strict=True)) for i in range(3))  # type: ignore


def distill(student: DynamicsEnsemble, teachers: Sequence[DynamicsEnsemble], teacher_weights: Sequence[float],
            states: np.ndarray, *, steps: int, batch_size: int, lr: float, rng: np.random.Generator,
            prox: Any = None, writable: Callable[[str], bool] = lambda name: True) -> float:
    """Ensemble knowledge distillation: regress ``student`` (warm-started, one member) onto the teachers'
    mixture mean on ``states`` × every action (MSE on standardised Δs and r, BCE on the soft termination
    probability). The student's standardisation is set from the distillation set. Returns the last loss."""
    if steps <= 0 or len(states) == 0:
        return float("nan")
    obs = torch.as_tensor(np.asarray(states, dtype=np.float32))
    A = student.num_actions
    obs = obs.repeat_interleave(A, dim=0)
    actions = torch.arange(A).repeat(len(states))
    next_obs, rew, done = mixture_prediction(teachers, teacher_weights, obs, actions)
    delta = next_obs - obs
    # the student's input standardisation is the teachers' (fitted on all of their clients' data, not only on
    # the distillation states): the mixture's mean and variance of their input moments
    w = torch.as_tensor(np.asarray(teacher_weights, dtype=np.float64) / float(np.sum(teacher_weights)),
                        dtype=torch.float32)
    mean = sum(wj * t.obs_mean for wj, t in zip(w, teachers, strict=True))
    second = sum(wj * (t.obs_std ** 2 + t.obs_mean ** 2) for wj, t in zip(w, teachers, strict=True))
    student.set_statistics(obs, delta, rew, writable, (mean, (second - mean ** 2).clamp_min(0.0).sqrt()))
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    n = len(obs)
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, n, size=min(batch_size, n)))
        loss = student.loss(obs[idx], actions[idx], delta[idx], rew[idx], done[idx])
        extra = prox() if prox is not None else None
        total = loss if extra is None else loss + extra
        if not total.requires_grad:  # every student parameter frozen (set_trainable)
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    student.count_fit(writable)
    return float(loss.detach())


class _Net(nn.Module):
    """The weights: ``ensemble.*``, ``model.*``, ``q.*`` and the ``kd_states`` buffer."""

    def __init__(self, ensemble: DynamicsEnsemble, model: DynamicsEnsemble, q: QNetwork, kd: torch.Tensor) -> None:
        super().__init__()
        self.ensemble, self.model, self.q = ensemble, model, q
        self.register_buffer("kd_states", kd)


class _Target(nn.Module):
    """The target Q-network under the online one's names (``q.*``), so ``set_weights`` updates both."""

    def __init__(self, q: QNetwork) -> None:
        super().__init__()
        self.q = q


# ----- the agent -----------------------------------------------------------------------------------------
class ModelBasedAgent(TorchAgent):
    """Model-based DQN trained on imagined rollouts of a (distilled) dynamics-ensemble model only (FEMRL's client
    learner; see the module docstring)."""

    name = "femrl"
    algorithm = "FEMRL"
    config_class = ModelBasedConfig
    config: ModelBasedConfig
    _counters = ("total_steps", "num_updates", "model_fits", "plan_steps")

    def _build(self, cfg: ModelBasedConfig, seed: int | np.random.SeedSequence) -> None:
        obs_space, act_space = self.observation_space, self.action_space
        if not isinstance(act_space, gym.spaces.Discrete):
            raise AgentError(f"femrl supports Discrete action spaces only; got {act_space!r}")
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise AgentError(f"femrl models 1-D Box observation spaces only; got {obs_space!r}")
        self.num_actions, self._action_start = int(act_space.n), int(act_space.start)
        self.obs_dim = int(obs_space.shape[0])
        self._low = torch.as_tensor(np.maximum(obs_space.low, -1e6), dtype=torch.float32)
        self._high = torch.as_tensor(np.minimum(obs_space.high, 1e6), dtype=torch.float32)
        with seeded_init(self._setup(cfg, seed)):
            ens = DynamicsEnsemble(cfg.ensemble_size, self.obs_dim, self.num_actions, cfg.model_hidden,
                                   cfg.model_activation)
            model = DynamicsEnsemble(1, self.obs_dim, self.num_actions, cfg.model_hidden, cfg.model_activation)
            q = QNetwork(self.obs_dim, self.num_actions, cfg.hidden_sizes, cfg.activation)
        self.net = _Net(ens, model, q, torch.zeros(cfg.kd_samples, self.obs_dim))
        self.q, self.q_target = q, copy.deepcopy(q).requires_grad_(False)
        self.target_net = _Target(self.q_target)
        self.ens_opt = torch.optim.AdamW(ens.parameters(), lr=cfg.model_lr, weight_decay=cfg.model_weight_decay)
        self.q_opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
        self.model_fits = self.plan_steps = 0
        #: env steps taken while the policy was being updated: 0 by construction (the planner holds no env)
        self.env_steps_in_policy_updates = 0
        self._planning = False
        self.data = ReplayBuffer(cfg.data_size, (self.obs_dim,), np.float32, (), np.int64, self._rng)
        self.imagined = ReplayBuffer(cfg.model_buffer_size, (self.obs_dim,), np.float32, (), np.int64, self._rng,
                                     gamma=cfg.gamma, num_envs=cfg.rollout_batch)
        self._rollout_obs: torch.Tensor | None = None
        self._rollout_age = np.zeros(cfg.rollout_batch, dtype=np.int64)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ensemble": self.ens_opt, "q": self.q_opt}

    def set_trainable(self, prefixes: tuple[str, ...] | None) -> None:
        """As :meth:`TorchAgent.set_trainable`; the data-derived buffers (standardisation, fit counts,
        ``kd_states``) are written only when their own names are admitted too."""
        super().set_trainable(prefixes)
        self._trainable_prefixes = None if prefixes is None else tuple(prefixes)

    def _writable(self, key: str) -> bool:
        prefixes = getattr(self, "_trainable_prefixes", None)
        return prefixes is None or key.startswith(prefixes)

    def _stored_batch(self, obs: Any) -> np.ndarray:
        return stored_batch(obs, False, self.obs_dim, 0)

    # ----- acting --------------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        cfg = self.config
        return linear_epsilon(self.total_steps, cfg.exploration_initial_eps, cfg.exploration_final_eps,
                              cfg.exploration_steps)

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        if explore and self._rng.random() < self.epsilon:
            return int(self._rng.integers(self.num_actions)) + self._action_start
        return int(self.q.greedy(self._stored_batch(np.asarray(obs)[None]))[0]) + self._action_start

    def _behaviour(self, obs: np.ndarray, eps: float) -> np.ndarray:
        a = self.q.greedy(obs)
        explore = self._rng.random(len(obs)) < eps
        return np.where(explore, self._rng.integers(self.num_actions, size=len(obs)), a)

    # ----- learn ---------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """Plan on the model (no env), then exactly ``num_steps`` env steps, then fit the ensemble (and with
        ``local_distill`` distil it into the model). See the module docstring."""
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        stats: dict[str, float] = {}
        if float(self.net.model.fits) > 0 and self.config.policy_updates > 0 and self.data.num_valid:
            stats.update(self.improve_policy())
        st = self._stepper
        N = st.num_envs
        for _ in range(-(-num_steps // N)):
            obs = st.obs
            a = self._behaviour(obs, self.epsilon)
            tr = st.step(a + self._action_start if self._action_start else a)
            self.data.add_batch(obs, a, tr.rewards, tr.next_obs, tr.terminated, tr.truncated, tr.valid)
            self.total_steps += N
        stats.update(self.fit_model())
        self._refresh_kd_states()
        if self.config.local_distill:
            stats["loss/distill"] = distill(
                self.net.model, [self.net.ensemble], [1.0], self.net.kd_states.numpy(),
                steps=self.config.distill_steps, batch_size=self.config.distill_batch_size,
                lr=self.config.distill_lr, rng=self._rng, prox=lambda: self.proximal_term("model."),
                writable=lambda name: self._writable(f"model.{name}"))
        returns, lengths = st.drain_episodes()
        losses = {k: v for k, v in stats.items() if k.startswith("loss/")}
        return learn_stats(losses, returns, lengths, {
            "train/steps": self.total_steps, "train/updates": self.num_updates, "train/model_fits": self.model_fits,
            "train/imagined_steps": self.plan_steps, "train/epsilon": self.epsilon,
            "train/env_steps_in_policy_updates": self.env_steps_in_policy_updates})

    def _start(self, env: Any) -> None:
        venv = adopt_env(env, self)
        self.data.mark_episode_end()
        self._env = env
        inner = env if venv is None else venv
        self._stepper = VectorStepper(_PlanGuard(inner, self), self._stored_batch,
                                      int(self._rng.integers(2**31 - 1))) if venv is None else \
            VectorStepper(inner, self._stored_batch, int(self._rng.integers(2**31 - 1)))
        if self.data.num_envs != self._stepper.num_envs:
            self.data = ReplayBuffer(self.config.data_size, (self.obs_dim,), np.float32, (), np.int64, self._rng,
                                     num_envs=self._stepper.num_envs)

    def _real(self) -> tuple[torch.Tensor, ...]:
        """The valid real transitions: obs, actions, Δs, rewards, terminated (as float)."""
        d = self.data
        sel = np.flatnonzero(d.valid[: d.size])
        obs = torch.from_numpy(d.obs[sel])
        return (obs, torch.from_numpy(d.actions[sel]), torch.from_numpy(d.next_obs[sel]) - obs,
                torch.from_numpy(d.rewards[sel]), torch.from_numpy(d.terminated[sel].astype(np.float32)))

    def fit_model(self) -> dict[str, float]:
        """``model_updates`` AdamW steps on the ensemble, each member on its own uniformly drawn minibatch."""
        cfg, ens = self.config, self.net.ensemble
        if cfg.model_updates == 0 or self.data.num_valid == 0:
            return {}
        obs, actions, delta, rew, done = self._real()
        ens.set_statistics(obs, delta, rew, lambda name: self._writable(f"ensemble.{name}"))
        n, k = len(obs), ens.k
        loss = torch.zeros(())
        for _ in range(cfg.model_updates):
            idx = torch.from_numpy(self._rng.integers(0, n, size=(k, min(cfg.model_batch_size, n))))
            loss = ens.loss(obs[idx], actions[idx], delta[idx], rew[idx], done[idx])
            self._descend(loss, self.ens_opt, prefix="ensemble.")
        ens.count_fit(lambda name: self._writable(f"ensemble.{name}"))
        self.model_fits += 1
        return {"loss/model": float(loss.detach())}

    def _refresh_kd_states(self) -> None:
        """A uniform sample (with replacement when short) of visited states: the distillation inputs."""
        d = self.data
        sel = np.flatnonzero(d.valid[: d.size])
        if len(sel) == 0 or not self._writable("kd_states"):
            return
        pick = self._rng.choice(sel, size=self.config.kd_samples, replace=len(sel) < self.config.kd_samples)
        with torch.no_grad():
            self.net.kd_states.copy_(torch.from_numpy(d.obs[pick]))

    # ----- the policy, trained on the model only ---------------------------------------------------------
    def improve_policy(self) -> dict[str, float]:
        """``policy_updates`` double-DQN steps on transitions imagined by ``model`` (branched rollouts from the
        client's visited states). Holds no env: any env step while it runs is counted (and must stay 0)."""
        cfg = self.config
        self._planning = True
        try:
            losses = []
            for i in range(cfg.policy_updates):
                if i % cfg.updates_per_model_step == 0:
                    self._imagine_step()
                losses.append(self._q_update())
        finally:
            self._planning = False
        return {"loss/td": float(np.mean(losses))} if losses else {}

    @torch.no_grad()
    def _imagine_step(self) -> None:
        """One batched step of the distilled model from the current imagined states; rows that terminated or
        reached ``rollout_length`` restart from real visited states."""
        cfg, model = self.config, self.net.model
        B = cfg.rollout_batch
        restart = self._rollout_age >= cfg.rollout_length
        if self._rollout_obs is None:
            restart[:] = True
            self._rollout_obs = torch.zeros(B, self.obs_dim)
        if restart.any():
            d = self.data
            sel = np.flatnonzero(d.valid[: d.size])
            self._rollout_obs[torch.from_numpy(restart)] = torch.from_numpy(
                d.obs[self._rng.choice(sel, size=int(restart.sum()))])
            self._rollout_age[restart] = 0
        obs = self._rollout_obs
        a = self._behaviour(obs.numpy(), cfg.plan_epsilon)
        nxt, rew, p_done = model.predict(obs, torch.from_numpy(a))
        nxt = torch.maximum(torch.minimum(nxt[0], self._high), self._low)
        term = (p_done[0] > 0.5).numpy()
        self.imagined.add_batch(obs.numpy(), a, rew[0].numpy(), nxt.numpy(), term, np.zeros(B, bool),
                                np.ones(B, bool))
        self._rollout_obs = nxt.clone()
        self._rollout_age += 1
        self._rollout_age[term] = cfg.rollout_length  # restart next step
        self.plan_steps += B

    def _q_update(self) -> float:
        """Double DQN with a Huber loss on a batch of imagined transitions (van Hasselt et al. 2016)."""
        cfg = self.config
        b = self.imagined.sample(cfg.batch_size)
        obs, next_obs = torch.from_numpy(b.obs), torch.from_numpy(b.next_obs)
        actions, rewards, disc = (torch.from_numpy(x) for x in (b.actions, b.rewards, b.discounts))
        with torch.no_grad():
            a_star = self.q(next_obs).argmax(1, keepdim=True)
            target = rewards + disc * self.q_target(next_obs).gather(1, a_star).squeeze(1)
        q = self.q(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        self._descend(loss, self.q_opt, prefix="q.", clip=cfg.max_grad_norm)
        self.num_updates += 1
        if self.num_updates % cfg.target_update_interval == 0:
            with torch.no_grad():
                for t, s in zip(self.q_target.parameters(), self.q.parameters(), strict=True):
                    t.copy_(s)
        return float(loss.detach())


@torch.no_grad()
def prediction_error(model: DynamicsEnsemble, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> float:
    """Mean squared error of the members' mean next-state prediction against real next states."""
    o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
    pred, _, _ = model.predict(o, torch.as_tensor(np.asarray(actions, dtype=np.int64)))
    return float(torch.mean((pred.mean(0) - torch.as_tensor(np.asarray(next_obs, dtype=np.float32))) ** 2))


class _PlanGuard(gym.Wrapper):
    """The single env as the agent sees it: a step taken while the policy is being updated is counted in
    ``agent.env_steps_in_policy_updates`` (the planner holds no env, so the count stays 0)."""

    def __init__(self, env: gym.Env, agent: ModelBasedAgent) -> None:
        super().__init__(env)
        self._agent = agent

    def step(self, action: Any) -> Any:
        if self._agent._planning:
            self._agent.env_steps_in_policy_updates += 1
        return self.env.step(action)
