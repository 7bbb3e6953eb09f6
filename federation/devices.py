"""Device heterogeneity on a ``simpy`` clock: compute speed, bandwidth, dropouts, stragglers, async arrivals.

Each client has a :class:`DeviceProfile`. A round is simulated as one simpy process per client —
download the global model → train ``steps`` env steps → upload the update — so a run reports simulated
wall-clock and bytes moved, deterministically given the seed. The simulation only *times* a round; the real
local training is done by the round loop, which uses the returned :class:`RoundTiming` (or
:class:`AsyncBatch`) to decide whose results are aggregated.

Phase durations (one client, one job), all in simulated seconds:

    t_down  = latency_s + 8 · bytes_down / downlink_bps
    t_train = steps / steps_per_second
    t_up    = latency_s + 8 · bytes_up / uplink_bps
    arrival = start + t_down + t_train + t_up

Round policies:

- ``synchronous`` (FedAvg, McMahan et al. 2017): the server waits for every *available* sampled client;
  duration = max arrival − start.
- ``deadline`` (the reporting window of Bonawitz et al. 2019, "Towards Federated Learning at Scale: System
  Design", §2.1): results arriving after ``start + deadline_s`` are stragglers and are discarded.
  The server closes the round at the last on-time arrival if nobody is late, otherwise it waits until the
  deadline: duration = min(deadline_s, max arrival − start).
- ``buffered-async`` (FedBuff, Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous
  Aggregation", AISTATS): clients train continuously; the server aggregates every ``k`` arrivals, each
  weighted by the staleness discount s(τ) = 1/√(1+τ) (FedBuff §3 / App. "staleness scaling"), τ = server
  versions published since the client downloaded its model. See :class:`BufferedAsyncClock`.

Dropouts: a sampled client is online for a round with probability ``availability`` (one Bernoulli draw per
client per round from the Generator given, in ascending client-id order). An offline client moves no bytes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import simpy

from federation.types import FederationError

MBIT = 1e6  # bit/s per Mbit/s

ROUND_POLICIES = ("synchronous", "deadline", "buffered-async")


# ----- profiles -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceProfile:
    """One client device.

    ``steps_per_second`` is the absolute speed of local training: env steps (with their learning updates)
    per simulated second. A relative speed factor f on a base cost c seconds per step is
    ``steps_per_second = f / c`` (this is how :func:`make_device_profiles` builds it).
    Bandwidths are in bit/s; ``availability`` is the probability in [0, 1] that the client is online for a
    round; ``latency_s`` is a fixed one-way latency added to each message (download and upload).
    """

    steps_per_second: float
    uplink_bps: float
    downlink_bps: float
    availability: float = 1.0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise FederationError(f"DeviceProfile.{f.name}={v!r} must be a number")
            if not math.isfinite(float(v)):
                raise FederationError(f"DeviceProfile.{f.name}={v!r} must be finite")
        for name in ("steps_per_second", "uplink_bps", "downlink_bps"):
            v = getattr(self, name)
            if v <= 0:
                raise FederationError(f"DeviceProfile.{name}={v!r} is out of range; allowed: > 0")
        if not 0.0 <= self.availability <= 1.0:
            raise FederationError(f"DeviceProfile.availability={self.availability!r} is out of range; "
                                  "allowed: [0, 1]")
        if self.latency_s < 0:
            raise FederationError(
                f"DeviceProfile.latency_s={self.latency_s!r} is out of range; allowed: >= 0")

    def download_time(self, nbytes: int) -> float:
        return self.latency_s + 8.0 * nbytes / self.downlink_bps

    def train_time(self, steps: int) -> float:
        return steps / self.steps_per_second

    def upload_time(self, nbytes: int) -> float:
        return self.latency_s + 8.0 * nbytes / self.uplink_bps


def make_device_profiles(
    n: int,
    heterogeneity: float,
    seed: int | np.random.SeedSequence,
    *,
    base_steps_per_second: float = 1000.0,
    speed_span: float = 10.0,
    bandwidth_mbps: tuple[float, float] = (1.0, 50.0),
    uplink_ratio: float = 0.5,
    max_dropout: float = 0.2,
    latency_s: float = 0.0,
) -> list[DeviceProfile]:
    """``n`` device profiles whose spread grows with ``heterogeneity`` in [0, 1] (0 = identical devices).

    Ranges at ``heterogeneity = 1`` follow measured mobile fleets: FedScale (Lai et al. 2022, ICML, client
    system traces from AI Benchmark and MobiPerf) reports compute and network speeds that vary by more than
    an order of magnitude across devices; typical mobile bandwidth is 1–50 Mbit/s; Bonawitz et al. 2019 report
    6–10 % of devices dropping out of a round.

    With u ~ U(−½, ½) drawn per device and quantity (log-uniform spreads around the geometric centre):

    - compute speed = base_steps_per_second · speed_span^(h·u) → spans ``speed_span``× at h = 1 (10×);
    - downlink = √(lo·hi) · (hi/lo)^(h·u) Mbit/s  → [lo, hi] = ``bandwidth_mbps`` at h = 1;
    - uplink = ``uplink_ratio`` × an independent draw of the same law (mobile uplinks are slower);
    - availability ~ U(1 − h·max_dropout, 1)  → mean dropout h·max_dropout/2 (10 % at h = 1 by default);
    - latency = ``latency_s`` for every device.

    The draws are made in a fixed order from ``np.random.default_rng(seed)``, so profiles are deterministic.
    """
    if n < 1:
        raise FederationError(f"n={n} must be >= 1")
    if not 0.0 <= heterogeneity <= 1.0:
        raise FederationError(f"heterogeneity={heterogeneity} is out of range; allowed: [0, 1]")
    if base_steps_per_second <= 0 or speed_span < 1:
        raise FederationError(f"base_steps_per_second={base_steps_per_second} must be > 0 and "
                              f"speed_span={speed_span} >= 1")
    lo, hi = bandwidth_mbps
    if not 0 < lo <= hi:
        raise FederationError(f"bandwidth_mbps={bandwidth_mbps} must satisfy 0 < lo <= hi")
    if not 0 < uplink_ratio <= 1:
        raise FederationError(f"uplink_ratio={uplink_ratio} is out of range; allowed: (0, 1]")
    if not 0 <= max_dropout <= 1:
        raise FederationError(f"max_dropout={max_dropout} is out of range; allowed: [0, 1]")
    rng = np.random.default_rng(seed)
    u = rng.random((4, n)) - 0.5  # rows: speed, downlink, uplink, availability
    h = float(heterogeneity)
    centre = math.sqrt(lo * hi)
    speed = base_steps_per_second * speed_span ** (h * u[0])
    down = centre * (hi / lo) ** (h * u[1]) * MBIT
    up = uplink_ratio * centre * (hi / lo) ** (h * u[2]) * MBIT
    avail = 1.0 - h * max_dropout * (u[3] + 0.5)
    return [DeviceProfile(steps_per_second=float(speed[i]), uplink_bps=float(up[i]),
                          downlink_bps=float(down[i]), availability=float(np.clip(avail[i], 0.0, 1.0)),
                          latency_s=float(latency_s)) for i in range(n)]


# ----- synchronous and deadline rounds --------------------------------------------------------------------
class SimClock:
    """Simulated wall-clock that accumulates across rounds (seconds since the start of the run)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)


