"""The federated round loop, written once: sample clients → broadcast → local fit → aggregate → evaluate.

Clients run in this process, one after another, which is exact and deterministic. What a real deployment
adds — slow devices, thin links, dropouts, stragglers, asynchronous arrivals, compressed uploads — is
simulated around that loop: every round is timed on a ``simpy`` clock from each client's
:class:`~federation.devices.DeviceProfile` (see :mod:`federation.devices`), uploads can be compressed
(:mod:`federation.compression`), and the history reports simulated wall-clock and exact bytes moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import Weights
from federation.client import Client, split_clusters
from federation.compression import apply_delta, delta, make_compressor
from federation.devices import DeviceProfile, SimClock, make_device_profiles, make_round_policy
from federation.strategies.base import Strategy, validate_results
from federation.strategies.fedavg import fedbuff_update
from federation.types import FederationError, FitIns, FitResult, weights_nbytes


@dataclass(frozen=True)
class SystemConfig:
    """How the federation runs: device profiles, round policy and update compression."""

    devices: tuple[DeviceProfile, ...] | None = None  # None: identical default devices
    round_policy: str = "synchronous"  # synchronous · deadline · buffered-async
    round_policy_params: Mapping[str, float | int] = field(default_factory=dict)
    compression: str = "none"  # none · int8 · topk
    compression_params: Mapping[str, float | int | bool] = field(default_factory=dict)
    server_lr: float = 1.0  # FedBuff's server step size η_g (buffered-async only)


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


def evaluate_clients(clients: Sequence[Client], strategy: Strategy, global_weights: Weights,
                     seeds: Sequence[int], *, finetune_steps: int = 0) -> dict[int, dict[str, dict[str, float]]]:
    """The evaluation protocol, per client: ``own`` (its current local model), ``global`` (the model the
    server holds for it, combined with its personal parameters), and ``personal`` where the strategy has a
    separate personalised model (Ditto's, or the fine-tuned global model)."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for c in clients:
        res = {"own": c.evaluate(None, seeds)}
        if strategy.federated:
            res["global"] = c.evaluate(strategy.client_model(c.client_id, global_weights), seeds)
        if strategy.personalization == "ditto":
            res["personal"] = c.evaluate_personal(seeds)
        elif strategy.personalization == "finetune":
            model = strategy.client_model(c.client_id, global_weights)
            res["personal"] = c.evaluate_finetuned(model, finetune_steps or getattr(strategy, "steps", 500), seeds)
        out[c.client_id] = res
    return out


def run_federation(
    clients: Sequence[Client],
    strategy: Strategy,
    *,
    rounds: int,
    seed: int,
    fraction: float = 1.0,
    eval_every: int = 1,
    eval_seeds: Sequence[int] = (0,),
    system: SystemConfig | None = None,
    on_round: RoundCallback | None = None,
) -> History:
    """Run ``rounds`` federated rounds and return the history of per-client evaluations.

    Every client starts from the same initial model (client 0's), so methods differ only in how they share.
    Each evaluation round records per client ``own/<kpi>``, ``global/<kpi>`` (federated strategies) and
    ``personal/<kpi>`` (Ditto, fine-tuning); each round records ``sim/round_s`` and ``sim/wall_clock_s``
    (client −1) and per client ``comm/bytes_down``, ``comm/bytes_up``, ``devices/dropped`` and
    ``devices/straggler``.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise FederationError(f"rounds={rounds!r} must be an integer >= 1")
    if not 0.0 < fraction <= 1.0:
        raise FederationError(f"fraction={fraction} is out of range; allowed: (0, 1]")
    if not clients:
        raise FederationError("no clients")
    system = system or SystemConfig()
    policy = make_round_policy(system.round_policy, **dict(system.round_policy_params))
    if policy.asynchronous and not strategy.supports_async:
        raise FederationError(f"round policy 'buffered-async' cannot drive strategy {strategy.name!r}; "
                              "allowed with it: strategies that update a single global model (fedavg, fedprox)")
    devices = system.devices or tuple(make_device_profiles(len(clients), 0.0, seed))
    if len(devices) != len(clients):
        raise FederationError(f"{len(devices)} device profiles for {len(clients)} clients")
    compressor = make_compressor(system.compression, **dict(system.compression_params))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    dev_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD20]))

    for c in clients:  # the strategy decides which parameters are personal
        for agent in (c.agent, c._eval_agent):
            agent.personal_prefixes = tuple(dict.fromkeys((*agent.personal_prefixes, *strategy.personal_prefixes)))
    if strategy.agent_overrides.get("personal") == "head" and not clients[0].agent.personal_prefixes:
        raise FederationError(f"strategy {strategy.name!r} needs agents built with personal='head' "
                              "(the scenario runner does this from strategy.agent_overrides)")
    init = clients[0].agent.get_weights()
    for c in clients[1:]:
        c.agent.set_weights(init)
    global_weights: Weights = clients[0].agent.get_shared_weights()
    history = History()
    steps_of = {c.client_id: c.steps_per_round for c in clients}

    def upload(res: FitResult, base: Weights) -> tuple[FitResult, int]:
        """Compress the client's change (Δ = w − base) and reconstruct what the server receives."""
        if not strategy.federated:
            return res, 0
        if compressor.lossless:
            return res, weights_nbytes(res.weights)
        enc = compressor.encode(res.client_id, delta(res.weights, base))
        received = apply_delta(base, compressor.decode(enc))
        return FitResult(res.client_id, received, res.num_samples, res.metrics), compressor.nbytes(enc)

    def record_fit(rnd: int, res: FitResult) -> None:
        for k, v in res.metrics.items():
            history.add(rnd, res.client_id, k, v)

    def maybe_evaluate(rnd: int) -> None:
        if rnd % eval_every == 0 or rnd == rounds:
            for cid, res in evaluate_clients(clients, strategy, global_weights, eval_seeds).items():
                for kind, ev in res.items():
                    for k, v in ev.items():
                        history.add(rnd, cid, f"{kind}/{k}", v)
        if on_round is not None:
            on_round(rnd, history)

    if policy.asynchronous:
        down = weights_nbytes(global_weights)
        up = compressor.nbytes_for(global_weights)
        clock = policy.clock({c.client_id: devices[c.client_id] for c in clients}, bytes_down=down,
                             bytes_up=up, steps=steps_of, rng=dev_rng)
        versions = {0: global_weights}
        for rnd in range(1, rounds + 1):
            start = clock.now
            batch = clock.next_batch()
            deltas, coeffs = [], []
            for a in batch.arrivals:
                base = versions[a.start_version]
                ins = FitIns(a.client_id, base, {"round": rnd, **strategy.fit_config(rnd)})
                res, nbytes = upload(clients[a.client_id].fit(ins), base)
                validate_results(base, [res])
                deltas.append(delta(res.weights, base))
                coeffs.append(a.weight)
                record_fit(rnd, res)
                history.add(rnd, a.client_id, "comm/bytes_down", a.bytes_down)
                history.add(rnd, a.client_id, "comm/bytes_up", nbytes)
                history.add(rnd, a.client_id, "async/staleness", a.staleness)
            for cid in batch.dropped:
                history.add(rnd, cid, "devices/dropped", 1.0)
            global_weights = fedbuff_update(global_weights, deltas, coeffs, system.server_lr)
            versions[rnd] = global_weights
            in_use = clock.versions_in_use()
            versions = {v: w for v, w in versions.items() if v in in_use}
            history.add(rnd, -1, "sim/round_s", batch.time - start)
            history.add(rnd, -1, "sim/wall_clock_s", batch.time)
            maybe_evaluate(rnd)
        history.global_weights = global_weights
        return history

    clock = SimClock()
    for rnd in range(1, rounds + 1):
        sampled = sample_clients(rng, len(clients), fraction)
        instructions = {ins.client_id: ins for ins in strategy.configure_train(rnd, global_weights, sampled)}
        bytes_down = {c: weights_nbytes(instructions[c].weights) for c in sampled}
        bytes_up = {c: (compressor.nbytes_for(global_weights) if strategy.federated else 0) for c in sampled}
        timing = policy.run(clock, {c: devices[c] for c in sampled}, bytes_down=bytes_down,
                            bytes_up=bytes_up, steps={c: steps_of[c] for c in sampled}, rng=dev_rng)
        results: list[FitResult] = []
        carried: Weights | None = None
        for cid in timing.used:
            ins = instructions[cid]
            if getattr(strategy, "sequential", False) and carried is not None:
                ins = FitIns(cid, carried, ins.config)  # the central reference passes one model along
            fitted = clients[cid].fit(ins)
            res, nbytes = upload(fitted, _base_for(ins, fitted, global_weights))
            carried = res.weights
            results.append(res)
            record_fit(rnd, res)
            history.add(rnd, cid, "comm/bytes_up", nbytes)
        for cid in sampled:
            history.add(rnd, cid, "comm/bytes_down", timing.bytes_down.get(cid, 0))
        for cid in timing.dropped:
            history.add(rnd, cid, "devices/dropped", 1.0)
        for cid in timing.stragglers:
            history.add(rnd, cid, "devices/straggler", 1.0)
        if results:
            global_weights = strategy.aggregate_train(rnd, global_weights, results)
        history.add(rnd, -1, "sim/round_s", timing.duration)
        history.add(rnd, -1, "sim/wall_clock_s", clock.now)
        maybe_evaluate(rnd)
    history.global_weights = global_weights
    return history


def _base_for(ins: FitIns, res: FitResult, global_weights: Weights) -> Weights:
    """The model a client's change is measured against: what it received (for IFCA, the cluster model it
    picked from the broadcast)."""
    if "select_from" in ins.config:
        return split_clusters(ins.weights, int(ins.config["select_from"]))[int(res.metrics["ifca/cluster"])]
    if ins.weights and set(ins.weights) == set(global_weights):
        return ins.weights
    return global_weights


def summarize_system(history: History) -> dict[str, Any]:
    """Simulated wall-clock and bytes totals for summary.json."""
    wall = [v for _, c, m, v in history.rows if m == "sim/wall_clock_s"]
    up = sum(v for _, _, m, v in history.rows if m == "comm/bytes_up")
    down = sum(v for _, _, m, v in history.rows if m == "comm/bytes_down")
    return {"sim_wall_clock_s": wall[-1] if wall else 0.0, "bytes_up": up, "bytes_down": down,
            "bytes_communicated": up + down,
            "dropouts": sum(1 for _, _, m, _ in history.rows if m == "devices/dropped"),
            "stragglers": sum(1 for _, _, m, _ in history.rows if m == "devices/straggler")}
