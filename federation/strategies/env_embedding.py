"""Environment embeddings (Jin, Peng, Yang, Wang, Zhang 2022, "Federated Reinforcement Learning with
Environment Heterogeneity", AISTATS, Sec. 5 "personalization"): every client feeds a learnable
low-dimensional embedding of its environment to a shared network together with the state; only the network
is averaged (FedAvg), the embedding stays on the client's model. A new client starts from the mean of the
existing clients' embeddings (Jin et al.'s initialisation for unseen environments): for that, clients
report their embedding vector (``dim`` numbers, not the network) in the round's metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg
from federation.types import FederationError, FitResult


class EmbeddingReportHook(ClientHook):
    """Client half: the agent's ``embedding`` parameter is personal (it names it so itself); its values are
    reported with each upload so the server can initialise newcomers."""

    def attach(self, client: Client) -> None:
        if "embedding" not in client.agent.get_weights() or not client.agent.is_personal("embedding"):
            raise FederationError("env-embedding needs agents built with embedding_dim > 0 and a personal "
                                  "'embedding' parameter")

    def report(self, client: Client) -> dict[str, float]:
        emb = client.agent.get_weights()["embedding"]
        return {f"embedding/{i}": float(v) for i, v in enumerate(emb.ravel())}


class EnvEmbedding(FedAvg):
    name = "env-embedding"
    summary = "shared network + personal learnable environment embedding (Jin et al. 2022)"

    def __init__(self, *, dim: int = 4) -> None:
        self.dim = int(check_number("dim", dim, 1, 1024, integer=True))
        self.embeddings: dict[int, np.ndarray] = {}

    @property
    def agent_overrides(self) -> Mapping[str, object]:  # type: ignore[override]
        return {"embedding_dim": self.dim}

    def client_hook(self) -> ClientHook:
        return EmbeddingReportHook()

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        for r in results:
            vec = [r.metrics.get(f"embedding/{i}") for i in range(self.dim)]
            if all(v is not None for v in vec):
                self.embeddings[r.client_id] = np.asarray(vec, dtype=np.float32)
        return super().aggregate_train(rnd, weights, results)

    def new_client_personal_weights(self) -> Weights:
        """What a client joining later starts from: the mean of the known clients' embeddings."""
        if not self.embeddings:
            return {"embedding": np.zeros(self.dim, dtype=np.float32)}
        return {"embedding": np.mean(np.stack(list(self.embeddings.values())), axis=0).astype(np.float32)}

    def params(self) -> dict[str, float | int | str]:
        return {"dim": self.dim}
