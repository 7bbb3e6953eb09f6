"""O-RAN user access control / handover: one UE picks its serving cell among its K strongest cells.

Description
-----------
A UE-centric user access control problem in the spirit of Cao et al. (2022): every user equipment (UE) runs
a DQN that chooses the cell serving it, and a global model server in the near-RT RIC federates the UEs'
models. The goal is a high long-term throughput without frequent handovers (HOs). The network is a
hexagonal 7-site macro layout (inter-site distance 500 m, TR 38.901 Table 7.2-1 UMa) with three sectors
per site by default, boresights 30 / 150 / 270 degrees (the TR 36.814 Annex A.2.1.1 / TR 38.901 Figure
7.8-1 three-sector hexagon), each with the TR 38.901 Table 7.3-1 element's horizontal cut
G(phi) = 8 dBi - min(12 (phi / 65 deg)^2, 30 dB) (the vertical cut is not modelled: no downtilt, UEs at
ground level; ``sectors_per_site=1`` gives one omni 0 dBi cell per site), plus ``small_cells_per_macro``
low-power omni small cells per macro area at random positions (TR 36.814 Table A.2.1.1.2-1 placement
rules: at least 75 m from the macro and 40 m from other small cells).

No wrap-around: UEs move inside the 7-site area, so edge UEs miss the interference of a second tier of
sites (19 sites with wrap-around, TR 36.814 A.2.1.1). Wrap-around changes the precomputed-map design
(received powers on a torus: each cell's map must take the nearest of its 7 images) and with 19 sites
and 3 sectors every UE step costs about 2.7x as many [U, C] operations and the map 2.7x the memory
(~60 cells x the grid); the 7-site form is kept, and interference-limited figures near the area's edge
are optimistic.

Propagation follows 3GPP TR 38.901 V17: UMa path loss for macros and UMi-Street-Canyon for small cells
(Table 7.4.1-1, LOS/NLOS with the LOS probability of Table 7.4.2-1), carrier 3.5 GHz, h_BS = 25 m (UMa)
and 10 m (UMi), h_UT = 1.5 m, log-normal shadowing (sigma 4 dB LOS / 6 dB NLOS for UMa, 4 / 7.82 dB for
UMi). LOS state and shadowing are *spatially consistent* (TR 38.901 Section 7.6.3): each site has its own
unit Gaussian random fields with exponential correlation, generated as separable first-order
auto-regressive (Gudmundson) fields: the LOS state is LOS iff Phi(g) < Pr_LOS(d) (Section 7.6.3.3
procedure A, LOS-state correlation distance 50 m) and the shadowing is sigma_LOS/NLOS * z with one field z
per site at the NLOS decorrelation distance (50 m UMa, 13 m UMi, Table 7.5-6; the LOS values 37 m / 10 m are
not modelled separately). Co-sited sectors share their site's fields, different sites are independent.
Large-scale fading only: a 100 ms step is much longer than the coherence time, and rates use the
local-mean SINR. Moving through LOS patches of other sites (28 dB between LOS and NLOS UMa at 300 m)
is what makes max-RSRP association hand over often, even without shadowing.

The whole deployment (small-cell positions, hotspot centres, LOS and shadowing fields) is a deterministic
function of the config (``layout_seed``): a client is one RAN area, and ``reset(seed)`` only redraws the
UEs. The received power of every cell is precomputed on a ``map_resolution_m`` grid (nearest node; default
5 m; about 0.2 s and 7 MB per distinct deployment, cached), so the channel of all UEs is a gather of
[U, C] powers. UE trajectories do not depend on the association, so mobility and the channel gather are
done for a block of steps at once (until the next waypoint departure).

Downlink SINR counts interference from all other cells (full buffer, TR 36.814 Table A.2.1.1-1)::

    SINR_u,c = P_u,c / (sum_{c' != c} a_c' P_u,c' + N0 B),   N0 = -174 dBm/Hz + NF 9 dB, B = 20 MHz

where the activity a_c' is 1 for a cell serving at least one UE and ``idle_cell_activity`` (default 1:
every cell always transmits) for an empty one. The rate is resource fair over a truncated Shannon
spectral efficiency (3GPP TR 36.942 Annex A.1, Table A.2 for the DL)::

    R_u = (B / n_c) S(SINR),  S = 0 below SINR_min = -10 dB,  alpha log2(1 + SINR) with alpha = 0.6,
                              at most Thr_max = 4.4 b/s/Hz (reached at SINR ~ 22 dB)

with n_c the number of UEs attached to the serving cell c (``se_max_bps_hz=7.4`` is the NR maximum,
256QAM at code rate 948/1024, TS 38.214 Table 5.1.3.1-2). UEs move by random waypoint (speed uniform in
[``min_speed_mps``, ``max_speed_mps``], pause uniform in [0, ``max_pause_s``]); a fraction
``hotspot_fraction`` of waypoints falls within ``hotspot_radius_m`` of a hotspot (the small cells; TR 36.814
configuration 4b clusters UEs within 40 m of picos).

A HO interrupts data for ``ho_interruption_s`` (about 50 ms: 3GPP TR 36.881 estimates ~49.5 ms for an
LTE HO), so the step's rate is scaled by 1 - T_int / step. A *ping-pong* is a HO back to the previous
cell within ``ping_pong_window_s`` (the 1 s minimum time-of-stay of 3GPP TR 36.839).

The env simulates ``n_ues`` UEs. The Gymnasium form controls UE 0; the other UEs follow
``background_policy`` (default 3GPP A3 with time-to-trigger, TS 38.331 Section 5.5.4.4). ``parallel_env``
is the PettingZoo form where every UE ``ue_i`` is an agent. Time step 100 ms (a near-RT RIC control loop
is 10 ms to 1 s, O-RAN WG1 architecture); an episode lasts ``episode_steps`` (600 = one minute).

Action Space
------------
``Discrete(K)`` (K = ``n_candidates``, default 4): index into the UE's candidate list, its K strongest
cells by L3-filtered RSRP sorted in descending order. The serving cell is always a candidate: if it is not among the
K strongest it replaces the K-th. Choosing a cell other than the serving one is a handover.

Observation Space
-----------------
``Box(float32, (5K + 2,))``, per candidate slot j = 0..K-1 (same order as the actions):

* ``[0:K]``  L3-filtered RSRP (wideband received power), (F_dBm + 80) / 40, clipped to [-3, 3]
* ``[K:2K]`` SINR if served by that cell under the current cell activity (local mean, not filtered: a CQI-like
  report), SINR_dB / 20, clipped to [-3, 3]
* ``[2K:3K]`` cell load, number of attached UEs / 10 (the UE itself counts in its serving cell), in [0, 20]
* ``[3K:4K]`` 1 if the candidate is the serving cell
* ``[4K:5K]`` 1 if the candidate is the previous serving cell and the last HO was less than
  ``ping_pong_window_s`` ago (going back now would be a ping-pong)
* ``[5K]`` time since the last HO, min(t, 5 s) / 5 s;  ``[5K+1]`` UE speed / 30 m/s

Rewards
-------
``ln(max(R, 0.01 Mbps)) - ho_cost * HO - ping_pong_cost * PP`` with R the step-average rate in Mbps
(interruption included), HO and PP in {0, 1}. Cao et al. maximise long-term throughput while avoiding
frequent HOs; the log (proportional-fair) utility and the explicit costs are this env's choice.

``info`` every step: ``throughput`` (Mbps), ``handover`` (0/1), ``ping_pong`` (0/1), ``load_fairness`` (Jain's
index of the cell loads, sum(n)^2 / (C sum(n^2))), ``sinr_db``, ``serving_cell``. Handovers per minute =
mean(handover) * 60 / step_s. In the parallel form ``throughput`` is the mean over UEs and
``throughput_p5`` the 5th percentile; ``handover`` and ``ping_pong`` are means over UEs; the agent's own
values are ``ue_throughput``, ``ue_handover``, ``ue_ping_pong``.

Starting State
--------------
UEs start at random-waypoint positions (a random site's hexagon, or a hotspot), moving to a first waypoint,
attached to their strongest cell (initial access); no HO history.

Episode End
-----------
No termination; truncation after ``episode_steps`` steps (the env truncates itself).

Arguments
---------
Keyword overrides replace fields of ``OranAccessConfig`` through ``envs.knobs.apply_overrides``. Every knob
declares its default, unit, legal range and source on its config field (``sectors_per_site`` is 1 or 3,
``ho_interruption_s`` at most ``step_s``); this table is generated from them by ``envs.knobs.knob_table``:

{knob_table}

A3 at a 100 ms step: the entering condition Mn + Ofn + Ocn - Hys > Mp + Ofp + Ocp + Off (TS 38.331
5.5.4.4, cell offsets 0) for the strongest neighbour must hold on 1 + ceil(TTT / step) consecutive steps
(it has held for at least TTT; the strongest neighbour may change meanwhile, a simplification of the
per-cell trigger list); the UE then hands over to the strongest neighbour. Measurements are the
layer-3 filtered RSRP of TS 38.331 Section 5.5.3.2, in dB: F_0 = M_1, F_n = (1 - a) F_(n-1) + a M_n with
a = 1 / 2^(k/4), k = ``l3_filter_k`` (filterCoefficient, default fc4), adapted to the 100 ms step so that
the filter keeps the time characteristics it has at the 200 ms sample period it assumes: per step
(1 - a)^(step / 200 ms) of the old value is kept (a = 0.29 at fc4). M_n is the local-mean RSRP (no fast
fading), whose 28 dB LOS/NLOS jumps the filter smooths. The same filtered RSRP is what the UE reports
(TS 38.331 5.5.5), so it is also what the observations show and what ranks the K candidates.

Baselines
---------
``BASELINES`` (single-agent, ``(env, seed) -> policy(obs) -> action``) and ``PARALLEL_BASELINES``
(``(env, seed) -> policy(obs_dict) -> action_dict``): ``max-sinr`` (highest SINR candidate every step),
``a3`` (the rule above with per-UE counters, on the observed filtered RSRP), ``load-aware`` (greedy on the
estimated resource-fair rate B / (n_c + 1 - [c serving]) S(SINR_c), moving only for a 10 % gain; in the
parallel form each UE re-decides with probability 0.2 per step, which avoids the herding of simultaneous
greedy moves), ``nearest`` (closest candidate cell) and ``random``.

References
----------
* Y. Cao, S.-Y. Lien, Y.-C. Liang, K.-C. Chen, X. Shen, "User Access Control in Open Radio Access
  Networks: A Federated Deep Reinforcement Learning Approach", IEEE Trans. Wireless Commun. 21(6),
  3721-3736, 2022 (conference version: "Federated Deep Reinforcement Learning for User Access Control
  in Open Radio Access Networks", IEEE ICC 2021).
* 3GPP TR 38.901 V17.0.0, "Study on channel model for frequencies from 0.5 to 100 GHz".
* 3GPP TR 36.814 V9.2.0, "Further advancements for E-UTRA physical layer aspects", Annex A.
* 3GPP TS 38.331, "NR; Radio Resource Control (RRC); Protocol specification", Sections 5.5.3.2 (layer-3
  filtering) and 5.5.4.4 (A3).
* 3GPP TR 36.942 V17.0.0, "E-UTRA; Radio Frequency (RF) system scenarios", Annex A.1-A.2 (truncated
  Shannon bound).
* 3GPP TS 38.214, "NR; Physical layer procedures for data", Table 5.1.3.1-2 (256QAM MCS table).
* 3GPP TR 36.839 V11.1.0, "Mobility enhancements in heterogeneous networks" (ping-pong definition).
* 3GPP TR 36.881 V14.0.0, "Study on latency reduction techniques for LTE" (HO interruption time).
* M. Gudmundson, "Correlation model for shadow fading in mobile radio systems", Electron. Lett. 27(23),
  1991 (exponential shadowing correlation).
* R. Jain, D. Chiu, W. Hawe, "A quantitative measure of fairness and discrimination for resource
  allocation in shared computer systems", DEC-TR-301, 1984.

Version History
---------------
* v0: initial release.
* v0 (issue 10): truncated Shannon rates, L3-filtered measurements for A3, candidates and observations,
  3 sectors with 8 dBi element gain by default (spaces unchanged; dynamics and KPIs differ).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.oran_channel import (
    LOS_DECORR,
    SECTOR_BORESIGHT_DEG,
    SF_DECORR,
    SF_SIGMA,
    _gaussian_field,
    _std_normal_cdf,
    breakpoint_distance,
    l3_filter_weight,
    los_probability,
    noise_mw,
    pathloss_db,
    sector_gain_db,
    sinr,
    truncated_shannon,
)
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_range, discrete_action

__all__ = [
    "BASELINES",
    "ENTRY",
    "PARALLEL_BASELINES",
    "OranAccessConfig",
    "OranAccessEnv",
    "OranAccessParallelEnv",
    "breakpoint_distance",
    "l3_filter_weight",
    "los_probability",
    "make_client_configs",
    "noise_mw",
    "parallel_env",
    "pathloss_db",
    "sector_gain_db",
    "sinr",
    "truncated_shannon",
]

# --- physical constants and fixed model parameters (cited) ---------------------------------------------
MACRO_SMALL_MIN_DIST, SMALL_SMALL_MIN_DIST = 75.0, 40.0     # TR 36.814 Table A.2.1.1.2-1
N_SITES = 7

# --- observation normalisation ----------------------------------------------------------------------------
RSRP_REF_DBM, RSRP_SCALE_DB = -80.0, 40.0
SINR_SCALE_DB = 20.0
CLIP = 3.0
LOAD_SCALE = 10.0
TIME_CAP_S = 5.0
SPEED_NORM = 30.0
MAX_UES = 200
RATE_FLOOR_MBPS = 0.01
BACKGROUND_POLICIES = ("a3", "max-sinr", "load-aware")
LOAD_AWARE_MARGIN = 0.1          # a load-aware UE moves only for a > 10 % better estimated rate
LOAD_AWARE_ACTIVITY = 0.2        # fraction of UEs re-deciding per step in the multi-UE load-aware rule
MAX_MAP_ENTRIES = 40_000_000     # grid nodes x cells (float32: 160 MB)


# ============================================================================================================
# Config
# ============================================================================================================
@dataclass(frozen=True)
class OranAccessConfig(KnobConfig):
    """Physical and protocol parameters; default, unit, legal range and source per knob: ``knob_table``."""

    n_ues: int = knob(30, 2, MAX_UES, integer=True, unit="UEs",
                      source="traffic density (design; tens of UEs per client)")
    small_cells_per_macro: int = knob(2, 0, 4, integer=True, unit="cells",
                                      source="HetNet small cells per macro area; TR 36.814 A.2.1.1.2 uses 1-4 picos")
    sectors_per_site: int = knob(3, 1, 3, integer=True, unit="-",
                                 source="3 sectors at 30/150/270 deg, TR 38.901 Table 7.3-1 element (TR 36.814 "
                                        "A.2.1.1); 1 = omni 0 dBi (2 is not allowed)")
    isd_m: float = knob(500.0, 200.0, 1000.0, unit="m", source="500 m [TR 38.901 Table 7.2-1 UMa]")
    carrier_ghz: float = knob(3.5, 0.5, 30.0, unit="GHz", source="3.5 GHz (NR n78) [TR 38.901 7.4.1 valid 0.5-100 GHz]")
    bandwidth_mhz: float = knob(20.0, 1.4, 100.0, unit="MHz", source="20 MHz [TR 36.814 Table A.2.1.1-1]")
    macro_power_dbm: float = knob(46.0, 20.0, 49.0, unit="dBm", source="46 dBm [TR 36.814 Table A.2.1.1-2, 20 MHz]")
    small_power_dbm: float = knob(30.0, 10.0, 40.0, unit="dBm", source="30 dBm pico [TR 36.814 Table A.2.1.1.2-1]")
    noise_figure_db: float = knob(9.0, 0.0, 15.0, unit="dB", source="UE noise figure 9 dB [TR 36.814 Table A.2.1.1-2]")
    shadowing_scale: float = knob(1.0, 0.0, 2.0, unit="x",
                                  source="multiplies the TR 38.901 Table 7.4.1-1 sigmas (1 = standard)")
    idle_cell_activity: float = knob(1.0, 0.0, 1.0, unit="-",
                                     source="interference weight of an empty cell (1 = full buffer, design)")
    min_speed_mps: float = knob(1.0, 0.1, SPEED_NORM, unit="m/s", source="random waypoint speed lower bound (design)")
    max_speed_mps: float = knob(15.0, 0.1, SPEED_NORM, unit="m/s",
                                source="random waypoint speed upper bound: pedestrians to urban vehicles (design)")
    max_pause_s: float = knob(2.0, 0.0, 60.0, unit="s",
                              source="random waypoint pause upper bound (design)")
    hotspot_fraction: float = knob(0.5, 0.0, 1.0, unit="-",
                                   source="waypoints near hotspots; 2/3 in [TR 36.814 config 4b]")
    hotspot_radius_m: float = knob(40.0, 10.0, 150.0, unit="m", source="40 m [TR 36.814 A.2.1.1.2]")
    step_s: float = knob(0.1, 0.01, 1.0, unit="s",
                         source="100 ms decision period (near-RT RIC loop 10 ms - 1 s)")
    episode_steps: int = knob(600, 1, 1_000_000, integer=True, unit="steps", source="600 steps = one minute (design)")
    se_alpha: float = knob(0.6, 0.1, 1.0, unit="-",
                           source="truncated Shannon attenuation alpha 0.6 [TR 36.942 Table A.2]")
    se_max_bps_hz: float = knob(4.4, 0.5, 10.0, unit="b/s/Hz",
                                source="Thr_max 4.4 (DL) [TR 36.942 Table A.2]; 7.4 = NR 256QAM [TS 38.214 "
                                       "Table 5.1.3.1-2]")
    sinr_min_db: float = knob(-10.0, -20.0, 0.0, unit="dB", source="SINR_min -10 dB [TR 36.942 Table A.2]")
    l3_filter_k: int = knob(4, 0, 19, integer=True, unit="-",
                            source="filterCoefficient fc4 (a = 1/2^(k/4); 0 = no filter) [TS 38.331 5.5.3.2]")
    ho_interruption_s: float = knob(0.05, 0.0, 1.0, unit="s", source="~50 ms [TR 36.881]; at most step_s")
    ho_cost: float = knob(0.5, 0.0, 10.0, unit="reward", source="signalling cost per HO (design)")
    ping_pong_window_s: float = knob(1.0, 0.0, 10.0, unit="s", source="1 s minimum time-of-stay [TR 36.839]")
    ping_pong_cost: float = knob(1.0, 0.0, 10.0, unit="reward", source="extra cost of a ping-pong HO (design)")
    background_policy: str = knob("a3", choices=BACKGROUND_POLICIES, unit="-",
                                  source="handover rule of the other UEs in the gymnasium form")
    a3_offset_db: float = knob(3.0, -15.0, 15.0, unit="dB", source="a3-Offset 3 dB [TS 38.331 5.5.4.4]")
    a3_hysteresis_db: float = knob(1.0, 0.0, 15.0, unit="dB", source="hysteresis 1 dB [TS 38.331 5.5.4.4]")
    a3_ttt_s: float = knob(0.16, 0.0, 5.12, unit="s", source="timeToTrigger 160 ms [TS 38.331]")
    map_resolution_m: float = knob(5.0, 1.0, 25.0, unit="m", source="received-power grid spacing (design)")
    layout_seed: int = knob(0, 0, 2**31 - 1, integer=True, unit="-",
                            source="deployment draw (small cells, hotspots, LOS/shadowing fields)")
    n_candidates: int = knob(4, 2, 8, integer=True, unit="cells", source="K = 4 strongest cells (fixed across clients)")

    def check_constraints(self) -> None:
        if self.sectors_per_site not in (1, 3):
            raise EnvConfigError(f"sectors_per_site={self.sectors_per_site!r} is not allowed; allowed: 1, 3")
        if self.min_speed_mps > self.max_speed_mps:
            raise EnvConfigError(f"min_speed_mps={self.min_speed_mps!r} must not exceed "
                                 f"max_speed_mps={self.max_speed_mps!r}")
        check_range("ho_interruption_s", self.ho_interruption_s, 0.0, self.step_s)
        n_cells = N_SITES * (self.sectors_per_site + self.small_cells_per_macro)
        if n_cells < self.n_candidates:
            raise EnvConfigError(f"n_candidates={self.n_candidates!r} exceeds the {n_cells} cells")
        if _grid_shape(self.isd_m, self.map_resolution_m, n_cells)[2] > MAX_MAP_ENTRIES:
            raise EnvConfigError(f"map_resolution_m={self.map_resolution_m!r} is too fine for isd_m="
                                 f"{self.isd_m!r} and {n_cells} cells; allowed: a coarser resolution")

    @property
    def n_cells(self) -> int:
        return N_SITES * (self.sectors_per_site + self.small_cells_per_macro)


__doc__ = document_knobs(__doc__, OranAccessConfig)


# ============================================================================================================
# Deployment: cells, hotspots and the precomputed received-power map
# ============================================================================================================
def _site_positions(isd: float) -> np.ndarray:
    return np.concatenate([[0j], isd * np.exp(1j * np.deg2rad(60.0 * np.arange(6)))])


def _grid_shape(isd: float, res: float, n_cells: int) -> tuple[int, int, int]:
    half_w, half_h = 1.5 * isd, isd * (math.sqrt(3) / 2 + 1 / math.sqrt(3))
    gx, gy = int(math.ceil(2 * half_w / res)) + 3, int(math.ceil(2 * half_h / res)) + 3
    return gx, gy, gx * gy * n_cells


def _hexagon_points(rng: np.random.Generator, centres: np.ndarray, isd: float) -> np.ndarray:
    """Uniform points in the hexagons around ``centres`` (exact: a hexagon is three rhombi)."""
    n = centres.size
    radius = isd / math.sqrt(3.0)
    k = rng.integers(0, 3, n)
    a, b = rng.random(n), rng.random(n)
    v1 = radius * np.exp(1j * np.deg2rad(30.0 + 120.0 * k))
    v2 = radius * np.exp(1j * np.deg2rad(150.0 + 120.0 * k))
    return centres + a * v1 + b * v2


@dataclass(frozen=True, eq=False)
class Deployment:
    """A RAN area: cell positions/kinds/powers and the [grid nodes, cells] received-power map (mW)."""

    sites: np.ndarray            # complex [7]
    cell_pos: np.ndarray         # complex [C]
    cell_small: np.ndarray       # bool [C]
    cell_power_dbm: np.ndarray   # [C]
    hotspots: np.ndarray         # complex [H]
    origin: complex              # position of grid node (0, 0)
    res: float
    gx: int
    gy: int
    rx_mw: np.ndarray            # float32 [gy * gx, C], read-only
    box: tuple[float, float, float, float]   # xmin, xmax, ymin, ymax of the UE area

    def node_position(self, flat: np.ndarray | int) -> np.ndarray:
        flat = np.asarray(flat)
        return self.origin + (flat % self.gx) * self.res + 1j * (flat // self.gx) * self.res


@functools.lru_cache(maxsize=8)
def _deployment(isd: float, sectors: int, smalls: int, fc: float, p_macro: float, p_small: float,
                shadow_scale: float, res: float, layout_seed: int) -> Deployment:
    rng = np.random.default_rng(layout_seed)
    sites = _site_positions(isd)
    # small cells: uniform in each macro hexagon, >= 75 m from the macro and >= 40 m from other small cells
    small: list[complex] = []
    for s in range(N_SITES):
        for _ in range(smalls):
            for _try in range(1000):
                p = complex(_hexagon_points(rng, sites[s:s + 1], isd)[0])
                if abs(p - sites[s]) >= MACRO_SMALL_MIN_DIST and all(
                        abs(p - q) >= SMALL_SMALL_MIN_DIST for q in small):
                    break
            small.append(p)
    small_pos = np.asarray(small, dtype=np.complex128)
    if small_pos.size:
        hotspots = small_pos
    else:   # one hotspot per macro area, drawn like a small cell
        hotspots = np.asarray([complex(_hexagon_points(rng, sites[s:s + 1], isd)[0]) for s in range(N_SITES)])
    macro_pos = np.repeat(sites, sectors)
    cell_pos = np.concatenate([macro_pos, small_pos])
    n_macro, n_cells = macro_pos.size, cell_pos.size
    cell_small = np.arange(n_cells) >= n_macro
    cell_power = np.where(cell_small, p_small, p_macro)
    # one set of fields per site (macro site or small cell); co-sited sectors share them
    field_of_cell = np.concatenate([np.repeat(np.arange(N_SITES), sectors),
                                    N_SITES + np.arange(small_pos.size)])
    n_fields = N_SITES + small_pos.size
    field_small = np.arange(n_fields) >= N_SITES

    gx, gy, _ = _grid_shape(isd, res, n_cells)
    half_w, half_h = 1.5 * isd, isd * (math.sqrt(3) / 2 + 1 / math.sqrt(3))
    origin = complex(-half_w - res, -half_h - res)
    box = (-half_w, half_w, -half_h, half_h)

    def corr(dist_uma: float, dist_umi: float) -> np.ndarray:
        return np.exp(-res / np.where(field_small, dist_umi, dist_uma))

    u_los = _std_normal_cdf(_gaussian_field(rng, gy, gx, corr(LOS_DECORR, LOS_DECORR)))
    z_sf = _gaussian_field(rng, gy, gx, corr(SF_DECORR["uma"], SF_DECORR["umi"]))

    nodes = (origin + (np.arange(gx)[None, :] + 1j * np.arange(gy)[:, None]) * res).reshape(-1)
    rx = np.empty((gy * gx, n_cells), dtype=np.float32)
    ln10_10 = np.float32(math.log(10.0) / 10.0)
    for f in range(n_fields):      # build time only: one vectorised pass over the grid per site
        small_f = bool(field_small[f])
        scenario = "umi" if small_f else "uma"
        diff = (nodes - (sites[f] if not small_f else small_pos[f - N_SITES])).astype(np.complex64)
        d2d = np.abs(diff)
        los = u_los[:, f] < los_probability(d2d, scenario=scenario)
        sig_l, sig_n = SF_SIGMA[scenario]
        loss = pathloss_db(d2d, los, scenario=scenario, fc_ghz=fc)
        loss += np.where(los, np.float32(shadow_scale * sig_l), np.float32(shadow_scale * sig_n)) * z_sf[:, f]
        for c in np.flatnonzero(field_of_cell == f):
            gain = 0.0
            if sectors == 3 and not small_f:
                gain = sector_gain_db(np.degrees(np.angle(diff)), SECTOR_BORESIGHT_DEG[c % 3])
            rx[:, c] = np.exp((np.float32(cell_power[c]) + gain - loss) * ln10_10)
    for arr in (sites, cell_pos, cell_small, cell_power, hotspots, rx):
        arr.setflags(write=False)
    return Deployment(sites=sites, cell_pos=cell_pos, cell_small=cell_small, cell_power_dbm=cell_power,
                      hotspots=hotspots, origin=origin, res=float(res), gx=gx, gy=gy, rx_mw=rx,
                      box=box)


def deployment_for(config: OranAccessConfig) -> Deployment:
    """The (cached, read-only) deployment that ``config`` describes."""
    c = config
    return _deployment(float(c.isd_m), int(c.sectors_per_site), int(c.small_cells_per_macro),
                       float(c.carrier_ghz), float(c.macro_power_dbm), float(c.small_power_dbm),
                       float(c.shadowing_scale), float(c.map_resolution_m), int(c.layout_seed))


# ============================================================================================================
# Simulation core: U UEs, vectorised over UEs
# ============================================================================================================
class _Core:
    """State of all UEs: mobility, channel, association, HO bookkeeping and observations.

    Trajectories do not depend on the association, so mobility is simulated in *blocks*: between two leg
    renewals (a UE ending its pause) every UE moves on a known straight line or waits, and the positions,
    the [T, U, C] received powers (one gather from the map) and the per-step A3 inputs of a whole block are
    computed at once. A step then only reads row ``k - block_start`` of these arrays.
    """

    T_MAX = 64          # steps per block at most
    LEG_BLOCK = 64      # random-waypoint legs drawn at once

    def __init__(self, config: OranAccessConfig, *, single: bool) -> None:
        c = self.cfg = config
        self.single = single                              # precompute UE 0's observation pieces per block
        self.dep = deployment_for(config)
        self.U, self.C, self.K = int(c.n_ues), int(c.n_cells), int(c.n_candidates)
        self.dt = float(c.step_s)
        self.noise = noise_mw(c.bandwidth_mhz, c.noise_figure_db)
        self.bw_mbps = float(c.bandwidth_mhz)             # B [MHz] x bit/s/Hz = Mbit/s
        self.int_frac = float(c.ho_interruption_s) / self.dt
        self.tpp = float(c.ping_pong_window_s) + 1e-9
        self.idle = float(c.idle_cell_activity)
        self.a3_db = float(c.a3_offset_db + c.a3_hysteresis_db)
        self.l3_a = l3_filter_weight(int(c.l3_filter_k), self.dt)
        self.se = (float(c.se_alpha), float(c.se_max_bps_hz), float(c.sinr_min_db))
        self.sinr_min = 10.0 ** (c.sinr_min_db / 10.0)
        self.F_last: np.ndarray | None = None
        self.a3_steps = 1 + math.ceil(c.a3_ttt_s / self.dt - 1e-9)
        self.obs_dim = 5 * self.K + 2
        self.rowoff = np.arange(self.U) * self.C
        self.ar = np.arange(self.U)
        self.inv_res = 1.0 / self.dep.res
        # grid coordinates are offset by half a node so that truncation rounds to the nearest node
        self._q0 = -self.dep.origin / self.dep.res + (0.5 + 0.5j)
        self.rng: np.random.Generator | None = None
        self.bg_fast_a3 = single and c.background_policy == "a3" and self.a3_db > 0.0

    # ---- mobility: random waypoint -------------------------------------------------------------------
    def _waypoints(self, n: int) -> np.ndarray:
        dep, cfg, rng = self.dep, self.cfg, self.rng
        pts = _hexagon_points(rng, dep.sites[rng.integers(0, N_SITES, n)], cfg.isd_m)
        hot = rng.random(n) < cfg.hotspot_fraction
        r = cfg.hotspot_radius_m * np.sqrt(rng.random(n))
        hpts = dep.hotspots[rng.integers(0, dep.hotspots.size, n)] + r * np.exp(2j * np.pi * rng.random(n))
        pts = np.where(hot, hpts, pts)
        xmin, xmax, ymin, ymax = dep.box
        return np.clip(pts.real, xmin, xmax) + 1j * np.clip(pts.imag, ymin, ymax)

    def _take_legs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next n (waypoint, speed, pause) legs of the seeded leg stream."""
        out_wp, out_v, out_p = [], [], []
        while n > 0:
            if self._leg_i >= self.LEG_BLOCK:
                cfg, rng, m = self.cfg, self.rng, self.LEG_BLOCK
                self._leg_wp = self._waypoints(m)
                self._leg_speed = rng.uniform(cfg.min_speed_mps, cfg.max_speed_mps, m)
                self._leg_pause = cfg.max_pause_s * rng.random(m)
                self._leg_i = 0
            i = self._leg_i
            j = min(self.LEG_BLOCK, i + n)
            out_wp.append(self._leg_wp[i:j])
            out_v.append(self._leg_speed[i:j])
            out_p.append(self._leg_pause[i:j])
            n -= j - i
            self._leg_i = j
        return np.concatenate(out_wp), np.concatenate(out_v), np.concatenate(out_p)

    def _renew(self, due: np.ndarray, k0: int) -> None:
        """UEs ``due`` leave their waypoint at step k0 towards a new one (vectorised over them)."""
        wp, speed, pause = self._take_legs(due.size)
        start = self.wp[due]
        nmove = np.abs(wp - start) / (speed * self.dt)            # steps to arrival (fractional)
        vel = np.where(nmove > 0.0, (wp - start) / np.maximum(nmove, 1e-12), 0.0)
        self.p0[due] = start
        self.wp[due] = wp
        self.vel[due] = vel
        self.p0g[due] = start * self.inv_res + self._q0           # the same leg in grid units
        self.velg[due] = vel * self.inv_res
        self.nmove[due] = nmove
        self.ks[due] = k0
        self.leg_speed[due] = speed
        self.ke[due] = k0 + np.maximum(nmove + pause / self.dt, 1.0)

    def _new_block(self, k0: int) -> None:
        while True:
            due = np.flatnonzero(self.ke <= k0 + 1e-9)
            if due.size == 0:
                break
            self._renew(due, k0)
        k1 = max(k0 + 1, min(k0 + self.T_MAX, math.ceil(float(self.ke.min()) - 1e-9)))
        steps = np.arange(k0, k1, dtype=np.float64)[:, None]
        m = np.maximum(steps - self.ks, 0.0)
        np.minimum(m, self.nmove, out=m)                          # [T, U] steps travelled on the leg
        q = self.p0g + m * self.velg
        flat = q.real.astype(np.intp)
        flat += self.dep.gx * q.imag.astype(np.intp)              # nearest grid node
        T, U, C = k1 - k0, self.U, self.C
        P = self.dep.rx_mw.take(flat.reshape(-1), axis=0).reshape(T, U, C)
        self.blk_k0, self.blk_k1 = k0, k1
        self.blk_P, self.blk_Pf, self.blk_m = P, P.reshape(T, U * C), m
        # layer-3 filtered RSRP in dBm (TS 38.331 5.5.3.2, logarithmic domain): F_0 = M_1, then
        # F_n = (1 - a) F_(n-1) + a M_n. It depends on the trajectory only, so a whole block is filtered at once.
        F = np.log10(P)
        F *= np.float32(10.0)
        a = self.l3_a
        if a < 1.0:
            last = F[0] if self.F_last is None else self.F_last
            for t in range(T):
                last = F[t] = last + np.float32(a) * (F[t] - last)
        self.F_last = F[-1]
        self.blk_F, self.blk_Ff = F, F.reshape(T, U * C)
        self.blk_pb = F.max(axis=2) - np.float32(self.a3_db)     # A3 threshold on the best neighbour, [T, U]
        if self.single:                        # UE 0's candidate features for the whole block
            F0 = F[:, 0, :]
            top = np.argsort(-F0, axis=1, kind="stable")[:, :self.K]
            P0 = P[:, 0, :].astype(np.float64)
            tot = P0.sum(axis=1)
            ptop = np.take_along_axis(P0, top, axis=1)
            self.blk0_top = top.tolist()
            self.blk0_rsrp = _rsrp_feature(np.take_along_axis(F0, top, axis=1).astype(np.float64)).tolist()
            self.blk0_sinr = _sinr_feature(ptop / (tot[:, None] - ptop + self.noise)).tolist()
            self.blk0_tot = tot.tolist()
            self.blk0_speed = ((m[:, 0] < self.nmove[0]) * (self.leg_speed[0] / SPEED_NORM)).tolist()
        self._set_row(k0)

    def _set_row(self, k: int) -> None:
        i = self.i = k - self.blk_k0
        self.P = self.blk_P[i]
        self.Pf = self.blk_Pf[i]
        self.F = self.blk_F[i]
        self.Ff = self.blk_Ff[i]

    def positions(self) -> np.ndarray:
        """[U] complex UE positions (m) at the current step."""
        return self.p0 + self.blk_m[self.i] * self.vel

    @property
    def speed(self) -> np.ndarray:
        """[U] UE speeds (m/s) at the current step (0 while pausing)."""
        return np.where(self.blk_m[self.i] < self.nmove, self.leg_speed, 0.0)

    # ---- episode --------------------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng
        U = self.U
        self.k = 0
        self.t = 0.0
        self._leg_i = self.LEG_BLOCK
        self.F_last = None
        self.wp = self._waypoints(U)          # start positions; every UE leaves for a first waypoint at 0
        self.p0 = self.wp.copy()
        self.vel = np.zeros(U, dtype=np.complex128)
        self.p0g = np.zeros(U, dtype=np.complex128)
        self.velg = np.zeros(U, dtype=np.complex128)
        self.nmove = np.zeros(U)
        self.ks = np.zeros(U)
        self.leg_speed = np.zeros(U)
        self.ke = np.zeros(U)
        self._new_block(0)
        self.serv = self.F.argmax(axis=1)     # initial access: strongest cell
        self.prev = np.full(U, -1, dtype=np.intp)
        self.t_ho = np.full(U, -1e9)
        self.a3_cnt = np.zeros(U, dtype=np.intp)
        self.s0, self.prev0, self.tho0 = int(self.serv[0]), -1, -1e9      # UE 0 as Python scalars
        self.rand_block = rng.random((256, U))
        self.rand_i = 0
        self._loads_changed()

    def advance(self) -> None:
        k = self.k = self.k + 1
        self.t = k * self.dt
        if k >= self.blk_k1:
            self._new_block(k)
        else:
            self._set_row(k)

    # ---- loads ----------------------------------------------------------------------------------------
    def _loads_changed(self) -> None:
        self.servflat = self.rowoff + self.serv
        self.n = np.bincount(self.serv, minlength=self.C)
        self.n_list = self.n.tolist()
        self.sumsq = int(self.n @ self.n)
        self.activity = np.where(self.n > 0, 1.0, self.idle) if self.idle < 1.0 else None

    def fairness(self) -> float:
        """Jain's index of the cell loads, (sum n)^2 / (C sum n^2)."""
        return self.U * self.U / (self.C * self.sumsq)

    def handover_one(self, u: int, target: int) -> bool:
        """Hand UE u over to ``target`` (scalar fast path); returns whether it is a ping-pong."""
        s = int(self.serv[u])
        t = self.t
        pp = target == int(self.prev[u]) and t - float(self.t_ho[u]) <= self.tpp
        if u == 0:
            self.s0, self.prev0, self.tho0 = target, s, t
        self.prev[u] = s
        self.t_ho[u] = t
        self.serv[u] = target
        self.servflat[u] = u * self.C + target
        self.a3_cnt[u] = 0
        n = self.n_list
        ns, nt = n[s], n[target]
        self.sumsq += 2 * (nt - ns) + 2          # (nt + 1)^2 - nt^2 + (ns - 1)^2 - ns^2
        ns, nt = ns - 1, nt + 1
        n[s], n[target] = ns, nt
        self.n[s], self.n[target] = ns, nt
        if self.activity is not None:
            self.activity[s] = 1.0 if ns > 0 else self.idle
            self.activity[target] = 1.0
        return pp

    def apply(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hand every UE over to ``targets`` (vectorised); returns (handover, ping_pong) boolean arrays."""
        ho = targets != self.serv
        if not ho.any():
            return ho, ho
        pp = ho & (targets == self.prev) & (self.t - self.t_ho <= self.tpp)
        self.prev = np.where(ho, self.serv, self.prev)
        self.t_ho = np.where(ho, self.t, self.t_ho)
        self.serv = np.asarray(targets, dtype=np.intp).copy()
        self.a3_cnt[ho] = 0
        self.s0, self.prev0, self.tho0 = int(self.serv[0]), int(self.prev[0]), float(self.t_ho[0])
        self._loads_changed()
        return ho, pp

    # ---- fixed association rules ----------------------------------------------------------------------
    def _random_row(self) -> np.ndarray:
        if self.rand_i >= 256:
            self.rand_block = self.rng.random((256, self.U))
            self.rand_i = 0
        row = self.rand_block[self.rand_i]
        self.rand_i += 1
        return row

    def a3_triggered(self) -> np.ndarray:
        """UEs whose A3 event fires now (vectorised; per-UE time-to-trigger counters).

        Entering condition of TS 38.331 5.5.4.4 with zero cell offsets on the layer-3 filtered RSRP: the
        strongest neighbour exceeds the serving RSRP by a3-Offset + hysteresis; it must hold on ``a3_steps``
        consecutive steps.
        """
        cond = self.blk_pb[self.i] > self.Ff.take(self.servflat)
        if self.a3_db <= 0.0:
            cond &= self.F.argmax(axis=1) != self.serv
        cnt = self.a3_cnt
        cnt += 1
        cnt *= cond
        if self.single:
            cnt[0] = 0                                    # UE 0 is the agent, not a background UE
        if _MAX(cnt) < self.a3_steps:
            return _EMPTY
        return (cnt >= self.a3_steps).nonzero()[0]

    def sinr_all(self) -> np.ndarray:
        """[U, C] SINR of every UE if served by every cell, under the current cell activity."""
        P = self.P.astype(np.float64)
        if self.activity is None:
            return P / (P.sum(axis=1, keepdims=True) - P + self.noise)
        return P / ((P @ self.activity)[:, None] - self.activity * P + self.noise)

    def load_aware_targets(self, active: np.ndarray) -> np.ndarray:
        """Greedy on the estimated resource-fair rate B/(n_c + 1 - [c serving]) log2(1 + SINR_c)."""
        est = truncated_shannon(self.sinr_all(), *self.se)
        n_if = np.tile(self.n + 1.0, (self.U, 1))
        n_if[self.ar, self.serv] -= 1.0
        est /= n_if
        best = est.argmax(axis=1)
        better = est[self.ar, best] > (1.0 + LOAD_AWARE_MARGIN) * est[self.ar, self.serv]
        return np.where(active & better, best, self.serv)

    def background_moves(self) -> tuple[np.ndarray, np.ndarray]:
        """(UEs, target cells) that the background policy hands over at this step."""
        policy = self.cfg.background_policy
        if policy == "a3":
            ues = self.a3_triggered()
            return ues, (self.F[ues].argmax(axis=1) if ues.size else ues)
        if policy == "max-sinr":
            targets = self.P.argmax(axis=1) if self.activity is None else self.sinr_all().argmax(axis=1)
        else:
            targets = self.load_aware_targets(self._random_row() < LOAD_AWARE_ACTIVITY)
        ues = np.flatnonzero(targets != self.serv)
        return ues, targets[ues]

    def decide_single(self, target: int) -> tuple[bool, bool]:
        """UE 0 picks ``target``, the background UEs follow their rule; returns UE 0's (handover, ping-pong).

        The fast path of the single-agent form (A3 background with a positive margin inlined)."""
        if self.bg_fast_a3:
            cnt = self.a3_cnt
            cnt += 1
            cnt *= self.blk_pb[self.i] > self.Ff.take(self.servflat)
            cnt[0] = 0                                    # UE 0 is the agent, not a background UE
            if _MAX(cnt) >= self.a3_steps:
                ues = (cnt >= self.a3_steps).nonzero()[0]
                moves = zip(ues.tolist(), self.F[ues].argmax(axis=1).tolist(), strict=True)
            else:
                moves = ()
        else:
            ues, targets = self.background_moves()
            moves = zip(ues.tolist(), targets.tolist(), strict=True)
        ho0 = target != self.s0
        pp0 = self.handover_one(0, target) if ho0 else False
        for u, c in moves:
            if u:
                self.handover_one(u, c)
        return ho0, pp0

    # ---- observations and rates -----------------------------------------------------------------------
    def candidates_all(self) -> np.ndarray:
        """[U, K] candidates: the K strongest cells (stable descending filtered RSRP), serving forced into
        slot K-1."""
        cand = np.argsort(-self.F, axis=1, kind="stable")[:, :self.K]
        missing = ~(cand == self.serv[:, None]).any(axis=1)
        cand[missing, self.K - 1] = self.serv[missing]
        return cand

    def observe_all(self, cand: np.ndarray) -> np.ndarray:
        K = self.K
        P = self.P.astype(np.float64)
        pc = P.reshape(-1).take(cand + self.rowoff[:, None])
        if self.activity is None:
            interf = P.sum(axis=1, keepdims=True) - pc
        else:
            interf = (P @ self.activity)[:, None] - self.activity[cand] * pc
        obs = np.empty((self.U, self.obs_dim), dtype=np.float32)
        obs[:, :K] = _rsrp_feature(self.Ff.take(cand + self.rowoff[:, None]).astype(np.float64))
        obs[:, K:2 * K] = _sinr_feature(pc / (interf + self.noise))
        obs[:, 2 * K:3 * K] = self.n[cand] / LOAD_SCALE
        obs[:, 3 * K:4 * K] = cand == self.serv[:, None]
        since = self.t - self.t_ho
        recent = since <= self.tpp
        obs[:, 4 * K:5 * K] = (cand == self.prev[:, None]) & recent[:, None]
        obs[:, 5 * K] = np.minimum(since, TIME_CAP_S) / TIME_CAP_S
        obs[:, 5 * K + 1] = self.speed / SPEED_NORM
        return obs

    def observe_ue0(self) -> tuple[np.ndarray, list[int]]:
        """UE 0's observation from the block's precomputed pieces (fast path of the single-agent form)."""
        i = self.i
        cand = self.blk0_top[i]
        s = self.s0
        rsrp, sinr = self.blk0_rsrp[i], self.blk0_sinr[i]
        if s not in cand or self.activity is not None:
            cand, rsrp, sinr = self._ue0_slow(cand, s)
        n, prev = self.n_list, self.prev0
        since = self.t - self.tho0
        recent = since <= self.tpp
        out = rsrp + sinr
        out += [n[c] / LOAD_SCALE for c in cand]
        out += [1.0 if c == s else 0.0 for c in cand]
        out += [1.0 if (recent and c == prev) else 0.0 for c in cand]
        out.append((since if since < TIME_CAP_S else TIME_CAP_S) / TIME_CAP_S)
        out.append(self.blk0_speed[i])
        return np.array(out, dtype=np.float32), cand

    def _ue0_slow(self, top: list[int], s: int) -> tuple[list[int], list[float], list[float]]:
        """UE 0's candidate features when the serving cell is not among the K strongest or cells idle."""
        cand = top[:]
        if s not in cand:
            cand[self.K - 1] = s
        p = self.P[0].astype(np.float64)
        pc = p[cand]
        if self.activity is None:
            interf = self.blk0_tot[self.i] - pc
        else:
            interf = float(p @ self.activity) - self.activity[cand] * pc
        rsrp = _rsrp_feature(self.F[0, cand].astype(np.float64)).tolist()
        return cand, rsrp, _sinr_feature(pc / (interf + self.noise)).tolist()

    def rate_ue0(self) -> tuple[float, float]:
        """(rate Mbps without interruption, SINR) of UE 0 on its serving cell at the current step."""
        s = self.s0
        ps = float(self.P[0, s])
        if self.activity is None:
            interf = self.blk0_tot[self.i] - ps
        else:
            interf = float(self.P[0].astype(np.float64) @ self.activity) - float(self.activity[s]) * ps
        sinr = ps / (interf + self.noise)
        if sinr < self.sinr_min:
            return 0.0, sinr
        alpha, se_max, _ = self.se
        se = alpha * math.log2(1.0 + sinr)
        return self.bw_mbps / self.n_list[s] * (se if se < se_max else se_max), sinr

    def rates_all(self, ho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rate Mbps, SINR) of every UE on its serving cell, HO interruption included."""
        P = self.P.astype(np.float64)
        ps = P.reshape(-1).take(self.servflat)
        if self.activity is None:
            interf = P.sum(axis=1) - ps
        else:
            interf = P @ self.activity - self.activity[self.serv] * ps
        s = ps / (interf + self.noise)
        rate = self.bw_mbps / self.n[self.serv] * truncated_shannon(s, *self.se)
        rate *= 1.0 - self.int_frac * ho
        return rate, s


_EMPTY = np.zeros(0, dtype=np.intp)
_MAX = np.maximum.reduce


def _rsrp_feature(rsrp_dbm: np.ndarray) -> np.ndarray:
    """(RSRP_dBm + 80) / 40 clipped to [-3, 3] (float64 input, a new array)."""
    x = (rsrp_dbm - RSRP_REF_DBM) / RSRP_SCALE_DB
    return np.minimum(np.maximum(x, -CLIP, out=x), CLIP, out=x)


def _sinr_feature(sinr_lin: np.ndarray) -> np.ndarray:
    """SINR_dB / 20 clipped to [-3, 3]."""
    x = np.log10(sinr_lin) * (10.0 / SINR_SCALE_DB)
    return np.minimum(np.maximum(x, -CLIP, out=x), CLIP, out=x)


def _percentile(values: list[float], q: float) -> float:
    """q-th percentile with linear interpolation (numpy's default method), for short Python lists."""
    v = sorted(values)
    h = (len(v) - 1) * q / 100.0
    lo = int(h)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (h - lo) * (v[hi] - v[lo])


def _observation_space(k: int) -> spaces.Box:
    low = np.concatenate([np.full(2 * k, -CLIP), np.zeros(3 * k + 2)]).astype(np.float32)
    high = np.concatenate([np.full(2 * k, CLIP), np.full(k, MAX_UES / LOAD_SCALE), np.ones(2 * k + 2)])
    return spaces.Box(low=low, high=high.astype(np.float32), dtype=np.float32)


def _check_render_mode(render_mode: str | None) -> None:
    if render_mode is not None and render_mode != "ansi":
        raise EnvConfigError(f"render_mode={render_mode!r} is not supported; allowed: None, ansi")


def _render_text(core: _Core, ue: int) -> str:
    if core.rng is None:
        return "OranAccess (not reset)"
    s = int(core.serv[ue])
    return (f"t={core.t:.1f}s ue={ue} pos=({core.positions()[ue].real:.0f},{core.positions()[ue].imag:.0f})m "
            f"serving={s} load={core.n_list[s]} speed={core.speed[ue]:.1f}m/s fairness={core.fairness():.3f}")


# ============================================================================================================
# Gymnasium form: UE 0 is the agent, the other UEs follow the background policy
# ============================================================================================================
class OranAccessEnv(gym.Env[np.ndarray, np.int64]):
    """Single-agent O-RAN user access control (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    def __init__(self, config: OranAccessConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        self.config = resolve_config(OranAccessConfig, config, overrides)
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self._core = _Core(self.config, single=True)
        k = self.config.n_candidates
        self.observation_space = _observation_space(k)
        self.action_space = spaces.Discrete(k)
        self._cand: list[int] = []
        c = self.config
        self._costs = (float(c.ho_cost), float(c.ping_pong_cost))
        self._episode_steps = int(c.episode_steps)

    # read-only views used by the heuristics
    @property
    def candidates(self) -> list[int]:
        """Cell ids behind the K actions of the current observation."""
        return list(self._cand)

    @property
    def core(self) -> _Core:
        return self._core

    def ue_position(self, u: int = 0) -> complex:
        """Position (x + 1j y, metres) of UE u."""
        return complex(self._core.positions()[u])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        core = self._core
        core.reset(self.np_random)
        obs, self._cand = core.observe_ue0()
        return obs, {"serving_cell": int(core.serv[0]), "load_fairness": core.fairness()}

    def step(self, action):
        core = self._core
        a = discrete_action(action, core.K)
        ho0, pp0 = core.decide_single(self._cand[a])   # background UEs decide on the same measurements
        rate, sinr = core.rate_ue0()             # on the measured channel, loads after all decisions
        if ho0:
            rate *= 1.0 - core.int_frac
        w_ho, w_pp = self._costs
        reward = math.log(rate if rate > RATE_FLOOR_MBPS else RATE_FLOOR_MBPS) - w_ho * ho0 - w_pp * pp0
        info = {"throughput": rate, "handover": 1.0 if ho0 else 0.0, "ping_pong": 1.0 if pp0 else 0.0,
                "load_fairness": core.fairness(), "sinr_db": 10.0 * math.log10(sinr),
                "serving_cell": core.s0}
        core.advance()
        obs, self._cand = core.observe_ue0()
        return obs, reward, False, core.k >= self._episode_steps, info

    def render(self) -> str | None:
        return _render_text(self._core, 0) if self.render_mode == "ansi" else None


# ============================================================================================================
# PettingZoo parallel form: every UE is an agent
# ============================================================================================================
class OranAccessParallelEnv(ParallelEnv):
    """Every UE ``ue_i`` chooses its serving cell; all UEs act at once (see the module docstring)."""

    metadata = {"name": "oran_access_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(self, config: OranAccessConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        self.config = resolve_config(OranAccessConfig, config, overrides)
        _check_render_mode(render_mode)
        self.render_mode = render_mode
        self._core = _Core(self.config, single=False)
        self.possible_agents = [f"ue_{i}" for i in range(self.config.n_ues)]
        self.agents: list[str] = []
        self._obs_space = _observation_space(self.config.n_candidates)
        self._act_space = spaces.Discrete(self.config.n_candidates)
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._act_space)
        self._cand = np.zeros((self.config.n_ues, self.config.n_candidates), dtype=np.intp)
        self.np_random: np.random.Generator | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    @property
    def candidates(self) -> np.ndarray:
        """[U, K] cell ids behind every UE's actions in the current observation."""
        return self._cand

    @property
    def core(self) -> _Core:
        return self._core

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        core = self._core
        core.reset(self.np_random)
        self.agents = list(self.possible_agents)
        self._cand = core.candidates_all()
        obs = core.observe_all(self._cand)
        infos = {a: {"serving_cell": s} for a, s in zip(self.agents, core.serv.tolist(), strict=True)}
        return dict(zip(self.agents, obs, strict=True)), infos

    def step(self, actions: Mapping[str, Any]):
        core = self._core
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        try:
            a = np.array(list(map(actions.__getitem__, self.agents)), dtype=np.intp)
            low = 0
        except KeyError:                          # a missing action (-1 here) keeps the serving cell
            a = np.array([actions.get(ag, -1) for ag in self.agents], dtype=np.intp)
            low = -1
        if a.min() < low or a.max() >= core.K:
            raise ValueError(f"actions out of range; allowed: 0..{core.K - 1}")
        targets = self._cand[core.ar, a]
        stay = a < 0
        if stay.any():
            targets = np.where(stay, core.serv, targets)
        ho, pp = core.apply(targets)
        rate, s = core.rates_all(ho)
        cfg = self.config
        rew = np.log(np.maximum(rate, RATE_FLOOR_MBPS)) - cfg.ho_cost * ho - cfg.ping_pong_cost * pp
        rates, hos, pps = rate.tolist(), ho.astype(np.float64).tolist(), pp.astype(np.float64).tolist()
        U = core.U
        common = {"throughput": sum(rates) / U, "throughput_p5": _percentile(rates, 5.0),
                  "handover": sum(hos) / U, "ping_pong": sum(pps) / U, "load_fairness": core.fairness()}
        sinr_db = (10.0 * np.log10(s)).tolist()
        core.advance()
        self._cand = core.candidates_all()
        obs = core.observe_all(self._cand)
        agents = self.agents
        truncated = core.k >= cfg.episode_steps
        infos = {ag: {**common, "ue_throughput": r, "ue_handover": h, "ue_ping_pong": q, "sinr_db": d}
                 for ag, r, h, q, d in zip(agents, rates, hos, pps, sinr_db, strict=True)}
        observations = dict(zip(agents, obs, strict=True))
        rewards = dict(zip(agents, rew.tolist(), strict=True))
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        return _render_text(self._core, 0) if self.render_mode == "ansi" else None

    def close(self) -> None:
        return None


def parallel_env(config: OranAccessConfig | None = None, **overrides: Any) -> OranAccessParallelEnv:
    """PettingZoo ParallelEnv where every UE is an agent (keyword knobs override ``config``)."""
    return OranAccessParallelEnv(config, **overrides)


# ============================================================================================================
# Heterogeneous clients
# ============================================================================================================
def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: OranAccessConfig | None = None) -> list[OranAccessConfig]:
    """Build ``n_clients`` RAN-area configs around ``base`` with spread proportional to ``heterogeneity``.

    With h = heterogeneity and u ~ U(-1, 1) drawn per client and knob: ``n_ues`` x 3^(h u) (traffic
    density), ``small_cells_per_macro`` + round(2 h u), ``max_speed_mps`` and ``min_speed_mps`` x 2^(h u),
    ``shadowing_scale`` x (1 + 0.5 h u), ``ho_cost`` x 4^(h u), ``hotspot_fraction`` + 0.45 h u, each clipped
    to its legal range; for h > 0 every client is also its own area (a fresh ``layout_seed``: small-cell
    positions, LOS and shadowing fields). h = 0 returns N copies of ``base``. K (``n_candidates``) and the
    timing stay fixed, so every client has the same observation and action spaces. Randomness only from
    ``np.random.default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = OranAccessConfig() if base is None else base
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    if h == 0.0:
        return [base for _ in range(int(n_clients))]

    def clip(name: str, v: float) -> float:
        return clip_knob(OranAccessConfig, name, v)

    out = []
    for _ in range(int(n_clients)):
        u = rng.uniform(-1.0, 1.0, 7)
        n_ues = int(round(clip("n_ues", base.n_ues * 3.0 ** (h * u[0]))))
        smalls = int(round(clip("small_cells_per_macro", base.small_cells_per_macro + 2.0 * h * u[1])))
        vmax = clip("max_speed_mps", base.max_speed_mps * 2.0 ** (h * u[2]))
        vmin = min(clip("min_speed_mps", base.min_speed_mps * 2.0 ** (h * u[3])), vmax)
        out.append(replace(
            base, n_ues=n_ues, small_cells_per_macro=smalls, min_speed_mps=vmin, max_speed_mps=vmax,
            shadowing_scale=clip("shadowing_scale", base.shadowing_scale * (1.0 + 0.5 * h * u[4])),
            ho_cost=clip("ho_cost", base.ho_cost * 4.0 ** (h * u[5])),
            hotspot_fraction=clip("hotspot_fraction", base.hotspot_fraction + 0.45 * h * u[6]),
            layout_seed=int(rng.integers(0, 2**31 - 1))))
    return out


# ============================================================================================================
# Heuristic baselines
# ============================================================================================================
def _decode(obs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(RSRP dBm, SINR linear, loads, serving flags) from (a batch of) observations."""
    obs = np.asarray(obs, dtype=np.float64)
    rsrp = obs[..., :k] * RSRP_SCALE_DB + RSRP_REF_DBM
    s = 10.0 ** (obs[..., k:2 * k] * SINR_SCALE_DB / 10.0)
    loads = np.rint(obs[..., 2 * k:3 * k] * LOAD_SCALE)
    serving = obs[..., 3 * k:4 * k] > 0.5
    return rsrp, s, loads, serving


def _load_aware_choice(obs: np.ndarray, cfg: OranAccessConfig) -> np.ndarray:
    """Greedy on the estimated resource-fair rate, the env's truncated Shannon rate over n_c + 1 UEs."""
    k = cfg.n_candidates
    _, s, loads, serving = _decode(obs, k)
    est = truncated_shannon(s, cfg.se_alpha, cfg.se_max_bps_hz, cfg.sinr_min_db) / (loads + 1.0 - serving)
    best = est.argmax(axis=-1)
    cur = serving.argmax(axis=-1)
    est_best = np.take_along_axis(est, best[..., None], -1)[..., 0]
    est_cur = np.take_along_axis(est, cur[..., None], -1)[..., 0]
    return np.where(est_best > (1.0 + LOAD_AWARE_MARGIN) * est_cur, best, cur)


class _A3State:
    """Per-UE A3 time-to-trigger counters over candidate-list observations (TS 38.331 5.5.4.4).

    Same rule as the env's background UEs: the strongest neighbour must exceed the serving RSRP by
    a3-Offset + hysteresis on 1 + ceil(TTT / step) consecutive steps; the UE then hands over to it.
    """

    def __init__(self, n: int, cfg: OranAccessConfig) -> None:
        self.gain_db = cfg.a3_offset_db + cfg.a3_hysteresis_db
        self.steps = 1 + math.ceil(cfg.a3_ttt_s / cfg.step_s - 1e-9)
        self.cnt = np.zeros(n, dtype=np.intp)

    def act(self, obs: np.ndarray, k: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        rsrp, _, _, serving = _decode(obs, k)
        cur = serving.argmax(axis=-1)
        best = rsrp.argmax(axis=-1)
        ar = np.arange(best.size)
        cond = (best != cur) & (rsrp[ar, best] - rsrp[ar, cur] > self.gain_db)
        cnt = np.where(cond, self.cnt[rows] + 1, 0)
        fire = cnt >= self.steps
        self.cnt[rows] = np.where(fire, 0, cnt)
        return np.where(fire, best, cur)


def _baseline_max_sinr(env: gym.Env, seed: int) -> Policy:
    k = env.unwrapped.config.n_candidates
    return lambda obs: int(np.argmax(np.asarray(obs)[k:2 * k]))


def _baseline_a3(env: gym.Env, seed: int) -> Policy:
    base = env.unwrapped
    state = _A3State(1, base.config)
    k = base.config.n_candidates

    def policy(obs: np.ndarray) -> int:
        if base.core.k == 0:                     # a new episode: forget the time-to-trigger state
            state.cnt[:] = 0
        return int(state.act(np.asarray(obs)[None, :], k)[0])

    return policy


def _baseline_load_aware(env: gym.Env, seed: int) -> Policy:
    cfg = env.unwrapped.config
    return lambda obs: int(_load_aware_choice(obs, cfg))


def _baseline_nearest(env: gym.Env, seed: int) -> Policy:
    base = env.unwrapped
    cell_pos = base.core.dep.cell_pos

    def policy(obs: np.ndarray) -> int:
        cand = base.candidates
        return int(np.argmin(np.abs(cell_pos[cand] - base.ue_position(0))))

    return policy


def _baseline_random(env: gym.Env, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    k = env.unwrapped.config.n_candidates
    return lambda obs: int(rng.integers(k))


BASELINES: dict[str, BaselineFactory] = {
    "max-sinr": _baseline_max_sinr,
    "a3": _baseline_a3,
    "load-aware": _baseline_load_aware,
    "nearest": _baseline_nearest,
    "random": _baseline_random,
}


# ---- parallel-form baselines: (env, seed) -> (obs_dict) -> action_dict ----------------------------------
ParallelPolicy = Callable[[Mapping[str, np.ndarray]], dict[str, int]]


def _stack(obs: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    agents = list(obs)
    return agents, np.stack([obs[a] for a in agents]) if agents else np.zeros((0, 1))


def _parallel_max_sinr(env: OranAccessParallelEnv, seed: int) -> ParallelPolicy:
    k = env.config.n_candidates

    def policy(obs):
        agents, x = _stack(obs)
        return dict(zip(agents, x[:, k:2 * k].argmax(axis=1).tolist(), strict=True))

    return policy


def _parallel_a3(env: OranAccessParallelEnv, seed: int) -> ParallelPolicy:
    k = env.config.n_candidates
    state = _A3State(env.config.n_ues, env.config)
    index = {a: i for i, a in enumerate(env.possible_agents)}

    def policy(obs):
        if env.core.k == 0:
            state.cnt[:] = 0
        agents, x = _stack(obs)
        rows = np.fromiter((index[a] for a in agents), dtype=np.intp, count=len(agents))
        return dict(zip(agents, state.act(x, k, rows).tolist(), strict=True))

    return policy


def _parallel_load_aware(env: OranAccessParallelEnv, seed: int) -> ParallelPolicy:
    """Greedy rate-based association; each UE re-decides with probability 0.2 per step (asynchronous
    decisions avoid the herding oscillation of simultaneous greedy moves)."""
    k = env.config.n_candidates
    rng = np.random.default_rng(seed)

    def policy(obs):
        agents, x = _stack(obs)
        _, _, _, serving = _decode(x, k)
        cur = serving.argmax(axis=1)
        act = np.where(rng.random(len(agents)) < LOAD_AWARE_ACTIVITY, _load_aware_choice(x, env.config), cur)
        return dict(zip(agents, act.tolist(), strict=True))

    return policy


def _parallel_nearest(env: OranAccessParallelEnv, seed: int) -> ParallelPolicy:
    index = {a: i for i, a in enumerate(env.possible_agents)}

    def policy(obs):
        agents = list(obs)
        rows = np.fromiter((index[a] for a in agents), dtype=np.intp, count=len(agents))
        cand = env.candidates[rows]
        dist = np.abs(env.core.dep.cell_pos[cand] - env.core.positions()[rows, None])
        return dict(zip(agents, dist.argmin(axis=1).tolist(), strict=True))

    return policy


def _parallel_random(env: OranAccessParallelEnv, seed: int) -> ParallelPolicy:
    rng = np.random.default_rng(seed)
    k = env.config.n_candidates

    def policy(obs):
        agents = list(obs)
        return dict(zip(agents, rng.integers(0, k, len(agents)).tolist(), strict=True))

    return policy


PARALLEL_BASELINES: dict[str, Callable[[OranAccessParallelEnv, int], ParallelPolicy]] = {
    "max-sinr": _parallel_max_sinr,
    "a3": _parallel_a3,
    "load-aware": _parallel_load_aware,
    "nearest": _parallel_nearest,
    "random": _parallel_random,
}


ENTRY = EnvEntry(
    env_id="frl/OranAccess-v0",
    name="oran-access",
    entry_point="envs.oran_access:OranAccessEnv",
    config_cls=OranAccessConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("throughput", "handover", "ping_pong", "load_fairness"),
    lower_is_better=("handover", "ping_pong"),
    summary="O-RAN user access control: a UE picks its serving cell among its K strongest (TR 38.901, A3)",
    parallel_entry_point="envs.oran_access:parallel_env",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)
