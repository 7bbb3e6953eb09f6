"""Behaviour of the MEC offloading env: API conformance, physics sanity, seeding, heterogeneity, baselines."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.knobs import knob_records, knob_spec
from envs.mec_offloading import (
    BASELINES,
    ENTRY,
    MecOffloadingConfig,
    MecOffloadingEnv,
    make_client_configs,
)
from envs.registry import EnvConfigError

ENV_ID = "frl/MecOffloading-v0"


def run_policy(env: gym.Env, policy, seed: int, episodes: int = 1) -> dict[str, list]:
    """Roll out ``episodes`` full episodes; collect observations, rewards and info KPIs."""
    keys = (*ENTRY.kpis, "completed")
    out: dict[str, list] = {"obs": [], "reward": [], "truncated_at": [], **{k: [] for k in keys}}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        out["obs"].append(obs)
        t = 0
        while True:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            t += 1
            out["obs"].append(obs)
            out["reward"].append(reward)
            for k in keys:
                out[k].append(info[k])
            assert not terminated
            if truncated:
                out["truncated_at"].append(t)
                break
    return out


def mean_cost(name: str, seed: int = 100, episodes: int = 2, **overrides) -> float:
    env = MecOffloadingEnv(**overrides)
    return float(np.mean(run_policy(env, BASELINES[name](env, seed), seed, episodes)["cost"]))


# ---------------------------------------------------------------- API / registration
def test_registered_and_check_env_passes():
    assert envs.env_entry("mec-offloading") is ENTRY
    assert ENTRY.kpis == ("cost", "delay", "energy", "dropped", "offloaded")
    assert set(ENTRY.baselines) == {"all-local", "offload-nearest", "least-loaded", "random", "greedy"}
    env = gym.make(ENV_ID)
    check_env(env.unwrapped)          # has a spec, so the "ansi" render mode is exercised too
    check_env(gym.make(ENV_ID, n_servers=1).unwrapped)


def test_spaces_follow_n_servers_and_overrides():
    env = MecOffloadingEnv(n_servers=5, n_devices=3)
    assert env.action_space.n == 6
    assert env.observation_space.shape == (8 + 4 * 5,)
    assert env.config.n_devices == 3
    with pytest.raises(EnvConfigError, match="bogus_knob.*allowed: .*arrival_rate"):
        MecOffloadingEnv(bogus_knob=1)
    with pytest.raises(EnvConfigError, match="render_mode"):
        MecOffloadingEnv(render_mode="human")


def test_render_ansi():
    env = MecOffloadingEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step(1)
    assert "server_backlog" in env.render()


@pytest.mark.parametrize("overrides", [{}, {"n_servers": 1, "n_devices": 1, "arrival_rate": 0.05},
                                       {"n_servers": 4, "arrival_rate": 5.0, "burst_start_prob": 1.0}])
def test_observations_in_space_and_kpis_nonnegative(overrides):
    env = MecOffloadingEnv(episode_tasks=150, **overrides)
    rng = np.random.default_rng(0)
    res = run_policy(env, lambda obs: int(rng.integers(env.action_space.n)), seed=3, episodes=2)
    assert all(o in env.observation_space for o in res["obs"])
    assert res["truncated_at"] == [150, 150]
    cost = np.asarray(res["cost"])
    assert (cost >= 0).all()
    assert (np.asarray(res["delay"]) >= 0).all() and (np.asarray(res["energy"]) >= 0).all()
    assert set(res["dropped"]) <= {0.0, 1.0} and set(res["offloaded"]) <= {0.0, 1.0}
    np.testing.assert_allclose(res["reward"], -cost)
    dropped = np.asarray(res["dropped"]) == 1.0
    penalty = env.config.drop_penalty
    assert (cost[dropped] >= penalty).all() and (cost[~dropped] <= penalty).all()
    np.testing.assert_array_equal(np.asarray(res["completed"]), 1.0 - np.asarray(res["dropped"]))
    completed = np.asarray(res["completed"]) == 1.0
    assert (np.asarray(res["delay"])[completed] > 0.0).all()


@pytest.mark.parametrize("baseline", ["offload-nearest", "greedy"])
def test_the_delay_kpi_is_the_exact_mean_over_completed_tasks(baseline):
    """A dropped task is counted by ``dropped`` and carries no delay (weight ``completed`` = 0): the evaluated
    delay KPI is the completed tasks' mean, however many a policy drops."""
    from federation.evaluation import evaluate_policy

    env = MecOffloadingEnv(episode_tasks=200)
    res = run_policy(env, BASELINES[baseline](env, 0), seed=5)
    delay = np.asarray(res["delay"])
    done = np.asarray(res["completed"]) == 1.0
    assert 0 < done.sum() < done.size                      # both drop some tasks at defaults
    assert (delay[~done] == 0.0).all() and (delay[done] > 0.0).all()
    true_mean = float(delay[done].mean())
    ep = env.unwrapped.episode_kpis()
    assert ep["delay"] == pytest.approx(true_mean, rel=1e-12)
    assert ep["dropped"] == pytest.approx(float(np.mean(res["dropped"])), rel=1e-12)
    assert ep["completed"] + ep["n_dropped"] == 200
    ev = evaluate_policy(env, BASELINES[baseline](env, 0), [5], ENTRY.kpis, ENTRY.kpi_weight)
    assert ev["delay"] == pytest.approx(true_mean, rel=1e-9)
    assert ev["dropped"] == pytest.approx(1.0 - done.mean(), rel=1e-9)


