"""Robot navigation against the TurtleBot3 Burger / LDS-01 spec: range-dependent lidar noise, turn-rate limit."""

from __future__ import annotations

import numpy as np
import pytest

from envs.knobs import knob_spec
from envs.registry import EnvConfigError
from envs.robot_navigation import RobotNavigationConfig, RobotNavigationEnv, make_client_configs
from envs.robot_navigation.config import LIDAR_NEAR_RANGE, lidar_noise_sigma
from envs.robot_navigation.swarm import parallel_env

BURGER_W_MAX = 2.84


def test_noise_sigma_follows_the_lds01_accuracy():
    cfg = RobotNavigationConfig()
    r = np.array([0.12, 0.3, 0.499, 0.5, 1.0, 2.0, 3.5, 10.0, np.inf])
    sig = lidar_noise_sigma(r, cfg)
    near = r < LIDAR_NEAR_RANGE
    assert (sig[near] == cfg.lidar_noise_std).all()
    far = ~near
    np.testing.assert_allclose(sig[far], cfg.lidar_noise_rel * np.minimum(r[far], cfg.lidar_range_max))
    assert np.all(np.diff(sig[far]) >= 0.0) and np.isfinite(sig).all()


def _stationary_scans(seed: int, n: int = 400, **kw) -> tuple[np.ndarray, np.ndarray, RobotNavigationEnv]:
    """The robot held still (v = 0, omega = 0, no actuator noise): noisy scans and the true one, in metres."""
    env = RobotNavigationEnv(actuator_noise_std=0.0, map_seed=3, max_steps=10_000, **kw)
    env.reset(seed=seed)
    scans = []
    for _ in range(n):
        env.step(np.array([-1.0, 0.0], dtype=np.float32))
        scans.append(env.ranges.copy())
    return np.asarray(scans), env.true_ranges.copy(), env


def test_lidar_noise_std_grows_with_range():
    scans, true, env = _stationary_scans(seed=1)
    cfg = env.config
    sig = lidar_noise_sigma(true, cfg)
    # beams whose readings are never clipped at either end
    ok = (true - 4 * sig > cfg.lidar_range_min) & (true + 4 * sig < cfg.lidar_range_max)
    assert ok.sum() >= 3
    emp = scans[:, ok].std(axis=0)
    np.testing.assert_allclose(emp, sig[ok], rtol=0.2)
    np.testing.assert_allclose(scans[:, ok].mean(axis=0), true[ok], atol=0.01 + 3 * sig[ok].max() / 20)
    far = ok & (true >= 1.0)
    if far.any():          # a far return is noisier than the short-range floor
        assert scans[:, far].std(axis=0).min() > 1.5 * cfg.lidar_noise_std


def test_lidar_noise_off_and_swarm_uses_the_same_model():
    scans, true, _ = _stationary_scans(seed=1, n=5, lidar_noise_std=0.0, lidar_noise_rel=0.0)
    clip = np.clip(true, 0.12, 3.5)
    np.testing.assert_allclose(scans, np.broadcast_to(clip, scans.shape), atol=1e-9)
    sw = parallel_env(n_robots=1, actuator_noise_std=0.0, map_seed=3)
    obs, _ = sw.reset(seed=0)
    a = sw.agents[0]
    reads = []
    for _ in range(300):
        obs, *_ = sw.step({a: np.array([-1.0, 0.0], dtype=np.float32)})
        reads.append(obs[a][:sw.n_beams] * 3.5)
    reads = np.asarray(reads)
    true_sw = sw._true_ranges[0]
    sig = lidar_noise_sigma(true_sw, sw.config)
    ok = (true_sw - 4 * sig > 0.12) & (true_sw + 4 * sig < 3.5)
    assert ok.any()
    np.testing.assert_allclose(reads[:, ok].std(axis=0), sig[ok], rtol=0.25)


def test_turn_rate_within_the_burger_spec():
    assert knob_spec(RobotNavigationConfig, "w_max").high == BURGER_W_MAX
    assert knob_spec(RobotNavigationConfig, "discrete_max_angular_vel").high == BURGER_W_MAX
    with pytest.raises(EnvConfigError, match="w_max"):
        RobotNavigationConfig(w_max=3.0)
    cfgs = make_client_configs(64, 1.0, 5)
    w = np.array([c.w_max for c in cfgs])
    assert (w <= BURGER_W_MAX).all()
    assert w.min() < 0.75 * BURGER_W_MAX                      # still a spread of robot models at h = 1
    assert (w == BURGER_W_MAX).sum() <= 2                      # not piled at the cap
    w_half = np.array([c.w_max for c in make_client_configs(64, 0.5, 5)])
    assert w_half.min() > w.min() and (w_half <= BURGER_W_MAX).all()
    # a slower base robot keeps a spread centred on it
    slow = RobotNavigationConfig(w_max=1.5, discrete_max_angular_vel=0.5)   # w_max is floored at the latter
    ws = np.array([c.w_max for c in make_client_configs(64, 1.0, 5, base=slow)])
    assert ws.min() < 1.5 < ws.max() <= BURGER_W_MAX


def test_lidar_noise_heterogeneity_scales_both_levels():
    base = RobotNavigationConfig()
    cfgs = make_client_configs(32, 1.0, 2)
    rel = np.array([c.lidar_noise_rel / base.lidar_noise_rel for c in cfgs])
    ab = np.array([c.lidar_noise_std / base.lidar_noise_std for c in cfgs])
    np.testing.assert_allclose(rel, ab, rtol=1e-9)
    assert (rel >= 1.0).all() and (rel <= 3.0 + 1e-9).all() and rel.max() > 2.0
