"""Online service function chain (SFC) orchestration on a real NFV backbone (Abilene by default).

## Description

One federated client is one network operator running NFV on the Internet2 Abilene backbone (12 PoPs, 15
links; data and citation in ``envs.topologies``), the setting of SSCO [1]: chains of virtual network
functions (VNFs) arrive online and must be placed VNF by VNF on NFV nodes (every PoP hosts an NFV server of
``node_cpu`` vCPU) and chained over links of ``link_capacity_gbps``. Operators differ in their traffic mix
(chain lengths, CPU and bandwidth demand, arrival rate, where chains enter and leave the network).

**Requests** [1], [2], [3]: Poisson arrivals with rate ``arrival_rate`` (per time unit); each request holds
its resources for an exponential lifetime of mean ``mean_lifetime`` and then releases them (offered load
``arrival_rate * mean_lifetime`` chains in Erlang). A chain has ``L`` in {3, 4, 5} VNFs with probabilities
``chain_len_probs``, VNF ``i`` needs ``c_i ~ U[vnf_cpu_min, vnf_cpu_max] * cpu_scale`` vCPU, the chain a
bandwidth ``b ~ U[bw_min_gbps, bw_max_gbps] * bw_scale`` on every link it crosses, and has an ingress and an
egress PoP (with probability ``*_hotspot_share`` the operator's hotspot PoP, else uniform; egress != ingress)
and an end-to-end delay budget ``D = d(s, e) + L * vnf_delay_ms + slack``, ``slack ~ U[slack_min_ms,
slack_max_ms]``, where ``d(s, e)`` is the propagation delay of the shortest ingress-egress path: the budget
always admits the chain on an empty network (all VNFs on the shortest path), but not a detour.

**Placement and routing.** The agent places the current VNF ``i`` of the current request on a node ``v``;
the traffic goes from the previous VNF's node ``p`` (the ingress for ``i = 0``) to ``v`` over the
*shortest feasible path*: the minimum-propagation-delay path (``networkx`` Dijkstra) among links with at
least ``b`` residual bandwidth (``p = v`` needs no link). After the last VNF the chain is routed the same way
to the egress and accepted. Resources (CPU of every VNF, ``b`` on every link of every hop, a link used by two
hops counted twice) are reserved until the request's lifetime ends. A chain's delay is the propagation delay
of its paths plus ``vnf_delay_ms`` per VNF; an accepted chain's delay never exceeds its budget.

**Action mask** (``info["action_mask"]``, ``action_mask()``, and the last ``n_nodes`` entries of the
observation, so a masking agent sees it): node ``v`` is feasible for VNF ``i`` iff (a) it has ``c_i`` vCPU
left, (b) a path ``p -> v`` with ``b`` residual bandwidth exists, and (c) the delay budget can still be met:
``used + d_b(p, v) + (L - i) * vnf_delay_ms + d_b(v, e) <= D`` with ``d_b`` shortest-feasible-path delays;
for the last VNF (c) is exact: the route ``v -> e`` is computed after reserving ``p -> v``. Choosing a node
the mask marks infeasible is a **placement error**: the request is rejected (its tentative reservations are
rolled back) and the step costs ``error_penalty``. A feasible choice can still lead to a dead end (no
feasible node for the next VNF, or its CPU/bandwidth taken by an earlier hop of the same chain); the request
is then rejected without error. A request whose first VNF has no feasible node is rejected on arrival
(*blocked*) without asking the agent, so every decision has at least one feasible action.

## Action Space

``Discrete(n_nodes)``: the node for the current VNF (12 for Abilene).

## Observation Space

``Box(0, 1, (6 * n_nodes + 5,), float32)``: residual CPU fraction of every node (n); current VNF's CPU demand /
``node_cpu``; ``b`` / link capacity; VNF index / 5; VNFs left / 5; one-hot of the previous VNF's node (n);
one-hot of the egress (n); remaining delay budget / 50 ms (clipped); per node the mean residual bandwidth
fraction of its links (n); per node the lower bound ``(d_b(p, v) + d_b(v, e)) / remaining budget`` (clipped
to 1, 1 if unreachable) (n); the action mask (n).

## Rewards

``accept_reward`` when a chain is accepted, ``-error_penalty`` for a placement error, and
``-hop_cost * (links crossed) * b / link_capacity`` per routed hop (bandwidth is the scarce resource; a design
shaping term in the spirit of SSCO's instantiation/resource cost [1]). ``info`` per step: ``accepted``,
``rejected``, ``blocked`` (rejected on arrival), ``decided`` (= accepted + rejected, requests resolved this
step), ``acceptance`` (accepted / decided, 0 if none), ``placement_error`` (0/1), ``utilisation`` (used / total
CPU), ``link_utilisation``, ``action_mask``. ``ENTRY.kpi_weight = {"acceptance": "decided"}`` makes the
evaluated acceptance the exact ratio over requests.

## Starting State

Empty network at time 0; the first observation describes the first VNF of the first request that is not
blocked. Request streams are drawn from a generator seeded at reset and independent of the actions, so the
same seed gives every policy the same requests (``requests(n)`` returns them for the offline bound).

## Episode End

Never terminates; truncated after ``episode_steps`` placement decisions (the step cap).

## Arguments

``SfcOrchestrationEnv(config=None, render_mode=None, **overrides)``; knobs (generated table):

{knob_table}

## References

1. H. Huang, C. Zeng, Y. Zhao, G. Min, Y. Zhu, W. Miao, J. Hu, "Scalable Orchestration of Service Function
   Chains in NFV-Enabled Networks: A Federated Reinforcement Learning Approach", IEEE JSAC 39(8), 2021
   (SSCO: VNF-by-VNF DRL placement, placement errors, resource utilisation, federated clients).
2. R. Mijumbi, J. Serrat, J.-L. Gorricho, N. Bouten, F. De Turck, R. Boutaba, "Network Function
   Virtualization: State-of-the-art and Research Challenges", IEEE Commun. Surveys Tuts. 18(1), 2016.
3. S. Mehraghdam, M. Keller, H. Karl, "Specifying and placing chains of virtual network functions", IEEE
   CloudNet 2014 (chains with CPU and bandwidth demands, delay constraints, shortest-path chaining).
4. Offline bound: the arc-flow (multi-commodity flow) formulation of SFC embedding, e.g. Mehraghdam et al. [3]
   and M. C. Luizelli et al., "Piecing together the NFV provisioning puzzle", IFIP/IEEE IM 2015.

## Version History

* v0: initial version.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import networkx as nx
import numpy as np
from gymnasium import spaces

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_render_mode, discrete_action
from envs.topologies import TOPOLOGIES, topology_graph

__all__ = [
    "BASELINES",
    "ENTRY",
    "Request",
    "SfcOrchestrationConfig",
    "SfcOrchestrationEnv",
    "make_client_configs",
    "offline_acceptance_bound",
    "window_acceptance",
]

_EPS = 1e-9
_MAX_LEN = 5
_LENGTHS = (3, 4, 5)
_BLOCK = 64                      # requests drawn per generator call
_MAX_BLOCKED = 1_000_000         # cap on consecutive requests blocked on arrival


@dataclass(frozen=True)
class SfcOrchestrationConfig(KnobConfig):
    """One operator's network and traffic; default, unit, range and source per knob (``knob_table``)."""

    topology: str = knob("abilene", unit="-", choices=tuple(TOPOLOGIES),
                         source="Abilene (SNDlib / Topology Zoo) [envs.topologies]; NSFNET as the alternative")
    episode_steps: int = knob(300, 10, 100_000, integer=True, unit="decisions",
                              source="step cap; ~75 chains per episode (design)")
    node_cpu: float = knob(16.0, 1.0, 1024.0, unit="vCPU", source="one NFV server per PoP (design, [1] order)")
    link_capacity_gbps: float = knob(10.0, 0.1, 400.0, unit="Gbit/s",
                                     source="Abilene backbone OC-192, ~10 Gbit/s (SNDlib abilene)")
    arrival_rate: float = knob(1.0, 0.01, 100.0, unit="chains per time unit", source="Poisson arrivals [1], [2]")
    mean_lifetime: float = knob(16.0, 0.1, 10_000.0, unit="time units",
                                source="exponential holding time [1]; load 16 Erlang at defaults (design)")
    chain_len_probs: tuple = knob((1 / 3, 1 / 3, 1 / 3), 0.0, 1.0, length=(3, 3), unit="P(L=3,4,5)",
                                  source="chains of 3-5 VNFs [1], [3]")
    vnf_cpu_min: float = knob(1.0, 0.1, 64.0, unit="vCPU", source="per-VNF CPU demand, uniform [1], [3]")
    vnf_cpu_max: float = knob(4.0, 0.1, 64.0, unit="vCPU", source="per-VNF CPU demand, uniform [1], [3]")
    cpu_scale: float = knob(1.0, 0.25, 4.0, unit="x", source="operator's CPU demand scale (heterogeneity)")
    bw_min_gbps: float = knob(0.5, 0.01, 100.0, unit="Gbit/s", source="chain bandwidth, uniform [3]")
    bw_max_gbps: float = knob(2.5, 0.01, 100.0, unit="Gbit/s", source="chain bandwidth, uniform [3]")
    bw_scale: float = knob(1.0, 0.25, 4.0, unit="x", source="operator's bandwidth demand scale (heterogeneity)")
    vnf_delay_ms: float = knob(0.5, 0.0, 20.0, unit="ms", source="per-VNF processing delay (design)")
    slack_min_ms: float = knob(1.0, 0.0, 100.0, unit="ms",
                               source="budget slack over the shortest path, uniform (design)")
    slack_max_ms: float = knob(10.0, 0.0, 100.0, unit="ms",
                               source="budget slack over the shortest path, uniform (design)")
    ingress_hotspot: int = knob(0, 0, 13, integer=True, unit="node", source="operator's main ingress PoP")
    ingress_hotspot_share: float = knob(0.0, 0.0, 1.0, unit="fraction",
                                        source="share of chains entering at the hotspot (heterogeneity)")
    egress_hotspot: int = knob(8, 0, 13, integer=True, unit="node", source="operator's main egress PoP")
    egress_hotspot_share: float = knob(0.0, 0.0, 1.0, unit="fraction",
                                       source="share of chains leaving at the hotspot (heterogeneity)")
    accept_reward: float = knob(1.0, 0.0, 100.0, unit="-", source="reward per accepted chain [1]")
    error_penalty: float = knob(1.0, 0.0, 100.0, unit="-", source="placement-error penalty [1]")
    hop_cost: float = knob(0.05, 0.0, 10.0, unit="per link x b/B",
                           source="bandwidth cost per link crossed (design shaping, cf. [1] resource cost)")

    def check_constraints(self) -> None:
        n = len(TOPOLOGIES[self.topology][0])
        for name in ("ingress_hotspot", "egress_hotspot"):
            if getattr(self, name) >= n:
                raise EnvConfigError(f"{name}={getattr(self, name)!r} is out of range for topology "
                                     f"{self.topology!r}; allowed: 0..{n - 1}")
        for lo, hi in (("vnf_cpu_min", "vnf_cpu_max"), ("bw_min_gbps", "bw_max_gbps"),
                       ("slack_min_ms", "slack_max_ms")):
            if getattr(self, lo) > getattr(self, hi):
                raise EnvConfigError(f"{lo}={getattr(self, lo)!r} exceeds {hi}={getattr(self, hi)!r}; "
                                     f"allowed: {lo} <= {hi}")
        if sum(self.chain_len_probs) <= 0:
            raise EnvConfigError(f"chain_len_probs={self.chain_len_probs!r} must have a positive sum")
        if self.vnf_cpu_max * self.cpu_scale > self.node_cpu:
            raise EnvConfigError(f"vnf_cpu_max * cpu_scale = {self.vnf_cpu_max * self.cpu_scale!r} exceeds "
                                 f"node_cpu={self.node_cpu!r}; allowed: a VNF fits on an empty node")
        if self.bw_max_gbps * self.bw_scale > self.link_capacity_gbps:
            raise EnvConfigError(f"bw_max_gbps * bw_scale = {self.bw_max_gbps * self.bw_scale!r} exceeds "
                                 f"link_capacity_gbps={self.link_capacity_gbps!r}; allowed: a chain fits on an "
                                 f"empty link")


