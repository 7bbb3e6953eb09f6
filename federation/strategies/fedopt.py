"""Server optimisers: treat the round's mean client change as a gradient and step a stateful optimiser on it.

Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), Alg. 2. Per round t, with global weights x_t and
client models w_k (sample counts n_k),

    Δ_t = Σ_k (n_k / n) · w_k − x_t                                  (pseudo-gradient; an *ascent* direction)
    m_t = β1 m_{t−1} + (1 − β1) Δ_t                                 (m_{−1} = 0)
    v_t = v_{t−1} + Δ_t²                                            FedAdagrad
    v_t = β2 v_{t−1} + (1 − β2) Δ_t²                                FedAdam
    v_t = v_{t−1} − (1 − β2) Δ_t² · sign(v_{t−1} − Δ_t²)            FedYogi
    x_{t+1} = x_t + η · m_t / (√v_t + τ)                            (v_{−1} = τ²; Alg. 2 asks v_{−1} ≥ τ²)

Alg. 2 has no Adam bias correction and neither does this. FedAvgM (Hsu et al. 2019, "Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification", §3) is server SGD with momentum on the
same Δ: v ← β v + Δ; x ← x + η v. With β = 0 and η = 1 it is exactly FedAvg.

Defaults follow the paper's recommendations (§5 and its appendix): β1 = 0.9, β2 = 0.99, τ = 1e-3, and a server
learning rate η = 1e-2 — a typical best value of the paper's log-grid search, which tunes η per task (so
should you). FedAvgM uses η = 1, β = 0.9 (Hsu et al.'s setting). Optimiser state (m, v) is kept per weight
key in the strategy instance, in float64; one instance serves one run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agents.base import Weights
from federation.strategies.base import Strategy, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitResult

_INF = math.inf


def check_float(owner: str, name: str, value: object, lo: float, hi: float, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a float in [lo, hi] (ends open as asked), else a FederationError naming it and range."""
    allowed = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FederationError(f"{owner}: {name}={value!r} is not a number; allowed: {allowed}") from None
    ok = (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi) and not math.isnan(x)
    if not ok:
        raise FederationError(f"{owner}: {name}={value!r} is out of range; allowed: {allowed}")
    return x


# --- pure math ------------------------------------------------------------------------------------------


def pseudo_gradient(weights: Mapping[str, np.ndarray], updates: Sequence[Weights],
                    num_samples: Sequence[int]) -> dict[str, np.ndarray]:
    """Δ = Σ_k (n_k/n) w_k − w per key present in the updates (float64): Reddi et al. 2021, Alg. 2."""
    mean = weighted_average(updates, num_samples)
    return {k: mean[k].astype(np.float64) - np.asarray(weights[k], dtype=np.float64)
            for k in mean if k in weights}


def momentum_step(weights: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray],
                  velocity: Mapping[str, np.ndarray], *, eta: float, beta: float
                  ) -> tuple[Weights, dict[str, np.ndarray]]:
    """FedAvgM (Hsu et al. 2019): v ← βv + Δ; w ← w + ηv. Returns (new weights in each key's dtype, new v)."""
    new_v = {k: beta * velocity[k] + d for k, d in delta.items()}
    new_w = {k: (np.asarray(weights[k], np.float64) + eta * new_v[k]).astype(weights[k].dtype)
             for k in delta}
    return new_w, new_v


def second_moment(rule: str, v: np.ndarray, delta: np.ndarray, beta2: float) -> np.ndarray:
    """v_t from v_{t−1} and Δ_t by Reddi et al. 2021, Alg. 2: ``adagrad``, ``adam`` or ``yogi``."""
    d2 = delta * delta
    if rule == "adagrad":
        return v + d2
    if rule == "adam":
        return beta2 * v + (1.0 - beta2) * d2
    if rule == "yogi":
        return v - (1.0 - beta2) * d2 * np.sign(v - d2)
    raise FederationError(f"unknown second-moment rule {rule!r}; allowed: adagrad, adam, yogi")


