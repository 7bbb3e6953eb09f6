"""A centralised reference: one model trained on every client's env in turn (the weights are passed from
client to client within a round, cyclically; each client keeps its own replay buffer). It sees the same
samples as the federated methods but with no averaging, as if one agent visited every environment.

The model travelling from client to client is the method's client-side state, so all clients share one
hook: it hands each client the model the previous client finished with. The server half only records it.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, validate_results
from federation.types import FitIns, FitResult


class TravellingModelHook(ClientHook):
    """Shared by every client: load the model the last client uploaded (the broadcast before anyone has)."""

    def __init__(self) -> None:
        self.carried: Weights | None = None

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        return dict(self.carried if self.carried is not None else ins.weights), {}

    def upload(self, client: Client) -> Weights:
        self.carried = client.agent.get_shared_weights()
        return self.carried


class Central(Strategy):
    name = "central"
    summary = "one model trained on every client's env in turn (centralised reference)"

    def __init__(self) -> None:
        self._hook = TravellingModelHook()

    def client_hook(self) -> ClientHook:
        return self._hook

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        return {k: results[-1].weights.get(k, v) for k, v in weights.items()}
