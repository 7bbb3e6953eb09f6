"""Device heterogeneity on the simpy clock: hand-computed round times, deadlines, dropouts, FedBuff."""

import math

import numpy as np
import pytest

from federation.devices import (
    BufferedAsync,
    BufferedAsyncClock,
    Deadline,
    DeviceProfile,
    SimClock,
    Synchronous,
    draw_availability,
    make_device_profiles,
    make_round_policy,
    staleness_weight,
)
from federation.types import FederationError

MB = 1_000_000  # bytes
MBPS = 1e6  # bit/s


def three_clients(**avail: float) -> dict[int, DeviceProfile]:
    """Hand-computed job times for 1 MB down, 100 steps, 1 MB up:
    A (0): 1 MB at 8 Mbit/s = 1 s; 100 steps at 100/s = 1 s; 1 MB at 4 Mbit/s = 2 s      → 4.0 s
    B (1): 1 MB at 16 Mbit/s = 0.5 s; 100 steps at 50/s = 2 s; 1 MB at 8 Mbit/s = 1 s     → 3.5 s
    C (2): 0.125 + 1 MB at 4 Mbit/s = 2.125 s; 100 at 25/s = 4 s; 0.125 + 1 MB at 2 Mbit/s = 4.125 s → 10.25 s
    """
    return {
        0: DeviceProfile(steps_per_second=100, downlink_bps=8 * MBPS, uplink_bps=4 * MBPS,
                         availability=avail.get("a", 1.0)),
        1: DeviceProfile(steps_per_second=50, downlink_bps=16 * MBPS, uplink_bps=8 * MBPS,
                         availability=avail.get("b", 1.0)),
        2: DeviceProfile(steps_per_second=25, downlink_bps=4 * MBPS, uplink_bps=2 * MBPS, latency_s=0.125,
                         availability=avail.get("c", 1.0)),
    }


def run(policy, profiles, clock=None, seed=0):
    clock = clock or SimClock()
    return policy.run(clock, profiles, bytes_down=MB, bytes_up=MB, steps=100, rng=np.random.default_rng(seed))


def test_synchronous_round_time_is_the_slowest_client_and_accumulates():
    clock = SimClock()
    t = run(Synchronous(), three_clients(), clock)
    assert t.arrival == {0: 4.0, 1: 3.5, 2: 10.25}
    assert (t.start, t.end, t.duration) == (0.0, 10.25, 10.25)
    assert t.used == (0, 1, 2) and t.dropped == () and t.stragglers == ()
    assert t.bytes_down == t.bytes_up == {0: MB, 1: MB, 2: MB}
    t2 = run(Synchronous(), three_clients(), clock)
    assert (t2.start, t2.end, clock.now) == (10.25, 20.5, 20.5)
    assert t2.arrival == {0: 14.25, 1: 13.75, 2: 20.5}


def test_per_client_bytes_and_steps():
    t = Synchronous().run(SimClock(), three_clients(), bytes_down={0: 2 * MB, 1: MB, 2: 0},
                          bytes_up={0: 0, 1: MB, 2: MB}, steps={0: 200, 1: 100, 2: 100},
                          rng=np.random.default_rng(0))
    # A: 2 s + 2 s + 0 s; C: 0.125 + 4 + 4.125
    assert t.arrival == {0: 4.0, 1: 3.5, 2: 8.25}
    assert t.bytes_down == {0: 2 * MB, 1: MB, 2: 0}


def test_deadline_drops_exactly_the_stragglers():
    t = run(Deadline(5.0), three_clients())
    assert t.used == (0, 1) and t.stragglers == (2,) and t.dropped == ()
    assert t.end == 5.0  # someone was late: the server waits until the deadline
    assert t.arrival[2] == 10.25  # the straggler's would-be arrival is reported
    assert t.bytes_down == {0: MB, 1: MB, 2: MB} and t.bytes_up == {0: MB, 1: MB, 2: 0}
    # an arrival exactly at the deadline is on time
    t = run(Deadline(4.0), three_clients())
    assert t.used == (0, 1) and t.stragglers == (2,) and t.end == 4.0
    t = run(Deadline(3.75), three_clients())
    assert t.used == (1,) and t.stragglers == (0, 2) and t.end == 3.75
    # nobody late: the round ends at the last arrival, not at the deadline
    t = run(Deadline(20.0), three_clients())
    assert t.used == (0, 1, 2) and t.stragglers == () and t.end == 10.25


