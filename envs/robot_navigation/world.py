"""The world of the navigation envs: obstacle layouts, reachability, spawning and the lidar ray caster.

Geometry only (no episode logic): layouts of circles and axis-aligned boxes per ``map_family``, exact
clearances, the occupancy-grid reachability check that guarantees a reachable goal, start/goal sampling, and
``Lidar``, the one ray caster (vectorised over N robots) used by the single env, the swarm, ``ray_cast`` and
the tests. References [n] are those of the package docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.robot_navigation.config import (
    _GOAL_CLEAR,
    _GRID_CELL,
    _MEAN_OBSTACLE_AREA,
    _SPAWN_CLEAR,
    _WALL,
    RobotNavigationConfig,
)

_INF = math.inf
_PI = math.pi
_TWO_PI = 2.0 * math.pi


@dataclass
class _Layout:
    """Obstacles of one world: circles (centre as complex, radius) and axis-aligned boxes ((2, R) lo / hi)."""

    cc: np.ndarray        # (C,) complex centres
    cr: np.ndarray        # (C,) radii
    lo: np.ndarray        # (2, R) box minima (x row, y row); the first four boxes are the border walls
    hi: np.ndarray        # (2, R) box maxima
    doors: np.ndarray     # (D,) complex door centres (corridor family), for keeping clutter out


def _border(L: float) -> tuple[list[list[float]], list[list[float]]]:
    w = _WALL
    lo = [[-w, L, -w, -w], [-w, -w, -w, L]]
    hi = [[0.0, L + w, L + w, L + w], [L + w, L + w, 0.0, L + w]]
    return lo, hi


def _clutter(rng: np.random.Generator, L: float, density: float, doors: np.ndarray, door_keepout: float
             ) -> tuple[list[complex], list[float], list[list[float]], list[list[float]]]:
    n = int(round(density * L * L / _MEAN_OBSTACLE_AREA))
    cc: list[complex] = []
    cr: list[float] = []
    lo: list[list[float]] = [[], []]
    hi: list[list[float]] = [[], []]
    if n == 0:
        return cc, cr, lo, hi
    m = 3 * n
    kind = rng.random(m) < 0.5
    cx = rng.uniform(0.0, L, m)
    cy = rng.uniform(0.0, L, m)
    rad = rng.uniform(0.1, 0.3, m)
    hx = rng.uniform(0.1, 0.4, m)
    hy = rng.uniform(0.1, 0.4, m)
    ok = np.ones(m, dtype=bool)
    if doors.size:
        ok = np.abs((cx + 1j * cy)[:, None] - doors[None, :]).min(axis=1) > door_keepout
    idx = np.flatnonzero(ok)[:n]
    for i in idx.tolist():
        if kind[i]:
            cc.append(complex(cx[i], cy[i]))
            cr.append(float(rad[i]))
        else:
            lo[0].append(float(cx[i] - hx[i]))
            lo[1].append(float(cy[i] - hy[i]))
            hi[0].append(float(cx[i] + hx[i]))
            hi[1].append(float(cy[i] + hy[i]))
    return cc, cr, lo, hi


def _make_layout(rng: np.random.Generator, cfg: RobotNavigationConfig) -> _Layout:
    L = float(cfg.arena_size)
    lo, hi = _border(L)
    cc: list[complex] = []
    cr: list[float] = []
    doors: list[complex] = []
    keepout = 0.0
    if cfg.map_family == "corridor":
        n_walls = max(1, int(L / 1.5))
        door = min(max(0.8, 6.0 * cfg.robot_radius), L - 0.4)
        vertical = bool(rng.random() < 0.5)
        centers = rng.uniform(door / 2, L - door / 2, n_walls)
        half = _WALL / 2
        keepout = door / 2 + 0.5              # clutter centres stay this far from a door centre
        for k in range(n_walls):
            y = L * (k + 1) / (n_walls + 1)
            c = float(centers[k])
            for a, b in ((0.0, c - door / 2), (c + door / 2, L)):
                if b - a < _WALL:           # no slivers: every box is >= 0.1 m on each side
                    continue
                box_lo, box_hi = (a, y - half), (b, y + half)
                if vertical:
                    box_lo, box_hi = box_lo[::-1], box_hi[::-1]
                lo[0].append(box_lo[0])
                lo[1].append(box_lo[1])
                hi[0].append(box_hi[0])
                hi[1].append(box_hi[1])
            doors.append(complex(y, c) if vertical else complex(c, y))
    if cfg.map_family != "open":
        dd = np.asarray(doors, dtype=np.complex128)
        c2, r2, lo2, hi2 = _clutter(rng, L, float(cfg.obstacle_density), dd, keepout)
        cc += c2
        cr += r2
        lo[0] += lo2[0]
        lo[1] += lo2[1]
        hi[0] += hi2[0]
        hi[1] += hi2[1]
    return _Layout(cc=np.asarray(cc, dtype=np.complex128), cr=np.asarray(cr, dtype=np.float64),
                   lo=np.asarray(lo, dtype=np.float64), hi=np.asarray(hi, dtype=np.float64),
                   doors=np.asarray(doors, dtype=np.complex128))


def _clearance_points(pts: np.ndarray, lay: _Layout) -> np.ndarray:
    """Distance (m) from each point (complex array) to the nearest obstacle surface (0 inside a box)."""
    d = np.full(pts.shape, _INF)
    if lay.cc.size:
        d = np.minimum(d, (np.abs(pts[:, None] - lay.cc[None, :]) - lay.cr[None, :]).min(axis=1))
    px = pts.real[:, None]
    py = pts.imag[:, None]
    ox = np.maximum(np.maximum(lay.lo[0][None, :] - px, px - lay.hi[0][None, :]), 0.0)
    oy = np.maximum(np.maximum(lay.lo[1][None, :] - py, py - lay.hi[1][None, :]), 0.0)
    return np.minimum(d, np.sqrt(ox * ox + oy * oy).min(axis=1))


class Lidar:
    """The one lidar ray caster: exact first-hit ranges of ``n_beams`` beams for N robots at once.

    Beams are at bearings ``theta + 2 pi k / n_beams`` from each robot centre; they hit the layout's circles
    (``t = along - sqrt(r^2 - across^2)`` in the beam's frame) and boxes (slab method [10]) and, when
    ``robot_radius`` is given, the other robots as discs (a robot never sees its own disc). Every
    (robot, obstacle, beam) candidate is evaluated in one vectorised pass into buffers allocated once per
    layout: candidate distances go into ``TV`` and a validity witness into ``MV`` (both > 0 iff the beam really
    hits that obstacle ahead); ``U = copysign(1 / TV, min(TV, MV))`` is then > 0 exactly for real hits, so one
    ``fmax`` reduction over obstacles gives ``1 / nearest hit`` per beam (a virtual wall at ``1e9`` units
    reads for a beam with no hit). Lengths are in units of ``unit`` metres (the single env works in units of
    ``lidar_range_max``, the swarm in metres). The 1e-12 rad offset keeps beams off the exact axes, so the
    slab method never divides by an exact zero for round headings; it changes no reading.
    """

    NO_HIT = 1e9

    def __init__(self, n_beams: int, n_robots: int = 1, unit: float = 1.0, robot_radius: float | None = None
                 ) -> None:
        self.n_beams = B = int(n_beams)
        self.n_robots = N = int(n_robots)
        self._k = 1.0 / unit
        self.see_robots = robot_radius is not None
        self._rob_r = 0.0 if robot_radius is None else robot_radius * self._k
        self.beam_angles = _TWO_PI * np.arange(B) / B
        self._E = np.exp(-1j * (self.beam_angles + 1e-12))             # conj(beam direction) at heading 0
        self._SGN = np.array([1.0, -1.0]).reshape(2, 1)
        self._CU = np.empty((N, B), dtype=np.complex128)                # conj(beam directions) now
        self._CUV = self._CU.view(np.float64).reshape(N, B, 2).transpose(0, 2, 1)   # (cos, -sin) view
        self._INV = np.empty((N, 2, B))                                 # 1 / (cos, sin) of each beam
        self._P = np.zeros((N, 1, 2, 1, 1))                             # robot positions for the slabs
        self._Px = self._P[:, 0, 0, 0, 0]
        self._Py = self._P[:, 0, 1, 0, 0]
        self._PC = np.zeros(N, dtype=np.complex128)                      # robot positions for the circles
        self.scan = np.ones((N, B))                                     # noise-free ranges of the last cast
        self.layout: _Layout | None = None

    def set_layout(self, lay: _Layout) -> None:
        """Cache a layout in lidar units and allocate every buffer of the hot path (robots x obstacles x beams)."""
        N, B, k = self.n_robots, self.n_beams, self._k
        C = lay.cc.size
        nb = lay.lo.shape[1]
        Kc = C + (N if self.see_robots else 0)
        K = Kc + nb
        self.layout = lay
        self._C = C
        self._nb = nb
        self._LH = (np.stack([lay.lo, lay.hi]) * k).reshape(1, 2, 2, nb, 1)   # (1, lo/hi, axis, box, 1)
        self._cc = np.empty(Kc, dtype=np.complex128)                    # static circles, then robots
        self._cc[:C] = lay.cc * k
        self._rad = np.empty(Kc)
        self._rad[:C] = lay.cr * k
        self._rad[C:] = self._rob_r
        r2 = np.repeat((self._rad * self._rad)[None, :], N, axis=0)
        self._shift = None
        if self.see_robots:
            own = (np.arange(N), C + np.arange(N))
            r2[own] = -_INF                                             # a robot never sees itself ...
            self._shift = np.zeros((N, Kc), dtype=np.complex128)
            self._shift[own] = 1e6                                      # ... and its own disc is far away
            self._self_mask = np.zeros((N, Kc))
            self._self_mask[own] = _INF
        self._r2 = r2[:, :, None]                                       # (N, Kc, 1)
        D = np.empty((N, 2, 2, nb, 1))
        T = np.empty((N, 2, 2, nb, B))
        tmin = np.empty((N, 2, nb, B))
        tmax = np.empty((N, 2, nb, B))
        TV = np.empty((N, K, B))        # candidate hit distance per (robot, obstacle, beam)
        MV = np.empty((N, K, B))        # > 0 together with TV iff that hit is real
        U = np.empty((N, K + 1, B))     # 1 / hit distance, <= 0 or NaN for a miss
        U[:, K] = 1.0 / self.NO_HIT     # the virtual wall: a beam with no hit reads far
        oc = np.empty((N, Kc), dtype=np.complex128)
        z = np.empty((N, Kc, B), dtype=np.complex128)
        self._D = D
        self._oc = oc
        self._bufs = (D, T, T[:, 0], T[:, 1], tmin, tmax, tmin[:, 0], tmin[:, 1], tmax[:, 0], tmax[:, 1],
                      np.empty((N, nb, B)), TV, MV, TV[:, :Kc], TV[:, Kc:], MV[:, :Kc], MV[:, Kc:], U, U[:, :K],
                      oc, z, z.real, z.imag, np.empty((N, Kc, B)), self._INV[:, None, :, None, :])
        self._exact_bufs = (np.empty((N, 2, nb, 1)), np.empty((N, 2, nb, 1)), np.empty((N, nb, 1)))

    def cast(self, x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Noise-free ranges (N, B) in lidar units of robots at ``(x, y)`` m with headings ``theta`` rad.

        Returns ``self.scan`` (overwritten by the next cast); a beam with no hit reads ``NO_HIT``.
        """
        (D, T, T0, T1, tmin, tmax, tmin0, tmin1, tmax0, tmax1, tf,
         TV, MV, TVc, TVb, MVc, MVb, U, Uk, oc, z, zr, zi, sq, INVv) = self._bufs
        k = self._k
        np.multiply(x, k, out=self._Px)
        np.multiply(y, k, out=self._Py)
        PC = self._PC
        PC.real = self._Px
        PC.imag = self._Py
        CU = self._CU
        np.multiply(self._E, np.exp(-1j * theta)[:, None], out=CU)
        np.divide(self._SGN, self._CUV, out=self._INV)
        # boxes, slab method [10]: t_near = max over axes of min(t_lo, t_hi), t_far = min over axes of max
        np.subtract(self._LH, self._P, out=D)   # (N, lo/hi, axis, box, 1)
        np.multiply(D, INVv, out=T)             # (N, lo/hi, axis, box, beam)
        np.fmin(T0, T1, out=tmin)
        np.fmax(T0, T1, out=tmax)
        np.fmax(tmin0, tmin1, out=TVb)
        np.fmin(tmax0, tmax1, out=tf)
        np.subtract(tf, TVb, out=MVb)           # t_far - t_near >= 0: the line crosses the box
        if oc.shape[1]:
            # circles: z = centre in each beam's frame, hit at t = along - sqrt(r^2 - across^2)
            if self._shift is not None:
                self._cc[self._C:] = PC
            np.subtract(self._cc[None, :], PC[:, None], out=oc)
            if self._shift is not None:
                oc += self._shift
            np.multiply(oc[:, :, None], CU[:, None, :], out=z)
            np.multiply(zi, zi, out=sq)
            np.subtract(self._r2, sq, out=MVc)  # r^2 - across^2 > 0: the line crosses the circle
            np.maximum(MVc, 0.0, out=sq)
            np.sqrt(sq, out=sq)
            np.subtract(zr, sq, out=TVc)
        np.fmin(TV, MV, out=Uk)
        np.reciprocal(TV, out=TV)
        np.copysign(TV, Uk, out=Uk)
        scan = np.fmax.reduce(U, axis=1, out=self.scan)
        return np.reciprocal(scan, out=scan)

    def clearance(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact distances (lidar units) of the last cast's robot centres to the nearest box (0 inside), the
        nearest static circle's surface and the nearest other robot's centre minus its radius; each (N,),
        ``inf`` where there is no such obstacle."""
        N, C = self.n_robots, self._C
        ob, ob2, ob3 = self._exact_bufs
        if self._nb:
            D = self._D
            np.maximum(D[:, 0], 0.0, out=ob)
            np.subtract(ob, np.minimum(D[:, 1], 0.0, out=ob2), out=ob)
            np.multiply(ob, ob, out=ob)
            box = np.sqrt(np.add(ob[:, 0], ob[:, 1], out=ob3).reshape(N, -1).min(axis=1))
        else:
            box = np.full(N, _INF)
        dist = np.abs(self._oc) - self._rad
        if self.see_robots:
            dist += self._self_mask                                     # own disc: +inf
            robot = dist[:, C:].min(axis=1)
        else:
            robot = np.full(N, _INF)
        circle = dist[:, :C].min(axis=1) if C else np.full(N, _INF)
        return box, circle, robot


def ray_cast(x: float, y: float, theta: float, n_beams: int, cc: np.ndarray, cr: np.ndarray,
             lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact first-hit distance (m, from the point ``(x, y)``) of ``n_beams`` rays at bearings
    ``theta + 2 pi k / n_beams`` against circles ``(cc, cr)`` and boxes ``(lo, hi)``; ``inf`` if no hit.

    One robot through ``Lidar`` (the caster of the envs), for tests and scripts.
    """
    lidar = Lidar(n_beams)
    lidar.set_layout(_Layout(cc=np.asarray(cc, dtype=np.complex128), cr=np.asarray(cr, dtype=np.float64),
                             lo=np.asarray(lo, dtype=np.float64).reshape(2, -1),
                             hi=np.asarray(hi, dtype=np.float64).reshape(2, -1),
                             doors=np.empty(0, dtype=np.complex128)))
    r = lidar.cast(np.array([x], dtype=np.float64), np.array([y], dtype=np.float64),
                   np.array([theta], dtype=np.float64))[0]
    return np.where(r < 0.5 * Lidar.NO_HIT, r, _INF)



def _free_grid(lay: _Layout, L: float, radius: float) -> tuple[np.ndarray, int, float]:
    """Connected components of free robot-centre positions on ``_GRID_CELL`` cells.

    A cell is free when the robot disc centred on it overlaps no obstacle (obstacles rasterised inflated by
    the robot radius, exactly: rounded boxes and grown circles, each on its own small window). Components are
    labelled 4-connected by alternating min-label propagation along whole free runs of rows and columns
    (``minimum.reduceat`` over contiguous runs), so the number of passes is the number of turns of the
    longest path, not its length. Returns ``(labels, n, cell)`` with label -1 for occupied cells.
    """
    n = int(min(max(math.ceil(L / _GRID_CELL), 16), 128))
    cell = L / n
    c = (np.arange(n) + 0.5) * cell
    occ = np.zeros((n, n), dtype=bool)                       # [row = y index, col = x index]

    def window(x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, int, int]:
        return (max(int(math.ceil(x0 / cell - 0.5)), 0), min(int(math.floor(x1 / cell - 0.5)) + 1, n),
                max(int(math.ceil(y0 / cell - 0.5)), 0), min(int(math.floor(y1 / cell - 0.5)) + 1, n))

    r2 = radius * radius
    for k in range(lay.lo.shape[1]):
        lx, ly, hx, hy = float(lay.lo[0, k]), float(lay.lo[1, k]), float(lay.hi[0, k]), float(lay.hi[1, k])
        i0, i1, j0, j1 = window(lx - radius, hx + radius, ly - radius, hy + radius)
        if i0 < i1 and j0 < j1:
            dx = np.maximum(np.maximum(lx - c[i0:i1], c[i0:i1] - hx), 0.0)
            dy = np.maximum(np.maximum(ly - c[j0:j1], c[j0:j1] - hy), 0.0)
            occ[j0:j1, i0:i1] |= (dy[:, None] ** 2 + dx[None, :] ** 2) < r2
    for z, r in zip(lay.cc.tolist(), lay.cr.tolist(), strict=True):
        rr = r + radius
        i0, i1, j0, j1 = window(z.real - rr, z.real + rr, z.imag - rr, z.imag + rr)
        if i0 < i1 and j0 < j1:
            dx = c[i0:i1] - z.real
            dy = c[j0:j1] - z.imag
            occ[j0:j1, i0:i1] |= (dy[:, None] ** 2 + dx[None, :] ** 2) < rr * rr
    free = ~occ
    lab = np.where(free.ravel(), np.arange(n * n), -1)
    passes = []
    for f, order in ((free, np.arange(n * n)), (free.T, np.arange(n * n).reshape(n, n).T.ravel())):
        fr = f.ravel()
        cells = order[fr]                                    # free cells in run order (row- or column-major)
        if cells.size == 0:
            return lab, n, cell
        st = f.copy()
        st[:, 1:] &= ~f[:, :-1]
        starts = np.flatnonzero(st.ravel()[fr])              # run starts among the free cells
        lengths = np.diff(np.append(starts, cells.size))
        passes.append((cells, starts, lengths))
    stable = 0
    while stable < 2:
        for cells, starts, lengths in passes:
            new = np.repeat(np.minimum.reduceat(lab[cells], starts), lengths)
            if np.array_equal(new, lab[cells]):
                stable += 1
            else:
                stable = 0
                lab[cells] = new
    return lab, n, cell


def _reachable(lay: _Layout, L: float, radius: float, start: complex, goals: np.ndarray,
               grid: tuple[np.ndarray, int, float] | None
               ) -> tuple[np.ndarray, tuple[np.ndarray, int, float] | None]:
    """Which of ``goals`` (complex) are 4-connected to ``start`` on the labelled free-space grid.

    Start and goals are placed with clearance >= radius + cell half-diagonal, so their own cells are free.
    A layout with no interior obstacle is connected by construction (no grid is built).
    """
    if lay.cc.size == 0 and lay.lo.shape[1] == 4:
        return np.ones(goals.shape, dtype=bool), grid
    if grid is None:
        grid = _free_grid(lay, L, radius)
    lab, n, cell = grid
    gi = np.minimum((goals.imag / cell).astype(np.int64), n - 1)
    gj = np.minimum((goals.real / cell).astype(np.int64), n - 1)
    si = min(max(int(start.imag / cell), 0), n - 1)
    sj = min(max(int(start.real / cell), 0), n - 1)
    ls = int(lab[si * n + sj])
    return (lab[gi * n + gj] == ls) & (ls >= 0), grid


def _spawn(rng: np.random.Generator, lay: _Layout, cfg: RobotNavigationConfig, grid,
           avoid: np.ndarray, avoid_goals: np.ndarray) -> tuple[complex, complex, Any] | None:
    """Sample a collision-free start and a reachable goal; ``avoid`` are other robots' starts / goals."""
    L = float(cfg.arena_size)
    R = float(cfg.robot_radius)
    for _ in range(24):
        s = rng.uniform(0.0, L, 16) + 1j * rng.uniform(0.0, L, 16)
        ok = _clearance_points(s, lay) >= R + _SPAWN_CLEAR
        if avoid.size:
            ok &= np.abs(s[:, None] - avoid[None, :]).min(axis=1) > 2.0 * R + 0.3
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            continue
        start = complex(s[cand[0]])
        d = rng.uniform(cfg.goal_dist_min, cfg.goal_dist_max, 32)
        a = rng.uniform(0.0, _TWO_PI, 32)
        g = start + d * np.exp(1j * a)
        ok = (g.real > 0.0) & (g.real < L) & (g.imag > 0.0) & (g.imag < L)
        if not ok.any():
            continue
        g = g[ok]
        ok = _clearance_points(g, lay) >= R + _GOAL_CLEAR
        if avoid_goals.size:
            ok &= np.abs(g[:, None] - avoid_goals[None, :]).min(axis=1) > 2.0 * R + 2.0 * cfg.goal_tolerance
        if avoid.size:
            ok &= np.abs(g[:, None] - avoid[None, :]).min(axis=1) > 2.0 * R + cfg.goal_tolerance
        g = g[ok]
        if g.size == 0:
            continue
        conn, grid = _reachable(lay, L, R, start, g, grid)
        good = np.flatnonzero(conn)
        if good.size:
            return start, complex(g[good[0]]), grid
    return None


def _fixed_world(cfg: RobotNavigationConfig) -> tuple[_Layout, Any]:
    """The world of ``map_seed``: the first layout drawn from ``default_rng(map_seed)`` where a start and a
    reachable goal can be placed (almost always the first draw; dense worlds with a large robot may need
    more). Returns the layout and its reachability grid."""
    rng = np.random.default_rng(cfg.map_seed)
    empty = np.empty(0, dtype=np.complex128)
    lay = _make_layout(rng, cfg)
    for attempt in range(20):
        got = _spawn(np.random.default_rng([cfg.map_seed, attempt]), lay, cfg, None, empty, empty)
        if got is not None:
            return lay, got[2]
        lay = _make_layout(rng, cfg)
    return lay, None


def _wrap(a: float) -> float:
    return (a + _PI) % _TWO_PI - _PI
