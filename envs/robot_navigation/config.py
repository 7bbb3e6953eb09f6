"""Knobs of the navigation world (``RobotNavigationConfig``) and its heterogeneous client configs.

Defaults and sources are the TurtleBot3 Burger [1], its LDS-01 lidar [2], its footprint [3] and ROBOTIS' DQN
example [4] (references in the package docstring); ``make_client_configs`` spreads worlds as in LFRL [5].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from envs.knobs import KnobConfig, apply_overrides, check_client_args, clip_knob, knob, knob_spec
from envs.registry import EnvConfigError

MAP_FAMILIES: tuple[str, ...] = ("open", "random", "corridor")

_WALL = 0.1                  # m, thickness of border and corridor walls
_SPAWN_CLEAR = 0.1           # m, extra clearance of the start
_GOAL_CLEAR = 0.08           # m, extra clearance of the goal (> half-diagonal of a grid cell)
_GOAL_DIST_NORM = 10.0       # m, fixed normalisation of the goal distance feature
_MEAN_OBSTACLE_AREA = 0.193  # m^2: 0.5 * pi * E[r^2] (r ~ U[0.1, 0.3]) + 0.5 * 4 * 0.25^2
_GRID_CELL = 0.1             # m, reachability grid
_NOISE_BLOCK = 256           # steps of noise drawn at once
LIDAR_NEAR_RANGE = 0.5       # m: LDS-01 accuracy is +-15 mm below 0.5 m and +-5 % of the range above [2]
BURGER_W_MAX = 2.84          # rad/s: TurtleBot3 Burger maximum rotational velocity [1]
BURGER_V_MAX = 0.22          # m/s: TurtleBot3 Burger maximum translational velocity [1]


def lidar_noise_sigma(ranges: np.ndarray, cfg: RobotNavigationConfig) -> np.ndarray:
    """Per-beam lidar noise std (m) at the true ``ranges`` (m): LDS-01 accuracy [2].

    ``lidar_noise_std`` below ``LIDAR_NEAR_RANGE`` (0.5 m), ``lidar_noise_rel * range`` from there on (the range
    capped at ``lidar_range_max``: a return beyond it reads as the maximum anyway). The spec's +-accuracy is
    taken as one standard deviation.
    """
    r = np.minimum(ranges, float(cfg.lidar_range_max))
    return np.where(r < LIDAR_NEAR_RANGE, float(cfg.lidar_noise_std), float(cfg.lidar_noise_rel) * r)


@dataclass(frozen=True)
class RobotNavigationConfig(KnobConfig):
    """Physical parameters of one navigation world; default, unit, legal range and source per knob."""

    map_family: str = knob("random", choices=MAP_FAMILIES, unit="-",
                           source="layout family (this env); clutter, corridors with doors, or empty")
    arena_size: float = knob(4.0, 2.0, 10.0, unit="m",
                             source="square room (this env); the DQN stages of [4] are small walled rooms")
    obstacle_density: float = knob(0.1, 0.0, 0.3, unit="floor fraction",
                                   source="nominal area covered by obstacles (this env)")
    map_seed: int = knob(0, -1, 2**31 - 1, integer=True, unit="-",
                         source="-1: new layout per episode; >= 0: fixed world per client [5]")
    lidar_noise_std: float = knob(0.015, 0.0, 0.2, unit="m",
                                  source="noise std below 0.5 m: LDS-01 accuracy +-15 mm for 0.12-0.499 m [2]")
    lidar_noise_rel: float = knob(0.05, 0.0, 0.5, unit="fraction of range",
                                  source="noise std from 0.5 m, x range: LDS-01 accuracy +-5 % for 0.5-3.5 m [2]")
    actuator_noise_std: float = knob(0.02, 0.0, 0.5, unit="fraction of limit",
                                     source="wheel slip / tracking error, of v_max / w_max (this env)")
    goal_dist_min: float = knob(1.0, 0.3, 9.0, unit="m", source="start-goal distance (this env)")
    goal_dist_max: float = knob(3.0, 0.3, 9.0, unit="m", source="start-goal distance (this env)")
    goal_tolerance: float = knob(0.2, 0.05, 1.0, unit="m", source="0.2 m [4]")
    robot_radius: float = knob(0.105, 0.05, 0.5, unit="m", source="0.105 m Burger footprint [3]")
    v_max: float = knob(0.22, 0.01, 1.0, unit="m/s", source="0.22 m/s Burger [1]")
    w_max: float = knob(2.84, 0.1, BURGER_W_MAX, unit="rad/s",
                        source="2.84 rad/s Burger [1], the TurtleBot3's fastest turn (at most that)")
    dt: float = knob(0.2, 0.02, 0.5, unit="s", source="0.2 s = one LDS-01 scan at 5 Hz [2]")
    n_beams: int = knob(24, 4, 360, integer=True, unit="beams", source="24 beams [4]; LDS-01 has 360 [2]")
    lidar_range_min: float = knob(0.12, 0.0, 1.0, unit="m", source="0.12 m LDS-01 [2]")
    lidar_range_max: float = knob(3.5, 0.5, 20.0, unit="m", source="3.5 m LDS-01 [2], [4]")
    max_steps: int = knob(500, 10, 100_000, integer=True, unit="steps",
                          source="500 steps = 100 s at dt = 0.2 s (this env)")
    progress_reward: float = knob(5.0, 0.0, 1000.0, unit="1/m", source="dense progress term [7]")
    goal_reward: float = knob(10.0, 0.0, 1000.0, unit="-", source="arrival bonus [7]; +200 in [4], scaled down")
    collision_penalty: float = knob(10.0, 0.0, 1000.0, unit="-",
                                    source="collision penalty [7]; -200 in [4], scaled down")
    step_cost: float = knob(0.01, 0.0, 10.0, unit="1/step", source="time penalty (this env)")
    discrete_actions: bool = knob(False, unit="-", source="Discrete(5) of [4] instead of Box(2)")
    discrete_linear_vel: float = knob(0.15, 0.0, 1.0, unit="m/s", source="0.15 m/s [4]; at most v_max")
    discrete_max_angular_vel: float = knob(1.5, 0.0, BURGER_W_MAX, unit="rad/s",
                                           source="1.5 rad/s [4]; at most w_max")

    def check_constraints(self) -> None:
        if self.goal_dist_min > self.goal_dist_max:
            raise EnvConfigError(f"goal_dist_min={self.goal_dist_min!r} exceeds goal_dist_max="
                                 f"{self.goal_dist_max!r}; allowed: goal_dist_min <= goal_dist_max")
        # every start then has a feasible goal ring inside the spawn square (half its diagonal)
        reach = 0.7 * (self.arena_size - 2.0 * (self.robot_radius + _SPAWN_CLEAR))
        if self.goal_dist_min > reach:
            raise EnvConfigError(f"goal_dist_min={self.goal_dist_min!r} is out of range for arena_size="
                                 f"{self.arena_size!r}; allowed: [0.3, {reach:.3f}]")
        if self.lidar_range_min >= self.lidar_range_max:
            raise EnvConfigError(f"lidar_range_min={self.lidar_range_min!r} must be below lidar_range_max="
                                 f"{self.lidar_range_max!r}")
        if self.v_max * self.dt > self.robot_radius:
            raise EnvConfigError(f"v_max={self.v_max!r} is out of range for dt={self.dt!r}: one step must "
                                 f"not exceed robot_radius={self.robot_radius!r} (no tunnelling); allowed: "
                                 f"v_max <= {self.robot_radius / self.dt:.4f}")
        if self.discrete_linear_vel > self.v_max:
            raise EnvConfigError(f"discrete_linear_vel={self.discrete_linear_vel!r} is out of range; "
                                 f"allowed: [0, v_max={self.v_max!r}]")
        if self.discrete_max_angular_vel > self.w_max:
            raise EnvConfigError(f"discrete_max_angular_vel={self.discrete_max_angular_vel!r} is out of "
                                 f"range; allowed: [0, w_max={self.w_max!r}]")
        if self.goal_tolerance >= self.goal_dist_min:
            raise EnvConfigError(f"goal_tolerance={self.goal_tolerance!r} is out of range; allowed: below "
                                 f"goal_dist_min={self.goal_dist_min!r}")



def discrete_turn_rates(cfg: RobotNavigationConfig) -> np.ndarray:
    """The 5 turn rates of the Discrete(5) actions, ``omega = (2 - a) * discrete_max_angular_vel / 2`` [4]."""
    return np.array([(2 - a) * 0.5 * float(cfg.discrete_max_angular_vel) for a in range(5)])


# ---------------------------------------------------------------------- client configs
def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: RobotNavigationConfig | None = None) -> list[RobotNavigationConfig]:
    """Build ``n_clients`` world configs around ``base`` with spread proportional to ``heterogeneity``.

    At heterogeneity ``h``: each client's ``map_family`` is replaced, with probability ``h``, by one drawn
    uniformly from ``MAP_FAMILIES`` (LFRL's clients are different worlds [5]); ``obstacle_density`` is shifted
    by ``0.1 h U(-1, 1)``; both lidar noise levels (``lidar_noise_std``, ``lidar_noise_rel``) are scaled by
    ``1 + 2 h U(0, 1)`` (a worse sensor, up to 3x the LDS-01 spec at h = 1) and ``actuator_noise_std`` grows by
    ``h U(0, 0.1)``; ``arena_size`` and both goal distances are scaled by ``2**(0.5 h U(-1, 1))`` (goal
    distances together with the arena, then by their own ``2**(0.3 h U(-1, 1))``); the robot's ``v_max`` and
    ``w_max`` each by ``2**(0.3 h U(-1, 1))``, each spread shifted down as a whole, if needed, so that no
    client exceeds the Burger's spec [1]: the fastest client drives at most at ``max(0.22 m/s, base.v_max)``
    (a faster base robot the user configured is never exceeded either) and turns at most at 2.84 rad/s; at
    the defaults that is ``2**(-0.6 h)`` .. 1 times 0.22 m/s and 2.84 rad/s (other TurtleBot3 models are
    slower in at least one of them, e.g. the Waffle Pi: 0.26 m/s but 1.82 rad/s [1]).
    Values are clipped to their legal ranges and cross-knob constraints. ``n_beams``, ``lidar_range_max``
    and ``discrete_actions`` stay fixed (they fix the spaces every client must share), as do the reward
    constants. With a fixed world (``base.map_seed >= 0``) each client also gets, with probability ``h``,
    its own world (a fresh ``map_seed``), so at ``h = 1`` every client learns in a different world as in
    LFRL [5]; ``map_seed = -1`` (a new layout every episode) is kept. ``h = 0`` returns copies of ``base``.
    Randomness only from ``np.random.default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else RobotNavigationConfig()
    if not isinstance(base, RobotNavigationConfig):
        raise EnvConfigError(f"base={base!r} must be a RobotNavigationConfig")
    h = float(heterogeneity)
    if h == 0.0:
        return [base for _ in range(n_clients)]
    rng = np.random.default_rng(seed)
    n = n_clients
    swap = rng.random(n) < h
    fam = rng.integers(len(MAP_FAMILIES), size=n)
    dens = 0.1 * h * rng.uniform(-1.0, 1.0, n)
    lid = 1.0 + 2.0 * h * rng.uniform(0.0, 1.0, n)
    act = h * rng.uniform(0.0, 0.1, n)
    arena = np.exp2(0.5 * h * rng.uniform(-1.0, 1.0, n))
    goal = np.exp2(0.3 * h * rng.uniform(-1.0, 1.0, n))
    vel = np.exp2(0.3 * h * rng.uniform(-1.0, 1.0, (n, 2)))
    # v_max, w_max: the spread's top (base * 2**(0.3 h)) brought down to the Burger's limit (or to a faster
    # base v_max), no mass piled at the cap
    v_shift = min(1.0, max(BURGER_V_MAX, base.v_max) / (base.v_max * 2.0 ** (0.3 * h)))
    w_hi = knob_spec(RobotNavigationConfig, "w_max").high
    w_shift = min(1.0, w_hi / (base.w_max * 2.0 ** (0.3 * h)))
    new_world = rng.random(n) < h
    world = rng.integers(0, knob_spec(RobotNavigationConfig, "map_seed").high, size=n)

    def clip(name: str, value: float, hi: float | None = None) -> float:
        return clip_knob(RobotNavigationConfig, name, value, high=hi)

    out = []
    for i in range(n):
        L = clip("arena_size", base.arena_size * arena[i])
        reach = 0.7 * (L - 2.0 * (base.robot_radius + _SPAWN_CLEAR))
        g = arena[i] * goal[i]
        gmin = clip("goal_dist_min", base.goal_dist_min * g, reach)
        gmin = max(gmin, min(base.goal_tolerance + 0.05, reach))
        gmax = max(clip("goal_dist_max", base.goal_dist_max * g), gmin)
        vmax = clip("v_max", base.v_max * vel[i, 0] * v_shift, base.robot_radius / base.dt)
        vmax = max(vmax, base.discrete_linear_vel)
        wmax = max(clip("w_max", base.w_max * vel[i, 1] * w_shift), base.discrete_max_angular_vel)
        out.append(dataclasses.replace(
            base,
            map_family=MAP_FAMILIES[int(fam[i])] if swap[i] else base.map_family,
            obstacle_density=clip("obstacle_density", base.obstacle_density + dens[i]),
            lidar_noise_std=clip("lidar_noise_std", base.lidar_noise_std * lid[i]),
            lidar_noise_rel=clip("lidar_noise_rel", base.lidar_noise_rel * lid[i]),
            actuator_noise_std=clip("actuator_noise_std", base.actuator_noise_std + act[i]),
            arena_size=L, goal_dist_min=gmin, goal_dist_max=gmax, v_max=vmax, w_max=wmax,
            map_seed=int(world[i]) if (base.map_seed >= 0 and new_world[i]) else base.map_seed,
        ))
    return out


def make_discrete_client_configs(n_clients: int, heterogeneity: float, seed: int,
                                 base: RobotNavigationConfig | None = None) -> list[RobotNavigationConfig]:
    """``make_client_configs`` for the Discrete(5) entry (base defaults to ``discrete_actions=True``)."""
    base = base if base is not None else RobotNavigationConfig(discrete_actions=True)
    if isinstance(base, RobotNavigationConfig) and not base.discrete_actions:
        base = apply_overrides(base, {"discrete_actions": True})
    return make_client_configs(n_clients, heterogeneity, seed, base)
