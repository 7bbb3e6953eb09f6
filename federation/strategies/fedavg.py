"""FedAvg (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
Data", Alg. 1): the new global model is the sample-weighted mean of the clients' models,
w ← Σ_k (n_k / n) · w_k. Applied to Q-networks this is QAvg (Jin et al. 2022) / In-Edge AI's FL-DDQN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.strategies.base import Strategy, validate_results
from federation.types import FederationError, FitResult


def weighted_average(updates: Sequence[Weights], num_samples: Sequence[int]) -> Weights:
    """Σ_k (n_k / Σn) · w_k per key, accumulated in float64 and returned in each key's dtype."""
    if len(updates) != len(num_samples) or not updates:
        raise FederationError(f"need one sample count per update, got {len(updates)} and {len(num_samples)}")
    counts = np.asarray(num_samples, dtype=np.float64)
    if np.any(counts <= 0):
        raise FederationError(f"sample counts must be > 0, got {list(num_samples)}")
    coeffs = counts / counts.sum()
    out: Weights = {}
    for key, ref in updates[0].items():
        acc = np.zeros(ref.shape, dtype=np.float64)
        for c, u in zip(coeffs, updates, strict=True):
            acc += c * u[key]
        out[key] = acc.astype(ref.dtype, copy=False)
    return out


class FedAvg(Strategy):
    name = "fedavg"
    summary = "sample-weighted mean of client models (McMahan et al. 2017); QAvg for Q-networks"

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        new = weighted_average([r.weights for r in results], [r.num_samples for r in results])
        return {k: new.get(k, v) for k, v in weights.items()}
