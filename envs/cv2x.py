"""C-V2X sidelink spectrum sharing: V2V links choose a resource block and a power level under V2I traffic.

## Description

One federated client is one road area around one base station (BS). ``n_rb`` vehicle-to-infrastructure
(V2I) uplinks each own one resource block (RB); ``n_v2v`` vehicle-to-vehicle (V2V) links share those RBs and
must each deliver a payload of ``payload_bytes`` within ``deadline_ms`` (one V2X message period). Every
1 ms slot each V2V link picks an RB and a transmit power level; the aim is to deliver every V2V payload in
time while hurting the V2I links as little as possible. This is the model of Liang, Ye & Li [1] (the setting
federated in [2]); mobility and channels follow 3GPP TR 36.885 [3].

**Mobility** [3] A.1.2: ``scenario="urban"``: a Manhattan grid of 3 x 3 blocks of 250 m x 433 m (area
750 m x 1299 m, wrap-around), roads with 2 lanes per direction of 3.5 m, right-hand traffic; at every
intersection a vehicle goes straight with probability 0.5 and turns left / right with 0.25 each.
``scenario="highway"``: a 2000 m freeway (wrap-around) with 3 lanes per direction of 4 m, no turns.
Vehicles are dropped uniformly on the lanes (``vehicle_density`` per km of lane: 49 vehicles in the urban
area at the default 2) with speeds uniform in [``speed_min_kmh``, ``speed_max_kmh``]. The BS is at the
centre of the urban area [1]; on the highway it is 35 m beside the road at mid-length (design). Positions
and large-scale channels are updated once per message period (100 ms, as in [1] and [3]).

**Links** (re-formed every period). The V2V links are those of one neighbourhood, so that they contend for
the RBs: the transmitters are an ego vehicle (vehicle 0, the gymnasium agent's ``link_0``) and its
``n_v2v - 1`` nearest vehicles; each receiver is the nearest vehicle that transmits nothing (the neighbour of
[1]; excluding transmitters avoids half-duplex conflicts). The V2I users (V2I link m on RB m) are
``n_rb`` other vehicles drawn anywhere in the area (cell users). Design: with V2V links scattered over the
whole area their mutual interference would be negligible. ``link_geometry="v2i-vehicles"`` (the companion
code of [1]): vehicles 0..M-1 are the V2I users (vehicle m on RB m) and V2V link k is sent by V2I vehicle k
to its nearest other V2I vehicle, so the link lengths do not shrink with the density; a vehicle's own
transmission reaches itself with an extra 50 dB loss (the code's ``+ 50 * identity``).

**Background V2V traffic** (``bg_v2v_duty`` > 0): every other vehicle sends in each slot with that
probability on a random RB at the maximum V2V power, interfering with the V2V receivers and the BS (drawn
per period, i.i.d. Rayleigh per slot). The V2V load then grows with the density: the contention that the
agents' K links alone do not add.

**Channels** ([1] Table I-II, [3] Table A.1.4-1). Gain = antenna gains - path loss - shadowing + fast fading:

* V2I: ``PL = 128.1 + 37.6 log10(d / 1 km)`` with ``d`` the 3-D distance (BS 25 m, vehicle 1.5 m high);
  log-normal shadowing ``shadow_std_v2i_db`` (8 dB).
* V2V: WINNER+ B1 [4] with effective antenna heights ``h' = h - 1 m`` and breakpoint ``d'_BP = 4 h'h' f_c/c``:
  LOS ``PL = 22.7 log10 d + 41 + 20 log10(f_c/5)`` below ``d'_BP`` and
  ``40 log10 d + 9.45 - 17.3 log10 h'_tx - 17.3 log10 h'_rx + 2.7 log10(f_c/5)`` beyond (``d >= 3 m`` [3]);
  urban NLOS (Manhattan) ``min(PL(d_x, d_y), PL(d_y, d_x))`` with
  ``PL(d_k, d_l) = PL_LOS(d_k) + 20 - 12.5 n_j + 10 n_j log10 d_l + 3 log10(f_c/5)``,
  ``n_j = max(2.8 - 0.0024 d_k, 1.84)``; LOS when both vehicles are on the same road
  (``min(|dx|, |dy|) <`` road width 14 m); the highway is LOS everywhere [3]. Shadowing
  ``shadow_std_v2v_db`` (3 dB).
* Shadowing evolves with the Gudmundson model [5]: ``S <- rho S + sqrt(1 - rho^2) N(0, sigma^2)``,
  ``rho = exp(-dd / d_corr)``, ``dd`` the distance driven (per vehicle for V2I; the sum of both vehicles'
  distances for a V2V pair, as in [1]), ``d_corr`` 50 m (V2I) / 10 m (V2V). V2V pair states are kept for
  every vehicle pair and brought up to date when the pair is next used (exact composition of the AR(1)).
* Fast fading: Rayleigh, power gain ``|h|^2 ~ Exp(1)`` independently per link and RB [1], as block fading
  over the coherence time ``T_c = 0.423 / f_D`` [7] rounded to whole 1 ms slots (at least 1), with
  ``f_D = v f_c / c`` (V2I) or ``(v_tx + v_rx) f_c / c`` (V2V) and a random block phase per link. At the
  default urban speeds a gain lasts about 2-6 slots; on the highway it is redrawn every slot as in [1].
  Speed therefore sets how stale the previous-slot interference in the observation is.
* Large-scale gains are capped at 0 dB and fading powers at 50 (probability 2e-22), which keeps every
  observation feature provably inside its bounds.

**Rates** ([1] eq. (1)-(5)): per RB of ``rb_bandwidth_mhz`` (1 MHz), noise ``noise_dbm`` (-114 dBm) plus the
receiver noise figure (BS 5 dB, vehicle 9 dB), antenna gains 8 dBi (BS) / 3 dBi (vehicle). V2I link m
(23 dBm on RB m) is interfered by every V2V transmitter on RB m; V2V link k is interfered by the V2I
transmitter of its RB and by every other V2V transmitter on that RB. ``C = B log2(1 + SINR)``. A V2V link
transmits until its payload is delivered and is silent afterwards [1]. Interference is one
``[K tx, 2K+1 rx] x [K tx, R]`` product per slot (receivers: own signals, V2V receivers, BS).

## Action Space

``Discrete(n_rb * n_power)`` per V2V link: ``a = rb * n_power + p`` with ``rb`` in ``[0, n_rb)`` and ``p``
indexing ``v2v_power_levels_dbm`` = (23, 15, 5, -100) dBm [1] (-100 dBm is "off").

## Observation Space

``Box(float32, (3 * n_rb + 2,))``, per V2V link, describing the coming slot (the local state of [1]
Sec. III-A: current channels, previous interference, remaining payload and time):

| index              | feature                                                        | normalisation, bounds      |
|--------------------|----------------------------------------------------------------|----------------------------|
| ``[0, R)``         | own V2V channel gain on each RB (dB, incl. fading and antennas)| ``(g + 100) / 20``, [-5, 5]|
| ``[R, 2R)``        | channel gain from this V2V transmitter to the BS on each RB    | ``(g + 100) / 20``, [-5, 5]|
| ``[2R, 3R)``       | interference + noise received on each RB in the previous slot  | ``(I_dBm + 90) / 10``,     |
|                    |                                                                | [-5, 20]                   |
| ``3R``             | remaining payload / payload                                    | [0, 1]                     |
| ``3R + 1``         | remaining time / deadline                                      | [0, 1]                     |
| ``[3R+2, 3R+2+K)`` | one-hot link id k (only with ``agent_id_obs=True``)            | {0, 1}                     |

The space is ``(3 * n_rb + 2 + n_v2v,)`` with ``agent_id_obs``: the agent indication of Terry et al. [8], so
that one shared-parameter network can give different links different actions in the same conditions (e.g.
split the RBs); [1] trains one DQN per link instead and adds a training fingerprint (episode, epsilon) to
the state, which belongs to the learner, not the env. Gain features are clipped to their bounds. In the first
slot of a period the "previous slot" is the V2I-only interference (large-scale mean), as no V2V link
transmitted yet.

## Rewards

Shared by all links ([1] eq. (12)-(14)): ``r = lambda_c * sum_m C_m / (10 M) + (1 - lambda_c) *
sum_k L_k / K`` with capacities in bit/s/Hz, ``L_k = C_k / 10`` while link k still has payload and
``L_k = delivered_reward`` (beta = 1) once delivered (also in the slot that completes it), as in the
companion code of [1]; ``lambda_c = v2i_weight`` (the companion code trains with 0; 0.1 here so that V2I
capacity counts). ``info`` carries raw KPIs every step:

* ``v2i_capacity``: sum V2I capacity (Mbit/s); ``v2v_rate``: sum V2V rate (Mbit/s);
* ``v2v_delivery``: fraction of V2V links delivered so far (running value);
* ``v2v_delivery_prob``: ``(links completed this slot / K) * slots_per_period``; its per-step mean over a
  whole period equals the fraction of links delivered by the deadline, the V2V delivery probability of [1]
  Fig. 5, so the suite's per-step KPI averaging reports it exactly;
* on the last slot also ``v2v_delivered_at_deadline`` (the fraction delivered); gymnasium form:
  ``link_delivered`` (link 0 done).

## Starting State

``reset(seed=...)`` drops a new world (vehicles, shadowing); ``reset()`` without a seed continues the
world: vehicles drive one message period on, shadowing evolves, links are re-formed. Every reset starts a
new period with full payloads and fresh fast fading.

## Episode End

Never terminates; truncated after ``deadline_ms`` slots (one message period, 100 slots by default).

## Two forms

* ``parallel_env(**config)``: PettingZoo ``ParallelEnv`` with every V2V link an agent ``link_0`` ..; the
  main form (multi-agent RL as in [1]). ``PARALLEL_BASELINES``: ``(env, seed) -> (obs_dict) -> actions``.
* ``CV2XEnv``: gymnasium form; the agent controls ``link_0`` and the other links follow
  ``background_policy`` ("sps" by default: 3GPP sensing-based semi-persistent scheduling). The background
  links act on their own observations exactly as the same baseline does on the parallel form.

## Baselines

``random`` (uniform over all actions, "off" included [1]), ``greedy`` (RB with the best own gain, maximum
power), ``round-robin`` (link k on RB (k + t) mod R, maximum power), ``sps`` (TS 36.213 14.1.1.6 [6], see
``_SPSLinks``) and ``exhaustive`` (oracle with the true channels: every slot it scores all joint (RB, power)
choices of the active links - parallel form, at most 4 links and 65536 joint actions, else
``EnvConfigError`` - or, in the gymnasium form, all choices of link 0 given the background links' actions;
the score replaces the myopic V2V term by ``beta * slots left * min(1, share of the remaining payload sent
now)``, because the slot reward alone prefers silencing a weak link to pushing its payload). It is a
per-slot oracle, not an optimum over the period: at K = 3 it beats greedy on 9 of 10 seeds.

## Arguments

``CV2XEnv(config: CV2XConfig | None = None, render_mode: str | None = None, **overrides)``; overrides replace
fields of ``config`` through ``envs.knobs.apply_overrides`` (unknown names raise ``EnvConfigError``). Knobs
(default, unit, legal range, source; generated from the ``CV2XConfig`` field declarations by
``envs.knobs.knob_table``):

{knob_table}

Presets (``CV2XConfig.preset(name, **overrides)``): ``"urban"``, ``"highway"`` (70-140 km/h [3]) and
``"liang2019"``, the setup of [1]: Table I (2 GHz, 4 RBs of 1 MHz, M = K = 4, BS 25 m / 8 dBi / 5 dB,
vehicle 1.5 m / 3 dBi / 9 dB, 23 dBm V2I, 36-54 km/h, 100 ms) with the links of its companion code
(``link_geometry="v2i-vehicles"``). Where paper and code differ: the code halves the TR 36.885 grid
(375 m x 649 m, lanes 1.75 m, LOS within 7 m: followed, ``grid_scale=0.5``; at full size many V2I-vehicle
pairs are too far apart for any policy); the code drops only the 4 V2I vehicles, the paper a TR 36.885 drop:
followed the paper, at TR 36.885's density (spacing 2.5 s x mean speed: 32 veh/km/lane, ``tr36885_density``),
the other vehicles carrying background V2V traffic with ``bg_v2v_duty`` 0.01 (a 300-byte TR 36.885 A.2
message per 100 ms is one 1 ms slot of a 1 MHz RB at ~2.4 bit/s/Hz; design); the paper lists V2V powers
[23, 10, 5] dBm, the code [23, 15, 5, -100]: followed the code (as the default); the code turns at
intersections with probability 0.4 each way, kept TR 36.885's 0.25; the code puts the BS at the corner
of its half grid, kept the centre [1]. The payload ``payload_bytes`` keeps the code's 2 x 1060 bytes;
[1] Fig. 4-5 sweep it over 1-8 x 1060 bytes (inside its range). There random resource selection delivers
clearly less than greedy/SPS at 4-8 x 1060 bytes and the per-slot exhaustive oracle more than both
(``tests/envs/test_cv2x_liang2019.py``). For federation all
clients must share ``n_rb``, ``n_v2v`` and the power levels (they fix the spaces); ``make_client_configs``
varies speed, density, shadowing, payload and ``v2i_weight``, and at heterogeneity > 0.5 turns a share of the
clients into highway areas.

## References

1. L. Liang, H. Ye, G. Y. Li, "Spectrum sharing in vehicular networks based on multi-agent reinforcement
   learning", IEEE J. Sel. Areas Commun. 37(10), 2282-2292, 2019 (system model eq. (1)-(5), state Sec. III,
   reward eq. (12)-(14), Table I-II parameters; companion code le-liang/MARLspectrumSharingV2X).
2. Gupta & Fernando, 2024: federated reinforcement learning for C-V2X resource allocation (per-link agents
   of the [1] model trained with federated averaging).
3. 3GPP TR 36.885 V14.0.0, "Study on LTE-based V2X services", 2016, Annex A (A.1.2 urban grid and freeway
   layouts, turning probabilities, Table A.1.4-1 channel models and shadowing).
4. WINNER II D1.1.2 / WINNER+ D5.3, scenario B1 (urban micro, Manhattan) path loss, Table 4-4.
5. M. Gudmundson, "Correlation model for shadow fading in mobile radio systems", Electron. Lett. 27(23),
   1991 (exponential shadowing autocorrelation).
6. 3GPP TS 36.213 V14, Sec. 14.1.1.6 (sidelink mode 4 resource selection: sensing, exclusion above an
   RSRP threshold raised by 3 dB until 20 % remain, random choice among the 20 % lowest S-RSSI,
   reselection counter uniform in [5, 15]).
7. T. S. Rappaport, "Wireless Communications: Principles and Practice", 2nd ed., 2002, Sec. 5.4.3
   (coherence time T_c = 0.423 / f_m).
8. J. K. Terry, N. Grammel, S. Son, B. Black, A. Agrawal, "Revisiting parameter sharing in multi-agent deep
   reinforcement learning", arXiv:2005.13625, 2020 (agent indication: a one-hot agent id appended to the
   observation of a shared network).

## Version History

* v0: initial version.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.cv2x_channel import (
    _LAYOUTS,
    FADING_MAX,
    _block_rayleigh,
    _lane_km,
    _Layout,
    pathloss_v2i_db,
    pathloss_v2v_db,
)
from envs.knobs import KnobConfig, apply_overrides, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_render_mode, discrete_action

__all__ = [
    "BASELINES",
    "ENTRY",
    "PARALLEL_BASELINES",
    "CV2XConfig",
    "CV2XEnv",
    "CV2XParallelEnv",
    "make_client_configs",
    "parallel_env",
]

SCENARIOS = ("urban", "highway")
BACKGROUND_POLICIES = ("sps", "random", "greedy", "round-robin")

LINK_GEOMETRIES = ("neighbourhood", "v2i-vehicles")

# TR 36.885 A.1.2 vehicle drop: inter-vehicle distance 2.5 s x absolute speed (per lane)
TR36885_HEADWAY_S = 2.5


def tr36885_density(speed_min_kmh: float, speed_max_kmh: float) -> float:
    """Vehicles per km of lane of TR 36.885 A.1.2 [3]: spacing ``2.5 s x`` the mean absolute speed.

    36-54 km/h (mean 12.5 m/s): 31.25 m, 32 veh/km/lane; 70-140 km/h (29.2 m/s): 13.7 veh/km/lane.
    """
    v = 0.5 * (speed_min_kmh + speed_max_kmh) / 3.6
    return 1000.0 / (TR36885_HEADWAY_S * v)


# presets: fields that change with the scenario (speeds of TR 36.885 A.1.2), and the setup of [1]
_PRESETS: dict[str, dict[str, Any]] = {
    "urban": {"scenario": "urban", "speed_min_kmh": 36.0, "speed_max_kmh": 54.0},
    "highway": {"scenario": "highway", "speed_min_kmh": 70.0, "speed_max_kmh": 140.0},
    # Liang, Ye & Li [1] Table I with the V2V links of their companion code (see the module docstring):
    # the V2V transmitters are the V2I vehicles, TR 36.885 density, background V2V traffic of the other cars
    "liang2019": {"scenario": "urban", "speed_min_kmh": 36.0, "speed_max_kmh": 54.0, "n_rb": 4, "n_v2v": 4,
                  "link_geometry": "v2i-vehicles", "grid_scale": 0.5,
                  "vehicle_density": round(tr36885_density(36.0, 54.0), 2),
                  "bg_v2v_duty": 0.01, "payload_bytes": 2120.0, "v2i_weight": 0.1},
}
PRESETS = tuple(_PRESETS)


@dataclass(frozen=True)
class CV2XConfig(KnobConfig):
    """Physical parameters of one C-V2X area; default, unit, legal range and source per knob: ``knob_table``."""

    scenario: str = knob("urban", choices=SCENARIOS, unit="-",
                         source="TR 36.885 A.1.2 urban grid / freeway [3]")
    n_rb: int = knob(4, 1, 16, integer=True, unit="RBs", source="M V2I links, one pre-assigned RB each; 4 [1] Table I")
    n_v2v: int = knob(4, 1, 16, integer=True, unit="links", source="K V2V links (agents); 4 [1] Table I")
    vehicle_density: float = knob(2.0, 0.5, 50.0, unit="veh/km/lane",
                                  source="49 vehicles in the urban area at 2 (design, sparse traffic); TR 36.885 "
                                         "A.1.2 [3]: spacing 2.5 s x speed, 32 at 36-54 km/h (liang2019 preset)")
    speed_min_kmh: float = knob(36.0, 1.0, 250.0, unit="km/h",
                                source="36-54 km/h (10-15 m/s) [1]; highway 70-140 km/h [3]")
    speed_max_kmh: float = knob(54.0, 1.0, 250.0, unit="km/h",
                                source="36-54 km/h (10-15 m/s) [1]; highway 70-140 km/h [3]")
    shadow_std_v2i_db: float = knob(8.0, 0.0, 16.0, unit="dB", source="8 dB [1] Table II, [3]")
    shadow_std_v2v_db: float = knob(3.0, 0.0, 12.0, unit="dB", source="3 dB [1] Table II, [3]")
    decorr_v2i_m: float = knob(50.0, 1.0, 1000.0, unit="m", source="50 m [1] Table II, [3]")
    decorr_v2v_m: float = knob(10.0, 1.0, 1000.0, unit="m", source="10 m [1] Table II, [3]")
    payload_bytes: float = knob(2120.0, 1.0, 50_000.0, unit="bytes", source="2 x 1060 bytes per period [1] Table I")
    deadline_ms: int = knob(100, 10, 1000, integer=True, unit="ms (slots)",
                            source="100 ms latency constraint [1] Table I")
    v2i_weight: float = knob(0.1, 0.0, 1.0, unit="-", source="lambda_c of [1] eq. (14); lambda_d = 1 - lambda_c")
    delivered_reward: float = knob(1.0, 0.0, 10.0, unit="-", source="beta of [1] eq. (13); 1 in the companion code")
    carrier_ghz: float = knob(2.0, 0.5, 6.0, unit="GHz", source="2 GHz [1] Table I")
    rb_bandwidth_mhz: float = knob(1.0, 0.18, 20.0, unit="MHz", source="1 MHz per RB (4 MHz in total) [1] Table I")
    noise_dbm: float = knob(-114.0, -130.0, -80.0, unit="dBm", source="-114 dBm per RB [1] Table I")
    v2i_power_dbm: float = knob(23.0, -10.0, 33.0, unit="dBm", source="23 dBm [1] Table I")
    bs_antenna_gain_dbi: float = knob(8.0, 0.0, 25.0, unit="dBi", source="8 dBi [1] Table I")
    bs_noise_figure_db: float = knob(5.0, 0.0, 15.0, unit="dB", source="5 dB [1] Table I")
    veh_antenna_gain_dbi: float = knob(3.0, -5.0, 10.0, unit="dBi", source="3 dBi [1] Table I")
    veh_noise_figure_db: float = knob(9.0, 0.0, 20.0, unit="dB", source="9 dB [1] Table I")
    bs_height_m: float = knob(25.0, 5.0, 100.0, unit="m", source="25 m [1] Table I")
    veh_height_m: float = knob(1.5, 1.1, 5.0, unit="m",
                               source="1.5 m [1] Table I (> 1 m: WINNER+ effective height h - 1 m)")
    sps_threshold_dbm: float = knob(-100.0, -130.0, -30.0, unit="dBm",
                                    source="exclusion threshold of the SPS background [6] (design)")
    background_policy: str = knob("sps", choices=BACKGROUND_POLICIES, unit="-",
                                  source="policy of links 1.. in the gymnasium form CV2XEnv")
    link_geometry: str = knob("neighbourhood", choices=LINK_GEOMETRIES, unit="-",
                              source="V2V transmitters: ego + nearest vehicles (design) / the V2I vehicles, "
                                     "receiver the nearest other V2I vehicle ([1] companion code)")
    grid_scale: float = knob(1.0, 0.25, 1.0, unit="-",
                             source="road layout scale: 1 = TR 36.885 A.1.2 [3] ([1] paper); 0.5 = [1] companion "
                                    "code (375 m x 649 m grid, lanes 1.75 m)")
    bg_v2v_duty: float = knob(0.0, 0.0, 0.2, unit="1/slot",
                              source="share of slots each other vehicle sends V2V traffic (random RB, max power): "
                                     "V2V load grows with density (design; TR 36.885 A.2 periodic messages)")
    agent_id_obs: bool = knob(False, unit="-",
                              source="append a one-hot link id (K features) to each observation, for parameter "
                                     "sharing (Terry et al. 2020 [8]; design, off as in [1])")
    v2v_power_levels_dbm: tuple[float, ...] = knob((23.0, 15.0, 5.0, -100.0), -150.0, 33.0, length=(1, 8),
                                                   unit="dBm", source="V2V power levels [1] (companion code), "
                                                                      "-100 = off")

    def check_constraints(self) -> None:
        if self.link_geometry == "v2i-vehicles" and (self.n_rb < 2 or self.n_v2v > self.n_rb):
            raise EnvConfigError(f"link_geometry='v2i-vehicles' needs 2 <= n_rb and n_v2v <= n_rb (the V2V "
                                 f"transmitters are V2I vehicles), got n_rb={self.n_rb!r}, n_v2v={self.n_v2v!r}")
        if self.speed_min_kmh > self.speed_max_kmh:
            raise EnvConfigError(f"speed_min_kmh={self.speed_min_kmh!r} exceeds speed_max_kmh="
                                 f"{self.speed_max_kmh!r}; allowed: speed_min_kmh <= speed_max_kmh")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> CV2XConfig:
        """Config of a preset: "urban" (36-54 km/h [1]), "highway" (70-140 km/h [3]) or "liang2019" ([1] Table I,
        companion-code links, TR 36.885 density; see the module docstring); ``overrides`` applied last."""
        if name not in _PRESETS:
            raise EnvConfigError(f"preset={name!r} is not allowed; allowed: {', '.join(PRESETS)}")
        return apply_overrides(cls(), {**_PRESETS[name], **overrides})


V2I_SHADOW_STD_DB = (4.0, 10.0)
"""Realistic range of the V2I log-normal shadowing deviation: 4 dB (ITU-R M.2135-1 Table A1-2, UMa LOS) to
10 dB (3GPP TR 36.942 Sec. 4.5 macro cell, 10 dB); [1] and [3] use 8 dB."""


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: CV2XConfig | None = None) -> list[CV2XConfig]:
    """Build ``n_clients`` area configs around ``base`` with spread proportional to ``heterogeneity``.

    At heterogeneity ``h``: speeds (both ends), vehicle density, both shadowing deviations and the payload are
    scaled by ``2**(h * U(-1, 1))`` (up to x/÷2 at h = 1; the V2I shadowing deviation then clamped to
    ``V2I_SHADOW_STD_DB`` = [4, 10] dB, widened to include the base value) and ``v2i_weight`` is shifted by
    ``0.1 h U(-1, 1)``; values are clipped to their legal ranges. For ``h > 0.5`` a share ``h - 0.5`` of the
    clients (rounded, chosen at random) become highway areas (their speeds start from the highway preset) - the large
    heterogeneity of urban vs highway traffic. ``n_rb``, ``n_v2v`` and the power levels stay fixed (they set
    the spaces every client of a federation must share). ``h = 0`` returns copies of ``base``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else CV2XConfig()
    if not isinstance(base, CV2XConfig):
        raise EnvConfigError(f"base={base!r} must be a CV2XConfig")
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    n = int(n_clients)
    names = ("speed", "vehicle_density", "shadow_std_v2i_db", "shadow_std_v2v_db", "payload_bytes")
    mult = {name: np.exp2(h * rng.uniform(-1.0, 1.0, size=n)) for name in names}
    shift = 0.1 * h * rng.uniform(-1.0, 1.0, size=n)
    n_highway = int(round(max(0.0, h - 0.5) * n)) if base.scenario == "urban" else 0
    highway = set(rng.permutation(n)[:n_highway].tolist())

    def clip(name: str, value: float) -> float:
        return clip_knob(CV2XConfig, name, value)

    # V2I shadowing spread clamped to measured macro-cell values (never tighter than the base itself)
    sh_lim = (min(base.shadow_std_v2i_db, V2I_SHADOW_STD_DB[0]), max(base.shadow_std_v2i_db, V2I_SHADOW_STD_DB[1]))
    out = []
    for i in range(n):
        c = apply_overrides(base, _PRESETS["highway"]) if i in highway else base
        s = float(mult["speed"][i])
        out.append(dataclasses.replace(
            c,
            speed_min_kmh=clip("speed_min_kmh", c.speed_min_kmh * s),
            speed_max_kmh=clip("speed_max_kmh", c.speed_max_kmh * s),
            vehicle_density=clip("vehicle_density", c.vehicle_density * mult["vehicle_density"][i]),
            shadow_std_v2i_db=float(np.clip(c.shadow_std_v2i_db * mult["shadow_std_v2i_db"][i], *sh_lim)),
            shadow_std_v2v_db=clip("shadow_std_v2v_db", c.shadow_std_v2v_db * mult["shadow_std_v2v_db"][i]),
            payload_bytes=clip("payload_bytes", c.payload_bytes * mult["payload_bytes"][i]),
            v2i_weight=clip("v2i_weight", c.v2i_weight + shift[i]),
        ))
    return out


