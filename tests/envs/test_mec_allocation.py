"""Tests of the multi-host MEC allocation env (envs/mec_allocation.py): capacity, shared-pool conservation,
the physics it takes from mec_offloading, determinism, heuristics and the suite's checks."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from envs.check import check_env_entry
from envs.mec_allocation import (
    ENTRY,
    PARALLEL_BASELINES,
    MecAllocationConfig,
    make_client_configs,
    normalise_shares,
    parallel_env,
    pool_grants,
    service_time,
    uplink_rate,
)
from envs.mec_offloading import MecOffloadingConfig
from envs.registry import EnvConfigError, register_entry
from federation.evaluation import evaluate_parallel

if ENTRY.env_id not in gym.registry:
    register_entry(ENTRY)


def test_registered_entry_passes_every_suite_check():
    assert check_env_entry(ENTRY)


def test_shares_sum_to_one_and_pool_grants_are_conserved():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.random((3, 5)) * (rng.random((3, 5)) < 0.7)
        s = normalise_shares(w)
        assert np.all(s >= 0.0) and np.allclose(s.sum(-1), 1.0)
        claims = rng.random(4) * rng.integers(0, 2, 4)
        g = pool_grants(claims)
        assert np.all(g >= 0.0) and g.sum() <= 1.0 + 1e-12
        if claims.sum() <= 1.0:
            np.testing.assert_allclose(g, claims)          # nobody is cut when the pool suffices
        else:
            np.testing.assert_allclose(g.sum(), 1.0)        # oversubscribed: the whole pool, in claim ratio
            np.testing.assert_allclose(g / g.sum(), claims / claims.sum())
    np.testing.assert_allclose(normalise_shares(np.zeros((2, 4))), 0.25)   # all-zero weights: equal shares
    np.testing.assert_allclose(pool_grants(np.array([5.0, -1.0, np.nan])), [1.0, 0.0, 0.0])  # clipped


def test_every_step_respects_host_capacity_and_the_pool():
    env = parallel_env(n_hosts=4, users_per_host=3, episode_slots=30)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=3)
    region = env.region
    pool_total = []
    while env.agents:
        acts = {a: (2.0 * rng.random(env.action_space(a).shape) - rng.integers(0, 2)).astype(np.float32)
                for a in env.agents}
        _, rew, _, _, infos = env.step(acts)
        cpu, bw, grants = region.last_shares
        assert np.allclose(cpu.sum(-1), 1.0) and np.allclose(bw.sum(-1), 1.0)
        assert grants.sum() <= 1.0 + 1e-12
        pool_total.append(sum(i["pool_share"] for i in infos.values()))
        for i in infos.values():
            assert 0.0 <= i["served"] <= 1.0 and i["served_tasks"] <= i["tasks"]
            assert 0.0 <= i["utility"] <= i["tasks"] / region.norm + 1e-9   # a served task earns at most 1
            if "delay" in i:
                assert 0.0 < i["delay"] <= env.config.deadline_max_s
    assert max(pool_total) <= 1.0 + 1e-12


def test_physics_is_mec_offloadings_and_the_pool_helps_after_its_latency():
    cfg, mec = MecAllocationConfig(), MecOffloadingConfig()
    for k in ("task_size_min_mbit", "task_size_max_mbit", "density_min", "density_max", "tx_power_dbm",
              "noise_psd_dbm_hz", "bs_antenna_gain_dbi", "shadowing_std_db", "bandwidth_mhz"):
        assert getattr(cfg, k) == getattr(mec, k), k
    # OFDMA rate: the whole band is Shannon's B log2(1 + SNR); a share is worth less than the whole, more than
    # its proportion (the noise shrinks with the band)
    snr, band = np.array(100.0), np.array(10e6)
    np.testing.assert_allclose(uplink_rate(np.array(1.0), band, snr), 10e6 * np.log2(101.0))
    half = float(uplink_rate(np.array(0.5), band, snr))
    assert 0.5 * 10e6 * np.log2(101.0) < half < 10e6 * np.log2(101.0)
    assert uplink_rate(np.array(0.0), band, snr) == 0.0
    # service: below edge rate x latency the pool has not joined yet; beyond it, it shortens the task
    edge, pool, lat = np.array(1e9), np.array(2e9), 0.01
    np.testing.assert_allclose(service_time(np.array(5e6), edge, pool, lat), 5e-3)
    t = float(service_time(np.array(3e9), edge, pool, lat))
    np.testing.assert_allclose(t, (3e9 + 2e9 * lat) / 3e9)
    assert t < 3.0
    assert service_time(np.array(1.0), np.array(0.0), np.array(0.0), lat) == np.inf


def test_a_selfish_claim_takes_pool_capacity_from_the_other_hosts():
    env = parallel_env(n_hosts=3, episode_slots=5)
    obs, _ = env.reset(seed=0)
    prop = PARALLEL_BASELINES["proportional"](env, 0)(obs)
    base = pool_grants(0.5 * (np.array([prop[a][-1] for a in env.possible_agents]) + 1.0))  # action box -> [0, 1]
    grabbing = {**prop, "host_0": np.concatenate([prop["host_0"][:-1], [1.0]]).astype(np.float32)}
    _, _, _, _, infos = env.step(grabbing)
    after = np.array([infos[a]["pool_share"] for a in env.possible_agents])
    assert after[0] > base[0] and np.all(after[1:] < base[1:])       # the coupling between hosts
    assert after.sum() <= 1.0 + 1e-12


def test_same_seed_same_trajectory_other_seed_differs():
    def trace(seed):
        env = parallel_env(episode_slots=20)
        obs, _ = env.reset(seed=seed)
        pol = PARALLEL_BASELINES["random"](env, 5)
        out = [np.stack([obs[a] for a in env.possible_agents])]
        while env.agents:
            obs, rew, *_ = env.step(pol(obs))
            out += [np.stack([obs[a] for a in obs]), np.array(list(rew.values()))]
        return out

    a, b, c = trace(7), trace(7), trace(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_demand_aware_heuristics_beat_equal_and_random_shares():
    env = parallel_env()
    seeds = [11, 12, 13, 14]
    team = {n: evaluate_parallel(env, f(env, 0), seeds, ENTRY.kpis, joint=True) for n, f in PARALLEL_BASELINES.items()}
    assert team["proportional"]["return"] > team["equal"]["return"] > team["random"]["return"]
    assert team["greedy"]["return"] > team["equal"]["return"]
    assert team["proportional"]["served"] > team["random"]["served"] + 0.1


def test_bad_input_is_refused_by_name():
    env = parallel_env()
    env.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction, match="shape"):
        env.step({"host_0": np.zeros(3, np.float32)})
    with pytest.raises(gym.error.InvalidAction, match="unknown agent"):
        env.step({"host_9": np.zeros(env.action_space("host_0").shape, np.float32)})
    with pytest.raises(EnvConfigError, match="n_hosts"):
        parallel_env(n_hosts=1)
    with pytest.raises(EnvConfigError, match="delay_weight"):
        MecAllocationConfig(delay_weight=0.8, energy_weight=0.5)
    with pytest.raises(EnvConfigError, match="deadline_min_s"):
        MecAllocationConfig(deadline_min_s=2.0, deadline_max_s=1.0)
    with pytest.raises(EnvConfigError, match="background_policy"):
        gym.make(ENTRY.env_id, background_policy="nope")


def test_client_configs_keep_the_spaces_and_vary_the_region():
    cfgs = make_client_configs(5, 1.0, 2)
    assert len({(c.n_hosts, c.users_per_host) for c in cfgs}) == 1
    assert len({c.host_cpu_ghz for c in cfgs}) == 5 and len({c.cloud_cpu_ghz for c in cfgs}) == 5
    assert make_client_configs(3, 0.0, 9) == [MecAllocationConfig()] * 3
    base = dataclasses.replace(MecAllocationConfig(), n_hosts=5)
    assert all(c.n_hosts == 5 for c in make_client_configs(3, 0.5, 1, base))


def test_gymnasium_form_is_host_0_among_heuristic_hosts():
    env = gym.make(ENTRY.env_id, episode_slots=10)
    obs, _ = env.reset(seed=4)
    assert obs.shape == (4 * 4 + 6,)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        total += r
        steps += 1
        assert set(ENTRY.kpis) <= set(info)
        if term or trunc:
            break
    assert steps == 10 and np.isfinite(total)
