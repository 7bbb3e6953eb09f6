"""UAV-assisted mobile edge computing: K rotary-wing UAVs fly over an IoT area and compute devices' tasks.

## Description

One federated client is one *area* (its own size, device density, task load, wind and propagation
environment). ``n_uavs`` rotary-wing UAVs at altitude ``altitude_m`` carry edge servers; ``n_devices``
ground devices generate computation tasks into FIFO backlogs, compute what they can on their own CPU and
offload the rest to a UAV that schedules them. Every slot (``slot_s``) each UAV chooses a ground velocity
(heading and speed: its trajectory) and which of its ``n_candidates`` nearest devices to serve, as in UAV-DDPG [1]
(action: served user, flight angle, speed). The aim: low task delay and few deadline drops at low energy,
of which rotary-wing propulsion is the largest part [2]. All per-slot physics is array arithmetic over
UAVs x devices.

**Devices and tasks** (computation model of ``envs.mec_offloading`` [3], [4]; its defaults are imported,
not repeated). Devices are dropped per episode in ``n_clusters`` hotspots (a Thomas cluster process:
cluster centres uniform in the square area of side ``area_size_m``, devices Gaussian around a random centre
with std ``cluster_std_frac * area_size_m``, clipped to the area). Device ``n`` has a task arrival rate
``lambda_n = arrival_rate * U[0, 2]`` tasks/s (mean ``arrival_rate``; busy and idle devices) and a
processing density ``c_n ~ U[density_min, density_max]`` cycles/bit (its application), both per episode.
Per slot it gets ``Poisson(lambda_n slot_s)`` tasks of ``U[task_size_min_mbit, task_size_max_mbit]`` Mbit.
The backlog is a FIFO of bits with their arrival slot; bits still queued ``deadline_s`` after arrival are
dropped [5].

**Local execution** [3], [4]: a device CPU of ``f_loc`` Hz drains ``f_loc slot_s / c_n`` bits a slot from the
head of its queue at energy ``kappa f_loc^2`` J per cycle.

**Air-to-ground channel** (Al-Hourani et al. [6]): with elevation angle ``theta`` (degrees) and 3-D
distance ``d``, the LoS probability is ``P_LoS = 1 / (1 + a exp(-b (theta - a)))`` and the mean path loss
``PL = FSPL(d) + eta_LoS P_LoS + eta_NLoS (1 - P_LoS)`` dB with ``FSPL = 20 log10(4 pi f_c d / c)``;
``environment`` picks ``(a, b, eta_LoS, eta_NLoS)`` of [6] Table I at 2 GHz: suburban (4.88, 0.43, 0.1, 21),
urban (9.61, 0.16, 1, 20), dense-urban (12.08, 0.11, 1.6, 23), highrise (27.23, 0.08, 2.3, 34). The uplink
rate is Shannon's, ``r = B log2(1 + p 10^(-PL/10) / (N0 B NF))`` over the UAV's own band ``B`` (UAVs use
orthogonal bands, so no inter-UAV interference); the mean (LoS-probability-averaged) path loss is used, no
small-scale fading (design; [6]'s model is a mean over the LoS/NLoS ensemble).

**Offloading.** A UAV serves its chosen device for the whole slot (TDMA): the device uploads and the UAV
computes in sequence, so ``b`` bits take ``b / r + b c_n / f_uav`` s and a slot serves at most
``slot_s / (1 / r + c_n / f_uav)`` bits, fewer if the device's queue (after its own CPU has taken its share)
is shorter. Upload energy ``p b / r`` J [4]; UAV compute energy ``kappa_uav f_uav^2`` J per cycle [7];
download of results neglected [4]. The channel is evaluated at the middle of the UAV's path in the slot.
If several UAVs pick the same device, the one with the best channel serves it and the others idle.

**Propulsion** (Zeng, Xu & Zhang [2], eq. (12), Table I): a rotary-wing UAV flying level at airspeed
``V`` needs ``P(V) = P0 (1 + 3 V^2 / U_tip^2) + Pi (sqrt(1 + V^4 / (4 v0^4)) - V^2 / (2 v0^2))^(1/2)
+ 1/2 d0 rho s A V^3`` with blade profile power ``P0 = delta / 8 rho s A Omega^3 R^3``, induced hover power
``Pi = (1 + k) W^(3/2) / sqrt(2 rho A)``, ``U_tip = Omega R``, mean rotor induced velocity in hover
``v0 = sqrt(W / (2 rho A))`` and rotor disc area ``A = pi R^2``. At the Table I defaults ``P0 = 79.86`` W,
``Pi = 88.63`` W: hovering costs 168.5 W, the minimum (126 W) is at the maximum-endurance speed
``V_me`` = 10.2 m/s and full speed (30 m/s) costs 356 W, so slow circling is cheaper than hovering and
dashing is dear. The airspeed is the ground velocity minus the wind
(``wind_speed``, direction uniform per episode). Acceleration and climb are not modelled ([2]'s level
flight at piecewise-constant velocity); a UAV is kept inside the area (its path is clipped at the border and
the clipped velocity is the one flown).

## Action Space

``Box(-1, 1, (3,), float32)`` per UAV: ground velocity ``v_max * (a[0], a[1])`` (rescaled to norm ``v_max``
if longer; Cartesian rather than UAV-DDPG's angle and speed [1], the same set of velocities without the
wrap-around of an angle) and the served device ``a[2]``: candidate ``floor((a[2] + 1) / 2 * C)`` (clipped to
``C - 1``) of the UAV's ``C = n_candidates`` nearest devices ordered by distance (the order of the
observation), UAV-DDPG's continuous encoding of the scheduled user [1].

## Observation Space

``Box(-1, 1, (10 + 4 C + 2 (K - 1) + 3 * 2,), float32)`` per UAV (36 at the defaults), normalised by the
area side ``L`` and fixed scales (the same for every client):

| index               | feature                                                               |
|---------------------|-----------------------------------------------------------------------|
| 0, 1                | own position ``2 x / L - 1``, ``2 y / L - 1``                            |
| 2, 3                | own last ground velocity / ``v_max``                                    |
| 4 + 4j .. 7 + 4j    | candidate j (j-th nearest device): ``dx / L``, ``dy / L``, backlog       |
|                     | ``Q / (Q + 1 Mbit)``, achievable offload bits per slot ``u / (u + 1 Mbit)`` |
| 4 + 4C ..           | other UAVs (nearest first): ``dx / L``, ``dy / L``                       |
| 2 + 4C + 2K ..      | backlog-weighted centroid of all devices ``dx / L``, ``dy / L``; total    |
|                     | backlog ``Q / (Q + N Mbit)``; wind ``(w_x, w_y) / 15 m/s``; time left     |
| last 6              | the 2 devices with the largest backlog beyond one slot of their own CPU: |
|                     | ``dx / L``, ``dy / L``, that excess ``e / (e + 1 Mbit)``                   |

## Rewards

Every UAV gets ``service_weight * b_k - (delay / deadline_s + drop_penalty * dropped + energy_weight * P_k /
P(0))``: the area's delay and drop ratio (shared: the UAVs cooperate), its own propulsion power relative to
hovering and, as per-UAV credit, the Mbit ``b_k`` it offloaded in the slot.
``info`` KPIs (numeric, every step): ``delay`` (s): the area backlog over its mean arrival rate, the
Little's-law [8] mean time a bit spends queued (its time-average over an episode is the mean sojourn time);
``dropped``: bits dropped at the deadline this slot over the mean bits arriving per slot (time-average = drop
ratio); ``energy`` (J per UAV-slot): propulsion + UAV computing + devices' computing and upload energy,
divided by ``n_uavs``; ``propulsion_power`` (W, this UAV); ``device_energy`` (J per slot, all devices);
``served`` (Mbit offloaded this slot, all UAVs); ``local`` (Mbit computed on the devices);
``offload_share`` (offloaded / (offloaded + locally computed)).

## Starting State

Empty queues; devices, their rates and densities, the wind direction and the UAVs' positions (uniform in
the area) drawn from the reset seed.

## Episode End

Never terminates; truncated after ``episode_slots`` slots (the step cap; ``max_cycles`` of the parallel form).

## Arguments

``parallel_env(config=None, render_mode=None, **overrides)``: the PettingZoo ``ParallelEnv`` of the
``n_uavs`` UAVs ``uav_0 .. uav_{K-1}`` (every UAV learns; the swarm form). ``UavMecEnv(config=None,
render_mode=None, **overrides)``: the Gymnasium form (``frl/UavMec-v0``): the agent flies ``uav_0`` and the
other UAVs fly the ``fly-to-backlog`` heuristic (``others_policy``; ``hover`` or ``circle`` also allowed).
Knobs (default, unit, legal range, source), generated from ``UavMecConfig``:

{knob_table}

``make_client_configs`` keeps ``n_uavs`` and ``n_candidates`` fixed (they set the spaces) and varies area
size, device count, arrival rate, wind, UAV weight, air density and the propagation environment.

## References

1. Y. Wang, W. Fang, Y. Ding, N. Xiong, "Computation offloading optimization for UAV-assisted mobile edge
   computing: a deep deterministic policy gradient approach", Wireless Networks 27, 2021 (UAV-DDPG: action =
   served UE, flight angle, speed, offloading ratio; H = 100 m).
2. Y. Zeng, J. Xu, R. Zhang, "Energy minimization for wireless communication with rotary-wing UAV", IEEE
   Trans. Wireless Commun. 18(4), 2019, eq. (12) and Table I (W = 20 N, rho = 1.225 kg/m^3, R = 0.4 m,
   A = 0.503 m^2, Omega = 300 rad/s, U_tip = 120 m/s, s = 0.05, d0 = 0.6, k = 0.1, delta = 0.012,
   v0 = 4.03 m/s, P0 = 79.86 W, Pi = 88.63 W).
3. Y. Mao et al., "A survey on mobile edge computing: the communication perspective", IEEE COMST 2017
   (local computing: time W / f, energy kappa f^2 W).
4. X. Chen et al., "Efficient multi-user computation offloading for mobile-edge cloud computing", IEEE/ACM
   ToN 2016 (upload energy p D / r, download neglected).
5. M. Tang, V. W. S. Wong, "Deep reinforcement learning for task offloading in mobile edge computing
   systems", IEEE TMC 2022 (queues persisting across slots, deadlines, drops).
6. A. Al-Hourani, S. Kandeepan, S. Lardner, "Optimal LAP altitude for maximum coverage", IEEE Wireless
   Commun. Lett. 3(6), 2014 (LoS probability eq. (3)-(5), Table I).
7. F. Zhou, Y. Wu, R. Q. Hu, Y. Qian, "Computation rate maximization in UAV-enabled wireless-powered
   mobile-edge computing systems", IEEE JSAC 36(9), 2018 (UAV CPU energy gamma_c f^2 per cycle,
   gamma_c = 1e-28).
8. J. D. C. Little, "A proof for the queuing formula L = lambda W", Operations Research 9(3), 1961.
9. 3GPP TS 36.101 (NB-IoT UE power class 6: 14 dBm).

## Version History

* v0: initial version (issue 15). Fixed 2026-12-03: the observation was declared one element longer than its
  layout and that last element was never written (uninitialised memory); it is now 36 long at the defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, resolve_config
from envs.mec_offloading import MecOffloadingConfig
from envs.registry import EnvConfigError, EnvEntry, Policy, check_render_mode

__all__ = [
    "BASELINES",
    "ENTRY",
    "ENVIRONMENTS",
    "PARALLEL_BASELINES",
    "UavMecConfig",
    "UavMecEnv",
    "UavMecParallelEnv",
    "los_probability",
    "make_client_configs",
    "mean_path_loss_db",
    "parallel_env",
    "rotary_wing_power",
]

_MEC = MecOffloadingConfig()     # the computation constants of envs.mec_offloading, imported (not repeated)
_C_LIGHT = 299_792_458.0
_MBIT = 1e6

#: Al-Hourani et al. [6] Table I at 2 GHz: (a, b, eta_LoS dB, eta_NLoS dB)
ENVIRONMENTS: dict[str, tuple[float, float, float, float]] = {
    "suburban": (4.88, 0.43, 0.1, 21.0),
    "urban": (9.61, 0.16, 1.0, 20.0),
    "dense-urban": (12.08, 0.11, 1.6, 23.0),
    "highrise": (27.23, 0.08, 2.3, 34.0),
}
OTHERS_POLICIES = ("fly-to-backlog", "hover", "circle")

_ORDERED = (("task_size_min_mbit", "task_size_max_mbit"), ("density_min", "density_max"))


@dataclass(frozen=True)
class UavMecConfig(KnobConfig):
    """Physical parameters of one UAV-MEC area; default, unit, legal range and source per knob."""

    slot_s: float = knob(1.0, 0.1, 10.0, unit="s", source="1 s decision slots (design; UAV-DDPG [1] uses slots)")
    episode_slots: int = knob(200, 10, 10_000, integer=True, unit="slots", source="step cap (design)")
    n_uavs: int = knob(3, 1, 8, integer=True, unit="UAVs", source="a few UAVs per area (design)")
    n_candidates: int = knob(4, 1, 16, integer=True, unit="devices",
                             source="devices a UAV can schedule: its nearest (design)")
    n_devices: int = knob(24, 1, 200, integer=True, unit="devices", source="IoT devices per area (design)")
    n_clusters: int = knob(3, 1, 20, integer=True, unit="hotspots", source="Thomas cluster process (design)")
    cluster_std_frac: float = knob(0.1, 0.01, 1.0, unit="x area side", source="hotspot spread (design)")
    area_size_m: float = knob(500.0, 100.0, 3000.0, unit="m", source="square area side (design)")
    altitude_m: float = knob(100.0, 20.0, 500.0, unit="m", source="H = 100 m [1]")
    v_max: float = knob(30.0, 1.0, 60.0, unit="m/s", source="rotary-wing speeds up to ~30 m/s [2] Fig. 3 range")
    wind_speed: float = knob(0.0, 0.0, 20.0, unit="m/s", source="steady wind, direction uniform per episode (design)")
    environment: str = knob("urban", unit="-", choices=tuple(ENVIRONMENTS),
                            source="Al-Hourani et al. [6] Table I (a, b, eta_LoS, eta_NLoS)")
    carrier_ghz: float = knob(2.0, 0.5, 6.0, unit="GHz", source="2 GHz [6]")
    bandwidth_mhz: float = knob(1.0, 0.1, 20.0, unit="MHz", source="one band per UAV, TDMA (design)")
    tx_power_dbm: float = knob(14.0, 0.0, 30.0, unit="dBm", source="NB-IoT power class 14 dBm [9]")
    noise_psd_dbm_hz: float = knob(_MEC.noise_psd_dbm_hz, -180.0, -150.0, unit="dBm/Hz",
                                   source="thermal noise, as envs.mec_offloading")
    noise_figure_db: float = knob(_MEC.noise_figure_db, 0.0, 20.0, unit="dB",
                                  source="receiver noise figure, as envs.mec_offloading")
    arrival_rate: float = knob(1.5, 0.01, 20.0, unit="tasks/s/device",
                               source="mean; per device x U[0, 2] (as envs.mec_offloading's 1.5)")
    task_size_min_mbit: float = knob(_MEC.task_size_min_mbit, 0.01, 50.0, unit="Mbit",
                                     source="as envs.mec_offloading [4], [5]")
    task_size_max_mbit: float = knob(_MEC.task_size_max_mbit, 0.01, 50.0, unit="Mbit",
                                     source="as envs.mec_offloading [4], [5]")
    density_min: float = knob(_MEC.density_min, 10.0, 5000.0, unit="cycles/bit", source="as envs.mec_offloading")
    density_max: float = knob(_MEC.density_max, 10.0, 5000.0, unit="cycles/bit", source="as envs.mec_offloading")
    deadline_s: float = knob(10.0, 1.0, 100.0, unit="s", source="delay-tolerant IoT tasks (design) [5]")
    device_cpu_ghz: float = knob(_MEC.device_cpu_ghz, 0.1, 5.0, unit="GHz", source="as envs.mec_offloading [4]")
    kappa: float = knob(_MEC.kappa, 1e-29, 1e-25, unit="J s^2/cycle^3", source="device CPUs [3]")
    uav_cpu_ghz: float = knob(5.0, 0.5, 50.0, unit="GHz", source="UAV edge CPU (design)")
    kappa_uav: float = knob(1e-28, 1e-30, 1e-25, unit="J s^2/cycle^3", source="gamma_c = 1e-28 [7]")
    uav_weight_n: float = knob(20.0, 5.0, 100.0, unit="N", source="W = 20 N [2] Table I")
    air_density: float = knob(1.225, 0.7, 1.4, unit="kg/m^3", source="rho [2] Table I")
    rotor_radius_m: float = knob(0.4, 0.05, 2.0, unit="m", source="R [2] Table I")
    rotor_solidity: float = knob(0.05, 0.01, 0.2, unit="-", source="s [2] Table I")
    blade_angular_velocity: float = knob(300.0, 50.0, 1000.0, unit="rad/s", source="Omega [2] Table I")
    profile_drag_coeff: float = knob(0.012, 0.001, 0.05, unit="-", source="delta [2] Table I")
    induced_power_correction: float = knob(0.1, 0.0, 0.5, unit="-", source="k [2] Table I")
    fuselage_drag_ratio: float = knob(0.6, 0.1, 2.0, unit="-", source="d0 [2] Table I")
    energy_weight: float = knob(0.5, 0.0, 10.0, unit="-", source="reward weight of P_k / P(0) (design)")
    service_weight: float = knob(0.1, 0.0, 10.0, unit="1/Mbit",
                                 source="reward per Mbit this UAV offloaded: per-UAV credit (design)")
    drop_penalty: float = knob(2.0, 0.0, 100.0, unit="-", source="reward weight of the drop ratio (design) [5]")
    others_policy: str = knob("fly-to-backlog", unit="-", choices=OTHERS_POLICIES,
                              source="Gymnasium form only: the heuristic flying uav_1.. (design)")

    def check_constraints(self) -> None:
        for lo, hi in _ORDERED:
            if getattr(self, lo) > getattr(self, hi):
                raise EnvConfigError(f"{lo}={getattr(self, lo)!r} exceeds {hi}={getattr(self, hi)!r}; "
                                     f"allowed: {lo} <= {hi}")
        if self.n_candidates > self.n_devices:
            raise EnvConfigError(f"n_candidates={self.n_candidates!r} exceeds n_devices={self.n_devices!r}; "
                                 "allowed: n_candidates <= n_devices")
        if self.deadline_s < self.slot_s:
            raise EnvConfigError(f"deadline_s={self.deadline_s!r} is below slot_s={self.slot_s!r}; "
                                 "allowed: deadline_s >= slot_s")


__doc__ = document_knobs(__doc__, UavMecConfig)


# ---------------------------------------------------------------------- physics (array functions)
def los_probability(elevation_deg: np.ndarray | float, a: float, b: float) -> np.ndarray:
    """Al-Hourani et al. [6]: ``P_LoS = 1 / (1 + a exp(-b (theta - a)))``, theta the elevation in degrees."""
    return 1.0 / (1.0 + a * np.exp(-b * (np.asarray(elevation_deg, dtype=np.float64) - a)))


def mean_path_loss_db(horizontal_m: np.ndarray, altitude_m: float, carrier_hz: float, environment: str
                      ) -> np.ndarray:
    """Mean air-to-ground path loss (dB) of [6]: free space plus the LoS-probability-weighted excess loss."""
    a, b, eta_los, eta_nlos = ENVIRONMENTS[environment]
    h = np.asarray(horizontal_m, dtype=np.float64)
    d = np.sqrt(h * h + altitude_m * altitude_m)
    elev = np.degrees(np.arctan2(altitude_m, h))
    p = los_probability(elev, a, b)
    fspl = 20.0 * np.log10(4.0 * math.pi * carrier_hz * d / _C_LIGHT)
    return fspl + eta_los * p + eta_nlos * (1.0 - p)


def propulsion_constants(cfg: UavMecConfig) -> tuple[float, float, float, float, float]:
    """``(P0, Pi, U_tip, v0, fuselage coefficient 1/2 d0 rho s A)`` of [2] from the rotor knobs."""
    rho, R, s, W = cfg.air_density, cfg.rotor_radius_m, cfg.rotor_solidity, cfg.uav_weight_n
    A = math.pi * R * R
    omega = cfg.blade_angular_velocity
    p0 = cfg.profile_drag_coeff / 8.0 * rho * s * A * omega ** 3 * R ** 3
    pi_ = (1.0 + cfg.induced_power_correction) * W ** 1.5 / math.sqrt(2.0 * rho * A)
    return p0, pi_, omega * R, math.sqrt(W / (2.0 * rho * A)), 0.5 * cfg.fuselage_drag_ratio * rho * s * A


def rotary_wing_power(v: np.ndarray | float, cfg: UavMecConfig) -> np.ndarray:
    """Propulsion power (W) at airspeed ``v`` (m/s), Zeng, Xu & Zhang [2] eq. (12)."""
    p0, pi_, u_tip, v0, fus = propulsion_constants(cfg)
    v = np.asarray(v, dtype=np.float64)
    v2 = v * v
    induced = np.sqrt(np.maximum(np.sqrt(1.0 + v2 * v2 / (4.0 * v0 ** 4)) - v2 / (2.0 * v0 * v0), 0.0))
    return p0 * (1.0 + 3.0 * v2 / (u_tip * u_tip)) + pi_ * induced + fus * v2 * v


def max_endurance_speed(cfg: UavMecConfig, v_max: float | None = None) -> float:
    """The airspeed minimising ``rotary_wing_power`` on ``[0, v_max]`` (grid of 0.01 m/s)."""
    grid = np.arange(0.0, (cfg.v_max if v_max is None else v_max) + 1e-9, 0.01)
    return float(grid[np.argmin(rotary_wing_power(grid, cfg))])


# ---------------------------------------------------------------------- client configs
def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: UavMecConfig | None = None) -> list[UavMecConfig]:
    """``n_clients`` area configs around ``base``, spread proportional to ``heterogeneity`` h.

    Area side, device count and arrival rate are scaled by ``2**(h U(-1, 1))``; the wind is ``h U(0, 10)``
    m/s added to the base; the UAV weight (payload) by ``1 + 0.5 h U(0, 1)`` and the air density by
    ``1 - 0.15 h U(0, 1)`` (altitude, heat); with probability ``h`` an area's propagation environment is
    drawn uniformly from suburban / urban / dense-urban. ``n_uavs`` and ``n_candidates`` stay fixed (spaces).
    ``h = 0`` returns copies of ``base``; randomness only from ``default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else UavMecConfig()
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    m = {k: np.exp2(h * rng.uniform(-1.0, 1.0, n_clients)) for k in ("area", "devices", "rate")}
    wind = h * rng.uniform(0.0, 10.0, n_clients)
    weight = 1.0 + 0.5 * h * rng.uniform(0.0, 1.0, n_clients)
    rho = 1.0 - 0.15 * h * rng.uniform(0.0, 1.0, n_clients)
    switch = rng.random(n_clients) < h
    envs = rng.choice(["suburban", "urban", "dense-urban"], n_clients)

    def clip(name: str, value: float, low: float | None = None) -> float:
        return clip_knob(UavMecConfig, name, value, low)

    out = []
    for i in range(n_clients):
        out.append(dataclasses.replace(
            base,
            area_size_m=clip("area_size_m", base.area_size_m * m["area"][i]),
            n_devices=int(round(clip("n_devices", base.n_devices * m["devices"][i], base.n_candidates))),
            arrival_rate=clip("arrival_rate", base.arrival_rate * m["rate"][i]),
            wind_speed=clip("wind_speed", base.wind_speed + wind[i]),
            uav_weight_n=clip("uav_weight_n", base.uav_weight_n * weight[i]),
            air_density=clip("air_density", base.air_density * rho[i]),
            environment=str(envs[i]) if switch[i] else base.environment,
        ))
    return out


