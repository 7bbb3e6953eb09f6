"""Ditto (Li, Hu, Beirami, Smith 2021, "Ditto: Fair and Robust Federated Learning Through
Personalization", ICML, Alg. 1): the global model is trained as FedAvg; each client also keeps a personal
model v_k that minimises F_k(v) + (λ/2)·||v − w||², pulled toward the current global model w. The personal
model never leaves the client. Here each client splits its round's env steps evenly between the global and
the personal model, so Ditto uses the same number of samples as every other method.
"""

from __future__ import annotations

from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class Ditto(FedAvg):
    name = "ditto"
    personalization = "ditto"

    def __init__(self, *, lam: float = 0.1) -> None:
        self.lam = check_number("lam", lam, 0.0, 1e6)

    def fit_config(self, rnd: int) -> dict[str, float | int | str]:
        return {"ditto_lambda": self.lam}

    def params(self) -> dict[str, float | int | str]:
        return {"lam": self.lam}
