"""Heuristic baselines of the navigation envs: go-to-goal, Khatib's potential field [9], Bug2 [8], random.

Each single-robot heuristic reads the observation (and, for Bug2, the robot's odometry through
``env.unwrapped``); ``PARALLEL_BASELINES`` run the observation-only ones on every robot of the swarm.
References [n] are those of the package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from envs.registry import BaselineFactory, Policy
from envs.robot_navigation.config import _GOAL_DIST_NORM, discrete_turn_rates
from envs.robot_navigation.world import _wrap

_PI = math.pi


def _actuate(e: Any) -> Callable[[float, float], Any]:
    """Map a physical command (v m/s, omega rad/s) to the env's action (nearest one for Discrete(5))."""
    if e.discrete:
        table = discrete_turn_rates(e.config)
        return lambda v, w: int(np.argmin(np.abs(table - w)))
    vmax, wmax = e._vmax, e._wmax

    def act(v: float, w: float) -> np.ndarray:
        a0 = min(max(2.0 * v / vmax - 1.0, -1.0), 1.0)
        a1 = min(max(w / wmax, -1.0), 1.0)
        return np.array([a0, a1], dtype=np.float32)
    return act


def _goal_polar(e: Any, obs: np.ndarray) -> tuple[float, float]:
    B = e.n_beams
    return float(obs[B]) * _GOAL_DIST_NORM, float(obs[B + 1]) * _PI


def _go_to_goal(env: gym.Env, seed: int) -> Policy:
    """Proportional heading controller toward the goal; ignores obstacles."""
    e = env.unwrapped
    act = _actuate(e)
    vmax, wmax = e._vmax, e._wmax

    def policy(obs: np.ndarray) -> Any:
        d, hg = _goal_polar(e, obs)
        w = max(-wmax, min(wmax, 2.0 * hg))
        v = vmax * max(0.0, math.cos(hg)) * min(1.0, d / 0.3)
        return act(v, w)
    return policy


def _potential_field(env: gym.Env, seed: int) -> Policy:
    """Khatib's potential field [9] on the scan: unit attraction to the goal plus repulsion
    ``eta (1/rho - 1/rho_0) / rho^2`` away from every lidar return with body clearance ``rho < rho_0``."""
    e = env.unwrapped
    act = _actuate(e)
    B = e.n_beams
    vmax, wmax, R = e._vmax, e._wmax, e._R
    rmax = float(e.config.lidar_range_max)
    ca = np.cos(e.beam_angles)
    sa = np.sin(e.beam_angles)
    rho0, eta = 0.5, 0.01

    def policy(obs: np.ndarray) -> Any:
        d, hg = _goal_polar(e, obs)
        rho = np.maximum(obs[:B].astype(np.float64) * rmax - R, 0.02)
        mag = np.where(rho < rho0, eta * (1.0 / rho - 1.0 / rho0) / (rho * rho), 0.0)
        fx = math.cos(hg) - float(mag @ ca)
        fy = math.sin(hg) - float(mag @ sa)
        psi = math.atan2(fy, fx)
        front = float(rho[np.abs(np.angle(np.exp(1j * e.beam_angles))) < 0.6].min())
        w = max(-wmax, min(wmax, 2.5 * psi))
        v = vmax * max(0.0, math.cos(psi)) * min(1.0, d / 0.3, max(front - 0.05, 0.0) / 0.3)
        return act(v, w)
    return policy


def _bug2(env: gym.Env, seed: int) -> Policy:
    """Bug2 [8]: drive to the goal along the m-line (start -> goal); when blocked, follow the obstacle
    boundary (on the side that turns least away from the goal) until back on the m-line closer to the goal
    than the hit point with a free way to the goal. Uses odometry (``env.unwrapped`` pose, start, goal)."""
    e = env.unwrapped
    act = _actuate(e)
    B = e.n_beams
    vmax, wmax, R = e._vmax, e._wmax, e._R
    rmax = float(e.config.lidar_range_max)
    alpha = np.angle(np.exp(1j * e.beam_angles))                # bearings in (-pi, pi]
    d_block, d_follow = 0.25, 0.22
    st = {"ep": None, "mode": 0, "hit": 0.0, "side": 1.0, "steps": 0}

    def clear_toward(rho: np.ndarray, bearing: float, half: float) -> float:
        diff = np.abs(np.angle(np.exp(1j * (alpha - bearing))))
        return float(rho[diff <= half].min())

    def policy(obs: np.ndarray) -> Any:
        if st["ep"] != e.episode_id:
            st.update(ep=e.episode_id, mode=0, hit=0.0, side=1.0, steps=0)
        d, hg = _goal_polar(e, obs)
        rho = obs[:B].astype(np.float64) * rmax - R
        sx, sy = e.start
        gx, gy = e.goal
        x, y = e.x, e.y
        ahead = clear_toward(rho, hg, 0.5)
        if st["mode"] == 0:
            if ahead < d_block and d - R > ahead:
                j = int(np.argmin(rho))
                st.update(mode=1, hit=d, side=1.0 if _wrap(hg - alpha[j]) >= 0.0 else -1.0, steps=0)
            else:
                w = max(-wmax, min(wmax, 2.0 * hg))
                v = vmax * max(0.0, math.cos(hg)) * min(1.0, d / 0.3, max(ahead - 0.05, 0.0) / 0.25)
                return act(v, w)
        st["steps"] += 1
        lx, ly = gx - sx, gy - sy
        m_dist = abs(lx * (y - sy) - ly * (x - sx)) / max(math.hypot(lx, ly), 1e-9)
        if st["steps"] > 5 and m_dist < 0.1 and d < st["hit"] - 0.1 and ahead > d_block + 0.1:
            st["mode"] = 0
            w = max(-wmax, min(wmax, 2.0 * hg))
            return act(vmax * max(0.0, math.cos(hg)), w)
        # boundary following: move tangentially with the nearest return on the far side, keep d_follow
        j = int(np.argmin(rho))
        side = st["side"]
        corr = max(-0.8, min(0.8, 2.5 * (d_follow - float(rho[j]))))
        err = _wrap(float(alpha[j]) + side * (0.5 * _PI + corr))
        front = clear_toward(rho, 0.0, 0.4)
        w = max(-wmax, min(wmax, 2.5 * err))
        v = vmax * max(0.0, math.cos(err)) * min(1.0, max(front - 0.03, 0.0) / 0.2)
        return act(v, w)
    return policy


def _random(env: gym.Env, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    if env.unwrapped.discrete:
        return lambda obs: int(rng.integers(5))
    return lambda obs: rng.uniform(-1.0, 1.0, 2).astype(np.float32)


BASELINES: dict[str, BaselineFactory] = {
    "go-to-goal": _go_to_goal,
    "potential-field": _potential_field,
    "bug2": _bug2,
    "random": _random,
}


def _per_robot(factory: BaselineFactory) -> Callable[[Any, int], Callable[[dict[str, Any]], dict[str, Any]]]:
    """A single-robot heuristic applied by every live robot of the swarm (it reads only the robot's own
    observation and the shared robot constants)."""
    def make(env: Any, seed: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
        policy = factory(env, seed)
        return lambda obs: {a: policy(obs[a]) for a in env.agents}
    return make


PARALLEL_BASELINES: dict[str, Any] = {
    name: _per_robot(BASELINES[name]) for name in ("go-to-goal", "potential-field", "random")
}
