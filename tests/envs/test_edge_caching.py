"""Tests for ``frl/EdgeCaching-v0``: API contract, internal consistency, and the simulator's regression checks.

Regression (IRM, one BS, no drift, no neighbours, F = 1000, C = 100, s = 0.8): LFU and ``popularity-top-c``
reach the Zipf top-C mass (≈ 0.526); LRU reaches Che's approximation (≈ 0.378, Che, Tung & Wang 2002);
FIFO and RANDOM reach the characteristic-time approximation ``h_i = p_i T / (1 + p_i T)`` (≈ 0.334; FIFO and
RANDOM have equal hit ratios under IRM, Gelenbe 1973; approximation of Martina, Garetto & Leonardi 2014).
"""

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.edge_caching import (
    BASELINES,
    ENTRY,
    N_FEATURES,
    EdgeCachingConfig,
    EdgeCachingEnv,
    che_lru_hit_ratio,
    make_client_configs,
    site_graph,
    zipf_pmf,
)
from envs.registry import EnvConfigError, register_entry

if ENTRY.env_id not in gym.registry:
    register_entry(ENTRY)

IRM = dict(drift_rate=0.0, overlap=1.0, n_neighbors=0, n_items=1000, cache_size=100, zipf_exponent=0.8)
ENTRY_K = EdgeCachingConfig().n_lru_candidates + EdgeCachingConfig().n_lfu_candidates + 2   # candidate slots


def _episode(env, policy_name, seed, **_):
    """Run one episode with a baseline; return the env's request-level KPIs and the info-weighted ones."""
    policy = BASELINES[policy_name](env, seed)
    obs, _ = env.reset(seed=seed)
    n = hits = nb = delay = 0.0
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(policy(obs))
        w = info["requests"]
        n += w
        hits += info["hit"] * w
        nb += info["neighbor_hit"] * w
        delay += info["delay"] * w
        done = term or trunc
    weighted = {"hit": hits / n, "neighbor_hit": nb / n, "delay": delay / n, "requests": n}
    return env.unwrapped.episode_kpis(), weighted


def _hit(env, name, seeds):
    return float(np.mean([_episode(env, name, s)[0]["hit"] for s in seeds]))


# ---------------------------------------------------------------------------------------------- API contract
def test_check_env_and_make():
    env = gym.make(ENTRY.env_id)
    check_env(env.unwrapped)
    check_env(gym.make(ENTRY.env_id, render_mode="ansi").unwrapped)
    assert env.spec.max_episode_steps is None
    assert env.action_space.n == ENTRY_K + 1
    assert env.observation_space.shape == ((ENTRY_K + 1) * N_FEATURES,)
    assert isinstance(EdgeCachingEnv(render_mode="ansi").render(), str)


def test_observations_in_space_info_numeric_and_weighted_kpis_consistent():
    env = gym.make(ENTRY.env_id, episode_requests=2000)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    total = 0
    done = False
    while not done:
        assert env.observation_space.contains(obs)
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert not term
        for k in (*ENTRY.kpis, "requests"):
            assert np.isfinite(float(info[k]))
        assert 0.0 <= info["hit"] < 1.0 and 0.0 <= info["neighbor_hit"] <= 1.0
        assert 10.0 <= info["delay"] <= 100.0
        # reward = saved delay in units of a local hit, summed over the step's requests
        assert reward == pytest.approx(info["requests"] * (100.0 - info["delay"]) / 90.0)
        total += info["requests"]
        done = trunc
    assert env.observation_space.contains(obs)
    assert total == 2000 == env.unwrapped.episode_kpis()["requests"]


@pytest.mark.parametrize("name", ["popularity-top-c", "random"])
def test_episode_covers_exactly_episode_requests(name):
    """Truncation happens at the first miss at or after the budget; requests past it are not counted."""
    env = EdgeCachingEnv(episode_requests=300)
    for seed in range(12):
        _, weighted = _episode(env, name, seed)
        assert weighted["requests"] == 300, seed
        assert env._t_miss >= env._end_t == env._t_start + 300


def test_weighted_info_equals_episode_kpis():
    env = EdgeCachingEnv(episode_requests=3000)
    ep, weighted = _episode(env, "lru", 3)
    for k in ("hit", "neighbor_hit", "delay", "requests"):
        assert weighted[k] == pytest.approx(ep[k], rel=1e-9)


