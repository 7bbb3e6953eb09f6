"""Behaviour of the robot navigation env: API conformance, ray casting, collisions, KPIs, heterogeneity,
baselines and the PettingZoo swarm form."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from envs.knobs import validate_knobs
from envs.registry import EnvConfigError, register_entry
from envs.robot_navigation import (
    BASELINES,
    ENTRY,
    ENTRY_DISCRETE,
    MAP_FAMILIES,
    RobotNavigationConfig,
    RobotNavigationDiscreteEnv,
    RobotNavigationEnv,
    make_client_configs,
    make_discrete_client_configs,
    parallel_env,
    parallel_env_discrete,
    ray_cast,
)
from envs.robot_navigation.world import _clearance_points, _Layout, _reachable

for _entry in (ENTRY, ENTRY_DISCRETE):
    if _entry.env_id not in gym.registry:
        register_entry(_entry)

NO_NOISE = {"lidar_noise_std": 0.0, "lidar_noise_rel": 0.0, "actuator_noise_std": 0.0}
EMPTY_C = np.empty(0, dtype=np.complex128)


def layout(circles=(), boxes=()) -> _Layout:
    """A custom layout: circles ``(x, y, r)``, boxes ``(x0, y0, x1, y1)``."""
    lo = np.array([[b[0] for b in boxes], [b[1] for b in boxes]], dtype=np.float64).reshape(2, -1)
    hi = np.array([[b[2] for b in boxes], [b[3] for b in boxes]], dtype=np.float64).reshape(2, -1)
    return _Layout(cc=np.array([complex(c[0], c[1]) for c in circles], dtype=np.complex128),
                   cr=np.array([c[2] for c in circles], dtype=np.float64), lo=lo, hi=hi, doors=EMPTY_C)


def place(env: RobotNavigationEnv, x: float, y: float, theta: float, lay: _Layout | None = None):
    """Put the (reset) robot at a pose, optionally in a custom layout; return (collided, clearance)."""
    if lay is not None:
        env._set_layout(lay)
    env.x, env.y, env.theta = x, y, theta
    return env._sense()


def rollout(env: gym.Env, policy, seed: int, episodes: int) -> dict[str, float]:
    """Per-episode rates (success, collision) and the mean path-length ratio of successes."""
    succ = coll = 0.0
    plr = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        while True:
            obs, _, term, trunc, info = env.step(policy(obs))
            if term or trunc:
                succ += info["success"]
                coll += info["collision"]
                if info["success"]:
                    plr.append(info["path_length_ratio"])
                obs, _ = env.reset()
                break
    return {"success": succ / episodes, "collision": coll / episodes,
            "plr": float(np.mean(plr)) if plr else math.nan}


# ---------------------------------------------------------------- API / registration
@pytest.mark.parametrize("env_id", [ENTRY.env_id, ENTRY_DISCRETE.env_id])
def test_check_env_and_observations_in_space(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped)
    check_env(gym.make(env_id, map_family="corridor", map_seed=-1).unwrapped)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(400):
        assert env.observation_space.contains(obs)
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(reward)
        for k in ENTRY.kpis:
            assert k in info and np.isfinite(info[k]), k
        if term or trunc:
            obs, _ = env.reset()


def test_spaces_and_entries():
    cont, disc = gym.make(ENTRY.env_id), gym.make(ENTRY_DISCRETE.env_id)
    assert cont.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert disc.action_space == gym.spaces.Discrete(5)
    assert cont.observation_space == disc.observation_space
    assert cont.observation_space.shape == (24 + 4,)
    # the discrete class forces discrete actions even for a continuous config
    assert RobotNavigationDiscreteEnv(config=RobotNavigationConfig()).discrete
    assert ENTRY.name == "robot-navigation" and ENTRY_DISCRETE.name == "robot-navigation-discrete"
    assert set(ENTRY.baselines) == {"go-to-goal", "potential-field", "bug2", "random"}
    assert RobotNavigationEnv.metadata["render_modes"] == ["rgb_array"]


def test_render_rgb_array():
    env = RobotNavigationEnv(render_mode="rgb_array", **NO_NOISE)
    env.reset(seed=0)
    img = env.render()
    assert img.shape[2] == 3 and img.ndim == 3 and img.dtype == np.uint8
    assert (img == np.array([30, 90, 220], dtype=np.uint8)).all(axis=2).sum() > 50      # the robot disc
    assert RobotNavigationEnv().render() is None
    sw = parallel_env(render_mode="rgb_array")
    sw.reset(seed=0)
    img = sw.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_bad_knobs_raise_naming_the_knob():
    for knob, bad in [("arena_size", 0.5), ("obstacle_density", 0.9), ("lidar_noise_std", -0.1),
                      ("actuator_noise_std", 2.0), ("robot_radius", 0.0), ("n_beams", 2), ("dt", 1.0),
                      ("max_steps", 0), ("map_seed", -2), ("v_max", float("nan"))]:
        with pytest.raises(EnvConfigError, match=knob):
            RobotNavigationConfig(**{knob: bad})
    with pytest.raises(EnvConfigError, match="map_family.*open, random, corridor"):
        RobotNavigationConfig(map_family="maze")
    with pytest.raises(EnvConfigError, match="goal_dist_min"):
        RobotNavigationConfig(goal_dist_min=2.5, goal_dist_max=2.0)
    with pytest.raises(EnvConfigError, match="goal_dist_min"):
        RobotNavigationConfig(arena_size=2.0, goal_dist_min=1.5, goal_dist_max=1.6)
    with pytest.raises(EnvConfigError, match="v_max"):            # one step longer than the robot radius
        RobotNavigationConfig(v_max=0.8, dt=0.5)
    with pytest.raises(EnvConfigError, match="n_beams"):
        RobotNavigationConfig(n_beams=24.0)
    with pytest.raises(EnvConfigError, match="no_such_knob.*allowed: .*arena_size"):
        RobotNavigationEnv(no_such_knob=1)
    with pytest.raises(EnvConfigError, match="render_mode"):
        RobotNavigationEnv(render_mode="human")
    with pytest.raises(EnvConfigError, match="n_robots"):
        parallel_env(n_robots=0)


# ---------------------------------------------------------------- ray casting and geometry
def test_ray_cast_hand_computed_wall_and_circle():
    # robot at the origin facing +x, wall (box) at x = 1: beam 0 reads 1 - 0 = 1.0 (ranges are measured from
    # the robot centre); beam 6 (+90 deg) misses the wall, beam 12 (backwards) sees nothing either
    wall_lo, wall_hi = np.array([[1.0], [-5.0]]), np.array([[1.1], [5.0]])
    r = ray_cast(0.0, 0.0, 0.0, 24, EMPTY_C, np.empty(0), wall_lo, wall_hi)
    assert r[0] == pytest.approx(1.0, abs=1e-12)
    assert r[1] == pytest.approx(1.0 / math.cos(math.radians(15)), abs=1e-12)
    assert np.isinf(r[6]) and np.isinf(r[12])
    # circle of radius 0.5 centred 2 m ahead: 1.5 m; beam 1 (15 deg) passes 2 sin 15 = 0.518 m from the centre
    r = ray_cast(0.0, 0.0, 0.0, 24, np.array([2 + 0j]), np.array([0.5]), np.zeros((2, 0)), np.zeros((2, 0)))
    assert r[0] == pytest.approx(1.5, abs=1e-12) and np.isinf(r[1])
    # heading rotates the beams: facing +y the wall is seen by beam 18 (-90 deg)
    r = ray_cast(0.0, 0.0, math.pi / 2, 24, EMPTY_C, np.empty(0), wall_lo, wall_hi)
    assert r[18] == pytest.approx(1.0, abs=1e-12)


def test_env_hot_path_reads_the_hand_computed_case():
    env = RobotNavigationEnv(map_family="open", **NO_NOISE)
    env.reset(seed=0)
    rmax = env.config.lidar_range_max
    collided, clear = place(env, 0.0, 0.0, 0.0, layout(boxes=[(1.0, -5.0, 1.1, 5.0)]))
    assert not collided
    assert env.true_ranges[0] == pytest.approx(1.0, abs=1e-12)
    assert env.ranges[0] == pytest.approx(1.0, abs=1e-6)           # no noise; float64 buffer
    assert env.ranges[6] == pytest.approx(rmax)                     # no return reads the maximum range
    assert clear == pytest.approx(1.0 - env.config.robot_radius, abs=1e-9)
    # in the open arena (walls just outside [0, L]^2): 1 m from the east wall, facing it
    L = env.config.arena_size
    place(env, L - 1.0, 2.0, 0.0, env._fixed_layout)
    assert env.true_ranges[[0, 6, 12, 18]] == pytest.approx([1.0, L - 2.0, L - 1.0, 2.0], abs=1e-9)
    obs = env._observe(1.0)
    assert obs[0] == pytest.approx(1.0 / rmax, rel=1e-6)


def _brute_force_ranges(x, y, theta, n_beams, lay, step=5e-4, reach=4.0):
    """Independent reference: march along every ray and return the first sample inside an obstacle."""
    alpha = theta + 2 * np.pi * np.arange(n_beams) / n_beams
    s = np.arange(0.0, reach, step)
    px = x + np.cos(alpha)[:, None] * s[None, :]
    py = y + np.sin(alpha)[:, None] * s[None, :]
    inside = np.zeros(px.shape, dtype=bool)
    for c, r in zip(lay.cc, lay.cr, strict=True):
        inside |= (px - c.real) ** 2 + (py - c.imag) ** 2 <= r * r
    for k in range(lay.lo.shape[1]):
        inside |= (px >= lay.lo[0, k]) & (px <= lay.hi[0, k]) & (py >= lay.lo[1, k]) & (py <= lay.hi[1, k])
    first = np.where(inside.any(axis=1), inside.argmax(axis=1) * step, np.inf)
    return first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_vectorised_ray_cast_matches_brute_force_marching(seed):
    rng = np.random.default_rng(seed)
    circles = [(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(0.1, 0.6))
               for _ in range(rng.integers(0, 5))]
    boxes = []
    for _ in range(rng.integers(1, 5)):
        x0, y0 = rng.uniform(-3, 3, 2)
        boxes.append((x0, y0, x0 + rng.uniform(0.1, 1.0), y0 + rng.uniform(0.1, 1.0)))
    lay = layout(circles, boxes)
    if _clearance_points(np.array([0j]), lay)[0] < 0.05:     # the sensor must be outside the obstacles
        return
    theta = float(rng.uniform(-np.pi, np.pi))
    ref = _brute_force_ranges(0.0, 0.0, theta, 24, lay)
    fast = ray_cast(0.0, 0.0, theta, 24, lay.cc, lay.cr, lay.lo, lay.hi)
    fast = np.where(fast < 4.0, fast, np.inf)
    both = np.isfinite(ref) & np.isfinite(fast)
    assert np.array_equal(np.isfinite(ref), np.isfinite(fast)) or np.abs(fast - ref)[both].max() < 2e-3
    assert np.allclose(fast[both], ref[both], atol=1.1e-3)
    # the env's preallocated hot path agrees with the reference function
    env = RobotNavigationEnv(map_family="open", **NO_NOISE)
    env.reset(seed=0)
    place(env, 0.0, 0.0, theta, lay)
    ray = ray_cast(0.0, 0.0, theta, 24, lay.cc, lay.cr, lay.lo, lay.hi)
    hot = env.true_ranges
    assert np.allclose(np.where(ray <= 3.5, ray, 3.5), np.minimum(hot, 3.5), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.02, 3.98), st.floats(0.02, 3.98), st.floats(-math.pi, math.pi))
def test_collision_flag_is_exact_geometric_overlap(x, y, theta):
    """The scan-based shortcut for the exact collision test never misses an overlap.

    States with the robot centre inside an obstacle are unreachable (a step is at most ``robot_radius`` long
    and distance is 1-Lipschitz, so the body overlaps first and the episode ends), so they are not drawn.
    """
    env = RobotNavigationEnv(obstacle_density=0.25, **NO_NOISE)
    env.reset(seed=0)
    lay = env.layout
    exact = float(_clearance_points(np.array([complex(x, y)]), lay)[0])
    assume(exact > 0.0)
    collided, clear = place(env, x, y, theta)
    assert collided == (exact < env.config.robot_radius)
    if not collided:
        assert clear >= exact - env.config.robot_radius - 1e-9     # scan clearance bounds the exact one


def test_reachability_grid_separates_closed_rooms():
    L = 4.0
    border = [(-0.1, -0.1, 0.0, L + 0.1), (L, -0.1, L + 0.1, L + 0.1), (-0.1, -0.1, L + 0.1, 0.0),
              (-0.1, L, L + 0.1, L + 0.1)]
    closed = layout(boxes=border + [(0.0, 1.95, L, 2.05)])
    door = layout(boxes=border + [(0.0, 1.95, 1.5, 2.05), (2.3, 1.95, L, 2.05)])
    goals = np.array([1 + 3j, 3 + 1.5j])
    assert _reachable(closed, L, 0.105, 1 + 1j, goals, None)[0].tolist() == [False, True]
    assert _reachable(door, L, 0.105, 1 + 1j, goals[:1], None)[0].tolist() == [True]


# ---------------------------------------------------------------- dynamics, rewards and KPIs
def test_unicycle_kinematics_and_action_scaling():
    env = RobotNavigationEnv(map_family="open", **NO_NOISE)
    env.reset(seed=0)
    place(env, 1.0, 1.0, 0.0)
    env.gx, env.gy = 3.5, 3.5
    for _ in range(5):
        env.step(np.array([1.0, 0.0], dtype=np.float32))           # full speed, straight
    assert env.x == pytest.approx(1.0 + 5 * 0.22 * 0.2) and env.y == pytest.approx(1.0)
    env.step(np.array([-1.0, 0.5], dtype=np.float32))              # v = 0, omega = w_max / 2
    assert env.theta == pytest.approx(0.5 * 2.84 * 0.2) and env.x == pytest.approx(1.0 + 5 * 0.044)
    d = RobotNavigationDiscreteEnv(map_family="open", **NO_NOISE)
    d.reset(seed=0)
    place(d, 1.0, 1.0, 0.0)
    d.gx, d.gy = 3.5, 3.5
    d.step(2)                                                      # straight at 0.15 m/s [ROBOTIS DQN]
    assert d.x == pytest.approx(1.0 + 0.15 * 0.2)
    d.step(0)                                                      # +1.5 rad/s
    assert d.theta == pytest.approx(1.5 * 0.2)
    assert d.discrete_angular == [1.5, 0.75, 0.0, -0.75, -1.5]


def test_goal_reached_gives_bonus_and_final_kpis():
    env = RobotNavigationEnv(map_family="open", **NO_NOISE)
    env.reset(seed=0)
    place(env, 1.0, 1.0, 0.0)
    env.gx, env.gy = 2.0, 1.0
    env._d0 = env._d = 1.0
    env._plr_den = 1.0 - env.config.goal_tolerance
    env.path_length = 0.0
    infos, rewards = [], []
    while True:
        _, r, term, trunc, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        infos.append(info)
        rewards.append(r)
        assert info["path_length_ratio"] >= 1.0 - 1e-9
        if term or trunc:
            break
    last = infos[-1]
    assert term and last["success"] == 1.0 and last["success_so_far"] == 1.0 and last["collision"] == 0.0
    assert last["episode_end"] == 1.0 and last["timeout"] == 0.0
    assert sum(i["success"] for i in infos) == 1.0 and sum(i["episode_end"] for i in infos) == 1.0
    # straight drive: path length / (d0 - tol) is 1 up to the overshoot of the last step
    assert 1.0 <= last["path_length_ratio"] < 1.0 + 0.044 / 0.8
    assert rewards[-1] > env.config.goal_reward
    assert last["progress"] == pytest.approx((1.0 - last["distance_to_goal"]) / 1.0)


def test_collision_terminates_with_penalty():
    env = RobotNavigationEnv(map_family="open", **NO_NOISE)
    env.reset(seed=0)
    L = env.config.arena_size
    collided, _ = place(env, L - 0.14, 2.0, 0.0)             # body 0.035 m from the east wall, facing it
    assert not collided
    env.gx, env.gy = 1.0, 2.0
    env._d = math.hypot(env.gx - env.x, env.gy - env.y)
    _, r, term, trunc, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert term and not trunc
    assert info["collision"] == 1.0 and info["success"] == 0.0 and info["clearance"] == 0.0
    assert r < -env.config.collision_penalty + 1e-9


def test_truncation_after_max_steps_reports_timeout():
    env = RobotNavigationEnv(map_family="open", max_steps=12, **NO_NOISE)
    env.reset(seed=0)
    for t in range(12):
        _, _, term, trunc, info = env.step(np.array([-1.0, 0.0], dtype=np.float32))   # stand still
        assert not term and trunc == (t == 11)
    assert info["timeout"] == 1.0 and info["episode_end"] == 1.0 and info["success"] == 0.0


@pytest.mark.parametrize("map_seed", [0, -1])
def test_seeded_determinism(map_seed):
    def trace(seed):
        env = gym.make(ENTRY.env_id, map_seed=map_seed)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        out = [obs]
        for _ in range(300):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            out += [obs, np.array([r, term, trunc])]
            if term or trunc:
                obs, _ = env.reset()
                out.append(obs)
        return out
    a, b, c = trace(5), trace(5), trace(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_fixed_world_keeps_layout_and_random_world_changes_it():
    fixed = RobotNavigationEnv(map_seed=3)
    fixed.reset(seed=0)
    lay0 = fixed.layout
    fixed.reset()
    assert fixed.layout is lay0
    assert RobotNavigationEnv(map_seed=3)._fixed_layout.lo.tolist() == lay0.lo.tolist()
    varying = RobotNavigationEnv(map_seed=-1)
    varying.reset(seed=0)
    lay1 = varying.layout
    varying.reset()
    assert varying.layout.lo.shape != lay1.lo.shape or not np.array_equal(varying.layout.lo, lay1.lo)


@pytest.mark.parametrize("family", MAP_FAMILIES)
def test_start_and_goal_are_valid(family):
    env = RobotNavigationEnv(map_family=family, map_seed=-1, obstacle_density=0.2, **NO_NOISE)
    cfg = env.config
    for seed in range(8):
        env.reset(seed=seed)
        pts = np.array([complex(*env.start), complex(*env.goal)])
        clear = _clearance_points(pts, env.layout)
        assert clear[0] >= cfg.robot_radius + 0.1 - 1e-9 and clear[1] >= cfg.robot_radius + 0.08 - 1e-9
        d = abs(pts[1] - pts[0])
        assert cfg.goal_dist_min - 1e-9 <= d <= cfg.goal_dist_max + 1e-9
        assert _reachable(env.layout, cfg.arena_size, cfg.robot_radius, pts[0], pts[1:], None)[0][0]


# ---------------------------------------------------------------- heterogeneity
def test_client_configs_heterogeneity():
    same = make_client_configs(5, 0.0, 1)
    assert all(c == RobotNavigationConfig() for c in same)
    diverse = make_client_configs(8, 1.0, 1)
    assert len({repr(c) for c in diverse}) == 8
    assert len({c.map_seed for c in diverse}) > 1 and len({c.map_family for c in diverse}) > 1
    assert make_client_configs(4, 0.6, 9) == make_client_configs(4, 0.6, 9)
    spaces = set()
    for c in diverse:
        env = RobotNavigationEnv(config=c)
        env.reset(seed=0)
        spaces.add((repr(env.observation_space), repr(env.action_space)))
        assert c.n_beams == 24 and c.lidar_range_max == 3.5 and not c.discrete_actions
    assert len(spaces) == 1
    assert all(c.discrete_actions for c in make_discrete_client_configs(3, 0.5, 0))
    for bad in (-0.1, 1.5):
        with pytest.raises(EnvConfigError, match="heterogeneity"):
            make_client_configs(3, bad, 0)
    with pytest.raises(EnvConfigError, match="n_clients"):
        make_client_configs(0, 0.5, 0)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_client_configs_are_legal_and_spread_grows_with_heterogeneity(h, seed):
    cfgs = make_client_configs(6, h, seed)
    for c in cfgs:
        validate_knobs(c)
        RobotNavigationConfig(**dataclasses.asdict(c))             # cross-knob constraints hold
    small = make_client_configs(6, h * 0.25, seed)
    spread = np.ptp([c.arena_size for c in cfgs])
    assert np.ptp([c.arena_size for c in small]) <= spread + 1e-12


# ---------------------------------------------------------------- baselines
@pytest.mark.parametrize("env_id", [ENTRY.env_id, ENTRY_DISCRETE.env_id])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_acts_legally(env_id, name):
    env = gym.make(env_id, map_family="corridor")
    policy = BASELINES[name](env, 0)
    obs, _ = env.reset(seed=1)
    for _ in range(120):
        action = policy(obs)
        if isinstance(env.action_space, gym.spaces.Box):
            assert env.action_space.contains(np.asarray(action, dtype=np.float32))
        else:
            assert env.action_space.contains(action)
        obs, _, term, trunc, _ = env.step(action)
        if term or trunc:
            obs, _ = env.reset()


def test_kpi_ordering_open_map_go_to_goal_beats_random():
    env = RobotNavigationEnv(map_family="open")
    gtg = rollout(env, BASELINES["go-to-goal"](env, 0), seed=0, episodes=12)
    rnd = rollout(env, BASELINES["random"](env, 0), seed=0, episodes=12)
    assert gtg["success"] >= 0.9 and rnd["success"] <= 0.35
    assert gtg["success"] - rnd["success"] >= 0.6
    assert 1.0 <= gtg["plr"] < 1.2                                   # nearly straight paths


def test_kpi_ordering_obstacles_avoiders_collide_less_than_go_to_goal():
    env = RobotNavigationEnv(map_family="random", obstacle_density=0.15, map_seed=-1)
    coll = {name: rollout(env, BASELINES[name](env, 0), seed=3, episodes=25)["collision"]
            for name in ("go-to-goal", "potential-field", "bug2")}
    assert coll["go-to-goal"] >= 0.15
    assert min(coll["potential-field"], coll["bug2"]) <= coll["go-to-goal"] - 0.1


# ---------------------------------------------------------------- swarm (PettingZoo)
@pytest.mark.parametrize("factory", [parallel_env, parallel_env_discrete])
def test_swarm_pettingzoo_api_and_seed(factory):
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    parallel_api_test(factory(), num_cycles=200)
    parallel_seed_test(factory)


def test_swarm_lidar_sees_other_robots_and_robot_collisions_remove_both():
    sw = parallel_env(map_family="open", n_robots=3, **NO_NOISE)
    sw.reset(seed=0)
    R = sw.config.robot_radius
    sw.pos = np.array([1 + 2j, 2 + 2j, 3.5 + 3.5j])
    sw.theta = np.array([0.0, math.pi, 0.0])
    sw.goals = np.array([3 + 1j, 1 + 3j, 0.5 + 0.5j])
    sw._d = np.abs(sw.goals - sw.pos)
    scan, clear_obs, clear_rob = sw._sense()
    assert sw._true_ranges[0, 0] == pytest.approx(1.0 - R)        # robot 1 as a disc 1 m ahead
    assert sw._true_ranges[1, 0] == pytest.approx(1.0 - R)
    assert clear_rob[0] == pytest.approx(1.0 - 2 * R)
    for _ in range(20):
        actions = {a: np.array([1.0 if a != "robot_2" else -1.0, 0.0], dtype=np.float32) for a in sw.agents}
        _, rew, term, _, info = sw.step(actions)
        if "robot_0" not in sw.agents:
            break
    assert term["robot_0"] and term["robot_1"]
    assert info["robot_0"]["robot_collision"] == 1.0 and info["robot_1"]["collision"] == 1.0
    assert rew["robot_0"] < -sw.config.collision_penalty + 1.0
    assert sw.agents == ["robot_2"]
    # removed robots are no longer seen
    sw._sense()
    assert sw._true_ranges[2].min() > 0.4


def test_swarm_scan_matches_single_robot_scan():
    cfg = RobotNavigationConfig(map_seed=7, **NO_NOISE)
    single = RobotNavigationEnv(config=cfg)
    single.reset(seed=0)
    sw = parallel_env(config=cfg, n_robots=1)
    sw.reset(seed=0)
    for x, y, th in [(1.0, 1.0, 0.3), (2.5, 3.1, -2.0), (0.7, 3.3, 1.4)]:
        place(single, x, y, th)
        sw.pos = np.array([complex(x, y)])
        sw.theta = np.array([th])
        sw._sense()
        assert np.allclose(np.minimum(sw._true_ranges[0], 50.0), np.minimum(single.true_ranges, 50.0),
                           atol=1e-9)
