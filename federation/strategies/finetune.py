"""FedAvg + local fine-tuning before evaluation (the simplest personalisation baseline; e.g. Wang et al.
2019, "Federated Evaluation of On-device Personalization"): each client evaluates the global model after
``steps`` local training steps on its own env (its replay data and optimiser state included).
"""

from __future__ import annotations

from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class Finetune(FedAvg):
    name = "finetune"
    personalization = "finetune"

    def __init__(self, *, steps: int = 500) -> None:
        self.steps = int(check_number("steps", steps, 1, 1e9, integer=True))

    def params(self) -> dict[str, float | int | str]:
        return {"steps": self.steps}