def test_link_budget_follows_tr36814():
    """SNR scale uses the eNB noise figure; link gain = BS antenna gain - path loss - per-device shadowing."""
    env = MecOffloadingEnv()
    cfg = env.config
    assert cfg.noise_figure_db == 5.0 and cfg.bs_antenna_gain_dbi == 14.0 and cfg.shadowing_std_db == 8.0
    env.reset(seed=0)
    d_km = env.device_distance_m * 1e-3
    expect_db = cfg.bs_antenna_gain_dbi - (128.1 + 37.6 * np.log10(d_km)) - env.device_shadowing_db
    np.testing.assert_allclose(10 * np.log10(env._path_gain), expect_db, rtol=1e-9)
    # the shadowing is per device, constant within an episode, redrawn for another episode
    sh0 = env.device_shadowing_db.copy()
    for _ in range(50):
        env.step(0)
    np.testing.assert_array_equal(env.device_shadowing_db, sh0)
    env.reset(seed=1)
    assert not np.array_equal(env.device_shadowing_db, sh0)
    # the spread over many devices has the declared std (8 dB), 0 when switched off
    big = MecOffloadingEnv(n_devices=200)
    big.reset(seed=3)
    assert 6.5 < big.device_shadowing_db.std() < 9.5
    flat = MecOffloadingEnv(shadowing_std_db=0.0)
    flat.reset(seed=3)
    assert (flat.device_shadowing_db == 0.0).all()


def test_better_link_budget_means_faster_uploads():
    """Each dB of antenna gain or of noise figure moves the upload time the right way, task by task."""
    def upload_times(**kw) -> np.ndarray:
        env = MecOffloadingEnv(**kw)
        obs, _ = env.reset(seed=4)
        t = [obs[6]]
        for _ in range(100):
            obs, *_ = env.step(0)
            t.append(obs[6])
        return np.asarray(t, dtype=np.float64)

    base = upload_times()
    assert (upload_times(bs_antenna_gain_dbi=20.0) <= base).all()
    assert (upload_times(noise_figure_db=9.0) >= base).all()
    assert (upload_times(noise_figure_db=9.0) > base).any()


def test_local_execution_on_idle_device_costs_one():
    env = MecOffloadingEnv(arrival_rate=0.05, n_devices=1, deadline_min_s=5.0, deadline_max_s=5.0)
    obs, _ = env.reset(seed=1)
    t_loc = obs[3] / (1.0 - obs[3])                              # un-squash the local execution time
    _, reward, _, _, info = env.step(0)
    assert info["dropped"] == 0.0 and info["offloaded"] == 0.0
    assert reward == pytest.approx(-1.0)
    assert info["delay"] == pytest.approx(t_loc, rel=1e-5)
    assert info["energy"] > 0.0


# ---------------------------------------------------------------- seeding
def test_seeded_determinism():
    def trajectory(seed: int) -> list:
        env = gym.make(ENV_ID)
        rng = np.random.default_rng(7)
        obs, _ = env.reset(seed=seed)
        traj = [obs]
        for _ in range(400):
            obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
            traj.append((obs, r, term, trunc, info))
            if term or trunc:
                traj.append(env.reset()[0])
        return traj

    a, b, c = trajectory(11), trajectory(11), trajectory(12)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
            assert x[1:] == y[1:]
        else:
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_task_stream_does_not_depend_on_the_policy():
    """Common random numbers: the same seed gives the same tasks whatever the actions (fair comparisons)."""
    feats = []
    for action in (0, 1):
        env = MecOffloadingEnv()
        obs, _ = env.reset(seed=5)
        seq = [obs[[0, 1, 2, 3, 6, 7]]]
        for _ in range(50):
            obs, *_ = env.step(action)
            seq.append(obs[[0, 1, 2, 3, 6, 7]])   # task and channel features, not queue state
        feats.append(np.array(seq))
    np.testing.assert_array_equal(feats[0], feats[1])


# ---------------------------------------------------------------- config and heterogeneity
@pytest.mark.parametrize("knob,value", [("arrival_rate", -1.0), ("n_servers", 0), ("n_servers", 17),
                                        ("bandwidth_mhz", 1e6), ("background_load", 0.95),
                                        ("device_cpu_ghz", float("nan")), ("drop_penalty", 0.5),
                                        ("slot_s", 2.0), ("episode_tasks", 5)])
