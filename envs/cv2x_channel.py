"""Channel model of the C-V2X env: 3GPP TR 36.885 road layouts, V2I / V2V path loss and block fading.

Pure functions over arrays with a leading axis of links (every (transmitter, receiver, RB) gain of a slot
at once): the urban-grid and freeway layouts of TR 36.885 A.1.2 [3], V2I path loss of [1] Table II /
[3] Table A.1.4-1, WINNER+ B1 V2V path loss [4] and Rayleigh block fading with a Doppler-dependent
coherence time [7]. References [n] are those of ``envs.cv2x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FADING_MAX = 50.0         # |h|^2 cap (P(Exp(1) > 50) ~ 2e-22): keeps the features provably in bounds


@dataclass(frozen=True)
class _Layout:
    """Road layout of a scenario (TR 36.885 A.1.2 [3])."""

    block_x: float          # spacing of the vertical roads (x); inf: none (highway)
    block_y: float          # spacing of the horizontal roads (y)
    n_vroads: int           # vertical roads (along y)
    n_hroads: int           # horizontal roads (along x)
    period_x: float         # wrap-around period in x
    period_y: float         # wrap-around period in y (inf: no wrap)
    lanes: int              # lanes per direction
    lane_w: float           # lane width
    bs_x: float
    bs_y: float
    los_always: bool        # highway: V2V LOS in all cases [3]
    los_width: float        # urban: LOS when min(|dx|, |dy|) < road width


_LAYOUTS = {
    "urban": _Layout(block_x=250.0, block_y=433.0, n_vroads=3, n_hroads=3, period_x=750.0, period_y=1299.0,
                     lanes=2, lane_w=3.5, bs_x=375.0, bs_y=649.5, los_always=False, los_width=14.0),
    "highway": _Layout(block_x=math.inf, block_y=math.inf, n_vroads=0, n_hroads=1, period_x=2000.0,
                       period_y=math.inf, lanes=3, lane_w=4.0, bs_x=1000.0, bs_y=35.0, los_always=True,
                       los_width=0.0),
}


def _lane_km(lay: _Layout) -> float:
    length = lay.n_hroads * lay.period_x + (lay.n_vroads * lay.period_y if lay.n_vroads else 0.0)
    return 2 * lay.lanes * length / 1000.0


def pathloss_v2i_db(d3_m: np.ndarray) -> np.ndarray:
    """V2I path loss ``128.1 + 37.6 log10(d / 1 km)`` ([1] Table II, [3] Table A.1.4-1)."""
    return 128.1 + 37.6 * np.log10(np.maximum(d3_m, 1.0) * 1e-3)


def pathloss_v2v_db(dx: np.ndarray, dy: np.ndarray, fc_ghz: float, h_tx: float, h_rx: float,
                    los_always: bool, los_width: float) -> np.ndarray:
    """WINNER+ B1 path loss ([4] Table 4-4, [3] Table A.1.4-1); Manhattan NLOS unless ``los_always``.

    ``dx``, ``dy``: distances along the two street axes (m). LOS: ``22.7 log10 d + 41 + 20 log10(f_c/5)`` below
    the breakpoint ``d'_BP = 4 h'_tx h'_rx f_c / c`` (effective heights ``h' = h - 1 m``), ``40 log10 d + 9.45
    - 17.3 log10 h'_tx - 17.3 log10 h'_rx + 2.7 log10(f_c/5)`` beyond, ``d >= 3 m``. NLOS (Manhattan):
    ``min(PL(dx, dy), PL(dy, dx))``, ``PL(d_k, d_l) = PL_LOS(d_k) + 20 - 12.5 n_j + 10 n_j log10 d_l
    + 3 log10(f_c/5)``, ``n_j = max(2.8 - 0.0024 d_k, 1.84)``; LOS when ``min(dx, dy) < los_width``.
    """
    he_t, he_r = h_tx - 1.0, h_rx - 1.0                         # effective heights (1 m environment)
    d_bp = 4.0 * he_t * he_r * fc_ghz * 1e9 / 3e8
    f_los = 41.0 + 20.0 * math.log10(fc_ghz / 5.0)
    c_far = 9.45 - 17.3 * math.log10(he_t) - 17.3 * math.log10(he_r) + 2.7 * math.log10(fc_ghz / 5.0)
    dx, dy = np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    if dx.shape != dy.shape:
        dx, dy = np.broadcast_arrays(dx, dy)
    d = np.stack([np.hypot(dx, dy), dx, dy])                    # LOS at d, and along each street
    np.maximum(d, 3.0, out=d)                                   # PL at 3 m below 3 m [3]
    lg = np.log10(d)
    pl = np.where(d < d_bp, 22.7 * lg + f_los, 40.0 * lg + c_far)
    if los_always:
        return pl[0]
    nj = np.maximum(2.8 - 0.0024 * d[1:], 1.84)                 # rows: d_k = dx, dy
    nlos = pl[1:] + (20.0 + 3.0 * math.log10(fc_ghz / 5.0)) - 12.5 * nj + 10.0 * nj * lg[2:0:-1]
    return np.where(np.minimum(dx, dy) < los_width, pl[0], nlos.min(axis=0))


def _block_rayleigh(fd_hz: np.ndarray, n_slots: int, rng: np.random.Generator) -> np.ndarray:
    """Rayleigh block fading power ``|h|^2 ~ Exp(1)``, shape [n_slots, L], one Doppler ``fd_hz`` per element.

    Each element keeps its gain for the coherence time ``T_c = 0.423 / f_D`` [7] rounded to whole 1 ms slots
    (at least 1: i.i.d. per slot as in [1]); block boundaries have a random phase per element.
    """
    with np.errstate(divide="ignore"):
        nc = np.clip(np.rint(0.423e3 / fd_hz), 1, n_slots).astype(np.int64)   # slots per block
    off = (rng.random(fd_hz.size) * nc).astype(np.int64)
    n_blocks = (n_slots - 1 + off) // nc + 1                                 # blocks each element needs
    start = np.cumsum(n_blocks) - n_blocks
    blocks = rng.standard_exponential(int(start[-1] + n_blocks[-1]))
    np.minimum(blocks, FADING_MAX, out=blocks)
    # block index floor((t + off) / nc) + start, in floating point: (n + 0.5) / d stays >= 0.5 / d away from
    # an integer, far beyond rounding error, and truncation is the floor for non-negative values
    idx = _SLOTS[:n_slots, None] + (off + 0.5)
    idx *= 1.0 / nc
    idx += start
    return blocks.take(idx.astype(np.int64))


_SLOTS = np.arange(1001, dtype=np.float64)
