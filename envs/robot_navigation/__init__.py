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
slab method for ray-box [10]. Gaussian noise is added per beam with a range-dependent std following the
LDS-01 accuracy [2] (+-15 mm for 0.12-0.499 m, +-5 % of the range for 0.5-3.5 m, each taken as one std):
``lidar_noise_std`` (15 mm) below 0.5 m and ``lidar_noise_rel * range`` (5 %) from 0.5 m, the range capped
at ``lidar_range_max`` (``config.lidar_noise_sigma``); readings are clipped to
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
**overrides)``; overrides replace fields of ``config`` through ``envs.knobs.apply_overrides``. Knobs
(default, unit, legal range, source), generated from the ``RobotNavigationConfig`` field declarations by
``envs.knobs.knob_table``:

{knob_table}

Cross-knob constraints: ``goal_dist_min <= goal_dist_max``, ``goal_dist_min <= 0.7 (arena_size - 2
(robot_radius + 0.1))`` (every start has a feasible goal), ``goal_tolerance < goal_dist_min``,
``lidar_range_min < lidar_range_max``, ``v_max dt <= robot_radius`` (no tunnelling),
``discrete_linear_vel <= v_max`` and ``discrete_max_angular_vel <= w_max``. ``RobotNavigationDiscreteEnv`` is
the same env with ``discrete_actions`` forced on. ``render_mode="rgb_array"`` returns a ``(400, 400, 3)``
uint8 top view (obstacles grey, goal green, robot blue with its heading, lidar rays and hits red),
rasterised in numpy only when ``render()`` is called. Knobs that set
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

The package holds one concept a module: ``config`` (knobs, client configs), ``world`` (layouts,
reachability, spawning and the one lidar ray caster ``Lidar``, vectorised over N robots and shared by the
single env, the swarm and the tests), ``render``, ``env`` (single robot), ``swarm`` (PettingZoo form) and
``baselines``.

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

* v0: initial version. Revised in place (issue 10): range-dependent LDS-01 lidar noise (``lidar_noise_rel``),
  ``w_max`` (and the heterogeneity spread of it) within the Burger's 2.84 rad/s; the heterogeneity spread of
  ``v_max`` within the Burger's 0.22 m/s (or a faster base ``v_max``).
"""

from __future__ import annotations

import dataclasses

from envs.knobs import document_knobs
from envs.registry import EnvEntry
from envs.robot_navigation.baselines import BASELINES, PARALLEL_BASELINES
from envs.robot_navigation.config import (
    MAP_FAMILIES,
    RobotNavigationConfig,
    make_client_configs,
    make_discrete_client_configs,
)
from envs.robot_navigation.env import RobotNavigationDiscreteEnv, RobotNavigationEnv
from envs.robot_navigation.swarm import RobotNavigationSwarmEnv, parallel_env, parallel_env_discrete
from envs.robot_navigation.world import Lidar, ray_cast

__all__ = [
    "BASELINES",
    "ENTRY",
    "ENTRY_DISCRETE",
    "MAP_FAMILIES",
    "PARALLEL_BASELINES",
    "Lidar",
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

__doc__ = document_knobs(__doc__, RobotNavigationConfig)
RobotNavigationEnv.__doc__ = __doc__

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

ENTRY_DISCRETE = dataclasses.replace(
    ENTRY,
    env_id="frl/RobotNavigationDiscrete-v0",
    name="robot-navigation-discrete",
    entry_point="envs.robot_navigation:RobotNavigationDiscreteEnv",
    client_configs=make_discrete_client_configs,
    summary="TurtleBot3 lidar navigation with the 5 discrete turn rates of ROBOTIS' DQN example",
    parallel_entry_point="envs.robot_navigation:parallel_env_discrete",
)
