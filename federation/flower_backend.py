"""``--backend flower``: each client fit and evaluation is a Flower message to a ClientApp.

The round loop (:func:`federation.server.run_federation`) does not change: it runs inside a Flower ServerApp
(``@app.main()``, given a ``Grid``) and talks to its clients through :class:`FlowerPool`, which turns each
:class:`~federation.pool.FitJob` into one Flower ``Message`` (``message_type`` ``"train"``; ``"evaluate"``
for evaluations, ``"query"`` for the initial model) to the SuperNode that hosts that client, and waits for the
replies with ``Grid.send_and_receive(..., timeout=...)``. The strategy's server half stays in the ServerApp;
its client half (``strategy.client_hook()``) is built inside the ClientApp, next to the client.

**Where a client's state lives.** A ClientApp instance is stateless between messages; Flower's prescribed
place for per-client state that survives rounds is ``Context.state`` (a ``RecordDict`` the SuperNode keeps
for the run; Flower docs, "Design stateful ClientApps", https://flower.ai/docs/framework/how-to-design-stateful-clients.html).
After every message the handler stores the client's complete state there — ``federation.checkpoint.capture``
of the client (env mid-episode, agent, optimiser, replay buffer, the method's client half, generators),
``torch.save``-d and zlib-compressed to bytes in a ``ConfigRecord`` — and the next message rebuilds the client
from the run's configuration and restores that state (``torch.load(weights_only=True)``: no code runs from the bytes).
One SuperNode may host several clients (client ``c`` goes to node ``c mod N``); each has its own key.

**The wire.** Weights travel as ``ArrayRecord`` (one ``Array`` per named tensor: exact dtype and shape);
the rest (config, metrics, evaluation results) as plain-data trees (``federation.checkpoint.capture``) in
``ConfigRecord`` bytes. Messages name the client, a per-pool token (a new method's clients never restore
an old method's state) and the opaque ``app`` config the ClientApp needs to build the client (for the
scenarios: the experiment and the method; :mod:`scenarios.flower_app`).

**Simulation.** :func:`simulation` runs Flower's simulation engine (``flwr.simulation.run_simulation``; Ray
actors execute the ClientApp) in a background thread whose ServerApp hands its ``InMemoryGrid`` to this
thread, so ``run_experiment`` drives it exactly like any pool; one virtual SuperNode per client
(``partition-id`` = client id).

This module needs the optional extra (``pip install -e ".[flower]"``); nothing imports it on the default path.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from agents.base import Weights
from federation.checkpoint import capture, restore
from federation.client import Client
from federation.pool import ClientPool, Evaluation, FitJob, FitOutcome, guarded_fit, restore_clients
from federation.types import FederationError, FitIns, FitResult

#: the Grid of the ServerApp this thread runs in (set by a ServerApp's main; see scenarios/flower_app.py)
GRID: ContextVar[Any] = ContextVar("FLOWER_GRID", default=None)
#: how long a pool waits for a reply when a job has no timeout of its own (a lost node must not hang the run)
DEFAULT_REPLY_TIMEOUT_S = 3600.0
_STATE_PREFIX = "frl-client-"


# ----- the wire ---------------------------------------------------------------------------------------------------
def weights_record(weights: Mapping[str, np.ndarray]) -> ArrayRecord:
    """Named weights as a Flower ``ArrayRecord`` (names, dtypes and shapes kept exactly)."""
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in weights.items()})


def weights_of(record: ArrayRecord) -> Weights:
    return {k: np.array(a.numpy(), copy=True) for k, a in record.items()}


def pack(obj: Any) -> bytes:
    """A plain-data tree (``federation.checkpoint.capture``) as bytes that load with ``weights_only=True``."""
    buf = io.BytesIO()
    torch.save(capture(obj), buf)
    return buf.getvalue()


def unpack(raw: bytes) -> Any:
    return restore(None, torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu"))


def _header(token: str, cid: int, app: Mapping[str, str], **extra: Any) -> ConfigRecord:
    return ConfigRecord({"token": token, "client_id": int(cid), **dict(app), **extra})


# ----- the server side --------------------------------------------------------------------------------------------
class FlowerPool(ClientPool):
    """The clients as ClientApps on Flower SuperNodes (simulated or deployed), one message per job.

    ``grid``: the ServerApp's Grid; ``nodes``: the SuperNode ids (client ``c`` lives on ``nodes[c % len]``);
    ``app``: strings every message carries for the ClientApp to build the client (opaque here);
    ``initial``: ``() -> (full, shared)`` weights of client 0 as built (saves asking client 0's node for them:
    the ServerApp has the code and the configuration too)."""

    def __init__(self, grid: Any, ids: Sequence[int], steps_per_round: Mapping[int, int], app: Mapping[str, str],
                 nodes: Sequence[int], *, reply_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S,
                 initial: Callable[[], tuple[Weights, Weights]] | None = None) -> None:
        if not nodes:
            raise FederationError("no Flower SuperNode is connected; allowed: start at least one flower-supernode")
        self.grid = grid
        self.ids = list(ids)
        self.steps_per_round = dict(steps_per_round)
        self.app = dict(app)
        self.nodes = list(nodes)
        self.reply_timeout_s = float(reply_timeout_s)
        self.initial = initial
        self.token = uuid.uuid4().hex  # this pool's clients: a fresh state key space on every node
        self._init: Weights | None = None
        self._started: set[int] = set()  # clients that have a state on their node
        self.messages = 0

    def node_of(self, cid: int) -> int:
        return self.nodes[cid % len(self.nodes)]

    def install(self, strategy: Any) -> None:
        """Nothing to send: each ClientApp builds ``strategy.client_hook()`` with the client, from ``app``."""

    def _message(self, kind: str, cid: int, content: RecordDict) -> Message:
        return Message(content, dst_node_id=self.node_of(cid), message_type=kind, group_id=self.token)

    def _exchange(self, messages: Mapping[int, Message], timeout: float) -> dict[int, Message]:
        """Send one message per client and collect the replies by client id (missing ones are absent).

        At most one message per SuperNode is in flight: a SuperNode runs its ClientApps one after another
        anyway, and Flower 1.42's SuperNode was seen answering the second of two queued messages of one run
        with the first one's reply id (the SuperLink then drops the reply and the ServerApp waits forever).
        So the messages go in waves, the k-th wave holding the k-th client of every node."""
        by_node: dict[int, list[Message]] = {}
        for msg in messages.values():
            by_node.setdefault(msg.metadata.dst_node_id, []).append(msg)
        out: dict[int, Message] = {}
        deadline = time.monotonic() + timeout
        for k in range(max((len(v) for v in by_node.values()), default=0)):
            wave = [msgs[k] for msgs in by_node.values() if k < len(msgs)]
            self.messages += len(wave)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for rep in self.grid.send_and_receive(wave, timeout=left):
                if rep.has_error():
                    continue  # the client's missing reply becomes that client's fault (or refusal) below
                out[int(rep.content["frl"]["client_id"])] = rep
        return out

    def _first(self, cid: int, content: RecordDict) -> None:
        """The first message to a client carries the initial model it must load (client 0's, as in-process)."""
        if cid not in self._started and cid != 0 and self._init is not None:
            content["init"] = weights_record(self._init)

    def initial_weights(self) -> Weights:
        if self.initial is not None:
            self._init, shared = self.initial()
            return shared
        content = RecordDict({"frl": _header(self.token, 0, self.app, op="init")})
        rep = self._exchange({0: self._message("query", 0, content)}, self.reply_timeout_s).get(0)
        if rep is None:
            raise FederationError(f"client 0's SuperNode {self.node_of(0)} gave no initial model")
        self._init = weights_of(rep.content["full"])
        self._started.add(0)
        return weights_of(rep.content["shared"])

    def fit(self, jobs: Sequence[FitJob]) -> list[FitOutcome]:
        if not jobs:
            return []
        msgs = {}
        for job in jobs:
            cid = job.ins.client_id
            hdr = _header(self.token, cid, self.app, config=pack(dict(job.ins.config)),
                          fault=job.fault or "", timeout_s=float(job.timeout_s or 0.0))
            content = RecordDict({"frl": hdr, "weights": weights_record(job.ins.weights)})
            self._first(cid, content)
            msgs[cid] = self._message("train", cid, content)
        limits = [j.timeout_s for j in jobs]
        # the clients' own timeouts are checked where they run; this one catches a node that never answers
        wait = self.reply_timeout_s if any(t is None for t in limits) else 2 * max(limits) + 60.0  # type: ignore[type-var]
        replies = self._exchange(msgs, wait)
        out = []
        for job in jobs:
            cid = job.ins.client_id
            rep = replies.get(cid)
            if rep is None:
                out.append(FitOutcome(None, f"timeout: no reply from SuperNode {self.node_of(cid)} within {wait:.0f} s",
                                      {}))
                continue
            self._started.add(cid)
            meta = rep.content["frl"]
            received = weights_of(rep.content["received"])
            if meta["reason"]:
                out.append(FitOutcome(None, str(meta["reason"]), received))
                continue
            res = FitResult(client_id=cid, weights=weights_of(rep.content["weights"]),
                            num_samples=int(meta["num_samples"]), metrics=unpack(meta["metrics"]))
            out.append(FitOutcome(res, None, received))
        return out

    def evaluate(self, models: Mapping[int, Weights | None],
                 seeds: Mapping[int, Sequence[int]]) -> dict[int, Evaluation]:
        msgs = {}
        for cid, s in seeds.items():
            w = models.get(cid)
            content = RecordDict({"frl": _header(self.token, cid, self.app, seeds=pack([int(x) for x in s]),
                                                 has_model=w is not None)})
            if w is not None:
                content["weights"] = weights_record(w)
            self._first(cid, content)
            msgs[cid] = self._message("evaluate", cid, content)
        replies = self._exchange(msgs, self.reply_timeout_s)
        missing = [cid for cid in seeds if cid not in replies]
        if missing:
            nodes = sorted({self.node_of(c) for c in missing})[:10]
            raise FederationError(f"Flower: no evaluation from clients {missing[:10]} (SuperNodes {nodes}) "
                                  f"within {self.reply_timeout_s:.0f} s")
        self._started.update(seeds)
        return {cid: unpack(replies[cid].content["frl"]["evaluation"]) for cid in seeds}


def connected_nodes(grid: Any, at_least: int, timeout_s: float) -> list[int]:
    """The SuperNodes connected to the SuperLink, sorted, once at least ``at_least`` are (or refuse)."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(int(n) for n in grid.get_node_ids())
        if len(nodes) >= at_least:
            return nodes
        if time.monotonic() > deadline:
            raise FederationError(f"{len(nodes)} Flower SuperNodes connected after {timeout_s:.0f} s; "
                                  f"allowed: at least {at_least} (start more flower-supernode processes)")
        time.sleep(0.5)


# ----- the client side --------------------------------------------------------------------------------------------
ClientFactory = Callable[[Mapping[str, Any], int], Client]  # (the message's header, client id) -> client, hook on


#: a memo of live clients in this process (a simulation actor serves many messages): (token, id) -> (stamp,
#: client). Context.state stays the truth: the memo is used only when its stamp is the one stored there, i.e.
#: when the object is exactly the state this process saved last; otherwise the client is rebuilt from the state.
_LIVE: collections.OrderedDict[tuple[str, int], tuple[str, Client]] = collections.OrderedDict()
_LIVE_MAX = 128  # clients kept per process (a deployed ClientApp process serves one message: never a hit)


def _client(header: Mapping[str, Any], content: RecordDict, context: Context, build: ClientFactory) -> Client:
    """The client this message is for: built from the run's configuration, then its saved state (if any)."""
    token, cid = str(header["token"]), int(header["client_id"])
    if context.state.get("frl-token") is None or context.state["frl-token"]["token"] != token:
        for key in [k for k in context.state if k.startswith(_STATE_PREFIX)]:  # another pool's clients
            del context.state[key]
        context.state["frl-token"] = ConfigRecord({"token": token})
        for key in [k for k in _LIVE if k[0] != token]:
            del _LIVE[key]
    saved = context.state.get(f"{_STATE_PREFIX}{cid}")
    live = _LIVE.pop((token, cid), None)  # popped: a handler that fails midway leaves no stale object behind
    if saved is not None and live is not None and live[0] == saved["stamp"]:
        return live[1]
    client = build(header, cid)
    if saved is not None:
        raw = zlib.decompress(saved["tree"])  # lazily made parts (Ditto's personal model) first, then the state
        restore_clients([client], torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu"), client)
    elif "init" in content:
        client.agent.set_weights(weights_of(content["init"]))
    return client


def _keep(client: Client, context: Context, token: str) -> None:
    buf = io.BytesIO()
    torch.save(capture(client), buf)
    stamp = uuid.uuid4().hex
    # zlib level 1: a preallocated replay buffer is mostly zeros (a CartPole DQN client: 4.9 MB -> 0.1 MB in
    # ~12 ms), and Context.state is copied to and from the simulation's actors with every message
    context.state[f"{_STATE_PREFIX}{client.client_id}"] = ConfigRecord(
        {"tree": zlib.compress(buf.getvalue(), 1), "stamp": stamp})
    _LIVE[(token, client.client_id)] = (stamp, client)
    while len(_LIVE) > _LIVE_MAX:
        _LIVE.popitem(last=False)


def handle_query(message: Message, context: Context, build: ClientFactory) -> Message:
    """``op=init``: the client's full and shared weights after it is built (client 0's start every client)."""
    header = message.content["frl"]
    client = _client(header, message.content, context, build)
    _keep(client, context, str(header["token"]))
    reply = RecordDict({"frl": ConfigRecord({"client_id": int(header["client_id"])}),
                        "full": weights_record(client.agent.get_weights()),
                        "shared": weights_record(client.agent.get_shared_weights())})
    return Message(reply, reply_to=message)


def handle_train(message: Message, context: Context, build: ClientFactory) -> Message:
    """One fit (``federation.pool.guarded_fit``: faults injected and timeouts checked here, where it runs)."""
    header = message.content["frl"]
    cid = int(header["client_id"])
    try:
        client = _client(header, message.content, context, build)
    except Exception as e:  # noqa: BLE001 - this client's failure (e.g. a state that does not fit), not the run's
        first = (str(e).strip().splitlines() or [""])[0]
        reason = f"exception: the ClientApp could not restore client {cid}: {type(e).__name__}: {first}"
        return Message(RecordDict({"frl": ConfigRecord({"client_id": cid, "reason": reason}),
                                   "received": ArrayRecord()}), reply_to=message)
    ins = FitIns(cid, weights_of(message.content["weights"]), unpack(header["config"]))
    t = float(header["timeout_s"])
    out = guarded_fit(client, FitJob(ins, str(header["fault"]) or None, t if t > 0 else None))
    _keep(client, context, str(header["token"]))
    meta: dict[str, Any] = {"client_id": cid, "reason": out.reason or ""}
    reply = RecordDict({"received": weights_record(out.received or {})})
    if out.result is not None:
        meta.update(num_samples=int(out.result.num_samples), metrics=pack(dict(out.result.metrics)))
        reply["weights"] = weights_record(out.result.weights)
    reply["frl"] = ConfigRecord(meta)
    return Message(reply, reply_to=message)


def handle_evaluate(message: Message, context: Context, build: ClientFactory) -> Message:
    header = message.content["frl"]
    client = _client(header, message.content, context, build)
    model = weights_of(message.content["weights"]) if bool(header["has_model"]) else None
    ev = client.evaluate_models(model, unpack(header["seeds"]))
    _keep(client, context, str(header["token"]))
    reply = RecordDict({"frl": ConfigRecord({"client_id": int(header["client_id"]), "evaluation": pack(ev)})})
    return Message(reply, reply_to=message)


# ----- the simulation engine ---------------------------------------------------------------------------------------
@contextmanager
def simulation(client_app: Any, num_nodes: int, workers: int, *, start_timeout_s: float = 300.0) -> Iterator[Any]:
    """Flower's simulation engine with ``num_nodes`` virtual SuperNodes and ``workers`` Ray actors (one CPU
    each) running ``client_app``; yields the ServerApp's Grid for this thread's round loop. The engine runs
    in a background thread (``run_simulation`` blocks until its ServerApp returns) and stops on exit."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs asked for: leave the env alone
    flwr_log = logging.getLogger("flwr")
    level = flwr_log.level
    flwr_log.setLevel(logging.ERROR)  # run_simulation's deprecation notice and per-message INFO lines
    handed: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    server = ServerApp()

    @server.main()
    def _main(grid: Any, context: Context) -> None:
        handed.put(grid)
        stop.wait()

    failure: list[BaseException] = []

    def _engine() -> None:
        try:
            run_simulation(server_app=server, client_app=client_app, num_supernodes=num_nodes,
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": workers, "log_to_driver": False,
                                                         "logging_level": "error"}})
        except BaseException as e:  # noqa: BLE001 - reported to the waiting thread
            failure.append(e)
        finally:
            handed.put(None)

    engine = threading.Thread(target=_engine, name="flower-simulation", daemon=True)
    engine.start()
    try:
        try:
            grid = handed.get(timeout=start_timeout_s)
        except queue.Empty:
            raise FederationError(f"Flower's simulation engine did not start within {start_timeout_s:.0f} s") from None
        if grid is None:
            why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else "no reason given"
            raise FederationError(f"Flower's simulation engine failed to start ({why})")
        yield grid
    finally:
        stop.set()
        engine.join(timeout=120)
        _shutdown_ray()
        flwr_log.setLevel(level)


def _shutdown_ray() -> None:
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001, S110 - best effort: the engine may have shut it down already
        pass


__all__ = ["GRID", "FlowerPool", "connected_nodes", "handle_evaluate", "handle_query", "handle_train", "pack",
           "simulation", "unpack", "weights_of", "weights_record"]