def test_availability_zero_always_drops_and_one_never_does():
    for seed in range(50):
        t = run(Synchronous(), three_clients(c=0.0), seed=seed)
        assert t.dropped == (2,) and t.used == (0, 1) and t.end == 4.0
        assert t.bytes_down[2] == t.bytes_up[2] == 0 and 2 not in t.arrival
    t = run(Deadline(1.0), three_clients(a=0.0, b=0.0, c=0.0))
    assert t.used == () and t.dropped == (0, 1, 2) and t.duration == 0.0
    rng = np.random.default_rng(1)
    half = {i: DeviceProfile(1.0, 1.0, 1.0, availability=0.5) for i in range(4)}
    drops = sum(len(draw_availability(half, rng)[1]) for _ in range(500))
    assert 0.45 < drops / 2000 < 0.55


def test_buffered_async_staleness_on_a_hand_worked_schedule():
    """k = 2, jobs A 4 s, B 3.5 s, C 10.25 s, restarting immediately with the newest model:
    B@3.5 (v0, τ0)  A@4 (v0, τ0)      → v1 at 4     (A restarts on v1, B restarted on v0 at 3.5)
    B@7 (v0, τ1)    A@8 (v1, τ0)      → v2 at 8     (B restarted on v1 at 7, A on v2 at 8)
    C@10.25 (v0, τ2) B@10.5 (v1, τ1)  → v3 at 10.5
    A@12 (v2, τ1)   B@14 (v3, τ0)     → v4 at 14
    """
    clock = BufferedAsync(k=2).clock(three_clients(), bytes_down=MB, bytes_up=MB, steps=100,
                                     rng=np.random.default_rng(0))
    expected = [
        (4.0, [(1, 0, 0, 3.5), (0, 0, 0, 4.0)]),
        (8.0, [(1, 0, 1, 7.0), (0, 1, 0, 8.0)]),
        (10.5, [(2, 0, 2, 10.25), (1, 1, 1, 10.5)]),
        (14.0, [(0, 2, 1, 12.0), (1, 3, 0, 14.0)]),
    ]
    for version, (time, arrivals) in enumerate(expected, start=1):
        batch = clock.next_batch()
        assert batch.version == version and batch.time == time and batch.dropped == ()
        got = [(a.client_id, a.start_version, a.staleness, a.time) for a in batch.arrivals]
        assert got == arrivals
        for a in batch.arrivals:
            assert a.weight == pytest.approx(1 / math.sqrt(1 + a.staleness))
            assert a.server_version == version - 1
        if version == 2:
            assert clock.versions_in_use() == {0, 1, 2}  # C on v0, B on v1, A on v2
    assert clock.now == 14.0
    assert clock.bytes_up == {0: 3 * MB, 1: 4 * MB, 2: MB}


def test_staleness_weight_formula():
    assert [staleness_weight(t) for t in (0, 1, 3, 8)] == [1.0, 1 / math.sqrt(2), 0.5, 1 / 3]
    with pytest.raises(FederationError, match="tau=-1"):
        staleness_weight(-1)


def test_buffered_async_skips_offline_clients_and_refuses_all_offline():
    clock = BufferedAsyncClock(three_clients(b=0.0), 2, bytes_down=MB, bytes_up=MB, steps=100,
                               rng=np.random.default_rng(0))
    batches = [clock.next_batch() for _ in range(5)]
    assert all(a.client_id != 1 for b in batches for a in b.arrivals)
    assert 1 in batches[0].dropped
    with pytest.raises(FederationError, match="availability 0"):
        BufferedAsyncClock(three_clients(a=0.0, b=0.0, c=0.0), 2, bytes_down=MB, bytes_up=MB, steps=100,
                           rng=np.random.default_rng(0))


