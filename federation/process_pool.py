"""``--backend processes``: the clients live in worker processes, fit in parallel, and answer bitwise as in-process.

**Where a client lives.** :class:`ProcessPool` starts ``workers`` processes (the standard library's
``multiprocessing``, never a fork of this process's torch state) and assigns the clients round-robin (client
``ids[i]`` to worker ``i mod workers``). Workers are forked from a *forkserver* (a clean single-threaded process
that imported this module and the builder's once, so a worker starts without re-importing torch;
``context="spawn"`` starts each from scratch). Each worker calls ``builder(its ids)`` once — e.g.
``functools.partial(scenarios.experiment.build_clients, exp, spec, setup=setup)``, which builds any subset of
clients exactly as in-process — and from then on owns those clients: their envs, agents, replay buffers and the
method's client halves never leave it. Per round only what a real client would exchange crosses a pipe: the fit
instruction (:class:`~federation.pool.FitJob`) and the :class:`~federation.pool.FitOutcome`, evaluation models
and their scores. Each worker runs torch and OpenMP on one thread (``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``), so two workers use two cores.

**Bitwise.** Every client's randomness is its own (seeded from ``Experiment.seed`` by ``client_setup``), a fit
runs the same code (:func:`~federation.pool.guarded_fit`) on the same objects, and the round loop, which draws
sampling, devices and faults, stays in the parent. Answers come back in job order. So a run on this backend
ends bitwise where the in-process run ends (tests/federation/test_process_pool.py pins it per strategy and with
faults, attacks, DP and secure aggregation).

**The method's client half** is built in the worker: :meth:`install` pickles the strategy once and each worker
calls ``strategy.client_hook()`` per client, as in-process. A hook that shares state with its server half
would see only a copy there, so :func:`check_strategy` looks at the hooks first and refuses, before any
training, a strategy whose clients share one hook (``central``: the model travels from client to client within
a round) or whose hook holds its server half — except the two that are handled: the Byzantine wrapper's hook
reads only its (immutable) attack configuration from its owner at ``attach``, and secure aggregation's hook,
whose key-agreement party the server half drives, is shuttled: the parent keeps each client's
:class:`~federation.secure_aggregation.SecAggParty`, sends it with the client's fit and takes back the party the
fit used (its mask was drawn from the round's keys), so the server half unmasks with the same state as
in-process.

**Failure.** Every wait has a deadline (``timeout_s``): a worker that dies (its pipe closes) or does not answer
in time ends the run with one :class:`~federation.types.FederationError` line naming the worker, its pid and its
clients; the pool then kills every worker. A client's own failure is not the pool's: it comes back as
``(None, reason)`` as in-process. :meth:`close` (also on exceptions: the pool is a context manager, and a
finaliser covers a pool dropped without closing) stops the workers and, if they do not stop, kills them; a worker
whose parent died sees its pipe close and exits, so no process outlives the run.

**Checkpoints.** :meth:`capture_state` asks every worker for ``capture`` of its clients placed at their
positions in the full client list, and merges the answers into the tree the in-process pool captures
(``federation.checkpoint.capture(clients)``); :meth:`restore_state` sends each worker its clients' part. The
one difference: an immutable object the in-process clients happen to share (e.g. a cached shape tuple) is
stored once per worker instead of once, and a reference into another worker's clients is replaced by a copy
of what it names before a worker restores — so a checkpoint resumes on any number of workers.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents.base import Weights
from federation.attacks import _SelectiveAttackHook
from federation.checkpoint import CheckpointError, capture
from federation.client import Client, ClientHook
from federation.pool import ClientPool, Evaluation, FitJob, FitOutcome, guarded_fit, restore_clients
from federation.secure_aggregation import SecAggParty, SecureUploadHook
from federation.strategies.base import Strategy
from federation.types import FederationError

#: default deadline of one request to the workers (a round's fits, an evaluation, a checkpoint), seconds
DEFAULT_TIMEOUT_S = 1800.0
#: deadline for starting the workers and building their clients, seconds
DEFAULT_START_TIMEOUT_S = 600.0
_STOP_GRACE_S = 5.0
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_SAME = "__received_is_the_broadcast__"  # a FitOutcome.received that is the job's own broadcast (not sent back)


# ----- which strategies can run here ---------------------------------------------------------------------------
def _hook_chain(hook: ClientHook) -> list[ClientHook]:
    """``hook`` and the hooks it wraps (``inner``), outermost first."""
    out = [hook]
    while isinstance(vars(out[-1]).get("inner"), ClientHook):
        out.append(vars(out[-1])["inner"])
    return out


def _handled_owner(hook: ClientHook, attr: str) -> bool:
    """The references to a server half that this backend handles (see the module docstring)."""
    return attr == "owner" and isinstance(hook, _SelectiveAttackHook | SecureUploadHook)


def _strategy_refs(obj: Any, path: str, depth: int, seen: set[int]) -> list[str]:
    """Attribute paths under ``obj`` (a fresh hook) that reach a :class:`Strategy`."""
    if depth > 4 or id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, Strategy):
        return [path]
    items: list[tuple[str, Any]]
    if isinstance(obj, dict):
        items = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, list | tuple | set | frozenset):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = []
        for k, v in vars(obj).items():
            if isinstance(obj, ClientHook) and _handled_owner(obj, k):
                continue
            items.append((f"{path}.{k}", v))
    else:
        return []
    return [p for sub, v in items for p in _strategy_refs(v, sub, depth + 1, seen)]


def check_strategy(strategy: Strategy, hooks: Sequence[ClientHook] | None = None) -> None:
    """Refuse (one :class:`FederationError` line) a strategy whose client halves cannot live in worker processes:
    one hook shared by every client, or a hook holding its server half (beyond the two handled ones).
    ``hooks``: the hooks already drawn from ``strategy`` (default: two fresh ones)."""
    hooks = list(hooks) if hooks is not None else [strategy.client_hook(), strategy.client_hook()]
    name = getattr(strategy, "name", type(strategy).__name__)
    seen: dict[int, ClientHook] = {}
    shared = None
    for hook in hooks:  # a hook, or a hook it wraps, handed to two clients
        for h in {id(h): h for h in _hook_chain(hook)}.values():
            if id(h) in seen:
                shared = type(h).__name__
                break
            seen[id(h)] = h
        if shared:
            break
    if shared:
        raise FederationError(
            f"strategy {name!r} cannot run on --backend processes: every client shares one client half ({shared}), "
            f"so a client's fit depends on the client before it in the same round; allowed there: strategies with "
            f"one client half per client (every other), or --backend inprocess")
    for hook in hooks[:1]:
        refs = _strategy_refs(hook, type(hook).__name__, 0, set())
        if refs:
            raise FederationError(
                f"strategy {name!r} cannot run on --backend processes: its client half holds its server half "
                f"({refs[0]}), of which a worker process would have only a copy; allowed: --backend inprocess")


def _secure_hook(hook: ClientHook) -> Any:
    return next((h for h in _hook_chain(hook) if isinstance(h, SecureUploadHook)), None)


# ----- checkpoint trees ----------------------------------------------------------------------------------------
_TAG = "__t__"  # federation.checkpoint's node tag


def tree_index(tree: Any, path: str = "state") -> dict[str, Any]:
    """Every node of a checkpoint tree by the path :func:`~federation.checkpoint.capture` gave it (the paths
    ``ref`` nodes name)."""
    out: dict[str, Any] = {}
    stack = [(tree, path)]
    while stack:
        node, p = stack.pop()
        if not isinstance(node, dict) or _TAG not in node:
            continue
        out[p] = node
        kind = node[_TAG]
        if kind in ("list", "tuple", "deque"):
            stack.extend((v, f"{p}[{i}]") for i, v in enumerate(node["v"]))
        elif kind == "set":
            stack.extend((v, f"{p}{{}}") for v in node["v"])
        elif kind == "dict":
            for k, v in zip(node["k"], node["v"], strict=True):
                if isinstance(k, dict) and k.get(_TAG) == "ptuple":
                    k = tuple(k["v"])
                if not isinstance(k, dict):
                    stack.append((v, f"{p}[{k!r}]"))
        elif kind == "obj":
            stack.extend((v, f"{p}.{k}") for k, v in node["a"].items())
        elif kind == "method":
            stack.append((node["self"], f"{p}.__self__"))
    return out


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith((f"{r}.", f"{r}[", f"{r}{{")) for r in roots)


def _localize(node: Any, index: Mapping[str, Any], roots: Sequence[str], chain: tuple[str, ...] = ()) -> Any:
    """``node`` with every reference to a path outside ``roots`` (another worker's clients: an object the
    in-process clients shared, e.g. a cached shape tuple) replaced by a copy of the node it names, so a worker
    restores its clients from their own part of the tree."""
    if isinstance(node, list):
        return [_localize(v, index, roots, chain) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get(_TAG) == "ref" and not _under(node["path"], roots):
        target = node["path"]
        if target in chain or target not in index:
            raise CheckpointError(f"checkpoint does not fit this run: a worker's clients refer to {target}, which "
                                  "is another worker's")
        return _localize(index[target], index, roots, (*chain, target))
    return {k: _localize(v, index, roots, chain) for k, v in node.items()}


# ----- the worker process ------------------------------------------------------------------------------------
def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


class _Worker:
    """The worker side: its clients and the commands the parent sends."""

    def __init__(self, clients: Sequence[Client], positions: Mapping[int, int], n_total: int) -> None:
        self.clients = list(clients)
        self.by_id = {c.client_id: c for c in self.clients}
        self.positions = dict(positions)  # client id -> index in the pool's full client list
        self.n_total = n_total

    def install(self, blob: bytes) -> None:
        strategy = pickle.loads(blob)
        for c in self.clients:
            c.use(strategy.client_hook())

    def get_init(self, cid: int) -> tuple[Weights, Weights]:
        c = self.by_id[cid]
        return c.agent.get_weights(), c.agent.get_shared_weights()

    def set_init(self, arg: tuple[Weights, int]) -> None:
        init, first = arg
        for c in self.clients:
            if c.client_id != first:
                c.agent.set_weights(init)

    def fit(self, arg: tuple[list[FitJob], dict[int, Any]]) -> list[tuple[FitOutcome, Any]]:
        jobs, parties = arg
        out = []
        for job in jobs:
            client = self.by_id[job.ins.client_id]
            sec = _secure_hook(client.hook) if parties else None
            if sec is not None:
                sec.party = parties[client.client_id]
            res = guarded_fit(client, job)
            received: Any = res.received
            bcast = job.ins.weights
            if isinstance(received, dict) and all(k in bcast and v is bcast[k] for k, v in received.items()):
                received = (_SAME, tuple(received))  # the broadcast itself: the parent has it already
            out.append((FitOutcome(res.result, res.reason, received), sec.party if sec is not None else None))
        return out

    def evaluate(self, items: list[tuple[int, Weights | None, Sequence[int]]]) -> list[Evaluation]:
        return [self.by_id[cid].evaluate_models(model, seeds) for cid, model, seeds in items]

    def _template(self) -> list[Any]:
        tpl: list[Any] = [None] * self.n_total
        for cid, pos in self.positions.items():
            tpl[pos] = self.by_id[cid]
        return tpl

    def capture(self, _: Any) -> Any:
        return capture(self._template())

    def restore(self, tree: Any) -> None:
        restore_clients(self.clients, tree, self._template())


def _worker_main(conn: Any, builder: Callable[[list[int]], Sequence[Client]], ids: list[int],
                 positions: dict[int, int], n_total: int) -> None:
    """A worker's life: build its clients, then answer commands until ``stop`` or until its parent is gone."""
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only settable before any inter-op work
        torch.set_num_interop_threads(1)

    def send(status: str, payload: Any) -> None:
        try:
            data = pickle.dumps((status, payload), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an answer that does not pickle is reported, not a dead worker
            data = pickle.dumps(("error", f"the answer does not pickle: {_first_line(e)}"))
        conn.send_bytes(data)

    try:
        clients = list(builder(list(ids)))
        got = [c.client_id for c in clients]
        if got != list(ids):
            raise FederationError(f"the builder returned clients {got[:10]} for ids {list(ids)[:10]}")
        worker = _Worker(clients, positions, n_total)
        send("ok", {c.client_id: c.steps_per_round for c in clients})
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        send("error", f"building its clients failed: {_first_line(e)}")
        return
    while True:
        try:
            cmd, arg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the parent is gone: exit, never an orphan
            return
        if cmd == "stop":  # nothing of the worker's is kept: skip the interpreter's slow teardown of torch & co.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        try:
            result = getattr(worker, cmd)(arg)
        except Exception as e:  # noqa: BLE001 - e.g. a method's hook refusing a client
            send("error", f"{cmd} failed: {_first_line(e)}")
            continue
        send("ok", result)


# ----- the parent side -----------------------------------------------------------------------------------------
class _Link:
    """One worker seen from the parent: its process, its pipe, a sender and a receiver thread (so a wait never
    blocks on a pipe: a request is handed to the sender, an answer arrives in the pool's inbox)."""

    def __init__(self, index: int, proc: Any, conn: Any, ids: list[int], inbox: queue.Queue[Any]) -> None:
        self.index, self.proc, self.conn, self.ids = index, proc, conn, ids
        self.outbox: queue.Queue[bytes | None] = queue.Queue()
        self.sender = threading.Thread(target=self._send_loop, daemon=True, name=f"frl-pool-send-{index}")
        self.receiver = threading.Thread(target=self._recv_loop, args=(inbox,), daemon=True,
                                         name=f"frl-pool-recv-{index}")
        self.sender.start()
        self.receiver.start()

    def _send_loop(self) -> None:
        while True:
            data = self.outbox.get()
            if data is None:
                return
            try:
                self.conn.send_bytes(data)
            except (OSError, ValueError):  # the worker is gone; its receiver reports it
                return

    def _recv_loop(self, inbox: queue.Queue[Any]) -> None:
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError, ValueError):
                inbox.put((self.index, "dead", None))
                return
            inbox.put((self.index, "data", data))

    def describe(self) -> str:
        shown = ",".join(map(str, self.ids[:8])) + (f",… ({len(self.ids)} clients)" if len(self.ids) > 8 else "")
        return f"worker {self.index} (pid {self.proc.pid}, clients {shown})"


