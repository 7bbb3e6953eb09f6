"""The swarm form (PettingZoo ``ParallelEnv``): N robots share one arena, each with its own goal (FLDDPG [6]).

Kinematics, rewards and KPIs are those of the single env, vectorised over the robots; all robots are
ray-cast together by the shared ``world.Lidar`` (which also shows each robot the others as discs).
References [n] are those of the package docstring.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.knobs import Knob, apply_overrides, resolve_config
from envs.registry import EnvConfigError
from envs.robot_navigation.config import (
    _GOAL_DIST_NORM,
    RobotNavigationConfig,
    discrete_turn_rates,
    lidar_noise_sigma,
)
from envs.robot_navigation.env import _spaces
from envs.robot_navigation.render import _RENDER_SIZE, _render
from envs.robot_navigation.world import Lidar, _fixed_world, _Layout, _make_layout, _spawn

_INF = math.inf
_PI = math.pi
_TWO_PI = 2.0 * math.pi

N_ROBOTS = Knob(unit="robots", source="swarm size (this env); FLDDPG [6] flies small swarms", kind="int",
                low=1, high=32)
"""Legal swarm sizes of ``parallel_env(n_robots=...)``."""


class RobotNavigationSwarmEnv(ParallelEnv):
    """N robots in one arena (FLDDPG [6]); each sees the others as moving discs. See the module docstring."""

    metadata = {"name": "robot_navigation_v0", "render_modes": ["rgb_array"], "render_fps": 5,
                "is_parallelizable": True}

    def __init__(self, config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                 n_robots: int = 4, **overrides: Any) -> None:
        cfg = resolve_config(RobotNavigationConfig, config, overrides)
        N_ROBOTS.validate("n_robots", n_robots)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None, "
                                 f"{self.metadata['render_modes']}")
        self.config = cfg
        self.render_mode = render_mode
        self.n_robots = N = int(n_robots)
        self.possible_agents = [f"robot_{i}" for i in range(N)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._obs_spaces = {}
        self._act_spaces = {}
        for a in self.possible_agents:
            self._obs_spaces[a], self._act_spaces[a] = _spaces(cfg)
        self.discrete = bool(cfg.discrete_actions)
        B = cfg.n_beams
        self.n_beams = B
        self._R = float(cfg.robot_radius)
        self._rmax = float(cfg.lidar_range_max)
        self._vmax = float(cfg.v_max)
        self._wmax = float(cfg.w_max)
        # one lidar for all robots, in metres; each robot sees the others as discs
        self._lidar = Lidar(B, N, unit=1.0, robot_radius=self._R)
        self.beam_angles = self._lidar.beam_angles
        self._discrete_w = discrete_turn_rates(cfg)
        self._fixed_layout, self._fixed_grid = _fixed_world(cfg) if cfg.map_seed >= 0 else (None, None)
        self._rng: np.random.Generator | None = None
        self.layout: _Layout | None = None
        self.episode_id = -1

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    # ------------------------------------------------------------------ internals
    def _set_layout(self, lay: _Layout) -> None:
        self.layout = lay
        self._lidar.set_layout(lay)

    def _sense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cast every robot's scan at once (``Lidar``, robots x obstacles x beams).

        Returns the noisy clipped scan / range_max (N, B) and the exact clearance to static obstacles and to
        the nearest other robot (N,), in metres.
        """
        cfg = self.config
        pos = self.pos                                              # (N,) complex; removed robots far away
        scan = self._lidar.cast(pos.real, pos.imag, self.theta)     # (N, B) noise-free ranges (m)
        self._true_ranges = scan
        clear_box, clear_circle, clear_robot = self._lidar.clearance()
        clear_obs = np.minimum(clear_circle, clear_box) if self._lidar._C else clear_box
        r = scan
        if cfg.lidar_noise_std > 0 or cfg.lidar_noise_rel > 0:
            r = r + self._rng.standard_normal(r.shape) * lidar_noise_sigma(scan, cfg)     # LDS-01 [2]
        r = np.minimum(np.maximum(r * (1.0 / self._rmax), cfg.lidar_range_min / self._rmax), 1.0)
        return r, clear_obs - self._R, clear_robot - self._R

    def _observations(self, scan: np.ndarray) -> np.ndarray:
        B = self.n_beams
        obs = np.empty((self.n_robots, B + 4))
        obs[:, :B] = scan
        rel = self.goals - self.pos
        obs[:, B] = np.minimum(np.abs(rel) * (1.0 / _GOAL_DIST_NORM), 1.0)
        obs[:, B + 1] = (np.angle(rel) - self.theta + _PI) % _TWO_PI * (1.0 / _PI) - 1.0
        obs[:, B + 2] = self.v_cmd * (1.0 / self._vmax)
        obs[:, B + 3] = self.w_cmd * (1.0 / self._wmax)
        return obs.astype(np.float32)

    # ------------------------------------------------------------------ PettingZoo API
    def reset(self, seed: int | None = None, options: dict | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        cfg = self.config
        N = self.n_robots
        for _ in range(50):
            if self._fixed_layout is not None:
                lay, grid = self._fixed_layout, self._fixed_grid
            else:
                lay, grid = _make_layout(rng, cfg), None
            starts: list[complex] = []
            goals: list[complex] = []
            for _i in range(N):
                got = _spawn(rng, lay, cfg, grid, np.asarray(starts + goals, dtype=np.complex128),
                             np.asarray(goals, dtype=np.complex128))
                if got is None:
                    break
                s, g, grid = got
                starts.append(s)
                goals.append(g)
            if len(starts) == N:
                break
        else:
            raise EnvConfigError(f"could not place {N} robots with obstacle_density="
                                 f"{cfg.obstacle_density!r}, arena_size={cfg.arena_size!r}")
        if self._fixed_layout is not None:
            self._fixed_grid = grid
        self._set_layout(lay)
        self.pos = np.asarray(starts, dtype=np.complex128)
        self.start = self.pos.copy()
        self.goals = np.asarray(goals, dtype=np.complex128)
        self.theta = rng.uniform(-_PI, _PI, N)
        self.alive = np.ones(N, dtype=bool)
        self.v_cmd = np.zeros(N)
        self.w_cmd = np.zeros(N)
        self.d0 = np.abs(self.goals - self.pos)
        self._d = self.d0.copy()
        self._plr_den = np.maximum(self.d0 - cfg.goal_tolerance, 1e-6)
        self.path_length = np.zeros(N)
        self._steps = 0
        self.agents = list(self.possible_agents)
        scan, _, _ = self._sense()
        self.episode_id += 1
        obs = self._observations(scan)
        infos = {a: {"distance_to_goal": float(self.d0[i])} for i, a in enumerate(self.agents)}
        return {a: obs[i] for i, a in enumerate(self.agents)}, infos

    def _commands(self, actions: dict[str, Any], active: list[str]) -> tuple[np.ndarray, np.ndarray]:
        N = self.n_robots
        v = np.zeros(N)
        w = np.zeros(N)
        acting = [a for a in active if actions.get(a) is not None]   # no action: the robot stands still
        if not acting:
            return v, w
        idx = [self._index[a] for a in acting]
        if self.discrete:
            try:
                k = np.array([int(actions[a]) for a in acting])
            except (TypeError, ValueError) as exc:
                raise gym.error.InvalidAction(f"actions {actions!r} must be integers 0..4") from exc
            if (k < 0).any() or (k > 4).any():
                raise gym.error.InvalidAction(f"actions {actions!r} out of range; allowed: 0..4")
            v[idx] = self.config.discrete_linear_vel
            w[idx] = self._discrete_w[k]
            return v, w
        try:
            u = np.array([actions[a] for a in acting], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise gym.error.InvalidAction(f"actions {actions!r} must each be 2 numbers") from exc
        if u.shape != (len(acting), 2) or not np.isfinite(u).all():
            raise gym.error.InvalidAction(f"actions {actions!r} must each be 2 finite numbers")
        u = np.minimum(np.maximum(u, -1.0), 1.0)
        v[idx] = (u[:, 0] + 1.0) * (0.5 * self._vmax)
        w[idx] = u[:, 1] * self._wmax
        return v, w

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        cfg = self.config
        N = self.n_robots
        active = self.agents
        v, w = self._commands(actions, active)
        self.v_cmd = v
        self.w_cmd = w
        if cfg.actuator_noise_std > 0:
            n = self._rng.standard_normal((2, N)) * cfg.actuator_noise_std
            v = np.minimum(np.maximum(v + n[0] * self._vmax, 0.0), self._vmax)
            w = np.minimum(np.maximum(w + n[1] * self._wmax, -self._wmax), self._wmax)
        alive = self.alive
        v = v * alive
        w = w * alive
        dt = cfg.dt
        ds = v * dt
        self.pos = self.pos + ds * np.exp(1j * (self.theta + 0.5 * w * dt))
        self.theta = (self.theta + w * dt + _PI) % _TWO_PI - _PI
        self.path_length += ds
        self._steps += 1
        scan, clear_obs, clear_rob = self._sense()
        d = np.abs(self.goals - self.pos)
        reward = cfg.progress_reward * (self._d - d) - cfg.step_cost
        self._d = d
        hit_rob = clear_rob < 0.0
        collided = ((clear_obs < 0.0) | hit_rob) & alive
        reached = alive & ~collided & (d <= cfg.goal_tolerance)
        reward = reward - cfg.collision_penalty * collided + cfg.goal_reward * reached
        term = collided | reached
        trunc = alive & ~term & (self._steps >= cfg.max_steps)
        obs = self._observations(scan)
        prog = np.maximum((self.d0 - d) / self.d0, -1.0)
        plr = (self.path_length + np.maximum(d - cfg.goal_tolerance, 0.0)) / self._plr_den
        clear = np.maximum(np.minimum(self._true_ranges.min(axis=1) - self._R, clear_rob), 0.0)
        L = [x.tolist() for x in (reward, term, trunc, reached, collided, hit_rob & collided, prog, plr,
                                  clear, d)]
        rew_l, term_l, trunc_l, reach_l, coll_l, rc_l, prog_l, plr_l, clear_l, d_l = L
        observations, rewards, terms, truncs, infos = {}, {}, {}, {}, {}
        for a in active:
            i = self._index[a]
            observations[a] = obs[i]
            rewards[a] = rew_l[i]
            terms[a] = te = term_l[i]
            truncs[a] = tr = trunc_l[i]
            infos[a] = {
                "success": float(reach_l[i]), "success_so_far": float(reach_l[i]),
                "collision": float(coll_l[i]), "robot_collision": float(rc_l[i]),
                "episode_end": float(te or tr), "timeout": float(tr),
                "progress": prog_l[i], "path_length_ratio": plr_l[i],
                "clearance": 0.0 if coll_l[i] else clear_l[i], "distance_to_goal": d_l[i],
            }
            if te or tr:       # lift the robot out of the arena: far away, never seen, never colliding
                self.pos[i] = complex(-1e4 * (i + 1), -1e4)
                self.alive[i] = False
        self.agents = [a for a in active if not (terms[a] or truncs[a])]
        return observations, rewards, terms, truncs, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self.layout is None:
            return np.full((_RENDER_SIZE, _RENDER_SIZE, 3), 250, dtype=np.uint8)
        idx = np.flatnonzero(self.alive).tolist()
        robots = [(self.pos[i].real, self.pos[i].imag, float(self.theta[i])) for i in idx]
        scans = [np.where(self._true_ranges[i] <= self._rmax, self._true_ranges[i], _INF) for i in idx]
        return _render(self.layout, float(self.config.arena_size), robots,
                       [complex(self.goals[i]) for i in idx], self._R, float(self.config.goal_tolerance),
                       scans, self.n_beams)

    def close(self) -> None:
        pass


def parallel_env(config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                 n_robots: int = 4, **overrides: Any) -> RobotNavigationSwarmEnv:
    """PettingZoo ``ParallelEnv`` of ``n_robots`` robots sharing one arena (FLDDPG swarm [6])."""
    return RobotNavigationSwarmEnv(config, render_mode=render_mode, n_robots=n_robots, **overrides)


def parallel_env_discrete(config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                          n_robots: int = 4, **overrides: Any) -> RobotNavigationSwarmEnv:
    """The swarm with ROBOTIS' Discrete(5) actions [4] (``discrete_actions`` forced on)."""
    cfg = resolve_config(RobotNavigationConfig, RobotNavigationConfig(discrete_actions=True) if config is None
                         else config, overrides)
    return RobotNavigationSwarmEnv(apply_overrides(cfg, {"discrete_actions": True}), render_mode=render_mode,
                                   n_robots=n_robots)
