"""Local (independent) training: the same agents with the same samples, but nothing is shared.

This is the reference every federated method must beat — it shows what federation bought (or cost) each
client. Nothing is broadcast or uploaded and the server holds no model, so no ``global`` score exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy
from federation.types import FitResult


class KeepLocalHook(ClientHook):
    """Client half: train, upload nothing."""

    def upload(self, client: Client) -> Weights:
        return {}


class Local(Strategy):
    name = "local"
    summary = "independent agents, same samples, no aggregation (the reference point)"

    def client_hook(self) -> ClientHook:
        return KeepLocalHook()

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        return {}

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        return weights
