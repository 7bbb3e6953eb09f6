"""Clustered FL: one model per group of similar clients.

IFCA (Ghosh, Chung, Yin, Ramchandran 2020, "An Efficient Framework for Clustered Federated Learning",
NeurIPS, Alg. 2): the server keeps K models and broadcasts all of them; each client picks the one with the
best objective on its own data (here: the greedy return of one evaluation episode on its env), trains it,
and the server averages each cluster's results. With ``groups`` given ("0,0,1,1": client i is in group
groups[i]) the assignment is declared instead of estimated — the environment-type grouping policy of
Nadiger, Kumar & Abdelhak 2019 ("Federated Reinforcement Learning for Fast Personalization").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitIns, FitResult


class IFCA(Strategy):
    name = "ifca"

    def __init__(self, *, num_clusters: int = 2, groups: str = "", init_noise: float = 0.01,
                 seed: int = 0) -> None:
        self.num_clusters = int(check_number("num_clusters", num_clusters, 1, 1000, integer=True))
        self.init_noise = check_number("init_noise", init_noise, 0.0, 10.0)
        self.groups: list[int] | None = None
        if groups:
            try:
                self.groups = [int(g) for g in str(groups).replace(";", ",").replace(" ", ",").split(",") if g]
            except ValueError:
                raise FederationError(f"groups={groups!r} must be integers like '0,0,1,1'") from None
            if any(not 0 <= g < self.num_clusters for g in self.groups):
                raise FederationError(f"groups={groups!r}: every group must be in [0, {self.num_clusters - 1}]")
        self._rng = np.random.default_rng(seed)
        self.models: list[Weights] = []
        self.assignment: dict[int, int] = {}

    def _ensure_models(self, weights: Weights) -> None:
        """Cluster models start from the global initialisation plus small distinct perturbations
        (IFCA needs distinct starting points to break the symmetry between clusters)."""
        if self.models:
            return
        for j in range(self.num_clusters):
            noise = 0.0 if j == 0 else self.init_noise
            self.models.append({k: (v + noise * self._rng.standard_normal(v.shape) *
                                    (float(np.std(v)) or 1.0)).astype(v.dtype) for k, v in weights.items()})

    def _group_of(self, client_id: int) -> int | None:
        if self.groups is not None:
            if client_id >= len(self.groups):
                raise FederationError(f"groups lists {len(self.groups)} clients; client {client_id} has none")
            return self.groups[client_id]
        return self.assignment.get(client_id)

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        self._ensure_models(weights)
        out = []
        for c in clients:
            g = self._group_of(c)
            if self.groups is not None and g is not None:
                out.append(FitIns(c, self.models[g], {"round": rnd}))
            else:  # estimated assignment: send every cluster model, the client picks
                packed = {f"c{j}/{k}": v for j, m in enumerate(self.models) for k, v in m.items()}
                out.append(FitIns(c, packed, {"round": rnd, "select_from": self.num_clusters}))
        return out

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        self._ensure_models(weights)
        validate_results(weights, results)
        members: dict[int, list[FitResult]] = {}
        for r in results:
            g = self._group_of(r.client_id) if self.groups is not None else int(r.metrics["ifca/cluster"])
            self.assignment[r.client_id] = g
            members.setdefault(g, []).append(r)
        for g, rs in members.items():
            self.models[g] = weighted_average([r.weights for r in rs], [r.num_samples for r in rs])
        # The "global" model reported for the run: the sample-weighted mean of all cluster results.
        return weighted_average([r.weights for r in results], [r.num_samples for r in results])

    def client_model(self, client_id: int, weights: Weights) -> Weights:
        g = self._group_of(client_id)
        return self.models[g] if (g is not None and self.models) else weights

    def params(self) -> dict[str, float | int | str]:
        return {"num_clusters": self.num_clusters, "init_noise": self.init_noise,
                "groups": ",".join(map(str, self.groups)) if self.groups else ""}
