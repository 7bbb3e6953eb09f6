"""Multi-access edge computing (MEC) task offloading in one cell with shared uplink and edge servers.

## Description

One federated client is one edge cell. ``n_devices`` mobile devices generate computation tasks; for every task
the agent decides to run it on the device's own CPU or to offload it, over the cell's shared uplink, to one of
``n_servers`` edge servers that sit on a small backhaul graph. Tasks have a size ``D`` (bit), a processing
density ``c`` (cycles/bit) and a deadline; a task that is not finished by its deadline is dropped. The problem
is made non-trivial by *contention that persists in time*:

* every device has a first-come-first-served (FIFO) CPU queue;
* the cell's uplink band is time-shared (TDMA) in FIFO order, so a slow upload (deep fade, far device) delays
  every later upload of the cell;
* each edge server serves this cell's offloaded tasks in FIFO order with the CPU share left over by other
  cells' traffic (a bursty background utilisation), so offloaded work piles up;
* queues are carried from task to task and from slot to slot.

Without these couplings offloading everything to the fastest server would always win. With them (defaults)
the per-task greedy rule (``BASELINES["greedy"]``) beats both "everything local" and "everything to the
nearest server". Greedy is myopic and selfish: it ignores that the work it queues delays and drops *later*
tasks (notably tasks too large to meet their deadline locally, for which the edge is the only option, and
tasks stuck behind a slow upload on the shared uplink), and it assumes each server's current background load
persists. Pricing queued edge work (keeping cheap, loose-deadline tasks local when the edge is busy) already
lowers the mean cost by ~15 % at defaults, so a learned policy has room to beat greedy.

**Time.** Slotted time with slot ``slot_s`` (0.1 s, [5]). Each device's arrivals per slot are Poisson with
mean ``arrival_rate * slot_s``; tasks arriving in a slot arrive at its start and are decided one after another
(device order). When no task is pending the simulator advances slots internally.

**Tasks** [4], [5], [6]: ``D ~ U[task_size_min_mbit, task_size_max_mbit]`` Mbit,
``c ~ U[density_min, density_max]`` cycles/bit, deadline ``~ U[deadline_min_s, deadline_max_s]`` s.
The task needs ``W = c * D`` CPU cycles.

**Local execution** [3], [4]: time ``T_loc = W / f_loc`` on a device CPU of ``f_loc`` Hz, energy
``E_loc = kappa * f_loc**2 * W`` J (dynamic CMOS power, ``kappa`` = effective switched capacitance).

**Uplink** [1], [2], [4]: device distances ``d`` are drawn once per episode, uniform in area on the annulus
``[min_distance_m, cell_radius_m]``. The link budget is the macro-cell one of 3GPP TR 36.814 [1]: path loss
``PL(d) = 128.1 + 37.6 log10(d / 1 km)`` dB, log-normal shadowing ``S ~ N(0, shadowing_std_db^2)`` dB (8 dB),
BS antenna gain ``G_BS`` (14 dBi incl. cable loss; UE antenna 0 dBi) and, since the receiver of the uplink is
the eNB, the eNB noise figure (5 dB): noise ``N = -174 dBm/Hz + 10 log10(B) + NF_eNB``. Shadowing is drawn
once per device per episode (a device does not move within an episode, and shadowing decorrelates over tens
of metres [1], so it is constant for the episode: a correlation choice of this env); small-scale Rayleigh
block fading with power gain ``|h|^2 ~ Exp(1)`` is drawn per task. Link gain
``g = |h|^2 10^((G_BS - PL - S) / 10)``, rate ``r = B log2(1 + p g / N)`` (Shannon); one upload uses the whole
band for ``D / r`` s; transmit energy ``p * D / r`` J [4]. Result download is neglected [4]. No inter-cell
interference (the cell is simulated alone; the band is TDMA-shared inside it).

**Backhaul.** A ``networkx`` graph (built once at construction): site 0 is co-located with the cell's base
station (an MEC host at the eNB, ETSI MEC [8]); the ``n_servers`` sites form a metro ring with per-hop latency
``backhaul_hop_latency_ms`` and store-and-forward rate ``backhaul_rate_gbps``. Shortest-path (Dijkstra)
latency ``L_k`` and per-bit time ``beta_k`` are precomputed into numpy arrays; a task reaches server ``k``
``L_k + beta_k * D`` s after its upload ends. The backhaul is assumed over-provisioned (not shared).

**Edge servers** [5], [7]: server ``k`` has CPU ``f_k = server_cpu_ghz * server_cpu_ratio**k`` GHz of which
other cells use the fraction ``u_k(t)``, a per-slot two-state Markov (Gilbert-Elliott type [9]) process:
``background_load`` when calm, ``burst_load`` in a burst; a calm server starts a burst with probability
``burst_start_prob`` per slot and a burst lasts ``burst_mean_slots`` slots on average (geometric). This cell's
tasks are served FIFO (in order of the offloading decision) at rate ``f_k (1 - u_k(t))``. Each FIFO resource
(device CPU, uplink, server CPU) is advanced exactly with the Lindley recursion
``start = max(free_at, arrival)`` [7]; server completion times integrate the piecewise-constant rate exactly
(cumulative capacity per slot, inverted by bisection).

**Deadline.** A task is killed at its deadline wherever it is (waiting, uploading or computing): the resource
it occupies is released at that instant, energy already spent is lost, and the task counts as dropped [5].

**Cost** [4]: with ``w = delay_weight``, a completed task costs
``min(w * T / T_loc + (1 - w) * E / E_loc, drop_penalty)`` where ``T`` is its delay (arrival to completion)
and ``E`` its device energy, both normalised by *the same task* executed locally on an idle device (so
all-local on an idle device costs exactly 1). The clip guarantees that completing is never worse than
dropping. A dropped task costs ``drop_penalty + (1 - w) * E / E_loc`` (its delay term is replaced by the
penalty [5]).

## Action Space

``Discrete(1 + n_servers)``: 0 = execute locally, ``k >= 1`` = offload to edge server ``k - 1``
(server 0 is the one at the cell's base station).

## Observation Space

``Box(0, 1, (8 + 4 * n_servers,), float32)``; positive unbounded quantities are squashed with
``x / (x + s)`` for a fixed scale ``s`` (the same for every client, so features mean the same thing across a
federation):

| index           | feature                                                       | scale ``s``           |
|-----------------|---------------------------------------------------------------|-----------------------|
| 0               | task size ``D``                                               | 1 Mbit                |
| 1               | processing density ``c``                                      | 1000 cycles/bit       |
| 2               | deadline (relative)                                           | 1 s                   |
| 3               | local execution time ``T_loc`` on an idle device              | 1 s                   |
| 4               | backlog of this device's CPU queue (time until free)          | 1 s                   |
| 5               | backlog of the cell's uplink (time until free)                | 1 s                   |
| 6               | upload time ``D / r`` at the current channel                  | 1 s                   |
| 7               | link gain ``g`` in dB (see Uplink), ``(g_dB + 160) / 120``     | clipped to [0, 1]     |
| 8 + 4k          | server k backlog of this cell's work (time until free)        | 1 s                   |
| 9 + 4k          | server k current background utilisation ``u_k``               | (already in [0, 1))   |
| 10 + 4k         | server k CPU ``f_k``                                          | 10 GHz                |
| 11 + 4k         | backhaul delay of this task to server k, ``L_k + beta_k D``   | 10 ms                 |

## Rewards

``reward = -cost`` of the decided task (see Cost): at most 0, ``-1`` for local execution on an idle device,
``-drop_penalty`` (minus wasted energy) for a dropped task. ``info`` carries per-step raw KPIs: ``cost``
(``= -reward >= 0``), ``energy`` (J), ``dropped`` (0/1), ``completed`` (``1 - dropped``), ``offloaded`` (0/1) and
``delay`` (s). The delay KPI is the mean delay (arrival to completion) of the *completed* tasks; drops are
counted separately by ``dropped`` [5]. (v0 first reported a dropped task's deadline as its delay, which made
the mean delay flatter policies that drop.) For a completed task ``delay`` is its delay; a dropped task has
none and reports 0 with ``completed = 0``: ``ENTRY.kpi_weight = {"delay": "completed"}`` makes the evaluated
delay KPI the exact mean over completed tasks (``federation.evaluation.evaluate_policy``).
``episode_kpis()`` returns the completed-task mean delay and the drop ratio of the episode so far.
Because the task's fate is fully determined when it is committed to FIFO queues (future background load is
pre-drawn from the seeded generator), the reward is exact and immediate.

## Starting State

All queues empty at ``t = 0``; device distances drawn per episode; each server's background state drawn from
the chain's stationary distribution. The first observation describes the first arriving task.

## Episode End

Never terminates. Fixed-length episodes: truncated after ``episode_tasks`` decisions (default 300, i.e.
about 100 slots = 10 s at the default cell load of 20 devices x 1.5 tasks/s). A fixed number of decisions
keeps returns comparable across clients whose arrival rates differ (the simulated span then differs). The
env truncates itself (``episode_tasks`` is a config knob), so ``ENTRY.max_episode_steps`` is ``None``.

## Arguments

``MecOffloadingEnv(config: MecOffloadingConfig | None = None, render_mode: str | None = None, **overrides)``;
overrides replace fields of ``config`` through ``envs.knobs.apply_overrides`` (unknown names raise
``EnvConfigError``). Every knob of ``MecOffloadingConfig`` declares its default, unit, legal range and source
on its field; this table is generated from them (``envs.knobs.knob_table``, also behind ``frl list --json``):

{knob_table}

**Batched core.** ``gymnasium.make_vec("frl/MecOffloading-v0", num_envs=B, vectorization_mode=
"vector_entry_point", configs=[...])`` steps B cells with per-instance configs as numpy array operations
(``envs.mec_offloading_batched``); it draws the same random streams with the same functions
(``episode_seeds``, ``geometry_draws``, ``draw_task_block_raw``, ``background_runs``), so instance i equals this
env with the same config, seed and actions.

"design" marks choices of this env (not taken from a paper). The load-setting defaults put the cell in the
contended regime described above: mean demand 20 devices x 1.5 tasks/s x 0.6 Gcycles = 18 GHz against
(6 + 9 + 13.5) GHz x (1 - 0.46 mean background) ~ 15.5 GHz of spare edge CPU and 20 x 1 GHz of device CPUs.
``render_mode="ansi"`` renders a one-line text state. For federation all clients must share ``n_servers``
(it fixes the action and observation spaces): ``make_client_configs`` keeps it fixed and varies server speeds
instead.

## References

1. 3GPP TR 36.814 V9.0.0, "Further advancements for E-UTRA physical layer aspects", 2010, Annex A.2.1.1
   (Table A.2.1.1-2: macro path loss 128.1 + 37.6 log10(R km), log-normal shadowing std 8 dB, BS antenna gain
   14 dBi incl. cable loss, UE antenna gain 0 dBi, UE power 23 dBm, eNB noise figure 5 dB (the UE's 9 dB
   applies to the downlink), thermal noise -174 dBm/Hz, min. UE-eNB distance 35 m, ISD 500 m); same path
   loss in 3GPP TR 36.931.
2. C. E. Shannon, "A mathematical theory of communication", Bell Syst. Tech. J., 1948; Rayleigh fading
   |h|^2 ~ Exp(1): A. Goldsmith, "Wireless Communications", Cambridge Univ. Press, 2005, ch. 3.
3. Y. Mao, C. You, J. Zhang, K. Huang, K. B. Letaief, "A survey on mobile edge computing: the communication
   perspective", IEEE Commun. Surveys Tuts. 19(4), 2017 (local computing model: time W/f, energy kappa f^2 W,
   kappa ~ 1e-27 order of magnitude).
4. X. Chen, L. Jiao, W. Li, X. Fu, "Efficient multi-user computation offloading for mobile-edge cloud
   computing", IEEE/ACM Trans. Netw. 24(5), 2016 (weighted time+energy cost, transmit energy p D / r,
   Shannon uplink, device CPU 0.5-1 GHz, 5 MHz channel, download neglected).
5. M. Tang, V. W. S. Wong, "Deep reinforcement learning for task offloading in mobile edge computing systems",
   IEEE Trans. Mobile Comput. 21(6), 2022 (0.1 s slots, per-device queues persisting across slots, task
   deadlines with drops and a drop penalty, edge CPUs shared with unknown load from other devices).
6. A. P. Miettinen, J. K. Nurminen, "Energy efficiency of mobile clients in cloud computing", USENIX HotCloud
   2010 (processing densities of hundreds to thousands of cycles/bit).
7. D. V. Lindley, "The theory of queues with a single server", Proc. Cambridge Philos. Soc. 48, 1952
   (FIFO recursion start = max(previous completion, arrival)).
8. ETSI GS MEC 003, "Multi-access Edge Computing (MEC); Framework and Reference Architecture".
9. E. N. Gilbert, "Capacity of a burst-noise channel", Bell Syst. Tech. J. 39, 1960 (two-state Markov
   burst model, used here for bursty background load).

## Version History

* v0: initial version. Revised in place (issue 10): uplink link budget per TR 36.814 (eNB noise figure,
  BS antenna gain, log-normal shadowing), delay KPI over completed tasks only.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from dataclasses import dataclass
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
    "MecOffloadingConfig",
    "MecOffloadingEnv",
    "make_client_configs",
]

_INF = math.inf
_MAX_EMPTY_BLOCKS = 1_000_000          # cap on consecutive empty task blocks (never reached at legal loads)

_ORDERED = (("task_size_min_mbit", "task_size_max_mbit"), ("density_min", "density_max"),
            ("deadline_min_s", "deadline_max_s"))


@dataclass(frozen=True)
class MecOffloadingConfig(KnobConfig):
    """Physical parameters of one MEC cell; default, unit, legal range and source per knob (``knob_table``)."""

    slot_s: float = knob(0.1, 0.01, 1.0, unit="s", source="0.1 s slots [5]")
    episode_tasks: int = knob(300, 10, 100_000, integer=True, unit="decisions",
                              source="~100 slots at the default load (design choice)")
    n_devices: int = knob(20, 1, 200, integer=True, unit="devices", source="tens of devices per cell [5]")
    arrival_rate: float = knob(1.5, 0.01, 20.0, unit="tasks/s/device",
                               source="Poisson per slot; cell demand ~1.2x spare edge CPU")
    task_size_min_mbit: float = knob(0.2, 0.01, 50.0, unit="Mbit", source="sub-Mbit to Mbit tasks [4], [5]")
    task_size_max_mbit: float = knob(1.0, 0.01, 50.0, unit="Mbit", source="sub-Mbit to Mbit tasks [4], [5]")
    density_min: float = knob(500.0, 10.0, 5000.0, unit="cycles/bit", source="hundreds-thousands cycles/bit [6]")
    density_max: float = knob(1500.0, 10.0, 5000.0, unit="cycles/bit", source="hundreds-thousands cycles/bit [6]")
    deadline_min_s: float = knob(0.5, 0.05, 10.0, unit="s", source="deadlines of ~0.5-2 s (5-20 slots) [5]")
    deadline_max_s: float = knob(2.0, 0.05, 10.0, unit="s", source="deadlines of ~0.5-2 s (5-20 slots) [5]")
    device_cpu_ghz: float = knob(1.0, 0.1, 5.0, unit="GHz", source="device CPUs around 1 GHz [4]")
    kappa: float = knob(1e-27, 1e-29, 1e-25, unit="J s^2/cycle^3",
                        source="effective switched capacitance, 1e-27 [3]")
    tx_power_dbm: float = knob(23.0, 0.0, 30.0, unit="dBm", source="UE power class 23 dBm [1]")
    bandwidth_mhz: float = knob(10.0, 0.1, 100.0, unit="MHz",
                                source="cell uplink band (TDMA-shared); LTE 1.4-20 MHz channels [1]; 5 MHz in [4]")
    noise_figure_db: float = knob(5.0, 0.0, 20.0, unit="dB",
                                  source="eNB noise figure 5 dB [1] (the uplink's receiver is the eNB)")
    bs_antenna_gain_dbi: float = knob(14.0, 0.0, 25.0, unit="dBi",
                                      source="BS antenna gain incl. cable loss 14 dBi [1]; UE antenna 0 dBi")
    shadowing_std_db: float = knob(8.0, 0.0, 16.0, unit="dB",
                                   source="log-normal shadowing std 8 dB [1]; one draw per device per episode")
    noise_psd_dbm_hz: float = knob(-174.0, -180.0, -150.0, unit="dBm/Hz", source="thermal noise -174 dBm/Hz [1]")
    cell_radius_m: float = knob(250.0, 20.0, 2000.0, unit="m", source="ISD 500 m -> radius 250 m [1]")
    min_distance_m: float = knob(35.0, 1.0, 500.0, unit="m", source="35 m [1]")
    n_servers: int = knob(3, 1, 16, integer=True, unit="servers", source="edge sites reachable from the cell [5]")
    server_cpu_ghz: float = knob(6.0, 0.5, 200.0, unit="GHz",
                                 source="server 0 (at the BS); edge CPUs of several GHz [5]; sized below cell "
                                        "demand")
    server_cpu_ratio: float = knob(1.5, 0.25, 4.0, unit="x per site",
                                   source="server k has server_cpu_ghz * ratio**k; hierarchical MEC: farther "
                                          "sites are larger (design)")
    backhaul_hop_latency_ms: float = knob(5.0, 0.0, 100.0, unit="ms", source="metro aggregation hop latency (design)")
    backhaul_rate_gbps: float = knob(1.0, 0.01, 100.0, unit="Gbit/s", source="metro backhaul link rate (design)")
    background_load: float = knob(0.3, 0.0, 0.9, unit="fraction",
                                  source="other cells' CPU share when calm [5] (value: design)")
    burst_load: float = knob(0.85, 0.0, 0.95, unit="fraction",
                             source="other cells' CPU share in a burst [9] (value: design)")
    burst_start_prob: float = knob(0.02, 0.0, 1.0, unit="1/slot",
                                   source="calm -> burst probability [9] (value: design)")
    burst_mean_slots: float = knob(20.0, 1.0, 10_000.0, unit="slots",
                                   source="mean burst length, geometric [9] (value: design)")
    delay_weight: float = knob(0.5, 0.0, 1.0, unit="-", source="time weight lambda^T; energy weight 1 - w [4]")
    drop_penalty: float = knob(5.0, 1.0, 100.0, unit="x local cost", source="deadline-miss penalty [5]")

    def check_constraints(self) -> None:
        for lo_name, hi_name in _ORDERED:
            if getattr(self, lo_name) > getattr(self, hi_name):
                raise EnvConfigError(
                    f"{lo_name}={getattr(self, lo_name)!r} exceeds {hi_name}={getattr(self, hi_name)!r}; "
                    f"allowed: {lo_name} <= {hi_name}")
        if self.min_distance_m >= self.cell_radius_m:
            raise EnvConfigError(
                f"min_distance_m={self.min_distance_m!r} must be below cell_radius_m={self.cell_radius_m!r}")


__doc__ = document_knobs(__doc__, MecOffloadingConfig)


def _log2_spread(rng: np.random.Generator, n: int, het: float) -> np.ndarray:
    return np.exp2(het * rng.uniform(-1.0, 1.0, size=n))


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: MecOffloadingConfig | None = None) -> list[MecOffloadingConfig]:
    """Build ``n_clients`` cell configs around ``base`` with spread proportional to ``heterogeneity``.

    At heterogeneity ``h`` the multiplicative knobs (device CPU, arrival rate, task sizes, cell radius, server
    CPU, bandwidth) are scaled by ``2**(h * U(-1, 1))`` (up to x/÷2 at h = 1) and the background load is
    shifted by ``0.3 h U(-1, 1)``; every value is clipped to its legal range. ``n_servers`` is kept fixed
    because it sets the action/observation spaces, which all clients of a federation must share; server
    speeds vary instead. ``h = 0`` returns copies identical to ``base``. Randomness only from
    ``np.random.default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else MecOffloadingConfig()
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    mult = {name: _log2_spread(rng, n_clients, h) for name in
            ("device_cpu_ghz", "arrival_rate", "task_size", "cell_radius_m", "server_cpu_ghz",
             "bandwidth_mhz")}
    shift = 0.3 * h * rng.uniform(-1.0, 1.0, size=n_clients)

    def clip(name: str, value: float, low: float | None = None) -> float:
        return clip_knob(MecOffloadingConfig, name, value, low)

    radius_floor = min(base.cell_radius_m, 1.5 * base.min_distance_m)
    out = []
    for i in range(n_clients):
        s = float(mult["task_size"][i])
        out.append(dataclasses.replace(
            base,
            device_cpu_ghz=clip("device_cpu_ghz", base.device_cpu_ghz * mult["device_cpu_ghz"][i]),
            arrival_rate=clip("arrival_rate", base.arrival_rate * mult["arrival_rate"][i]),
            task_size_min_mbit=clip("task_size_min_mbit", base.task_size_min_mbit * s),
            task_size_max_mbit=clip("task_size_max_mbit", base.task_size_max_mbit * s),
            cell_radius_m=clip("cell_radius_m", base.cell_radius_m * mult["cell_radius_m"][i], radius_floor),
            server_cpu_ghz=clip("server_cpu_ghz", base.server_cpu_ghz * mult["server_cpu_ghz"][i]),
            bandwidth_mhz=clip("bandwidth_mhz", base.bandwidth_mhz * mult["bandwidth_mhz"][i]),
            background_load=clip("background_load", base.background_load + shift[i]),
        ))
    return out


