"""FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous Aggregation", AISTATS, Alg. 1):
the server buffers K client deltas Δ_i = w_i − (the version client i trained from) and publishes
w ← w + η_g · (1/K) · Σ_i s(τ_i) · Δ_i, with the staleness discount s(τ) = 1/√(1+τ) (§3). It is the
strategy for ``--round-policy buffered-async:k=K`` (the policy times who arrives when; this module
aggregates); in synchronous rounds every τ is 0 and it is FedAvg of deltas with a server step η_g.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.devices import staleness_weight
from federation.strategies.base import Strategy, check_number, validate_results
from federation.types import FederationError, FitIns, FitResult


def fedbuff_update(weights: Weights, deltas: Sequence[Weights], coeffs: Sequence[float],
                   eta: float = 1.0) -> Weights:
    """w ← w + η_g · (1/K) · Σ_i c_i · Δ_i over the K buffered deltas (c_i = s(τ_i)). Accumulates in float64."""
    if not deltas or len(deltas) != len(coeffs):
        raise FederationError(f"need one coefficient per delta, got {len(deltas)} and {len(coeffs)}")
    out: Weights = {}
    for key, w in weights.items():
        acc = np.zeros(w.shape, dtype=np.float64)
        for c, d in zip(coeffs, deltas, strict=True):
            if key in d:
                acc += c * d[key]
        out[key] = (w + eta * acc / len(deltas)).astype(w.dtype)
    return out


class FedBuff(Strategy):
    name = "fedbuff"
    summary = "staleness-weighted buffered deltas + server step (Nguyen et al. 2022); for buffered-async"
    accepts_stale = True

    def __init__(self, *, server_lr: float = 1.0) -> None:
        self.server_lr = check_number("server_lr", server_lr, 0.0, 100.0, lo_open=True)
        self._sent: dict[int, Weights] = {}  # the version each client last trained from

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        out = super().configure_train(rnd, weights, clients)
        self._sent.update({ins.client_id: ins.weights for ins in out})
        return out

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results, repeats=True)
        deltas = [{k: r.weights[k].astype(np.float64) - self._sent[r.client_id][k] for k in weights}
                  for r in results]
        return fedbuff_update(weights, deltas, [staleness_weight(r.staleness) for r in results], self.server_lr)

    def params(self) -> dict[str, float | int | str]:
        return {"server_lr": self.server_lr}
