"""The Strategy contract (Flower's vocabulary): configure a round, aggregate its results, say which model each
client is scored with — and the client half of the method (:class:`~federation.client.ClientHook`).

A strategy's server half is a pure function of updates → new global state; it never touches an env or an
agent. Its client half is a hook object the round loop installs on every client. The aggregation math lives
in module-level functions so it can be tested against hand-computed arrays.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from agents.base import Weights
from federation.client import ClientHook
from federation.faults import screen_result
from federation.types import FederationError, FitIns, FitResult


class Strategy(ABC):
    """Base class: send every sampled client the model the server holds for it, aggregate what comes back."""

    name: str = "strategy"
    #: one line for ``frl list``, citing the method's paper
    summary: str = ""
    #: Agent hyperparameters the method needs (a personal head, an environment-embedding size): the one road
    #: by which a method decides which parameters are personal; the agent then names them itself.
    agent_overrides: Mapping[str, object] = {}
    #: Whether results trained from an older global version are aggregated correctly (buffered-async rounds).
    accepts_stale: bool = False
    #: The strategy's randomness, spawned from the run's seed by :meth:`reseed` (no constant seeds).
    rng: np.random.Generator | None = None

    def reseed(self, seed: np.random.SeedSequence) -> None:
        """Take this run's child of the scenario seed; the round loop calls it before the first round."""
        self.rng = np.random.default_rng(seed)

    def client_hook(self) -> ClientHook:
        """A new client half for one client (the default: plain local training, shared weights uploaded)."""
        return ClientHook()

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        """One instruction per sampled client: by default the model the server holds for it."""
        models = self.configure_evaluate(rnd, weights, clients)
        return [FitIns(client_id=c, weights=models.get(c, {}), config={"round": rnd}) for c in clients]

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        """The server's model for each client, scored on it as its ``global`` model (combined with its personal
        parameters). An empty mapping means the method has no server model (independent learners)."""
        return {c: weights for c in clients}

    #: the round loop screens each upload against the model (keys, shapes, finite values) unless a wrapper
    #: uploads something else on purpose (secure aggregation's masked vectors) and checks it itself
    screen_uploads: bool = True

    def round_metrics(self, rnd: int) -> dict[str, float]:
        """The server half's own records for round ``rnd`` (e.g. privacy spent), written at client −1."""
        return {}

    def check_federation(self, n_clients: int, per_round: int) -> None:
        """Refuse, before any training, a federation this method cannot aggregate (``FederationError``):
        ``n_clients`` clients, ``per_round`` of them sampled each round. Nothing to check by default."""
        return None

    @abstractmethod
    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        """Return the new global weights from the round's results."""

    def params(self) -> dict[str, float | int | str]:
        """Hyperparameters, recorded in config.json."""
        return {}


def check_number(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False,
                 integer: bool = False) -> float:
    """Validate a strategy parameter; the error names it, the bad value and the allowed range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
        ok = ok and (not integer or v == int(v))
    if not ok:
        kind = "integer" if integer else "number"
        raise FederationError(f"{name}={value!r} is out of range; allowed: {kind} in "
                              f"{'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return float(value)  # type: ignore[arg-type]


def validate_results(weights: Mapping[str, np.ndarray], results: Sequence[FitResult], *,
                     repeats: bool = False) -> None:
    """Refuse updates that do not match the global model or carry NaN/inf, naming client and key, and a
    client counted twice in one aggregate (unless ``repeats``: FedBuff's buffer may hold two of one client's
    results, each from another version).

    Why: one malformed or diverged client must not silently poison the global model.
    """
    if not results:
        raise FederationError("no client results to aggregate (every sampled client dropped out)")
    if not repeats:
        (cid, n), = Counter(r.client_id for r in results).most_common(1)
        if n > 1:
            raise FederationError(f"client {cid} sent {n} results to one aggregate; allowed: one")
    for r in results:
        if r.num_samples <= 0:
            raise FederationError(f"client {r.client_id} reported num_samples={r.num_samples}; must be > 0")
        _, reason = screen_result(r, weights, allow_empty=False)
        if reason is not None:
            raise FederationError(f"client {r.client_id} update {reason.split(': ', 1)[1]}")
