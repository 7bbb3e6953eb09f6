"""MEC resource allocation: edge hosts split CPU and uplink bandwidth among their users and share a cloud pool.

## Description

One federated client is one edge region with ``n_hosts`` edge hosts (MEC servers at base stations, the agents
``host_0`` .. of the PettingZoo form). Each host serves ``users_per_host`` IoT devices in its own cell. Every
slot (``slot_s``, 1 s) each device's computation tasks of the slot arrive at its start; the host decides, for
the slot, the share of its uplink band and of its CPU that each of its users gets, and how much of a *shared*
metro-cloud CPU pool it claims. The hosts decide concurrently (one joint step), and the pool couples them: the
pool's spare capacity is split among the hosts in proportion to their claims, so a host that grabs the pool
slows every other host down. This is the setting of concurrent federated RL for IoT edge resource allocation
(Zhu et al. 2022 [1]): hosts compete for shared resources while each keeps its own allocation decision.

**Physics** (imported from ``envs.mec_offloading``, the suite's single-cell MEC model): the uplink link budget
of 3GPP TR 36.814 (path loss ``128.1 + 37.6 log10(d / 1 km)``, log-normal shadowing, BS antenna gain, eNB
noise figure; ``mec_offloading.device_link_gain``), device positions area-uniform on the cell annulus and
shadowing drawn per episode, Rayleigh block fading ``|h|^2 ~ Exp(1)`` per device and slot; task sizes,
processing densities, transmit power and the delay/energy weighting are those of ``MecOffloadingConfig`` [2].

**Uplink (bandwidth share)** [2], [3]: a user given the share ``b_u`` of the host's band ``B`` transmits at
``r_u = b_u B log2(1 + p g_u / (N0 b_u B))`` (OFDMA: the noise scales with the allocated band), so a task of
``D`` bits takes ``D / r_u`` s and costs the device ``p D / r_u`` J.

**Computing (CPU share + pool)** [3], [4]: the user gets ``c_u`` of the host CPU ``f_h`` and the same share of
the host's pool grant ``G_h``; a task's cycles ``W`` are split between the edge (from the task's start) and the
pool, whose part arrives after the backhaul latency ``L`` (``cloud_latency_ms``): ``W`` cycles take
``W / (c_u f_h)`` when ``W <= c_u f_h L`` and ``(W + c_u G_h L) / (c_u (f_h + G_h))`` otherwise (fluid split).

**Pool contention** (the coupling): the pool has ``cloud_cpu_ghz`` of which other tenants use ``u(t)``, a
two-state Markov (Gilbert-Elliott [5]) utilisation as the edge servers of ``mec_offloading``. Host h claims
``k_h in [0, 1]`` and is granted the fraction ``k_h / max(1, sum_j k_j)`` of the spare pool: grants never
exceed the pool (conservation), and claims that sum to less than 1 leave capacity idle.

**Tasks and deadlines** [2], [4]: per device Poisson arrivals with mean ``arrival_rate * slot_s`` (capped at
``max_tasks_per_user`` per slot), in *hot* cells ``hot_multiplier`` times more (each host's cell is hot or calm
by its own two-state Markov chain: bursty, unequal demand across hosts, which is what makes sharing the pool
worth deciding). Each task has a deadline ``~ U[deadline_min_s, deadline_max_s]`` within the slot. A host
serves each user's tasks earliest-deadline-first: its upload, then its computation (FIFO per user, Lindley
recursion); a task that cannot finish by its deadline under the slot's allocation is rejected at admission
(it uses no resource and counts as dropped) [4].

**Utility** (served tasks / delay / energy, [2]): a served task earns ``1 - w_T T / T_dl - w_E E / (p T_dl)``
(``T`` its delay, ``T_dl`` its deadline, ``E`` its device transmit energy; in ``[0, 1]`` since ``E <= p T``
and ``w_T + w_E <= 1``), a dropped task 0. A host's utility is the sum over its tasks divided by the mean number
of tasks a calm cell generates per slot (``users_per_host * arrival_rate * slot_s``).

## Action Space

Per host ``Box(-1, 1, (2 U + 1,), float32)``: ``U`` CPU weights, ``U`` bandwidth weights, the pool claim, each
mapped to ``[0, 1]`` by ``(a + 1) / 2`` (a symmetric box: a zero-mean policy starts from equal shares and a
half claim). The shares are the weights normalised to sum 1 (all-zero weights: equal shares), so every host's
shares of its CPU and band sum to exactly 1.

## Observation Space

Per host ``Box(0, 1, (4 U + 6,), float32)``; positive quantities squashed with ``x / (x + s)``:

| index      | feature                                                         | scale ``s``        |
|------------|-----------------------------------------------------------------|--------------------|
| 4u         | user u: bits to upload this slot                                | 1 Mbit             |
| 4u + 1     | user u: cycles to compute this slot                             | 1 Gcycle           |
| 4u + 2     | user u: spectral efficiency ``log2(1 + p g / (N0 B))``          | 10 bit/s/Hz        |
| 4u + 3     | user u: earliest deadline (1 if no task)                        | (already in [0,1]) |
| 4U         | host CPU ``f_h``                                                | 10 GHz             |
| 4U + 1     | host band ``B``                                                 | 20 MHz             |
| 4U + 2     | shared: spare pool CPU ``(1 - u) F``                            | 20 GHz             |
| 4U + 3     | shared: total cycles demanded by all hosts this slot            | 10 Gcycle          |
| 4U + 4     | shared: this host's share of that total                         | (in [0, 1])        |
| 4U + 5     | shared: the other hosts' total claim in the previous slot / H   | (in [0, 1])        |

A host sees its own users' demands (private) and the shared resource state that the pool publishes (its spare
capacity, the aggregate demand and claims), never another host's users.

## Rewards

``reward_h = (1 - team_weight) * utility_h + team_weight * mean_j utility_j``; ``team_weight`` 1 (default)
makes the hosts a team optimising the region's utility [1]. ``info`` carries per host: ``utility``, ``served``
(fraction of the slot's tasks served; 1 when there was none), ``delay`` (mean delay in s of the served tasks;
in the PettingZoo form present only when a task was served, in the gymnasium form 0 then, weighted by
``served_tasks`` through ``ENTRY.kpi_weight``), ``energy`` (mean device transmit energy per served task, J),
``pool_share`` (granted fraction of the pool), ``tasks`` and ``served_tasks``. ``energy`` is absent / 0 like
``delay``.

## Two forms

* ``parallel_env(**config)``: PettingZoo ``ParallelEnv``, every host an agent; the main form.
  ``PARALLEL_BASELINES``: ``equal`` (equal shares, claim ``1 / H``), ``proportional`` (CPU by cycles, band by
  bits, claim by the host's share of the total demand), ``greedy`` (band by bits over spectral efficiency,
  CPU by cycles, claim the whole pool: selfish), ``random`` (uniform weights and claim).
* ``MecAllocationEnv``: gymnasium form; the agent is ``host_0``, the other hosts follow ``background_policy``.

## Episode End

Never terminates; truncated after ``episode_slots`` slots (the env truncates itself).

## Arguments

``MecAllocationEnv(config=None, render_mode=None, **overrides)`` and ``parallel_env(...)`` alike; overrides
go through ``envs.knobs.apply_overrides``. Knobs (generated from the ``MecAllocationConfig`` declarations):

{knob_table}

"design" marks choices of this env. Defaults: a calm cell demands 4 x 1.5 x 0.6 = 3.6 Gcycle/s against a 6 GHz
host, a hot one 2.5 times that (3 GHz over the host); the 12 GHz pool has 8.4 GHz spare when its other tenants
are calm (30 %) and 1.8 GHz in their bursts (85 %), less than one hot cell's excess, so who gets it matters.
All clients of a federation share ``n_hosts`` and ``users_per_host`` (they set the spaces).

## References

1. T. Zhu, W. Zhou, D. Ye, Z. Cheng, J. Li, "Resource allocation in IoT edge computing via concurrent federated
   reinforcement learning", IEEE Internet of Things Journal, 2022.
2. ``envs/mec_offloading.py`` and its references: 3GPP TR 36.814 link budget; X. Chen et al., IEEE/ACM ToN
   24(5), 2016 (Shannon uplink, transmit energy p D / r, weighted delay + energy); M. Tang, V. W. S. Wong,
   IEEE TMC 21(6), 2022 (deadlines, drops).
3. Y. Mao, C. You, J. Zhang, K. Huang, K. B. Letaief, "A survey on mobile edge computing: the communication
   perspective", IEEE Commun. Surveys Tuts. 19(4), 2017 (OFDMA bandwidth shares, CPU-share computing).
4. D. V. Lindley, "The theory of queues with a single server", 1952 (FIFO recursion); earliest-deadline-first.
5. E. N. Gilbert, "Capacity of a burst-noise channel", Bell Syst. Tech. J. 39, 1960 (two-state Markov load).

## Version History

* v0: initial version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.mec_offloading import MecOffloadingConfig, device_link_gain
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_render_mode

__all__ = [
    "BASELINES",
    "ENTRY",
    "PARALLEL_BASELINES",
    "MecAllocationConfig",
    "MecAllocationEnv",
    "MecAllocationParallelEnv",
    "make_client_configs",
    "parallel_env",
]

_MEC = MecOffloadingConfig()          # the single-cell model's defaults: the physics this env builds on
BACKGROUND_POLICIES = ("proportional", "equal", "greedy", "random")
_SRC = "as envs.mec_offloading"


@dataclass(frozen=True)
class MecAllocationConfig(KnobConfig):
    """One edge region: hosts, users, the shared pool; default, unit, range and source per knob."""

    n_hosts: int = knob(3, 2, 16, integer=True, unit="hosts", source="edge hosts sharing one pool [1] (design)")
    users_per_host: int = knob(4, 1, 32, integer=True, unit="devices", source="IoT devices per host (design)")
    slot_s: float = knob(1.0, 0.1, 10.0, unit="s", source="allocation period (design)")
    episode_slots: int = knob(50, 5, 10_000, integer=True, unit="slots", source="design")
    arrival_rate: float = knob(_MEC.arrival_rate, 0.01, 20.0, unit="tasks/s/device", source=_SRC)
    max_tasks_per_user: int = knob(10, 1, 100, integer=True, unit="tasks/slot",
                                   source="cap on a device's tasks per slot (design)")
    hot_multiplier: float = knob(2.5, 1.0, 10.0, unit="x", source="arrival rate of a hot cell (design)")
    hot_start_prob: float = knob(0.1, 0.0, 1.0, unit="1/slot", source="calm -> hot per slot [5] (design)")
    hot_mean_slots: float = knob(5.0, 1.0, 1000.0, unit="slots", source="mean hot spell, geometric [5] (design)")
    task_size_min_mbit: float = knob(_MEC.task_size_min_mbit, 0.01, 50.0, unit="Mbit", source=_SRC)
    task_size_max_mbit: float = knob(_MEC.task_size_max_mbit, 0.01, 50.0, unit="Mbit", source=_SRC)
    density_min: float = knob(_MEC.density_min, 10.0, 5000.0, unit="cycles/bit", source=_SRC)
    density_max: float = knob(_MEC.density_max, 10.0, 5000.0, unit="cycles/bit", source=_SRC)
    deadline_min_s: float = knob(0.3, 0.01, 10.0, unit="s", source="within the slot (design; [2]: 0.5-2 s)")
    deadline_max_s: float = knob(1.0, 0.01, 10.0, unit="s", source="within the slot (design; [2]: 0.5-2 s)")
    host_cpu_ghz: float = knob(6.0, 0.5, 200.0, unit="GHz", source="edge server CPU, as mec_offloading's site 0")
    bandwidth_mhz: float = knob(_MEC.bandwidth_mhz, 0.1, 100.0, unit="MHz", source=_SRC + " (per host)")
    cloud_cpu_ghz: float = knob(12.0, 0.0, 500.0, unit="GHz", source="shared metro-cloud pool (design)")
    cloud_latency_ms: float = knob(10.0, 0.0, 500.0, unit="ms", source="backhaul to the pool, 2 metro hops "
                                                                          "of mec_offloading's 5 ms")
    background_load: float = knob(_MEC.background_load, 0.0, 0.9, unit="fraction", source=_SRC + " (pool)")
    burst_load: float = knob(_MEC.burst_load, 0.0, 0.95, unit="fraction", source=_SRC + " (pool)")
    burst_start_prob: float = knob(0.05, 0.0, 1.0, unit="1/slot", source="pool burst start [5] (design)")
    burst_mean_slots: float = knob(4.0, 1.0, 10_000.0, unit="slots", source="pool burst length [5] (design)")
    tx_power_dbm: float = knob(_MEC.tx_power_dbm, 0.0, 30.0, unit="dBm", source=_SRC)
    noise_psd_dbm_hz: float = knob(_MEC.noise_psd_dbm_hz, -180.0, -150.0, unit="dBm/Hz", source=_SRC)
    noise_figure_db: float = knob(_MEC.noise_figure_db, 0.0, 20.0, unit="dB", source=_SRC)
    bs_antenna_gain_dbi: float = knob(_MEC.bs_antenna_gain_dbi, 0.0, 25.0, unit="dBi", source=_SRC)
    shadowing_std_db: float = knob(_MEC.shadowing_std_db, 0.0, 16.0, unit="dB", source=_SRC)
    cell_radius_m: float = knob(_MEC.cell_radius_m, 20.0, 2000.0, unit="m", source=_SRC)
    min_distance_m: float = knob(_MEC.min_distance_m, 1.0, 500.0, unit="m", source=_SRC)
    delay_weight: float = knob(0.3, 0.0, 1.0, unit="-", source="w_T (design; time weight of [2])")
    energy_weight: float = knob(0.2, 0.0, 1.0, unit="-", source="w_E (design; energy weight of [2])")
    team_weight: float = knob(1.0, 0.0, 1.0, unit="-", source="share of the region's mean utility in each "
                                                                "host's reward (1: a team [1]; design)")
    background_policy: str = knob("proportional", choices=BACKGROUND_POLICIES, unit="-",
                                  source="hosts 1.. of the gymnasium form")

    def check_constraints(self) -> None:
        for lo, hi in (("task_size_min_mbit", "task_size_max_mbit"), ("density_min", "density_max"),
                       ("deadline_min_s", "deadline_max_s")):
            if getattr(self, lo) > getattr(self, hi):
                raise EnvConfigError(f"{lo}={getattr(self, lo)!r} exceeds {hi}={getattr(self, hi)!r}; "
                                     f"allowed: {lo} <= {hi}")
        if self.min_distance_m >= self.cell_radius_m:
            raise EnvConfigError(f"min_distance_m={self.min_distance_m!r} must be below "
                                 f"cell_radius_m={self.cell_radius_m!r}")
        if self.delay_weight + self.energy_weight > 1.0:
            raise EnvConfigError(f"delay_weight + energy_weight = {self.delay_weight + self.energy_weight!r}; "
                                 "allowed: at most 1 (a served task's utility stays in [0, 1])")


__doc__ = document_knobs(__doc__, MecAllocationConfig)


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: MecAllocationConfig | None = None) -> list[MecAllocationConfig]:
    """``n_clients`` region configs around ``base``: host CPU, band, pool CPU, arrival rate, task sizes and cell
    radius scaled by ``2**(h U(-1, 1))``, the pool's background load shifted by ``0.3 h U(-1, 1)`` (clipped to
    the legal ranges); ``n_hosts`` and ``users_per_host`` stay fixed (they set the spaces). ``h = 0``: copies."""
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else MecAllocationConfig()
    if not isinstance(base, MecAllocationConfig):
        raise EnvConfigError(f"base={base!r} must be a MecAllocationConfig")
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    names = ("host_cpu_ghz", "bandwidth_mhz", "cloud_cpu_ghz", "arrival_rate", "task_size", "cell_radius_m")
    mult = {n: np.exp2(h * rng.uniform(-1.0, 1.0, n_clients)) for n in names}
    shift = 0.3 * h * rng.uniform(-1.0, 1.0, n_clients)

    def clip(name: str, value: float, low: float | None = None) -> float:
        return clip_knob(MecAllocationConfig, name, value, low)

    out = []
    for i in range(n_clients):
        s = float(mult["task_size"][i])
        out.append(dataclasses.replace(
            base,
            host_cpu_ghz=clip("host_cpu_ghz", base.host_cpu_ghz * mult["host_cpu_ghz"][i]),
            bandwidth_mhz=clip("bandwidth_mhz", base.bandwidth_mhz * mult["bandwidth_mhz"][i]),
            cloud_cpu_ghz=clip("cloud_cpu_ghz", base.cloud_cpu_ghz * mult["cloud_cpu_ghz"][i]),
            arrival_rate=clip("arrival_rate", base.arrival_rate * mult["arrival_rate"][i]),
            task_size_min_mbit=clip("task_size_min_mbit", base.task_size_min_mbit * s),
            task_size_max_mbit=clip("task_size_max_mbit", base.task_size_max_mbit * s),
            cell_radius_m=clip("cell_radius_m", base.cell_radius_m * mult["cell_radius_m"][i],
                               min(base.cell_radius_m, 1.5 * base.min_distance_m)),
            background_load=clip("background_load", base.background_load + shift[i]),
        ))
    return out


# ---------------------------------------------------------------------- allocation arithmetic (pure functions)
def normalise_shares(weights: np.ndarray) -> np.ndarray:
    """Weights ``(..., U)`` (clipped to [0, 1]) -> shares summing to 1 along the last axis; all-zero rows equal."""
    w = np.clip(np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0), 0.0, 1.0)
    s = w.sum(axis=-1, keepdims=True)
    eq = np.full_like(w, 1.0 / w.shape[-1])
    return np.where(s > 1e-12, w / np.where(s > 1e-12, s, 1.0), eq)


def pool_grants(claims: np.ndarray) -> np.ndarray:
    """Each host's fraction of the spare pool: ``k_h / max(1, sum k)`` (claims clipped to [0, 1])."""
    k = np.clip(np.nan_to_num(np.asarray(claims, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return k / max(1.0, float(k.sum()))


def uplink_rate(share: np.ndarray, band_hz: np.ndarray, snr_full: np.ndarray) -> np.ndarray:
    """OFDMA rate (bit/s) of a band share: ``b B log2(1 + SNR / b)``, SNR over the whole band [2], [3]."""
    b = np.asarray(share, dtype=np.float64)
    safe = np.where(b > 0.0, b, 1.0)
    return np.where(b > 0.0, b * band_hz * np.log2(1.0 + snr_full / safe), 0.0)


def service_time(work: np.ndarray, edge_hz: np.ndarray, pool_hz: np.ndarray, latency_s: float) -> np.ndarray:
    """Time to process ``work`` cycles on an edge rate plus a pool rate that joins after ``latency_s``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        edge_only = np.where(edge_hz > 0.0, work / edge_hz, np.inf)
        both = np.where(edge_hz + pool_hz > 0.0, (work + pool_hz * latency_s) / (edge_hz + pool_hz), np.inf)
    early = work <= edge_hz * latency_s
    return np.where(early, edge_only, np.where(pool_hz > 0.0, both, edge_only))


# ---------------------------------------------------------------------- the region simulator (both forms)
class _Region:
    """Hosts x users arrays of one region; ``step(actions)`` advances one slot for every host at once."""

    def __init__(self, cfg: MecAllocationConfig) -> None:
        self.cfg = cfg
        self.H, self.U = cfg.n_hosts, cfg.users_per_host
        self.obs_dim = 4 * self.U + 6
        self.act_dim = 2 * self.U + 1
        self.p_tx = 10.0 ** ((cfg.tx_power_dbm - 30.0) / 10.0)
        self.band = cfg.bandwidth_mhz * 1e6
        noise_w = 10.0 ** ((cfg.noise_psd_dbm_hz + cfg.noise_figure_db - 30.0) / 10.0) * self.band
        self.snr_scale = self.p_tx / noise_w
        self.f_host = cfg.host_cpu_ghz * 1e9
        self.latency = cfg.cloud_latency_ms * 1e-3
        self.norm = self.U * cfg.arrival_rate * cfg.slot_s     # tasks of a calm cell per slot
        self.has_world = False

    # ----- random draws
    def begin(self, rng: np.random.Generator) -> None:
        cfg = self.cfg
        n = self.H * self.U
        r0, r1 = cfg.min_distance_m, cfg.cell_radius_m
        area = rng.uniform(r0 * r0, r1 * r1, n)                                  # area-uniform [2]
        shadow = rng.normal(0.0, cfg.shadowing_std_db, n)
        _, gain = device_link_gain(area, shadow, cfg.bs_antenna_gain_dbi)      # TR 36.814 budget [2]
        self.path_gain = gain.reshape(self.H, self.U)
        q, m = cfg.hot_start_prob, 1.0 / cfg.hot_mean_slots
        self.hot = rng.random(self.H) < (q / (q + m) if q + m > 0 else 0.0)
        qb, mb = cfg.burst_start_prob, 1.0 / cfg.burst_mean_slots
        self.burst = bool(rng.random() < (qb / (qb + mb) if qb + mb > 0 else 0.0))
        self.prev_claims = np.zeros(self.H)
        self.t = 0
        self.rng = rng
        self.has_world = True
        self._draw_slot()

    def _draw_slot(self) -> None:
        cfg, rng = self.cfg, self.rng
        lam = cfg.arrival_rate * cfg.slot_s * np.where(self.hot, cfg.hot_multiplier, 1.0)[:, None]
        counts = np.minimum(rng.poisson(np.broadcast_to(lam, (self.H, self.U))), cfg.max_tasks_per_user)
        k = max(int(counts.max()), 1)
        shape = (self.H, self.U, k)
        u = rng.random((3,) + shape)
        mask = np.arange(k)[None, None, :] < counts[:, :, None]
        size = (cfg.task_size_min_mbit + (cfg.task_size_max_mbit - cfg.task_size_min_mbit) * u[0]) * 1e6
        dens = cfg.density_min + (cfg.density_max - cfg.density_min) * u[1]
        dl = cfg.deadline_min_s + (cfg.deadline_max_s - cfg.deadline_min_s) * u[2]
        dl = np.where(mask, dl, np.inf)
        order = np.argsort(dl, axis=-1, kind="stable")                        # earliest deadline first
        self.mask = np.take_along_axis(mask, order, -1)
        self.size = np.where(self.mask, np.take_along_axis(size, order, -1), 0.0)
        self.work = self.size * np.where(self.mask, np.take_along_axis(dens, order, -1), 0.0)
        self.dl = np.take_along_axis(dl, order, -1)
        fade = rng.exponential(1.0, (self.H, self.U))                          # Rayleigh block fading [2]
        self.snr = self.snr_scale * self.path_gain * np.maximum(fade, 1e-12)
        self.u_pool = cfg.burst_load if self.burst else cfg.background_load
        self.pool_hz = cfg.cloud_cpu_ghz * 1e9 * (1.0 - self.u_pool)
        self.counts = counts

    def _advance_chains(self) -> None:
        cfg, rng = self.cfg, self.rng
        x = rng.random(self.H + 1)
        self.hot = np.where(self.hot, x[:self.H] >= 1.0 / cfg.hot_mean_slots, x[:self.H] < cfg.hot_start_prob)
        self.burst = bool(x[-1] >= 1.0 / cfg.burst_mean_slots) if self.burst else bool(x[-1] < cfg.burst_start_prob)

    # ----- what hosts see
    def demands(self) -> tuple[np.ndarray, np.ndarray]:
        """(bits, cycles) demanded by each user this slot, shape (H, U)."""
        return self.size.sum(-1), self.work.sum(-1)

    def observations(self) -> np.ndarray:
        bits, cyc = self.demands()
        se = np.log2(1.0 + self.snr)
        first_dl = np.where(self.mask[:, :, 0], np.minimum(self.dl[:, :, 0], 1e9), 1e9)
        per_user = np.stack([bits / (bits + 1e6), cyc / (cyc + 1e9), se / (se + 10.0),
                             np.where(self.mask[:, :, 0], first_dl / (first_dl + 1.0), 1.0)], axis=-1)
        host_cyc = cyc.sum(-1)
        total = float(host_cyc.sum())
        others = (self.prev_claims.sum() - self.prev_claims) / self.H
        shared = np.stack([
            np.full(self.H, self.f_host / (self.f_host + 10e9)),
            np.full(self.H, self.band / (self.band + 20e6)),
            np.full(self.H, self.pool_hz / (self.pool_hz + 20e9)),
            np.full(self.H, total / (total + 10e9)),
            host_cyc / total if total > 0 else np.full(self.H, 1.0 / self.H),
            np.clip(others, 0.0, 1.0),
        ], axis=-1)
        obs = np.concatenate([per_user.reshape(self.H, -1), shared], axis=-1)
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    # ----- one slot
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, list[dict[str, float]]]:
        cfg = self.cfg
        a = 0.5 * (np.clip(np.asarray(actions, dtype=np.float64).reshape(self.H, self.act_dim), -1.0, 1.0) + 1.0)
        cpu = normalise_shares(a[:, :self.U])
        bw = normalise_shares(a[:, self.U:2 * self.U])
        grants = pool_grants(a[:, -1])
        self.last_shares = (cpu, bw, grants)
        rate = uplink_rate(bw, self.band, self.snr)
        edge_hz = cpu * self.f_host
        pool_hz = cpu * (grants * self.pool_hz)[:, None]
        up_free = np.zeros((self.H, self.U))
        cpu_free = np.zeros((self.H, self.U))
        served = np.zeros((self.H, self.U))
        util = np.zeros((self.H, self.U))
        delay_sum = np.zeros((self.H, self.U))
        energy_sum = np.zeros((self.H, self.U))
        w_t, w_e = cfg.delay_weight, cfg.energy_weight
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(self.size.shape[-1]):                                # at most max_tasks_per_user
                m = self.mask[:, :, k]
                t_up = np.where(rate > 0.0, self.size[:, :, k] / rate, np.inf)
                up_end = up_free + t_up
                start = np.maximum(up_end, cpu_free)                             # Lindley [4]
                fin = start + service_time(self.work[:, :, k], edge_hz, pool_hz, self.latency)
                dl = self.dl[:, :, k]
                ok = m & (fin <= dl)                                             # admission: meets its deadline
                up_free = np.where(ok, up_end, up_free)
                cpu_free = np.where(ok, fin, cpu_free)
                e = self.p_tx * t_up
                served += ok
                delay_sum += np.where(ok, fin, 0.0)
                energy_sum += np.where(ok, e, 0.0)
                util += np.where(ok, 1.0 - w_t * fin / dl - w_e * e / (self.p_tx * dl), 0.0)
        n_tasks = self.counts.sum(-1).astype(np.float64)
        n_served = served.sum(-1)
        utility = util.sum(-1) / self.norm
        team = float(utility.mean())
        rewards = (1.0 - cfg.team_weight) * utility + cfg.team_weight * team
        infos = []
        for h in range(self.H):
            info = {"utility": float(utility[h]),
                    "served": float(n_served[h] / n_tasks[h]) if n_tasks[h] > 0 else 1.0,
                    "pool_share": float(grants[h]), "tasks": float(n_tasks[h]), "served_tasks": float(n_served[h])}
            if n_served[h] > 0:
                info["delay"] = float(delay_sum[h].sum() / n_served[h])
                info["energy"] = float(energy_sum[h].sum() / n_served[h])
            infos.append(info)
        self.prev_claims = np.clip(np.nan_to_num(a[:, -1], nan=0.0), 0.0, 1.0)
        self.t += 1
        self._advance_chains()
        self._draw_slot()
        return rewards, infos

    # ----- joint heuristics: (H, 2U + 1) actions for every host
    def heuristic(self, name: str, rng: np.random.Generator) -> np.ndarray:
        """The joint action of heuristic ``name`` (weights and claims in [0, 1], mapped to the action box)."""
        return 2.0 * self._heuristic_weights(name, rng) - 1.0

    def _heuristic_weights(self, name: str, rng: np.random.Generator) -> np.ndarray:
        bits, cyc = self.demands()
        H = self.H
        if name == "equal":
            return np.concatenate([np.ones((H, 2 * self.U)), np.full((H, 1), 1.0 / H)], axis=1)
        if name == "random":
            return rng.random((H, self.act_dim))
        host_cyc = cyc.sum(-1)
        total = host_cyc.sum()
        cpu_w = cyc / np.maximum(cyc.max(-1, keepdims=True), 1e-12)
        if name == "proportional":
            bw_w = bits / np.maximum(bits.max(-1, keepdims=True), 1e-12)
            claim = host_cyc / total if total > 0 else np.full(H, 1.0 / H)
        elif name == "greedy":                                                   # time-equalising, selfish
            t = bits / np.log2(1.0 + self.snr)
            bw_w = t / np.maximum(t.max(-1, keepdims=True), 1e-12)
            claim = np.ones(H)
        else:
            raise EnvConfigError(f"heuristic={name!r} is not known; allowed: {', '.join(BACKGROUND_POLICIES)}")
        return np.concatenate([cpu_w, bw_w, claim[:, None]], axis=1)


def _check_action(space: spaces.Box, action: Any, who: str) -> np.ndarray:
    a = np.asarray(action, dtype=np.float64)
    if a.shape != space.shape or not np.all(np.isfinite(a)):
        raise gym.error.InvalidAction(f"{who}: action of shape {a.shape} (finite: {bool(np.all(np.isfinite(a)))}) "
                                      f"is not allowed; allowed: finite, shape {space.shape}, clipped to [-1, 1]")
    return a


def _attach(env: Any, config: MecAllocationConfig | None, render_mode: str | None, overrides: dict) -> None:
    cfg = resolve_config(MecAllocationConfig, config, overrides)
    check_render_mode(render_mode, env.metadata)
    env.config = cfg
    env.render_mode = render_mode
    env.region = _Region(cfg)
    env._obs_space = spaces.Box(0.0, 1.0, (env.region.obs_dim,), np.float32)
    env._act_space = spaces.Box(-1.0, 1.0, (env.region.act_dim,), np.float32)


def _render(region: _Region) -> str:
    if not region.has_world:
        return "MecAllocation (not reset)"
    bits, cyc = region.demands()
    shares = getattr(region, "last_shares", None)
    pool = "-" if shares is None else " ".join(f"{g:.2f}" for g in shares[2])
    return (f"slot={region.t} hot={region.hot.astype(int).tolist()} pool_load={region.u_pool:.2f} "
            f"demand_gcycles={np.round(cyc.sum(-1) / 1e9, 2).tolist()} pool_grants=[{pool}]")


class MecAllocationEnv(gym.Env[np.ndarray, np.ndarray]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, config: MecAllocationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        _attach(self, config, render_mode, overrides)
        self.observation_space = self._obs_space
        self.action_space = self._act_space
        self._bg_rng = np.random.default_rng(0)
        self._has_reset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.region.begin(self.np_random)
        self._bg_rng = np.random.default_rng(self.np_random.integers(0, 2**63 - 1))
        self._has_reset = True
        return self.region.observations()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = _check_action(self.action_space, action, "host_0")
        joint = self.region.heuristic(self.config.background_policy, self._bg_rng)
        joint[0] = a
        rewards, infos = self.region.step(joint)
        info = dict(infos[0])
        info.setdefault("delay", 0.0)
        info.setdefault("energy", 0.0)
        trunc = self.region.t >= self.config.episode_slots
        if trunc:
            self._has_reset = False
        return self.region.observations()[0], float(rewards[0]), False, trunc, info

    def render(self) -> str | None:
        return _render(self.region) if self.render_mode == "ansi" else None


class MecAllocationParallelEnv(ParallelEnv):
    """Every edge host an agent ``host_h``; one joint step per slot (see the module docstring)."""

    metadata = {"name": "mec_allocation_v0", "render_modes": ["ansi"], "is_parallelizable": True,
                "render_fps": 1, "shared_resource": True}

    def __init__(self, config: MecAllocationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        _attach(self, config, render_mode, overrides)
        self.possible_agents = [f"host_{h}" for h in range(self.region.H)]
        self.agents: list[str] = []
        self._index = {a: h for h, a in enumerate(self.possible_agents)}
        self.np_random: np.random.Generator | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None or self.np_random is None:
            self.np_random, _ = gym.utils.seeding.np_random(seed)
        self.region.begin(self.np_random)
        self.agents = list(self.possible_agents)
        obs = self.region.observations()
        return {a: obs[h] for h, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise gym.error.ResetNeeded("call reset() before step()")
        joint = np.zeros((self.region.H, self.region.act_dim))
        for a, v in actions.items():
            if a not in self._index:
                raise gym.error.InvalidAction(f"unknown agent {a!r}; allowed: {', '.join(self.possible_agents)}")
            joint[self._index[a]] = _check_action(self._act_space, v, a)
        rewards, infos = self.region.step(joint)
        trunc = self.region.t >= self.config.episode_slots
        obs = self.region.observations()
        agents = self.agents
        out = ({a: obs[h] for h, a in enumerate(agents)}, {a: float(rewards[h]) for h, a in enumerate(agents)},
               dict.fromkeys(agents, False), dict.fromkeys(agents, trunc),
               {a: infos[h] for h, a in enumerate(agents)})
        if trunc:
            self.agents = []
        return out

    def render(self) -> str | None:
        return _render(self.region) if self.render_mode == "ansi" else None

    def close(self) -> None:
        pass


def parallel_env(config: MecAllocationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> MecAllocationParallelEnv:
    """PettingZoo parallel form: ``parallel_env(**knobs)`` or ``parallel_env(config=MecAllocationConfig(...))``."""
    return MecAllocationParallelEnv(config, render_mode=render_mode, **overrides)


# ---------------------------------------------------------------------- baselines
def _single(name: str) -> BaselineFactory:
    def factory(env: gym.Env, seed: int) -> Policy:
        e = env.unwrapped
        rng = np.random.default_rng(seed)

        def policy(obs: np.ndarray) -> np.ndarray:
            return e.region.heuristic(name, rng)[0].astype(np.float32)
        return policy
    return factory


def _parallel(name: str) -> Callable[[Any, int], Callable[[dict[str, Any]], dict[str, Any]]]:
    def factory(env: MecAllocationParallelEnv, seed: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        e = env.unwrapped
        rng = np.random.default_rng(seed)
        names = list(e.possible_agents)

        def policy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            acts = e.region.heuristic(name, rng).astype(np.float32)
            return {a: acts[h] for h, a in enumerate(names)}
        return policy
    return factory


BASELINES: dict[str, BaselineFactory] = {n: _single(n) for n in ("equal", "proportional", "greedy", "random")}
PARALLEL_BASELINES: dict[str, Any] = {n: _parallel(n) for n in ("equal", "proportional", "greedy", "random")}

MecAllocationEnv.__doc__ = __doc__

ENTRY = EnvEntry(
    env_id="frl/MecAllocation-v0",
    name="mec-allocation",
    entry_point="envs.mec_allocation:MecAllocationEnv",
    config_cls=MecAllocationConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("utility", "served", "delay", "energy", "pool_share"),
    lower_is_better=("delay", "energy"),
    kpi_weight={"delay": "served_tasks", "energy": "served_tasks"},
    summary="Edge hosts split CPU/uplink among users and contend for a shared cloud pool (Zhu et al. 2022)",
    parallel_entry_point="envs.mec_allocation:parallel_env",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)