def test_seeded_determinism_and_policy_independent_requests():
    def trace(seed, actions):
        env = EdgeCachingEnv()
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            obs, r, _, trunc, info = env.step(a)
            out += [obs, np.array([r, info["requests"], trunc])]
        return out

    acts = np.random.default_rng(0).integers(0, ENTRY_K + 1, 300).tolist()
    a, b, c = trace(5, acts), trace(5, acts), trace(6, acts)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))

    # the request stream does not depend on the actions: the same content is requested at the same time
    def requests(actions):
        env = EdgeCachingEnv()
        env.reset(seed=9)
        seen = {env.unwrapped._t_miss: env.request}
        for a_ in actions:
            env.step(a_)
            seen[env._t_miss] = env.request
        return seen

    r1, r2 = requests([ENTRY_K] * 200), requests([0] * 200)
    common = set(r1) & set(r2)
    assert len(common) > 50 and all(r1[t] == r2[t] for t in common)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1),
       actions=st.lists(st.integers(0, 1000), min_size=1, max_size=120),
       cfg=st.fixed_dictionaries({
           "n_items": st.sampled_from([100, 300, 1000]),
           "cache_size": st.sampled_from([10, 40, 99]),
           "drift_rate": st.sampled_from([0.0, 0.01, 0.2]),
           "overlap": st.floats(0.0, 1.0),
           "n_neighbors": st.integers(0, 18),
           "warmup_requests": st.sampled_from([0, 50, 1000]),
           "zipf_exponent": st.floats(0.1, 2.0),
           "window_short": st.sampled_from([2, 10, 100]),     # 2: count renormalisation every 40 requests
           "n_lfu_candidates": st.sampled_from([0, 1, 4, 10]),
       }))
def test_cache_bookkeeping_invariants(seed, actions, cfg):
    """After any action sequence: the cache holds C distinct contents, every lookup structure agrees, the
    candidates are exactly the LRU / LFU / FIFO victims recomputed from scratch, and observations are legal."""
    cfg = dict(cfg, cache_size=min(cfg["cache_size"], cfg["n_items"] - 1))
    env = EdgeCachingEnv(**cfg)
    actions = [a % env.action_space.n for a in actions]
    obs, _ = env.reset(seed=seed)
    c = env.cache_size
    for a in actions:
        assert env.observation_space.contains(obs)
        cache = env._cachel
        assert len(set(cache)) == c and env._cache.tolist() == cache
        assert set(env._lru) == set(cache) == set(env._fifo)
        assert sum(env._inc) == c and all(env._inc[i] for i in cache)
        assert all(env._slot_of[i] == s for s, i in enumerate(cache))
        assert not env._inc[env.request]
        cand = env.candidates.tolist()
        last = env._state[:, env._LAST]
        lru = sorted(cache, key=lambda i: last[i])[:env._k_lru]
        assert cand[:env._k_lru] == lru
        lfu_true = np.sort(env._state[cache, 2])[:env._k_lfu]
        np.testing.assert_allclose(env._state[cand[env._k_lru:env._k_lru + env._k_lfu], 2], lfu_true)
        assert cand[env.fifo_slot] == list(env._fifo)[0]
        ins = env._state[:, env._INS]
        assert ins[cand[env.fifo_slot]] == min(ins[i] for i in cache)
        assert set(cand) <= set(cache)
        obs, _, _, trunc, _ = env.step(a)
        if trunc:
            obs, _ = env.reset()


# --------------------------------------------------------------------------------------------- configuration
def test_heterogeneity_zero_identical_positive_different_same_spaces():
    same = make_client_configs(5, 0.0, 1)
    assert all(c == EdgeCachingConfig() for c in same)
    diverse = make_client_configs(6, 1.0, 1)
    for knob in ("zipf_exponent", "overlap", "drift_rate", "cache_size", "n_neighbors"):
        assert len({getattr(c, knob) for c in diverse}) > 1, knob
    assert make_client_configs(6, 0.5, 7) == make_client_configs(6, 0.5, 7)
    spaces = {(repr(EdgeCachingEnv(c).observation_space), repr(EdgeCachingEnv(c).action_space)) for c in diverse}
    assert len(spaces) == 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), h=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_client_configs_legal_and_spread_grows_with_heterogeneity(n, h, seed):
    cfgs = make_client_configs(n, h, seed)
    base = EdgeCachingConfig()
    assert len(cfgs) == n
    for c in cfgs:                       # every config passed validation; spread bounded by h
        assert abs(c.zipf_exponent - base.zipf_exponent) <= 0.3 * h + 1e-12
        assert abs(c.overlap - base.overlap) <= 0.4 * h + 1e-12
        assert 4.0 ** -h - 1e-12 <= c.drift_rate / base.drift_rate <= 4.0 ** h + 1e-12
        assert c.n_lru_candidates == base.n_lru_candidates and c.n_lfu_candidates == base.n_lfu_candidates
        assert c.episode_requests == base.episode_requests


@pytest.mark.parametrize(("knob", "bad"), [
    ("zipf_exponent", 2.5), ("overlap", -0.1), ("overlap", 1.5), ("drift_rate", 0.5), ("n_neighbors", 19),
    ("cache_size", 5), ("n_items", 50), ("episode_requests", 10), ("n_lru_candidates", 0),
    ("cloud_delay_ms", 0.0), ("window_short", 1),
])
def test_out_of_range_knob_names_itself(knob, bad):
    with pytest.raises(EnvConfigError, match=knob):
        EdgeCachingConfig(**{knob: bad})
    with pytest.raises(EnvConfigError, match=knob):
        gym.make(ENTRY.env_id, **{knob: bad})


