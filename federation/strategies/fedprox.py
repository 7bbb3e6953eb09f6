"""FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", MLSys, eq. 2): clients
minimise F_k(w) + (μ/2)·||w − w^t||² so heterogeneous local objectives cannot drag their models far from the
global one; the server aggregates as FedAvg.
"""

from __future__ import annotations

from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class ProximalHook(ClientHook):
    """Client half: train with the proximal term around the model just received."""

    def __init__(self, mu: float) -> None:
        self.mu = mu

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        client.agent.set_proximal(self.mu)  # anchored at the weights loaded this round
        return super().learn(client, steps)


class FedProx(FedAvg):
    name = "fedprox"
    summary = "FedAvg + client proximal term (mu/2)||w - w_global||^2 (Li et al. 2020)"

    def __init__(self, *, mu: float = 0.1) -> None:
        self.mu = check_number("mu", mu, 0.0, 1e6)

    def client_hook(self) -> ClientHook:
        return ProximalHook(self.mu)

    def params(self) -> dict[str, float | int | str]:
        return {"mu": self.mu}
