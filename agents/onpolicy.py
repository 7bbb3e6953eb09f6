"""Shared machinery of the on-policy agents (PPO, A2C, REINFORCE): config validation, spaces, the acting
loop that fills a :class:`agents.rollout.RolloutBuffer`, weights, FedProx and checkpoints.

Each algorithm module (``agents/ppo.py``, ``agents/a2c.py``, ``agents/reinforce.py``) subclasses
:class:`OnPolicyAgent` with its config dataclass and writes its own ``_process_rollout`` (the update), so the
algorithm reads top to bottom in its file while the plumbing is written once.

Environments: ``learn(env, num_steps)`` takes a ``gymnasium.Env`` (one sub-env), a
``gymnasium.vector.VectorEnv`` (any autoreset mode) or a PettingZoo ``ParallelEnv`` (wrapped in
:class:`agents.parallel_adapter.ParallelToVector`, one sub-env per agent, shared parameters). ``num_steps``
counts environment steps summed over sub-envs (rounded up to a multiple of ``num_envs``).

Rollouts span ``learn`` calls: the agent collects ``n_steps`` steps per sub-env into the buffer and
updates when it is full; a partial rollout stays in the buffer until the next call, so a federated round
of fewer than ``n_steps × num_envs`` steps may end without an update (``train/updates`` says how many
happened). The running episodes continue across calls on the same env object. A new env object is reset
with a seed drawn from the agent's generator, and the pending rollout is closed as a truncation (it
bootstraps from the abandoned episode's last observation).

The per-step loop is lean (Engstrom et al. 2020 list the code-level details; Stable-Baselines3 is the
speed reference): the actor runs on numpy views of its parameters, sampling noise for a whole rollout is
drawn in one call, log-probabilities and values are computed in one batched forward pass when the rollout
is processed, and observations go to the buffer without intermediate objects.

Observation normalisation and reward scaling (:mod:`agents.normalization`) are updated once per rollout
(from the raw observations and rewards of that rollout), so the policy is a fixed function while acting.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from agents.base import (
    Agent,
    AgentError,
    Weights,
    check_num_steps,
    checked_weights,
    flat_observation_layout,
    learn_stats,
    seed_sequence,
)
from agents.checkpoint import read_checkpoint, save_checkpoint
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, seeded_init
from agents.normalization import RewardScaler, RunningMeanStd
from agents.policies import ActorCritic, personal_prefixes
from agents.rollout import RolloutBuffer
from agents.vector_stepping import VectorStepper, adopt_env


# ----- hyperparameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnPolicyConfig(ConfigChecks):
    """Hyperparameters common to the on-policy agents; each algorithm subclasses it (new defaults, new
    fields) and extends :meth:`_validate`. Steps are environment steps and persist across ``learn`` calls."""

    lr: float = 3e-4  # optimiser step size
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE λ (Schulman et al. 2016); 1.0 = Monte Carlo / n-step advantages
    n_steps: int = 2048  # rollout length per sub-env between updates
    ent_coef: float = 0.0  # entropy bonus coefficient
    vf_coef: float = 0.5  # value-loss coefficient
    max_grad_norm: float | None = 0.5  # global gradient-norm clipping (None: off)
    normalize_advantage: bool = True  # standardise advantages per (mini)batch
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_body: bool = False  # one trunk for actor and critic (names body.*) instead of two
    ortho_init: bool = True  # orthogonal init with layer scaling (Engstrom et al. 2020)
    log_std_init: float = 0.0  # initial log σ of Gaussian policies
    normalize_obs: bool = False  # running mean/std observation normalisation (1-D Box observations)
    obs_clip: float = 10.0  # ... normalised observations clipped to ±obs_clip
    scale_reward: bool = False  # divide rewards by the running std of the discounted return
    reward_clip: float = 10.0  # ... scaled rewards clipped to ±reward_clip
    anneal_lr_steps: int = 0  # > 0: lr decays linearly to 0 over this many env steps (0: constant)
    personal: str = "none"  # "none" or "head" (FedPer: actor/critic heads and log σ stay local)
    embedding_dim: int = 0  # > 0: a learnable per-client environment embedding (Jin et al. 2022), personal
    prox_mu: float = 0.0  # FedProx μ (0: off; set_proximal changes it per round)

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        inf = math.inf
        self._int("n_steps", 1)
        self._int("anneal_lr_steps", 0)
        self._int("embedding_dim", 0)
        self._float("lr", 0.0, inf, lo_open=True)
        self._float("gamma", 0.0, 1.0)
        self._float("gae_lambda", 0.0, 1.0)
        self._float("ent_coef", -inf, inf)
        self._float("vf_coef", 0.0, inf)
        self._float("log_std_init", -20.0, 2.0)
        self._float("obs_clip", 0.0, inf, lo_open=True)
        self._float("reward_clip", 0.0, inf, lo_open=True)
        self._float("prox_mu", 0.0, inf)
        self._optional_float("max_grad_norm", 0.0, inf, lo_open=True)
        self._bool("normalize_advantage", "shared_body", "ortho_init", "normalize_obs", "scale_reward")
        self._choice("activation", tuple(ACTIVATIONS))
        self._choice("personal", ("none", "head"))
        self._sizes("hidden_sizes")


# ----- the shared agent ----------------------------------------------------------------------------------
class OnPolicyAgent(Agent):
    """Actor-critic agent on a Discrete or 1-D Box action space and a 1-D Box or Discrete (one-hot)
    observation space. Subclasses set ``name``, ``config_class``, ``algorithm`` (for messages) and
    implement :meth:`_make_optimizer` and :meth:`_process_rollout`."""

    config_class: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig
    algorithm: ClassVar[str] = "on-policy"
    _env_bound = ("_env", "_venv", "_stepper")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        seed: int | np.random.SeedSequence = 0,
        config: OnPolicyConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.config = cfg = self.config_class.resolve(config, overrides, self.algorithm)
        self.observation_space = observation_space
        self.action_space = action_space

        # Actions: Discrete (categorical policy) or a 1-D Box (diagonal Gaussian; samples are clipped to the
        # bounds when stepping the env, the buffer keeps the unclipped sample for the log-probability).
        if isinstance(action_space, gym.spaces.Discrete):
            self.continuous = False
            self.num_outputs = int(action_space.n)
            self._action_start = int(action_space.start)
            self._act_shape: tuple[int, ...] = ()
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            self.continuous = True
            self.num_outputs = int(action_space.shape[0])
            self._action_start = 0
            self._act_shape = (self.num_outputs,)
            low = np.asarray(action_space.low, dtype=np.float32)
            high = np.asarray(action_space.high, dtype=np.float32)
            self._clip_actions = bool(np.isfinite(low).any() or np.isfinite(high).any())
            self._act_low, self._act_high = low, high
        else:
            raise AgentError(f"{self.algorithm} supports Discrete or 1-D Box action spaces; got {action_space!r}")
        # Observations: a 1-D Box (float vector) or Discrete (stored as a 0-based index, one-hot encoded).
        self._obs_discrete, self.obs_dim, self._obs_start, self._obs_shape = flat_observation_layout(
            observation_space, self.algorithm
        )
        if self._obs_discrete:
            self._eye_np = np.eye(self.obs_dim, dtype=np.float32)
            self._eye = torch.from_numpy(self._eye_np)
            if cfg.normalize_obs:
                raise AgentError("normalize_obs=True needs a Box observation space; got a Discrete one")

        # Randomness: one SeedSequence → a numpy Generator (sampling noise, minibatch order, env reset seeds)
        # and a torch seed used only, in a forked RNG scope, for the network initialisation.
        ss = seed_sequence(seed)
        np_ss, torch_ss = ss.spawn(2)
        self._rng = np.random.default_rng(np_ss)
        with seeded_init(torch_ss):
            self.policy = ActorCritic(
                self.obs_dim,
                self.num_outputs,
                continuous=self.continuous,
                hidden_sizes=cfg.hidden_sizes,
                activation=cfg.activation,
                shared_body=cfg.shared_body,
                log_std_init=cfg.log_std_init,
                ortho_init=cfg.ortho_init,
                embedding_dim=cfg.embedding_dim,
            )
        self._params = list(self.policy.parameters())
        self.optimizer = self._make_optimizer()
        prefixes = personal_prefixes(self.continuous, cfg.personal, cfg.embedding_dim)
        if prefixes:
            self.personal_prefixes = prefixes

        self.obs_rms = RunningMeanStd(self._obs_shape) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(1, cfg.gamma, cfg.reward_clip) if cfg.scale_reward else None
        self._norm_mean = self._norm_scale = None  # cached float32 affine map of obs_rms, per rollout

        # FedProx / Ditto: the anchor (name -> tensor) is the last weights given to set_weights or set_anchor;
        # μ starts at config.prox_mu and may be changed per round by the strategy (set_proximal).
        self.prox_mu = cfg.prox_mu
        self._anchor: dict[str, torch.Tensor] = {}
        self._prox_pairs: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

        # Interaction state that persists across learn() calls.
        self.total_steps = 0
        self.num_updates = 0
        self.buffer: RolloutBuffer | None = None
        self._noise: np.ndarray | None = None
        self._env: Any = None  # the object given to learn() (a ParallelEnv is wrapped into _venv)
        self._venv: gym.Env | VectorEnv | None = None
        self._vector = False
        self._num_envs = 1
        self._stepper: VectorStepper | None = None  # drives _venv when it is a VectorEnv
        self._obs: Any = None  # current raw observation(s): float32 (N, d) / (d,) or int index(es)
        self._active = np.ones(1, dtype=bool)
        self._ep_return = np.zeros(1)
        self._ep_length = np.zeros(1, dtype=np.int64)
        self._returns: list[float] = []
        self._lengths: list[int] = []

    # ----- hooks for the algorithms --------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.config.lr, eps=1e-5, fused=True)

    def _process_rollout(self) -> dict[str, float]:
        """Learn from the full buffer and leave it ready for the next rollout; returns loss statistics."""
        raise NotImplementedError

    def _before_params_change(self) -> None:
        """Called before parameters are overwritten from outside (set_weights, load); PPO records the
        behaviour policy's log-probs of the pending partial rollout here."""

    # ----- acting --------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray | int, *, explore: bool = True) -> np.ndarray | int:
        """Sample from π(·|obs) when ``explore``, else its mode (argmax logits / Gaussian mean). Discrete
        actions are ints; Box actions float32 arrays clipped to the action bounds."""
        x = self._encode_one(self._to_stored(obs))
        out = self.policy.np_actor(x)
        if not self.continuous:
            if explore:
                out = out + self._rng.gumbel(size=out.shape)
            return int(out.argmax()) + self._action_start
        a = out
        if explore:
            a = out + np.exp(self.policy.np_log_std()) * self._rng.standard_normal(out.shape, np.float32)
        return np.clip(a, self._act_low, self._act_high) if self._clip_actions else np.array(a, np.float32)

    def _to_stored(self, obs: Any) -> np.ndarray | int:
        if self._obs_discrete:
            i = int(obs) - self._obs_start
            if not 0 <= i < self.obs_dim:
                raise AgentError(f"observation {obs!r} outside Discrete({self.obs_dim}, start={self._obs_start})")
            return i
        x = np.array(obs, dtype=np.float32)
        if x.shape != self._obs_shape:
            raise AgentError(f"observation shape {x.shape} does not match the expected {self._obs_shape}")
        return x

    def _encode_one(self, stored: np.ndarray | int) -> np.ndarray:
        """Stored (raw) observation → policy input with the current normalisation, float32 numpy."""
        if self._obs_discrete:
            return self._eye_np[stored]
        if self.obs_rms is None:
            return stored
        mean, scale = self.obs_rms.affine()
        c = self.config.obs_clip
        return np.clip((stored - mean) * scale, -c, c)

    def _refresh_norm(self) -> None:
        if self.obs_rms is not None:
            self._norm_mean, self._norm_scale = self.obs_rms.affine()

    def _policy_input(self, stored: np.ndarray) -> torch.Tensor:
        """Buffer rows (normalised floats or indices) → network input tensor."""
        if self._obs_discrete:
            return self._eye[torch.from_numpy(np.ascontiguousarray(stored))]
        return torch.from_numpy(np.ascontiguousarray(stored))

    # ----- learning ------------------------------------------------------------------------------------
    def learn(self, env: Any, num_steps: int) -> dict[str, float]:
        """Interact with ``env`` for ``num_steps`` env steps (summed over sub-envs), updating whenever
        ``n_steps`` steps per sub-env have been collected. Returns ``train/steps`` (total so far),
        ``train/updates`` (in this call), ``train/episodes``, ``train/episode_return`` and
        ``train/episode_length`` (means over episodes completed in this call; absent if none) and the
        algorithm's losses averaged over this call's updates (absent if none)."""
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        N = self._num_envs
        remaining = -(-int(num_steps) // N)  # vector steps
        self._returns, self._lengths = [], []
        sums: dict[str, float] = {}
        updates = 0
        while remaining > 0:
            buf = self.buffer
            k = min(remaining, buf.capacity - buf.pos)
            if self._vector:
                self._collect_vector(k)
            else:
                self._collect_single(k)
            remaining -= k
            if buf.full:
                for key, v in self._run_update().items():
                    sums[key] = sums.get(key, 0.0) + v
                updates += 1
        losses = {k: v / updates for k, v in sums.items()}
        totals = {"train/updates": updates, "train/steps": self.total_steps}
        return learn_stats(losses, self._returns, self._lengths, totals)

    def _run_update(self) -> dict[str, float]:
        if self.config.anneal_lr_steps > 0:  # linear annealing to 0 (Schulman et al. 2017, Table 3/5)
            frac = max(0.0, 1.0 - self.total_steps / self.config.anneal_lr_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.lr * frac
        stats = self._process_rollout()
        self.num_updates += 1
        self._new_rollout_noise()
        return stats

    def _new_rollout_noise(self) -> None:
        """Draw the sampling noise of the next rollout in one call: Gumbel(0, 1) per logit or N(0, 1) per
        action dimension, for every slot of the buffer."""
        buf = self.buffer
        shape = (buf.capacity, buf.num_envs, self.num_outputs)
        if self.continuous:
            self._noise = self._rng.standard_normal(shape, dtype=np.float32)
        else:
            self._noise = self._rng.gumbel(size=shape).astype(np.float32)

    # ----- env adoption --------------------------------------------------------------------------------
    def _start(self, env: Any) -> None:
        """Adopt a new env: wrap a ParallelEnv, check spaces, close the pending rollout as a truncation,
        (re)allocate the buffer if the number of sub-envs changed, reset with a seed."""
        venv, obs_space, act_space = adopt_env(env)
        n = 1 if venv is None else int(venv.num_envs)
        self._check_spaces(obs_space, act_space)
        if self.buffer is not None and self.buffer.pos > 0:
            self._close_pending_rollout()
            if self.buffer.num_envs != n:  # the pending data cannot continue in another layout: use it now
                self._run_update_on_partial()
        if self.buffer is None or self.buffer.num_envs != n:
            self.buffer = RolloutBuffer(
                self.config.n_steps,
                n,
                self._obs_shape,
                np.int64 if self._obs_discrete else np.float32,
                self._act_shape,
                np.float32 if self.continuous else np.int64,
                keep_raw_obs=self.obs_rms is not None,
            )
            if self._noise is None or self._noise.shape != (self.config.n_steps, n, self.num_outputs):
                self._new_rollout_noise()  # else: the noise restored by load() for this rollout
        if self.reward_scaler is not None:
            self.reward_scaler.resize(n)
        seed = int(self._rng.integers(2**31 - 1))
        self._env, self._vector, self._num_envs = env, venv is not None, n
        if venv is not None:
            self._stepper = VectorStepper(venv, self._stored_batch, seed)
            self._venv = venv
            self._obs, self._active = self._stepper.obs, self._stepper.active
        else:
            self._stepper, self._venv = None, env
            self._obs = self._to_stored(env.reset(seed=seed)[0])
            self._active = np.ones(1, dtype=bool)
        self._ep_return = np.zeros(n)
        self._ep_length = np.zeros(n, dtype=np.int64)

    def _check_spaces(self, obs_space: gym.Space, act_space: gym.Space) -> None:
        if self.continuous:
            ok = isinstance(act_space, gym.spaces.Box) and tuple(act_space.shape) == self._act_shape
        else:
            ok = isinstance(act_space, gym.spaces.Discrete) and (
                (int(act_space.n), int(act_space.start)) == (self.num_outputs, self._action_start)
            )
        if not ok:
            raise AgentError(f"env action space {act_space!r} does not match the agent's {self.action_space!r}")
        if self._obs_discrete:
            ok = isinstance(obs_space, gym.spaces.Discrete) and int(obs_space.n) == self.obs_dim
        else:
            ok = isinstance(obs_space, gym.spaces.Box) and tuple(obs_space.shape) == self._obs_shape
        if not ok:
            raise AgentError(
                f"env observation space {obs_space!r} does not match the agent's {self.observation_space!r}"
            )

    def _stored_batch(self, obs: Any) -> np.ndarray:
        if self._obs_discrete:
            return np.asarray(obs, dtype=np.int64) - self._obs_start
        return np.array(obs, dtype=np.float32)

    def _close_pending_rollout(self) -> None:
        """The current episodes are abandoned: mark the newest stored step of every live sub-env as a
        truncation that bootstraps from the current observation (nothing else will follow it)."""
        buf, t = self.buffer, self.buffer.pos - 1
        stored = self._obs if self._vector else np.asarray([self._obs])
        if not self._obs_discrete:
            self._refresh_norm()
            stored = self._encode_batch(stored)
        open_ = buf.valid[t] & ~buf.dones[t]
        buf.dones[t] |= open_
        buf.bootstrap[t] |= open_
        buf.final_obs[t][open_] = stored[open_]

    def _run_update_on_partial(self) -> None:
        """Process a partial rollout (used when the number of sub-envs changes): shrink the view."""
        buf = self.buffer
        self.buffer = _truncated_view(buf)
        self._run_update()
        self.buffer = buf
        buf.reset()

    def _encode_batch(self, stored: np.ndarray) -> np.ndarray:
        """Stored (raw) observations ``(N, ...)`` → policy inputs with the cached normalisation."""
        if self._obs_discrete:
            return self._eye_np[stored]
        if self.obs_rms is None:
            return stored
        c = self.config.obs_clip
        return np.clip((stored - self._norm_mean) * self._norm_scale, -c, c)

    # ----- the acting loops ----------------------------------------------------------------------------
    def _collect_single(self, n: int) -> None:
        """``n`` steps of a single gymnasium Env into rows ``pos .. pos + n`` of the buffer (column 0)."""
        buf, env, cfg = self.buffer, self._venv, self.config
        t0 = buf.pos
        obs_b, act_b, rew_b = buf.obs[:, 0], buf.actions[:, 0], buf.rewards[:, 0]
        done_b, boot_b, fin_b = buf.dones[:, 0], buf.bootstrap[:, 0], buf.final_obs[:, 0]
        raw_b = buf.raw_obs[:, 0] if buf.raw_obs is not None else None
        noise = self._noise[:, 0]
        buf.valid[t0 : t0 + n, 0] = True
        self._refresh_norm()
        actor = self.policy.np_actor_snapshot()  # parameters do not change within this loop
        step, reset = env.step, env.reset
        discrete_obs, eye, start = self._obs_discrete, getattr(self, "_eye_np", None), self._obs_start
        normalize = self.obs_rms is not None
        mean, scale, c = self._norm_mean, self._norm_scale, cfg.obs_clip
        continuous, a_start = self.continuous, self._action_start
        if continuous:
            std = np.exp(self.policy.np_log_std())
            clip, low, high = self._clip_actions, self._act_low, self._act_high
        obs = self._obs
        ep_ret, ep_len = float(self._ep_return[0]), int(self._ep_length[0])
        returns, lengths = self._returns, self._lengths
        for t in range(t0, t0 + n):
            # policy input: one-hot row, normalised copy, or the raw float32 observation itself
            if discrete_obs:
                x = eye[obs]
                obs_b[t] = obs
            else:
                if normalize:
                    raw_b[t] = obs
                    x = np.clip((obs - mean) * scale, -c, c)
                else:
                    x = obs
                obs_b[t] = x
            out = actor(x)
            if continuous:  # a ~ N(μ, σ²) by μ + σ ε; the env gets the clipped action
                a = out + std * noise[t]
                act_b[t] = a
                env_a = np.clip(a, low, high) if clip else a
            else:  # Gumbel-max: argmax(logits + g) ~ Categorical(softmax(logits))
                a = int((out + noise[t]).argmax())
                act_b[t] = a
                env_a = a + a_start
            next_obs, reward, terminated, truncated, _ = step(env_a)
            rew_b[t] = reward
            ep_ret += reward
            ep_len += 1
            if terminated or truncated:
                done_b[t] = True
                if not terminated:  # time limit: bootstrap from V(final observation)
                    boot_b[t] = True
                    if discrete_obs:
                        fin_b[t] = int(next_obs) - start
                    else:
                        f = np.asarray(next_obs, dtype=np.float32)
                        fin_b[t] = np.clip((f - mean) * scale, -c, c) if normalize else f
                else:
                    boot_b[t] = False
                returns.append(ep_ret)
                lengths.append(ep_len)
                ep_ret, ep_len = 0.0, 0
                next_obs, _ = reset()
            else:
                done_b[t] = boot_b[t] = False
            obs = int(next_obs) - start if discrete_obs else np.asarray(next_obs, dtype=np.float32)
        self._obs = obs if discrete_obs else np.array(obs, dtype=np.float32)  # own copy between calls
        self._ep_return[0], self._ep_length[0] = ep_ret, ep_len
        buf.pos = t0 + n
        self.total_steps += n

    def _collect_vector(self, n: int) -> None:
        """``n`` steps of a VectorEnv (``num_envs`` sub-envs) into rows ``pos .. pos + n`` of the buffer.
        :class:`agents.vector_stepping.VectorStepper` says which rows are transitions (autoreset modes,
        padded agents) and what each ended episode's final observation was."""
        buf, st = self.buffer, self._stepper
        assert st is not None
        t0 = buf.pos
        self._refresh_norm()
        actor = self.policy.np_actor
        continuous, a_start = self.continuous, self._action_start
        if continuous:
            std = np.exp(self.policy.np_log_std())
        discrete_obs = self._obs_discrete
        for t in range(t0, t0 + n):
            obs = st.obs
            x = self._encode_batch(obs)
            if buf.raw_obs is not None:
                buf.raw_obs[t] = obs
            buf.obs[t] = obs if discrete_obs else x
            buf.valid[t] = st.active
            out = actor(x)
            if continuous:
                a = out + std * self._noise[t]
                buf.actions[t] = a
                env_a = np.clip(a, self._act_low, self._act_high) if self._clip_actions else a
            else:
                a = (out + self._noise[t]).argmax(axis=1)
                buf.actions[t] = a
                env_a = a + a_start if a_start else a
            tr = st.step(env_a)
            buf.rewards[t] = tr.rewards
            buf.dones[t] = tr.done
            boot = tr.truncated & ~tr.terminated  # time limit: bootstrap from V(final observation)
            buf.bootstrap[t] = boot
            if boot.any():
                final = tr.next_obs[boot]
                buf.final_obs[t][boot] = final if discrete_obs else self._encode_batch(final)
        returns, lengths = st.drain_episodes()
        self._returns.extend(returns)
        self._lengths.extend(lengths)
        self._obs, self._active = st.obs, st.active
        buf.pos = t0 + n
        self.total_steps += n * st.num_envs

    # ----- helpers for the algorithms ------------------------------------------------------------------
    def _current_input(self) -> torch.Tensor:
        """Policy input for the observation(s) after the last stored row, ``(N, obs_dim)``."""
        self._refresh_norm()
        if self._vector:
            x = self._encode_batch(self._obs)
        else:
            x = self._encode_one(self._obs)[None]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def _end_of_rollout_statistics(self) -> None:
        """Fold the rollout's new rows into the observation statistics and scale its rewards in place."""
        buf = self.buffer
        lo, hi = buf.new_start, buf.pos
        valid = buf.valid[lo:hi]
        if self.obs_rms is not None:
            self.obs_rms.update(buf.raw_obs[lo:hi][valid])
        if self.reward_scaler is not None:
            buf.rewards[lo:hi] = self.reward_scaler.scale_block(buf.rewards[lo:hi], buf.dones[lo:hi], valid)
        buf.new_start = hi

    @torch.no_grad()
    def _boot_values(self, hi: int) -> np.ndarray:
        """V(final_obs) at the truncated rows < ``hi`` (0 elsewhere), ``(hi, N)`` float32."""
        buf = self.buffer
        out = np.zeros((hi, buf.num_envs), dtype=np.float32)
        mask = buf.bootstrap[:hi]
        if mask.any():
            out[mask] = self.policy.value(self._policy_input(buf.final_obs[:hi][mask])).numpy()
        return out

    def _prox_loss(self) -> torch.Tensor | None:
        """FedProx (μ/2)·||θ − θ_anchor||² (Li et al. 2020, eq. 2), or None when off."""
        if self.prox_mu > 0.0 and self._prox_pairs:
            prox = sum(torch.sum((p - a) ** 2) for p, a in self._prox_pairs)
            return 0.5 * self.prox_mu * prox
        return None

    def _step_optimizer(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (+ the FedProx term), with global gradient-norm clipping."""
        if not loss.requires_grad:  # every parameter frozen by set_trainable: nothing to train
            return
        prox = self._prox_loss()
        if prox is not None:
            loss = loss + prox
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.config.max_grad_norm, foreach=True)
        self.optimizer.step()

    # ----- weights -------------------------------------------------------------------------------------
    def get_weights(self) -> Weights:
        """Actor-critic parameters as independent float32 numpy copies, named like its state_dict."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.policy.state_dict().items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load a subset of the parameters by name; the given values become the FedProx anchor. Validates
        everything first: on an unknown key, wrong shape or non-finite value nothing changes. The optimiser
        state, normalisation statistics and the pending rollout are kept (they are local to the client)."""
        staged = self._stage(weights, "weight")
        self._before_params_change()
        current = self.policy.state_dict()
        with torch.no_grad():
            for key, value in staged.items():
                current[key].copy_(value)
        self._anchor.update(staged)
        self._rebuild_prox_pairs()

    def set_anchor(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set the proximal anchor without touching the parameters (Ditto pulls a personal model toward the
        global one). Validated like :meth:`set_weights`."""
        self._anchor.update(self._stage(weights, "anchor weight"))
        self._rebuild_prox_pairs()

    def set_proximal(self, mu: float) -> None:
        """FedProx / Ditto: the weight μ of (μ/2)·||θ − θ_anchor||² (Li et al. 2020, eq. 2)."""
        ok = isinstance(mu, int | float | np.integer | np.floating) and not isinstance(mu, bool | np.bool_)
        if not (ok and math.isfinite(mu) and mu >= 0.0):
            raise AgentError(f"prox_mu={mu!r} is out of range; allowed: finite >= 0")
        self.prox_mu = float(mu)

    def set_trainable(self, prefixes: tuple[str, ...] | None) -> None:
        """Train only the parameters whose names start with one of ``prefixes`` (None: all) — FedRep
        (Collins et al. 2021) alternates head-only and body-only local updates with this."""
        for name, p in self.policy.named_parameters():
            p.requires_grad_(prefixes is None or name.startswith(tuple(prefixes)))

    def _stage(self, weights: Mapping[str, np.ndarray], what: str) -> dict[str, torch.Tensor]:
        """Checked float32 tensor copies of ``weights`` (:func:`agents.base.checked_weights`)."""
        shapes = {k: tuple(v.shape) for k, v in self.policy.state_dict().items()}
        return {k: torch.from_numpy(v) for k, v in checked_weights(weights, shapes, what).items()}

    def _rebuild_prox_pairs(self) -> None:
        named = dict(self.policy.named_parameters())
        self._prox_pairs = [(named[k], a) for k, a in self._anchor.items() if k in named]

    # ----- checkpoints ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights, optimiser state, normalisation statistics, counters, RNG state and FedProx anchor
        atomically (temp file in the same directory, then ``os.replace``), and the sampling noise already
        drawn for the next rollout (so a loaded agent continues exactly). The pending rollout is not saved
        (like DQN's replay buffer)."""
        payload = {
            "obs_dim": self.obs_dim,
            "num_outputs": self.num_outputs,
            "continuous": self.continuous,
            "config": dataclasses.asdict(self.config),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "total_steps": self.total_steps,
            "num_updates": self.num_updates,
            "rng_state": json.dumps(self._rng.bit_generator.state),
            "anchor": dict(self._anchor),
            "obs_rms": self.obs_rms.state_dict() if self.obs_rms is not None else None,
            "reward_rms": self.reward_scaler.state_dict() if self.reward_scaler is not None else None,
            "rollout_noise": torch.from_numpy(self._noise.copy()) if self._noise is not None else None,
        }
        save_checkpoint(path, self.name, payload)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save` (``torch.load(weights_only=True)``).

        Refuses (AgentError, nothing modified) a file that is not a checkpoint of this algorithm or whose
        network shapes differ. The agent keeps its own config (the optimiser's lr is reset to
        ``config.lr``); normalisation statistics are restored when both sides keep them. Like
        ``set_weights``, the running episode and the pending rollout are kept.
        """
        name = os.fspath(path)
        payload = read_checkpoint(name, self.name)
        expected = {k: tuple(v.shape) for k, v in self.policy.state_dict().items()}
        got = payload.get("policy")
        shapes = {k: tuple(v.shape) for k, v in got.items()} if isinstance(got, Mapping) else None
        if shapes != expected:
            raise AgentError(f"checkpoint {name!r} has network shapes {shapes}, but this agent expects {expected}")
        optimizer = self._make_optimizer()
        try:
            optimizer.load_state_dict(payload["optimizer"])
            rng_state = json.loads(payload["rng_state"])
            total_steps, num_updates = int(payload["total_steps"]), int(payload["num_updates"])
            anchor = {k: v.clone() for k, v in payload.get("anchor", {}).items() if k in expected}
            obs_rms = reward_rms = None
            if self.obs_rms is not None and payload.get("obs_rms") is not None:
                obs_rms = RunningMeanStd(self._obs_shape)
                obs_rms.load_state_dict(payload["obs_rms"])
            if self.reward_scaler is not None and payload.get("reward_rms") is not None:
                reward_rms = RunningMeanStd(())
                reward_rms.load_state_dict(payload["reward_rms"])
            for key, value in got.items():
                if not torch.isfinite(value).all():
                    raise ValueError(f"weight {key!r} contains non-finite values")
            noise = payload.get("rollout_noise")
            if noise is not None:
                noise = noise.numpy().astype(np.float32)
                if noise.ndim != 3 or noise.shape[2] != self.num_outputs or not np.isfinite(noise).all():
                    raise ValueError(f"rollout noise of shape {tuple(noise.shape)} does not fit this agent")
        except Exception as exc:
            raise AgentError(f"checkpoint {name!r} is malformed: {exc}") from None
        for group in optimizer.param_groups:
            group["lr"] = self.config.lr
        self._before_params_change()
        self.policy.load_state_dict(got)
        self.optimizer = optimizer
        self._rng.bit_generator.state = rng_state
        self.total_steps, self.num_updates = total_steps, num_updates
        self._anchor = anchor
        self._rebuild_prox_pairs()
        if obs_rms is not None:
            self.obs_rms = obs_rms
        if reward_rms is not None:
            self.reward_scaler.rms = reward_rms
        if noise is not None and (self.buffer is None or self.buffer.pos == 0):  # not mid-rollout
            self._noise = noise



def _truncated_view(buf: RolloutBuffer) -> RolloutBuffer:
    """A buffer object whose arrays are views of rows ``[0, pos)`` of ``buf`` (so it reads as full)."""
    view = object.__new__(RolloutBuffer)
    view.__dict__.update(buf.__dict__)
    T = buf.pos
    for name, value in buf.__dict__.items():
        if isinstance(value, np.ndarray):
            setattr(view, name, value[:T])
    view.capacity = T
    return view
