"""Similarity-weighted personalised aggregation, in the spirit of DPFed (Wu et al.) and FedAMP (Huang et al.
2021, "Personalized Cross-Silo Federated Learning on Non-IID Data", AAAI): the server builds, for every
client i, its own model u_i = Σ_j a_ij w_j from all clients' uploads, where the weights come from an
attention over update similarity, a_ij = softmax_j(cos(Δ_i, Δ_j) / T) and Δ_j = w_j − (model j received).
Clients whose environments pull their models the same way share more; dissimilar ones less. The global
model (for new clients and for reference) is plain FedAvg.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FitResult


def flatten(weights: Weights, keys: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.asarray(weights[k], dtype=np.float64).ravel() for k in keys])


def attention_weights(deltas: np.ndarray, temperature: float) -> np.ndarray:
    """Row-stochastic A with A_ij = softmax_j(cos(Δ_i, Δ_j) / T); rows of zero updates attend uniformly."""
    norms = np.linalg.norm(deltas, axis=1, keepdims=True)
    unit = np.divide(deltas, norms, out=np.zeros_like(deltas), where=norms > 0)
    logits = (unit @ unit.T) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


class Similarity(Strategy):
    name = "similarity"
    summary = "per-client aggregation weighted by update similarity (attention; FedAMP / DPFed spirit)"

    def __init__(self, *, temperature: float = 0.2) -> None:
        self.temperature = check_number("temperature", temperature, 0.0, 1e6, lo_open=True)
        self.personal: dict[int, Weights] = {}
        self.last_attention: np.ndarray | None = None

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        keys = sorted(weights)
        uploads = np.stack([flatten(r.weights, keys) for r in results])
        received = np.stack([flatten(self.personal.get(r.client_id, weights), keys) for r in results])
        attn = attention_weights(uploads - received, self.temperature)
        self.last_attention = attn
        mixed = attn @ uploads
        for row, r in zip(mixed, results, strict=True):
            out, i = {}, 0
            for k in keys:
                n = weights[k].size
                out[k] = row[i:i + n].reshape(weights[k].shape).astype(weights[k].dtype)
                i += n
            self.personal[r.client_id] = out
        return weighted_average([r.weights for r in results], [r.num_samples for r in results])

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        """Each client trains from and is scored with its own mixture u_i (FedAvg until it has one)."""
        return {c: self.personal.get(c, weights) for c in clients}

    def params(self) -> dict[str, float | int | str]:
        return {"temperature": self.temperature}
