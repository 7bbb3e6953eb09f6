"""The single-robot navigation env (``RobotNavigationEnv``, Gymnasium) and its Discrete(5) variant.

Unicycle kinematics [11], the LDS-01-like scan from the shared ``world.Lidar`` and the reward of [7]; the
package docstring documents spaces, rewards and knobs. References [n] are those of the package docstring.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.knobs import apply_overrides, resolve_config
from envs.registry import EnvConfigError, discrete_action
from envs.robot_navigation.config import (
    _GOAL_DIST_NORM,
    _NOISE_BLOCK,
    LIDAR_NEAR_RANGE,
    RobotNavigationConfig,
    discrete_turn_rates,
)
from envs.robot_navigation.render import _RENDER_SIZE, _render
from envs.robot_navigation.world import Lidar, _fixed_world, _Layout, _make_layout, _spawn

_INF = math.inf
_PI = math.pi
_TWO_PI = 2.0 * math.pi


def _spaces(cfg: RobotNavigationConfig) -> tuple[spaces.Box, spaces.Space]:
    B = cfg.n_beams
    low = np.zeros(B + 4, dtype=np.float32)
    high = np.ones(B + 4, dtype=np.float32)
    low[B + 1] = -1.0
    low[B + 3] = -1.0
    obs_space = spaces.Box(low, high, dtype=np.float32)
    if cfg.discrete_actions:
        act_space: spaces.Space = spaces.Discrete(5)
    else:
        act_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    return obs_space, act_space


class RobotNavigationEnv(gym.Env[np.ndarray, Any]):
    """One robot in one world (see the package docstring, which ``envs.robot_navigation`` sets as this doc)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    _DEFAULT = RobotNavigationConfig()

    def __init__(self, config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = self._prepare(resolve_config(RobotNavigationConfig, self._DEFAULT if config is None else config,
                                           overrides))
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None, "
                                 f"{self.metadata['render_modes']}")
        self.config = cfg
        self.render_mode = render_mode
        self.discrete = bool(cfg.discrete_actions)
        self.observation_space, self.action_space = _spaces(cfg)
        B = cfg.n_beams
        self.n_beams = B
        alpha = _TWO_PI * np.arange(B) / B
        self.beam_angles = alpha
        # scalars as Python floats
        self._L = float(cfg.arena_size)
        self._R = float(cfg.robot_radius)
        self._dt = float(cfg.dt)
        self._vmax = float(cfg.v_max)
        self._wmax = float(cfg.w_max)
        self._half_vmax = 0.5 * self._vmax
        self._rmax = float(cfg.lidar_range_max)
        self._tol = float(cfg.goal_tolerance)
        self._k_prog = float(cfg.progress_reward)
        self._r_goal = float(cfg.goal_reward)
        self._r_coll = float(cfg.collision_penalty)
        self._step_cost = float(cfg.step_cost)
        self._max_steps = int(cfg.max_steps)
        self._lid_std = float(cfg.lidar_noise_std)
        self._lid_rel = float(cfg.lidar_noise_rel)
        self._lid_on = self._lid_std > 0 or self._lid_rel > 0
        self._act_std = float(cfg.actuator_noise_std)
        self._dv = float(cfg.discrete_linear_vel)
        self.discrete_angular = discrete_turn_rates(cfg).tolist()
        # Exact collision geometry is only evaluated when the noise-free scan has a return closer than
        # ``_near``. Every generated obstacle (circle radius >= 0.1 m, box sides >= 0.1 m) contains a disc of
        # radius 0.05 m whose centre is within 0.05 * sqrt(2) < 0.071 m of the obstacle's point closest to the
        # robot. If the body overlaps the obstacle (that point closer than R) the disc's centre is closer
        # than s = R + 0.071 m, so the disc subtends a half-angle >= asin(0.05 / s); when that exceeds half
        # the beam spacing some beam enters the disc, i.e. returns < s. With too few beams for this argument
        # the exact test runs every step.
        s_max = self._R + 0.071
        ok = math.asin(min(1.0, 0.05 / s_max)) >= _PI / B
        self._near = s_max + 0.01 if ok else _INF
        # the lidar works in units of lidar_range_max; one robot, no other robots to see
        self._lidar = Lidar(B, 1, unit=self._rmax)
        self._X = np.zeros(1)
        self._Y = np.zeros(1)
        self._TH = np.zeros(1)
        self._ONE = np.ones(())
        self._RMINN = np.array(float(cfg.lidar_range_min) / self._rmax)
        self._SCAN = np.ones(B)                                         # noise-free scan / range_max
        self._NBUF = np.empty(B)
        self._SIG = np.empty(B)
        self._NEARB = np.empty(B, dtype=bool)
        # lidar noise in units of lidar_range_max: std_abs below the near range, rel x range beyond [2]
        self._lid_abs_n = self._lid_std / self._rmax
        self._near_n = LIDAR_NEAR_RANGE / self._rmax
        self._obs = np.zeros(B + 4)                                      # float64, cast on return
        self._obs_l = self._obs[:B]
        self._inv_rmax = 1.0 / self._rmax
        self._fixed_layout: _Layout | None = None
        self._fixed_grid = None
        if cfg.map_seed >= 0:
            self._fixed_layout, self._fixed_grid = _fixed_world(cfg)
        self.layout: _Layout | None = None
        self.episode_id = -1
        self._lid_noise: np.ndarray | None = None
        self._act_noise: list[list[float]] | None = None
        self._k = 0
        self._has_reset = False

    @staticmethod
    def _prepare(cfg: RobotNavigationConfig) -> RobotNavigationConfig:
        return cfg

    # ------------------------------------------------------------------ public read-only state
    @property
    def ranges(self) -> np.ndarray:
        """Last scan as observed (noisy, clipped), in metres."""
        return self._obs_l * self._rmax

    @property
    def true_ranges(self) -> np.ndarray:
        """Last noise-free scan (exact first hits, not clipped), in metres."""
        return self._SCAN * self._rmax

    # ------------------------------------------------------------------ internals
    def _set_layout(self, lay: _Layout) -> None:
        """Hand the layout to the lidar (which caches it in units of lidar_range_max)."""
        self.layout = lay
        self._lidar.set_layout(lay)
        self._SCAN = self._lidar.scan[0]

    def _draw_noise(self) -> None:
        rng = self.np_random
        if self._lid_on:
            self._lid_noise = rng.standard_normal((_NOISE_BLOCK, self.n_beams))       # N(0, 1), scaled per beam
        if self._act_std > 0:
            an = rng.standard_normal((_NOISE_BLOCK, 2)) * self._act_std
            an[:, 0] *= self._vmax
            an[:, 1] *= self._wmax
            self._act_noise = an.tolist()
        self._k = 0

    def _sense(self) -> tuple[bool, float]:
        """Ray-cast the scan into the observation buffer; return (collided, scan clearance in m).

        The exact clearance is only computed when the noise-free scan has a return closer than ``_near``
        (see ``__init__``); otherwise the scan's nearest return bounds it.
        """
        self._X[0] = self.x
        self._Y[0] = self.y
        self._TH[0] = self.theta
        scan = self._lidar.cast(self._X, self._Y, self._TH)[0]        # noise-free range / range_max
        src = scan
        if self._lid_noise is not None:
            # std per beam = config.lidar_noise_sigma(range) (LDS-01 [2]), here in units of range_max
            sig = np.minimum(scan, self._ONE, out=self._SIG)
            sig *= self._lid_rel
            np.less(scan, self._near_n, out=self._NEARB)
            np.copyto(sig, self._lid_abs_n, where=self._NEARB)
            sig *= self._lid_noise[self._k]
            src = np.add(scan, sig, out=self._NBUF)
        obs_l = self._obs_l
        np.maximum(src, self._RMINN, out=obs_l)
        np.minimum(obs_l, self._ONE, out=obs_l)
        r_min = min(scan.tolist()) * self._rmax
        if r_min >= self._near:
            return False, r_min - self._R
        box, circle, _ = self._lidar.clearance()
        clear = float(box[0]) * self._rmax
        cd = float(circle[0]) * self._rmax
        clear = cd if cd < clear else clear
        collided = clear < self._R
        return collided, (0.0 if collided else max(r_min - self._R, 0.0))

    def _observe(self, d: float) -> np.ndarray:
        obs = self._obs
        B = self.n_beams
        dn = d / _GOAL_DIST_NORM
        obs[B] = dn if dn < 1.0 else 1.0
        bearing = math.atan2(self.gy - self.y, self.gx - self.x) - self.theta
        obs[B + 1] = ((bearing + _PI) % _TWO_PI - _PI) / _PI
        obs[B + 2] = self.v_cmd / self._vmax
        obs[B + 3] = self.w_cmd / self._wmax
        return obs.astype(np.float32)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        rng = self.np_random
        if seed is not None or not self._has_reset:
            self._draw_noise()
        empty = np.empty(0, dtype=np.complex128)
        for _ in range(50):
            if self._fixed_layout is not None:
                lay, grid = self._fixed_layout, self._fixed_grid
            else:
                lay, grid = _make_layout(rng, cfg), None
            got = _spawn(rng, lay, cfg, grid, empty, empty)
            if got is not None:
                break
        else:
            raise EnvConfigError(f"could not place robot and goal with obstacle_density="
                                 f"{cfg.obstacle_density!r}, map_family={cfg.map_family!r}, "
                                 f"map_seed={cfg.map_seed!r}")
        start, goal, grid = got
        if self._fixed_layout is not None:
            self._fixed_grid = grid
        if lay is not self.layout:
            self._set_layout(lay)
        self.start = (start.real, start.imag)
        self.x, self.y = start.real, start.imag
        self.theta = float(rng.uniform(-_PI, _PI))
        self.gx, self.gy = goal.real, goal.imag
        self.goal = (self.gx, self.gy)
        self.v_cmd = 0.0
        self.w_cmd = 0.0
        d = math.hypot(self.gx - self.x, self.gy - self.y)
        self._d0 = d
        self._d = d
        self._plr_den = max(d - self._tol, 1e-6)
        self.path_length = 0.0
        self._steps = 0
        _, self.clearance = self._sense()
        self.episode_id += 1
        self._has_reset = True
        return self._observe(d), {"distance_to_goal": d, "clearance": self.clearance}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.discrete:
            a = discrete_action(action, 5)
            v = self._dv
            w = self.discrete_angular[a]
        else:
            try:
                a0, a1 = action.tolist() if type(action) is np.ndarray else (float(u) for u in action)
            except (TypeError, ValueError) as exc:
                raise gym.error.InvalidAction(f"action={action!r} must have shape (2,)") from exc
            if not (a0 == a0 and a1 == a1):
                raise gym.error.InvalidAction(f"action={action!r} contains NaN")
            a0 = -1.0 if a0 < -1.0 else (1.0 if a0 > 1.0 else a0)
            a1 = -1.0 if a1 < -1.0 else (1.0 if a1 > 1.0 else a1)
            v = (a0 + 1.0) * self._half_vmax
            w = a1 * self._wmax
        self.v_cmd = v
        self.w_cmd = w
        if self._act_noise is not None:
            nv, nw = self._act_noise[self._k]
            v += nv
            v = 0.0 if v < 0.0 else (self._vmax if v > self._vmax else v)
            w += nw
            w = -self._wmax if w < -self._wmax else (self._wmax if w > self._wmax else w)
        dt = self._dt
        th = self.theta
        ds = v * dt
        thm = th + 0.5 * w * dt
        self.x += ds * math.cos(thm)
        self.y += ds * math.sin(thm)
        self.theta = (th + w * dt + _PI) % _TWO_PI - _PI
        self.path_length += ds
        self._k += 1
        if self._k == _NOISE_BLOCK:
            self._draw_noise()
        collided, clear = self._sense()
        self.clearance = clear
        self._steps += 1
        d = math.hypot(self.gx - self.x, self.gy - self.y)
        reward = self._k_prog * (self._d - d) - self._step_cost
        self._d = d
        reached = (not collided) and d <= self._tol
        if collided:
            reward -= self._r_coll
        elif reached:
            reward += self._r_goal
        term = collided or reached
        trunc = (not term) and self._steps >= self._max_steps
        rem = d - self._tol
        prog = (self._d0 - d) / self._d0
        info = {
            "success": 1.0 if reached else 0.0,
            "success_so_far": 1.0 if reached else 0.0,
            "collision": 1.0 if collided else 0.0,
            "episode_end": 1.0 if (term or trunc) else 0.0,
            "timeout": 1.0 if trunc else 0.0,
            "progress": prog if prog > -1.0 else -1.0,
            "path_length_ratio": (self.path_length + (rem if rem > 0.0 else 0.0)) / self._plr_den,
            "clearance": clear,
            "distance_to_goal": d,
        }
        return self._observe(d), reward, term, trunc, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if not self._has_reset:
            return np.full((_RENDER_SIZE, _RENDER_SIZE, 3), 250, dtype=np.uint8)
        scan = self.true_ranges
        scan = np.where((scan > 0.0) & (scan <= self._rmax), scan, _INF)
        return _render(self.layout, self._L, [(self.x, self.y, self.theta)], [complex(self.gx, self.gy)],
                       self._R, self._tol, [scan], self.n_beams)


class RobotNavigationDiscreteEnv(RobotNavigationEnv):
    """``RobotNavigationEnv`` with ``discrete_actions`` forced on: the ``Discrete(5)`` of ROBOTIS' DQN [4]."""

    _DEFAULT = RobotNavigationConfig(discrete_actions=True)

    @staticmethod
    def _prepare(cfg: RobotNavigationConfig) -> RobotNavigationConfig:
        return cfg if cfg.discrete_actions else apply_overrides(cfg, {"discrete_actions": True})
