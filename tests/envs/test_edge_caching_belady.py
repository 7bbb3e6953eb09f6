"""Edge caching: Belady's MIN (bound and restricted baseline), the clairvoyant read-outs, the neighbours' LRU.

Belady 1966: with clairvoyance, evicting the content requested farthest in the future (bypass allowed)
maximises hits; checked here against an exhaustive search. The neighbours' LRU caches are checked against
Che's characteristic-time approximation (Che, Tung & Wang 2002).
"""

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.edge_caching import BASELINES, EdgeCachingEnv, belady_min_hits, che_lru_hit_ratio, zipf_pmf


def _brute_force_hits(cache, requests):
    """Maximum hits over every policy that on a miss may bypass or evict any cached content (exhaustive)."""
    req = tuple(requests)

    @functools.cache
    def best(p, cached):
        if p == len(req):
            return 0
        x = req[p]
        if x in cached:
            return 1 + best(p + 1, cached)
        out = best(p + 1, cached)                              # bypass
        for v in cached:
            out = max(out, best(p + 1, (cached - {v}) | {x}))
        return out

    return best(0, frozenset(cache))


@settings(max_examples=150, deadline=None)
@given(f=st.integers(3, 6), c=st.integers(1, 3), data=st.data())
def test_belady_min_matches_exhaustive_optimum(f, c, data):
    c = min(c, f - 1)
    cache = data.draw(st.lists(st.integers(0, f - 1), min_size=c, max_size=c, unique=True))
    reqs = data.draw(st.lists(st.integers(0, f - 1), min_size=1, max_size=12))
    assert belady_min_hits(cache, reqs) == _brute_force_hits(cache, reqs)


def _run(env, policy_name, seed):
    """Reset, take the Belady bound, run one episode with a baseline; return (hit, bound)."""
    policy = BASELINES[policy_name](env, seed)
    obs, _ = env.reset(seed=seed)
    bound = env.belady_hit_bound()
    done = False
    while not done:
        obs, _, term, trunc, _ = env.step(policy(obs))
        done = term or trunc
    return env.episode_kpis()["hit"], bound


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_belady_bound_dominates_every_baseline(seed):
    env = EdgeCachingEnv(episode_requests=3000)
    res = {name: _run(env, name, seed) for name in BASELINES}
    bounds = {b for _, b in res.values()}
    assert len(bounds) == 1                                    # the bound does not depend on the policy
    bound = bounds.pop()
    for name, (hit, _) in res.items():
        assert hit <= bound + 1e-12, name
    # the restricted clairvoyant policy beats every non-clairvoyant baseline
    others = max(h for n, (h, _) in res.items() if n != "belady")
    assert res["belady"][0] > others


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), action_seed=st.integers(0, 2**31 - 1),
       cfg=st.fixed_dictionaries({
           "n_items": st.sampled_from([100, 300]),
           "cache_size": st.sampled_from([10, 40]),
           "drift_rate": st.sampled_from([0.0, 0.05]),
           "overlap": st.floats(0.0, 1.0),
           "n_lfu_candidates": st.sampled_from([0, 2]),
           "episode_requests": st.sampled_from([100, 400]),
       }))
def test_belady_bound_dominates_arbitrary_action_sequences(seed, action_seed, cfg):
    env = EdgeCachingEnv(**cfg)
    env.reset(seed=seed)
    bound = env.belady_hit_bound()
    rng = np.random.default_rng(action_seed)
    p_skip = rng.random()
    done = False
    while not done:
        a = env.no_cache_action if rng.random() < p_skip else int(rng.integers(env.n_candidates))
        _, _, _, done, _ = env.step(a)
    assert env.episode_kpis()["hit"] <= bound + 1e-12


def test_next_request_times_are_the_true_next_requests():
    """Never caching keeps the cache fixed, so every request of a non-cached content is a decision: the next
    request of each decided content must be its next decision (inf if none in the episode)."""
    env = EdgeCachingEnv(episode_requests=2000)
    env.reset(seed=4)
    seen, predicted = [], []
    done = False
    while not done:
        seen.append((env._t_miss, env.request))
        predicted.append(float(env.next_request_times(np.array([env.request]))[0]))
        _, _, _, done, _ = env.step(env.no_cache_action)
    end = env._end_t                                           # requests from end on are past the episode
    nxt = {}
    truth = []
    for t, x in reversed(seen):
        truth.append(nxt.get(x, np.inf))
        if t < end:
            nxt[x] = t
    assert predicted == truth[::-1]
    assert sum(np.isfinite(predicted)) > 100


def test_lookahead_does_not_change_the_stream():
    """Pre-drawing the episode (clairvoyant read-outs) leaves requests, observations and rewards unchanged."""
    acts = np.random.default_rng(1).integers(0, 11, 400).tolist()

    def trace(look):
        env = EdgeCachingEnv(episode_requests=3000)
        obs, _ = env.reset(seed=11)
        if look:
            env.belady_hit_bound()
        out = [obs]
        for a in acts:
            obs, r, _, trunc, _ = env.step(a)
            out += [obs, np.array([r, env.request, env._t_miss, trunc])]
        return out

    a, b = trace(False), trace(True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_bound_requires_the_episode_start():
    env = EdgeCachingEnv(episode_requests=2000)
    env.reset(seed=0)
    for _ in range(200):
        env.step(0)
    with pytest.raises(RuntimeError, match="belady_hit_bound"):
        env.belady_hit_bound()


def test_neighbour_runs_lru_on_its_own_stream():
    """One neighbour with the same (global, stationary) popularity and an up-to-date snapshot: the share of
    requests it serves while this cache stays fixed is ``sum_{i not cached} p_i (1 - exp(-p_i T_C))``, its
    LRU cache's occupancy by Che's approximation, not the top-C mass a clairvoyant neighbour would give."""
    f, c = 1000, 100
    env = EdgeCachingEnv(n_items=f, cache_size=c, overlap=1.0, drift_rate=0.0, n_neighbors=1,
                         drift_interval=10, window_short=10, neighbor_refresh=10, episode_requests=40_000)
    env.reset(seed=2)
    cached = np.zeros(f, dtype=bool)
    cached[env._cache] = True
    done = False
    while not done:
        _, _, _, done, _ = env.step(env.no_cache_action)
    nb = env.episode_kpis()["neighbor_hit"]
    p_rank = zipf_pmf(f, 0.8)
    p = np.empty(f)
    p[env._order[0]] = p_rank                                 # content -> probability (global ring, no drift)
    lo, hi = 0.0, 1e7
    for _ in range(200):                                      # Che's characteristic time of the neighbour
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(-np.expm1(-p * mid)) < c else (lo, mid)
    lru_pred = float(np.sum((p * -np.expm1(-p * hi))[~cached]))
    top_c = np.zeros(f, dtype=bool)
    top_c[env._order[0, :c]] = True
    clairvoyant_pred = float(p[top_c & ~cached].sum())
    assert abs(lru_pred - clairvoyant_pred) > 0.03            # the check discriminates the two
    assert nb == pytest.approx(lru_pred, abs=0.015)
    assert che_lru_hit_ratio(p_rank, c) == pytest.approx(float(np.sum(p * -np.expm1(-p * hi))), abs=1e-6)
