"""CartPole with per-client pole length: the environment-heterogeneity testbed of Jin et al. (2022).

Description
    Gymnasium's CartPole-v1 (Barto, Sutton & Anderson 1983 cart-pole dynamics, integrated by Euler steps of
    τ = 0.02 s) whose pole half-length differs per client. Jin et al. ("Federated Reinforcement Learning
    with Environment Heterogeneity", AISTATS 2022, Sec. 6) draw each client's half pole length as
    0.1 + 0.8·θ with θ ~ U(0, 1), so one Q-function cannot be optimal for every client and a plain
    federated average (QAvg) can be worse for a client than its own model.
Action Space
    ``Discrete(2)``: push the cart left (0) or right (1) with force ``force_mag``.
Observation Space
    ``Box(4,)``: cart position, cart velocity, pole angle, pole angular velocity (as CartPole-v1).
Rewards
    +1 per step while the pole is up (as CartPole-v1).
Starting State
    Every state variable uniform in [−0.05, 0.05].
Episode End
    Terminated when |angle| > 12° or |x| > 2.4; truncated after ``max_episode_steps`` (500).
Arguments (``CartPoleHeteroConfig``)
    ``half_pole_length`` (m, [0.05, 2.0], default 0.5 = CartPole-v1); ``masspole`` (kg, [0.01, 1.0], 0.1);
    ``masscart`` (kg, [0.1, 10], 1.0); ``force_mag`` (N, [1, 50], 10.0). Defaults are Gymnasium's.
References
    Jin, Peng, Yang, Wang, Zhang, "Federated Reinforcement Learning with Environment Heterogeneity",
    AISTATS 2022. Barto, Sutton, Anderson, IEEE SMC 1983.
Version History
    v0: first version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs.registry import EnvConfigError, EnvEntry, check_range

_RANGES = {"half_pole_length": (0.05, 2.0), "masspole": (0.01, 1.0), "masscart": (0.1, 10.0),
           "force_mag": (1.0, 50.0)}


@dataclass(frozen=True)
class CartPoleHeteroConfig:
    half_pole_length: float = 0.5
    masspole: float = 0.1
    masscart: float = 1.0
    force_mag: float = 10.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            check_range(name, getattr(self, name), lo, hi)


class CartPoleHeteroEnv(CartPoleEnv):
    """CartPole-v1 dynamics with the physical parameters of a ``CartPoleHeteroConfig``."""

    def __init__(self, config: CartPoleHeteroConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        config = config or CartPoleHeteroConfig()
        fields = {f.name for f in dataclasses.fields(CartPoleHeteroConfig)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise EnvConfigError(f"unknown CartPoleHetero knob {bad[0]!r}; allowed: {', '.join(sorted(fields))}")
        config = dataclasses.replace(config, **overrides) if overrides else config
        super().__init__(render_mode=render_mode)
        self.config = config
        self.length = config.half_pole_length
        self.masspole = config.masspole
        self.masscart = config.masscart
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length
        self.force_mag = config.force_mag


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: CartPoleHeteroConfig | None = None) -> list[CartPoleHeteroConfig]:
    """Half pole length l_k = l0 + h·(0.1 + 0.8·θ_k − l0), θ_k ~ U(0, 1) (Jin et al. 2022 at h = 1)."""
    if not isinstance(n_clients, int) or n_clients < 1:
        raise EnvConfigError(f"n_clients={n_clients!r} must be an integer >= 1")
    check_range("heterogeneity", heterogeneity, 0.0, 1.0)
    base = base or CartPoleHeteroConfig()
    theta = np.random.default_rng(seed).uniform(0.0, 1.0, size=n_clients)
    lengths = base.half_pole_length + heterogeneity * (0.1 + 0.8 * theta - base.half_pole_length)
    return [dataclasses.replace(base, half_pole_length=float(x)) for x in lengths]


def _pd_policy(env: gym.Env, seed: int):
    """Hand-tuned linear state feedback (push toward the side the pole is falling, with damping)."""
    gains = np.array([0.1, 0.5, 10.0, 2.0])
    return lambda obs: int(float(np.dot(gains, obs)) > 0.0)


def _random_policy(env: gym.Env, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(2))


BASELINES = {"pd-controller": _pd_policy, "random": _random_policy}

ENTRY = EnvEntry(
    env_id="frl/CartPoleHetero-v0",
    name="cartpole-hetero",
    entry_point="envs.cartpole_hetero:CartPoleHeteroEnv",
    config_cls=CartPoleHeteroConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=(),
    summary="CartPole-v1 with per-client half pole length 0.1 + 0.8·θ (Jin et al. 2022 heterogeneity testbed)",
    max_episode_steps=500,
)
