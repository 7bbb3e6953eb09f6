"""Top-view rendering of a navigation world: numpy rasterisation of obstacles, goals, robots and lidar rays."""

from __future__ import annotations

import math

import numpy as np

from envs.robot_navigation.config import _WALL
from envs.robot_navigation.world import _Layout

_TWO_PI = 2.0 * math.pi

_RENDER_SIZE = 400
_COL_BG = np.array([250, 250, 250], dtype=np.uint8)
_COL_OBS = np.array([90, 90, 90], dtype=np.uint8)
_COL_GOAL = np.array([40, 170, 60], dtype=np.uint8)
_COL_RAY = np.array([255, 190, 190], dtype=np.uint8)
_COL_HIT = np.array([220, 30, 30], dtype=np.uint8)
_ROBOT_COLORS = np.array([[30, 90, 220], [230, 140, 20], [150, 60, 200], [20, 170, 170],
                          [200, 60, 120], [120, 120, 20]], dtype=np.uint8)


def _render(lay: _Layout, L: float, robots: list[tuple[float, float, float]], goals: list[complex],
            radius: float, tol: float, scans: list[np.ndarray], n_beams: int) -> np.ndarray:
    """Top view as an (H, W, 3) uint8 image; world y points up. Pure numpy rasterisation."""
    S = _RENDER_SIZE
    w = _WALL
    span = L + 2 * w
    scale = S / span
    img = np.empty((S, S, 3), dtype=np.uint8)
    img[:] = _COL_BG
    c = (np.arange(S) + 0.5) / scale - w                    # world coordinate of pixel centres
    X = c[None, :]
    Y = c[::-1][:, None]

    def disc(cx: float, cy: float, r: float, col: np.ndarray) -> None:
        img[(X - cx) ** 2 + (Y - cy) ** 2 <= r * r] = col

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        j = np.clip(((x + w) * scale).astype(np.int64), 0, S - 1)
        i = np.clip(S - 1 - ((y + w) * scale).astype(np.int64), 0, S - 1)
        return i, j

    for k in range(lay.lo.shape[1]):
        inside = ((X >= lay.lo[0, k]) & (X <= lay.hi[0, k])) & ((Y >= lay.lo[1, k]) & (Y <= lay.hi[1, k]))
        img[inside] = _COL_OBS
    for cc, r in zip(lay.cc.tolist(), lay.cr.tolist(), strict=True):
        disc(cc.real, cc.imag, r, _COL_OBS)
    for g in goals:
        ring = (X - g.real) ** 2 + (Y - g.imag) ** 2
        img[(ring <= tol * tol) & (ring >= (tol - 2.0 / scale) ** 2)] = _COL_GOAL
        disc(g.real, g.imag, 0.03, _COL_GOAL)
    alpha = _TWO_PI * np.arange(n_beams) / n_beams
    for (x, y, th), scan in zip(robots, scans, strict=True):
        ang = th + alpha
        reach = np.minimum(scan, 3.0 * span)
        s = np.linspace(0.0, 1.0, 80)[None, :] * reach[:, None]
        i, j = to_px(x + s * np.cos(ang)[:, None], y + s * np.sin(ang)[:, None])
        img[i, j] = _COL_RAY
        fin = np.isfinite(scan)
        i, j = to_px(x + scan[fin] * np.cos(ang[fin]), y + scan[fin] * np.sin(ang[fin]))
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                img[np.clip(i + di, 0, S - 1), np.clip(j + dj, 0, S - 1)] = _COL_HIT
    for n, (x, y, th) in enumerate(robots):
        col = _ROBOT_COLORS[n % len(_ROBOT_COLORS)]
        disc(x, y, radius, col)
        s = np.linspace(0.0, 1.6 * radius, 30)
        i, j = to_px(x + s * math.cos(th), y + s * math.sin(th))
        for d in (-1, 0, 1):
            img[np.clip(i + d, 0, S - 1), j] = 0
    return img
