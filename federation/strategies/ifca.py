"""Clustered FL: one model per group of similar clients.

IFCA (Ghosh, Chung, Yin, Ramchandran 2020, "An Efficient Framework for Clustered Federated Learning",
NeurIPS, Alg. 2): the server keeps K models and broadcasts all of them; each client picks the one with the
best objective on its own data (here: the greedy return of evaluation episodes on its env), trains it, and
the server averages each cluster's results. With ``groups`` given ("0,0,1,1": client i is in group
groups[i]) the assignment is declared instead of estimated — the environment-type grouping policy of
Nadiger, Kumar & Abdelhak 2019 ("Federated Reinforcement Learning for Fast Personalization").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitIns, FitResult


def pack_clusters(models: Sequence[Weights]) -> Weights:
    """K models → one broadcast ``{"c0/body.0.weight": …, "c1/…"}``."""
    return {f"c{j}/{k}": v for j, m in enumerate(models) for k, v in m.items()}


def split_clusters(weights: Mapping[str, np.ndarray]) -> list[Weights]:
    """The inverse of :func:`pack_clusters`."""
    out: dict[int, Weights] = {}
    for key, value in weights.items():
        head, _, name = key.partition("/")
        out.setdefault(int(head[1:]), {})[name] = value
    return [out[j] for j in sorted(out)]


class ClusterChoiceHook(ClientHook):
    """Client half: from a packed broadcast, keep the cluster model whose greedy return on this client's env
    is highest; a single-model broadcast (declared groups) is loaded as is.

    Greedy returns tie often in RL (near-identical starting models act alike), and always taking the lowest
    index sent every client to cluster 0 and never separated them. Ties go to the tied model nearest (L2) to
    the client's own current model: the one its own data has pulled it toward, a stand-in for IFCA's lowest
    local loss; remaining ties are broken at random (the client's rng).
    """

    def __init__(self, episodes: int) -> None:
        self.episodes = episodes

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        if not any(k.startswith("c0/") for k in ins.weights):
            return dict(ins.weights), {}
        models = split_clusters(ins.weights)
        seeds = [int(s) for s in client.rng.integers(2**31 - 1, size=self.episodes)]
        scores = [client.evaluate(m, seeds)["return"] for m in models]
        top = np.flatnonzero(np.asarray(scores) == max(scores))
        if len(top) > 1:
            own = client.agent.get_weights()
            dist = np.array([sum(float(np.sum((models[j][k] - own[k]) ** 2)) for k in models[j]) for j in top])
            top = top[dist == dist.min()]
        best = int(top[0] if len(top) == 1 else client.rng.choice(top))
        return models[best], {"ifca/cluster": float(best)}


class IFCA(Strategy):
    name = "ifca"
    summary = ("clustered FL: K models, each client picks the best (Ghosh et al. 2020); groups= for declar"
               "ed types")

    def __init__(self, *, num_clusters: int = 2, groups: str = "", init_noise: float = 0.01,
                 choice_episodes: int = 1) -> None:
        self.num_clusters = int(check_number("num_clusters", num_clusters, 1, 1000, integer=True))
        self.init_noise = check_number("init_noise", init_noise, 0.0, 10.0)
        self.choice_episodes = int(check_number("choice_episodes", choice_episodes, 1, 1000, integer=True))
        self.groups: list[int] | None = None
        if str(groups) != "":  # "ifca:groups=0" arrives as the integer 0: one client in group 0, not "no groups"
            try:
                self.groups = [int(g) for g in str(groups).replace(";", ",").replace(" ", ",").split(",") if g]
            except ValueError:
                raise FederationError(f"groups={groups!r} must be integers like '0,0,1,1'") from None
            if any(not 0 <= g < self.num_clusters for g in self.groups):
                raise FederationError(f"groups={groups!r}: every group must be in [0, {self.num_clusters - 1}]")
        self.models: list[Weights] = []
        self.assignment: dict[int, int] = {}

    def check_federation(self, n_clients: int, per_round: int) -> None:
        if self.num_clusters > n_clients:
            raise FederationError(f"ifca: num_clusters={self.num_clusters} is more than the {n_clients} clients; "
                                  f"allowed: num_clusters in [1, {n_clients}]")
        if self.groups is not None and len(self.groups) != n_clients:
            raise FederationError(f"ifca: groups lists {len(self.groups)} clients for a run of {n_clients}; "
                                  f"allowed: one group per client")

    def client_hook(self) -> ClientHook:
        return ClusterChoiceHook(self.choice_episodes)

    def _ensure_models(self, weights: Weights) -> None:
        """Cluster models start from the global initialisation plus small distinct perturbations
        (IFCA needs distinct starting points to break the symmetry between clusters)."""
        if self.models:
            return
        if self.rng is None:
            raise FederationError("ifca: call reseed(SeedSequence) before the first round")
        for j in range(self.num_clusters):
            noise = 0.0 if j == 0 else self.init_noise
            self.models.append({k: (v + noise * self.rng.standard_normal(v.shape) *
                                    (float(np.std(v)) or 1.0)).astype(v.dtype) for k, v in weights.items()})

    def _group_of(self, client_id: int) -> int | None:
        if self.groups is not None:
            if client_id >= len(self.groups):
                raise FederationError(f"groups lists {len(self.groups)} clients; client {client_id} has none")
            return self.groups[client_id]
        return self.assignment.get(client_id)

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        self._ensure_models(weights)
        if self.groups is not None:
            return [FitIns(c, self.models[self._group_of(c)], {"round": rnd}) for c in clients]
        packed = pack_clusters(self.models)  # estimated assignment: every cluster model, the client picks
        return [FitIns(c, packed, {"round": rnd}) for c in clients]

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

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        """Each client is scored with its cluster's model (the global mean until it has chosen one)."""
        out = {}
        for c in clients:
            g = self._group_of(c)
            out[c] = self.models[g] if (g is not None and self.models) else weights
        return out

    def params(self) -> dict[str, float | int | str]:
        return {"num_clusters": self.num_clusters, "init_noise": self.init_noise,
                "choice_episodes": self.choice_episodes,
                "groups": ",".join(map(str, self.groups)) if self.groups else ""}
