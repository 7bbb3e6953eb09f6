"""Shared body, personal head.

FedPer (Arivazhagan et al. 2019, "Federated Learning with Personalization Layers"): only the base layers
are averaged; each client keeps its own head, so its model is the global body + its head. FedRep (Collins
et al. 2021, "Exploiting Shared Representations for Personalized Federated Learning", ICML, Alg. 1): same
split, but each local round first trains the head with the body frozen, then the body with the head frozen.
"""

from __future__ import annotations

from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class FedPer(FedAvg):
    """Each agent knows its own heads (``personal="head"``: DQN's Q head, actor/critic heads and log σ)."""

    name = "fedper"
    agent_overrides = {"personal": "head"}


class FedRep(FedPer):
    name = "fedrep"

    def __init__(self, *, head_fraction: float = 0.5) -> None:
        self.head_fraction = check_number("head_fraction", head_fraction, 0.0, 1.0, lo_open=True)

    def fit_config(self, rnd: int) -> dict[str, float | int | str]:
        return {"fedrep_head_fraction": self.head_fraction}

    def params(self) -> dict[str, float | int | str]:
        return {"head_fraction": self.head_fraction}