@dataclass(frozen=True)
class RoundTiming:
    """The simulated outcome of one synchronous or deadline round.

    ``used``: clients whose results the server aggregates, in ascending id order. ``arrival``: absolute
    simulated time at which each *available* client's upload completes (stragglers included, for
    diagnosis). ``dropped``: offline clients (availability draw failed), which moved no bytes.
    ``stragglers``: available clients past the deadline; their download is counted in ``bytes_down`` but
    their upload is not (the server has closed the round and refuses the report).
    """

    start: float
    end: float
    used: tuple[int, ...]
    arrival: Mapping[int, float]
    dropped: tuple[int, ...]
    stragglers: tuple[int, ...]
    bytes_down: Mapping[int, int]
    bytes_up: Mapping[int, int]

    @property
    def duration(self) -> float:
        return self.end - self.start


IntOrMap = int | Mapping[int, int]


def _per_client(name: str, value: IntOrMap, ids: list[int]) -> dict[int, int]:
    if isinstance(value, Mapping):
        missing = [c for c in ids if c not in value]
        if missing:
            raise FederationError(f"{name} has no entry for clients {missing}")
        out = {c: int(value[c]) for c in ids}
    else:
        out = dict.fromkeys(ids, int(value))
    bad = {c: v for c, v in out.items() if v < 0}
    if bad:
        raise FederationError(f"{name} must be >= 0, got {bad}")
    return out