def _backhaul_graph(n_servers: int, hop_latency_s: float, rate_bps: float) -> nx.Graph:
    """BS co-located with site 0 (ideal link); sites on a metro ring (a path for 2 sites)."""
    g = nx.Graph()
    g.add_edge("bs", 0, latency=0.0, per_bit=0.0)
    for k in range(n_servers - 1):
        g.add_edge(k, k + 1, latency=hop_latency_s, per_bit=1.0 / rate_bps)
    if n_servers >= 3:
        g.add_edge(n_servers - 1, 0, latency=hop_latency_s, per_bit=1.0 / rate_bps)
    g.add_nodes_from(range(n_servers))
    return g



# ---------------------------------------------------------------------- random streams (shared with the batched core)
def episode_start(np_random: np.random.Generator, cfg: MecOffloadingConfig
                  ) -> tuple[np.random.Generator, np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    """The draws of one reset from the env's ``np_random``: the task and background generators (policy
    independent streams) and the episode's device geometry from a third one: ``(rng_task, rng_bg, distance
    (m), shadowing (dB), large-scale link gain)`` per device."""
    rng_task, rng_bg, area, shadow_db = episode_draws(np_random, cfg)
    d_km, path_gain = device_link_gain(area, shadow_db, cfg.bs_antenna_gain_dbi)
    return rng_task, rng_bg, d_km * 1e3, shadow_db, path_gain


def episode_draws(np_random: np.random.Generator, cfg: MecOffloadingConfig
                  ) -> tuple[np.random.Generator, np.random.Generator, np.ndarray, np.ndarray]:
    """The random part of ``episode_start``: (task generator, background generator, squared distances (m^2),
    shadowing (dB)). The three generators are ``default_rng`` of the three ``episode_seeds``."""
    seeds = episode_seeds(np_random)
    rng_task = np.random.default_rng(int(seeds[0]))   # task stream (policy independent)
    rng_bg = np.random.default_rng(int(seeds[1]))     # background stream (policy independent)
    area, shadow_db = geometry_draws(np.random.default_rng(int(seeds[2])), cfg)
    return rng_task, rng_bg, area, shadow_db


def episode_seeds(np_random: np.random.Generator) -> np.ndarray:
    """The seeds of an episode's task, background and geometry generators (one draw from the env's np_random)."""
    return np_random.integers(0, 2**63 - 1, size=3)


def geometry_draws(geo: np.random.Generator, cfg: MecOffloadingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Squared device distances (m^2, area-uniform on the annulus) and shadowing (dB) of one episode."""
    r0, r1 = cfg.min_distance_m, cfg.cell_radius_m
    area = geo.uniform(r0 * r0, r1 * r1, cfg.n_devices)                             # area-uniform
    shadow_db = geo.normal(0.0, cfg.shadowing_std_db, cfg.n_devices)               # per device [1]
    return area, shadow_db


def device_link_gain(area: np.ndarray, shadow_db: np.ndarray, bs_gain_dbi: float | np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(distance in km, large-scale link gain) from ``episode_draws``' squared distances and shadowing
    (elementwise, so it may run on several cells' devices at once)."""
    d_km = np.sqrt(area) * 1e-3
    pl_db = 128.1 + 37.6 * np.log10(d_km)                                          # [1]
    # large-scale link gain: BS antenna gain - path loss - shadowing (UE antenna 0 dBi) [1]
    return d_km, 10.0 ** ((bs_gain_dbi - pl_db - shadow_db) / 10.0)


def draw_task_block(rng: np.random.Generator, cfg: MecOffloadingConfig, lam_slot: float, s0: int, n_slots: int
                    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tasks of the next non-empty block of ``n_slots`` slots from slot ``s0``, in (slot, device) order.

    Returns ``(slot_end, slot, device, size (bit), density (cycles/bit), deadline (s), fading |h|^2)``: the
    draws of ``draw_task_block_raw`` put in physical units.
    """
    end, first, counts, size_mbit, dens, dl, fade = draw_task_block_raw(rng, cfg, lam_slot, s0, n_slots)
    flat = np.repeat(np.arange(counts.size), counts)            # flat (slot, device) index of each task
    return (end, flat // cfg.n_devices + first, flat % cfg.n_devices, size_mbit * 1e6, dens, dl,
            np.maximum(fade, 1e-12))


def draw_task_block_raw(rng: np.random.Generator, cfg: MecOffloadingConfig, lam_slot: float, s0: int,
                        n_slots: int
                        ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The draws of one task block: ``(slot_end, block's first slot, task counts per (slot, device) flattened,
    size (Mbit), density, deadline, raw fade)`` (tasks in (slot, device) order).

    Poisson counts per slot and device, then sizes, densities, deadlines and fades of the block's tasks, each one
    vectorised call on the task generator; an empty block is skipped (its slots have no task). This is the
    only consumer of the task generator, so the task stream is a function of the seed alone (both the single
    env and ``envs.mec_offloading_batched`` call it, which makes their streams identical).
    """
    for _ in range(_MAX_EMPTY_BLOCKS):
        counts = rng.poisson(lam_slot, size=(n_slots, cfg.n_devices)).ravel()
        n = int(counts.sum())
        if n == 0:
            s0 += n_slots
            continue
        # three U[lo, hi) draws of n in one call: NumPy's uniform is lo + (hi - lo) * next_double, so this is
        # bitwise the stream of three uniform() calls, at a third of the generator calls
        u = rng.random(3 * n)
        size_mbit = cfg.task_size_min_mbit + (cfg.task_size_max_mbit - cfg.task_size_min_mbit) * u[:n]
        dens = cfg.density_min + (cfg.density_max - cfg.density_min) * u[n:2 * n]         # cycles/bit
        dl = cfg.deadline_min_s + (cfg.deadline_max_s - cfg.deadline_min_s) * u[2 * n:]   # s
        fade = rng.exponential(1.0, n)                                                   # |h|^2 [2]
        return s0 + n_slots, s0, counts, size_mbit, dens, dl, fade
    # step cap: at the smallest legal load (1e-4 tasks per device-slot) a block is empty with probability 0.994
    raise RuntimeError(f"no task in {_MAX_EMPTY_BLOCKS} blocks of {n_slots} slots (lam_slot={lam_slot!r})")


def task_physics(dev: np.ndarray, size: np.ndarray, dens: np.ndarray, fade: np.ndarray, path_gain: np.ndarray,
                 bw: float, snr_scale: float, f_loc: float, e_per_cycle: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(work W, local time T_loc, local energy E_loc, upload time D / r, link-gain feature) of a task block."""
    gain = path_gain[dev] * fade
    rate = bw * np.log2(1.0 + snr_scale * gain)                                          # bit/s [2]
    work = size * dens
    return (work, work / f_loc, work * e_per_cycle, size / rate,
            np.clip((10.0 * np.log10(gain) + 160.0) / 120.0, 0.0, 1.0))


def background_runs(rng: np.random.Generator, state: int, q: float, m: float, levels: tuple[float, float],
                    n: int) -> tuple[np.ndarray, int]:
    """One server's background utilisation for the next ``n`` slots and the state carried into the next block.

    Two-state Markov chain generated run by run: calm runs ~ Geometric(q = burst_start_prob), bursts ~
    Geometric(m = 1 / burst_mean_slots) [9]. A run cut at the block end is redrawn in the next block, which is
    exact because the geometric law is memoryless.
    """
    u = np.empty(n)
    pos = 0
    while True:
        if state == 1:
            run = int(rng.geometric(m))
        else:
            run = int(rng.geometric(q)) if q > 0.0 else n + 1
        u[pos:pos + run] = levels[state]
        pos += run
        if pos >= n:
            return u, (state if pos > n else 1 - state)
        state = 1 - state


class MecOffloadingEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    _TASK_BLOCK_SLOTS = 64
    _BG_BLOCK_SLOTS = 256

    def __init__(self, config: MecOffloadingConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(MecOffloadingConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        k = cfg.n_servers
        self.n_servers = k
        self.action_space = spaces.Discrete(1 + k)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(8 + 4 * k,), dtype=np.float32)

        # ---- physical constants (scalars as Python floats) ----
        self._slot = float(cfg.slot_s)
        self._inv_slot = 1.0 / self._slot
        self._f_loc = cfg.device_cpu_ghz * 1e9
        self._e_per_cycle = cfg.kappa * self._f_loc ** 2                 # J/cycle [3]
        self._p_tx = 10.0 ** ((cfg.tx_power_dbm - 30.0) / 10.0)         # W
        self._bw = cfg.bandwidth_mhz * 1e6
        noise_w = 10.0 ** ((cfg.noise_psd_dbm_hz + cfg.noise_figure_db - 30.0) / 10.0) * self._bw  # eNB [1]
        self._snr_scale = self._p_tx / noise_w                           # SNR = scale * gain
        self._w = float(cfg.delay_weight)
        self._we = 1.0 - self._w
        self._penalty = float(cfg.drop_penalty)
        self._lam_slot = cfg.arrival_rate * self._slot

        # ---- edge servers and backhaul graph (networkx only here) ----
        self.server_cpu_hz = cfg.server_cpu_ghz * 1e9 * cfg.server_cpu_ratio ** np.arange(k, dtype=np.float64)
        self.graph = _backhaul_graph(k, cfg.backhaul_hop_latency_ms * 1e-3, cfg.backhaul_rate_gbps * 1e9)
        paths = nx.single_source_dijkstra_path(self.graph, "bs", weight="latency")
        self.backhaul_latency_s = np.zeros(k)
        self.backhaul_s_per_bit = np.zeros(k)
        for s in range(k):
            p = paths[s]
            for a, b in zip(p[:-1], p[1:], strict=True):
                self.backhaul_latency_s[s] += self.graph.edges[a, b]["latency"]
                self.backhaul_s_per_bit[s] += self.graph.edges[a, b]["per_bit"]
        self._bh_lat = self.backhaul_latency_s.tolist()
        self._bh_bit = self.backhaul_s_per_bit.tolist()
        self._f_srv = self.server_cpu_hz.tolist()
        self._srv_feat = [f / (f + 10e9) for f in self._f_srv]
        self._bg_levels = (float(cfg.background_load), float(cfg.burst_load))
        q, m = cfg.burst_start_prob, 1.0 / cfg.burst_mean_slots
        self._burst_stationary = q / (q + m) if q + m > 0 else 0.0

        self._steps = 0
        self._n_done = self._n_dropped = 0
        self._delay_done = 0.0
        self._has_reset = False

    # ------------------------------------------------------------------ random streams
    def _new_task_block(self) -> None:
        """Draw the tasks of the next ``_TASK_BLOCK_SLOTS`` slots in one vectorised batch."""
        self._task_slot_end, slot, dev, size, dens, dl, fade = draw_task_block(
            self._rng_task, self.config, self._lam_slot, self._task_slot_end, self._TASK_BLOCK_SLOTS)
        work, t_loc, e_loc, t_up, gain_feat = task_physics(
            dev, size, dens, fade, self._path_gain, self._bw, self._snr_scale, self._f_loc, self._e_per_cycle)
        self._tasks = (
            slot.tolist(), dev.tolist(), size.tolist(), work.tolist(), t_loc.tolist(), e_loc.tolist(),
            t_up.tolist(), dl.tolist(), gain_feat.tolist(), (dens / (dens + 1000.0)).tolist(),
            (size / (size + 1e6)).tolist(),
        )
        self._n_block = slot.size
        self._i = 0

    def _extend_background(self, n_slots_needed: int) -> None:
        """Extend every server's per-slot background utilisation and cumulative capacity.

        Two-state Markov chain generated run by run: calm runs ~ Geometric(burst_start_prob), bursts ~
        Geometric(1 / burst_mean_slots) [9]. A run cut at a block end is redrawn in the next block, which is
        exact because the geometric law is memoryless.
        """
        q = self.config.burst_start_prob
        m = 1.0 / self.config.burst_mean_slots
        n = self._BG_BLOCK_SLOTS
        while len(self._cap[0]) < n_slots_needed:
            for k in range(self.n_servers):
                u, self._bg_state[k] = background_runs(self._rng_bg, self._bg_state[k], q, m, self._bg_levels, n)
                cap = self._f_srv[k] * self._slot * (1.0 - u)
                cum = np.cumsum(cap) + self._phi[k][-1]
                self._u[k].extend(u.tolist())
                self._cap[k].extend(cap.tolist())
                self._phi[k].extend(cum.tolist())

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        self._rng_task, self._rng_bg, d_m, shadow_db, self._path_gain = episode_start(self.np_random, cfg)
        self.device_distance_m = d_m
        self.device_shadowing_db = shadow_db
        self._n_done = 0
        self._delay_done = 0.0
        self._n_dropped = 0
        # queues (absolute times at which each FIFO resource becomes free)
        self._local_free = [0.0] * cfg.n_devices
        self._up_free = 0.0
        self._srv_free = [0.0] * self.n_servers
        # background: state per server, utilisation / capacity / cumulative capacity per slot
        self._bg_state = (self._rng_bg.random(self.n_servers) < self._burst_stationary).astype(int).tolist()
        self._u = [[] for _ in range(self.n_servers)]
        self._cap = [[] for _ in range(self.n_servers)]
        self._phi = [[0.0] for _ in range(self.n_servers)]
        self._extend_background(self._BG_BLOCK_SLOTS)
        self._task_slot_end = 0
        self._new_task_block()
        self._steps = 0
        self._has_reset = True
        self._load_task()
        return self._observation(), {}

    def _load_task(self) -> None:
        i = self._i
        tk = self._tasks
        self._slot_idx = tk[0][i]
        self._now = tk[0][i] * self._slot
        self._dev = tk[1][i]
        self._size = tk[2][i]
        self._work = tk[3][i]
        self._t_loc = tk[4][i]
        self._e_loc = tk[5][i]
        self._t_up = tk[6][i]
        self._dl = tk[7][i]

    def _observation(self) -> np.ndarray:
        i = self._i
        tk = self._tasks
        now = self._now
        t_loc = self._t_loc
        t_up = self._t_up
        dl = self._dl
        b = self._local_free[self._dev] - now
        b = b if b > 0.0 else 0.0
        ub = self._up_free - now
        ub = ub if ub > 0.0 else 0.0
        vals = [tk[10][i], tk[9][i], dl / (dl + 1.0), t_loc / (t_loc + 1.0), b / (b + 1.0),
                ub / (ub + 1.0), t_up / (t_up + 1.0), tk[8][i]]
        j = self._slot_idx
        if j >= len(self._u[0]):
            self._extend_background(j + self._BG_BLOCK_SLOTS)
        size = self._size
        for k in range(self.n_servers):
            sb = self._srv_free[k] - now
            sb = sb if sb > 0.0 else 0.0
            bh = self._bh_lat[k] + self._bh_bit[k] * size
            vals += (sb / (sb + 1.0), self._u[k][j], self._srv_feat[k], bh / (bh + 0.01))
        return np.array(vals, dtype=np.float32)

    def _server_finish(self, k: int, start: float, work: float, t_d: float) -> float:
        """Exact completion time of ``work`` cycles started at ``start`` on server k, or inf if after t_d."""
        inv = self._inv_slot
        jd = int(t_d * inv)
        if jd + 1 >= len(self._cap[k]):
            self._extend_background(jd + 2)
        phi = self._phi[k]
        cap = self._cap[k]
        x = start * inv
        j = int(x)
        target = phi[j] + cap[j] * (x - j) + work
        if target > phi[jd] + cap[jd] * (t_d * inv - jd):
            return _INF
        m = bisect_right(phi, target, j, jd + 1) - 1
        return (m + (target - phi[m]) / cap[m]) * self._slot

    def _outcome(self, a: int, myopic: bool) -> tuple[float, float, bool, float, float]:
        """(delay, energy, dropped, new free time of device/uplink, new free time of server) for action a.

        ``myopic`` replaces the exact future server capacity by the current one (what greedy can know).
        """
        now = self._now
        t_d = now + self._dl
        if a == 0:
            start = self._local_free[self._dev]
            if start < now:
                start = now
            if start >= t_d:
                return self._dl, 0.0, True, start, 0.0
            fin = start + self._t_loc
            if fin <= t_d:
                return fin - now, self._e_loc, False, fin, 0.0
            return self._dl, self._e_loc * (t_d - start) / self._t_loc, True, t_d, 0.0
        k = a - 1
        s = self._up_free
        if s < now:
            s = now
        srv = self._srv_free[k]
        if s >= t_d:
            return self._dl, 0.0, True, s, srv
        fin_tx = s + self._t_up
        if fin_tx > t_d:
            return self._dl, self._p_tx * (t_d - s), True, t_d, srv
        energy = self._p_tx * self._t_up
        arrive = fin_tx + self._bh_lat[k] + self._bh_bit[k] * self._size
        start = srv if srv > arrive else arrive
        if start >= t_d:
            return self._dl, energy, True, fin_tx, srv
        if myopic:
            j = self._slot_idx
            fin = start + self._work / (self._f_srv[k] * (1.0 - self._u[k][j]))
            if fin > t_d:
                fin = _INF
        else:
            fin = self._server_finish(k, start, self._work, t_d)
        if fin == _INF:
            return self._dl, energy, True, fin_tx, t_d
        return fin - now, energy, False, fin_tx, fin

    def _cost(self, delay: float, energy: float, dropped: bool) -> float:
        if dropped:
            return self._penalty + self._we * energy / self._e_loc
        c = self._w * delay / self._t_loc + self._we * energy / self._e_loc
        return c if c < self._penalty else self._penalty

    def estimated_costs(self) -> list[float]:
        """Myopic cost estimate of every action for the pending task (current queues, channel and loads)."""
        out = []
        for a in range(1 + self.n_servers):
            d, e, dr, _, _ = self._outcome(a, True)
            out.append(self._cost(d, e, dr))
        return out

    def server_backlogs(self) -> list[float]:
        """Time (s) until each server finishes this cell's committed work."""
        now = self._now
        return [max(f - now, 0.0) for f in self._srv_free]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = discrete_action(action, self.n_servers + 1)
        delay, energy, dropped, free_a, free_b = self._outcome(a, False)
        if a == 0:
            self._local_free[self._dev] = free_a
        else:
            self._up_free = free_a
            self._srv_free[a - 1] = free_b
        cost = self._cost(delay, energy, dropped)
        if dropped:                                       # no delay of its own (weight 0, see Rewards)
            delay = 0.0
            self._n_dropped += 1
        else:
            self._n_done += 1
            self._delay_done += delay
        self._steps += 1
        self._i += 1
        if self._i >= self._n_block:
            self._new_task_block()
        self._load_task()
        obs = self._observation()
        done = 0.0 if dropped else 1.0
        info = {"delay": delay, "completed": done, "energy": energy, "dropped": 1.0 - done, "cost": cost,
                "offloaded": 1.0 if a else 0.0}
        return obs, -cost, False, self._steps >= self.config.episode_tasks, info

    def episode_kpis(self) -> dict[str, float]:
        """This episode so far: mean delay (s) of the completed tasks, drop ratio, #completed, #dropped."""
        n = self._n_done + self._n_dropped
        return {"delay": self._delay_done / self._n_done if self._n_done else 0.0,
                "dropped": self._n_dropped / n if n else 0.0,
                "completed": float(self._n_done), "n_dropped": float(self._n_dropped)}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if not self._has_reset:
            return "MecOffloading (not reset)"
        srv = " ".join(f"{b:.2f}" for b in self.server_backlogs())
        j = self._slot_idx
        load = " ".join(f"{self._u[k][j]:.2f}" for k in range(self.n_servers))
        return (f"t={self._now:.2f}s step={self._steps} device={self._dev} D={self._size / 1e6:.2f}Mbit "
                f"uplink_backlog={max(self._up_free - self._now, 0.0):.2f}s server_backlog=[{srv}] "
                f"bg_load=[{load}]")


# ---------------------------------------------------------------------- heuristic baselines
def _all_local(env: gym.Env, seed: int) -> Policy:
    return lambda obs: 0


def _offload_nearest(env: gym.Env, seed: int) -> Policy:
    nearest = 1 + int(np.argmin(env.unwrapped.backhaul_latency_s))
    return lambda obs: nearest


def _least_loaded(env: gym.Env, seed: int) -> Policy:
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        b = e.server_backlogs()
        return 1 + b.index(min(b))
    return policy


def _random(env: gym.Env, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    n = int(env.action_space.n)
    return lambda obs: int(rng.integers(n))


def _greedy(env: gym.Env, seed: int) -> Policy:
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        c = e.estimated_costs()
        return c.index(min(c))
    return policy


BASELINES: dict[str, BaselineFactory] = {
    "all-local": _all_local,
    "offload-nearest": _offload_nearest,
    "least-loaded": _least_loaded,
    "random": _random,
    "greedy": _greedy,
}

ENTRY = EnvEntry(
    env_id="frl/MecOffloading-v0",
    name="mec-offloading",
    entry_point="envs.mec_offloading:MecOffloadingEnv",
    vector_entry_point="envs.mec_offloading_batched:make_vector_env",
    config_cls=MecOffloadingConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("cost", "delay", "energy", "dropped", "offloaded"),
    lower_is_better=("cost", "delay", "energy", "dropped"),
    kpi_weight={"delay": "completed"},
    summary="Edge cell offloads deadline tasks to K edge servers over a shared uplink (delay+energy cost)",
    max_episode_steps=None,
)
