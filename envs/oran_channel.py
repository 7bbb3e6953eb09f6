"""Channel model of the O-RAN access env: 3GPP TR 38.901 path loss, LOS probability, shadowing fields, SINR.

Pure functions over arrays (a leading axis of UEs, cells or map points), shared by the deployment's
received-power map and the env core. Path loss and LOS: TR 38.901 Tables 7.4.1-1 and 7.4.2-1 (UMa / UMi
street canyon); shadowing: log-normal with the Table 7.4.1-1 sigmas, spatially correlated with the
Table 7.5-6 decorrelation distances; noise: -174 dBm/Hz thermal plus the UE noise figure (TR 36.814).
"""

from __future__ import annotations

import math

import numpy as np

from envs.registry import EnvConfigError

# --- physical constants and fixed model parameters (cited) ---------------------------------------------
C_LIGHT = 299_792_458.0                 # m/s
H_UT = 1.5                              # UE height, m (TR 38.901 Table 7.2-1)
H_BS_UMA = 25.0                         # macro height, m (TR 38.901 Table 7.2-1 UMa)
H_BS_UMI = 10.0                         # small-cell height, m (TR 38.901 Table 7.2-1 UMi)
MIN_D2D = 10.0                          # path-loss validity lower bound, m (TR 38.901 Table 7.4.1-1)
SF_SIGMA = {"uma": (4.0, 6.0), "umi": (4.0, 7.82)}          # (LOS, NLOS) dB, TR 38.901 Table 7.4.1-1
SF_DECORR = {"uma": 50.0, "umi": 13.0}  # NLOS shadowing decorrelation, m (TR 38.901 Table 7.5-6; LOS 37 / 10)
LOS_DECORR = 50.0                       # LOS-state correlation distance, m (TR 38.901 Table 7.6.3.1-2)
SECTOR_BORESIGHT_DEG = (30.0, 150.0, 270.0)                 # TR 36.814 / TR 38.901 3-sector layout
SECTOR_HPBW_DEG, SECTOR_MAX_ATT_DB = 65.0, 30.0             # TR 38.901 Table 7.3-1
SECTOR_MAX_GAIN_DBI = 8.0                                   # G_E,max, TR 38.901 Table 7.3-1
L3_REF_PERIOD_S = 0.2           # sample period X the filterCoefficient assumes (TS 36.331 5.5.3.2: 200 ms)


def sector_gain_db(phi_deg: np.ndarray, boresight_deg: float) -> np.ndarray:
    """Horizontal element gain G_E,max + A_E,H(phi) in dBi, TR 38.901 Table 7.3-1.

    A_E,H(phi) = -min(12 (phi / phi_3dB)^2, A_m), phi_3dB = 65 deg, A_m = 30 dB, G_E,max = 8 dBi, with phi the
    azimuth off the sector boresight wrapped to [-180, 180). The vertical cut is not modelled (theta = 90 deg:
    UEs at ground level, no downtilt), so the full pattern's SLA_V and the vertical/horizontal combination
    reduce to the horizontal cut.
    """
    phi = (np.asarray(phi_deg) - boresight_deg + 180.0) % 360.0 - 180.0
    return SECTOR_MAX_GAIN_DBI - np.minimum(12.0 * (phi / SECTOR_HPBW_DEG) ** 2, SECTOR_MAX_ATT_DB)


def l3_filter_weight(k: int, step_s: float) -> float:
    """Per-step weight a of the layer-3 filter F_n = (1 - a) F_(n-1) + a M_n (TS 38.331 5.5.3.2).

    a = 1 / 2^(k/4) for filterCoefficient k at the sample period X the spec assumes (one intra-frequency L1
    measurement period, TS 38.133; X = 200 ms in LTE's TS 36.331 5.5.3.2, taken here); at another input rate
    "the UE shall adapt the filter such that the time characteristics of the filter are preserved", i.e. the
    memory (1 - a) is rescaled to (1 - a)^(step / X).
    k = 0 is no filtering (a = 1).
    """
    a_ref = 2.0 ** (-k / 4.0)
    return 1.0 - (1.0 - a_ref) ** (step_s / L3_REF_PERIOD_S)


def truncated_shannon(sinr_lin: np.ndarray, alpha: float, se_max: float, sinr_min_db: float) -> np.ndarray:
    """Spectral efficiency (bit/s/Hz) by the truncated Shannon bound of TR 36.942 Annex A.1 (A.2).

    Thr = 0 for SINR < SINR_min, alpha log2(1 + SINR) between, Thr_max above SINR_max (where the two meet).
    TR 36.942 Table A.2: alpha = 0.6 (implementation losses), SINR_min = -10 dB, Thr_max = 4.4 b/s/Hz (DL,
    64QAM); 7.4 b/s/Hz is the NR maximum (256QAM, code rate 948/1024, TS 38.214 Table 5.1.3.1-2).
    """
    s = np.asarray(sinr_lin, dtype=np.float64)
    se = np.minimum(alpha * np.log2(1.0 + s), se_max)
    return np.where(s >= 10.0 ** (sinr_min_db / 10.0), se, 0.0)