@pytest.mark.parametrize("kwargs", [
    dict(cache_size=1000), dict(neighbor_delay_ms=5.0), dict(window_mid=50), dict(n_lru_candidates=16,
                                                                                   cache_size=10),
    dict(drift_interval=10_000, window_short=50), dict(n_neighbors=2.5), dict(overlap="0.5"),
])
def test_inconsistent_or_mistyped_configs_refused(kwargs):
    with pytest.raises(EnvConfigError):
        EdgeCachingConfig(**kwargs)


def test_bad_inputs_refused():
    with pytest.raises(EnvConfigError, match="no_such_knob"):
        EdgeCachingEnv(no_such_knob=1)
    for bad in (-0.1, 1.1):
        with pytest.raises(EnvConfigError, match="heterogeneity"):
            make_client_configs(3, bad, 0)
    with pytest.raises(EnvConfigError, match="n_clients"):
        make_client_configs(0, 0.5, 0)
    env = EdgeCachingEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction):
        env.step(ENTRY_K + 1)


def test_site_graph_and_neighbour_delays():
    g, centre = site_graph()
    assert g.number_of_nodes() == 19 and g.degree(centre) == 6
    env = EdgeCachingEnv(n_neighbors=18)
    assert Counter(env.neighbor_hops.tolist()) == {1: 6, 2: 12}
    assert env.neighbor_delay_ms.tolist() == [30.0] * 6 + [50.0] * 12
    kpis, _ = _episode(EdgeCachingEnv(n_neighbors=0, episode_requests=2000), "lru", 0)
    assert kpis["neighbor_hit"] == 0.0
    more = _episode(EdgeCachingEnv(n_neighbors=18, episode_requests=2000), "lru", 0)[0]["neighbor_hit"]
    fewer = _episode(EdgeCachingEnv(n_neighbors=2, episode_requests=2000), "lru", 0)[0]["neighbor_hit"]
    assert more > fewer > 0.0


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_runs_legally(name):
    env = gym.make(ENTRY.env_id, episode_requests=600)
    policy = BASELINES[name](env, 0)
    obs, _ = env.reset(seed=1)
    done = False
    while not done:
        a = policy(obs)
        assert env.action_space.contains(a)
        obs, _, term, trunc, _ = env.step(a)
        done = term or trunc


# ------------------------------------------------------------------------------------ simulator regression
def test_analytic_reference_values():
    p = zipf_pmf(1000, 0.8)
    assert p[:100].sum() == pytest.approx(0.526, abs=0.002)
    assert che_lru_hit_ratio(p, 100) == pytest.approx(0.378, abs=0.002)


@pytest.fixture(scope="module")
def irm_hits():
    env = EdgeCachingEnv(**IRM, episode_requests=12_000, window_long=100_000)
    return {name: _hit(env, name, [0]) for name in ("lfu", "popularity-top-c", "lru", "fifo", "random")}


def test_irm_regression_lfu_popularity_top_c_mass(irm_hits):
    top_c = float(zipf_pmf(1000, 0.8)[:100].sum())
    assert irm_hits["popularity-top-c"] == pytest.approx(top_c, abs=0.03)
    assert irm_hits["lfu"] == pytest.approx(top_c, abs=0.03)


def test_irm_regression_lru_che_approximation(irm_hits):
    assert irm_hits["lru"] == pytest.approx(che_lru_hit_ratio(zipf_pmf(1000, 0.8), 100), abs=0.03)


def test_irm_regression_fifo_random(irm_hits):
    p = zipf_pmf(1000, 0.8)
    lo, hi = 0.0, 1e7
    for _ in range(100):                 # characteristic time of FIFO / RANDOM: sum p T / (1 + p T) = C
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(p * mid / (1 + p * mid)) < 100 else (lo, mid)
    ref = float(np.sum(p * p * hi / (1 + p * hi)))
    assert ref == pytest.approx(0.334, abs=0.002)
    assert irm_hits["fifo"] == pytest.approx(ref, abs=0.03)
    assert irm_hits["random"] == pytest.approx(ref, abs=0.03)


def test_kpi_ordering_stationary():
    """Under stationary popularity (with a locally skewed ranking and neighbours): popularity-top-c >= lfu >= random."""
    env = EdgeCachingEnv(drift_rate=0.0, episode_requests=4000)
    h = {name: _hit(env, name, [0, 1]) for name in ("popularity-top-c", "lfu", "lru", "random")}
    assert h["popularity-top-c"] >= h["lfu"] - 0.005
    assert h["lfu"] > h["lru"] + 0.05
    assert h["lru"] > h["random"] + 0.01


def test_drift_matters():
    """With strong drift and a low overlap, LRU beats long-memory LFU (and popularity-top-c beats both); without
    drift the order of LRU and LFU is reversed."""
    kw = dict(overlap=0.2, window_long=100_000, episode_requests=4000)
    drift = EdgeCachingEnv(drift_rate=0.01, **kw)
    h = {name: _hit(drift, name, [0, 1]) for name in ("popularity-top-c", "lfu", "lru")}
    assert h["lru"] > h["lfu"] + 0.05
    assert h["popularity-top-c"] > h["lru"] + 0.05
    still = EdgeCachingEnv(drift_rate=0.0, **kw)
    assert _hit(still, "lfu", [0, 1]) > _hit(still, "lru", [0, 1]) + 0.05
