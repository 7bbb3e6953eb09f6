"""FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", MLSys, eq. 2): clients
minimise F_k(w) + (μ/2)·||w − w^t||² so heterogeneous local objectives cannot drag their models far from the
global one; the server aggregates as FedAvg.
"""

from __future__ import annotations

from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class FedProx(FedAvg):
    name = "fedprox"
    supports_async = True

    def __init__(self, *, mu: float = 0.1) -> None:
        self.mu = check_number("mu", mu, 0.0, 1e6)

    def fit_config(self, rnd: int) -> dict[str, float | int | str]:
        return {"prox_mu": self.mu}

    def params(self) -> dict[str, float | int | str]:
        return {"mu": self.mu}
