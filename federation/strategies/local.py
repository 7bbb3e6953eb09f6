"""Local (independent) training: the same agents with the same samples, but nothing is shared.

This is the reference every federated method must beat — it shows what federation bought (or cost) each
client. No weights are broadcast and the "global" model stays untouched, so it is never evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Weights
from federation.strategies.base import Strategy
from federation.types import FitIns, FitResult


class Local(Strategy):
    name = "local"
    federated = False

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        return [FitIns(client_id=c, weights={}, config={"round": rnd}) for c in clients]

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        return weights
