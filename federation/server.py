"""The federated round loop, written once: sample clients → broadcast → local fit → aggregate → evaluate.

Clients run in this process, one after another, which is exact and deterministic. What a real deployment
adds — slow devices, thin links, dropouts, stragglers, asynchronous arrivals, compressed uploads — is
simulated around that loop: every round is timed on a ``simpy`` clock from each client's
:class:`~federation.devices.DeviceProfile` (see :mod:`federation.devices`), uploads can be compressed
(:mod:`federation.compression`), and the history reports simulated wall-clock and exact bytes moved.
The loop names no method: a strategy's server half configures and aggregates, its client half (a hook the
loop installs on each client) does the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from agents.base import Weights
from federation.checkpoint import (
    Checkpointer,
    capture,
    capture_global_rngs,
    check_capturable,
    restore,
    restore_global_rngs,
)
from federation.client import Client
from federation.compression import Compressor, apply_delta, delta, make_compressor
from federation.devices import BufferedAsync, DeviceProfile, RoundPolicy, Scheduler, Synchronous, make_device_profiles
from federation.faults import FAULT_KINDS, FaultInjector, screen_result
from federation.pool import ClientPool, FitJob, InProcessPool
from federation.strategies.base import Strategy
from federation.types import FederationError, FitResult, weights_nbytes


@dataclass(frozen=True)
class SystemConfig:
    """How the federation runs: device profiles, the round policy and the upload compressor (built objects)."""

    devices: tuple[DeviceProfile, ...] | None = None  # None: identical default devices
    round_policy: RoundPolicy | BufferedAsync = field(default_factory=Synchronous)
    compressor: Compressor = field(default_factory=lambda: make_compressor("none"))
    # faults: a round aggregates only if at least min_clients results passed screening; a fit that takes
    # longer than fit_timeout_s (wall clock; in-process fits cannot be interrupted, so it is discarded when it
    # returns) is left out; faults injects failures on purpose (frl run --faults P)
    min_clients: int = 1
    fit_timeout_s: float | None = None
    faults: FaultInjector | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_clients, bool) or not isinstance(self.min_clients, int) or self.min_clients < 1:
            raise FederationError(f"min_clients={self.min_clients!r} is out of range; allowed: integer >= 1")
        t = self.fit_timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or not t > 0):
            raise FederationError(f"fit_timeout_s={t!r} is out of range; allowed: a number of seconds > 0")


@dataclass
class History:
    """Long-format records (round, client, metric, value); client -1 means the whole federation."""

    rows: list[tuple[int, int, str, float]] = field(default_factory=list)
    global_weights: Weights = field(default_factory=dict)
    faults: list[tuple[int, int, str]] = field(default_factory=list)  # (round, client or -1, reason)

    def add(self, rnd: int, client: int, metric: str, value: float) -> None:
        self.rows.append((rnd, client, metric, float(value)))

    def series(self, metric: str, client: int | None = None) -> list[tuple[int, float]]:
        return [(r, v) for r, c, m, v in self.rows if m == metric and (client is None or c == client)]


RoundCallback = Callable[[int, History], None]


def sample_clients(rng: np.random.Generator, n: int, fraction: float) -> list[int]:
    """Uniformly sample max(1, round(fraction·n)) distinct clients (McMahan et al. 2017, C-fraction)."""
    m = max(1, int(round(fraction * n)))
    return sorted(int(i) for i in rng.choice(n, size=m, replace=False))


def evaluate_clients(clients: Sequence[Client] | ClientPool, strategy: Strategy, rnd: int, global_weights: Weights,
                     seeds: Sequence[int]) -> dict[int, dict[str, dict[str, float]]]:
    """The evaluation protocol, per client: ``own`` (its current local model), ``global`` (the model the
    strategy's ``configure_evaluate`` names for it, combined with its personal parameters) and ``personal``
    where the method's client half has a separate personalised model (Ditto's, APFL's mixture, the
    fine-tuned model)."""
    pool = as_pool(clients)
    models = strategy.configure_evaluate(rnd, global_weights, list(pool.ids))
    return pool.evaluate(models, {cid: seeds for cid in pool.ids})


def as_pool(clients: Sequence[Client] | ClientPool) -> ClientPool:
    """A pool of ``clients`` (a list of in-process clients becomes an :class:`InProcessPool`)."""
    return clients if isinstance(clients, ClientPool) else InProcessPool(clients)


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def run_federation(
    clients: Sequence[Client] | ClientPool,
    strategy: Strategy,
    *,
    rounds: int,
    seed: int | np.random.SeedSequence,
    fraction: float = 1.0,
    eval_every: int = 1,
    eval_seeds: Sequence[int] = (0,),
    system: SystemConfig | None = None,
    on_round: RoundCallback | None = None,
    checkpoint: Checkpointer | None = None,
) -> History:
    """Run ``rounds`` federated rounds and return the history of per-client evaluations.

    Every client starts from the same initial model (client 0's), so methods differ only in how they share.
    ``seed`` spawns the randomness of client sampling, device availability and the strategy. Each evaluation
    round records per client ``own/<kpi>``, ``global/<kpi>`` (methods with a server model) and
    ``personal/<kpi>``; each round records ``sim/round_s`` and ``sim/wall_clock_s`` (client −1) and per client
    ``comm/bytes_down``, ``comm/bytes_up``, ``devices/dropped``, ``devices/straggler``, (buffered-async)
    ``async/staleness`` and ``fit/samples`` (samples of each accepted result).

    Faults never end the run: a fit that raises, overruns ``system.fit_timeout_s`` or returns NaN/Inf or
    wrongly shaped weights is left out of the round (``fault/<kind>`` = 1 for that client, the reason in
    ``History.faults``); a round with fewer than ``system.min_clients`` accepted results, or whose aggregator
    refuses them, keeps the previous global model (``round/skipped`` = 1).

    ``clients`` is a list of in-process clients or a :class:`~federation.pool.ClientPool` (where the clients
    run: in-process, worker processes, Flower). With ``checkpoint``, the complete state is written every
    ``checkpoint.every`` rounds and after the last, and a run with a saved state continues from it, ending
    bitwise where the uninterrupted run ends (:mod:`federation.checkpoint`).
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise FederationError(f"rounds={rounds!r} must be an integer >= 1")
    if not 0.0 < fraction <= 1.0:
        raise FederationError(f"fraction={fraction} is out of range; allowed: (0, 1]")
    pool = as_pool(clients)
    if not pool.ids:
        raise FederationError("no clients")
    if list(pool.ids) != list(range(len(pool.ids))):
        raise FederationError(f"client ids must be 0..{len(pool.ids) - 1} in order; got {list(pool.ids)[:10]}")
    system = system or SystemConfig()
    policy, compressor = system.round_policy, system.compressor
    if policy.asynchronous and not strategy.accepts_stale:
        raise FederationError(f"round policy 'buffered-async' cannot drive strategy {strategy.name!r}; "
                              "allowed with it: strategies that weigh stale updates (fedbuff)")
    if checkpoint is not None and policy.asynchronous:
        raise FederationError("checkpointing a buffered-async run is not supported (its simulated clock holds running "
                              "simpy processes); allowed: a synchronous or deadline round policy")
    root = _seed_sequence(seed)
    sample_seq, device_seq, strategy_seq = root.spawn(3)
    if system.faults is not None:  # a 4th child: the first three (and so every fault-free run) are unchanged
        system.faults.reseed(root.spawn(1)[0])
    n = len(pool.ids)
    devices = system.devices or tuple(make_device_profiles(n, 0.0, int(device_seq.generate_state(1)[0])))
    if len(devices) != n:
        raise FederationError(f"{len(devices)} device profiles for {n} clients")
    rng = np.random.default_rng(sample_seq)
    scheduler = Scheduler(policy, dict(enumerate(devices)), pool.steps_per_round, np.random.default_rng(device_seq))
    strategy.reseed(strategy_seq)
    compressor.reset()
    pool.install(strategy)
    global_weights: Weights = pool.initial_weights()
    versions = {0: global_weights}
    history = History()
    everyone = list(pool.ids)
    first = 1

    def state() -> dict[str, Any]:
        """Everything the rest of the run depends on (for a checkpoint)."""
        return {"global": global_weights, "versions": versions, "history": history, "rng": rng,
                "scheduler": scheduler, "strategy": strategy, "compressor": compressor, "faults": system.faults}

    if checkpoint is not None:
        saved = checkpoint.load()
        if saved is not None:  # continue a killed run where its last checkpoint left it
            done, tree = saved
            restored = restore(state(), tree["federation"])
            pool.restore_state(tree["clients"])
            global_weights, versions = restored["global"], restored["versions"]
            first = done + 1
            restore_global_rngs(tree["global_rngs"])
        else:  # refuse what cannot be checkpointed before any training
            check_capturable(state(), pool)

    def upload(res: FitResult, base: Weights) -> tuple[FitResult, int]:
        """Compress the client's change (Δ = w − what it loaded) and reconstruct what the server receives."""
        if compressor.lossless or not res.weights:
            return res, weights_nbytes(res.weights)
        if set(base) != set(res.weights):
            base = global_weights
        enc = compressor.encode(res.client_id, delta(res.weights, base))
        return replace(res, weights=apply_delta(base, compressor.decode(enc))), compressor.nbytes(enc)

    for rnd in range(first, rounds + 1):
        sampled = everyone if scheduler.asynchronous else sample_clients(rng, n, fraction)
        instructions = {ins.client_id: ins for ins in strategy.configure_train(rnd, global_weights, sampled)}
        plan = scheduler.next_round(
            rnd - 1, sampled, bytes_down={c: weights_nbytes(instructions[c].weights) for c in sampled},
            bytes_up={c: compressor.nbytes_for(global_weights) if instructions[c].weights else 0 for c in sampled})
        results: list[FitResult] = []
        jobs = []
        for job in plan.jobs:
            cid = job.client_id
            if job.start_version == rnd - 1:
                ins = instructions[cid]
            else:  # a buffered-async result trained from an older version
                ins = strategy.configure_train(rnd, versions[job.start_version], [cid])[0]
            fault = system.faults.draw() if system.faults is not None else None
            jobs.append(FitJob(ins, fault, system.fit_timeout_s))
        for job, out in zip(plan.jobs, pool.fit(jobs), strict=True):
            cid = job.client_id
            fitted, reason = out.result, out.reason
            if fitted is not None and strategy.screen_uploads:
                fitted, reason = screen_result(fitted, out.received or global_weights)
            if fitted is None:
                history.add(rnd, cid, f"fault/{str(reason).split(':', 1)[0]}", 1.0)
                history.faults.append((rnd, cid, str(reason)))
                continue
            res, nbytes = upload(fitted, out.received)
            results.append(replace(res, staleness=job.staleness))
            for k, v in res.metrics.items():
                history.add(rnd, cid, k, v)
            history.add(rnd, cid, "comm/bytes_up", nbytes)
            history.add(rnd, cid, "fit/samples", res.num_samples)
            if scheduler.asynchronous:
                history.add(rnd, cid, "async/staleness", job.staleness)
        for cid, nbytes in plan.bytes_down.items():
            history.add(rnd, cid, "comm/bytes_down", nbytes)
        for cid in plan.dropped:
            history.add(rnd, cid, "devices/dropped", 1.0)
        for cid in plan.stragglers:
            history.add(rnd, cid, "devices/straggler", 1.0)
        if len(results) >= system.min_clients:
            try:
                new = strategy.aggregate_train(rnd, global_weights, results)
                bad = [k for k, v in new.items() if not np.all(np.isfinite(v))]
                if bad:
                    raise FederationError(f"the aggregate of {strategy.name!r} is non-finite in {bad[0]!r}")
                global_weights = new
            except FederationError as e:  # e.g. Krum with too few answers left: skip, keep the model
                history.add(rnd, -1, "round/skipped", 1.0)
                history.faults.append((rnd, -1, f"aggregate: {str(e).splitlines()[0]}"))
        elif plan.jobs:
            history.add(rnd, -1, "round/skipped", 1.0)
            history.faults.append((rnd, -1, f"too few results: {len(results)} < min_clients={system.min_clients}"))
        for k, v in strategy.round_metrics(rnd).items():
            history.add(rnd, -1, k, v)
        versions[rnd] = global_weights
        versions = {v: w for v, w in versions.items() if v in scheduler.versions_in_use(rnd)}
        history.add(rnd, -1, "sim/round_s", plan.end - plan.start)
        history.add(rnd, -1, "sim/wall_clock_s", plan.end)
        if rnd % eval_every == 0 or rnd == rounds:
            for cid, res in evaluate_clients(pool, strategy, rnd, global_weights, eval_seeds).items():
                for kind, ev in res.items():
                    for k, v in ev.items():
                        history.add(rnd, cid, f"{kind}/{k}", v)
        if checkpoint is not None and (rnd % checkpoint.every == 0 or rnd == rounds):
            checkpoint.save(rnd, {"federation": capture(state()), "clients": pool.capture_state(),
                                  "global_rngs": capture_global_rngs()})
        if on_round is not None:
            on_round(rnd, history)
    history.global_weights = global_weights
    return history


def summarize_system(history: History) -> dict[str, Any]:
    """Simulated wall-clock, bytes, faults and samples trained, in one pass over the history."""
    totals: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    wall = 0.0
    for _, _, m, v in history.rows:
        if m == "sim/wall_clock_s":
            wall = v
        elif m in _SUMMED:
            totals[m] += v
        elif m in _COUNTED:
            counts[m] += 1
    # secure aggregation's key-agreement and share messages count as traffic too
    up = totals["comm/bytes_up"] + totals["secagg/bytes_up"]
    down = totals["comm/bytes_down"] + totals["secagg/bytes_down"]
    return {"sim_wall_clock_s": wall, "bytes_up": up, "bytes_down": down, "bytes_communicated": up + down,
            "dropouts": counts["devices/dropped"], "stragglers": counts["devices/straggler"],
            "samples_trained": int(totals["fit/samples"]),
            "faults": {k: counts[f"fault/{k}"] for k in FAULT_KINDS},
            "skipped_rounds": counts["round/skipped"]}


_SUMMED = frozenset({"comm/bytes_up", "comm/bytes_down", "secagg/bytes_up", "secagg/bytes_down", "fit/samples"})
_COUNTED = frozenset({"devices/dropped", "devices/straggler", "round/skipped", *(f"fault/{k}" for k in FAULT_KINDS)})
