"""FedPG-BR's Byzantine filter (Fan, Ma, Dai, Jing, Tan & Low, "Fault-Tolerant Federated Reinforcement
Learning with Theoretical Guarantee", NeurIPS 2021, Alg. 1.1 "FedPG-Aggregate"), on model updates.

The paper's server receives K policy-gradient estimates μ^(k) (each the mean of B_t per-trajectory
GPOMDP gradients at the same policy θ_0), of which fewer than half (α < 1/2) may be Byzantine, and keeps
those that agree with a majority:

1. S := {μ^(k) : more than K/2 of the μ^(k') lie within radius r of μ^(k)}  (the "vector medians");
2. μ_mom := the member of S closest to the mean of S;
3. G := {k : ‖μ^(k) − μ_mom‖ ≤ 2r},   μ_t := (1/|G|) Σ_{k∈G} μ^(k).

Rule R1 uses r = T_μ = 2σ√(V/B_t), V = 2 log(2K/δ) (σ bounds a per-trajectory gradient's deviation, so
T_μ bounds the distance of two honest B_t-trajectory means with probability 1 − δ); when R1 keeps fewer
than (1 − α)K agents the server falls back to R2 with r = 2σ (the almost-sure bound). The acceptance
radius 2r is the smallest that provably keeps every good agent under that bound: an honest μ lies within
r/2 of the true gradient, μ_mom has a majority — so at least one honest μ — within r, hence lies within
3r/2 of the true gradient, and every honest μ within 2r of μ_mom (the paper's Lemma bounds ‖μ_t − ∇J‖ the
same way; public reimplementations that accept within r are a stricter variant). The rule's structure and
parameters (σ, α, δ, B_t) are the paper's; the full text was not available to check the radii verbatim.

Approximation (documented): the agents of this suite (``reinforce``, ``ppo``, ``a2c``) train locally for a
round and upload weights, not gradients, so the filter runs on the *model updates* Δ_k = w_k − w (w: the
global model), which are what a gradient step would move, and the server applies w + mean_{k∈G} Δ_k. The
scale of an update depends on the learning rate and the local steps, so a fixed σ is hard to choose;
``sigma=0`` (the default) estimates it each round from the updates themselves: 2σ̂ := the median over k of
the radius of the smallest ball around Δ_k that holds more than K/2 updates (a majority-honest estimate of
the honest spread: with α < 1/2 the median is attained by an honest ball). An estimate made from the
uploaded means is already on the mean's scale, so the auto mode applies R2 only. If no majority agrees
within r (S is empty) the round's update is skipped and the global model kept.

Left out: the SCSG variance-reduced server step (Alg. 1 lines 8–12: N_t ~ Geom(B_t/(B_t + b_t))
importance-weighted semi-stochastic gradient steps on trajectories the *server* samples at the current
policy) — the server half of a strategy here is a pure function of the uploads and has no environment to
sample from. Sample counts are ignored (as in the paper's unweighted mean and the robust rules here:
a Byzantine client could claim any count). Only policy-gradient agents are accepted (the paper's
bounded-variance assumption is about policy-gradient estimators).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.robust import flatten, pairwise_sq_distances, unflatten
from federation.types import FederationError, FitResult

POLICY_GRADIENT_AGENTS = ("reinforce", "ppo", "a2c")


def majority_radii(d: np.ndarray) -> np.ndarray:
    """Per row k of a distance matrix: the radius of the smallest ball around k holding > K/2 points (k
    itself included), i.e. the distance to its ⌊K/2⌋-th nearest other point (0 when K = 1)."""
    k = len(d) // 2
    if k == 0:
        return np.zeros(len(d))
    others = np.sort(d + np.diag(np.full(len(d), np.inf)), axis=1)
    return others[:, k - 1]


def filter_updates(x: np.ndarray, radius: float) -> tuple[list[int], int | None]:
    """One FedPG-Aggregate rule on the rows of ``x`` (K × d) with neighbourhood radius ``radius``:
    (indices of the accepted rows G, index of μ_mom); G is empty (and μ_mom None) when S is empty."""
    n = len(x)
    if n == 0:
        return [], None
    d = np.sqrt(pairwise_sq_distances(x))
    s = [i for i in range(n) if int(np.sum(d[i] <= radius)) > n / 2]
    if not s:
        return [], None
    centre = x[s].mean(axis=0)
    dist = np.linalg.norm(x[s] - centre, axis=1)
    best = dist.min()
    ties = [i for i, v in zip(s, dist, strict=True) if v == best]
    mom = min(ties, key=lambda i: x[i].tobytes())  # content order: the choice never depends on client order
    return [i for i in range(n) if d[i, mom] <= 2.0 * radius], mom


def fedpg_aggregate(x: np.ndarray, *, sigma: float, alpha: float, delta: float, batch: int,
                    ) -> tuple[list[int], str, float]:
    """The filter of Alg. 1.1 on update rows ``x``: (accepted row indices, rule used, radius r).

    ``sigma > 0``: R1 with r = 2σ√(2 log(2K/δ)/B), then R2 with r = 2σ if R1 keeps fewer than (1 − α)K.
    ``sigma = 0``: R2 with the estimated 2σ̂ = median of the majority radii (see the module docstring).
    """
    n = len(x)
    if n == 0:
        raise FederationError("fedpg-br: no updates to aggregate")
    if sigma > 0:
        v = 2.0 * math.log(2.0 * n / delta)
        r1 = 2.0 * sigma * math.sqrt(v / batch)
        good, _ = filter_updates(x, r1)
        if len(good) >= (1.0 - alpha) * n:
            return good, "R1", r1
        good, _ = filter_updates(x, 2.0 * sigma)
        return good, "R2", 2.0 * sigma
    r = float(np.median(majority_radii(np.sqrt(pairwise_sq_distances(x)))))
    good, _ = filter_updates(x, r)
    return good, "auto", r


class PolicyGradientHook(ClientHook):
    """Client half: plain local training, refused for agents that are not policy-gradient learners."""

    def attach(self, client: Client) -> None:
        if client.agent.name not in POLICY_GRADIENT_AGENTS:
            raise FederationError(f"fedpg-br filters policy-gradient updates; agent {client.agent.name!r} is not "
                                  f"one; allowed: {', '.join(POLICY_GRADIENT_AGENTS)}")


class FedPGBR(Strategy):
    """FedPG-BR's Byzantine filter on model updates (see the module docstring). ``history`` records, per
    round, which clients were accepted, the rule and the radius."""

    name = "fedpg-br"
    summary = "FedPG-BR Byzantine filter: keep updates near a majority 'vector median' (Fan et al. 2021)"

    def __init__(self, *, sigma: float = 0.0, alpha: float = 0.3, delta: float = 0.6, batch: int = 16) -> None:
        self.sigma = check_number("sigma", sigma, 0.0, 1e6)
        self.alpha = check_number("alpha", alpha, 0.0, 0.5)
        if self.alpha >= 0.5:
            raise FederationError(f"alpha={alpha!r} is out of range; allowed: number in [0, 0.5) "
                                  "(FedPG-BR tolerates fewer than half Byzantine agents)")
        self.delta = check_number("delta", delta, 0.0, 1.0, lo_open=True)
        if self.delta >= 1.0:
            raise FederationError(f"delta={delta!r} is out of range; allowed: number in (0, 1)")
        self.batch = int(check_number("batch", batch, 1, 1e9, integer=True))
        self.history: list[dict[str, Any]] = []

    def client_hook(self) -> ClientHook:
        return PolicyGradientHook()

    def params(self) -> dict[str, float | int | str]:
        return {"sigma": self.sigma, "alpha": self.alpha, "delta": self.delta, "batch": self.batch}

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        keys = list(weights)
        base = flatten([weights], keys)[0]
        x = flatten([r.weights for r in results], keys) - base
        good, rule, radius = fedpg_aggregate(x, sigma=self.sigma, alpha=self.alpha, delta=self.delta,
                                             batch=self.batch)
        self.history.append({"round": rnd, "accepted": sorted(results[i].client_id for i in good),
                             "rejected": sorted(r.client_id for i, r in enumerate(results) if i not in good),
                             "rule": rule, "radius": radius})
        if not good:
            return dict(weights)
        rows = sorted(good, key=lambda i: x[i].tobytes())  # sum in content order: order-invariant floats
        return unflatten(base + x[rows].mean(axis=0), weights, keys)
