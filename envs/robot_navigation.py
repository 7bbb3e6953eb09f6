"""Mapless lidar navigation of a TurtleBot3-class robot to goals among obstacles (single robot and swarm).

## Description

One federated client is one *world* (LFRL [5]: every robot learns in its own environment and a cloud server
fuses what they learned). A differential-drive robot with TurtleBot3 Burger limits [1] drives in a square
arena of side ``arena_size`` bounded by walls, sees it through a 2D lidar modelled on the LDS-01 [2] and must
reach a goal point given in its own polar coordinates (distance, bearing), as in mapless navigation [4], [7].
Everything is pure numpy in the plane.

**Kinematics** (unicycle, [11] ch. 3): state ``(x, y, theta)``; commanded ``v in [0, v_max]`` m/s,
``omega in [-w_max, w_max]`` rad/s held for ``dt`` s and integrated with the midpoint (second-order
Runge-Kutta) rule ``x += v dt cos(theta + omega dt / 2)``, ``y += v dt sin(theta + omega dt / 2)``,
``theta += omega dt``. Actuator noise: ``v += actuator_noise_std * v_max * N(0, 1)`` and
``omega += actuator_noise_std * w_max * N(0, 1)`` (then clipped to the limits), i.e. wheel slip and motor
tracking error as a fraction of the limits.

**Obstacles and maps.** Obstacles are circles and axis-aligned rectangles; the arena border is four
rectangles (walls) just outside ``[0, arena_size]^2``. ``map_family``:

* ``"open"``   -- no interior obstacles;
* ``"random"`` -- circles (radius U[0.1, 0.3] m) and boxes (half-sides U[0.1, 0.4] m), half each, centres
  uniform; their number is ``round(obstacle_density * arena_size**2 / 0.193 m^2)`` (0.193 m^2 is the mean
  obstacle area, so ``obstacle_density`` is the nominal covered floor fraction; overlaps make it smaller);
* ``"corridor"`` -- ``floor(arena_size / 1.5)`` parallel walls (0.1 m thick; horizontal or vertical at
  random) each with one door ``max(0.8, 6 * robot_radius)`` m wide at a random place, which makes a
  serpentine of corridors; clutter as in ``"random"`` is added at ``obstacle_density`` away from the doors.

``map_seed >= 0`` (default 0) fixes the layout of this client (the first layout drawn from
``numpy.random.default_rng(map_seed)`` in which a start and a reachable goal can be placed) and only start,
heading and goal change per episode: LFRL's setting
of one fixed world per client [5]. ``map_seed = -1`` draws a new layout every episode from the episode
generator (procedural training for generalisation; resets are then ~2x slower).

**Lidar** (LDS-01 [2]: 360 deg, 0.12-3.5 m, 5 Hz): ``n_beams`` beams at bearings ``2 pi k / n_beams``
counter-clockwise from the heading (beam 0 looks straight ahead). Ranges are measured **from the robot
centre** (the LDS-01 sits on the Burger's vertical axis), so the clearance of the body along a beam is
``range - robot_radius``. Readings are the exact first hit computed in closed form and vectorised over
beams x obstacles: ray-circle ``t = b - sqrt(r^2 - q^2)`` with ``b`` and ``q`` the along-beam and
across-beam coordinates of the centre (obtained by one complex multiplication per beam x circle), and the
slab method for ray-box [10]. Gaussian noise of std ``lidar_noise_std`` m is added; readings are clipped to
``[lidar_range_min, lidar_range_max]`` (out of range reads as the maximum, as in ROBOTIS' DQN example [4]).

**Collision** is geometric: the body (a disc of radius ``robot_radius``) overlaps an obstacle, checked
after every step with exact point-box and point-circle distances. To keep the hot path short those are only
evaluated when the noise-free scan has a return closer than ``robot_radius + 0.081`` m, which is sound:
every generated obstacle (boxes >= 0.1 m on each side, circles >= 0.1 m radius) contains a 0.05 m disc
centred within 0.071 m of its point nearest to the robot, so if the body overlaps the obstacle a beam must
enter that disc within ``robot_radius + 0.071`` m as long as the beams are closer than the disc's apparent
width (true for 24 beams; with too few beams the exact test runs every step). ``v_max * dt <=
robot_radius`` is enforced and distance is 1-Lipschitz, so the centre cannot get inside an obstacle (or
through a wall) without overlapping it first, which ends the episode. The swarm always runs the exact test.

## Action Space

* ``frl/RobotNavigation-v0``: ``Box(-1, 1, (2,), float32)``; ``v = (a[0] + 1) / 2 * v_max`` (so -1 stops
  and +1 is full speed forward; the Burger does not need to reverse for this task) and
  ``omega = a[1] * w_max`` (positive turns left). Out-of-range actions are clipped.
* ``frl/RobotNavigationDiscrete-v0`` (``discrete_actions=True``): ``Discrete(5)``, ROBOTIS' DQN
  example [4]: constant ``v = discrete_linear_vel`` (0.15 m/s) and
  ``omega = (2 - a) * discrete_max_angular_vel / 2`` i.e. ``{+1.5, +0.75, 0, -0.75, -1.5}`` rad/s.

## Observation Space

``Box(low, high, (n_beams + 4,), float32)`` (default 28 features, as the 24-beam scan of [4] plus goal
polar coordinates and the previous command of [7]); the normalisation constants are the same for every
client so a feature means the same thing across a federation:

| index          | feature                                                   | range          |
|----------------|-----------------------------------------------------------|----------------|
| 0 .. B-1       | lidar range of beam k / ``lidar_range_max``               | [0, 1]         |
| B              | distance to goal / 10 m, clipped                          | [0, 1]         |
| B + 1          | bearing of the goal in the robot frame / pi               | [-1, 1]        |
| B + 2          | last commanded ``v / v_max``                               | [0, 1]         |
| B + 3          | last commanded ``omega / w_max``                           | [-1, 1]        |

## Rewards

Shape of Tai et al. [7] (arrival bonus, collision penalty, dense progress term), constants scaled down from
ROBOTIS' +-200 [4] so that an episode return is O(10):
``r = progress_reward * (d_{t-1} - d_t) - step_cost + goal_reward * [reached] - collision_penalty *
[collided]`` with ``d`` the centre-to-goal distance. If both happen in one step the collision wins (the goal
bonus is not paid).

**KPIs in ``info``** (every step, numeric). Evaluation in this suite averages ``info`` keys over steps, so
episode outcomes are encoded such that *ratios of per-step means* are per-episode rates:

* ``success`` -- 1 on the step that reaches the goal, else 0; ``success_so_far`` -- 1 from that step on
  (identical here, since reaching the goal ends the episode; kept for wrappers that continue episodes);
* ``collision`` -- 1 on the step that collides (which ends the episode), else 0;
* ``episode_end`` -- 1 on the last step of an episode (terminated or truncated), else 0; success rate per
  episode = mean(success) / mean(episode_end), collision rate = mean(collision) / mean(episode_end);
* ``progress`` -- running fraction of the initial distance covered, ``(d_0 - d_t) / d_0`` in [-1, 1];
* ``path_length_ratio`` -- running ``(path so far + remaining straight-line distance) / (d_0 - tol)`` with
  ``tol = goal_tolerance``; it is >= 1 at every step (triangle inequality), equals the usual path length /
  straight-line distance exactly on a success step, and its per-step mean is never diluted by zeros
  (lower is better);
* ``clearance`` -- body clearance seen by the noise-free scan, ``min(range) - robot_radius`` (m; 0 on a
  collision step);
* ``distance_to_goal`` (m), ``timeout`` (1 on a truncation step).

## Starting State

Robot start uniform over free space with clearance >= ``robot_radius + 0.1`` m, heading uniform; goal at a
distance U[``goal_dist_min``, ``goal_dist_max``] from the start in a uniform direction, with clearance >=
``robot_radius + 0.08`` m, and reachable: start and goal must lie in the same 4-connected component of an
occupancy grid of robot-centre positions (<= 0.1 m cells, free where the robot disc fits).
``lidar_range_max`` and the observation layout are fixed, so clients with larger arenas see partial scans.

## Episode End

Terminates on reaching the goal (centre within ``goal_tolerance`` = 0.2 m of it, as in [4]) or on a
collision. Truncated after ``max_steps`` steps (default 500 = 100 s at ``dt`` = 0.2 s). The env truncates
itself so that the final-step KPIs are known; ``ENTRY.max_episode_steps`` is therefore ``None``.

## Arguments

``RobotNavigationEnv(config: RobotNavigationConfig | None = None, render_mode: str | None = None,
**overrides)``; overrides replace fields of ``config``. Knobs (``KNOBS`` holds the same ranges):

| knob                       | default  | unit          | legal range      | source                          |
|----------------------------|----------|---------------|------------------|---------------------------------|
| ``map_family``             | random   | -             | open/random/corridor | this env                    |
| ``arena_size``             | 4.0      | m             | [2, 10]          | room scale (this env)           |
| ``obstacle_density``       | 0.1      | floor fraction| [0, 0.3]         | this env                        |
| ``map_seed``               | 0        | -             | -1 or [0, 2^31)  | one world per client [5]        |
| ``lidar_noise_std``        | 0.015    | m             | [0, 0.2]         | LDS-01 +-15 mm [2]              |
| ``actuator_noise_std``     | 0.02     | x v/w limits  | [0, 0.5]         | this env                        |
| ``goal_dist_min / _max``   | 1.0 / 3.0| m             | [0.3, 9] (a)     | this env                        |
| ``goal_tolerance``         | 0.2      | m             | [0.05, 1], < goal_dist_min | [4]                   |
| ``robot_radius``           | 0.105    | m             | [0.05, 0.5]      | Burger footprint [3]            |
| ``v_max`` / ``w_max``      | 0.22 / 2.84 | m/s, rad/s | [0.01, 1] (b) / [0.1, 10] | Burger [1]             |
| ``dt``                     | 0.2      | s             | [0.02, 0.5]      | 5 Hz LDS-01 scan [2]            |
| ``n_beams``                | 24       | beams         | [4, 360]         | [4]                             |
| ``lidar_range_min / _max`` | 0.12 / 3.5 | m           | [0, 1] / [0.5, 20] | LDS-01 [2]                    |
| ``max_steps``              | 500      | steps         | [10, 100000]     | this env                        |
| ``progress_reward``        | 5.0      | 1/m           | [0, 1000]        | [7]                             |
| ``goal_reward`` / ``collision_penalty`` | 10 / 10 | - | [0, 1000]       | [7]; +-200 in [4]               |
| ``step_cost``              | 0.01     | 1/step        | [0, 10]          | this env                        |
| ``discrete_actions``       | False    | -             | bool             | Discrete(5) of [4]              |
| ``discrete_linear_vel``    | 0.15     | m/s           | [0, v_max]       | [4]                             |
| ``discrete_max_angular_vel`` | 1.5    | rad/s         | [0, w_max]       | [4]                             |

(a) min <= max and min <= 0.7 (arena_size - 2 (robot_radius + 0.1)), so every start has a feasible goal;
(b) v_max dt <= robot_radius (no tunnelling).
 ``RobotNavigationDiscreteEnv`` is the same env with
``discrete_actions`` forced on. ``render_mode="rgb_array"`` returns a ``(400, 400, 3)`` uint8 top view
(obstacles grey, goal green, robot blue with its heading, lidar rays and hits red), rasterised in numpy only
when ``render()`` is called. Knobs that set
space sizes (``n_beams``, ``lidar_range_max``, ``discrete_actions``) are kept fixed by
``make_client_configs``.

``parallel_env(config=None, render_mode=None, n_robots=4, **overrides)`` returns the swarm form (FLDDPG,
Na et al. [6]): ``n_robots`` robots ``robot_0 .. robot_{N-1}`` share one arena, each with its own goal and
the same observation/action spaces as the single-robot env; each robot's lidar also sees the other robots
as discs of radius ``robot_radius``. A robot that collides (with an obstacle or another robot -- both robots
of a robot-robot contact) or reaches its goal ends its episode and is removed from the arena (PettingZoo
semantics: it leaves ``agents``). All robots are integrated, ray-cast and collision-checked together in one
vectorised numpy pass; ``info`` adds ``robot_collision``. ``PARALLEL_BASELINES`` run go-to-goal,
potential-field and random on every robot (joint ``obs dict -> action dict`` policies; bug2 needs one
robot's odometry and has no swarm form).

## References

1. ROBOTIS, "TurtleBot3 e-Manual: Features / Specifications", https://emanual.robotis.com (Burger: maximum
   translational velocity 0.22 m/s, maximum rotational velocity 2.84 rad/s (162.72 deg/s), size
   138 x 178 x 192 mm, 360 deg LDS-01 lidar).
2. ROBOTIS, "TurtleBot3 e-Manual: Appendix LDS-01" (HLS-LFCD2): distance range 120-3500 mm, 360 deg scan,
   1 deg angular resolution, 300 +- 10 rpm (5 Hz), accuracy +-15 mm (120-499 mm) and +-5 % (500-3500 mm).
3. ROBOTIS, ``turtlebot3_navigation/param/costmap_common_params_burger.yaml``: Burger footprint
   ``y = +-0.105`` m about the centre (robot_radius 0.105 m used here).
4. ROBOTIS, ``turtlebot3_machine_learning`` (``turtlebot3_dqn/src/turtlebot3_dqn/environment_stage_1.py``):
   5 actions ``omega = (2 - a) * 1.5 * 0.5`` rad/s at ``v = 0.15`` m/s, goal reached within 0.2 m,
   collision when a scan reading is below 0.13 m, out-of-range reading set to 3.5 m, rewards +-200; the
   state is the scan (24 samples in the e-Manual's machine-learning setup) plus goal heading and distance.
5. B. Liu, L. Wang, M. Liu, "Lifelong Federated Reinforcement Learning: A Learning Architecture for
   Navigation in Cloud Robotic Systems", IEEE Robotics and Automation Letters 4(4), 2019.
6. S. Na, T. Roucek, J. Ulrich, J. Pikman, T. Krajnik, B. Lennox, F. Arvin, "Federated Reinforcement
   Learning for Collective Navigation of Robotic Swarms", IEEE Trans. Cognitive and Developmental Systems
   15(4), 2023 (FLDDPG).
7. L. Tai, G. Paolo, M. Liu, "Virtual-to-real deep reinforcement learning: Continuous control of mobile
   robots for mapless navigation", IEEE/RSJ IROS 2017 (sparse lidar + goal polar coordinates + previous
   velocity as state; arrival / collision / progress reward).
8. V. J. Lumelsky, A. A. Stepanov, "Path-planning strategies for a point mobile automaton moving amidst
   unknown obstacles of arbitrary shape", Algorithmica 2, 1987 (Bug2: m-line, boundary following, leave
   point on the m-line closer to the goal).
9. O. Khatib, "Real-time obstacle avoidance for manipulators and mobile robots", Int. J. Robotics Research
   5(1), 1986 (potential field; repulsive force ``eta (1/rho - 1/rho_0) / rho^2``).
10. T. L. Kay, J. T. Kajiya, "Ray tracing complex scenes", SIGGRAPH 1986 (slab method for ray-box).
11. R. Siegwart, I. R. Nourbakhsh, D. Scaramuzza, "Introduction to Autonomous Mobile Robots", 2nd ed.,
    MIT Press, 2011 (differential-drive / unicycle kinematics and odometry integration).

## Version History

* v0: initial version.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_range

__all__ = [
    "BASELINES",
    "PARALLEL_BASELINES",
    "ENTRY",
    "ENTRY_DISCRETE",
    "KNOBS",
    "MAP_FAMILIES",
    "RobotNavigationConfig",
    "RobotNavigationDiscreteEnv",
    "RobotNavigationEnv",
    "RobotNavigationSwarmEnv",
    "make_client_configs",
    "make_discrete_client_configs",
    "parallel_env",
    "parallel_env_discrete",
    "ray_cast",
]

_INF = math.inf
_PI = math.pi
_TWO_PI = 2.0 * math.pi

MAP_FAMILIES: tuple[str, ...] = ("open", "random", "corridor")

# knob -> (low, high, unit, source). Used for validation and for the heterogeneity generator's clipping.
KNOBS: dict[str, tuple[float, float, str, str]] = {
    "arena_size": (2.0, 10.0, "m", "square room (this env); the DQN stages of [4] are small walled rooms"),
    "obstacle_density": (0.0, 0.3, "floor fraction", "nominal area covered by obstacles (this env)"),
    "map_seed": (-1, 2**31 - 1, "-", "-1: new layout per episode; >= 0: fixed world per client [5]"),
    "lidar_noise_std": (0.0, 0.2, "m", "LDS-01 accuracy +-15 mm / +-5 % [2]"),
    "actuator_noise_std": (0.0, 0.5, "fraction of limit", "wheel slip / tracking error (this env)"),
    "goal_dist_min": (0.3, 9.0, "m", "start-goal distance (this env)"),
    "goal_dist_max": (0.3, 9.0, "m", "start-goal distance (this env)"),
    "goal_tolerance": (0.05, 1.0, "m", "0.2 m [4]"),
    "robot_radius": (0.05, 0.5, "m", "0.105 m Burger footprint [3]"),
    "v_max": (0.01, 1.0, "m/s", "0.22 m/s Burger [1]"),
    "w_max": (0.1, 10.0, "rad/s", "2.84 rad/s Burger [1]"),
    "dt": (0.02, 0.5, "s", "0.2 s = one LDS-01 scan at 5 Hz [2]"),
    "n_beams": (4, 360, "beams", "24 beams [4]; LDS-01 has 360 [2]"),
    "lidar_range_min": (0.0, 1.0, "m", "0.12 m LDS-01 [2]"),
    "lidar_range_max": (0.5, 20.0, "m", "3.5 m LDS-01 [2], [4]"),
    "max_steps": (10, 100_000, "steps", "500 steps = 100 s at dt = 0.2 s (this env)"),
    "progress_reward": (0.0, 1000.0, "1/m", "dense progress term [7]"),
    "goal_reward": (0.0, 1000.0, "-", "arrival bonus [7]; +200 in [4], scaled down"),
    "collision_penalty": (0.0, 1000.0, "-", "collision penalty [7]; -200 in [4], scaled down"),
    "step_cost": (0.0, 10.0, "1/step", "time penalty (this env)"),
    "discrete_linear_vel": (0.0, 1.0, "m/s", "0.15 m/s [4]"),
    "discrete_max_angular_vel": (0.0, 10.0, "rad/s", "1.5 rad/s [4]"),
}

_INT_KNOBS = frozenset({"map_seed", "n_beams", "max_steps"})

_WALL = 0.1                  # m, thickness of border and corridor walls
_SPAWN_CLEAR = 0.1           # m, extra clearance of the start
_GOAL_CLEAR = 0.08           # m, extra clearance of the goal (> half-diagonal of a grid cell)
_GOAL_DIST_NORM = 10.0       # m, fixed normalisation of the goal distance feature
_MEAN_OBSTACLE_AREA = 0.193  # m^2: 0.5 * pi * E[r^2] (r ~ U[0.1, 0.3]) + 0.5 * 4 * 0.25^2
_GRID_CELL = 0.1             # m, reachability grid
_NOISE_BLOCK = 256           # steps of noise drawn at once


@dataclass(frozen=True)
class RobotNavigationConfig:
    """Physical parameters of one navigation world; unit, legal range and source per knob in ``KNOBS``."""

    map_family: str = "random"            # one of MAP_FAMILIES
    arena_size: float = 4.0               # m, side of the square arena
    obstacle_density: float = 0.1         # nominal floor fraction covered by obstacles
    map_seed: int = 0                     # >= 0: fixed world of this client [5]; -1: new layout per episode
    lidar_noise_std: float = 0.015        # m, LDS-01 +-15 mm [2]
    actuator_noise_std: float = 0.02      # fraction of v_max / w_max
    goal_dist_min: float = 1.0            # m
    goal_dist_max: float = 3.0            # m
    goal_tolerance: float = 0.2           # m [4]
    robot_radius: float = 0.105           # m [3]
    v_max: float = 0.22                   # m/s [1]
    w_max: float = 2.84                   # rad/s [1]
    dt: float = 0.2                       # s, 5 Hz scan [2]
    n_beams: int = 24                     # [4]
    lidar_range_min: float = 0.12         # m [2]
    lidar_range_max: float = 3.5          # m [2]
    max_steps: int = 500                  # steps per episode
    progress_reward: float = 5.0          # per metre of progress [7]
    goal_reward: float = 10.0             # [7]
    collision_penalty: float = 10.0       # [7]
    step_cost: float = 0.01               # per step
    discrete_actions: bool = False        # Discrete(5) of [4] instead of Box(2)
    discrete_linear_vel: float = 0.15     # m/s [4]
    discrete_max_angular_vel: float = 1.5  # rad/s [4]

    def __post_init__(self) -> None:
        if not isinstance(self.map_family, str) or self.map_family not in MAP_FAMILIES:
            raise EnvConfigError(f"map_family={self.map_family!r} is not allowed; "
                                 f"allowed: {', '.join(MAP_FAMILIES)}")
        if not isinstance(self.discrete_actions, bool | np.bool_):
            raise EnvConfigError(f"discrete_actions={self.discrete_actions!r} must be a bool")
        for name, (low, high, _unit, _src) in KNOBS.items():
            value = getattr(self, name)
            if name in _INT_KNOBS:
                if isinstance(value, bool) or not isinstance(value, int | np.integer):
                    raise EnvConfigError(f"{name}={value!r} must be an integer in [{low}, {high}]")
            elif isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise EnvConfigError(f"{name}={value!r} must be a number in [{low}, {high}]")
            check_range(name, value, low, high)
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


# ---------------------------------------------------------------------- client configs
def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: RobotNavigationConfig | None = None) -> list[RobotNavigationConfig]:
    """Build ``n_clients`` world configs around ``base`` with spread proportional to ``heterogeneity``.

    At heterogeneity ``h``: each client's ``map_family`` is replaced, with probability ``h``, by one drawn
    uniformly from ``MAP_FAMILIES`` (LFRL's clients are different worlds [5]); ``obstacle_density`` is shifted
    by ``0.1 h U(-1, 1)``; ``lidar_noise_std`` and ``actuator_noise_std`` grow by ``h U(0, 0.03)`` m and
    ``h U(0, 0.1)``; ``arena_size`` and both goal distances are scaled by ``2**(0.5 h U(-1, 1))`` (goal
    distances together with the arena, then by their own ``2**(0.3 h U(-1, 1))``); the robot's ``v_max`` /
    ``w_max`` by ``2**(0.3 h U(-1, 1))`` (other robot models, e.g. a Waffle Pi is 0.26 m/s, 1.82 rad/s [1]).
    Values are clipped to their legal ranges and cross-knob constraints. ``n_beams``, ``lidar_range_max``
    and ``discrete_actions`` stay fixed (they fix the spaces every client must share), as do the reward
    constants. With a fixed world (``base.map_seed >= 0``) each client also gets, with probability ``h``,
    its own world (a fresh ``map_seed``), so at ``h = 1`` every client learns in a different world as in
    LFRL [5]; ``map_seed = -1`` (a new layout every episode) is kept. ``h = 0`` returns copies of ``base``.
    Randomness only from ``np.random.default_rng(seed)``.
    """
    if isinstance(n_clients, bool) or not isinstance(n_clients, int | np.integer) or n_clients < 1:
        raise EnvConfigError(f"n_clients={n_clients!r} is out of range; allowed: integer >= 1")
    check_range("heterogeneity", heterogeneity, 0.0, 1.0)
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
    lid = h * rng.uniform(0.0, 0.03, n)
    act = h * rng.uniform(0.0, 0.1, n)
    arena = np.exp2(0.5 * h * rng.uniform(-1.0, 1.0, n))
    goal = np.exp2(0.3 * h * rng.uniform(-1.0, 1.0, n))
    vel = np.exp2(0.3 * h * rng.uniform(-1.0, 1.0, (n, 2)))
    new_world = rng.random(n) < h
    world = rng.integers(0, KNOBS["map_seed"][1], size=n)

    def clip(name: str, value: float, hi: float | None = None) -> float:
        lo_, hi_ = KNOBS[name][0], KNOBS[name][1]
        hi_ = hi_ if hi is None else min(hi_, hi)
        return float(min(max(value, lo_), hi_))

    out = []
    for i in range(n):
        L = clip("arena_size", base.arena_size * arena[i])
        reach = 0.7 * (L - 2.0 * (base.robot_radius + _SPAWN_CLEAR))
        g = arena[i] * goal[i]
        gmin = clip("goal_dist_min", base.goal_dist_min * g, reach)
        gmin = max(gmin, min(base.goal_tolerance + 0.05, reach))
        gmax = max(clip("goal_dist_max", base.goal_dist_max * g), gmin)
        vmax = clip("v_max", base.v_max * vel[i, 0], base.robot_radius / base.dt)
        vmax = max(vmax, base.discrete_linear_vel)
        wmax = max(clip("w_max", base.w_max * vel[i, 1]), base.discrete_max_angular_vel)
        out.append(dataclasses.replace(
            base,
            map_family=MAP_FAMILIES[int(fam[i])] if swap[i] else base.map_family,
            obstacle_density=clip("obstacle_density", base.obstacle_density + dens[i]),
            lidar_noise_std=clip("lidar_noise_std", base.lidar_noise_std + lid[i]),
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
        base = dataclasses.replace(base, discrete_actions=True)
    return make_client_configs(n_clients, heterogeneity, seed, base)


# ---------------------------------------------------------------------- geometry
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


def ray_cast(x: float, y: float, theta: float, n_beams: int, cc: np.ndarray, cr: np.ndarray,
             lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact first-hit distance (m, from the point ``(x, y)``) of ``n_beams`` rays at bearings
    ``theta + 2 pi k / n_beams`` against circles ``(cc, cr)`` and boxes ``(lo, hi)``; ``inf`` if no hit.

    Reference form of the env's hot path (same formulas, no preallocation); used by tests and rendering.
    """
    alpha = _TWO_PI * np.arange(n_beams) / n_beams
    cu = np.exp(-1j * (alpha + theta))        # conj of each beam's unit direction
    out = np.full(n_beams, _INF)
    if cc.size:
        z = (cc - complex(x, y))[None, :] * cu[:, None]
        along, perp = z.real, z.imag
        h = (cr * cr)[None, :] - perp * perp
        t = along - np.sqrt(np.maximum(h, 0.0))
        out = np.minimum(out, np.where((h > 0.0) & (along > 0.0), t, _INF).min(axis=1))
    if lo.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.stack([1.0 / cu.real, -1.0 / cu.imag])                     # (2, B)
            p = np.array([[x], [y]])
            t1 = (lo - p)[:, None, :] * inv[:, :, None]
            t2 = (hi - p)[:, None, :] * inv[:, :, None]
            tn = np.minimum(t1, t2).max(axis=0)
            tf = np.maximum(t1, t2).min(axis=0)
            out = np.minimum(out, np.where((tn <= tf) & (tn > 0.0), tn, _INF).min(axis=1))
    return out


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


# ---------------------------------------------------------------------- rendering
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


# ---------------------------------------------------------------------- single-robot env
def _resolve_config(cfg: RobotNavigationConfig | None, overrides: dict[str, Any],
                    default: RobotNavigationConfig) -> RobotNavigationConfig:
    cfg = cfg if cfg is not None else default
    if not isinstance(cfg, RobotNavigationConfig):
        raise EnvConfigError(f"config={cfg!r} must be a RobotNavigationConfig")
    if overrides:
        allowed = [f.name for f in dataclasses.fields(RobotNavigationConfig)]
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise EnvConfigError(f"unknown config field(s) {', '.join(unknown)}; "
                                 f"allowed: {', '.join(allowed)}")
        cfg = dataclasses.replace(cfg, **overrides)
    return cfg


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
    __doc__ = __doc__

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    _DEFAULT = RobotNavigationConfig()

    def __init__(self, config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = self._prepare(_resolve_config(config, overrides, self._DEFAULT))
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
        self._act_std = float(cfg.actuator_noise_std)
        self._dv = float(cfg.discrete_linear_vel)
        self.discrete_angular = _discrete_turn_rates(cfg).tolist()
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
        # preallocated buffers and 0-d constants (ufuncs take 0-d arrays much faster than Python floats)
        # conj(beam direction) at heading 0. The 1e-12 rad offset keeps beams off the exact axes, so the slab
        # method never divides by an exact zero for round headings (0, pi/2, ...); it changes no reading.
        self._E = np.exp(-1j * (alpha + 1e-12))
        self._CU = np.empty(B, dtype=np.complex128)                     # conj(beam direction) now
        self._CUV = self._CU.view(np.float64).reshape(B, 2).T.reshape(2, 1, B)   # (cos, -sin) view
        self._SGN = np.array([1.0, -1.0]).reshape(2, 1, 1)
        self._INV = np.empty((2, 1, B))                                 # 1 / (cos, sin) of each beam
        self._P0 = np.zeros((), dtype=np.complex128)
        self._R0 = np.zeros((), dtype=np.complex128)
        self._P2 = np.zeros((2, 1, 1))
        self._ZERO = np.zeros(())
        self._ONE = np.ones(())
        self._RMINN = np.array(float(cfg.lidar_range_min) / self._rmax)
        self._SCAN = np.ones(B)                                         # noise-free scan / range_max
        self._NBUF = np.empty(B)
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
        """Cache the layout in the hot path's units (lidar_range_max = 1), shapes and output buffers."""
        self.layout = lay
        C = lay.cc.size
        nb = lay.lo.shape[1]
        B = self.n_beams
        k = 1.0 / self._rmax
        self._C = C
        self._ccc = (lay.cc * k).reshape(C, 1)
        self._crc = (lay.cr * k).reshape(C, 1)
        self._cr2c = self._crc * self._crc
        self._LH = (np.stack([lay.lo, lay.hi]) * k).reshape(2, 2, nb, 1)   # (lo/hi, axis, box, 1)
        K = C + nb
        TV = np.empty((K, B))           # candidate hit distance per (obstacle, beam)
        MV = np.empty((K, B))           # > 0 together with TV iff that hit is real
        U = np.empty((K + 1, B))        # 1 / hit distance, <= 0 or NaN for a miss
        U[K] = 1e-9                     # a virtual wall at 1e9 range_max: a beam with no hit reads far
        D = np.empty((2, 2, nb, 1))
        T = np.empty((2, 2, nb, B))
        tmin = np.empty((2, nb, B))
        tmax = np.empty((2, nb, B))
        oc = np.empty((C, 1), dtype=np.complex128)
        z = np.empty((C, B), dtype=np.complex128)
        sq = np.empty((C, B))
        # every buffer and view the hot path touches, created once per layout
        self._bufs = (D, T, T[0], T[1], tmin, tmax, tmin[0], tmin[1], tmax[0], tmax[1], np.empty((nb, B)),
                      TV, MV, TV[:C], TV[C:], MV[:C], MV[C:], U, U[:K], oc, z, z.real, z.imag, sq)
        self._exact_bufs = (np.empty((2, nb, 1)), np.empty((2, nb, 1)))

    def _draw_noise(self) -> None:
        rng = self.np_random
        if self._lid_std > 0:
            self._lid_noise = rng.standard_normal((_NOISE_BLOCK, self.n_beams)) * (self._lid_std / self._rmax)
        if self._act_std > 0:
            an = rng.standard_normal((_NOISE_BLOCK, 2)) * self._act_std
            an[:, 0] *= self._vmax
            an[:, 1] *= self._wmax
            self._act_noise = an.tolist()
        self._k = 0

    def _sense(self) -> tuple[bool, float]:
        """Ray-cast the scan into the observation buffer; return (collided, scan clearance in m).

        Hot path, in units of ``lidar_range_max``, all into preallocated buffers: candidate hit distances of
        every (obstacle, beam) pair go into one array ``TV`` and a validity witness into ``MV`` (both > 0 iff
        the beam really hits that obstacle ahead); ``U = copysign(1 / TV, min(TV, MV))`` is then > 0 exactly
        for real hits, so one ``fmax`` reduction over obstacles gives ``1 / nearest hit`` per beam.
        """
        (D, T, T0, T1, tmin, tmax, tmin0, tmin1, tmax0, tmax1, tf,
         TV, MV, TVc, TVb, MVc, MVb, U, Uk, oc, z, zr, zi, sq) = self._bufs
        x = self.x * self._inv_rmax
        y = self.y * self._inv_rmax
        th = self.theta
        self._P0[()] = complex(x, y)
        self._R0[()] = complex(math.cos(th), -math.sin(th))
        P2 = self._P2
        P2[0, 0, 0] = x
        P2[1, 0, 0] = y
        CU = self._CU
        np.multiply(self._E, self._R0, out=CU)
        np.divide(self._SGN, self._CUV, out=self._INV)
        # boxes, slab method [10]: t_near = max over axes of min(t_lo, t_hi), t_far = min over axes of max
        np.subtract(self._LH, P2, out=D)        # (lo/hi, axis, box, 1)
        np.multiply(D, self._INV, out=T)        # (lo/hi, axis, box, beam)
        np.fmin(T0, T1, out=tmin)
        np.fmax(T0, T1, out=tmax)
        np.fmax(tmin0, tmin1, out=TVb)
        np.fmin(tmax0, tmax1, out=tf)
        np.subtract(tf, TVb, out=MVb)           # t_far - t_near >= 0: the line crosses the box
        if self._C:
            # circles: z = centre in each beam's frame, hit at t = along - sqrt(r^2 - across^2)
            np.subtract(self._ccc, self._P0, out=oc)
            np.multiply(oc, CU, out=z)
            np.multiply(zi, zi, out=sq)
            np.subtract(self._cr2c, sq, out=MVc)      # r^2 - across^2 > 0: the line crosses the circle
            np.maximum(MVc, self._ZERO, out=sq)
            np.sqrt(sq, out=sq)
            np.subtract(zr, sq, out=TVc)
        np.fmin(TV, MV, out=Uk)
        np.reciprocal(TV, out=TV)
        np.copysign(TV, Uk, out=Uk)
        scan = np.fmax.reduce(U, axis=0, out=self._SCAN)
        np.reciprocal(scan, out=scan)           # noise-free range / range_max
        src = scan
        if self._lid_noise is not None:
            src = np.add(scan, self._lid_noise[self._k], out=self._NBUF)
        obs_l = self._obs_l
        np.maximum(src, self._RMINN, out=obs_l)
        np.minimum(obs_l, self._ONE, out=obs_l)
        r_min = min(scan.tolist()) * self._rmax
        if r_min >= self._near:
            return False, r_min - self._R
        # exact distances: point-box (0 inside) and point-circle
        ob, ob2 = self._exact_bufs
        np.maximum(D[0], self._ZERO, out=ob)
        np.subtract(ob, np.minimum(D[1], self._ZERO, out=ob2), out=ob)
        np.multiply(ob, ob, out=ob)
        clear = math.sqrt(min(np.add(ob[0], ob[1], out=ob2[0]).ravel().tolist())) * self._rmax
        if self._C:
            cd = min((np.abs(oc) - self._crc).ravel().tolist()) * self._rmax
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
            a = int(action)
            if not 0 <= a < 5:
                raise gym.error.InvalidAction(f"action={action!r} is out of range; allowed: 0..4")
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
        return cfg if cfg.discrete_actions else dataclasses.replace(cfg, discrete_actions=True)


# ---------------------------------------------------------------------- swarm (PettingZoo parallel)
try:  # PettingZoo is a declared dependency; keep the single-robot env importable without it
    from pettingzoo import ParallelEnv as _ParallelEnv
except ImportError:  # pragma: no cover
    _ParallelEnv = object  # type: ignore[assignment,misc]


class RobotNavigationSwarmEnv(_ParallelEnv):
    """N robots in one arena (FLDDPG [6]); each sees the others as moving discs. See the module docstring."""

    metadata = {"name": "robot_navigation_v0", "render_modes": ["rgb_array"], "render_fps": 5,
                "is_parallelizable": True}

    def __init__(self, config: RobotNavigationConfig | None = None, render_mode: str | None = None,
                 n_robots: int = 4, **overrides: Any) -> None:
        cfg = _resolve_config(config, overrides, RobotNavigationConfig())
        if isinstance(n_robots, bool) or not isinstance(n_robots, int | np.integer):
            raise EnvConfigError(f"n_robots={n_robots!r} must be an integer in [1, 32]")
        check_range("n_robots", n_robots, 1, 32)
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
        alpha = _TWO_PI * np.arange(B) / B
        self.beam_angles = alpha
        self._E = np.exp(-1j * (alpha + 1e-12))                  # see RobotNavigationEnv
        self._SGN = np.array([1.0, -1.0]).reshape(2, 1)
        self._R = float(cfg.robot_radius)
        self._rmax = float(cfg.lidar_range_max)
        self._vmax = float(cfg.v_max)
        self._wmax = float(cfg.w_max)
        self._discrete_w = _discrete_turn_rates(cfg)
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
        """Cache the layout and allocate every hot-path buffer (robots x obstacles x beams) once."""
        N = self.n_robots
        B = self.n_beams
        C = lay.cc.size
        nb = lay.lo.shape[1]
        Kc = C + N
        K = Kc + nb
        self.layout = lay
        self._C = C
        self._LH = np.stack([lay.lo, lay.hi]).reshape(1, 2, 2, nb, 1)      # (1, lo/hi, axis, box, 1)
        self._rad = np.concatenate([lay.cr, np.full(N, self._R)])          # static circles, then robots
        r2 = np.repeat((self._rad * self._rad)[None, :], N, axis=0)
        r2[np.arange(N), C + np.arange(N)] = -_INF                          # a robot never sees itself
        self._r2 = r2[:, :, None]                                           # (N, Kc, 1)
        self._self_mask = np.zeros((N, Kc))
        self._self_mask[np.arange(N), C + np.arange(N)] = _INF
        self._self_shift = np.zeros((N, Kc), dtype=np.complex128)          # moves a robot's own disc away
        self._self_shift[np.arange(N), C + np.arange(N)] = 1e6
        cc = np.empty(Kc, dtype=np.complex128)
        cc[:C] = lay.cc
        CU = np.empty((N, B), dtype=np.complex128)
        INV = np.empty((N, 2, B))
        P = np.zeros((N, 1, 2, 1, 1))
        D = np.empty((N, 2, 2, nb, 1))
        T = np.empty((N, 2, 2, nb, B))
        tmin = np.empty((N, 2, nb, B))
        tmax = np.empty((N, 2, nb, B))
        TV = np.empty((N, K, B))
        MV = np.empty((N, K, B))
        U = np.empty((N, K + 1, B))
        U[:, K] = 1e-9                                                      # no hit at all reads far
        oc = np.empty((N, Kc), dtype=np.complex128)
        z = np.empty((N, Kc, B), dtype=np.complex128)
        self._bufs = (cc, cc[C:], CU, CU.view(np.float64).reshape(N, B, 2).transpose(0, 2, 1), INV,
                      INV[:, None, :, None, :], P, P[:, 0, 0, 0, 0], P[:, 0, 1, 0, 0], D, T, T[:, 0], T[:, 1],
                      tmin, tmax, tmin[:, 0], tmin[:, 1], tmax[:, 0], tmax[:, 1], np.empty((N, nb, B)),
                      TV, MV, TV[:, :Kc], TV[:, Kc:], MV[:, :Kc], MV[:, Kc:], U, U[:, :K], oc, z, z.real,
                      z.imag, np.empty((N, Kc, B)), np.empty((N, 2, nb, 1)), np.empty((N, 2, nb, 1)))

    def _sense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised over robots x obstacles x beams (same encoding as the single-robot hot path).

        Returns the noisy clipped scan / range_max (N, B) and the exact clearance to static obstacles and to
        the nearest other robot (N,), in metres.
        """
        (cc, cc_rob, CU, CUV, INV, INVv, P, Px, Py, D, T, T0, T1, tmin, tmax, tmin0, tmin1, tmax0, tmax1, tf,
         TV, MV, TVc, TVb, MVc, MVb, U, Uk, oc, z, zr, zi, sq, ob, ob2) = self._bufs
        cfg = self.config
        pos = self.pos                                              # (N,) complex; removed robots far away
        np.multiply(self._E, np.exp(-1j * self.theta)[:, None], out=CU)   # conj(beam directions)
        np.divide(self._SGN, CUV, out=INV)                          # 1 / (cos, sin) per robot and beam
        # boxes (slab method [10])
        Px[:] = pos.real
        Py[:] = pos.imag
        np.subtract(self._LH, P, out=D)                             # (N, lo/hi, axis, box, 1)
        np.multiply(D, INVv, out=T)                                 # (N, lo/hi, axis, box, B)
        np.fmin(T0, T1, out=tmin)
        np.fmax(T0, T1, out=tmax)
        np.fmax(tmin0, tmin1, out=TVb)
        np.fmin(tmax0, tmax1, out=tf)
        np.subtract(tf, TVb, out=MVb)
        # circles: static obstacles and the robots
        cc_rob[:] = pos
        np.subtract(cc[None, :], pos[:, None], out=oc)
        oc += self._self_shift                                      # (N, Kc)
        np.multiply(oc[:, :, None], CU[:, None, :], out=z)          # (N, Kc, B)
        np.multiply(zi, zi, out=sq)
        np.subtract(self._r2, sq, out=MVc)
        np.sqrt(np.maximum(MVc, 0.0, out=sq), out=sq)
        np.subtract(zr, sq, out=TVc)
        np.fmin(TV, MV, out=Uk)
        np.reciprocal(TV, out=TV)
        np.copysign(TV, Uk, out=Uk)
        scan = np.reciprocal(np.fmax.reduce(U, axis=1))             # (N, B) noise-free ranges (m)
        self._true_ranges = scan
        # exact clearances
        np.maximum(D[:, 0], 0.0, out=ob)
        np.subtract(ob, np.minimum(D[:, 1], 0.0, out=ob2), out=ob)
        np.multiply(ob, ob, out=ob)
        clear_box = np.sqrt(np.add(ob[:, 0], ob[:, 1]).reshape(self.n_robots, -1).min(axis=1))
        dist = np.abs(oc) - self._rad + self._self_mask            # (own disc: +inf)
        C = self._C
        clear_robot = dist[:, C:].min(axis=1)
        clear_obs = np.minimum(dist[:, :C].min(axis=1), clear_box) if C else clear_box
        r = scan
        if cfg.lidar_noise_std > 0:
            r = r + self._rng.standard_normal(r.shape) * cfg.lidar_noise_std
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
    cfg = _resolve_config(config, overrides, RobotNavigationConfig(discrete_actions=True))
    return RobotNavigationSwarmEnv(dataclasses.replace(cfg, discrete_actions=True), render_mode=render_mode,
                                   n_robots=n_robots)


# ---------------------------------------------------------------------- heuristic baselines
def _discrete_turn_rates(cfg: RobotNavigationConfig) -> np.ndarray:
    """The 5 turn rates of the Discrete(5) actions, ``omega = (2 - a) * discrete_max_angular_vel / 2`` [4]."""
    return np.array([(2 - a) * 0.5 * float(cfg.discrete_max_angular_vel) for a in range(5)])


def _actuate(e: Any) -> Callable[[float, float], Any]:
    """Map a physical command (v m/s, omega rad/s) to the env's action (nearest one for Discrete(5))."""
    if e.discrete:
        table = _discrete_turn_rates(e.config)
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

_KPIS = ("success", "collision", "episode_end", "progress", "path_length_ratio", "clearance")

ENTRY = EnvEntry(
    env_id="frl/RobotNavigation-v0",
    name="robot-navigation",
    entry_point="envs.robot_navigation:RobotNavigationEnv",
    config_cls=RobotNavigationConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=_KPIS,
    lower_is_better=("collision", "path_length_ratio"),
    summary="TurtleBot3 lidar navigation to goals among obstacles; one world per client (continuous v, w)",
    parallel_entry_point="envs.robot_navigation:parallel_env",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)

ENTRY_DISCRETE = EnvEntry(
    env_id="frl/RobotNavigationDiscrete-v0",
    name="robot-navigation-discrete",
    entry_point="envs.robot_navigation:RobotNavigationDiscreteEnv",
    config_cls=RobotNavigationConfig,
    client_configs=make_discrete_client_configs,
    baselines=BASELINES,
    kpis=_KPIS,
    lower_is_better=("collision", "path_length_ratio"),
    summary="TurtleBot3 lidar navigation with the 5 discrete turn rates of ROBOTIS' DQN example",
    parallel_entry_point="envs.robot_navigation:parallel_env_discrete",
    max_episode_steps=None,
    parallel_baselines=PARALLEL_BASELINES,
)

