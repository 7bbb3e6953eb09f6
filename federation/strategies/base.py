"""The Strategy contract (Flower's vocabulary): configure a round, then aggregate its results.

A strategy is a pure function of updates → new global state; it never touches an env or an agent. The
aggregation math lives in module-level functions so it can be tested against hand-computed arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from agents.base import Weights
from federation.types import FederationError, FitIns, FitResult


class Strategy(ABC):
    """Base class: broadcast the global weights to every sampled client, aggregate what comes back."""

    name: str = "strategy"
    #: False for strategies that never share weights (``local``): there is no global model to evaluate.
    federated: bool = True

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        return [FitIns(client_id=c, weights=weights, config={"round": rnd}) for c in clients]

    @abstractmethod
    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        """Return the new global weights from the round's results."""

    def params(self) -> dict[str, float | int | str]:
        """Hyperparameters, recorded in config.json."""
        return {}


def validate_results(weights: Mapping[str, np.ndarray], results: Sequence[FitResult]) -> None:
    """Refuse updates that do not match the global model or carry NaN/inf, naming client and key.

    Why: one malformed or diverged client must not silently poison the global model.
    """
    if not results:
        raise FederationError("no client results to aggregate (every sampled client dropped out)")
    for r in results:
        if r.num_samples <= 0:
            raise FederationError(f"client {r.client_id} reported num_samples={r.num_samples}; must be > 0")
        missing = set(weights) - set(r.weights)
        extra = set(r.weights) - set(weights)
        if missing or extra:
            raise FederationError(
                f"client {r.client_id} update keys do not match the global model: "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        for k, v in r.weights.items():
            if v.shape != weights[k].shape:
                raise FederationError(
                    f"client {r.client_id} update {k!r} has shape {v.shape}; expected {weights[k].shape}"
                )
            if not np.all(np.isfinite(v)):
                raise FederationError(f"client {r.client_id} update {k!r} contains NaN or inf")