def _shutdown(links: list[_Link]) -> None:
    """Stop the workers: ask, wait a little, then terminate and kill what is left (idempotent)."""
    for link in links:
        link.outbox.put(pickle.dumps(("stop", None)))
        link.outbox.put(None)
    deadline = time.monotonic() + _STOP_GRACE_S
    for link in links:
        link.proc.join(max(0.0, deadline - time.monotonic()))
    for link in links:
        if link.proc.is_alive():
            link.proc.terminate()
            link.proc.join(1.0)
        if link.proc.is_alive():
            link.proc.kill()
            link.proc.join(5.0)
    for link in links:
        with contextlib.suppress(OSError):
            link.conn.close()


_ENV_LOCK = threading.Lock()


class ProcessPool(ClientPool):
    """Clients in ``workers`` worker processes (see the module docstring).

    ``builder(ids) -> clients`` must be picklable (a module-level function or a ``functools.partial`` of one)
    and build the clients ``ids`` exactly as the in-process run builds them. ``timeout_s`` bounds every request
    (one round's fits, an evaluation, a checkpoint); ``start_timeout_s`` the start and the clients' build."""

    def __init__(self, builder: Callable[[list[int]], Sequence[Client]], ids: Sequence[int], workers: int = 2, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
                 context: str = "forkserver") -> None:
        ids = [int(i) for i in ids]
        if not ids:
            raise FederationError("a process pool needs at least one client")
        if len(set(ids)) != len(ids):
            raise FederationError(f"client ids must be distinct; got {ids[:10]}")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
            raise FederationError(f"workers={workers!r} is out of range; allowed: integer in [1, 256]")
        for name, t in (("timeout_s", timeout_s), ("start_timeout_s", start_timeout_s)):
            if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0:
                raise FederationError(f"{name}={t!r} is out of range; allowed: a number of seconds > 0")
        if context not in ("spawn", "forkserver"):
            raise FederationError(f"context={context!r} is not supported; allowed: spawn, forkserver")
        self.ids = ids
        self.timeout_s = float(timeout_s)
        self.n_workers = min(workers, len(ids))
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._links: list[_Link] = []
        self._broken: str | None = None
        self._owner: dict[int, int] = {cid: i % self.n_workers for i, cid in enumerate(ids)}
        self._secure: dict[int, Any] = {}  # client id -> the parent's SecureUploadHook (secure aggregation)
        self._pos = positions = {cid: i for i, cid in enumerate(ids)}
        ctx = mp.get_context(context)
        if context == "forkserver":  # the server imports these once; each worker is then a fork of it
            module = getattr(getattr(builder, "func", builder), "__module__", None)
            # (torch._dynamo: what the first optimiser imports lazily, ~1 CPU-s per worker otherwise)
            ctx.set_forkserver_preload([__name__, "torch._dynamo",
                                        *([module] if module and module != "__main__" else [])])
        self._finalizer = weakref.finalize(self, _shutdown, self._links)
        with _ENV_LOCK:  # the children start with one OpenMP/BLAS thread (read when torch loads)
            saved = {v: os.environ.get(v) for v in _THREAD_ENV}
            os.environ.update({v: "1" for v in _THREAD_ENV})
            try:
                for k in range(self.n_workers):
                    mine = [cid for cid in ids if self._owner[cid] == k]
                    parent_end, child_end = ctx.Pipe(duplex=True)
                    proc = ctx.Process(target=_worker_main, name=f"frl-pool-worker-{k}", daemon=True,
                                       args=(child_end, builder, mine, {c: positions[c] for c in mine}, len(ids)))
                    try:
                        proc.start()
                    except (pickle.PicklingError, AttributeError, TypeError) as e:
                        raise FederationError(f"the client builder cannot be sent to a worker process "
                                              f"({_first_line(e)}); allowed: a module-level function or a "
                                              "functools.partial of one") from None
                    child_end.close()
                    self._links.append(_Link(k, proc, parent_end, mine, self._inbox))
            except BaseException:
                self.close()
                raise
            finally:
                for v, old in saved.items():
                    if old is None:
                        os.environ.pop(v, None)
                    else:
                        os.environ[v] = old
        try:
            steps = self._collect(range(self.n_workers), "start", float(start_timeout_s))
        except BaseException:
            self.close()
            raise
        merged = {cid: n for part in steps for cid, n in part.items()}
        self.steps_per_round = {cid: merged[cid] for cid in ids}

    # ----- requests ------------------------------------------------------------------------------------------
    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and monitoring)."""
        return [link.proc.pid for link in self._links]

    def _request(self, per_worker: Mapping[int, Any], cmd: str) -> dict[int, Any]:
        """Send ``cmd`` with each worker's argument, wait for every answer (one deadline); answers by worker."""
        if self._broken is not None:
            raise FederationError(f"the process pool is closed ({self._broken})")
        for k, arg in per_worker.items():
            self._links[k].outbox.put(pickle.dumps((cmd, arg), protocol=pickle.HIGHEST_PROTOCOL))
        answers = self._collect(list(per_worker), cmd, self.timeout_s)
        return dict(zip(per_worker, answers, strict=True))

    def _collect(self, workers: Sequence[int] | range, what: str, timeout_s: float) -> list[Any]:
        pending = set(workers)
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            left = deadline - time.monotonic()
            try:
                k, kind, data = self._inbox.get(timeout=max(0.0, min(left, 1.0)))
            except queue.Empty:
                dead = [k for k in sorted(pending) if not self._links[k].proc.is_alive()]
                if dead:
                    self._fail(dead[0], f"died (exit code {self._links[dead[0]].proc.exitcode}) during {what}")
                if time.monotonic() >= deadline:
                    self._fail(min(pending), f"did not answer {what} within {timeout_s:g} s")
                continue
            if kind == "dead":
                link = self._links[k]
                link.proc.join(1.0)
                hint = (" (its stderr says why; a script that starts a pool must guard its entry point with "
                        "`if __name__ == '__main__':`)") if what == "start" else ""
                self._fail(k, f"died (exit code {link.proc.exitcode}) during {what}{hint}")
            status, payload = pickle.loads(data)
            if status != "ok":
                self._fail(k, f"failed: {payload}")
            got[k] = payload
            pending.discard(k)
        return [got[k] for k in workers]

    def _fail(self, k: int, why: str) -> None:
        msg = f"process pool: {self._links[k].describe()} {why}"
        self._broken = msg
        self.close()
        raise FederationError(msg)

    # ----- the ClientPool protocol ---------------------------------------------------------------------------
    def install(self, strategy: Any) -> None:
        name = getattr(strategy, "name", type(strategy).__name__)
        try:
            blob = pickle.dumps(strategy, protocol=pickle.HIGHEST_PROTOCOL)  # before the parent draws any hook
        except Exception as e:  # noqa: BLE001 - e.g. a lambda in a hand-made strategy
            raise FederationError(f"strategy {name!r} cannot be sent to worker processes ({_first_line(e)}); "
                                  "allowed: picklable strategies, or --backend inprocess") from None
        # the parent draws every client's hook too, as in-process: checks them, and keeps secure aggregation's
        # key-agreement parties (the server half drives them); a strategy counting its hooks (DP) sees them all
        hooks = [strategy.client_hook() for _ in self.ids]
        check_strategy(strategy, hooks)
        self._secure = {}
        for cid, hook in zip(self.ids, hooks, strict=True):
            sec = _secure_hook(hook)
            if sec is not None:
                sec.party = SecAggParty(cid)
                sec.owner._register(cid, sec)
                self._secure[cid] = sec
        self._request(dict.fromkeys(range(self.n_workers), blob), "install")

    def initial_weights(self) -> Weights:
        first = self.ids[0]
        full, shared = self._request({self._owner[first]: first}, "get_init")[self._owner[first]]
        self._request(dict.fromkeys(range(self.n_workers), (full, first)), "set_init")
        return shared

    def fit(self, jobs: Sequence[FitJob]) -> list[FitOutcome]:
        if not jobs:
            return []
        per: dict[int, tuple[list[FitJob], dict[int, Any]]] = {}
        for job in jobs:
            cid = job.ins.client_id
            if cid not in self._owner:
                raise FederationError(f"fit for client {cid}, which is not in this pool")
            mine, parties = per.setdefault(self._owner[cid], ([], {}))
            mine.append(job)
            if cid in self._secure:
                parties[cid] = self._secure[cid].party
        answers = self._request(per, "fit")
        cursor = dict.fromkeys(answers, 0)
        out = []
        for job in jobs:  # job order; each worker answered its jobs in the order it got them
            k = self._owner[job.ins.client_id]
            outcome, party = answers[k][cursor[k]]
            cursor[k] += 1
            received = outcome.received
            if isinstance(received, tuple) and len(received) == 2 and received[0] == _SAME:
                received = {key: job.ins.weights[key] for key in received[1]}
                outcome = FitOutcome(outcome.result, outcome.reason, received)
            if party is not None:
                self._secure[job.ins.client_id].party = party
            out.append(outcome)
        return out

    def evaluate(self, models: Mapping[int, Weights | None],
                 seeds: Mapping[int, Sequence[int]]) -> dict[int, Evaluation]:
        per: dict[int, list[tuple[int, Weights | None, Sequence[int]]]] = {}
        for cid in seeds:
            if cid not in self._owner:
                raise FederationError(f"evaluation of client {cid}, which is not in this pool")
            per.setdefault(self._owner[cid], []).append((cid, models.get(cid), list(seeds[cid])))
        answers = {k: iter(v) for k, v in self._request(per, "evaluate").items()}
        return {cid: next(answers[self._owner[cid]]) for cid in seeds}

    def capture_state(self) -> Any:
        parts = self._request(dict.fromkeys(range(self.n_workers)), "capture")
        tree = parts[0]
        values = list(tree["v"])
        for k, part in parts.items():
            for cid in self._links[k].ids:
                values[self._pos[cid]] = part["v"][self._pos[cid]]
        return {**tree, "v": values}

    def restore_state(self, tree: Any) -> None:
        if not (isinstance(tree, dict) and tree.get("__t__") == "list" and len(tree.get("v", ())) == len(self.ids)):
            raise CheckpointError(f"checkpoint does not fit this run at state: expected the {len(self.ids)} "
                                  "clients' list")
        index = tree_index(tree)
        per = {}
        for k, link in enumerate(self._links):
            mine = {self._pos[cid] for cid in link.ids}
            roots = [f"state[{i}]" for i in sorted(mine)]
            per[k] = {**tree, "v": [_localize(v, index, roots) if i in mine else None for i, v in enumerate(tree["v"])]}
        self._request(per, "restore")

    def close(self) -> None:
        """Stop every worker (kill those that do not stop); safe to call twice."""
        if self._broken is None:
            self._broken = "closed"
        self._finalizer()


__all__ = ["DEFAULT_START_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "ProcessPool", "check_strategy"]