def adaptive_step(weights: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray],
                  m: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray], *, rule: str,
                  eta: float, beta1: float, beta2: float, tau: float
                  ) -> tuple[Weights, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One FedAdagrad/FedAdam/FedYogi server step (Alg. 2): returns (new weights, m_t, v_t)."""
    new_m = {k: beta1 * m[k] + (1.0 - beta1) * d for k, d in delta.items()}
    new_v = {k: second_moment(rule, v[k], d, beta2) for k, d in delta.items()}
    new_w = {k: (np.asarray(weights[k], np.float64) + eta * new_m[k] / (np.sqrt(new_v[k]) + tau))
             .astype(weights[k].dtype) for k in delta}
    return new_w, new_m, new_v


# --- strategies -----------------------------------------------------------------------------------------


class _ServerOptimizer(Strategy):
    """Shared plumbing: validate, compute Δ, keep per-key state, leave keys not in the results unchanged."""

    def __init__(self) -> None:
        self._state: dict[str, dict[str, np.ndarray]] = {}

    def reset(self) -> None:
        """Forget the optimiser state (m, v): the next round starts as round 1."""
        self._state = {}

    def _slot(self, slot: str, delta: Mapping[str, np.ndarray], init: float) -> dict[str, np.ndarray]:
        """State ``slot`` per key of ``delta``; a new key (or one whose shape changed) starts at ``init``."""
        cur = self._state.get(slot, {})
        return {k: cur[k] if k in cur and cur[k].shape == d.shape else np.full(d.shape, init)
                for k, d in delta.items()}

    def _step(self, weights: Weights, delta: dict[str, np.ndarray]) -> Weights:
        raise NotImplementedError

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        delta = pseudo_gradient(weights, [r.weights for r in results], [r.num_samples for r in results])
        new = self._step(weights, delta)
        return {k: new.get(k, v) for k, v in weights.items()}


# Server learning rates beyond this only diverge: Reddi et al. (2021, App. D) search eta in [1e-3, 10] and
# Hsu et al. (2019) use server rates near 1; a bound here refuses eta=1e30 before training instead of after.
MAX_SERVER_LR = 100.0


class FedAvgM(_ServerOptimizer):
    """FedAvg with server momentum (Hsu et al. 2019): v ← βv + Δ; w ← w + ηv. β=0, η=1 is FedAvg."""

    name = "fedavgm"
    summary = "FedAvg with server momentum (Hsu et al. 2019)"

    def __init__(self, *, eta: float = 1.0, beta: float = 0.9) -> None:
        super().__init__()
        self.eta = check_float(self.name, "eta", eta, 0.0, MAX_SERVER_LR, lo_open=True)
        self.beta = check_float(self.name, "beta", beta, 0.0, 1.0, hi_open=True)

    def params(self) -> dict[str, float | int | str]:
        return {"eta": self.eta, "beta": self.beta}

    def _step(self, weights: Weights, delta: dict[str, np.ndarray]) -> Weights:
        new, self._state["v"] = momentum_step(weights, delta, self._slot("v", delta, 0.0),
                                              eta=self.eta, beta=self.beta)
        return new


class _Adaptive(_ServerOptimizer):
    """FedAdagrad / FedAdam / FedYogi (Reddi et al. 2021, Alg. 2); subclasses pick the v-rule."""

    rule = "adam"
    uses_beta2 = True

    def __init__(self, *, eta: float = 1e-2, beta1: float = 0.9, beta2: float = 0.99,
                 tau: float = 1e-3) -> None:
        super().__init__()
        self.eta = check_float(self.name, "eta", eta, 0.0, MAX_SERVER_LR, lo_open=True)
        self.beta1 = check_float(self.name, "beta1", beta1, 0.0, 1.0, hi_open=True)
        self.beta2 = check_float(self.name, "beta2", beta2, 0.0, 1.0, hi_open=True)
        self.tau = check_float(self.name, "tau", tau, 0.0, _INF, lo_open=True, hi_open=True)

    def params(self) -> dict[str, float | int | str]:
        p: dict[str, float | int | str] = {"eta": self.eta, "beta1": self.beta1, "beta2": self.beta2,
                                           "tau": self.tau}
        if not self.uses_beta2:
            del p["beta2"]
        return p

    def _step(self, weights: Weights, delta: dict[str, np.ndarray]) -> Weights:
        m = self._slot("m", delta, 0.0)
        v = self._slot("v", delta, self.tau ** 2)
        new, self._state["m"], self._state["v"] = adaptive_step(
            weights, delta, m, v, rule=self.rule, eta=self.eta, beta1=self.beta1, beta2=self.beta2,
            tau=self.tau)
        return new


class FedAdam(_Adaptive):
    """Server Adam without bias correction: v ← β2 v + (1−β2)Δ² (Reddi et al. 2021, Alg. 2)."""

    name = "fedadam"
    summary = "server Adam on the mean client change (Reddi et al. 2021)"
    rule = "adam"


class FedYogi(_Adaptive):
    """Server Yogi: v ← v − (1−β2)Δ² sign(v − Δ²), an additive v update (Reddi et al. 2021, Alg. 2)."""

    name = "fedyogi"
    summary = "server Yogi on the mean client change (Reddi et al. 2021)"
    rule = "yogi"


class FedAdagrad(_Adaptive):
    """Server Adagrad: v ← v + Δ² (Reddi et al. 2021, Alg. 2); has no β2."""

    name = "fedadagrad"
    summary = "server Adagrad on the mean client change (Reddi et al. 2021)"
    rule = "adagrad"
    uses_beta2 = False

    def __init__(self, *, eta: float = 1e-2, beta1: float = 0.9, tau: float = 1e-3) -> None:
        super().__init__(eta=eta, beta1=beta1, tau=tau)