# observation normalisation (module constants: the same for every client of a federation)
GAIN_REF_DB = -100.0
GAIN_SCALE_DB = 20.0
INTF_REF_DBM = -90.0      # interference feature log10(I / 1 mW) + 9 = (I_dBm + 90) / 10
INTF_LOW = -5.0           # >= -4 since I >= noise >= -130 dBm
INTF_HIGH = 20.0          # I <= 32 tx x 33 dBm x gain <= 0 dB x fading <= 50: <= 65 dBm, feature <= 15.5
GAIN_MAX = 1.0            # large-scale gain cap (0 dB incl. antennas; a passive channel)
_LOG2E = 1.0 / math.log(2.0)
OBS_CLIP = 5.0
SELF_ISOLATION_DB = 50.0  # extra loss of a vehicle's own transmission at itself ([1] companion code: +50 dB)
RATE_NORM = 10.0          # bit/s/Hz; [1] companion code normalises capacities by 10


def _scaled_layout(lay: _Layout, scale: float) -> _Layout:
    """The layout with every length (roads, period, lanes, BS position, LOS width) times ``scale``."""
    if scale == 1.0:
        return lay
    return dataclasses.replace(lay, block_x=lay.block_x * scale, block_y=lay.block_y * scale,
                               period_x=lay.period_x * scale, period_y=lay.period_y * scale,
                               lane_w=lay.lane_w * scale, bs_x=lay.bs_x * scale, bs_y=lay.bs_y * scale,
                               los_width=lay.los_width * scale)


