"""Ditto (Li, Hu, Beirami, Smith 2021, "Ditto: Fair and Robust Federated Learning Through
Personalization", ICML, Alg. 1): the global model is trained as FedAvg; each client also keeps a personal
model v_k that minimises F_k(v) + (λ/2)·||v − w||², pulled toward the current global model w. The personal
model never leaves the client. Here each client splits its round's env steps evenly between the global and
the personal model, so Ditto uses the same number of samples as every other method.
"""

from __future__ import annotations

from agents.base import Agent, Weights
from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class PersonalModelHook(ClientHook):
    """Client half: half the steps train the shared model, half a personal model (own env copy) with the
    proximal pull v ← v − η(∇F_k(v) + λ(v − w)) toward the global model w just received."""

    def __init__(self, lam: float) -> None:
        self.lam = lam
        self.agent: Agent | None = None  # created on first use, from the client's model
        self._env = None

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        global_steps = max(1, steps // 2)
        used, stats = super().learn(client, global_steps)
        if steps - global_steps < 1:
            return used, stats
        if self.agent is None:
            self.agent = client.make_agent()
            self.agent.set_weights(client.agent.get_weights())
            self._env = client.new_env()
        self.agent.set_anchor(client.received)
        self.agent.set_proximal(self.lam)
        personal = self.agent.learn(self._env, steps - global_steps)
        stats.update({f"personal/{k}": v for k, v in personal.items()})
        return steps, stats

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        return self.agent or client.agent  # the client's own model until the first Ditto round

    def materialize(self, client: Client) -> None:
        if self.agent is None:
            self.agent, self._env = client.make_agent(), client.new_env()


class Ditto(FedAvg):
    name = "ditto"
    summary = "FedAvg + a personal model pulled toward the global one (Li et al. 2021)"

    def __init__(self, *, lam: float = 0.1) -> None:
        self.lam = check_number("lam", lam, 0.0, 1e6)

    def client_hook(self) -> ClientHook:
        return PersonalModelHook(self.lam)

    def params(self) -> dict[str, float | int | str]:
        return {"lam": self.lam}
