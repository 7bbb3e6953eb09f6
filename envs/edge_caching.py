"""Cooperative edge caching at one base station with drifting, locally skewed Zipf popularity.

## Description

One federated client is one base station (BS; a fog access point of a Fog-RAN [1], [2]) with a cache of
``cache_size`` (C) equally sized contents out of a catalog of ``n_items`` (F). Users request one content at
a time; a request is served from the local cache (``local_delay_ms``), else from the nearest neighbouring BS
that caches it (``neighbor_delay_ms`` per backhaul hop), else from the cloud (``cloud_delay_ms``). On every
local miss the agent decides which cached content to evict for the requested one, or not to cache it.

**Popularity** (independent reference model (IRM) within a drift interval [5]). Ranks follow a Zipf law
``p(r) ∝ r^-s`` (``zipf_exponent`` s, r = 1..F) [3]. Every BS mixes two rankings of the same catalog: with
probability ``overlap`` (ω) a request follows the *global* ranking shared by all BSs, otherwise the BS's own
*local* ranking (an independent random permutation), so the BS's popularity is
``p_b(i) = ω p(rank_g(i)) + (1 - ω) p(rank_b(i))``. ω = 1 is one global Zipf law; ω = 0 makes every BS's
ranking unrelated to the global one (top-C overlap ≈ C/F). Rankings are redrawn at every reset (the agent
sees features, never content ids).

**Drift** (shot-noise-like temporal locality [4]). Every ``drift_interval`` requests each ranking receives
``Poisson(drift_rate * drift_interval)`` new contents at its top; every other content moves down by as many
ranks and the least popular ones leave (their ids are recycled for the new contents). A content thus lives
a "shot": born popular, its rank grows linearly with its age, so its request rate decays as a power law of
its age, the qualitative shape of Traverso et al.'s Shot Noise Model [4]. With ``drift_rate = 0`` requests
are IRM, where LFU's counts converge to the popularity ranking and LFU equals the static top-C cache (the
best static policy); with drift, recency matters and neither LRU nor long-memory LFU is right, which is what
leaves room to learn.

**Neighbours.** A ``networkx`` graph of the 19-site hexagonal layout of 3GPP TR 36.814 [6] (the client's BS
in the centre, 6 one-hop and 12 two-hop sites, edges between adjacent cells) is built at construction; the
``n_neighbors`` nearest sites (hop count, then a fixed angular order) cooperate. A neighbour at ``h`` hops
serves a content in ``local_delay_ms + h (neighbor_delay_ms - local_delay_ms)`` ms (capped at the cloud
delay). Each neighbour has its own local ranking (same ω, same drift), its own request stream (one request
per request of this BS, from its own popularity mix and its own generator) and an LRU cache of C contents fed
by that stream: a real policy, not a clairvoyant one. An LRU cache holds the C most recently requested
distinct contents, so it is kept as the neighbours' last-request times (vectorised per drift interval) and
read as their top C. This BS learns its neighbours' cache contents every ``neighbor_refresh`` requests
(rounded up to drift intervals; the period of a summary-cache-like exchange [10]) and uses that snapshot
in between: a content in the snapshot is served by the neighbour (the default 1000 leaves it up to 1000
requests stale; 100, one drift interval, makes it nearly current). The best neighbour saving per content
is precomputed into a numpy array at each refresh.

**Time** is counted in requests. The env fast-forwards hits: one step is one decision, taken on a local
miss; the requests between two decisions are all local hits (cache content cannot change without a
decision), processed by a plain scan of the pre-drawn requests of the current drift interval. Requests are
drawn one drift interval at a time, in time order, from the request generators; the clairvoyant read-outs
(``next_request_times``, ``belady_hit_bound``, used by the ``belady`` baseline) pre-draw the intervals up to the
episode's end from the same generators, so the stream is the same whether or not they are used, and next
requests within the episode are exact.

**Baselines** (``BASELINES``). ``lru``, ``fifo``, ``random``: one constant action each. ``lfu``: a *windowed*
LFU: frequency = the long-window exponentially weighted count (time constant ``window_long`` requests, not
perfect-memory LFU), with TinyLFU-style admission [8] (the request replaces the least frequent candidate only
if it is more frequent, else it is not cached). ``popularity-top-c``: the same admission rule with the *true
current popularity* instead of counts; under IRM its cache converges to the static top-C cache (the best
static cache), with drift it tracks the current ranking; it sees no future requests and is not an upper
bound. ``belady``: Belady's MIN [9] restricted to the env's actions (evict the candidate requested farthest in
the future, or skip when the request's own next request is at least as far); clairvoyant, but greedy
farthest-next-use is optimal only when every cached content may be evicted, so it is a clairvoyant reference,
not an optimum over the K candidates. **Upper bound:** ``env.belady_hit_bound()`` (right after ``reset``) is
the hit ratio of unrestricted MIN with bypass (``belady_min_hits``) over the episode's requests from the cache
at the first decision: no policy over any eviction choice, hence none over the env's actions, has more hits.
It bounds the ``hit`` KPI only; neighbours make delay a different objective.

## Action Space

``Discrete(K + 1)`` with ``K = n_lru_candidates + n_lfu_candidates + 2`` candidate slots (default K = 10):

* ``0 .. n_lru_candidates - 1``: evict the 1st, 2nd, ... least recently used cached content;
* the next ``n_lfu_candidates``: evict the 1st, 2nd, ... least frequently used (long window) content;
* ``K - 2``: evict the oldest inserted content (FIFO); ``K - 1``: evict a uniformly random cached content;
* ``K``: do not cache the requested content (no eviction).

The evicted content's place is taken by the requested one. A fixed, small set of candidates keeps the action
space constant for a DQN whatever C is (clients with different cache sizes federate one model). The
candidates are exactly the victims of the classical policies (LRU, LFU, FIFO, RANDOM), so each of these is one
constant action, and a learned policy picks per request among them using their features (Zhong et al. [7]
let the agent choose among all C cached contents; the fixed candidate set is this env's design). The same
content may fill several slots (e.g. LRU and FIFO victim coincide).

## Observation Space

``Box(0, 1, ((K + 1) * 6,), float32)``: 6 features for the requested content (row 0) and for each of the K
candidates (rows 1..K, in action order), flattened row-major. Unbounded quantities are squashed with
``tanh(x / s)`` for a fixed scale ``s`` (the same for every client, so features mean the same thing across a
federation):

* columns 0-2: request rate ``ρ`` over a short / mid / long window (``window_short/_mid/_long`` = W
  requests), the exponentially weighted fraction of requests for the content,
  ``ρ = (1 - e^(-1/W)) Σ_k e^(-age_k / W)`` ∈ [0, 1] (short/medium/long-term request counts as in [7]);
  ``s = 0.005``;
* column 3: time since the content's last request (1 = never requested); ``s = 1000`` requests;
* column 4: time since the content entered the cache (0 for the requested content); ``s = 1000`` requests;
* column 5: delay saving if fetched from the nearest neighbour holding it,
  ``(d_cloud - d_nb) / (d_cloud - d_local)`` (already in [0, 1)); 0 if no neighbour holds it.

The requested content's features describe its history *before* the current request. Counts are kept in a
rescaled frame (``Σ_k e^((t_k - t_ref) / W)``, renormalised every ``20 window_short`` requests), so a
request updates them with one addition.

## Rewards

Per request, the delay saved with respect to the cloud in units of a local hit,
``(cloud_delay - delay) / (cloud_delay - local_delay)``: +1 for a local hit, 0.78 for a one-hop neighbour
hit (defaults), 0 for the cloud. The reward of a step is the sum over the requests it covers: the decided
miss plus the hits that follow it until the next miss. An episode's return is therefore the total delay
saved over exactly ``episode_requests`` requests, an affine function of the mean delay (the KPI).

``info`` (every step, over the requests the step covers): ``hit`` (local hit ratio), ``neighbor_hit``
(fraction served by a neighbour), ``delay`` (mean ms per request) and ``requests`` (how many requests the
step covers). Steps cover different numbers of requests, so the episode's request-level ratios are the
``requests``-weighted means of the per-step values (``ENTRY.kpi_weight``; ``episode_kpis()``
returns them); a plain per-step mean weights each *decision* equally and under-states the hit ratio.

## Starting State

Rankings are drawn, then ``warmup_requests`` requests (with drift) fill the request statistics; the cache
holds the C most recently requested distinct contents (an LRU cache after the warm-up) and each neighbour
its LRU cache after its own warm-up requests. The first observation describes the first miss after the
warm-up.

## Episode End

Never terminates. Truncated once ``episode_requests`` requests (counted from the first decision) have been
served; the last observation is the next miss, a genuine decision state. The env truncates itself, so
``ENTRY.max_episode_steps`` is ``None`` (the number of decisions per episode depends on the policy).

## Arguments

``EdgeCachingEnv(config: EdgeCachingConfig | None = None, render_mode: str | None = None, **overrides)``;
overrides replace fields of ``config`` (``envs.knobs.apply_overrides``). Every knob's default, unit, legal
range and source is declared on its ``EdgeCachingConfig`` field; the table at the end of this section is
generated from them by ``envs.knobs.knob_table``. ``n_lru_candidates`` and ``n_lfu_candidates`` set the spaces
and must be shared by the clients of a federation; ``cache_size``, ``n_items`` and ``n_neighbors`` do not
change the spaces.
``render_mode="ansi"`` renders a one-line text state. The request stream (popularity, drift, requests)
comes from its own generator seeded by ``reset(seed=...)``, so under one seed every policy sees the same
requests (paired comparisons).

{knob_table}

## References

1. M. Zhang, Y. Jiang, F.-C. Zheng, M. Bennis, X. You, "Cooperative edge caching via federated deep
   reinforcement learning in Fog-RANs", IEEE ICC Workshops 2021, doi:10.1109/ICCWorkshops50388.2021.9473609
   (federated dueling DQN; cooperating fog access points; content request delay and hit rate as KPIs).
2. X. Wang, C. Wang, X. Li, V. C. M. Leung, T. Taleb, "Federated deep reinforcement learning for Internet
   of Things with decentralized cooperative edge caching" (FADE), IEEE Internet of Things J. 7(10),
   9441-9455, 2020, doi:10.1109/JIOT.2020.2986803 (BSs federate one caching model; average delay, backhaul
   offloading and hit rate as KPIs).
3. L. Breslau, P. Cao, L. Fan, G. Phillips, S. Shenker, "Web caching and Zipf-like distributions: evidence
   and implications", IEEE INFOCOM 1999 (Zipf-like request popularity, exponents 0.64-0.83).
4. S. Traverso, M. Ahmed, M. Garetto, P. Giaccone, E. Leonardi, S. Niccolini, "Temporal locality in
   today's content caching: why it matters and how to model it", ACM SIGCOMM CCR 43(5), 2013 (Shot Noise
   Model of content popularity).
5. H. Che, Y. Tung, Z. Wang, "Hierarchical Web caching systems: modeling, design and experimental results",
   IEEE JSAC 20(7), 2002 (IRM; characteristic-time approximation of LRU, used by the regression test).
6. 3GPP TR 36.814 V9.0.0, "Further advancements for E-UTRA physical layer aspects", 2010, Annex A.2.1.1
   (hexagonal grid of 19 sites).
7. C. Zhong, M. C. Gursoy, S. Velipasalar, "A deep reinforcement learning-based framework for content
   caching", CISS 2018 (agent invoked on cache misses chooses a content to replace or not to cache;
   short/medium/long-term request-frequency features; LRU/LFU/FIFO baselines).
8. G. Einziger, R. Friedman, B. Manes, "TinyLFU: a highly efficient cache admission policy", ACM Trans.
   Storage 13(4), 2017 (frequency-based admission, used by the ``lfu`` baseline).
9. L. A. Belady, "A study of replacement algorithms for a virtual-storage computer", IBM Systems Journal
   5(2), 78-101, 1966 (MIN: on a miss evict the content whose next request is farthest in the future; optimal
   number of misses with clairvoyance).
10. L. Fan, P. Cao, J. Almeida, A. Z. Broder, "Summary cache: a scalable wide-area Web cache sharing
    protocol", IEEE/ACM Trans. Networking 8(3), 281-293, 2000 (caches periodically exchange summaries of
    their contents; a request is forwarded to a neighbour whose summary holds it).

Delays 10 / 30 / 100 ms (local / one-hop neighbour / cloud) are this suite's defaults, chosen so that a
neighbour is a few times slower than the local cache and several times faster than the cloud, as in the
cooperative caching settings of [1], [2]; F = 1000, C = 100 (10 %) and s = 0.8 (within [3]'s range) are
common simulation settings. The default drift (5 new contents per 1000 requests) is where LRU and the
windowed LFU are close (hit ratio ≈ 0.30 / 0.32) while ``popularity-top-c`` reaches ≈ 0.44, the restricted
``belady`` ≈ 0.50 and the Belady bound ≈ 0.57 (seeds 0-4).

## Version History

* v0: initial version; neighbours run LRU on their own request streams (they held their true top C
  before), ``oracle`` renamed ``popularity-top-c``, ``belady`` baseline and ``belady_hit_bound`` added.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from bisect import bisect_right
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import islice
from typing import Any

import gymnasium as gym
import networkx as nx
import numpy as np
from gymnasium import spaces

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_render_mode, discrete_action

__all__ = [
    "BASELINES",
    "ENTRY",
    "EdgeCachingConfig",
    "EdgeCachingEnv",
    "belady_min_hits",
    "che_lru_hit_ratio",
    "make_client_configs",
    "zipf_pmf",
]

N_FEATURES = 6                       # per content row of the observation
_RATE_SCALE = 0.005                  # a request rate rho is shown as tanh(rho / 0.005)
_TIME_SCALE = 1000.0                 # requests; a time dt is shown as tanh(dt / 1000)
_NEVER = -1e18                       # "last request time" of a content never requested
_MAX_HOPS = 2                        # 19-site layout: centre + 6 one-hop + 12 two-hop sites [6]

@dataclass(frozen=True)
class EdgeCachingConfig(KnobConfig):
    """Physical parameters of one caching base station; default, unit, range, source per knob: ``knob_table``."""

    n_items: int = knob(1000, 100, 100_000, integer=True, unit="contents",
                        source="catalog F = 1000 (common setting)")
    cache_size: int = knob(100, 10, 50_000, integer=True, unit="contents",
                           source="C = 100 = 10 % of F (common setting)")
    zipf_exponent: float = knob(0.8, 0.1, 2.0, unit="-", source="Zipf-like s in 0.64-0.83 [3]; 0.8 here")
    overlap: float = knob(0.5, 0.0, 1.0, unit="probability",
                          source="share of requests following the global ranking (this env)")
    drift_rate: float = knob(0.005, 0.0, 0.2, unit="new contents/request",
                             source="shot-noise-like arrivals at the top [4]")
    drift_interval: int = knob(100, 10, 10_000, integer=True, unit="requests", source="popularity update period T")
    n_neighbors: int = knob(6, 0, 18, integer=True, unit="sites",
                            source="19-site hexagonal layout: 6 one-hop + 12 two-hop [6]")
    neighbor_refresh: int = knob(1000, 10, 1_000_000, integer=True, unit="requests",
                                 source="period of the neighbours' cache-content exchange (summary cache [10])")
    local_delay_ms: float = knob(10.0, 0.1, 1000.0, unit="ms", source="local cache hit, 10 ms [1], [2]")
    neighbor_delay_ms: float = knob(30.0, 0.1, 1000.0, unit="ms", source="one-hop neighbour hit, 30 ms [1], [2]")
    cloud_delay_ms: float = knob(100.0, 0.1, 10_000.0, unit="ms", source="cloud / core fetch, 100 ms [1], [2]")
    episode_requests: int = knob(5000, 100, 10_000_000, integer=True, unit="requests",
                                 source="requests per episode (~2900-3700 decisions with the baselines)")
    warmup_requests: int = knob(10_000, 0, 10_000_000, integer=True, unit="requests",
                                source="requests simulated before the first decision")
    window_short: int = knob(100, 2, 10_000_000, integer=True, unit="requests", source="short feature window")
    window_mid: int = knob(1000, 2, 10_000_000, integer=True, unit="requests", source="mid feature window")
    window_long: int = knob(10_000, 2, 10_000_000, integer=True, unit="requests",
                            source="long feature window; also the lfu baseline's memory")
    n_lru_candidates: int = knob(4, 1, 16, integer=True, unit="slots",
                                 source="LRU-ordered eviction candidates [7] (fixed across a federation)")
    n_lfu_candidates: int = knob(4, 0, 16, integer=True, unit="slots",
                                 source="LFU-ordered eviction candidates [7] (fixed across a federation)")

    def check_constraints(self) -> None:
        if self.cache_size >= self.n_items:
            raise EnvConfigError(f"cache_size={self.cache_size!r} must be below n_items={self.n_items!r}; "
                                 f"allowed: cache_size < n_items")
        for name in ("n_lru_candidates", "n_lfu_candidates"):
            k = getattr(self, name)
            if k > self.cache_size:
                raise EnvConfigError(f"{name}={k!r} exceeds cache_size={self.cache_size!r}; "
                                     f"allowed: {name} <= cache_size")
        if not self.local_delay_ms < self.neighbor_delay_ms < self.cloud_delay_ms:
            raise EnvConfigError(
                f"delays local={self.local_delay_ms!r}, neighbor={self.neighbor_delay_ms!r}, "
                f"cloud={self.cloud_delay_ms!r} ms; allowed: local < neighbor < cloud")
        if not self.window_short < self.window_mid < self.window_long:
            raise EnvConfigError(
                f"windows short={self.window_short!r}, mid={self.window_mid!r}, long={self.window_long!r}; "
                f"allowed: short < mid < long")
        if self.drift_interval > 100 * self.window_short:
            # keeps the rescaled counts' weights exp((t - t_ref) / window_short) finite within an interval
            raise EnvConfigError(
                f"drift_interval={self.drift_interval!r} exceeds 100 * window_short = "
                f"{100 * self.window_short!r}; "
                f"allowed: drift_interval <= 100 * window_short")


__doc__ = document_knobs(__doc__, EdgeCachingConfig)


def zipf_pmf(n_items: int, exponent: float) -> np.ndarray:
    """Zipf probabilities ``p(r) ∝ r^-s`` for ranks r = 1..n_items [3]."""
    w = np.arange(1, n_items + 1, dtype=np.float64) ** -float(exponent)
    return w / w.sum()


def che_lru_hit_ratio(pmf: np.ndarray, cache_size: int) -> float:
    """LRU hit ratio under IRM by Che's approximation [5].

    The characteristic time ``T_C`` solves ``sum_i (1 - exp(-p_i T_C)) = C``; the hit ratio is
    ``sum_i p_i (1 - exp(-p_i T_C))``. Solved by bisection on ``T_C``.
    """
    lo, hi = 0.0, 1.0
    while np.sum(-np.expm1(-pmf * hi)) < cache_size:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sum(-np.expm1(-pmf * mid)) < cache_size:
            lo = mid
        else:
            hi = mid
    return float(np.sum(pmf * -np.expm1(-pmf * hi)))


def belady_min_hits(cache: np.ndarray | list[int], requests: np.ndarray | list[int]) -> int:
    """Hits of Belady's MIN [9] with bypass on ``requests`` from the initial ``cache`` (C distinct contents).

    On a miss the content among the cached ones *and the requested one* whose next request is farthest in the
    future is left out: the farthest cached content is evicted for the request, or the request is not cached
    when its own next request is at least as far. With equal content sizes this maximises the number of hits
    over every replacement policy that may evict any cached content or bypass the cache (Belady's exchange
    argument [9]; checked against an exhaustive search in the tests), a superset of this env's K-candidate
    actions, so it bounds every policy of the env. Contents not requested again count as infinitely far.
    """
    req = np.asarray(requests, dtype=np.int64)
    n = len(req)
    order = np.argsort(req, kind="stable")
    nxt = np.full(n, n, dtype=np.int64)                  # next request position of the content at p (n: none)
    same = req[order[1:]] == req[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    first: dict[int, int] = {}
    for p in range(n - 1, -1, -1):
        first[int(req[p])] = p
    nu = {int(i): first.get(int(i), n) for i in cache}      # cached content -> next request position
    heap = [(-v, i) for i, v in nu.items()]
    heapq.heapify(heap)
    hits = 0
    reql, nxtl = req.tolist(), nxt.tolist()
    for p in range(n):
        x, fx = reql[p], nxtl[p]
        if x in nu:
            hits += 1
            nu[x] = fx
            heapq.heappush(heap, (-fx, x))
            continue
        while nu.get(heap[0][1]) != -heap[0][0]:         # drop stale heap entries
            heapq.heappop(heap)
        if fx >= -heap[0][0]:                            # the request is the farthest: bypass
            continue
        del nu[heapq.heappop(heap)[1]]
        nu[x] = fx
        heapq.heappush(heap, (-fx, x))
    return hits


def site_graph() -> tuple[nx.Graph, tuple[int, int]]:
    """19-site hexagonal layout [6] in axial coordinates, edges between adjacent cells: (graph, centre)."""
    g = nx.Graph()
    sites = [(q, r) for q in range(-_MAX_HOPS, _MAX_HOPS + 1) for r in range(-_MAX_HOPS, _MAX_HOPS + 1)
             if abs(q + r) <= _MAX_HOPS]
    g.add_nodes_from(sites)
    for q, r in sites:
        for dq, dr in ((1, 0), (0, 1), (-1, 1)):
            if (q + dq, r + dr) in g:
                g.add_edge((q, r), (q + dq, r + dr))
    return g, (0, 0)


def _ordered_neighbors(n: int) -> tuple[nx.Graph, np.ndarray]:
    """The ``n`` sites nearest the centre (hop count, then a fixed angular order) and their hop counts."""
    g, centre = site_graph()
    hops = nx.single_source_shortest_path_length(g, centre)

    def key(site: tuple[int, int]) -> tuple[int, float]:
        q, r = site
        x, y = q + 0.5 * r, r * math.sqrt(3.0) / 2.0
        return hops[site], math.atan2(y, x) % (2.0 * math.pi)

    order = sorted((s for s in g if s != centre), key=key)[:n]
    return g, np.array([hops[s] for s in order], dtype=np.int64)


class EdgeCachingEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    _U_BLOCK = 1024                 # uniforms pre-drawn for the random candidate slot
    # columns of the per-content state array ``self._state`` (shape (F, 6)): 0..2 windowed counts (short, mid,
    # long) in the rescaled frame, 3 last request time, 4 insertion time (both / TIME_SCALE), 5 atanh(saving)
    _LAST, _INS, _NB = 3, 4, 5

    def __init__(self, config: EdgeCachingConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(EdgeCachingConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        self.n_items = f = cfg.n_items
        self.cache_size = cfg.cache_size
        self._k_lru = kr = cfg.n_lru_candidates
        self._k_lfu = kf = cfg.n_lfu_candidates
        self.n_candidates = k = kr + kf + 2
        self.fifo_slot = k - 2
        self.random_slot = k - 1
        self.no_cache_action = k
        self.action_space = spaces.Discrete(k + 1)
        self.observation_space = spaces.Box(0.0, 1.0, shape=((k + 1) * N_FEATURES,), dtype=np.float32)

        # ---- popularity: Zipf pmf and CDF (sampled with searchsorted on blocks of uniforms) ----
        self.zipf = zipf_pmf(f, cfg.zipf_exponent)
        self._cdf = np.cumsum(self.zipf)
        self._cdf[-1] = 1.0
        self._omega = float(cfg.overlap)
        self._drift_lam = float(cfg.drift_rate) * cfg.drift_interval
        self._T = cfg.drift_interval

        # ---- neighbours on the 19-site layout (networkx only here) ----
        self.graph, self.neighbor_hops = _ordered_neighbors(cfg.n_neighbors)
        self.n_neighbors = len(self.neighbor_hops)
        d_loc, d_nb, d_cl = cfg.local_delay_ms, cfg.neighbor_delay_ms, cfg.cloud_delay_ms
        self.neighbor_delay_ms = np.minimum(d_loc + self.neighbor_hops * (d_nb - d_loc), d_cl)
        self.neighbor_saving = (d_cl - self.neighbor_delay_ms) / (d_cl - d_loc)
        self._d_loc, self._d_cl = float(d_loc), float(d_cl)
        self._d_span = float(d_cl - d_loc)

        # ---- feature windows (exponentially weighted counts) and observation transform ----
        self._W = np.array([cfg.window_short, cfg.window_mid, cfg.window_long], dtype=np.float64)
        self._alpha = -np.expm1(-1.0 / self._W)            # rho = alpha * sum_k exp(-age_k / W) <= 1
        self._renorm_every = 20.0 * float(self._W[0])
        # obs = tanh(state * A[p] + B[p]) (p = position in the drift interval): A scales counts to
        # rho / RATE_SCALE and negates times (stored / TIME_SCALE), B adds the current time t / TIME_SCALE
        self._y = np.zeros((k + 1, N_FEATURES))
        self._r_size = min(cfg.cache_size, max(16, 2 * kf))      # LFU reserve size M
        self._has_reset = False
        self._steps = 0

    # ------------------------------------------------------------------ request stream
    def _draw_chunk(self) -> None:
        """Draw the next drift interval's requests (drift, this BS's requests, the neighbours' requests) and
        queue them. Chunks are drawn in time order from the request generators, so the stream does not depend
        on how far ahead it is drawn (the clairvoyant read-outs pre-draw the rest of the episode)."""
        T, f = self._T, self.n_items
        rng = self._rng_req
        if self._drift_lam > 0.0:
            self._off_draw = (self._off_draw + rng.poisson(self._drift_lam, size=self._off_draw.shape)) % f
        off = self._off_draw
        ranks = np.searchsorted(self._cdf, rng.random(T), side="right")
        np.minimum(ranks, f - 1, out=ranks)
        ring = (rng.random(T) >= self._omega).astype(np.int64)          # 0 = global ranking, 1 = local
        items = self._order[ring, (ranks - off[ring]) % f]
        nb = self._neighbor_requests(off[None, :], T) if self.n_neighbors else None
        self._ahead.append((off.copy(), items, nb))

    def _neighbor_requests(self, offs: np.ndarray, n: int) -> np.ndarray:
        """``n`` requests at every neighbour (shape (n_neighbors, n)) from its own popularity mix (global ring
        with probability omega, else its own ring 2 + j); ``offs`` (rows = drift intervals, or one row) are the
        ring offsets of each request's interval. Drawn from the neighbours' own generator."""
        f, nn = self.n_items, self.n_neighbors
        u = self._rng_nb.random((2, nn, n))
        ranks = np.minimum(np.searchsorted(self._cdf, u[0], side="right"), f - 1)
        ring = np.where(u[1] >= self._omega, 2 + np.arange(nn)[:, None], 0)
        if offs.shape[0] == 1:
            off = offs[0, ring]
        else:
            off = np.take_along_axis(offs[np.arange(n) // self._T].T, ring, axis=0)
        return self._order[ring, (ranks - off) % f]

    def _new_chunk(self) -> None:
        """Move to the next drift interval: neighbour refresh, its neighbour requests, its own requests."""
        T = self._T
        self._t0 += T
        t0 = self._t0
        if not self._ahead:
            self._draw_chunk()
        off, items, nb = self._ahead.popleft()
        self._off = off
        if t0 >= self._next_refresh:
            self._refresh_neighbors()
            self._next_refresh = t0 + self.config.neighbor_refresh
        if nb is not None:                       # the neighbours' LRU caches see this interval's requests
            np.maximum.at(self._nb_last, (self._nb_rows, nb), np.arange(t0, t0 + T, dtype=np.float64))
        if t0 + T - self._tref > self._renorm_every:
            self._renormalize(float(t0))
        self._buf = items
        self._bufl = items.tolist()
        tt = np.arange(t0, t0 + T, dtype=np.float64)
        self._tsa = tt / _TIME_SCALE                                     # request times / TIME_SCALE
        self._ts = self._tsa.tolist()
        w = np.exp((tt - self._tref)[:, None] / self._W[None, :])       # (T, 3) count increments
        self._w = w
        a = np.empty((T, N_FEATURES))
        a[:, :3] = self._alpha / (_RATE_SCALE * w)                       # scaled count -> rho / RATE_SCALE
        a[:, 3:5] = -1.0
        a[:, 5] = 1.0
        self._A = a
        b = np.zeros((T, N_FEATURES))
        b[:, 3] = b[:, 4] = self._tsa                                    # + t / TIME_SCALE
        self._Bc = b

    def _renormalize(self, t: float) -> None:
        cnt = self._state[:, :3]
        cnt *= np.exp((self._tref - t) / self._W)
        cnt[cnt < 1e-30] = 0.0
        self._tref = t
        self._r_clear()                          # reserve keys are in the old frame: rebuild on demand

    # ---- LFU reserve: the M least frequent cached contents, sorted, maintained incrementally ----
    # Invariant: the reserve holds exactly the |R| cached contents with the smallest long-window counts.
    # Counts only grow between renormalisations, so only hits on reserve members, evictions and insertions
    # can change it: a member whose count grew is removed and re-offered; an offer enters iff its count is
    # below the reserve's maximum (everything outside is >= that maximum). Refilled by argpartition when
    # fewer than n_lfu_candidates remain. Checked against a from-scratch sort in the tests.
    def _r_clear(self) -> None:
        self._R: list[int] = []
        self._Rk: list[float] = []
        self._Rset: set[int] = set()

    def _r_refill(self) -> None:
        cache = self._cache
        cl = self._cnt_long.take(cache)
        m = self._r_size
        sel = cl.argpartition(m - 1)[:m] if m < cl.size else np.arange(cl.size)
        sel = sel.take(cl.take(sel).argsort(kind="stable"))
        self._R = cache.take(sel).tolist()
        self._Rk = cl.take(sel).tolist()
        self._Rset = set(self._R)

    def _r_remove(self, i: int) -> None:
        j = self._R.index(i)
        del self._R[j]
        del self._Rk[j]
        self._Rset.discard(i)

    def _r_offer(self, i: int, key: float) -> None:
        rk = self._Rk
        if rk and key < rk[-1]:
            j = bisect_right(rk, key)
            self._R.insert(j, i)
            rk.insert(j, key)
            self._Rset.add(i)
            if len(rk) > self._r_size:
                self._Rset.discard(self._R.pop())
                rk.pop()

    def _record(self, a: int, b: int) -> None:
        """Update last-request times and windowed counts with requests ``a..b-1`` of the current chunk."""
        st = self._state
        if b - a == 1:
            row = st[self._bufl[a]]
            row[:3] += self._w[a]
            row[3] = self._ts[a]
        else:
            items = self._buf[a:b]
            st[items, 3] = self._tsa[a:b]         # repeated indices: the last (latest) assignment wins
            np.add.at(st, (items, slice(0, 3)), self._w[a:b])

    def popularity(self, items: np.ndarray | None = None, ring: int = 1) -> np.ndarray:
        """True current request probabilities at a BS (ring 1 = this BS, 2 + j = neighbour j)."""
        pos_g = self._pos[0] if items is None else self._pos[0, items]
        pos_b = self._pos[ring] if items is None else self._pos[ring, items]
        f, z, w = self.n_items, self.zipf, self._omega
        return w * z[(pos_g + self._off[0]) % f] + (1.0 - w) * z[(pos_b + self._off[ring]) % f]

    def _refresh_neighbors(self) -> None:
        """Read the neighbours' cache contents (an LRU cache holds the C most recently requested distinct
        contents, so each neighbour's LRU cache is the top C of its last-request times); store the best saving
        per content."""
        sav = np.zeros(self.n_items)
        n = self.n_neighbors
        if n:
            c = self.cache_size
            top = np.argpartition(-self._nb_last, c - 1, axis=1)[:, :c]
            np.maximum.at(sav, top.ravel(), np.repeat(self.neighbor_saving, c))
        self._nb_sav = sav
        self._nb_savl = sav.tolist()
        self._state[:, self._NB] = np.arctanh(sav)

    def _warm_up(self, n_chunks: int) -> int:
        """Simulate ``n_chunks`` drift intervals of requests (vectorised, in blocks); return the end time.

        Same process as ``_new_chunk`` (drift at the start of every interval), recorded in one batch per block
        with the count frame anchored at the end of the warm-up.
        """
        T, f, rng = self._T, self.n_items, self._rng_req
        t_end = n_chunks * T
        self._tref = float(t_end)
        st = self._state
        block = max(1, 65_536 // T)
        done = 0
        while done < n_chunks:
            m = min(block, n_chunks - done)
            if self._drift_lam > 0.0:
                offs = (self._off + np.cumsum(rng.poisson(self._drift_lam, size=(m, len(self._off))), 0)) % f
                self._off = offs[-1].copy()
            else:
                offs = np.broadcast_to(self._off, (m, len(self._off)))
            n = m * T
            ranks = np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), f - 1)
            ring = (rng.random(n) >= self._omega).astype(np.int64)
            off = offs[np.arange(n) // T, ring]
            items = self._order[ring, (ranks - off) % f]
            t = np.arange(done * T, done * T + n, dtype=np.float64)
            if self.n_neighbors:
                nb = self._neighbor_requests(np.asarray(offs), n)
                np.maximum.at(self._nb_last, (self._nb_rows, nb), t)
            st[items, self._LAST] = t / _TIME_SCALE            # in time order: the last request wins
            w = np.exp((t - t_end)[:, None] / self._W)
            for j in range(3):
                st[:, j] += np.bincount(items, weights=w[:, j], minlength=f)
            done += m
        return t_end

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        f, c = self.n_items, self.cache_size
        seeds = self.np_random.integers(0, 2**63 - 1, size=4)
        self._rng_req = np.random.default_rng(int(seeds[0]))   # request stream (policy independent)
        self._rng_nb = np.random.default_rng(int(seeds[3]))    # the neighbours' request streams
        self._rng_pol = np.random.default_rng(int(seeds[1]))   # random candidate slot
        perm = np.random.default_rng(int(seeds[2]))
        n_rings = 2 + self.n_neighbors                          # global, this BS, neighbours
        self._order = np.argsort(perm.random((n_rings, f)), axis=1)   # rank position -> content
        self._pos = np.empty_like(self._order)                           # content -> rank position
        np.put_along_axis(self._pos, self._order, np.arange(f)[None, :].repeat(n_rings, 0), axis=1)
        self._off = np.zeros(n_rings, dtype=np.int64)
        self._ahead: deque = deque()                             # pre-drawn drift intervals
        self._fut = None                                         # next-request index (clairvoyant read-outs)
        self._nb_last = np.full((self.n_neighbors, f), _NEVER)   # neighbours' last-request times (their LRU)
        self._nb_rows = np.arange(self.n_neighbors)[:, None]
        self._state = np.zeros((f, N_FEATURES))
        self._state[:, self._LAST] = _NEVER
        self._cnt_long = self._state[:, 2]                       # view: long-window counts
        self._r_clear()
        self._pending = -1                                       # content inserted by the last action
        self._u = self._rng_pol.random(self._U_BLOCK).tolist()
        self._iu = 0
        t_now = self._warm_up(-(-cfg.warmup_requests // self._T))
        self._off_draw = self._off.copy()
        # cache = the C most recently requested distinct contents (an LRU cache after the warm-up)
        last = self._state[:, self._LAST]
        seen = np.flatnonzero(last > _NEVER)
        recent = seen[np.argsort(-last[seen], kind="stable")[:c]]
        if recent.size < c:
            rest = np.setdiff1d(np.arange(f), recent)
            recent = np.concatenate([recent, perm.choice(rest, c - recent.size, replace=False)])
        recent = recent[::-1].astype(np.int64)                     # least recent first
        self._cache = recent.copy()
        self._cachel = recent.tolist()
        self._slot_of = [-1] * f
        self._inc = bytearray(f)
        for s_, i in enumerate(self._cachel):
            self._slot_of[i] = s_
            self._inc[i] = 1
        self._lru = OrderedDict.fromkeys(self._cachel)            # recency order, least recent first
        self._fifo = OrderedDict.fromkeys(self._cachel)           # insertion order, oldest first
        # insertion time = last request (LRU warm-up); contents never requested count as inserted first
        self._state[recent, self._INS] = np.maximum(last[recent], 0.0)
        self._refresh_neighbors()
        self._next_refresh = t_now + cfg.neighbor_refresh
        self._t0 = t_now - self._T               # the first _advance() opens the interval starting at t_now
        self._pos_in = self._T - 1
        self._rec_from = self._T
        self._bufl = []
        self._advance()
        self._t_start = self._t_miss
        self._cache0 = self._cache.copy()        # the cache at the first decision (Belady bound's start)
        self._end_t = self._t_start + cfg.episode_requests
        self._steps = 0
        self._has_reset = True
        self._stats = [0.0, 0.0, 0.0, 0.0]       # hits, neighbour hits, requests, delay sum (episode)
        return self._obs, {}

    def _advance(self) -> int:
        """Process the hits after the current request up to the next miss; observe it. Returns #hits."""
        hits = 0
        p = self._pos_in + 1
        r = self._rec_from                       # first request of the chunk not yet recorded
        T = self._T
        inc = self._inc
        move = self._lru.move_to_end
        bufl = self._bufl
        rset = self._Rset
        touched = []
        while True:
            if p >= T:
                if r < T:
                    self._record(r, T)
                self._new_chunk()
                bufl = self._bufl
                rset = self._Rset                # (a renormalisation may have replaced it)
                p = r = 0
            start = p
            while p < T:
                i = bufl[p]
                if not inc[i]:
                    break
                move(i)                          # LRU order: a hit makes the content most recent
                if i in rset:
                    touched.append(i)
                p += 1
            hits += p - start
            if p < T:
                break
        if p > r:
            self._record(r, p)
        if touched or self._pending >= 0:        # counts of these grew: update the LFU reserve
            cl = self._cnt_long
            for i in touched:
                if i in self._Rset:
                    self._r_remove(i)
            if self._pending >= 0:
                touched.append(self._pending)
                self._pending = -1
            for i in set(touched):
                self._r_offer(i, float(cl[i]))
        self._rec_from = p                       # the new miss is recorded after it has been observed
        self._pos_in = p
        x = bufl[p]
        t = self._t0 + p
        self._x = x
        self._t_miss = t
        self._state[x, self._INS] = self._ts[p]  # "time in cache" reads 0; the insertion time if it is cached
        self._obs = self._observe(x, t, p)
        self._miss_sav = self._nb_savl[x]
        return hits

    def _observe(self, x: int, t: int, p: int) -> np.ndarray:
        kr, kf = self._k_lru, self._k_lfu
        st = self._state
        cand = list(islice(self._lru, kr))
        if kf:
            if len(self._R) < kf:
                self._r_refill()
            cand += self._R[:kf]
        if self._iu >= self._U_BLOCK:
            self._u = self._rng_pol.random(self._U_BLOCK).tolist()
            self._iu = 0
        cand.append(next(iter(self._fifo)))
        cand.append(self._cachel[int(self._u[self._iu] * self.cache_size)])
        self._iu += 1
        self._cand = cand
        y = self._y
        np.multiply(st.take([x, *cand], 0), self._A[p], out=y)
        y += self._Bc[p]
        np.tanh(y, out=y)
        return y.astype(np.float32).reshape(-1)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        k = self.n_candidates
        a = discrete_action(action, k + 1)
        x = self._x
        t_x = self._t_miss
        sav = self._miss_sav
        if a < k:                               # evict the candidate, cache x in its slot
            v = self._cand[a]
            slot_of = self._slot_of
            s = slot_of[v]
            slot_of[v] = -1
            slot_of[x] = s
            self._cache[s] = x
            self._cachel[s] = x
            self._inc[v] = 0
            self._inc[x] = 1
            del self._lru[v]
            del self._fifo[v]
            self._lru[x] = None
            self._fifo[x] = None                # insertion time state[x, INS] = t_x was set at the miss
            if v in self._Rset:
                self._r_remove(v)
            self._pending = x                   # offered to the LFU reserve once its request is counted
        hits = self._advance()
        left = self._end_t - t_x - 1
        if hits > left:
            hits = left if left > 0 else 0
        n = hits + 1
        nb = 1.0 if sav > 0.0 else 0.0
        d_sum = hits * self._d_loc + self._d_cl - sav * self._d_span
        st = self._stats
        st[0] += hits
        st[1] += nb
        st[2] += n
        st[3] += d_sum
        self._steps += 1
        info = {"hit": hits / n, "neighbor_hit": nb / n, "delay": d_sum / n, "requests": n}
        return self._obs, hits + sav, False, self._t_miss >= self._end_t, info

    # ------------------------------------------------------------------ read-outs for baselines / tests
    @property
    def candidates(self) -> np.ndarray:
        """Content ids in the K candidate slots (action order) for the pending miss."""
        return np.array(self._cand, dtype=np.int64)

    @property
    def request(self) -> int:
        """Content id of the pending miss."""
        return self._x

    def long_counts(self, items: np.ndarray | int) -> np.ndarray:
        """Long-window exponentially weighted request counts (the ``lfu`` baseline's memory), any scale.

        Exact for cached contents; for the pending request use ``request_long_count``."""
        return self._state[items, 2]

    def request_long_count(self) -> float:
        """Long-window count of the pending request including the request itself (same scale)."""
        return float(self._state[self._x, 2] + self._w[self._pos_in, 2])

    def _future(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Pre-draw the stream through the episode's last request; index it once per episode.

        Returns ``(base, fut, keys)``: ``fut[p]`` is the content requested at time ``base + p`` (from the current
        drift interval's start to the end of the episode's last interval) and ``keys`` the sorted
        ``content * len(fut) + p``, so a content's next request after a time is one ``searchsorted``."""
        if self._fut is None:
            while self._t0 + self._T * (1 + len(self._ahead)) < self._end_t:
                self._draw_chunk()
            fut = np.concatenate([self._buf, *(c[1] for c in self._ahead)])
            order = np.argsort(fut, kind="stable")
            self._fut = (self._t0, fut, fut[order] * len(fut) + order)
        return self._fut

    def next_request_times(self, items: np.ndarray) -> np.ndarray:
        """Clairvoyant read-out: time of each content's next request after the pending one (``inf`` if it is
        not requested again within the episode). Pre-draws the rest of the episode (O(episode_requests))."""
        base, fut, keys = self._future()
        items = np.asarray(items, dtype=np.int64)
        n = len(fut)
        idx = np.searchsorted(keys, items * n + (self._t_miss - base), side="right")
        k = keys[np.minimum(idx, len(keys) - 1)]
        t = (base + k % n).astype(np.float64)
        ok = (idx < len(keys)) & (k // n == items) & (t < self._end_t)
        return np.where(ok, t, np.inf)

    def belady_hit_bound(self) -> float:
        """Belady's MIN hit ratio over this episode's requests from the cache at the first decision [9]: an
        upper bound on the ``hit`` KPI of every policy (see ``belady_min_hits``). Call it before the first
        step of the episode (or while the stream is still indexed from the episode's first interval)."""
        base, fut, _ = self._future()
        if base > self._t_start:
            raise RuntimeError("belady_hit_bound() must be called before the episode's first drift interval "
                               "is left (e.g. right after reset)")
        a = self._t_start - base
        reqs = fut[a:a + self.config.episode_requests]
        return belady_min_hits(self._cache0, reqs) / len(reqs)

    def episode_kpis(self) -> dict[str, float]:
        """Request-level hit ratio, neighbour-hit ratio, mean delay (ms), #requests of the episode so far."""
        h, nb, n, d = (float(v) for v in self._stats)
        m = max(n, 1.0)
        return {"hit": h / m, "neighbor_hit": nb / m, "delay": d / m, "requests": n}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if not self._has_reset:
            return "EdgeCaching (not reset)"
        h, nb, n, _ = self._stats
        return (f"t={self._t_miss - self._t_start} requests={int(n)} decisions={self._steps} "
                f"hit={h / max(n, 1.0):.3f} neighbor_hit={nb / max(n, 1.0):.3f} request={self._x} "
                f"in_neighbor={self._nb_savl[self._x] > 0.0}")


# ---------------------------------------------------------------------- heuristic baselines
def _const(slot_attr: str) -> BaselineFactory:
    def factory(env: gym.Env, seed: int) -> Policy:
        e = env.unwrapped
        a = 0 if slot_attr == "lru" else getattr(e, slot_attr)
        return lambda obs: a
    return factory


def _lfu(env: gym.Env, seed: int) -> Policy:
    """Windowed LFU with frequency admission [8]: frequency = the long-window exponentially weighted count
    (time constant ``window_long`` requests); evict the least frequent candidate only if the request is more
    frequent than it, else do not cache."""
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        cnt = e.long_counts(e.candidates)
        j = int(cnt.argmin())
        return j if e.request_long_count() > float(cnt[j]) else e.no_cache_action
    return policy


def _popularity_top_c(env: gym.Env, seed: int) -> Policy:
    """Static top-C by the true current popularity (not an upper bound): admit the request iff it is more
    popular than the least popular candidate, which it evicts. Under IRM this converges to the top-C cache (the
    best *static* cache); with drift it knows the current ranking but not the future requests, and it ignores
    neighbours, so a neighbour-aware policy can beat it on delay."""
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        pop = e.popularity(e.candidates)
        j = int(pop.argmin())
        return j if float(e.popularity(np.array([e.request]))[0]) > float(pop[j]) else e.no_cache_action
    return policy


def _belady(env: gym.Env, seed: int) -> Policy:
    """Belady's MIN [9] restricted to the env's actions (clairvoyant): evict the candidate whose next request
    is farthest in the future, or do not cache when the request's own next request is at least as far. Exact
    next requests within the episode (the rest is pre-drawn). Greedy farthest-next-use is optimal only when
    every cached content may be evicted, so over the K candidates this is a clairvoyant reference, not an
    optimum; the bound on every policy is ``EdgeCachingEnv.belady_hit_bound`` (unrestricted MIN)."""
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        nu = e.next_request_times(np.append(e.candidates, e.request))
        j = int(nu[:-1].argmax())
        return e.no_cache_action if nu[-1] >= nu[j] else j
    return policy


BASELINES: dict[str, BaselineFactory] = {
    "lru": _const("lru"),
    "lfu": _lfu,
    "fifo": _const("fifo_slot"),
    "random": _const("random_slot"),
    "popularity-top-c": _popularity_top_c,
    "belady": _belady,
}


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: EdgeCachingConfig | None = None) -> list[EdgeCachingConfig]:
    """Build ``n_clients`` base-station configs around ``base`` with spread proportional to ``heterogeneity``.

    At heterogeneity ``h`` (each client independently, ``U = U(-1, 1)``): Zipf exponent ``+ 0.3 h U``, overlap
    with the global ranking ``+ 0.4 h U``, drift rate ``x 4**(h U)`` (a BS with more requests per unit time
    sees less drift per request, so this knob also carries request-rate heterogeneity), cache size
    ``x 2**(h U)`` (rounded) and neighbour count ``+ round(6 h U)``; every value is clipped to its legal
    range. The candidate counts (they set the spaces), delays, windows and the episode length (returns stay
    comparable across clients) are kept. ``h = 0`` returns copies identical to ``base``. Randomness only from
    ``np.random.default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else EdgeCachingConfig()
    if not isinstance(base, EdgeCachingConfig):
        raise EnvConfigError(f"base={base!r} must be an EdgeCachingConfig")
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    u = rng.uniform(-1.0, 1.0, size=(5, n_clients)) * h

    def clip(name: str, value: float, low: float | None = None, high: float | None = None) -> float:
        return clip_knob(EdgeCachingConfig, name, value, low, high)

    c_low = max(base.n_lru_candidates, base.n_lfu_candidates)
    out = []
    for i in range(n_clients):
        out.append(dataclasses.replace(
            base,
            zipf_exponent=clip("zipf_exponent", base.zipf_exponent + 0.3 * u[0, i]),
            overlap=clip("overlap", base.overlap + 0.4 * u[1, i]),
            drift_rate=clip("drift_rate", base.drift_rate * 4.0 ** u[2, i]),
            cache_size=int(round(clip("cache_size", base.cache_size * 2.0 ** u[3, i], c_low,
                                      base.n_items - 1))),
            n_neighbors=int(clip("n_neighbors", base.n_neighbors + round(6.0 * u[4, i]))),
        ))
    return out


ENTRY = EnvEntry(
    env_id="frl/EdgeCaching-v0",
    name="edge-caching",
    entry_point="envs.edge_caching:EdgeCachingEnv",
    vector_entry_point="envs.edge_caching_batched:make_vector_env",
    config_cls=EdgeCachingConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("hit", "neighbor_hit", "delay"),
    lower_is_better=("delay",),
    summary="Base-station edge cache (F=1000, C=100): on each miss evict one of 10 LRU/LFU/FIFO/random "
            "candidates or skip; drifting per-BS Zipf popularity; neighbour BSs serve misses",
    max_episode_steps=None,
    kpi_weight="requests",
)