class _Sim:
    """Array simulator shared by the gymnasium and PettingZoo forms (all links, one area)."""

    def __init__(self, cfg: CV2XConfig) -> None:
        self.cfg = cfg
        self.lay = _scaled_layout(_LAYOUTS[cfg.scenario], cfg.grid_scale)
        self.R = R = cfg.n_rb
        self.K = K = cfg.n_v2v
        self.M = R
        self.P = P = len(cfg.v2v_power_levels_dbm)
        self.A = R * P
        self.T = int(cfg.deadline_ms)
        self.D = 3 * R + 2 + (K if cfg.agent_id_obs else 0)
        self.geo_v2i = cfg.link_geometry == "v2i-vehicles"
        n_min = self.M if self.geo_v2i else self.M + K + 1
        self.n_veh = max(n_min, int(round(cfg.vehicle_density * _lane_km(self.lay))))
        self.bg_duty = float(cfg.bg_v2v_duty)
        self.p_bg = float(10.0 ** ((max(cfg.v2v_power_levels_dbm) - INTF_REF_DBM) / 10.0))
        self.bits = cfg.payload_bytes * 8.0
        self.bits_per_slot = cfg.rb_bandwidth_mhz * 1e6 * 1e-3            # bit per (bit/s/Hz) per 1 ms slot
        self.mbps = cfg.rb_bandwidth_mhz                                  # Mbit/s per (bit/s/Hz)
        # powers in pW (1e-9 mW), so that the interference feature (I_dBm + 90) / 10 is just log10(I)
        self.noise_v = 10.0 ** ((cfg.noise_dbm + cfg.veh_noise_figure_db - INTF_REF_DBM) / 10.0)
        self.noise_bs = 10.0 ** ((cfg.noise_dbm + cfg.bs_noise_figure_db - INTF_REF_DBM) / 10.0)
        self.p_v2i = 10.0 ** ((cfg.v2i_power_dbm - INTF_REF_DBM) / 10.0)
        self.pw_levels = 10.0 ** ((np.asarray(cfg.v2v_power_levels_dbm, dtype=np.float64) - INTF_REF_DBM) / 10.0)
        a = np.arange(self.A)
        self.rb_of = a // P
        self.pw_of = self.pw_levels[a % P]
        self.g_v2i_db = cfg.veh_antenna_gain_dbi + cfg.bs_antenna_gain_dbi
        self.g_v2v_db = 2.0 * cfg.veh_antenna_gain_dbi
        self.c_v2i = cfg.v2i_weight / (RATE_NORM * R)
        self.c_v2v = (1.0 - cfg.v2i_weight) / K
        self.beta = float(cfg.delivered_reward)
        self.ar = np.arange(K)
        self._all = np.arange(self.n_veh)
        self._buf = np.empty(K + R)
        self._buf_v, self._buf_i = self._buf[:K], self._buf[K:]
        self._tmp = np.empty((K, R))
        self._intf_slice = slice(2 * R, 3 * R)
        self._pay_col = 3 * R
        self._arR = np.arange(K) * R
        self._rows2 = np.array([[0], [K * R]])                               # flat rx offsets: own, interference
        self._tail = np.empty((self.T + 1, K, 2), dtype=np.float32)          # payload left, time left
        self._tail[:, :, 0] = 1.0
        self._tail[:, :, 1] = ((self.T - np.arange(self.T + 1)) / self.T)[:, None]
        self.frac_per_nat = self.bits_per_slot / self.bits * _LOG2E          # payload share per nat/s/Hz-slot
        self.pw_onehot = np.zeros((self.A, R))                               # action -> power on each RB
        self.pw_onehot[a, self.rb_of] = self.pw_of
        self.has_world = False
        self.t = 0
        lo = np.full(self.D, -OBS_CLIP, dtype=np.float32)
        hi = np.full(self.D, OBS_CLIP, dtype=np.float32)
        lo[2 * R:3 * R] = INTF_LOW
        hi[2 * R:3 * R] = INTF_HIGH
        lo[3 * R:] = 0.0
        hi[3 * R:] = 1.0                                                     # payload, time, one-hot link id
        self.obs_low, self.obs_high = lo, hi

    # ------------------------------------------------------------------ world (mobility, shadowing)
    def drop(self, rng: np.random.Generator) -> None:
        """A fresh world: vehicles uniform on the lanes, stationary shadowing."""
        lay, n = self.lay, self.n_veh
        len_h = lay.n_hroads * lay.period_x
        len_v = lay.n_vroads * lay.period_y if lay.n_vroads else 0.0
        u = rng.random((5, n))
        self.axis = (u[0] * (len_h + len_v) >= len_h).astype(np.int64)      # 0: along x, 1: along y
        n_roads = np.where(self.axis == 0, lay.n_hroads, max(lay.n_vroads, 1))
        self.road = np.minimum((u[1] * n_roads).astype(np.int64), n_roads - 1)
        self.sgn = np.where(u[2] < 0.5, 1.0, -1.0)
        self.lane = np.minimum((u[3] * lay.lanes).astype(np.int64), lay.lanes - 1)
        self.s = u[4] * np.where(self.axis == 0, lay.period_x, lay.period_y if lay.n_vroads else 0.0)
        v = rng.uniform(self.cfg.speed_min_kmh, self.cfg.speed_max_kmh, n) / 3.6
        self.speed = v
        self._positions()
        self.odo = np.zeros(n)                                               # distance driven (m)
        self.sh_bs = rng.normal(0.0, self.cfg.shadow_std_v2i_db, n)
        # V2V shadowing per vehicle pair (i < j), updated lazily when the pair is used: the state and the
        # pair's summed odometer at its last update (-inf: never used, so drawn fresh)
        self.sh_pair = np.zeros((n, n))
        self.sh_stamp = np.full((n, n), -np.inf)
        self.has_world = True

    def advance(self, rng: np.random.Generator) -> None:
        """Drive one message period on (TR 36.885 mobility) and evolve shadowing (Gudmundson [5])."""
        lay = self.lay
        dist = self.speed * (self.T * 1e-3)
        if lay.n_vroads:
            b = np.where(self.axis == 0, lay.block_x, lay.block_y)           # cross-road spacing ahead
            u0 = self.sgn * self.s / b
            u1 = u0 + dist / b
            uc = np.floor(u1)
            cross = uc > np.floor(u0)
            r = rng.random(self.n_veh)
            turn = cross & (r < 0.5)                                         # straight 0.5 [3]
            left = r < 0.25                                                  # left 0.25, right 0.25 [3]
            s_new = self.s + self.sgn * dist
            if turn.any():
                leftover = (u1 - uc) * b
                s_cross = self.sgn * uc * b                                  # intersection (old axis)
                ax = self.axis
                new_sgn = np.where(ax == 0, np.where(left, self.sgn, -self.sgn),
                                   np.where(left, -self.sgn, self.sgn))
                period_old = np.where(ax == 0, lay.period_x, lay.period_y)
                n_cross = np.where(ax == 0, lay.n_vroads, lay.n_hroads)
                new_road = np.rint(np.mod(s_cross, period_old) / b).astype(np.int64) % n_cross
                b_new = np.where(ax == 0, lay.block_y, lay.block_x)
                s_turn = self.road * b_new + new_sgn * leftover
                s_new = np.where(turn, s_turn, s_new)
                self.sgn = np.where(turn, new_sgn, self.sgn)
                self.road = np.where(turn, new_road, self.road)
                self.axis = np.where(turn, 1 - ax, ax)
            period = np.where(self.axis == 0, lay.period_x, lay.period_y)
            self.s = np.mod(s_new, period)
        else:
            self.s = np.mod(self.s + self.sgn * dist, lay.period_x)
        self._positions()
        cfg = self.cfg
        rho = np.exp(-dist / cfg.decorr_v2i_m)
        self.sh_bs = rho * self.sh_bs + np.sqrt(1.0 - rho * rho) * rng.normal(0.0, cfg.shadow_std_v2i_db,
                                                                              self.n_veh)
        self.odo += dist

    def _pair_shadowing(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """V2V shadowing (dB) of vehicle pairs (a, b) (broadcast; pairs must be distinct), brought up to date.

        Gudmundson [5] over the distance both vehicles drove since the pair was last used:
        ``S <- rho S + sqrt(1 - rho^2) N(0, sigma^2)``, ``rho = exp(-(dd_a + dd_b) / d_corr)`` [1]; composing the
        per-period updates this way is exact.
        """
        i, j = np.minimum(a, b), np.maximum(a, b)                            # broadcast shapes
        od = self.odo[i] + self.odo[j]
        rho = np.exp(-(od - self.sh_stamp[i, j]) / self.cfg.decorr_v2v_m)
        s = rho * self.sh_pair[i, j] + np.sqrt(1.0 - rho * rho) * rng.normal(
            0.0, self.cfg.shadow_std_v2v_db, i.shape)
        self.sh_pair[i, j] = s
        self.sh_stamp[i, j] = od
        return s

    def _positions(self) -> None:
        lay = self.lay
        off = (self.lane + 0.5) * lay.lane_w * self.sgn                      # right-hand traffic
        on_x = self.axis == 0
        y_road = self.road * (lay.block_y if lay.n_vroads else 0.0)
        x_road = self.road * (lay.block_x if lay.n_vroads else 0.0)
        self.x = np.where(on_x, self.s, x_road + off)
        self.y = np.where(on_x, y_road - off, self.s)

    def _dxdy(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Wrap-around |dx|, |dy| between vehicle index arrays (broadcast)."""
        lay = self.lay
        dx = np.abs(self.x[i] - self.x[j])
        dx = np.minimum(dx, lay.period_x - dx)
        dy = np.abs(self.y[i] - self.y[j])
        if math.isfinite(lay.period_y):
            dy = np.minimum(dy, lay.period_y - dy)
        return dx, dy

    # ------------------------------------------------------------------ one message period
    def begin_episode(self, rng: np.random.Generator) -> None:
        """Choose receivers, compute large-scale gains, draw the period's fast fading, reset payloads.

        All gains of the period are drawn here in one block: ``h[t, j, r, q]`` is the gain from V2V
        transmitter j on RB r to receiver q (q < K: link q's own signal, only for j = q; K <= q < 2K: the
        receiver of link q - K, own link excluded; q = 2K: the BS); ``bg[t, q, r]`` the fixed power there (the
        V2I transmitter of RB r, plus noise); ``s_v2i[t, m]`` the V2I signals at the BS.
        """
        cfg, lay = self.cfg, self.lay
        M, K, R, T = self.M, self.K, self.R, self.T
        ar = self.ar
        if self.geo_v2i:
            # roles of the companion code of [1]: vehicles 0..M-1 are the V2I users (vehicle m on RB m), V2V link
            # k is sent by V2I vehicle k to its nearest other V2I vehicle
            v2i_tx = np.arange(M)
            v2v_tx = v2i_tx[:K]
            dx, dy = self._dxdy(v2v_tx[:, None], v2i_tx[None, :])             # [K, M]
            d2 = dx * dx + dy * dy
            d2[ar, ar] = np.inf
            rx = v2i_tx[np.argmin(d2, axis=1)]
        else:
            # roles: the V2V links of the ego vehicle's neighbourhood (ego + its K-1 nearest vehicles), V2I
            # users anywhere in the area, receivers = nearest vehicle that transmits nothing [1]
            dx, dy = self._dxdy(0, self._all)
            near = np.argsort(dx * dx + dy * dy, kind="stable")               # near[0] = ego (vehicle 0)
            v2v_tx = near[:K]
            rest = near[K:]
            v2i_tx = rest[rng.permutation(rest.size)[:M]]
            dx, dy = self._dxdy(v2v_tx[:, None], self._all)                  # [K, n]
            d2 = dx * dx + dy * dy
            d2[:, v2i_tx] = np.inf                                           # receivers transmit nothing
            d2[:, v2v_tx] = np.inf
            rx = np.argmin(d2, axis=1)
        tx = np.concatenate([v2i_tx, v2v_tx])                                # [M + K]: V2I users, then V2V
        self.tx, self.rx = tx, rx
        # large-scale V2V: every transmitter -> every V2V receiver [M + K, K]
        dx, dy = self._dxdy(tx[:, None], rx[None, :])
        pl = pathloss_v2v_db(dx, dy, cfg.carrier_ghz, cfg.veh_height_m, cfg.veh_height_m, lay.los_always,
                             lay.los_width)
        if self.geo_v2i:                                                     # a vehicle is in both roles:
            sh = self._pair_shadowing(v2i_tx[:, None], rx[None, :], rng)     # one state per vehicle pair
            sh = np.concatenate([sh, sh[:K]])
            pl[tx[:, None] == rx[None, :]] += SELF_ISOLATION_DB              # own transmission at a receiver
        else:
            sh = self._pair_shadowing(tx[:, None], rx[None, :], rng)
        l_vv = np.minimum(10.0 ** ((self.g_v2v_db - pl - sh) / 10.0), GAIN_MAX)
        # large-scale V2I: every transmitter -> BS [M + K]
        d3 = np.sqrt((self.x[tx] - lay.bs_x) ** 2 + (self.y[tx] - lay.bs_y) ** 2
                     + (cfg.bs_height_m - cfg.veh_height_m) ** 2)
        l_bs = np.minimum(10.0 ** ((self.g_v2i_db - pathloss_v2i_db(d3) - self.sh_bs[tx]) / 10.0), GAIN_MAX)
        self.l_vv, self.l_bs = l_vv, l_bs
        # Rayleigh fast fading per link and RB [1], block fading over the coherence time of the link's
        # Doppler f_D = (v_tx + v_rx) f_c / c (V2V) or v_tx f_c / c (V2I); one extra slot for the last obs.
        # Elements: V2V tx j on RB r -> receiver q (q < K the V2V receivers, q = K the BS): [K, R, K + 1];
        # V2I tx m -> V2V receiver k on its RB m: [M, K]; V2I tx m -> BS on RB m: [M]
        v = self.speed * (cfg.carrier_ghz * 1e9 / 3e8)                       # per-vehicle Doppler (Hz)
        v_rx = np.append(v[rx], 0.0)                                         # the BS does not move
        fd_v = np.broadcast_to(v[v2v_tx][:, None, None] + v_rx[None, None, :], (K, R, K + 1))
        fd = np.concatenate([fd_v.ravel(), (v[v2i_tx][:, None] + v[rx][None, :]).ravel(), v[v2i_tx]])
        f = _block_rayleigh(fd, T + 1, rng)                                  # [T+1, L]
        n_v = K * R * (K + 1)
        f_v = f[:, :n_v].reshape(T + 1, K, R, K + 1)
        f_iv = f[:T, n_v:n_v + M * K].reshape(T, M, K)
        f_s = f[:T, n_v + M * K:]                                            # [T, M]
        # gains h[t, j, r, q] from V2V transmitter j on RB r to receiver q: q < K "own signal of link q"
        # (only j = q), K <= q < 2K the receiver of link q - K (other links), q = 2K the BS. A slot gathers
        # the rows j * R + rb_j of h[t] (as [K * R, 2K + 1]); one product then gives signals and interference.
        h = np.empty((T + 1, K, R, 2 * K + 1))
        l_v = np.empty((K, K + 1))
        l_v[:, :K] = l_vv[M:]
        l_v[:, K] = l_bs[M:]
        np.multiply(f_v, l_v[:, None, :], out=h[..., K:])                    # V2V receivers and BS
        h[..., :K] = 0.0
        h[:, ar, :, ar] = h[:, ar, :, K + ar]                                # own signal moves to q = k
        h[:, ar, :, K + ar] = 0.0
        self.h = h
        self.h_rows = h.reshape(T + 1, K * R, 2 * K + 1)
        # fixed received power per slot: V2I tx of RB r at V2V rx k (+ noise); noise at the BS
        bg = np.empty((T, 2 * K + 1, R))
        bg[:, :K] = 0.0
        np.multiply(l_vv[:M, :].T[None, :, :] * self.p_v2i, f_iv.transpose(0, 2, 1), out=bg[:, K:2 * K])
        bg[:, K:2 * K] += self.noise_v
        bg[:, 2 * K] = self.noise_bs
        i_mean = 0.0
        if self.bg_duty > 0.0:
            i_bg, i_mean = self._background(tx, rx, rng)
            bg[:, K:] += i_bg
        self.bg = bg
        self.s_v2i = self.p_v2i * l_bs[:M] * f_s                             # V2I signal at BS [T, M]
        # observation template [T+1, K, D]: gains and time are known in advance
        g = np.empty((T + 1, K, 2, R))
        g[:, :, 0] = h[:, ar, :, ar].transpose(1, 0, 2)                     # own channel
        g[:, :, 1] = h[..., 2 * K]                                           # to the BS
        np.log(g, out=g)
        g *= 10.0 / (math.log(10.0) * GAIN_SCALE_DB)                         # (10 log10 g + 100) / 20
        g -= GAIN_REF_DB / GAIN_SCALE_DB
        np.maximum(g, -OBS_CLIP, out=g)
        np.minimum(g, OBS_CLIP, out=g)
        obs = np.empty((T + 1, K, self.D), dtype=np.float32)
        obs[:, :, :2 * R] = g.reshape(T + 1, K, 2 * R)
        obs[:, :, 3 * R:3 * R + 2] = self._tail
        if self.D > 3 * R + 2:                                               # agent_id_obs: one-hot link id
            obs[:, :, 3 * R + 2:] = np.eye(K, dtype=np.float32)
        self.obs_tpl = obs
        # first "previous-slot" interference: V2I transmitters only (large-scale mean) + noise
        obs[0, :, 2 * R:3 * R] = np.log10(self.p_v2i * l_vv[:M, :].T + self.noise_v + i_mean)
        self.obs = obs[0]
        self.rem = np.full(K, 1.0 / self.frac_per_nat)                       # payload left (nat/s/Hz-slots)
        self.active = np.ones(K, dtype=bool)
        self.active_col = np.ones((K, 1))
        self.n_delivered = 0
        self.t = 0

    def _background(self, tx: np.ndarray, rx: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Background V2V traffic of the period: interference [T, K + 1, R] at the V2V receivers and the BS.

        Every vehicle without a role (not a V2I user, V2V transmitter or receiver) sends in each slot with
        probability ``bg_v2v_duty`` on a uniformly random RB at the maximum V2V power, so the V2V load grows
        with the density (design). Channels as for the links: WINNER+ B1 with pair shadowing to the V2V
        receivers, the V2I model with the vehicle's shadowing to the BS, Rayleigh fading drawn per slot
        (i.i.d., as in [1]). Returns the interference and its mean per V2V receiver [K, 1] (the first
        observation's "previous slot").
        """
        cfg, lay, K, R, T = self.cfg, self.lay, self.K, self.R, self.T
        free = np.ones(self.n_veh, dtype=bool)
        free[tx] = False
        free[rx] = False
        b = np.flatnonzero(free)
        L = np.empty((b.size, K + 1))
        dx, dy = self._dxdy(b[:, None], rx[None, :])
        pl = pathloss_v2v_db(dx, dy, cfg.carrier_ghz, cfg.veh_height_m, cfg.veh_height_m, lay.los_always,
                             lay.los_width)
        pl += self._pair_shadowing(b[:, None], rx[None, :], rng)
        L[:, :K] = self.g_v2v_db - pl
        d3 = np.sqrt((self.x[b] - lay.bs_x) ** 2 + (self.y[b] - lay.bs_y) ** 2
                     + (cfg.bs_height_m - cfg.veh_height_m) ** 2)
        L[:, K] = self.g_v2i_db - pathloss_v2i_db(d3) - self.sh_bs[b]
        L = np.minimum(10.0 ** (L / 10.0), GAIN_MAX) * self.p_bg
        tt, bb = np.nonzero(rng.random((T, b.size)) < self.bg_duty)          # (slot, vehicle) transmissions
        rb = rng.integers(R, size=tt.size)
        fad = np.minimum(rng.standard_exponential((tt.size, K + 1)), FADING_MAX)
        fad *= L[bb]
        flat = (tt[:, None] * (K + 1) + np.arange(K + 1)) * R + rb[:, None]
        i_bg = np.bincount(flat.ravel(), fad.ravel(), minlength=T * (K + 1) * R).reshape(T, K + 1, R)
        i_mean = (self.bg_duty / R) * L[:, :K].sum(axis=0)[:, None]
        return i_bg, i_mean

    def step(self, acts: np.ndarray) -> tuple[float, dict[str, float]]:
        """Apply joint actions ``acts`` [K] in slot t; return the shared reward and the KPIs."""
        t, K = self.t, self.K
        w = self.pw_onehot[acts]                                             # [K tx, R] power on each RB
        if self.n_delivered:
            w *= self.active_col                                             # delivered links are silent
        fi = self._arR + self.rb_of[acts]                                    # row j R + rb_j of h[t]
        c = self.h_rows[t].take(fi, axis=0)                                  # [K tx, 2K + 1 rx] on tx's RB
        rx = np.dot(c.T, w)                                                  # [2K + 1, R] received power
        rx += self.bg[t]                                                     # + V2I tx (+ noise)
        sig_int = rx.take(self._rows2 + fi)                                  # [2, K]: own signal (k R + rb_k),
        #                                                                      interference ((K + k) R + rb_k)
        buf_v = self._buf_v
        np.divide(sig_int[0], sig_int[1], out=buf_v)                         # V2V SINR
        np.divide(self.s_v2i[t], rx[2 * K], out=self._buf_i)                 # V2I SINR
        buf = self._buf
        np.log1p(buf, out=buf)                                               # capacity in nat/s/Hz
        rem = self.rem                                                       # payload left, nat/s/Hz-slots
        rem -= buf_v
        n_del = int(np.count_nonzero(rem <= 0.0))
        newly = n_del - self.n_delivered
        vals = buf.tolist()
        sum_v = sum(vals[:K]) * _LOG2E                                       # bit/s/Hz
        sum_i = sum(vals[K:]) * _LOG2E
        if newly:                                                            # links done before are silent
            l_run = float(np.dot(buf_v, rem > 0.0)) * _LOG2E                 # rate term of links not done
            self.n_delivered = n_del
            np.greater(rem, 0.0, out=self.active)
            self.active_col = self.active[:, None].astype(np.float64)
            np.maximum(rem, 0.0, out=rem)
        else:
            l_run = sum_v
        reward = self.c_v2i * sum_i + self.c_v2v * (l_run / RATE_NORM + self.beta * n_del)
        self.t = t = t + 1
        obs = self.obs_tpl[t]
        x = self._tmp
        np.log10(rx[K:2 * K], out=x)                                         # powers in pW: (I_dBm + 90) / 10
        obs[:, self._intf_slice] = x
        obs[:, self._pay_col] = rem * self.frac_per_nat
        self.obs = obs
        info = {
            "v2i_capacity": sum_i * self.mbps,
            "v2v_rate": sum_v * self.mbps,
            "v2v_delivery": n_del / K,
            "v2v_delivery_prob": newly * self.T / K,
        }
        if t >= self.T:
            info["v2v_delivered_at_deadline"] = n_del / K
        return reward, info

    def score(self, acts: np.ndarray, lookahead: bool = False) -> np.ndarray:
        """Objective of C candidate joint actions ``acts`` [C, K] in the current slot (no state change).

        ``lookahead=False``: the shared reward of the slot (what ``step`` would return). ``lookahead=True``:
        the V2V term is replaced by ``beta * (slots left) * min(1, bits sent / bits remaining)`` per active
        link - the reward still to be earned for the share of the payload delivered now - because the
        slot reward alone is myopic (turning off a weak link looks better than pushing its payload).
        """
        t, ar, K, R = self.t, self.ar, self.K, self.R
        rb = self.rb_of[acts]                                                # [C, K]
        pw = self.pw_of[acts] * self.active
        h = self.h[t]                                                        # [K tx, R, 2K + 1 rx]
        own = pw * h[ar, rb, ar]
        g = h[ar[None, :, None], rb[:, None, :], K + ar[None, None, :]]     # [C, j tx, k rx] on k's RB
        same = rb[:, :, None] == rb[:, None, :]
        intf = np.einsum("cj,cjk->ck", pw, g * same) + self.bg[t][K + ar, rb]
        n_v2v = np.log1p(own / intf)                                         # nat/s/Hz
        onehot = rb[:, :, None] == np.arange(R)
        i_bs = np.einsum("ck,ckr->cr", pw * h[ar, rb, 2 * K], onehot) + self.bg[t][2 * K]
        r_v2i = np.log2(1.0 + self.s_v2i[t] / i_bs)
        r_v2v = n_v2v * _LOG2E
        if lookahead:
            frac = np.minimum(1.0, n_v2v / np.maximum(self.rem, 1e-12))      # share of the payload left
            l_sum = np.where(self.active, self.beta * (self.T - self.t) * frac, self.beta).sum(axis=1)
            return self.c_v2i * r_v2i.sum(axis=1) + self.c_v2v * l_sum
        done = (self.rem - n_v2v) <= 0.0
        l_sum = np.where(done, self.beta, np.where(self.active, r_v2v, 0.0) / RATE_NORM).sum(axis=1)
        return self.c_v2i * r_v2i.sum(axis=1) + self.c_v2v * l_sum


# ---------------------------------------------------------------------- link policies (vectorised over links)
class _LinkPolicy:
    """A heuristic acting for a set of links from their observations ``obs`` [n, D] -> actions [n]."""

    def __init__(self, sim: _Sim, links: np.ndarray, rng: np.random.Generator) -> None:
        self.sim = sim
        self.links = np.asarray(links, dtype=np.int64)
        self.rng = rng
        self.P = sim.P

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def act_sim(self, rows: slice) -> np.ndarray:
        """Act for ``sim``'s links ``rows`` from the simulator's current observations."""
        return self.act(self.sim.obs[rows])


class _RandomLinks(_LinkPolicy):
    """Uniform over all (RB, power) actions, "off" included (the random baseline of [1])."""

    _BLOCK = 256

    def __init__(self, sim: _Sim, links: np.ndarray, rng: np.random.Generator) -> None:
        super().__init__(sim, links, rng)
        self._buf = np.empty((0, len(self.links)), dtype=np.int64)
        self._i = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._i >= len(self._buf):
            self._buf = self.rng.integers(self.sim.A, size=(self._BLOCK, len(self.links)))
            self._i = 0
        a = self._buf[self._i]
        self._i += 1
        return a


class _GreedyLinks(_LinkPolicy):
    """Each link takes the RB where its own V2V gain is best, at maximum power."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.argmax(obs[:, :self.sim.R], axis=1) * self.P


class _RoundRobinLinks(_LinkPolicy):
    """Link k uses RB (k + t) mod R in slot t at maximum power (orthogonal among V2V links when K <= R)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        t = int(round((1.0 - float(obs[0, 3 * self.sim.R + 1])) * self.sim.T))
        return ((self.links + t) % self.sim.R) * self.P


class _SPSLinks(_LinkPolicy):
    """3GPP sensing-based semi-persistent scheduling (TS 36.213 14.1.1.6 [6]), one reservation = 1 slot.

    A link keeps a reserved RB (at maximum power) while its reselection counter, drawn uniformly in
    [5, 15], counts down its transmissions. On reselection it (a) excludes RBs whose last measured
    interference (the current occupants' reservations, the RSRP proxy) exceeds ``sps_threshold_dbm``,
    raising the threshold by 3 dB until at least 20 % of the RBs remain; (b) ranks the remaining RBs by
    the S-RSSI averaged (in mW) over the sensing window and picks at random among the lowest 20 % (at
    least one). The window is 10 reservation intervals (10 slots), as 1000 ms is 10 intervals of 100 ms in
    [6]. Sensing uses the link's observation (interference at its receiver) - a simplification.
    """

    WINDOW = 10
    RC_LOW, RC_HIGH = 5, 15
    _NEVER = 1 << 30

    def __init__(self, sim: _Sim, links: np.ndarray, rng: np.random.Generator) -> None:
        super().__init__(sim, links, rng)
        n, R = len(self.links), sim.R
        self.buf = np.zeros((self.WINDOW, n, R), dtype=np.float32)   # interference features (obs units)
        self.pos = 0
        self.filled = 0
        # steady-state start (as system-level SPS simulations do): every link already holds a reservation
        # on a random RB with a random phase of its counter, so reselections are staggered
        self.rb = rng.integers(R, size=n)
        self.actions = self.rb * self.P
        # counters are decremented lazily: true counter = rc - pending * mask while the mask is unchanged
        self.rc = rng.integers(1, self.RC_HIGH + 1, size=n)
        self.mask = np.zeros(n, dtype=np.int64)          # 1 where the link transmits
        self.pending = 0
        self.horizon = 0                                 # pending count at which some counter hits 0
        self.seen_delivered = -1
        self.need = max(1, math.ceil(0.2 * R))
        self.thr = float(sim.cfg.sps_threshold_dbm)

    def act(self, obs: np.ndarray) -> np.ndarray:
        R = self.sim.R
        return self.sense_and_act(obs[:, 2 * R:3 * R], obs[:, 3 * R] > 0.0, True)

    def act_sim(self, rows: slice) -> np.ndarray:
        sim = self.sim
        changed = sim.n_delivered != self.seen_delivered or sim.t == 0
        self.seen_delivered = sim.n_delivered
        return self.sense_and_act(sim.obs[rows, 2 * sim.R:3 * sim.R], sim.active[rows], changed)

    def sense_and_act(self, feat: np.ndarray, transmitting: np.ndarray, changed: bool) -> np.ndarray:
        """One slot: record the sensed interference features [n, R], reselect where due, count down."""
        self.buf[self.pos] = feat
        self.pos = (self.pos + 1) % self.WINDOW
        if self.filled < self.WINDOW:
            self.filled += 1
        if changed:                                      # transmitting set changed: settle the counters
            self.rc -= self.pending * self.mask
            self.pending = 0
            self.mask = transmitting.astype(np.int64)
            self._set_horizon()
        if self.pending >= self.horizon:
            self.rc -= self.pending * self.mask
            self.pending = 0
            resel = np.flatnonzero(self.rc <= 0)
            if resel.size:
                self._reselect(resel, feat)
            self._set_horizon()
        self.pending += 1                                # one transmission (where mask == 1)
        return self.actions

    def _set_horizon(self) -> None:
        due = np.where(self.mask > 0, self.rc, np.where(self.rc <= 0, 0, self._NEVER))
        self.horizon = int(due.min())

    def _reselect(self, idx: np.ndarray, feat: np.ndarray) -> None:
        last = 10.0 * feat[idx].astype(np.float64) + INTF_REF_DBM              # dBm [n, R]
        kth = np.partition(last, self.need - 1, axis=1)[:, self.need - 1]
        thr = self.thr + 3.0 * np.maximum(0.0, np.ceil((kth - self.thr) / 3.0))
        cand = last <= thr[:, None] + 1e-9
        rssi = (10.0 ** self.buf[:self.filled, idx].astype(np.float64)).mean(axis=0)   # mW x 1e9
        metric = np.where(cand, rssi, np.inf)
        best = np.argsort(metric, axis=1, kind="stable")[:, :self.need]
        pick = best[np.arange(len(idx)), self.rng.integers(self.need, size=len(idx))]
        self.rb[idx] = pick
        self.actions = self.rb * self.P                                      # maximum power
        self.rc[idx] = self.rng.integers(self.RC_LOW, self.RC_HIGH + 1, size=len(idx))


_LINK_POLICIES: dict[str, type[_LinkPolicy]] = {
    "random": _RandomLinks,
    "greedy": _GreedyLinks,
    "round-robin": _RoundRobinLinks,
    "sps": _SPSLinks,
}

EXHAUSTIVE_MAX_LINKS = 4
EXHAUSTIVE_MAX_JOINT = 65536


@functools.lru_cache(maxsize=32)
def _joint_grid(n_actions: int, n_links: int) -> np.ndarray:
    """All joint actions of ``n_links`` links, shape [n_actions ** n_links, n_links]."""
    return np.stack(np.unravel_index(np.arange(n_actions ** n_links), (n_actions,) * n_links), axis=1)


def _exhaustive_joint(sim: _Sim) -> np.ndarray:
    """Per-slot oracle: the joint action of the still-active links maximising the shared reward."""
    act = np.flatnonzero(sim.active)
    out = np.zeros(sim.K, dtype=np.int64)
    if act.size == 0:
        return out
    grid = _joint_grid(sim.A, int(act.size))
    cand = np.zeros((len(grid), sim.K), dtype=np.int64)
    cand[:, act] = grid
    return cand[int(np.argmax(sim.score(cand, lookahead=True)))]


def _check_exhaustive(sim: _Sim) -> None:
    if sim.K > EXHAUSTIVE_MAX_LINKS or sim.A ** sim.K > EXHAUSTIVE_MAX_JOINT:
        raise EnvConfigError(
            f"exhaustive: n_v2v={sim.K} links with {sim.A} actions each ({sim.A ** sim.K} joint actions) is "
            f"too large; allowed: n_v2v <= {EXHAUSTIVE_MAX_LINKS} and n_actions**n_v2v <= "
            f"{EXHAUSTIVE_MAX_JOINT}")


# ---------------------------------------------------------------------- gymnasium form
def _attach_sim(env: Any, config: CV2XConfig | None, render_mode: str | None, overrides: dict[str, Any]) -> None:
    """What both forms' constructors share: resolve the config, check the render mode, build the ``_Sim``."""
    cfg = resolve_config(CV2XConfig, config, overrides)
    check_render_mode(render_mode, env.metadata)
    env.config = cfg
    env.render_mode = render_mode
    env.sim = _Sim(cfg)


class CV2XEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 1000}

    def __init__(self, config: CV2XConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        _attach_sim(self, config, render_mode, overrides)
        self.action_space = spaces.Discrete(self.sim.A)
        self.observation_space = spaces.Box(self.sim.obs_low, self.sim.obs_high, dtype=np.float32)
        self._acts = np.zeros(self.sim.K, dtype=np.int64)
        self._bg: _LinkPolicy | None = None
        self._bg_acts: np.ndarray | None = None
        self._rows = slice(1, None)
        self._has_reset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        sim = self.sim
        if seed is not None or not sim.has_world:
            sim.drop(self.np_random)
            self._bg = _LINK_POLICIES[self.config.background_policy](
                sim, np.arange(1, sim.K), self.np_random)
            self._bg_acts = None
        else:
            sim.advance(self.np_random)
        sim.begin_episode(self.np_random)
        self._plan_background()
        self._has_reset = True
        return sim.obs[0], {}

    def _plan_background(self) -> None:
        if self.sim.K > 1:
            a = self._bg.act_sim(self._rows)
            if a is not self._bg_acts:                   # SPS returns the same array while it keeps its RBs
                self._acts[1:] = a
                self._bg_acts = a

    @property
    def background_actions(self) -> np.ndarray:
        """Actions the background links (1..K-1) take in the coming slot (decided from their observations)."""
        return self._acts[1:].copy()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = discrete_action(action, self.sim.A)
        acts = self._acts                                # acts[1:]: background, set by _plan_background
        acts[0] = a
        if self.render_mode is not None:
            self._last_acts = acts.copy()
        reward, info = self.sim.step(acts)
        truncated = self.sim.t >= self.sim.T
        if truncated:
            self._has_reset = False
        else:
            self._plan_background()
        info["link_delivered"] = 0.0 if self.sim.active[0] else 1.0
        return self.sim.obs[0], reward, False, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return _render(self.sim, getattr(self, "_last_acts", None))


def _render(sim: _Sim, acts: np.ndarray | None) -> str:
    if not sim.has_world or not hasattr(sim, "rem"):
        return "CV2X (not reset)"
    acts = np.zeros(sim.K, dtype=np.int64) if acts is None else acts
    rb = sim.rb_of[acts].tolist()
    pw = [sim.cfg.v2v_power_levels_dbm[int(p)] for p in (acts % sim.P)]
    left = (sim.rem * sim.frac_per_nat).round(2).tolist()
    return f"slot={sim.t}/{sim.T} rb={rb} power_dbm={pw} payload_left={left} delivered={sim.n_delivered}/{sim.K}"


# ---------------------------------------------------------------------- PettingZoo form
class CV2XParallelEnv(ParallelEnv):
    """All V2V links as agents ``link_0`` .. ``link_{K-1}`` sharing the reward (see the module docstring)."""

    metadata = {"name": "cv2x_v0", "render_modes": ["ansi"], "is_parallelizable": True, "render_fps": 1000}

    def __init__(self, config: CV2XConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        _attach_sim(self, config, render_mode, overrides)
        self.possible_agents = [f"link_{k}" for k in range(self.sim.K)]
        self.agents: list[str] = []
        self._index = {a: k for k, a in enumerate(self.possible_agents)}
        obs_space = spaces.Box(self.sim.obs_low, self.sim.obs_high, dtype=np.float32)
        self._obs_spaces = {a: obs_space for a in self.possible_agents}
        self._act_spaces = {a: spaces.Discrete(self.sim.A) for a in self.possible_agents}
        self._acts = np.zeros(self.sim.K, dtype=np.int64)
        self.np_random: np.random.Generator | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        sim = self.sim
        if seed is not None or self.np_random is None:
            self.np_random, _ = gym.utils.seeding.np_random(seed)
            sim.drop(self.np_random)
        else:
            sim.advance(self.np_random)
        sim.begin_episode(self.np_random)
        self.agents = list(self.possible_agents)
        obs = sim.obs
        return {a: obs[k] for k, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise gym.error.ResetNeeded("call reset() before step()")
        acts = self._acts
        acts[:] = 0
        for a, v in actions.items():
            k = self._index[a]
            v = int(v)
            if not 0 <= v < self.sim.A:
                raise gym.error.InvalidAction(f"{a}: action={v!r} is out of range; allowed: 0..{self.sim.A - 1}")
            acts[k] = v
        self._last_acts = acts.copy()
        reward, info = self.sim.step(self._last_acts)
        truncated = self.sim.t >= self.sim.T
        agents = self.agents
        obs = self.sim.obs
        active = self.sim.active
        observations = {a: obs[k] for k, a in enumerate(agents)}
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        infos = {a: {**info, "link_delivered": float(not active[k])} for k, a in enumerate(agents)}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return _render(self.sim, getattr(self, "_last_acts", None))

    def close(self) -> None:
        pass


def parallel_env(config: CV2XConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> CV2XParallelEnv:
    """PettingZoo parallel form: ``parallel_env(**config_fields)`` or ``parallel_env(config=CV2XConfig(...))``."""
    return CV2XParallelEnv(config, render_mode=render_mode, **overrides)


# ---------------------------------------------------------------------- baselines
def _single(name: str) -> BaselineFactory:
    def factory(env: gym.Env, seed: int) -> Policy:
        pol = _LINK_POLICIES[name](env.unwrapped.sim, np.array([0]), np.random.default_rng(seed))

        def policy(obs: np.ndarray) -> int:
            return int(pol.act(np.asarray(obs, dtype=np.float32)[None, :])[0])
        return policy
    factory.__doc__ = f"Link 0 follows the {name} heuristic ({_LINK_POLICIES[name].__doc__.splitlines()[0]})"
    return factory


def _exhaustive_single(env: gym.Env, seed: int) -> Policy:
    """Oracle best response of link 0: every (RB, power) scored on the true slot given the others' actions."""
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        sim = e.sim
        cand = np.empty((sim.A, sim.K), dtype=np.int64)
        cand[:, 0] = np.arange(sim.A)
        cand[:, 1:] = e.background_actions
        return int(np.argmax(sim.score(cand, lookahead=True)))
    return policy


BASELINES: dict[str, BaselineFactory] = {
    "random": _single("random"),
    "greedy": _single("greedy"),
    "round-robin": _single("round-robin"),
    "sps": _single("sps"),
    "exhaustive": _exhaustive_single,
}

ParallelPolicy = Any


def _parallel(name: str) -> Any:
    def factory(env: CV2XParallelEnv, seed: int) -> ParallelPolicy:
        sim = env.unwrapped.sim
        names = list(env.possible_agents)
        pol = _LINK_POLICIES[name](sim, np.arange(sim.K), np.random.default_rng(seed))

        def policy(obs: dict[str, np.ndarray]) -> dict[str, int]:
            acts = pol.act(np.stack([obs[a] for a in names]))
            return {a: int(acts[k]) for k, a in enumerate(names)}
        return policy
    return factory


def _exhaustive_parallel(env: CV2XParallelEnv, seed: int) -> ParallelPolicy:
    """Per-slot oracle: exhaustive search over the joint (RB, power) of all active links (small sizes only)."""
    e = env.unwrapped
    _check_exhaustive(e.sim)
    names = list(e.possible_agents)

    def policy(obs: dict[str, np.ndarray]) -> dict[str, int]:
        acts = _exhaustive_joint(e.sim)
        return {a: int(acts[k]) for k, a in enumerate(names)}
    return policy


PARALLEL_BASELINES: dict[str, Any] = {
    "random": _parallel("random"),
    "greedy": _parallel("greedy"),
    "round-robin": _parallel("round-robin"),
    "sps": _parallel("sps"),
    "exhaustive": _exhaustive_parallel,
}


__doc__ = document_knobs(__doc__, CV2XConfig)
CV2XEnv.__doc__ = __doc__

ENTRY = EnvEntry(
    env_id="frl/CV2X-v0",
    name="cv2x",
    entry_point="envs.cv2x:CV2XEnv",
    config_cls=CV2XConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("v2i_capacity", "v2v_delivery_prob", "v2v_delivery", "v2v_rate"),
    summary="C-V2X sidelink: V2V links pick RB and power under V2I traffic (Liang et al. 2019, TR 36.885)",
    parallel_entry_point="envs.cv2x:parallel_env",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)