def test_out_of_range_knob_names_knob_value_and_range(knob, value):
    spec = knob_spec(MecOffloadingConfig, knob)
    low, high = spec.low, spec.high
    with pytest.raises(EnvConfigError) as exc:
        MecOffloadingConfig(**{knob: value})
    msg = str(exc.value)
    assert knob in msg and repr(value) in msg and f"[{low}, {high}]" in msg


def test_inconsistent_knob_pairs_rejected():
    with pytest.raises(EnvConfigError, match="task_size_min_mbit"):
        MecOffloadingConfig(task_size_min_mbit=2.0, task_size_max_mbit=1.0)
    with pytest.raises(EnvConfigError, match="min_distance_m"):
        MecOffloadingConfig(min_distance_m=300.0, cell_radius_m=250.0)
    with pytest.raises(EnvConfigError, match="n_devices"):
        MecOffloadingConfig(n_devices=2.5)


@pytest.mark.parametrize("kwargs,name", [({"n_clients": 0, "heterogeneity": 0.5}, "n_clients=0"),
                                         ({"n_clients": 3, "heterogeneity": 1.5}, "heterogeneity=1.5"),
                                         ({"n_clients": 3, "heterogeneity": -0.1}, "heterogeneity=-0.1")])
def test_client_config_generator_rejects_bad_arguments(kwargs, name):
    with pytest.raises(EnvConfigError, match=name):
        make_client_configs(seed=0, **kwargs)


@settings(max_examples=40, deadline=None)
@given(n_clients=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_zero_heterogeneity_gives_identical_configs(n_clients, seed):
    base = MecOffloadingConfig(arrival_rate=2.0, n_servers=4)
    assert make_client_configs(n_clients, 0.0, seed, base) == [base] * n_clients


@settings(max_examples=40, deadline=None)
@given(n_clients=st.integers(2, 12), seed=st.integers(0, 2**32 - 1), het=st.floats(0.05, 1.0))
def test_positive_heterogeneity_gives_different_valid_configs(n_clients, seed, het):
    configs = make_client_configs(n_clients, het, seed)
    assert len(set(configs)) == n_clients                      # all distinct
    assert {c.n_servers for c in configs} == {MecOffloadingConfig().n_servers}   # shared action space
    for c in configs:
        for r in knob_records(MecOffloadingConfig):
            assert r["low"] <= getattr(c, r["name"]) <= r["high"]
    assert make_client_configs(n_clients, het, seed) == configs   # seeded
    base = dataclasses.asdict(MecOffloadingConfig())
    spread = max(abs(math.log2(c.device_cpu_ghz / base["device_cpu_ghz"])) for c in configs)
    assert spread <= het + 1e-12                                # spread proportional to heterogeneity


def test_client_configs_build_working_envs():
    for cfg in make_client_configs(4, 1.0, seed=3):
        env = gym.make(ENV_ID, config=cfg)
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
        env.step(env.action_space.sample())


# ---------------------------------------------------------------- baselines and contention
def test_greedy_beats_the_simple_baselines_at_defaults():
    costs = {name: mean_cost(name) for name in BASELINES}
    for other in ("all-local", "random", "offload-nearest", "least-loaded"):
        assert costs["greedy"] < costs[other], costs
    # neither extreme is optimal: both trivial policies are far from greedy
    assert costs["all-local"] > 1.5 * costs["greedy"] and costs["offload-nearest"] > 1.5 * costs["greedy"]


def mean_backlogs(name: str, seed: int = 3) -> np.ndarray:
    env = MecOffloadingEnv()
    policy = BASELINES[name](env, seed)
    obs, _ = env.reset(seed=seed)
    backlog = []
    for _ in range(env.config.episode_tasks):
        obs, *_ = env.step(policy(obs))
        backlog.append(env.server_backlogs())
    return np.mean(backlog, axis=0)


def test_contention_makes_offloading_everything_costly():
    nearest, greedy = mean_backlogs("offload-nearest"), mean_backlogs("greedy")
    assert nearest[0] > 1.0 and nearest[0] > 3.0 * greedy.max()     # the shared edge queue builds up
    assert mean_cost("offload-nearest") > 2.0 * mean_cost("greedy")
    # the same policy is cheap in a lightly loaded cell: contention is what makes it costly
    light = dict(n_devices=2, arrival_rate=0.5)
    assert mean_cost("offload-nearest", **light) < 0.5 * mean_cost("all-local", **light)


def test_greedy_estimate_is_exact_when_background_load_is_constant():
    env = MecOffloadingEnv(burst_start_prob=0.0)
    obs, _ = env.reset(seed=4)
    for t in range(100):
        est = env.estimated_costs()
        a = t % env.action_space.n
        obs, reward, *_ = env.step(a)
        assert -reward == pytest.approx(est[a], rel=1e-9)


def test_docstring_documents_every_knob_with_its_default():
    doc = MecOffloadingEnv.__doc__
    assert "## Arguments" in doc and "## References" in doc
    defaults = MecOffloadingConfig()
    for f in dataclasses.fields(MecOffloadingConfig):
        assert f"| `{f.name}` | {getattr(defaults, f.name)!r} |" in doc, f.name
