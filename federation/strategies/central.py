"""A centralised reference: one model trained on every client's env in turn (the weights are passed from
client to client within a round, cyclically; each client keeps its own replay buffer). It sees the same
samples as the federated methods but with no averaging, as if one agent visited every environment.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Weights
from federation.strategies.base import Strategy, validate_results
from federation.types import FitResult


class Central(Strategy):
    name = "central"
    sequential = True

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        return {k: results[-1].weights.get(k, v) for k, v in weights.items()}
