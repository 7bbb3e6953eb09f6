"""UCB participant selection with a shared body and personal dueling head, after Cao et al. (IEEE TWC 2022).

Reference: Y. Cao, S.-Y. Lien, Y.-C. Liang, K.-C. Chen, X. Shen, "User Access Control in Open Radio Access
Networks: A Federated Deep Reinforcement Learning Approach", IEEE Trans. Wireless Commun. 21(6), 3721-3736,
2022. Their abstract: a global model server in the RIC updates the DQN parameters trained by the UEs; "the
upper confidence bound (UCB) algorithm to select the optimal UE set and a dueling structure to decompose the
DQN parameters" keep the signalling overhead acceptable. Only the abstract was reachable here, so the two
pieces are built from their standard forms and the exact variants of the paper are not claimed:

* **Participant selection** (server half). Every client trains every round (UEs keep learning locally); the
  server picks the m = max(1, round(``select_fraction`` x n)) clients that *upload*, as a multiple-play
  bandit whose arms are the clients: the top-m clients by the UCB1 index (Auer, Cesa-Bianchi & Fischer 2002,
  "Finite-time Analysis of the Multiarmed Bandit Problem", Mach. Learn. 47, Fig. 1; top-m selection as in the
  combinatorial UCB of Chen, Wang & Yuan, ICML 2013)::

      U_k = mean_k + c * spread * sqrt(2 ln t / n_k)

  with n_k the rounds client k has uploaded, mean_k the mean of what it reported then (``metric``, by default
  its mean training-episode return of the round), t the total number of uploads so far, and ``spread`` the
  range (max - min) of every value reported so far (UCB1 assumes rewards in [0, 1]; returns are not, so the
  bonus is scaled by their observed range; 1 before two values are seen). A client never selected has
  U = +inf, so every client is tried before any is repeated; ties are broken by the strategy's seeded rng.
  Only the selected clients report (bandit feedback); the new global model is the FedAvg (McMahan et al.
  2017) of the selected clients' uploads.
* **Shared part only** (``share="body"``, the default): agents are built with ``personal="head"``, so a
  dueling DQN's value and advantage streams (``head.value.*``, ``head.advantage.*``, Wang et al. 2016) stay on
  the client and only the feature body is uploaded and averaged, the FedPer split (Arivazhagan et al. 2019)
  of ``agents.dqn``. ``share="all"`` uploads the whole network (UCB-selected FedAvg).

Non-selected clients upload nothing (0 bytes up in ``comm/bytes_up``); the simulated round time still plans an
upload for every trained client (the scheduler is told before the selection is known to it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitIns, FitResult

SHARE_MODES = ("body", "all")


def ucb_scores(means: np.ndarray, counts: np.ndarray, total: int, c: float, spread: float) -> np.ndarray:
    """UCB1 index per arm: mean + c·spread·sqrt(2 ln t / n); +inf for an arm never played (n = 0)."""
    means = np.asarray(means, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    out = np.full(means.shape, np.inf)
    played = counts > 0
    if played.any():
        bonus = c * spread * np.sqrt(2.0 * math.log(max(total, 1)) / counts[played])
        out[played] = means[played] + bonus
    return out


class UploadSelectionHook(ClientHook):
    """Client half: trains every round, uploads its shared weights only when the server selected it."""

    def __init__(self, needs_personal: bool) -> None:
        self.needs_personal = needs_personal
        self.selected = True

    def attach(self, client: Client) -> None:
        if self.needs_personal and not client.agent.personal_prefixes:
            raise FederationError("ucb with share=body needs agents built with personal='head' (the scenario "
                                  "runner does this from strategy.agent_overrides)")

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        self.selected = bool(ins.config.get("upload", 1))
        return dict(ins.weights), {"ucb/selected": float(self.selected)}

    def upload(self, client: Client) -> Weights:
        return client.agent.get_shared_weights() if self.selected else {}


class UCB(Strategy):
    """FedAvg over the clients the UCB1 index selects each round; optionally a personal dueling head."""

    name = "ucb"
    summary = ("UCB1-selected uploaders, FedAvg of the shared body, personal dueling head "
               "(Cao et al. 2022, O-RAN access)")

    def __init__(self, *, select_fraction: float = 0.5, c: float = 1.0, share: str = "body",
                 metric: str = "train/episode_return") -> None:
        self.select_fraction = check_number("select_fraction", select_fraction, 0.0, 1.0, lo_open=True)
        self.c = check_number("c", c, 0.0, 1e6)
        if share not in SHARE_MODES:
            raise FederationError(f"share={share!r} is not known; allowed: {', '.join(SHARE_MODES)}")
        if not isinstance(metric, str) or not metric:
            raise FederationError(f"metric={metric!r} must be the name of a client training metric")
        self.share = share
        self.metric = metric
        self.agent_overrides = {"personal": "head"} if share == "body" else {}
        self._sums: dict[int, float] = {}
        self._counts: dict[int, int] = {}
        self._lo, self._hi = math.inf, -math.inf
        self._selected: set[int] = set()
        self.history: list[list[int]] = []  # the selected clients of every round

    def client_hook(self) -> ClientHook:
        return UploadSelectionHook(self.share == "body")

    # ----- selection -------------------------------------------------------------------------------------
    def scores(self, clients: Sequence[int]) -> np.ndarray:
        """The UCB1 index of each client in ``clients`` (in that order)."""
        counts = np.array([self._counts.get(c, 0) for c in clients], dtype=np.float64)
        means = np.array([self._sums.get(c, 0.0) / max(self._counts.get(c, 0), 1) for c in clients])
        spread = self._hi - self._lo if self._hi > self._lo else 1.0
        return ucb_scores(means, counts, sum(self._counts.values()), self.c, spread)

    def select(self, clients: Sequence[int]) -> list[int]:
        """The top-m clients by UCB index, ties in a random order (the strategy's seeded rng)."""
        clients = list(clients)
        m = max(1, int(round(self.select_fraction * len(clients))))
        rng = self.rng if self.rng is not None else np.random.default_rng(np.random.SeedSequence(0))
        order = rng.permutation(len(clients))                  # random tie-break ...
        s = self.scores(clients)[order]
        ranked = order[np.argsort(-s, kind="stable")]           # ... kept by a stable sort on the index
        return sorted(clients[i] for i in ranked[:m])

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        chosen = set(self.select(clients)) if clients else set()
        self._selected = chosen
        self.history.append(sorted(chosen))
        return [FitIns(client_id=c, weights=weights, config={"round": rnd, "upload": int(c in chosen)})
                for c in clients]

    # ----- aggregation -----------------------------------------------------------------------------------
    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        part = [r for r in results if r.client_id in self._selected and r.weights]
        for r in part:
            v = r.metrics.get(self.metric)
            if v is not None and math.isfinite(float(v)):
                v = float(v)
                self._sums[r.client_id] = self._sums.get(r.client_id, 0.0) + v
                self._counts[r.client_id] = self._counts.get(r.client_id, 0) + 1
                self._lo, self._hi = min(self._lo, v), max(self._hi, v)
        if not part:  # every selected client dropped out: keep the model
            return weights
        validate_results(weights, part)
        new = weighted_average([r.weights for r in part], [r.num_samples for r in part])
        return {k: new.get(k, v) for k, v in weights.items()}

    def params(self) -> dict[str, float | int | str]:
        return {"select_fraction": self.select_fraction, "c": self.c, "share": self.share, "metric": self.metric}
