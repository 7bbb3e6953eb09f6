"""Where the clients live and where their fits run: the round loop talks to its clients only through a pool.

The round loop (:func:`federation.server.run_federation`) is the one place where FRL logic lives; a backend
only decides where a client's ``fit`` and evaluation run. :class:`ClientPool` is that boundary:

* :class:`InProcessPool` (``--backend inprocess``, the default): the clients are objects in this process and fit
  one after another — exact and deterministic;
* ``federation.process_pool`` (``--backend processes``): each client's env and agent live in the worker process
  that owns it, so replay buffers are never re-pickled; results are bitwise those of in-process;
* ``federation.flower_backend`` (``--backend flower``): each fit is a Flower message to a ClientApp.

Every pool answers in job order and never raises for one client's failure: a fit that raises or overruns its
timeout comes back as ``(None, reason)``, as :func:`guarded_fit` does here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.base import Weights
from federation.client import Client
from federation.faults import ClientFault, spoil
from federation.types import FitIns, FitResult

Evaluation = dict[str, dict[str, float]]  # kind ("own", "global", "personal") -> metric -> value


@dataclass(frozen=True)
class FitJob:
    """One client fit of a round: the instruction, the fault to inject (``None``: none; drawn by the round loop
    from its own seeded stream so every backend injects the same faults) and the wall-clock timeout."""

    ins: FitIns
    fault: str | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class FitOutcome:
    """What came back from one fit: the result (``None`` when it failed, with ``reason`` ``"kind: why"``) and
    the shared weights the client loaded, which its uploaded change is measured against."""

    result: FitResult | None
    reason: str | None
    received: Weights


def guarded_fit(client: Client, job: FitJob) -> FitOutcome:
    """One client's fit, with its exceptions and overruns turned into a reason (the run goes on)."""
    t0 = time.perf_counter()
    try:
        res = client.fit(job.ins)
        if job.fault is not None:
            res = spoil(res, job.fault, job.ins.client_id)
    except Exception as e:  # noqa: BLE001 - any client failure is that client's, not the run's
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return FitOutcome(None, f"exception: {type(e).__name__}: {first}", client.received)
    took = time.perf_counter() - t0
    if job.fault == "timeout" or (job.timeout_s is not None and took > job.timeout_s):
        why = "too long (injected)" if job.fault == "timeout" else f"{took:.1f} s"
        return FitOutcome(None, f"timeout: the fit took {why}", client.received)
    return FitOutcome(res, None, client.received)


class ClientPool(ABC):
    """The clients of one federation, wherever they run.

    The round loop calls, in this order: :meth:`install` (each client gets the method's client half),
    :meth:`initial_weights` (every client starts from client 0's model), then per round :meth:`fit` and
    :meth:`evaluate`; :meth:`close` at the end. ``capture_state``/``restore_state`` serve checkpoints.
    """

    ids: list[int]
    steps_per_round: dict[int, int]

    @abstractmethod
    def install(self, strategy: Any) -> None:
        """Give each client a fresh ``strategy.client_hook()`` (built where the client lives)."""

    @abstractmethod
    def initial_weights(self) -> Weights:
        """Set client 0's full weights on every client; return client 0's shared weights (the first global)."""

    @abstractmethod
    def fit(self, jobs: Sequence[FitJob]) -> list[FitOutcome]:
        """Run the jobs (one per client id at most) and answer in job order."""

    @abstractmethod
    def evaluate(self, models: Mapping[int, Weights | None],
                 seeds: Mapping[int, Sequence[int]]) -> dict[int, Evaluation]:
        """Each client's evaluation protocol (``Client.evaluate_models``) with its model and episode seeds."""

    def capture_state(self) -> Any:
        """Every client's complete mutable state, as a checkpoint tree (``federation.checkpoint``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot checkpoint")

    def restore_state(self, tree: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot checkpoint")

    def close(self) -> None:  # noqa: B027 - optional: only pools with workers or connections release them
        """Release workers or connections (nothing for in-process clients)."""

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessPool(ClientPool):
    """The clients as objects in this process, fitted one after another (exact, deterministic)."""

    def __init__(self, clients: Sequence[Client]) -> None:
        self.clients = list(clients)
        self.ids = [c.client_id for c in self.clients]
        self._by_id = {c.client_id: c for c in self.clients}
        self.steps_per_round = {c.client_id: c.steps_per_round for c in self.clients}

    def install(self, strategy: Any) -> None:
        for c in self.clients:
            c.use(strategy.client_hook())

    def initial_weights(self) -> Weights:
        init = self.clients[0].agent.get_weights()
        for c in self.clients[1:]:
            c.agent.set_weights(init)
        return self.clients[0].agent.get_shared_weights()

    def fit(self, jobs: Sequence[FitJob]) -> list[FitOutcome]:
        return [guarded_fit(self._by_id[j.ins.client_id], j) for j in jobs]

    def evaluate(self, models: Mapping[int, Weights | None],
                 seeds: Mapping[int, Sequence[int]]) -> dict[int, Evaluation]:
        return {cid: self._by_id[cid].evaluate_models(models.get(cid), seeds[cid]) for cid in seeds}

    def capture_state(self) -> Any:
        from federation.checkpoint import capture

        return capture(self.clients)

    def restore_state(self, tree: Any) -> None:
        restore_clients(self.clients, tree)


def restore_clients(clients: Sequence[Client], tree: Any, into: Any = None) -> None:
    """Restore checkpointed clients (every pool's way): each method's client half first creates what it makes
    lazily (``ClientHook.materialize``), then the tree is written into the objects. ``into`` is what the tree
    was captured from (default: the list of ``clients``; a worker's list with other workers' slots empty, or
    one client)."""
    from federation.checkpoint import restore

    for c in clients:
        c.hook.materialize(c)
    restore(list(clients) if into is None else into, tree)


__all__ = ["ClientFault", "ClientPool", "Evaluation", "FitJob", "FitOutcome", "InProcessPool", "guarded_fit",
           "restore_clients"]