def breakpoint_distance(fc_ghz: float, h_bs: float, h_ut: float = H_UT) -> float:
    """d'_BP = 4 h'_BS h'_UT f_c / c with effective heights h' = h - 1 m (TR 38.901 Table 7.4.1-1 note 1)."""
    return 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / C_LIGHT


def _as_float(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float64)


def pathloss_db(d2d: np.ndarray | float, los: np.ndarray | bool, *, scenario: str, fc_ghz: float,
                h_bs: float | None = None, h_ut: float = H_UT) -> np.ndarray:
    """TR 38.901 Table 7.4.1-1 path loss in dB for ``scenario`` 'uma' or 'umi' (street canyon).

    d2d in metres (clamped to the 10 m validity bound), fc in GHz, heights in metres. LOS uses PL1 up to
    the breakpoint d'_BP and PL2 beyond; NLOS is max(PL_LOS, PL'_NLOS) as the table prescribes.
    float32 input stays float32 (the map builder), anything else is computed in float64.
    """
    if scenario not in ("uma", "umi"):
        raise EnvConfigError(f"scenario={scenario!r} is not allowed; allowed: uma, umi")
    h_bs = (H_BS_UMA if scenario == "uma" else H_BS_UMI) if h_bs is None else h_bs
    d2d = np.maximum(_as_float(d2d), MIN_D2D)
    dh2 = (h_bs - h_ut) ** 2
    lg = 0.5 * np.log10(d2d * d2d + dh2)          # log10(d3D)
    lf = math.log10(fc_ghz)
    d_bp = breakpoint_distance(fc_ghz, h_bs, h_ut)
    if scenario == "uma":
        pl1 = 28.0 + 20.0 * lf + 22.0 * lg
        pl2 = 28.0 + 20.0 * lf - 9.0 * math.log10(d_bp * d_bp + dh2) + 40.0 * lg
        pl_nlos = 13.54 + 20.0 * lf - 0.6 * (h_ut - 1.5) + 39.08 * lg
    else:
        pl1 = 32.4 + 20.0 * lf + 21.0 * lg
        pl2 = 32.4 + 20.0 * lf - 9.5 * math.log10(d_bp * d_bp + dh2) + 40.0 * lg
        pl_nlos = 22.4 + 21.3 * lf - 0.3 * (h_ut - 1.5) + 35.3 * lg
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def los_probability(d2d: np.ndarray | float, *, scenario: str) -> np.ndarray:
    """TR 38.901 Table 7.4.2-1 LOS probability (outdoor UE at h_UT <= 13 m, so C'(h_UT) = 0 for UMa)."""
    d = np.maximum(_as_float(d2d), 1e-3)
    scale = 63.0 if scenario == "uma" else 36.0
    p = 18.0 / d + np.exp(-d / scale) * (1.0 - 18.0 / d)
    return np.where(d <= 18.0, 1.0, p).astype(d.dtype)


def noise_mw(bandwidth_mhz: float, noise_figure_db: float) -> float:
    """Thermal noise N0 B with N0 = -174 dBm/Hz plus the UE noise figure, in mW."""
    return 10.0 ** ((-174.0 + 10.0 * math.log10(bandwidth_mhz * 1e6) + noise_figure_db) / 10.0)


def sinr(p_rx_mw: np.ndarray, serving: np.ndarray | int, noise: float,
         activity: np.ndarray | None = None) -> np.ndarray:
    """Downlink SINR of UEs served by ``serving``: P_s / (sum_{c != s} a_c P_c + N).

    ``p_rx_mw`` is [..., C] received power (mW) from every cell, ``activity`` the [C] interference weights
    (default: every cell transmits).
    """
    p = np.asarray(p_rx_mw, dtype=np.float64)
    a = np.ones(p.shape[-1]) if activity is None else np.asarray(activity, dtype=np.float64)
    s = np.asarray(serving)
    ps = np.take_along_axis(p, s[..., None], axis=-1)[..., 0]
    interference = (p * a).sum(-1) - a[s] * ps
    return ps / (interference + noise)


def _std_normal_cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) by the tanh approximation 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), |error| < 2e-4."""
    return 0.5 * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def _gaussian_field(rng: np.random.Generator, gy: int, gx: int, rho: np.ndarray) -> np.ndarray:
    """Unit-variance float32 Gaussian fields [gy * gx, S] with correlation rho_s^(|di| + |dj|).

    Separable first-order auto-regression along y then x: Gudmundson's exponential correlation per axis.
    """
    rho = rho.astype(np.float32)
    innov = np.sqrt(1.0 - rho * rho).astype(np.float32)
    f = rng.standard_normal((gy, gx, rho.size), dtype=np.float32)
    for i in range(1, gy):             # along y; each step is vectorised over x and fields
        f[i] *= innov
        f[i] += rho * f[i - 1]
    f = np.ascontiguousarray(f.transpose(1, 0, 2))
    for j in range(1, gx):             # along x (transposed so that the slices are contiguous)
        f[j] *= innov
        f[j] += rho * f[j - 1]
    return np.ascontiguousarray(f.transpose(1, 0, 2)).reshape(gy * gx, rho.size)
