"""Admission control to a single-server queue: accept or reject each arriving customer.

Model (Naor 1969; Stidham 1985): customers arrive as a Poisson process of rate ``arrival_rate`` (λ); a single
server serves them first-come first-served with exponential service of rate ``service_rate`` (μ); at most
``capacity`` (K) customers fit. Each arrival carries a value: ``value_high`` with probability ``p_high``,
else ``value_low``. The controller sees the queue length and the arrival's value and accepts (earning the
value) or rejects it; every customer in the system costs ``holding_cost`` per unit time. Naor showed that the
self-interested rule "join iff (q + 1)·c/μ <= R" admits more than is socially optimal, so a learned policy
has room to beat it (and accept-all) when the load is high.

Step = one arrival decision. Reward = value if admitted, minus the holding cost accrued until the next arrival
(exact: the queue is simulated through the exponential inter-arrival time, departure by departure).
Rewards are divided by ``value_high``. KPIs: ``admitted`` (fraction of arrivals admitted), ``blocked``
(arrivals that found the queue full), ``queue`` (time-average queue length over the step).

Heterogeneity across clients (h in [0, 1]): the load λ/μ and the holding cost each scale by 2**(h·U(-1, 1)).

References: P. Naor, "The regulation of queue size by levying tolls", Econometrica 37(1), 1969.
S. Stidham, "Optimal control of admission to a queueing system", IEEE Trans. Autom. Control 30(8), 1985.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.knobs import KnobConfig, check_client_args, clip_knob, knob, resolve_config
from envs.registry import EnvConfigError, EnvEntry

_SRC = "example value (Naor 1969 model)"


@dataclass(frozen=True)
class QueueAdmissionConfig(KnobConfig):
    arrival_rate: float = knob(0.9, 0.05, 10.0, unit="1/s", source=_SRC)
    service_rate: float = knob(1.0, 0.05, 10.0, unit="1/s", source=_SRC)
    capacity: int = knob(20, 1, 200, integer=True, unit="customers", source=_SRC)
    holding_cost: float = knob(0.25, 0.0, 10.0, unit="value/s per customer", source=_SRC)
    value_high: float = knob(4.0, 0.1, 100.0, unit="value", source=_SRC)
    value_low: float = knob(1.0, 0.0, 100.0, unit="value", source=_SRC)
    p_high: float = knob(0.3, 0.0, 1.0, unit="probability", source=_SRC)
    episode_arrivals: int = knob(400, 10, 100_000, integer=True, unit="arrivals", source="this example")

    def check_constraints(self) -> None:
        if self.value_low > self.value_high:
            raise EnvConfigError(f"value_low={self.value_low!r} is out of range; allowed: <= value_high="
                                 f"{self.value_high!r}")


class QueueAdmissionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: QueueAdmissionConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        self.config = cfg = resolve_config(QueueAdmissionConfig, config, overrides)
        if render_mode is not None:
            raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None")
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)  # 0 reject, 1 admit
        self._k = int(cfg.capacity)
        self._q = 0
        self._t = 0
        self._value = cfg.value_low

    def _draw_value(self) -> None:
        c = self.config
        self._value = c.value_high if self.np_random.random() < c.p_high else c.value_low

    def _obs(self) -> np.ndarray:
        return np.array([self._q / self._k, self._value / self.config.value_high], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._q, self._t = 0, 0
        self._draw_value()
        return self._obs(), {}

    def step(self, action: Any):
        if not self.action_space.contains(action):
            raise ValueError(f"action={action!r} is not in {self.action_space}")
        c = self.config
        full = self._q >= self._k
        admit = int(action) == 1 and not full
        reward = self._value if admit else 0.0
        self._q += int(admit)
        # until the next arrival: exponential gap, departures at rate mu while the queue is non-empty
        gap = self.np_random.exponential(1.0 / c.arrival_rate)
        elapsed, area = 0.0, 0.0
        while self._q > 0:
            service = self.np_random.exponential(1.0 / c.service_rate)
            if elapsed + service > gap:
                break
            area += self._q * service
            elapsed += service
            self._q -= 1
        area += self._q * (gap - elapsed)
        reward -= c.holding_cost * area
        self._t += 1
        info = {"admitted": float(admit), "blocked": float(full), "queue": area / gap}
        self._draw_value()
        truncated = self._t >= c.episode_arrivals
        return self._obs(), float(reward / c.value_high), False, truncated, info


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: QueueAdmissionConfig | None = None) -> list[QueueAdmissionConfig]:
    """Load λ/μ and holding cost of client k scale by 2**(h·u), u ~ U(-1, 1) independently."""
    check_client_args(n_clients, heterogeneity)
    base = base or QueueAdmissionConfig()
    u = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n_clients, 2))
    out = []
    for i in range(n_clients):
        lam = clip_knob(QueueAdmissionConfig, "arrival_rate", base.arrival_rate * 2 ** (heterogeneity * u[i, 0]))
        cost = clip_knob(QueueAdmissionConfig, "holding_cost", base.holding_cost * 2 ** (heterogeneity * u[i, 1]))
        out.append(dataclasses.replace(base, arrival_rate=lam, holding_cost=cost))
    return out


def _accept_all(env: gym.Env, seed: int):
    return lambda obs: 1


def _naor_individual(env: gym.Env, seed: int):
    """Naor's self-interested rule: join iff the expected own holding cost (q + 1)·c/μ is at most the value."""
    c = env.unwrapped.config

    def policy(obs: np.ndarray) -> int:
        q = round(float(obs[0]) * c.capacity)
        value = float(obs[1]) * c.value_high
        return int((q + 1) * c.holding_cost / c.service_rate <= value)
    return policy


def _random(env: gym.Env, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(2))


ENTRY = EnvEntry(
    env_id="queue/Admission-v0",
    name="queue-admission",
    entry_point="frl_queue_admission.env:QueueAdmissionEnv",
    config_cls=QueueAdmissionConfig,
    client_configs=make_client_configs,
    baselines={"accept-all": _accept_all, "naor-individual": _naor_individual, "random": _random},
    kpis=("admitted", "blocked", "queue"),
    lower_is_better=("blocked", "queue"),
    summary="Example plugin: admit or reject arrivals to an M/M/1/K queue with holding costs (Naor 1969)",
)
