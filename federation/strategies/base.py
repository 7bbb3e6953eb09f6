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
    #: Parameter-name prefixes this strategy keeps on the clients (FedPer heads, environment embeddings).
    personal_prefixes: tuple[str, ...] = ()
    #: Agent hyperparameters the strategy needs (e.g. an environment-embedding size).
    agent_overrides: Mapping[str, object] = {}
    #: How a client's personalised model is evaluated: "none" (the client's model from the server is the
    #: personalised one), "ditto" (a separate personal model) or "finetune" (server model + local steps).
    personalization: str = "none"
    #: Whether the buffered-asynchronous round policy can drive this strategy (FedBuff-style updates).
    supports_async: bool = False

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        return [FitIns(client_id=c, weights=self.client_model(c, weights), config={"round": rnd,
                                                                                  **self.fit_config(rnd)})
                for c in clients]

    def fit_config(self, rnd: int) -> dict[str, float | int | str]:
        """Extra instructions for the clients' local training this round (see federation.client)."""
        return {}

    def client_model(self, client_id: int, weights: Weights) -> Weights:
        """The model the server holds for ``client_id`` (the global one, unless the strategy keeps
        per-client or per-cluster models). Evaluated on the client as its federated model."""
        return weights

    @abstractmethod
    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        """Return the new global weights from the round's results."""

    def params(self) -> dict[str, float | int | str]:
        """Hyperparameters, recorded in config.json."""
        return {}


def check_number(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False,
                 integer: bool = False) -> float:
    """Validate a strategy parameter; the error names it, the bad value and the allowed range."""
    import math

    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
        ok = ok and (not integer or v == int(v))
    if not ok:
        kind = "integer" if integer else "number"
        raise FederationError(f"{name}={value!r} is out of range; allowed: {kind} in "
                              f"{'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return float(value)  # type: ignore[arg-type]


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
