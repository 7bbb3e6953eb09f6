"""Shared machinery of the on-policy agents (PPO, A2C, REINFORCE): config validation, spaces and the one
acting loop that fills a :class:`agents.rollout.RolloutBuffer` (weights, FedProx and checkpoints come from
:class:`agents.torch_agent.TorchAgent`). Each algorithm module subclasses :class:`OnPolicyAgent` with its
config and writes its own ``_process_rollout`` (the update), so the algorithm reads top to bottom in its file.

Environments: a single Env is the N = 1 case of :class:`agents.vector_stepping.VectorStepper`, which also
drives VectorEnvs (any autoreset mode) and PettingZoo ParallelEnvs (one sub-env per agent, shared
parameters). The loop is lean (Stable-Baselines3 is the speed reference): the actor runs on numpy views of
its parameters, sampling noise for a whole rollout is drawn in one call, and log-probabilities and values
are computed in one batched forward pass when the rollout is processed.

Rollouts span ``learn`` calls: the agent collects ``n_steps`` steps per sub-env and updates when the buffer
is full; a partial rollout stays until the next call (``train/updates`` says how many updates happened). A
new env object closes the pending rollout as a truncation (it bootstraps from the abandoned episode's last
observation). Observation normalisation and reward scaling (:mod:`agents.normalization`) are updated once
per rollout, so the policy is a fixed function while acting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import AgentError, check_num_steps, flat_observation_layout, learn_stats, stored_batch
from agents.config import ConfigChecks
from agents.nets import ACTIVATIONS, seeded_init
from agents.normalization import RewardScaler, RunningMeanStd
from agents.policies import ActorCritic
from agents.rollout import RolloutBuffer
from agents.torch_agent import TorchAgent
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
class OnPolicyAgent(TorchAgent):
    """Actor-critic agent on a Discrete or 1-D Box action space and a 1-D Box or Discrete (one-hot)
    observation space. Subclasses set ``name``, ``config_class``, ``algorithm`` (for messages) and
    implement :meth:`_make_optimizer` and :meth:`_process_rollout`."""

    config_class: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig
    algorithm: ClassVar[str] = "on-policy"

    def _build(self, cfg: OnPolicyConfig, seed: int | np.random.SeedSequence) -> None:
        observation_space, action_space = self.observation_space, self.action_space

        # Actions: Discrete (categorical policy) or a 1-D Box (diagonal Gaussian; samples are clipped to the
        # bounds when stepping the env, the buffer keeps the unclipped sample for the log-probability).
        if isinstance(action_space, gym.spaces.Discrete):
            self.continuous = False
            self.head_prefixes = ("actor.head.", "critic.head.")
            self.num_outputs = int(action_space.n)
            self._action_start = int(action_space.start)
            self._act_shape: tuple[int, ...] = ()
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            self.continuous = True
            self.head_prefixes = ("actor.head.", "critic.head.", "actor.log_std")
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

        with seeded_init(self._setup(cfg, seed)):
            self.policy = self.net = ActorCritic(
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
        self.obs_rms = RunningMeanStd(self._obs_shape) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(1, cfg.gamma, cfg.reward_clip) if cfg.scale_reward else None
        self._norm_mean = self._norm_scale = None  # cached float32 affine map of obs_rms, per rollout
        self.buffer: RolloutBuffer | None = None  # the pending rollout persists across learn() calls
        self._noise: np.ndarray | None = None

    # ----- hooks for the algorithms --------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.config.lr, eps=1e-5, fused=True)

    def _process_rollout(self) -> dict[str, float]:
        """Learn from the full buffer and leave it ready for the next rollout; returns loss statistics."""
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy": self.optimizer}

    # ----- acting --------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray | int, *, explore: bool = True) -> np.ndarray | int:
        """Sample from π(·|obs) when ``explore``, else its mode (argmax logits / Gaussian mean). Discrete
        actions are ints; Box actions float32 arrays clipped to the action bounds."""
        stored = self._stored_batch(np.asarray(obs)[None])
        self._refresh_norm()
        out = self.policy.np_actor(self._encode_batch(stored)[0])
        if not self.continuous:
            if explore:
                out = out + self._rng.gumbel(size=out.shape)
            return int(out.argmax()) + self._action_start
        a = out
        if explore:
            a = out + np.exp(self.policy.np_log_std()) * self._rng.standard_normal(out.shape, np.float32)
        return np.clip(a, self._act_low, self._act_high) if self._clip_actions else np.array(a, np.float32)

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
        """:meth:`agents.base.Agent.learn`, updating whenever ``n_steps`` steps per sub-env have been
        collected; adds ``train/updates`` (in this call)."""
        check_num_steps(num_steps)
        if env is not self._env:
            self._start(env)
        remaining = -(-int(num_steps) // self._stepper.num_envs)  # vector steps
        sums: dict[str, float] = {}
        updates = 0
        while remaining > 0:
            buf = self.buffer
            k = min(remaining, buf.capacity - buf.pos)
            self._collect(k)
            remaining -= k
            if buf.full:
                for key, v in self._run_update().items():
                    sums[key] = sums.get(key, 0.0) + v
                updates += 1
        losses = {k: v / updates for k, v in sums.items()}
        totals = {"train/updates": updates, "train/steps": self.total_steps}
        return learn_stats(losses, *self._stepper.drain_episodes(), totals)

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
        """Adopt a new env: check spaces, close the pending rollout as a truncation, (re)allocate the buffer
        if the number of sub-envs changed, reset with a seed."""
        venv = adopt_env(env, self)
        n = 1 if venv is None else int(venv.num_envs)
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
        self._env = env
        self._stepper = VectorStepper(env if venv is None else venv, self._stored_batch,
                                      int(self._rng.integers(2**31 - 1)))

    def _stored_batch(self, obs: Any) -> np.ndarray:
        return stored_batch(obs, self._obs_discrete, self.obs_dim, self._obs_start)

    def _close_pending_rollout(self) -> None:
        """The current episodes are abandoned: mark the newest stored step of every live sub-env as a
        truncation that bootstraps from the current observation (nothing else will follow it)."""
        buf, t = self.buffer, self.buffer.pos - 1
        stored = self._stepper.obs
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
    def _collect(self, n: int) -> None:
        """``n`` vector steps into rows ``pos .. pos + n`` of the buffer. The stepper says which rows are
        transitions (autoreset modes, padded agents) and what each ended episode's final observation was;
        sampling uses the rollout's pre-drawn noise: Gumbel-max for categoricals (argmax(logits + g) ~
        softmax(logits), Gumbel 1954), μ + σ·ε for Gaussians."""
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
        buf.pos = t0 + n
        self.total_steps += n * st.num_envs

    # ----- helpers for the algorithms ------------------------------------------------------------------
    def _current_input(self) -> torch.Tensor:
        """Policy input for the observation(s) after the last stored row, ``(N, obs_dim)``."""
        self._refresh_norm()
        x = self._encode_batch(self._stepper.obs)
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

    def _step_optimizer(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (+ the FedProx term), with global gradient-norm clipping."""
        self._descend(loss, self.optimizer, clip=self.config.max_grad_norm)

    # ----- checkpoints: normalisation statistics and the next rollout's noise ---------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "obs_rms": self.obs_rms.state_dict() if self.obs_rms is not None else None,
            "reward_rms": self.reward_scaler.state_dict() if self.reward_scaler is not None else None,
            "rollout_noise": torch.from_numpy(self._noise.copy()) if self._noise is not None else None,
        }

    def _restore_extra(self, extra: Any) -> Callable[[], None]:
        """Statistics are restored when both sides keep them; the noise drawn for the next rollout only on a
        rollout boundary (so a loaded agent continues exactly)."""
        obs_rms = reward_rms = None
        if self.obs_rms is not None and extra.get("obs_rms") is not None:
            obs_rms = RunningMeanStd(self._obs_shape)
            obs_rms.load_state_dict(extra["obs_rms"])
        if self.reward_scaler is not None and extra.get("reward_rms") is not None:
            reward_rms = RunningMeanStd(())
            reward_rms.load_state_dict(extra["reward_rms"])
        noise = extra.get("rollout_noise")
        if noise is not None:
            noise = noise.numpy().astype(np.float32)
            if noise.ndim != 3 or noise.shape[2] != self.num_outputs or not np.isfinite(noise).all():
                raise ValueError(f"rollout noise of shape {tuple(noise.shape)} does not fit this agent")

        def commit() -> None:
            if obs_rms is not None:
                self.obs_rms = obs_rms
            if reward_rms is not None:
                self.reward_scaler.rms = reward_rms
            if noise is not None and (self.buffer is None or self.buffer.pos == 0):  # not mid-rollout
                self._noise = noise

        return commit


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
