"""Tests of the C-V2X sidelink spectrum-sharing env (envs/cv2x.py)."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test, parallel_seed_test

from envs.cv2x import (
    BASELINES,
    ENTRY,
    PARALLEL_BASELINES,
    CV2XConfig,
    CV2XEnv,
    _block_rayleigh,
    make_client_configs,
    parallel_env,
    pathloss_v2i_db,
    pathloss_v2v_db,
)
from envs.registry import EnvConfigError, register_entry

if ENTRY.env_id not in gym.registry:
    register_entry(ENTRY)

KPIS = ("v2i_capacity", "v2v_delivery_prob", "v2v_delivery", "v2v_rate")


def run_gym(env: gym.Env, policy, seed: int) -> tuple[float, list[dict]]:
    obs, _ = env.reset(seed=seed)
    total, infos = 0.0, []
    while True:
        obs, r, term, trunc, info = env.step(policy(obs))
        total += r
        infos.append(info)
        if term or trunc:
            return total, infos


def run_parallel(env, policy, seed: int) -> tuple[float, dict]:
    obs, _ = env.reset(seed=seed)
    total, info = 0.0, {}
    while env.agents:
        obs, rew, _, _, infos = env.step(policy(obs))
        total += rew["link_0"]
        info = infos["link_0"]
    return total, info


# ---------------------------------------------------------------------- API conformance
@pytest.mark.parametrize("kw", [{}, {"scenario": "highway", "background_policy": "random"},
                                {"background_policy": "greedy", "n_v2v": 1}])
def test_check_env(kw):
    check_env(gym.make(ENTRY.env_id, **kw).unwrapped)


def test_gym_make_and_episode_contract():
    env = gym.make(ENTRY.env_id)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and info == {}
    rng = np.random.default_rng(0)
    for t in range(100):
        obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        assert env.observation_space.contains(obs)
        assert math.isfinite(r) and not term
        assert all(isinstance(info[k], float) and math.isfinite(info[k]) for k in KPIS)
        assert trunc == (t == 99)
    assert "v2v_delivered_at_deadline" in info
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.step(0)


def test_parallel_api_and_seed():
    parallel_api_test(parallel_env(), num_cycles=150)
    parallel_api_test(parallel_env(scenario="highway", n_v2v=2), num_cycles=120)
    parallel_seed_test(lambda: parallel_env(), num_cycles=150)


def test_parallel_env_accepts_config_object_and_fields():
    cfg = CV2XConfig(n_v2v=3, payload_bytes=1060.0)
    a, b = parallel_env(config=cfg), parallel_env(n_v2v=3, payload_bytes=1060.0)
    assert a.possible_agents == b.possible_agents == ["link_0", "link_1", "link_2"]
    assert a.observation_space("link_1") is a.observation_space("link_1")
    assert a.action_space("link_0").n == 16


# ---------------------------------------------------------------------- determinism
def test_seeded_determinism_including_continued_world():
    def trajectory():
        env = CV2XEnv()
        out = []
        for ep, seed in enumerate((7, None, None)):
            obs, _ = env.reset(seed=seed)
            out.append(obs.copy())
            for t in range(100):
                obs, r, _, _, info = env.step((3 * t + ep) % 16)
                out.append(np.append(obs, [r, info["v2i_capacity"], info["v2v_delivery"]]))
        return np.concatenate(out)

    a, b = trajectory(), trajectory()
    np.testing.assert_array_equal(a, b)
    env = CV2XEnv()
    o1, _ = env.reset(seed=7)
    o2, _ = env.reset(seed=8)
    assert not np.array_equal(o1, o2)


def test_continued_world_moves_vehicles_by_speed():
    env = CV2XEnv()
    env.reset(seed=1)
    sim = env.sim
    odo = sim.odo.copy()
    env.reset()                                                # continue: one 100 ms period later
    np.testing.assert_allclose(sim.odo - odo, sim.speed * 0.1)
    assert np.all(sim.speed >= 36 / 3.6 - 1e-9) and np.all(sim.speed <= 54 / 3.6 + 1e-9)


# ---------------------------------------------------------------------- configs and heterogeneity
def test_heterogeneity_zero_identical_and_positive_differs():
    base = CV2XConfig()
    same = make_client_configs(5, 0.0, seed=1, base=base)
    assert all(c == base for c in same)
    diff = make_client_configs(6, 0.6, seed=1)
    assert len({dataclasses.astuple(c) for c in diff}) == 6
    for c in diff:                                             # spaces stay federatable
        assert (c.n_rb, c.n_v2v, c.v2v_power_levels_dbm) == (base.n_rb, base.n_v2v, base.v2v_power_levels_dbm)
    full = make_client_configs(8, 1.0, seed=2)
    assert sum(c.scenario == "highway" for c in full) == 4
    assert all(c.speed_min_kmh >= 35 for c in full if c.scenario == "highway")
    assert make_client_configs(4, 0.4, seed=3) == make_client_configs(4, 0.4, seed=3)
    assert all(c.scenario == "urban" for c in make_client_configs(8, 0.5, seed=2))


def test_heterogeneity_spread_grows():
    def spread(h):
        cs = make_client_configs(40, h, seed=0)
        return np.std(np.log([c.payload_bytes for c in cs]))
    assert spread(0.0) < 1e-12 < spread(0.2) < spread(0.8)


@pytest.mark.parametrize("bad", [dict(n_clients=0, heterogeneity=0.5), dict(n_clients=3, heterogeneity=1.5),
                                 dict(n_clients=3, heterogeneity=-0.1)])
def test_make_client_configs_rejects_bad_input(bad):
    with pytest.raises(EnvConfigError, match="n_clients|heterogeneity"):
        make_client_configs(seed=0, **bad)


@pytest.mark.parametrize("field,value", [("payload_bytes", -1.0), ("v2i_weight", 1.5), ("n_v2v", 0),
                                         ("vehicle_density", 100.0), ("shadow_std_v2v_db", 30.0),
                                         ("deadline_ms", 5), ("n_rb", 2.5)])
def test_out_of_range_knob_raises_naming_it(field, value):
    with pytest.raises(EnvConfigError, match=field):
        CV2XEnv(**{field: value})


def test_other_config_errors():
    with pytest.raises(EnvConfigError, match="allowed: .*payload_bytes"):
        CV2XEnv(payload=3)
    with pytest.raises(EnvConfigError, match="scenario='rural'.*urban, highway"):
        CV2XConfig(scenario="rural")
    with pytest.raises(EnvConfigError, match="background_policy"):
        CV2XConfig(background_policy="fifo")
    with pytest.raises(EnvConfigError, match="speed_min_kmh"):
        CV2XConfig(speed_min_kmh=60.0, speed_max_kmh=50.0)
    with pytest.raises(EnvConfigError, match="v2v_power_levels_dbm"):
        CV2XConfig(v2v_power_levels_dbm=(23.0, 99.0))
    assert CV2XConfig.preset("highway").speed_max_kmh == 140.0


# ---------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_gym_baseline_runs(name):
    env = gym.make(ENTRY.env_id)
    ret, infos = run_gym(env, BASELINES[name](env, 0), seed=0)
    assert math.isfinite(ret) and len(infos) == 100


@pytest.mark.parametrize("name", sorted(PARALLEL_BASELINES))
def test_every_parallel_baseline_runs(name):
    env = parallel_env(n_v2v=2)
    ret, info = run_parallel(env, PARALLEL_BASELINES[name](env, 0), seed=0)
    assert math.isfinite(ret) and 0.0 <= info["v2v_delivered_at_deadline"] <= 1.0


def test_exhaustive_refuses_large_instances():
    with pytest.raises(EnvConfigError, match="exhaustive.*n_v2v=5"):
        PARALLEL_BASELINES["exhaustive"](parallel_env(n_v2v=5), 0)


def test_sanity_ordering_parallel():
    """Mean return over 10 seeds, K = 3 links: exhaustive >= greedy >= random.

    Measured: exhaustive 95.6, greedy 95.0, random 82.0. The exhaustive oracle searches all joint actions
    every slot (with a deadline-aware objective) but is not optimal over the whole period: on 1 of these
    10 seeds greedy beats it, so only the mean ordering is asserted.
    """
    means = {}
    for name in ("exhaustive", "greedy", "random"):
        env = parallel_env(n_v2v=3)
        means[name] = np.mean([run_parallel(env, PARALLEL_BASELINES[name](env, s), s)[0] for s in range(10)])
    assert means["exhaustive"] >= means["greedy"] >= means["random"] + 5.0


def test_sps_beats_random_on_delivery():
    """Default sizes, 20 seeds: 3GPP SPS (max power, sensing) delivers more payloads than random choices."""
    deliv = {}
    for name in ("sps", "random"):
        env = parallel_env()
        deliv[name] = np.mean([run_parallel(env, PARALLEL_BASELINES[name](env, s), s)[1]
                               ["v2v_delivered_at_deadline"] for s in range(20)])
    assert deliv["sps"] > deliv["random"] + 0.03


def test_sanity_ordering_gym_form():
    """Link 0 among SPS background links, 20 seeds: best response >= greedy >= random (mean return)."""
    env = CV2XEnv()
    means = {name: np.mean([run_gym(env, BASELINES[name](env, s), s)[0] for s in range(20)])
             for name in ("exhaustive", "greedy", "random")}
    assert means["exhaustive"] >= means["greedy"] >= means["random"]


# ---------------------------------------------------------------------- physics and bookkeeping
def test_v2i_pathloss_values():
    np.testing.assert_allclose(pathloss_v2i_db(np.array([1000.0, 100.0])), [128.1, 128.1 - 37.6])


def test_v2v_pathloss_winner_b1():
    d = np.array([3.0, 10.0, 50.0, 200.0])
    los = pathloss_v2v_db(d, np.zeros(4), 2.0, 1.5, 1.5, False, 14.0)
    # beyond the breakpoint (6.7 m at 2 GHz, h' = 0.5 m): 40 log10 d + 9.45 - 2 * 17.3 log10 0.5 + 2.7 log10 0.4
    expect = 40 * np.log10(d) + 9.45 - 34.6 * np.log10(0.5) + 2.7 * np.log10(0.4)
    np.testing.assert_allclose(los[1:], expect[1:])
    assert los[0] == pytest.approx(22.7 * np.log10(3) + 41 + 20 * np.log10(0.4))   # below d_BP, 3 m floor
    nlos = pathloss_v2v_db(np.array([100.0]), np.array([100.0]), 2.0, 1.5, 1.5, False, 14.0)
    assert nlos[0] > pathloss_v2v_db(np.array([100.0]), np.array([100.0]), 2.0, 1.5, 1.5, True, 14.0)[0]
    assert np.all(np.diff(los) > 0)

    def pl_los(d):
        return 40 * np.log10(d) + 9.45 - 34.6 * np.log10(0.5) + 2.7 * np.log10(0.4)

    def pl_nlos(dk, dl):                                     # WINNER+ B1 Manhattan NLOS, n_j from d_k
        nj = max(2.8 - 0.0024 * dk, 1.84)
        return pl_los(dk) + 20 - 12.5 * nj + 10 * nj * np.log10(dl) + 3 * np.log10(0.4)

    got = pathloss_v2v_db(np.array([200.0, 50.0]), np.array([50.0, 200.0]), 2.0, 1.5, 1.5, False, 14.0)
    np.testing.assert_allclose(got, min(pl_nlos(200, 50), pl_nlos(50, 200)))
    assert pathloss_v2v_db(np.array([200.0]), np.array([10.0]), 2.0, 1.5, 1.5, False, 14.0)[0] == \
        pytest.approx(pl_los(np.hypot(200.0, 10.0)))        # same road (|dy| < road width): LOS


def test_block_fading_statistics_and_coherence():
    rng = np.random.default_rng(0)
    slow = _block_rayleigh(np.full(400, 20.0), 101, rng)     # T_c = 21 ms: 21-slot blocks
    fast = _block_rayleigh(np.full(400, 500.0), 101, rng)    # T_c < 1 ms: i.i.d. per slot
    assert slow.mean() == pytest.approx(1.0, abs=0.1) and fast.mean() == pytest.approx(1.0, abs=0.03)
    assert np.mean(slow[1:] == slow[:-1]) == pytest.approx(20 / 21, abs=0.02)
    assert np.mean(fast[1:] == fast[:-1]) == 0.0


def test_pair_shadowing_gudmundson():
    env = CV2XEnv(shadow_std_v2v_db=3.0)
    env.reset(seed=0)
    sim, rng = env.sim, np.random.default_rng(0)
    a, b = np.arange(0, 20), np.arange(20, 40)
    s0 = sim._pair_shadowing(a, b, rng)
    np.testing.assert_array_equal(sim._pair_shadowing(b, a, rng), s0)      # symmetric, nobody moved
    sim.odo[:] += 1000.0                                                    # far beyond 10 m: fresh
    s1 = sim._pair_shadowing(a, b, rng)
    assert not np.allclose(s1, s0)
    many = np.concatenate([sim._pair_shadowing(np.arange(i, i + 1), np.arange(i + 1, sim.n_veh), rng)
                           for i in range(sim.n_veh - 1)])
    assert np.std(many) == pytest.approx(3.0, rel=0.1)


def test_vehicles_stay_on_lanes_and_turn_with_tr36885_probabilities():
    env = CV2XEnv(vehicle_density=20.0, speed_min_kmh=200.0, speed_max_kmh=250.0)
    env.reset(seed=0)
    sim = env.sim
    turns, crossings = 0, 0
    for _ in range(200):
        axis, road, s = sim.axis.copy(), sim.road.copy(), sim.s.copy()
        b = np.where(axis == 0, 250.0, 433.0)
        u0 = sim.sgn * s / b
        crossed = np.floor(u0 + sim.speed * 0.1 / b) > np.floor(u0)
        env.reset()
        crossings += int(crossed.sum())
        turns += int((crossed & (sim.axis != axis)).sum())
        assert np.all((road >= 0) & (road < 3))
    lane_off = np.where(sim.axis == 0, np.mod(sim.y, 433.0), np.mod(sim.x, 250.0))
    lane_off = np.minimum(lane_off, np.where(sim.axis == 0, 433.0, 250.0) - lane_off)
    assert np.all(lane_off <= 2 * 3.5 + 1e-9)
    assert turns / crossings == pytest.approx(0.5, abs=0.05)


def test_reward_formula_and_kpis_first_slot():
    env = CV2XEnv(v2i_weight=0.3)
    env.reset(seed=4)
    _, r, _, _, info = env.step(0)                            # no payload delivered in the first slot
    if info["v2v_delivery"] == 0.0:
        expect = 0.3 * info["v2i_capacity"] / (10 * 4) + 0.7 * (info["v2v_rate"] / 10) / 4
        assert r == pytest.approx(expect)
    assert info["v2i_capacity"] > 0.0


def test_delivery_prob_kpi_averages_to_final_fraction():
    env = CV2XEnv(background_policy="random")
    for seed in range(3):
        _, infos = run_gym(env, BASELINES["greedy"](env, seed), seed)
        mean_prob = np.mean([i["v2v_delivery_prob"] for i in infos])
        assert mean_prob == pytest.approx(infos[-1]["v2v_delivered_at_deadline"])
        assert infos[-1]["v2v_delivery"] == infos[-1]["v2v_delivered_at_deadline"]


def test_cochannel_interference_and_silent_delivered_links():
    env = parallel_env(n_v2v=2, payload_bytes=50_000.0)
    env.reset(seed=2)
    sim = env.unwrapped.sim
    P = sim.P
    alone = sim.score(np.array([[0, P - 1]]))[0]               # link 1 "off" (-100 dBm) on another RB
    shared = sim.score(np.array([[0, 0]]))[0]                  # both at 23 dBm on RB 0
    split = sim.score(np.array([[0, P]]))[0]                   # link 1 at 23 dBm on RB 1
    assert split > alone and split >= shared
    # score() and step() agree; a delivered link stops interfering
    acts = np.array([0, 0])
    predicted = sim.score(acts[None, :])[0]
    _, rew, _, _, _ = env.step({"link_0": 0, "link_1": 0})
    assert rew["link_0"] == pytest.approx(predicted)
    sim.rem[1] = 0.0
    sim.active[1] = False
    sim.n_delivered = 1
    np.testing.assert_allclose(sim.score(np.array([[0, 0], [0, 5]])), sim.score(np.array([[0, 0]]))[0])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), scenario=st.sampled_from(["urban", "highway"]),
       density=st.floats(0.5, 20.0), speed=st.floats(5.0, 200.0), shadow=st.floats(0.0, 12.0),
       payload=st.floats(100.0, 20_000.0), k=st.integers(1, 5), r=st.integers(1, 6))
def test_property_obs_in_space_and_step_matches_score(seed, scenario, density, speed, shadow, payload, k, r):
    env = parallel_env(scenario=scenario, vehicle_density=density, speed_min_kmh=speed,
                       speed_max_kmh=speed, shadow_std_v2v_db=shadow, payload_bytes=payload, n_v2v=k, n_rb=r)
    obs, _ = env.reset(seed=seed)
    sim = env.unwrapped.sim
    space = env.observation_space("link_0")
    rng = np.random.default_rng(seed)
    for _ in range(30):
        assert all(space.contains(o) for o in obs.values())
        acts = rng.integers(sim.A, size=k)
        predicted = sim.score(acts[None, :])[0]
        obs, rew, _, _, _ = env.step({f"link_{i}": int(a) for i, a in enumerate(acts)})
        assert rew["link_0"] == pytest.approx(predicted, rel=1e-9, abs=1e-12)
