"""FedAvg + local fine-tuning before evaluation (the simplest personalisation baseline; e.g. Wang et al.
2019, "Federated Evaluation of On-device Personalization"): each client evaluates the global model after
``steps`` local training steps on its own env (its replay data and optimiser state included).
"""

from __future__ import annotations

import copy

from agents.base import Agent, Weights
from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class FinetuneHook(ClientHook):
    """Client half: the personal model is a copy of the client's agent (replay data and optimiser included)
    loaded with the server's model and trained ``steps`` more on a separate env copy; the client's own
    state is untouched."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self._env = None

    def materialize(self, client: Client) -> None:
        if self._env is None:
            self._env = client.new_env()

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        tuned = copy.deepcopy(client.agent)
        if weights:
            tuned.set_weights(weights)
        if self._env is None:
            self._env = client.new_env()
        tuned.learn(self._env, self.steps)
        return tuned


class Finetune(FedAvg):
    name = "finetune"
    summary = "FedAvg, then k local steps before evaluation"

    def __init__(self, *, steps: int = 500) -> None:
        self.steps = int(check_number("steps", steps, 1, 1e9, integer=True))

    def client_hook(self) -> ClientHook:
        return FinetuneHook(self.steps)

    def params(self) -> dict[str, float | int | str]:
        return {"steps": self.steps}