def _trace(seed):
    profiles = dict(enumerate(make_device_profiles(6, 0.8, seed)))
    rng = np.random.default_rng(seed)
    clock = SimClock()
    sync = [Deadline(0.9).run(clock, profiles, bytes_down=400_000, bytes_up=100_000, steps=500, rng=rng)
            for _ in range(5)]
    aclock = BufferedAsync(3).clock(profiles, bytes_down=400_000, bytes_up=100_000, steps=500, rng=rng,
                                    start=clock.now)
    return profiles, sync, [aclock.next_batch() for _ in range(5)]


def test_everything_is_deterministic_under_a_seed():
    a, b, c = _trace(7), _trace(7), _trace(8)
    assert a == b
    assert a != c


def test_device_profiles_spread_grows_with_heterogeneity():
    same = make_device_profiles(5, 0.0, 3)
    assert len(set(same)) == 1 and same[0].availability == 1.0
    spans = []
    for h in (0.25, 1.0):
        ps = make_device_profiles(200, h, 3)
        speed = np.array([p.steps_per_second for p in ps])
        down = np.array([p.downlink_bps for p in ps]) / MBPS
        spans.append(speed.max() / speed.min())
        if h == 1.0:
            assert 1000 / math.sqrt(10) <= speed.min() and speed.max() <= 1000 * math.sqrt(10)
            assert speed.max() / speed.min() > 7  # spans ~10x
            assert 1.0 <= down.min() < 2.0 and 35 < down.max() <= 50.0
            avail = np.array([p.availability for p in ps])
            assert avail.min() >= 0.8 and 0.05 < 1 - avail.mean() < 0.15  # Bonawitz et al.: 6-10 % drop
    assert spans[0] < spans[1]
    assert make_device_profiles(4, 0.5, 1) == make_device_profiles(4, 0.5, 1)
    assert make_device_profiles(4, 0.5, 1) != make_device_profiles(4, 0.5, 2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"steps_per_second": 0.0}, r"steps_per_second=0\.0 .*> 0"),
    ({"uplink_bps": -1.0}, r"uplink_bps=-1\.0 .*> 0"),
    ({"downlink_bps": float("nan")}, r"downlink_bps=nan must be finite"),
    ({"availability": 1.5}, r"availability=1\.5 .*\[0, 1\]"),
    ({"latency_s": -0.1}, r"latency_s=-0\.1 .*>= 0"),
    ({"steps_per_second": "fast"}, r"steps_per_second='fast' must be a number"),
])
def test_bad_profiles_are_refused(kwargs, match):
    base = {"steps_per_second": 10.0, "uplink_bps": 1e6, "downlink_bps": 1e6}
    with pytest.raises(FederationError, match=match):
        DeviceProfile(**{**base, **kwargs})


def test_bad_policy_inputs_are_refused():
    with pytest.raises(FederationError, match=r"heterogeneity=1\.5 .*\[0, 1\]"):
        make_device_profiles(3, 1.5, 0)
    with pytest.raises(FederationError, match="unknown round policy 'x'; allowed: synchronous, deadline"):
        make_round_policy("x")
    with pytest.raises(FederationError, match=r"deadline_s=0"):
        make_round_policy("deadline", deadline_s=0)
    with pytest.raises(FederationError, match="allowed: deadline_s"):
        make_round_policy("deadline", timeout=3)
    with pytest.raises(FederationError, match=r"k=0"):
        make_round_policy("buffered-async", k=0)
    with pytest.raises(FederationError, match=r"no entry for clients \[2\]"):
        Synchronous().run(SimClock(), three_clients(), bytes_down={0: 1, 1: 1}, bytes_up=1, steps=1,
                          rng=np.random.default_rng(0))
    assert isinstance(make_round_policy("synchronous"), Synchronous)
    assert make_round_policy("buffered-async", k=4).params() == {"round_policy": "buffered-async", "k": 4}
