"""Environment embeddings (Jin, Peng, Yang, Wang, Zhang 2022, "Federated Reinforcement Learning with
Environment Heterogeneity", AISTATS, Sec. 5 "personalization"): every client feeds a learnable
low-dimensional embedding of its environment to a shared network together with the state; only the network
is averaged (FedAvg), the embedding stays on the client. A new client starts from the initial (zero)
embedding, the value every client started from.
"""

from __future__ import annotations

from collections.abc import Mapping

from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


class EnvEmbedding(FedAvg):
    name = "env-embedding"
    personal_prefixes = ("embedding",)

    def __init__(self, *, dim: int = 4) -> None:
        self.dim = int(check_number("dim", dim, 1, 1024, integer=True))

    @property
    def agent_overrides(self) -> Mapping[str, object]:  # type: ignore[override]
        return {"embedding_dim": self.dim}

    def params(self) -> dict[str, float | int | str]:
        return {"dim": self.dim}
