"""The federated round loop, written once: sample clients → broadcast → local fit → aggregate → evaluate.

Where clients run is a backend detail; this loop runs them in-process, one after another, which is exact
and deterministic. Bytes are counted from the real payloads (raw array bytes of named weights).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from agents.base import Weights
from federation.client import Client
from federation.strategies.base import Strategy
from federation.types import FederationError, weights_nbytes


@dataclass
class History:
    """Long-format records (round, client, metric, value); client -1 means the whole federation."""

    rows: list[tuple[int, int, str, float]] = field(default_factory=list)
    global_weights: Weights = field(default_factory=dict)

    def add(self, rnd: int, client: int, metric: str, value: float) -> None:
        self.rows.append((rnd, client, metric, float(value)))

    def series(self, metric: str, client: int | None = None) -> list[tuple[int, float]]:
        return [(r, v) for r, c, m, v in self.rows if m == metric and (client is None or c == client)]


RoundCallback = Callable[[int, History], None]


def sample_clients(rng: np.random.Generator, n: int, fraction: float) -> list[int]:
    """Uniformly sample max(1, round(fraction·n)) distinct clients (McMahan et al. 2017, C-fraction)."""
    m = max(1, int(round(fraction * n)))
    return sorted(int(i) for i in rng.choice(n, size=m, replace=False))


def run_federation(
    clients: Sequence[Client],
    strategy: Strategy,
    *,
    rounds: int,
    seed: int,
    fraction: float = 1.0,
    eval_every: int = 1,
    eval_seeds: Sequence[int] = (0,),
    on_round: RoundCallback | None = None,
) -> History:
    """Run ``rounds`` federated rounds and return the history of per-client evaluations.

    Every client starts from the same initial model (client 0's), so methods differ only in how they share.
    Each evaluation round records, per client, ``own/<kpi>`` (the client's own current model) and, for
    federated strategies, ``global/<kpi>`` (the global model on that client's env).
    """
    if rounds < 1:
        raise FederationError(f"rounds={rounds} must be >= 1")
    if not 0.0 < fraction <= 1.0:
        raise FederationError(f"fraction={fraction} is out of range; allowed: (0, 1]")
    if not clients:
        raise FederationError("no clients")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    init = clients[0].agent.get_weights()
    for c in clients[1:]:
        c.agent.set_weights(init)
    global_weights: Weights = clients[0].agent.get_shared_weights()
    history = History()
    for rnd in range(1, rounds + 1):
        sampled = sample_clients(rng, len(clients), fraction)
        instructions = strategy.configure_train(rnd, global_weights, sampled)
        results = []
        for ins in instructions:
            res = clients[ins.client_id].fit(ins)
            results.append(res)
            history.add(rnd, ins.client_id, "comm/bytes_down", weights_nbytes(ins.weights))
            history.add(rnd, ins.client_id, "comm/bytes_up",
                        weights_nbytes(res.weights) if strategy.federated else 0)
            for k, v in res.metrics.items():
                history.add(rnd, ins.client_id, k, v)
        global_weights = strategy.aggregate_train(rnd, global_weights, results)
        if rnd % eval_every == 0 or rnd == rounds:
            for c in clients:
                for k, v in c.evaluate(None, eval_seeds).items():
                    history.add(rnd, c.client_id, f"own/{k}", v)
                if strategy.federated:
                    for k, v in c.evaluate(global_weights, eval_seeds).items():
                        history.add(rnd, c.client_id, f"global/{k}", v)
        if on_round is not None:
            on_round(rnd, history)
    history.global_weights = global_weights
    return history