# ---------------------------------------------------------------------- the shared core
N_HOT = 2  # the most backlogged devices every UAV observes


def _obs_dim(cfg: UavMecConfig) -> int:
    return 10 + 4 * cfg.n_candidates + 2 * (cfg.n_uavs - 1) + 3 * min(N_HOT, cfg.n_devices)


class _Area:
    """The physics of one area (UAVs x devices as numpy arrays), driven by joint actions ``(K, 3)``."""

    def __init__(self, cfg: UavMecConfig) -> None:
        self.cfg = cfg
        self.K, self.N, self.C = cfg.n_uavs, cfg.n_devices, cfg.n_candidates
        self.L = float(cfg.area_size_m)
        self.tau = float(cfg.slot_s)
        self.H = float(cfg.altitude_m)
        self.n_ages = int(math.ceil(cfg.deadline_s / cfg.slot_s - 1e-9))   # slots a bit may wait
        self.f_loc = cfg.device_cpu_ghz * 1e9
        self.f_uav = cfg.uav_cpu_ghz * 1e9
        self.p_tx = 10.0 ** ((cfg.tx_power_dbm - 30.0) / 10.0)
        self.bw = cfg.bandwidth_mhz * 1e6
        noise = 10.0 ** ((cfg.noise_psd_dbm_hz + cfg.noise_figure_db - 30.0) / 10.0) * self.bw
        self.snr_scale = self.p_tx / noise
        self.fc = cfg.carrier_ghz * 1e9
        self.p_hover = float(rotary_wing_power(0.0, cfg))
        self.v_me = max_endurance_speed(cfg)
        self.obs_dim = _obs_dim(cfg)
        self.rng: np.random.Generator | None = None

    # ---- episode
    def reset(self, rng: np.random.Generator) -> None:
        cfg, N, K, L = self.cfg, self.N, self.K, self.L
        self.rng = rng
        centres = rng.uniform(0.0, L, (cfg.n_clusters, 2))
        which = rng.integers(cfg.n_clusters, size=N)
        self.dev = np.clip(centres[which] + rng.normal(0.0, cfg.cluster_std_frac * L, (N, 2)), 0.0, L)
        self.lam = cfg.arrival_rate * rng.uniform(0.0, 2.0, N)
        self.density = rng.uniform(cfg.density_min, cfg.density_max, N)
        phi = rng.uniform(-math.pi, math.pi)
        self.wind = cfg.wind_speed * np.array([math.cos(phi), math.sin(phi)])
        self.uav = rng.uniform(0.0, L, (K, 2))
        self.vel = np.zeros((K, 2))
        self.queue = np.zeros((N, self.n_ages))     # bits by age (column a: waited a slots), oldest last
        self.mean_bits = self.lam * self.tau * 0.5 * (cfg.task_size_min_mbit + cfg.task_size_max_mbit) * _MBIT
        self.local_bits = self.f_loc * self.tau / self.density        # local CPU capacity per slot (bits)
        self.t = 0
        self._candidates()

    def _candidates(self) -> None:
        """Each UAV's C nearest devices (by horizontal distance), nearest first, and their offload capacity."""
        diff = self.dev[None, :, :] - self.uav[:, None, :]                   # (K, N, 2)
        dist = np.hypot(diff[..., 0], diff[..., 1])
        C = self.C
        idx = np.argpartition(dist, C - 1, axis=1)[:, :C] if C < self.N else np.tile(np.arange(self.N), (self.K, 1))
        order = np.take_along_axis(dist, idx, axis=1).argsort(axis=1, kind="stable")
        self.cand = np.take_along_axis(idx, order, axis=1)                    # (K, C)
        self.cand_diff = np.take_along_axis(diff, self.cand[..., None], axis=1)
        self.cand_cap = self.offload_capacity(np.take_along_axis(dist, self.cand, axis=1), self.cand)

    def offload_capacity(self, horizontal_m: np.ndarray, devices: np.ndarray) -> np.ndarray:
        """Bits a slot can upload and compute: ``slot_s / (1 / r + c / f_uav)`` at these distances."""
        rate = self.rate(horizontal_m)
        return self.tau / (1.0 / rate + self.density[devices] / self.f_uav)

    def rate(self, horizontal_m: np.ndarray) -> np.ndarray:
        pl = mean_path_loss_db(horizontal_m, self.H, self.fc, self.cfg.environment)
        return self.bw * np.log2(1.0 + self.snr_scale * 10.0 ** (-pl / 10.0))

    def backlog(self) -> np.ndarray:
        return self.queue.sum(axis=1)

    def decode(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ground velocity (K, 2) m/s, candidate index (K,)) of joint actions ``(K, 3)`` in [-1, 1]."""
        a = np.clip(actions, -1.0, 1.0)
        v = a[:, :2] / np.maximum(np.hypot(a[:, 0], a[:, 1]), 1.0)[:, None]
        j = np.minimum(((a[:, 2] + 1.0) * 0.5 * self.C).astype(np.int64), self.C - 1)
        return v * self.cfg.v_max, j

    def encode(self, velocity: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Joint actions from (ground velocity (K, 2) m/s, candidate index): the inverse of ``decode``."""
        a = np.concatenate([np.asarray(velocity) / self.cfg.v_max,
                            (-1.0 + (2.0 * np.asarray(cand) + 1.0) / self.C)[:, None]], axis=1)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        """Advance one slot; returns (per-UAV reward (K,), area KPIs, per-UAV propulsion power (K,))."""
        cfg, tau = self.cfg, self.tau
        vel, j = self.decode(actions)
        start = self.uav
        end = np.clip(start + vel * tau, 0.0, self.L)
        self.vel = (end - start) / tau
        air = np.hypot(*(self.vel - self.wind).T)
        power = rotary_wing_power(air, cfg)                                  # (K,) W [2]
        mid = 0.5 * (start + end)
        self.uav = end
        # offloading: UAV k serves device cand[k, j_k]; conflicts go to the best channel
        dev = self.cand[np.arange(self.K), j]
        h = np.hypot(*(self.dev[dev] - mid).T)
        rate = self.rate(h)
        cap = tau / (1.0 / rate + self.density[dev] / self.f_uav)
        order = np.lexsort((-rate, dev))
        first = np.ones(self.K, dtype=bool)
        first[1:] = dev[order][1:] != dev[order][:-1]
        winner = np.zeros(self.K, dtype=bool)
        winner[order[first]] = True
        Q = self.backlog()
        local = np.minimum(Q, self.local_bits)
        off = np.zeros(self.K)
        off[winner] = np.minimum(Q[dev[winner]] - local[dev[winner]], cap[winner])
        served = local.copy()
        np.add.at(served, dev, off)
        # FIFO service, oldest first
        oldest_first = self.queue[:, ::-1]
        left = np.maximum(np.cumsum(oldest_first, axis=1) - served[:, None], 0.0)
        remaining = np.diff(left, axis=1, prepend=0.0)[:, ::-1]
        dropped = remaining[:, -1].sum()                                   # its deadline passes this slot
        self.queue[:, 1:] = remaining[:, :-1]
        # arrivals: Poisson counts of uniform sizes
        rng = self.rng
        counts = rng.poisson(self.lam * tau)
        u = rng.random(int(counts.sum()))
        sizes = (cfg.task_size_min_mbit + (cfg.task_size_max_mbit - cfg.task_size_min_mbit) * u) * _MBIT
        self.queue[:, 0] = np.bincount(np.repeat(np.arange(self.N), counts), weights=sizes, minlength=self.N)
        # energy and KPIs
        dens = self.density
        e_local = float((cfg.kappa * self.f_loc ** 2 * dens * local).sum())              # [3]
        e_tx = float((self.p_tx * off / rate).sum())                                     # [4]
        e_uav = float((cfg.kappa_uav * self.f_uav ** 2 * dens[dev] * off).sum())          # [7]
        e_prop = float(power.sum()) * tau                                                # [2]
        lam_bits = float(self.mean_bits.sum()) / tau
        backlog = float(self.queue.sum())
        delay = backlog / lam_bits if lam_bits > 0 else 0.0                              # Little [8]
        drop = float(dropped) / (lam_bits * tau) if lam_bits > 0 else 0.0
        self.t += 1
        self._candidates()
        reward = (cfg.service_weight * off / _MBIT
                  - (delay / cfg.deadline_s + cfg.drop_penalty * drop + cfg.energy_weight * power / self.p_hover))
        total_served = float(local.sum() + off.sum())
        kpis = {"delay": delay, "dropped": drop,
                "energy": (e_prop + e_uav + e_local + e_tx) / self.K,
                "device_energy": e_local + e_tx, "served": float(off.sum()) / _MBIT,
                "local": float(local.sum()) / _MBIT,
                "offload_share": float(off.sum()) / total_served if total_served > 0 else 0.0}
        return reward, kpis, power

    # ---- observations
    def observations(self) -> np.ndarray:
        """All UAVs' observations ``(K, obs_dim)`` in [-1, 1] (module docstring table)."""
        K, C, L = self.K, self.C, self.L
        obs = np.full((K, self.obs_dim), np.nan)   # NaN until written: a layout gap fails the space checks
        obs[:, 0:2] = 2.0 * self.uav / L - 1.0
        obs[:, 2:4] = self.vel / self.cfg.v_max
        Q = self.backlog()
        qc = Q[self.cand]
        feats = np.stack([self.cand_diff[..., 0] / L, self.cand_diff[..., 1] / L, qc / (qc + _MBIT),
                          self.cand_cap / (self.cand_cap + _MBIT)], axis=-1)
        obs[:, 4:4 + 4 * C] = feats.reshape(K, 4 * C)
        i = 4 + 4 * C
        if K > 1:
            rel = self.uav[None, :, :] - self.uav[:, None, :]               # (K, K, 2)
            d = np.hypot(rel[..., 0], rel[..., 1]) + np.eye(K) * 1e18
            order = np.argsort(d, axis=1, kind="stable")[:, :K - 1]
            obs[:, i:i + 2 * (K - 1)] = (np.take_along_axis(rel, order[..., None], axis=1) / L).reshape(K, -1)
            i += 2 * (K - 1)
        tot = float(Q.sum())
        centroid = (Q @ self.dev) / tot if tot > 0 else np.full(2, 0.5 * L)
        obs[:, i:i + 2] = (centroid[None, :] - self.uav) / L
        obs[:, i + 2] = tot / (tot + self.N * _MBIT)
        obs[:, i + 3:i + 5] = self.wind / 15.0
        obs[:, i + 5] = 1.0 - 2.0 * self.t / self.cfg.episode_slots
        i += 6
        excess = np.maximum(Q - self.local_bits, 0.0)
        for n in np.argsort(-excess, kind="stable")[:min(N_HOT, self.N)]:
            obs[:, i:i + 2] = (self.dev[n][None, :] - self.uav) / L
            obs[:, i + 2] = excess[n] / (excess[n] + _MBIT)
            i += 3
        return np.clip(obs, -1.0, 1.0).astype(np.float32)

    # ---- heuristic building blocks
    def best_candidates(self) -> np.ndarray:
        """Per UAV, the candidate that would offload the most bits (backlog left after local CPU, capped)."""
        Q = self.backlog()
        excess = np.maximum(Q - self.local_bits, 0.0)[self.cand]
        gain = np.minimum(excess, self.cand_cap)
        return np.argmax(gain - 1e-9 * np.arange(self.C)[None, :], axis=1)    # ties: the nearest

    def fly_to(self, points: np.ndarray, speed_cap: float | None = None) -> np.ndarray:
        """Ground velocities (K, 2) taking each UAV towards ``points`` (K, 2), arriving within the slot if it
        can, at most at ``speed_cap`` (default ``v_max``)."""
        d = points - self.uav
        dist = np.hypot(d[:, 0], d[:, 1])
        vmax = self.cfg.v_max if speed_cap is None else min(speed_cap, self.cfg.v_max)
        speed = np.minimum(dist / self.tau, vmax)
        return d * (speed / np.maximum(dist, 1e-9))[:, None]

    def backlog_targets(self) -> np.ndarray:
        """Greedy assignment: the K largest device backlogs (after local CPU) each take the nearest free UAV."""
        Q = np.maximum(self.backlog() - self.local_bits, 0.0)
        targets = self.uav.copy()
        free = np.ones(self.K, dtype=bool)
        for n in np.argsort(-Q, kind="stable")[:self.K]:
            if Q[n] <= 0.0:
                break
            d = np.hypot(*(self.uav - self.dev[n]).T)
            d[~free] = np.inf
            k = int(np.argmin(d))
            targets[k] = self.dev[n]
            free[k] = False
        return targets

    def circle_points(self) -> np.ndarray:
        """Where each UAV should be next slot on a circle of radius L/4 about the centre, flown at the
        maximum-endurance speed, the UAVs evenly phased."""
        r = 0.25 * self.L
        omega = min(self.v_me, self.cfg.v_max) / r
        phase = 2.0 * math.pi * np.arange(self.K) / self.K + omega * (self.t + 1) * self.tau
        return 0.5 * self.L + r * np.stack([np.cos(phase), np.sin(phase)], axis=1)

    def heuristic(self, name: str) -> np.ndarray:
        """Joint actions ``(K, 3)`` of a named heuristic (hover, fly-to-backlog, circle)."""
        if name == "hover":
            vel = self.fly_to(np.full((self.K, 2), 0.5 * self.L))
        elif name == "fly-to-backlog":
            vel = self.fly_to(self.backlog_targets())
        elif name == "circle":
            vel = self.fly_to(self.circle_points())
        else:
            raise EnvConfigError(f"heuristic {name!r} is not known; allowed: hover, fly-to-backlog, circle")
        return self.encode(vel, self.best_candidates())