__doc__ = document_knobs(__doc__, SfcOrchestrationConfig)


@dataclass(frozen=True)
class Request:
    """One chain request: arrival time, lifetime, ingress/egress node, per-VNF CPU, bandwidth, delay budget."""

    arrival: float
    lifetime: float
    ingress: int
    egress: int
    cpu: tuple[float, ...]
    bw: float
    budget_ms: float


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: SfcOrchestrationConfig | None = None) -> list[SfcOrchestrationConfig]:
    """``n_clients`` operators around ``base``; their traffic mixes differ in proportion to ``heterogeneity`` h.

    Chain-length probabilities move from ``base``'s toward a random Dirichlet(1) mix by h; CPU and bandwidth
    demand scales and the arrival rate are multiplied by ``2**(h U(-1, 1))`` (bandwidth by ``2**(h U(-1, 0.3))``
    so demands stay below the link capacity), each operator gets its own ingress/egress hotspot PoPs with a
    share ``0.6 h U(0.5, 1)``. Topology and capacities stay fixed: every client must share the spaces.
    ``h = 0`` returns copies of ``base``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else SfcOrchestrationConfig()
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    n_nodes = len(TOPOLOGIES[base.topology][0])
    p0 = np.asarray(base.chain_len_probs, dtype=float) / sum(base.chain_len_probs)
    out = []
    for _ in range(n_clients):
        mix = rng.dirichlet(np.ones(3))
        probs = (1.0 - h) * p0 + h * mix
        cpu = clip_knob(SfcOrchestrationConfig, "cpu_scale", base.cpu_scale * 2.0 ** (h * rng.uniform(-1, 1)),
                        high=base.node_cpu / base.vnf_cpu_max)
        bw = clip_knob(SfcOrchestrationConfig, "bw_scale", base.bw_scale * 2.0 ** (h * rng.uniform(-1, 0.3)),
                       high=base.link_capacity_gbps / base.bw_max_gbps)
        rate = clip_knob(SfcOrchestrationConfig, "arrival_rate", base.arrival_rate * 2.0 ** (h * rng.uniform(-1, 1)))
        s_in, s_out = rng.choice(n_nodes, size=2, replace=False)
        share = rng.uniform(0.5, 1.0, size=2) * 0.6 * h
        if h == 0.0:
            out.append(dataclasses.replace(base))
            continue
        out.append(dataclasses.replace(
            base, chain_len_probs=tuple(float(x) for x in probs), cpu_scale=cpu, bw_scale=bw, arrival_rate=rate,
            ingress_hotspot=int(s_in), egress_hotspot=int(s_out), ingress_hotspot_share=float(share[0]),
            egress_hotspot_share=float(share[1])))
    return out


class SfcOrchestrationEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: SfcOrchestrationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(SfcOrchestrationConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        self.graph = topology_graph(cfg.topology)
        n = self.n_nodes = self.graph.number_of_nodes()
        self.n_links = self.graph.number_of_edges()
        self.action_space = spaces.Discrete(n)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(6 * n + 5,), dtype=np.float32)
        self.link_ends = np.zeros((self.n_links, 2), dtype=np.int64)
        self.link_delay_ms = np.zeros(self.n_links)
        for u, v, d in self.graph.edges(data=True):
            self.link_ends[d["idx"]] = (u, v)
            self.link_delay_ms[d["idx"]] = d["delay_ms"]
        self.sp_delay_ms = np.full((n, n), np.inf)            # unconstrained shortest-path delays
        for s, lengths in nx.all_pairs_dijkstra_path_length(self.graph, weight="delay_ms"):
            for t, d in lengths.items():
                self.sp_delay_ms[s, t] = d
        self._incident = np.zeros((n, self.n_links))
        for e, (u, v) in enumerate(self.link_ends):
            self._incident[u, e] = self._incident[v, e] = 1.0
        self._incident /= self._incident.sum(1, keepdims=True)
        p = np.asarray(cfg.chain_len_probs, dtype=float)
        self._len_cdf = np.cumsum(p / p.sum())
        self._cap_cpu = float(cfg.node_cpu)
        self._cap_bw = float(cfg.link_capacity_gbps)
        self._has_reset = False

    # ------------------------------------------------------------------ request stream
    def _draw_block(self) -> None:
        """The next ``_BLOCK`` requests, one vectorised draw per quantity from the request generator."""
        cfg, rng, n, k = self.config, self._rng_req, self.n_nodes, _BLOCK
        gaps = rng.exponential(1.0 / cfg.arrival_rate, k)
        life = rng.exponential(cfg.mean_lifetime, k)
        lens = np.asarray(_LENGTHS)[np.minimum(np.searchsorted(self._len_cdf, rng.random(k), side="right"), 2)]
        cpu = rng.uniform(cfg.vnf_cpu_min, cfg.vnf_cpu_max, (k, _MAX_LEN)) * cfg.cpu_scale
        bw = rng.uniform(cfg.bw_min_gbps, cfg.bw_max_gbps, k) * cfg.bw_scale
        slack = rng.uniform(cfg.slack_min_ms, cfg.slack_max_ms, k)
        ing = np.where(rng.random(k) < cfg.ingress_hotspot_share, cfg.ingress_hotspot, rng.integers(n, size=k))
        egr = np.where(rng.random(k) < cfg.egress_hotspot_share, cfg.egress_hotspot, rng.integers(n, size=k))
        shift = rng.integers(1, n, size=k)
        egr = np.where(egr == ing, (ing + shift) % n, egr)
        t = self._t_last + np.cumsum(gaps)
        self._t_last = float(t[-1])
        for i in range(k):
            s, e, L = int(ing[i]), int(egr[i]), int(lens[i])
            budget = float(self.sp_delay_ms[s, e] + L * cfg.vnf_delay_ms + slack[i])
            self._queue.append(Request(float(t[i]), float(life[i]), s, e, tuple(float(c) for c in cpu[i, :L]),
                                       float(bw[i]), budget))

    def _next_request(self) -> Request:
        if self._q_pos >= len(self._queue):
            self._draw_block()
        r = self._queue[self._q_pos]
        self._q_pos += 1
        return r

    def requests(self, n: int) -> list[Request]:
        """The first ``n`` requests of the current episode (policy independent; drawn ahead if needed)."""
        while len(self._queue) < n:
            self._draw_block()
        return list(self._queue[:n])

    # ------------------------------------------------------------------ routing
    def _weight(self, b: float, res: np.ndarray) -> Any:
        thr = b - _EPS
        return lambda u, v, d: d["delay_ms"] if res[d["idx"]] >= thr else None

    def _route(self, src: int, dst: int, b: float, res: np.ndarray) -> tuple[float, list[int]] | None:
        """(delay, link indices) of the shortest path with ``b`` residual bandwidth on every link, or None."""
        if src == dst:
            return 0.0, []
        try:
            delay, path = nx.single_source_dijkstra(self.graph, src, dst, weight=self._weight(b, res))
        except nx.NetworkXNoPath:
            return None
        return delay, [self.graph.edges[a, c]["idx"] for a, c in zip(path[:-1], path[1:], strict=True)]

    def _dists(self, src: int, b: float, res: np.ndarray) -> np.ndarray:
        d = np.full(self.n_nodes, np.inf)
        for t, v in nx.single_source_dijkstra_path_length(self.graph, src, weight=self._weight(b, res)).items():
            d[t] = v
        return d

    # ------------------------------------------------------------------ feasibility
    def _compute_mask(self) -> None:
        r, i, p = self._req, self._k, self._prev
        L, b, cfg = len(r.cpu), r.bw, self.config
        res = self.bw_res
        d_from = self._dists(p, b, res)
        d_to = self._dists(r.egress, b, res)                     # undirected: d_b(v, e) = d_b(e, v)
        self._lb = d_from + d_to
        left = r.budget_ms - self._used_ms
        ok = (self.cpu_res >= r.cpu[i] - _EPS) & np.isfinite(d_from)
        ok &= self._used_ms + d_from + (L - i) * cfg.vnf_delay_ms + d_to <= r.budget_ms + _EPS
        if i == L - 1:                                           # exact for the last VNF
            for v in np.flatnonzero(ok):
                hop = self._route(p, int(v), b, res)
                tmp = res.copy()
                tmp[hop[1]] -= b
                out = self._route(int(v), r.egress, b, tmp)
                ok[v] = out is not None and (self._used_ms + hop[0] + cfg.vnf_delay_ms + out[0]
                                             <= r.budget_ms + _EPS)
        self._mask = ok
        self._left_ms = left

    def action_mask(self) -> np.ndarray:
        """Boolean mask of the nodes feasible for the current VNF (see the module docstring)."""
        return self._mask.copy()

    # ------------------------------------------------------------------ resources
    def _release_until(self, t: float) -> None:
        while self._active and self._active[0][0] <= t:
            _, _, nodes, cpus, links, b = heapq.heappop(self._active)
            np.add.at(self.cpu_res, nodes, cpus)
            np.add.at(self.bw_res, links, b)
        np.minimum(self.cpu_res, self._cap_cpu, out=self.cpu_res)   # float round-off only
        np.minimum(self.bw_res, self._cap_bw, out=self.bw_res)

    def _rollback(self) -> None:
        if self._nodes:
            np.add.at(self.cpu_res, self._nodes, self._cpus)
        if self._links:
            np.add.at(self.bw_res, self._links, self._req.bw)

    def _start_requests(self) -> int:
        """Advance to the next request that has a feasible first VNF; returns how many were blocked on arrival."""
        blocked = 0
        for _ in range(_MAX_BLOCKED):
            r = self._next_request()
            self.now = r.arrival
            self._release_until(r.arrival)
            self._req, self._k, self._prev, self._used_ms = r, 0, r.ingress, 0.0
            self._nodes, self._cpus, self._links = [], [], []
            self._compute_mask()
            if self._mask.any():
                return blocked
            blocked += 1
            self._n_resolved += 1
        raise RuntimeError(f"{_MAX_BLOCKED} consecutive requests blocked on arrival (config {self.config!r})")

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._rng_req = np.random.default_rng(int(self.np_random.integers(0, 2**63 - 1)))
        self._queue: list[Request] = []
        self._q_pos = 0
        self._t_last = 0.0
        self.cpu_res = np.full(self.n_nodes, self._cap_cpu)
        self.bw_res = np.full(self.n_links, self._cap_bw)
        self._active: list[tuple] = []
        self._seq = 0
        self._steps = 0
        self._n_resolved = self._n_accepted = 0
        self.outcomes: dict[int, bool] = {}      # request index -> accepted (resolved requests only)
        self.accepted_delays: list[tuple[float, float]] = []   # (chain delay, budget) of accepted chains
        self._has_reset = True
        blocked = self._start_requests()
        self._record_blocked(blocked)
        return self._observation(), {"action_mask": self.action_mask()}

    def _record_blocked(self, blocked: int) -> None:
        start = self._q_pos - 1 - blocked
        for j in range(blocked):
            self.outcomes[start + j] = False

    def _observation(self) -> np.ndarray:
        r, i, n = self._req, self._k, self.n_nodes
        L = len(r.cpu)
        onehot_p = np.zeros(n)
        onehot_p[self._prev] = 1.0
        onehot_e = np.zeros(n)
        onehot_e[r.egress] = 1.0
        left = max(self._left_ms, _EPS)
        lb = np.where(np.isfinite(self._lb), np.minimum(self._lb / left, 1.0), 1.0)
        head = [min(r.cpu[i] / self._cap_cpu, 1.0), r.bw / self._cap_bw, i / _MAX_LEN, (L - i) / _MAX_LEN,
                min(max(self._left_ms, 0.0) / 50.0, 1.0)]
        obs = np.concatenate([self.cpu_res / self._cap_cpu, head, onehot_p, onehot_e,
                              self._incident @ (self.bw_res / self._cap_bw), lb, self._mask.astype(float)])
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        v = discrete_action(action, self.n_nodes)
        cfg, r = self.config, self._req
        reward, accepted, rejected, blocked, error = 0.0, 0, 0, 0, 0
        req_index = self._q_pos - 1
        if not self._mask[v]:                                    # placement error
            error, rejected = 1, 1
            reward -= cfg.error_penalty
            self._rollback()
        else:
            hop = self._route(self._prev, v, r.bw, self.bw_res)
            self.bw_res[hop[1]] -= r.bw
            self.cpu_res[v] -= r.cpu[self._k]
            self._nodes.append(v)
            self._cpus.append(r.cpu[self._k])
            self._links += hop[1]
            reward -= cfg.hop_cost * len(hop[1]) * r.bw / self._cap_bw
            self._used_ms += hop[0] + cfg.vnf_delay_ms
            self._k += 1
            self._prev = v
            if self._k == len(r.cpu):                            # route to the egress and accept
                out = self._route(v, r.egress, r.bw, self.bw_res)
                # the last VNF's mask is exact, so the egress route exists and meets the budget
                self.bw_res[out[1]] -= r.bw
                self._links += out[1]
                self._used_ms += out[0]
                reward -= cfg.hop_cost * len(out[1]) * r.bw / self._cap_bw
                self._seq += 1
                heapq.heappush(self._active, (r.arrival + r.lifetime, self._seq, np.array(self._nodes),
                                              np.array(self._cpus), np.array(self._links, dtype=np.int64), r.bw))
                self.accepted_delays.append((self._used_ms, r.budget_ms))
                accepted = 1
                reward += cfg.accept_reward
            else:
                self._compute_mask()
                if not self._mask.any():                         # dead end: reject without error
                    rejected = 1
                    self._rollback()
        if accepted or rejected:
            self.outcomes[req_index] = bool(accepted)
            self._n_resolved += 1
            self._n_accepted += accepted
            blocked = self._start_requests()
            self._record_blocked(blocked)
            rejected += blocked
        self._steps += 1
        decided = accepted + rejected
        used = 1.0 - self.cpu_res.sum() / (self._cap_cpu * self.n_nodes)
        info = {"accepted": float(accepted), "rejected": float(rejected), "blocked": float(blocked),
                "decided": float(decided), "acceptance": accepted / decided if decided else 0.0,
                "placement_error": float(error), "utilisation": float(used),
                "link_utilisation": float(1.0 - self.bw_res.sum() / (self._cap_bw * self.n_links)),
                "action_mask": self.action_mask()}
        return self._observation(), float(reward), False, self._steps >= cfg.episode_steps, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if not self._has_reset:
            return "SfcOrchestration (not reset)"
        r = self._req
        return (f"t={self.now:.2f} step={self._steps} req {r.ingress}->{r.egress} vnf {self._k + 1}/{len(r.cpu)} "
                f"cpu={r.cpu[self._k]:.2f} bw={r.bw:.2f} left={self._left_ms:.2f}ms mask={self._mask.astype(int)}")


# ---------------------------------------------------------------------- heuristic baselines (mask-aware)
def _masked(env: gym.Env, choose: Any) -> Policy:
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        m = e.action_mask()
        return int(choose(e, np.flatnonzero(m))) if m.any() else 0
    return policy


def _first_fit(env: gym.Env, seed: int) -> Policy:
    return _masked(env, lambda e, idx: idx[0])


def _best_fit(env: gym.Env, seed: int) -> Policy:
    return _masked(env, lambda e, idx: idx[np.argmin(e.cpu_res[idx])])


def _least_loaded(env: gym.Env, seed: int) -> Policy:
    return _masked(env, lambda e, idx: idx[np.argmax(e.cpu_res[idx])])


def _random(env: gym.Env, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return _masked(env, lambda e, idx: rng.choice(idx))


BASELINES: dict[str, BaselineFactory] = {
    "first-fit": _first_fit,
    "best-fit": _best_fit,
    "least-loaded": _least_loaded,
    "random": _random,
}


# ---------------------------------------------------------------------- offline bound
def window_acceptance(env: gym.Env, policy: Policy, seed: int, n_requests: int, max_steps: int = 100_000) -> int:
    """Chains accepted by ``policy`` among the first ``n_requests`` requests of the episode with ``seed``."""
    e = env.unwrapped
    obs, _ = env.reset(seed=seed)
    for _ in range(max_steps):
        if all(j in e.outcomes for j in range(n_requests)):
            break
        obs, *_ = e.step(policy(obs))
    else:
        raise RuntimeError(f"{n_requests} requests not resolved in {max_steps} steps")
    return sum(e.outcomes[j] for j in range(n_requests))


def offline_acceptance_bound(env: gym.Env, requests: list[Any], integral: bool = False,
                             time_limit_s: float = 20.0) -> float:
    """Upper bound on the number of ``requests`` (all known in advance, empty network at t = 0) any policy of
    this env can accept, from the arc-flow formulation [4] solved by HiGHS (``scipy.optimize.milp``).

    Variables: ``y_r`` (request r accepted), ``x_{r,i,v}`` (VNF i of r on node v), ``f_{r,h,a}`` (flow of hop h
    of r on directed arc a). Constraints: ``sum_v x_{r,i,v} = y_r``; flow conservation of every hop between
    the nodes of consecutive VNFs (ingress -> VNF 0 -> ... -> VNF L-1 -> egress); at every arrival instant
    ``t_j``, the CPU of every node and the bandwidth ``sum b_r (f_{r,h,uv} + f_{r,h,vu})`` of every link over the
    requests active at ``t_j`` (``a_r <= t_j < a_r + lifetime_r``) within capacity (usage changes only at
    arrivals, where it is largest); delay ``sum_{h,a} delay_a f_{r,h,a} <= (D_r - L_r vnf_delay) y_r``.
    Why a bound: every run of the env on these requests is a feasible integral point (its accepted chains
    meet these capacities at every instant, since resources are released only at lifetime ends, and meet
    their budgets, since a shortest feasible path is one admissible route), so the maximum of
    ``sum y_r`` is at least the env's acceptance; the LP relaxation (``integral=False``) can only be larger,
    and with ``integral=True`` the MILP's dual bound is returned, valid even if HiGHS stops at the time limit.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    e = env.unwrapped
    n, m, cfg = e.n_nodes, e.n_links, e.config
    arcs = [(int(u), int(v), k) for k, (u, v) in enumerate(e.link_ends)] + \
           [(int(v), int(u), k) for k, (u, v) in enumerate(e.link_ends)]
    A = len(arcs)
    nv = 0
    y_idx, x_idx, f_idx = [], [], []
    for r in requests:
        L = len(r.cpu)
        y_idx.append(nv)
        nv += 1
        x_idx.append(nv)
        nv += L * n
        f_idx.append(nv)
        nv += (L + 1) * A
    rows, cols, vals, lo, hi = [], [], [], [], []
    nrow = 0

    def add(entries: list[tuple[int, float]], low: float, high: float) -> None:
        nonlocal nrow
        for c, v in entries:
            rows.append(nrow)
            cols.append(c)
            vals.append(v)
        lo.append(low)
        hi.append(high)
        nrow += 1

    for ri, r in enumerate(requests):
        L, y = len(r.cpu), y_idx[ri]
        for i in range(L):                                       # each VNF placed once iff accepted
            add([(x_idx[ri] + i * n + v, 1.0) for v in range(n)] + [(y, -1.0)], 0.0, 0.0)
        for h in range(L + 1):                                   # flow conservation of hop h at every node
            base = f_idx[ri] + h * A
            for v in range(n):
                ent = [(base + a, 1.0) for a, (s, _, _) in enumerate(arcs) if s == v]
                ent += [(base + a, -1.0) for a, (_, t, _) in enumerate(arcs) if t == v]
                # out - in = source(v) - sink(v): the hop leaves VNF h-1 (the ingress) and enters VNF h (egress)
                if h == 0:
                    if v == r.ingress:
                        ent.append((y, -1.0))
                else:
                    ent.append((x_idx[ri] + (h - 1) * n + v, -1.0))
                if h == L:
                    if v == r.egress:
                        ent.append((y, 1.0))
                else:
                    ent.append((x_idx[ri] + h * n + v, 1.0))
                add(ent, 0.0, 0.0)
        ent = [(f_idx[ri] + h * A + a, float(e.link_delay_ms[k])) for h in range(L + 1)
               for a, (_, _, k) in enumerate(arcs)]
        add(ent + [(y, -(r.budget_ms - L * cfg.vnf_delay_ms))], -np.inf, 0.0)
    for rj in requests:                                          # capacities at every arrival instant
        active = [ri for ri, r in enumerate(requests) if r.arrival <= rj.arrival < r.arrival + r.lifetime]
        for v in range(n):
            add([(x_idx[ri] + i * n + v, requests[ri].cpu[i]) for ri in active
                 for i in range(len(requests[ri].cpu))], -np.inf, cfg.node_cpu)
        for k in range(m):
            add([(f_idx[ri] + h * A + a, requests[ri].bw) for ri in active
                 for h in range(len(requests[ri].cpu) + 1) for a, (_, _, kk) in enumerate(arcs) if kk == k],
                -np.inf, cfg.link_capacity_gbps)
    mat = coo_matrix((vals, (rows, cols)), shape=(nrow, nv)).tocsr()
    c = np.zeros(nv)
    c[y_idx] = -1.0
    integrality = np.zeros(nv)
    if integral:
        integrality[:] = 1
    res = milp(c, constraints=LinearConstraint(mat, lo, hi), bounds=Bounds(0.0, 1.0), integrality=integrality,
               options={"time_limit": time_limit_s, "presolve": True})
    if integral:
        bound = getattr(res, "mip_dual_bound", None)
        if bound is None or not np.isfinite(bound):
            raise RuntimeError(f"HiGHS gave no dual bound (status {res.status}: {res.message})")
        return float(-bound)
    if res.status != 0:
        raise RuntimeError(f"LP relaxation failed (status {res.status}: {res.message})")
    return float(-res.fun)


ENTRY = EnvEntry(
    env_id="frl/SfcOrchestration-v0",
    name="sfc-orchestration",
    entry_point="envs.sfc_orchestration:SfcOrchestrationEnv",
    config_cls=SfcOrchestrationConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("acceptance", "utilisation", "placement_error", "link_utilisation"),
    lower_is_better=("placement_error",),
    kpi_weight={"acceptance": "decided"},
    summary="NFV service-chain placement on the Abilene backbone (acceptance, CPU utilisation, placement errors)",
    max_episode_steps=None,
)