def draw_availability(
    profiles: Mapping[int, DeviceProfile], rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """One Bernoulli(availability) draw per client in ascending id order → (available, dropped).

    ``rng.random()`` lies in [0, 1), so availability 1 never drops and availability 0 always does.
    """
    ids = sorted(profiles)
    u = rng.random(len(ids))
    available = [c for c, x in zip(ids, u, strict=True) if x < profiles[c].availability]
    dropped = [c for c, x in zip(ids, u, strict=True) if not x < profiles[c].availability]
    return available, dropped


def _job(env: simpy.Environment, p: DeviceProfile, down: int, steps: int, up: int,
         done: Callable[[float], None]) -> None:
    """One client job: download → train → upload, then ``done(arrival time)``. The legs are timeouts chained by
    callbacks, each created when the previous one fires, so the times are those of a simpy process yielding the
    three timeouts, at a fraction of a process's cost (a 100-client round: 2.0 → 0.9 ms)."""
    legs = iter((p.download_time(down), p.train_time(steps), p.upload_time(up)))

    def next_leg(_: simpy.Event | None = None) -> None:
        delay = next(legs, None)
        if delay is None:
            done(env.now)
        else:
            env.timeout(delay).callbacks.append(next_leg)

    next_leg()


class RoundPolicy:
    """Base of the per-round policies: simulate one round on ``clock`` and advance it to the round's end."""

    name = "round-policy"
    asynchronous = False

    def run(
        self,
        clock: SimClock,
        profiles: Mapping[int, DeviceProfile],
        *,
        bytes_down: IntOrMap,
        bytes_up: IntOrMap,
        steps: IntOrMap,
        rng: np.random.Generator,
    ) -> RoundTiming:
        """Time one round for the sampled clients ``profiles`` (client id → profile).

        ``bytes_down``/``bytes_up``/``steps`` are one number for every client or a per-client mapping.
        Availability is drawn from ``rng`` (see :func:`draw_availability`). Advances ``clock.now`` to the end.
        """
        ids = sorted(profiles)
        down = _per_client("bytes_down", bytes_down, ids)
        up = _per_client("bytes_up", bytes_up, ids)
        st = _per_client("steps", steps, ids)
        available, dropped = draw_availability(profiles, rng)
        env = simpy.Environment(initial_time=clock.now)
        arrival: dict[int, float] = {}
        all_arrived = env.event()  # fires when the last available client's upload completes
        if not available:
            all_arrived.succeed()
        for c in available:
            def done(t: float, c: int = c) -> None:
                arrival[c] = t
                if len(arrival) == len(available):
                    all_arrived.succeed()
            _job(env, profiles[c], down[c], st[c], up[c], done)
        end_box: list[float] = []
        env.process(self._server(env, all_arrived, end_box))
        env.run()  # every job runs to completion, so stragglers' would-be arrivals are reported too
        end = end_box[0]
        used = [c for c in available if arrival[c] <= end]
        stragglers = [c for c in available if arrival[c] > end]
        used_set = set(used)
        timing = RoundTiming(
            start=clock.now, end=end, used=tuple(used), arrival=arrival, dropped=tuple(dropped),
            stragglers=tuple(stragglers),
            bytes_down={c: (down[c] if c in arrival else 0) for c in ids},
            bytes_up={c: (up[c] if c in used_set else 0) for c in ids},
        )
        clock.now = end
        return timing

    def _server(self, env: simpy.Environment, all_arrived: simpy.Event,
                end_box: list[float]) -> Generator[simpy.Event, None, None]:
        """Wait as the policy says (``all_arrived``: every available client's upload is in); record the end."""
        raise NotImplementedError

    def params(self) -> dict[str, float | int | str]:
        return {"round_policy": self.name}


class Synchronous(RoundPolicy):
    """Wait for every available sampled client: round end = max arrival (start if nobody is online)."""

    name = "synchronous"

    def _server(self, env: simpy.Environment, all_arrived: simpy.Event,
                end_box: list[float]) -> Generator[simpy.Event, None, None]:
        yield all_arrived
        end_box.append(env.now)


class Deadline(RoundPolicy):
    """Close the round at ``start + deadline_s`` at the latest; later arrivals are stragglers (discarded).

    Exact rule: end = start + min(deadline_s, max arrival − start), i.e. the server stops at the last
    arrival when everyone is on time, and waits until the deadline when anyone is late. An arrival exactly
    at the deadline is on time.
    """

    name = "deadline"

    def __init__(self, deadline_s: float) -> None:
        if not (isinstance(deadline_s, (int, float)) and math.isfinite(deadline_s) and deadline_s > 0):
            raise FederationError(f"deadline_s={deadline_s!r} is out of range; allowed: > 0 (seconds)")
        self.deadline_s = float(deadline_s)

    def _server(self, env: simpy.Environment, all_arrived: simpy.Event,
                end_box: list[float]) -> Generator[simpy.Event, None, None]:
        deadline = env.timeout(self.deadline_s)
        yield all_arrived | deadline
        end_box.append(env.now)

    def params(self) -> dict[str, float | int | str]:
        return {"round_policy": self.name, "deadline_s": self.deadline_s}


# ----- buffered asynchronous (FedBuff) --------------------------------------------------------------------
def staleness_weight(tau: int) -> float:
    """FedBuff's staleness discount s(τ) = 1/√(1+τ) (Nguyen et al. 2022)."""
    if tau < 0:
        raise FederationError(f"staleness tau={tau} must be >= 0")
    return 1.0 / math.sqrt(1.0 + tau)


@dataclass(frozen=True)
class Arrival:
    """One client result reaching the server in buffered-async mode.

    The client trained from global model version ``start_version`` (downloaded at ``start_time``); its
    upload completed at ``time`` while the server was at ``server_version``, so its staleness is
    τ = server_version − start_version and its weight s(τ) = 1/√(1+τ).
    """

    client_id: int
    start_version: int
    server_version: int
    start_time: float
    time: float
    staleness: int
    weight: float
    bytes_down: int
    bytes_up: int


@dataclass(frozen=True)
class AsyncBatch:
    """``k`` arrivals the server aggregates into version ``version`` at simulated time ``time``.

    ``dropped`` lists the offline draws (client ids, with repeats) since the previous batch.
    """

    version: int
    time: float
    arrivals: tuple[Arrival, ...]
    dropped: tuple[int, ...] = field(default=())


class BufferedAsyncClock:
    """FedBuff timing: clients train continuously; the server publishes a new version per ``k`` arrivals.

    Version 0 is the initial global model, which every client downloads at ``start``. A client job is
    download → train → upload (times as in the module docstring). When a job's upload completes, the result
    joins the server's buffer with staleness τ = (current server version) − (version it started from); the
    k-th result in the buffer triggers aggregation into the next version at that instant. The client then
    restarts immediately with the newest model — the new version if its arrival triggered the aggregation,
    else the current one. Before each job the client draws its availability; an offline client sits out
    one job's duration and draws again. Simultaneous events are processed in simpy's (deterministic)
    scheduling order.

    The round loop drives it through :class:`Scheduler` (one batch of ``k`` arrivals per round, each fitted
    from the snapshot of the version it started from, older snapshots dropped by :meth:`versions_in_use`);
    the staleness-weighted server update is the ``fedbuff`` strategy's (``federation.strategies.fedbuff``).
    Fitting lazily at arrival time is exact: a client's training depends only on its own state and the
    model version it started from, and arrivals come in time order.
    """

    def __init__(
        self,
        profiles: Mapping[int, DeviceProfile],
        k: int,
        *,
        bytes_down: IntOrMap,
        bytes_up: IntOrMap,
        steps: IntOrMap,
        rng: np.random.Generator,
        start: float = 0.0,
    ) -> None:
        if not profiles:
            raise FederationError("buffered-async needs at least one client")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise FederationError(f"k={k!r} is out of range; allowed: integer >= 1")
        if all(p.availability == 0 for p in profiles.values()):
            raise FederationError("every client has availability 0: no result would ever arrive")
        ids = sorted(profiles)
        self.profiles = dict(profiles)
        self.k = int(k)
        self._down = _per_client("bytes_down", bytes_down, ids)
        self._up = _per_client("bytes_up", bytes_up, ids)
        self._steps = _per_client("steps", steps, ids)
        for c in ids:
            if self._job_time(c) <= 0:
                raise FederationError(f"client {c} has a zero-duration job (0 steps, bytes and latency)")
        self._rng = rng
        self.version = 0
        self.env = simpy.Environment(initial_time=float(start))
        self._buffer: list[Arrival] = []
        self._dropped: list[int] = []
        self._ready: deque[AsyncBatch] = deque()
        self._current: dict[int, int | None] = dict.fromkeys(ids)  # version each client is training on
        self.bytes_down = dict.fromkeys(ids, 0)
        self.bytes_up = dict.fromkeys(ids, 0)
        for c in ids:
            self.env.process(self._client(c))

    @property
    def now(self) -> float:
        return float(self.env.now)

    def _job_time(self, c: int) -> float:
        p = self.profiles[c]
        return p.download_time(self._down[c]) + p.train_time(self._steps[c]) + p.upload_time(self._up[c])

    def _client(self, c: int) -> Generator[simpy.Event, None, None]:
        p = self.profiles[c]
        while True:
            if not self._rng.random() < p.availability:
                self._dropped.append(c)
                self._current[c] = None
                yield self.env.timeout(self._job_time(c))
                continue
            v, t0 = self.version, self.env.now
            self._current[c] = v
            self.bytes_down[c] += self._down[c]
            yield self.env.timeout(p.download_time(self._down[c]))
            yield self.env.timeout(p.train_time(self._steps[c]))
            yield self.env.timeout(p.upload_time(self._up[c]))
            self.bytes_up[c] += self._up[c]
            tau = self.version - v
            self._buffer.append(Arrival(client_id=c, start_version=v, server_version=self.version,
                                        start_time=t0, time=self.env.now, staleness=tau,
                                        weight=staleness_weight(tau), bytes_down=self._down[c],
                                        bytes_up=self._up[c]))
            if len(self._buffer) == self.k:
                self.version += 1
                self._ready.append(AsyncBatch(version=self.version, time=self.env.now,
                                              arrivals=tuple(self._buffer), dropped=tuple(self._dropped)))
                self._buffer, self._dropped = [], []

    def next_batch(self) -> AsyncBatch:
        """Advance the simulation until the next ``k`` arrivals have been aggregated; return them."""
        while not self._ready:
            self.env.step()
        return self._ready.popleft()

    def versions_in_use(self) -> set[int]:
        """Model versions some client is currently training from, plus the newest (prune older snapshots)."""
        return {v for v in self._current.values() if v is not None} | {self.version}


class BufferedAsync:
    """The ``buffered-async`` policy's configuration; :meth:`clock` starts a :class:`BufferedAsyncClock`."""

    name = "buffered-async"
    asynchronous = True

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise FederationError(f"k={k!r} is out of range; allowed: integer >= 1")
        self.k = int(k)

    def clock(self, profiles: Mapping[int, DeviceProfile], *, bytes_down: IntOrMap, bytes_up: IntOrMap,
              steps: IntOrMap, rng: np.random.Generator, start: float = 0.0) -> BufferedAsyncClock:
        return BufferedAsyncClock(profiles, self.k, bytes_down=bytes_down, bytes_up=bytes_up, steps=steps,
                                  rng=rng, start=start)

    def params(self) -> dict[str, float | int | str]:
        return {"round_policy": self.name, "k": self.k}


def make_round_policy(name: str, **params: float | int) -> RoundPolicy | BufferedAsync:
    """``synchronous`` · ``deadline`` (``deadline_s``) · ``buffered-async`` (``k``)."""
    classes: dict[str, type] = {"synchronous": Synchronous, "deadline": Deadline,
                                "buffered-async": BufferedAsync}
    if name not in classes:
        raise FederationError(f"unknown round policy {name!r}; allowed: {', '.join(ROUND_POLICIES)}")
    try:
        return classes[name](**params)
    except TypeError as e:
        allowed = {"synchronous": "none", "deadline": "deadline_s", "buffered-async": "k"}[name]
        raise FederationError(
            f"bad parameters {sorted(params)} for round policy {name!r}; allowed: {allowed}") from e


# ----- one run's schedule, whatever the policy ------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One client result the next aggregation uses: trained from global version ``start_version``."""

    client_id: int
    start_version: int
    staleness: int = 0


@dataclass(frozen=True)
class RoundPlan:
    """What one round of simulated time produced: the results to aggregate (``jobs``, in arrival order),
    who was offline or late, the round's span on the clock and the bytes each client downloaded."""

    jobs: tuple[Job, ...]
    dropped: tuple[int, ...]
    stragglers: tuple[int, ...]
    start: float
    end: float
    bytes_down: Mapping[int, int]


class Scheduler:
    """The timing of one run under any round policy, so the round loop is one loop.

    Synchronous and deadline rounds time the sampled clients from the current version (:meth:`RoundPolicy.run`);
    buffered-async rounds are the next ``k`` arrivals of a :class:`BufferedAsyncClock` started on the first
    call, each with the version it trained from. Fitting a job when its result arrives is exact: a client's
    training depends only on its own state and the model version it started from.
    """

    def __init__(self, policy: RoundPolicy | BufferedAsync, profiles: Mapping[int, DeviceProfile],
                 steps: Mapping[int, int], rng: np.random.Generator) -> None:
        self.policy = policy
        self.asynchronous = policy.asynchronous
        self._profiles = dict(profiles)
        self._steps = dict(steps)
        self._rng = rng
        self._clock = SimClock()
        self._async: BufferedAsyncClock | None = None

    def next_round(self, version: int, sampled: list[int], *, bytes_down: Mapping[int, int],
                   bytes_up: Mapping[int, int]) -> RoundPlan:
        if isinstance(self.policy, BufferedAsync):
            if self._async is None:
                self._async = self.policy.clock(self._profiles, bytes_down=dict(bytes_down),
                                                bytes_up=dict(bytes_up), steps=self._steps, rng=self._rng)
            start = self._async.now
            batch = self._async.next_batch()
            down: dict[int, int] = {}
            for a in batch.arrivals:
                down[a.client_id] = down.get(a.client_id, 0) + a.bytes_down
            jobs = tuple(Job(a.client_id, a.start_version, a.staleness) for a in batch.arrivals)
            return RoundPlan(jobs, batch.dropped, (), start, batch.time, down)
        timing = self.policy.run(self._clock, {c: self._profiles[c] for c in sampled}, bytes_down=dict(bytes_down),
                                 bytes_up=dict(bytes_up), steps={c: self._steps[c] for c in sampled}, rng=self._rng)
        return RoundPlan(tuple(Job(c, version) for c in timing.used), timing.dropped, timing.stragglers,
                         timing.start, timing.end, timing.bytes_down)

    def versions_in_use(self, newest: int) -> set[int]:
        """Global versions some pending job may still start from (older snapshots can be dropped)."""
        return self._async.versions_in_use() if self._async is not None else {newest}