# ---------------------------------------------------------------------- PettingZoo form
def _spaces(cfg: UavMecConfig) -> tuple[spaces.Box, spaces.Box]:
    return (spaces.Box(-1.0, 1.0, (_obs_dim(cfg),), np.float32), spaces.Box(-1.0, 1.0, (3,), np.float32))


def _joint(actions: dict[str, Any], agents: list[str], K: int) -> np.ndarray:
    a = np.zeros((K, 3))
    for i, name in enumerate(agents):
        if name in actions and actions[name] is not None:
            v = np.asarray(actions[name], dtype=np.float64)
            if v.shape != (3,) or not np.isfinite(v).all():
                raise gym.error.InvalidAction(f"action {actions[name]!r} of {name}: allowed: 3 finite numbers")
            a[i] = v
    return a


class UavMecParallelEnv(ParallelEnv):
    """K UAVs of one area, each an agent (module docstring)."""

    metadata = {"name": "uav_mec_v0", "render_modes": ["ansi"], "render_fps": 1, "is_parallelizable": True}

    def __init__(self, config: UavMecConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(UavMecConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        self.area = _Area(cfg)
        self.possible_agents = [f"uav_{k}" for k in range(cfg.n_uavs)]
        self.agents: list[str] = []
        obs_space, act_space = _spaces(cfg)
        self._obs_spaces = {a: obs_space for a in self.possible_agents}
        self._act_spaces = {a: act_space for a in self.possible_agents}
        self.max_cycles = cfg.episode_slots
        self._rng: np.random.Generator | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.area.reset(np.random.default_rng(self._rng.integers(0, 2**63 - 1)))
        self.agents = list(self.possible_agents)
        obs = self.area.observations()
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise gym.error.ResetNeeded("call reset() before step() (the episode is over)")
        area = self.area
        reward, kpis, power = area.step(_joint(actions, self.possible_agents, area.K))
        obs = area.observations()
        trunc = area.t >= self.config.episode_slots
        out = ({}, {}, {}, {}, {})
        for i, a in enumerate(self.agents):
            out[0][a] = obs[i]
            out[1][a] = float(reward[i])
            out[2][a] = False
            out[3][a] = trunc
            out[4][a] = {**kpis, "propulsion_power": float(power[i])}
        if trunc:
            self.agents = []
        return out

    def render(self) -> str | None:
        return _render(self.area) if self.render_mode == "ansi" else None

    def close(self) -> None:
        pass


def parallel_env(config: UavMecConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> UavMecParallelEnv:
    """PettingZoo ``ParallelEnv`` of the ``n_uavs`` UAVs of one area."""
    return UavMecParallelEnv(config, render_mode=render_mode, **overrides)


def _render(area: _Area) -> str:
    if area.rng is None:
        return "UavMec (not reset)"
    pos = " ".join(f"({x:.0f},{y:.0f})" for x, y in area.uav)
    return f"t={area.t} uavs={pos} backlog={area.backlog().sum() / _MBIT:.2f}Mbit"


# ---------------------------------------------------------------------- Gymnasium form
class UavMecEnv(gym.Env[np.ndarray, np.ndarray]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, config: UavMecConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(UavMecConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        self.area = _Area(cfg)
        self.observation_space, self.action_space = _spaces(cfg)
        self._has_reset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.area.reset(np.random.default_rng(self.np_random.integers(0, 2**63 - 1)))
        self._has_reset = True
        return self.area.observations()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (3,) or not np.isfinite(a).all():
            raise gym.error.InvalidAction(f"action={action!r}; allowed: 3 finite numbers in [-1, 1]")
        area = self.area
        joint = area.heuristic(self.config.others_policy) if area.K > 1 else np.zeros((1, 3))
        joint = joint.astype(np.float64)
        joint[0] = a
        reward, kpis, power = area.step(joint)
        trunc = area.t >= self.config.episode_slots
        return (area.observations()[0], float(reward[0]), False, trunc,
                {**kpis, "propulsion_power": float(power[0])})

    def render(self) -> str | None:
        return _render(self.area) if self.render_mode == "ansi" else None


# ---------------------------------------------------------------------- baselines
def _single(name: str):
    def factory(env: gym.Env, seed: int) -> Policy:
        area = env.unwrapped.area
        return lambda obs: area.heuristic(name)[0]
    return factory


def _random(env: gym.Env, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, 3).astype(np.float32)


def _parallel(name: str):
    def factory(env: UavMecParallelEnv, seed: int):
        area = env.area

        def policy(obs: dict[str, Any]) -> dict[str, Any]:
            joint = area.heuristic(name)
            return {a: joint[int(a.split("_")[1])] for a in env.agents}
        return policy
    return factory


def _parallel_random(env: UavMecParallelEnv, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: {a: rng.uniform(-1.0, 1.0, 3).astype(np.float32) for a in env.agents}


BASELINES = {"hover": _single("hover"), "fly-to-backlog": _single("fly-to-backlog"),
             "circle": _single("circle"), "random": _random}
PARALLEL_BASELINES = {"hover": _parallel("hover"), "fly-to-backlog": _parallel("fly-to-backlog"),
                      "circle": _parallel("circle"), "random": _parallel_random}

ENTRY = EnvEntry(
    env_id="frl/UavMec-v0",
    name="uav-mec",
    entry_point="envs.uav_mec:UavMecEnv",
    config_cls=UavMecConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("delay", "energy", "dropped", "propulsion_power", "device_energy", "served", "offload_share"),
    lower_is_better=("delay", "energy", "dropped", "propulsion_power", "device_energy"),
    summary="K rotary-wing UAV edge servers choose trajectories and devices to serve (delay, energy, drops)",
    parallel_entry_point="envs.uav_mec:parallel_env",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)
