"""Behaviour of the task-scheduling env: accounting invariants, reward = -(slowdown + penalties), seeding,
invalid actions, heterogeneity, baselines, room to learn, the exhaustive optimum of tiny instances, and
PPO learning."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.check import check_env_entry
from envs.registry import EnvConfigError
from envs.task_scheduling import (
    BASELINES,
    ENTRY,
    TaskSchedulingConfig,
    TaskSchedulingEnv,
    exhaustive_optimum,
    make_client_configs,
)
from federation.evaluation import evaluate_policy

torch.set_num_threads(1)
TINY = {"machine_speeds": (1.0, 2.0), "window": 2, "episode_slots": 5, "load": 0.7, "long_fraction": 0.3,
        "long_min": 4.0, "long_max": 8.0, "max_steps": 20}


def rollout(env: TaskSchedulingEnv, policy, seed: int) -> tuple[float, list[dict], bool]:
    obs, info = env.reset(seed=seed)
    total, infos = 0.0, [info]
    for _ in range(env.config.max_steps):
        obs, r, term, trunc, info = env.step(policy(obs))
        assert env.observation_space.contains(obs)
        total += r
        infos.append(info)
        if term or trunc:
            return total, infos, term
    raise AssertionError("episode did not end within max_steps")


def test_registered_and_suite_checks_pass():
    assert envs.env_entry("task-scheduling") is ENTRY
    assert set(ENTRY.baselines) == {"fifo", "sjf", "edf", "least-loaded", "random"}
    check_env_entry(ENTRY)
    env = gym.make("frl/TaskScheduling-v0")
    assert env.action_space.n == 5 * 4 + 1 and env.observation_space.shape == (5 * 8 + 8 + 5,)


@pytest.mark.parametrize("name", ["fifo", "sjf", "least-loaded", "random"])
def test_accounting_invariants_and_reward_is_minus_total_slowdown_and_penalties(name):
    env = TaskSchedulingEnv()
    ret, infos, term = rollout(env, BASELINES[name](env, 3), seed=5)
    assert term  # the heuristics dispatch every job: the episode terminates
    # work conserved: every arrived unit of work was processed, no more
    assert env.episode_kpis()["work_done"] == pytest.approx(env.size.sum(), rel=1e-9)
    assert np.isfinite(env.completion).all() and env._finished.all()
    # slowdown >= 1 for every job: C_j >= a_j + w_j / s_max
    slow = (env.completion - env.arrival) / env.ideal
    assert slow.min() >= 1.0 - 1e-9
    late = int(np.sum(env.completion > env.deadline))
    # KPIs in info add up to the per-job truth
    done = np.array([i.get("completed", 0.0) for i in infos[1:]])
    assert done.sum() == env.n_jobs
    assert sum(i["slowdown"] * i["completed"] for i in infos[1:]) == pytest.approx(slow.sum(), rel=1e-9)
    assert sum(i["deadline_miss"] * i["completed"] for i in infos[1:]) == pytest.approx(late)
    util = np.array([i["utilisation"] for i in infos[1:]])
    assert ((util >= 0.0) & (util <= 1.0 + 1e-12)).all()
    k = env.episode_kpis()
    assert k["slowdown"] == pytest.approx(slow.mean()) and k["deadline_miss"] == pytest.approx(late / env.n_jobs)
    assert 0.0 < k["utilisation"] <= 1.0
    # the return is exactly -(total slowdown + miss penalty per late job + invalid penalty per invalid action)
    cfg = env.config
    assert ret == pytest.approx(-(slow.sum() + cfg.miss_penalty * late + cfg.invalid_penalty * k["invalid"]),
                                rel=1e-9)


def test_work_conserved_mid_episode_and_machines_are_fifo():
    env = TaskSchedulingEnv()
    env.reset(seed=2)
    pol = BASELINES["random"](env, 0)
    obs = None
    for _ in range(120):
        obs, _, term, trunc, _ = env.step(pol(obs))
        assert not (term or trunc)
        arrived = env.size[:env._n_arrived].sum()
        waiting = env.size[env.queue].sum() if env.queue else 0.0
        running = np.maximum(env.free_at - env.t, 0.0) @ env.speeds     # work still committed to machines
        assert env.episode_kpis()["work_done"] + waiting + running == pytest.approx(arrived, rel=1e-9)
    for m in range(env.n_machines):                                     # jobs of a machine never overlap
        jobs = np.flatnonzero(env.machine_of == m)
        c = env.completion[jobs]
        starts = c - env.size[jobs] / env.speeds[m]
        order = np.argsort(c)
        assert (starts[order][1:] >= c[order][:-1] - 1e-9).all()


def test_deadline_penalty_charged_once_per_late_job():
    env = TaskSchedulingEnv(miss_penalty=7.0, invalid_penalty=0.0)
    ret7, _, _ = rollout(env, BASELINES["fifo"](env, 0), seed=9)
    late = int(np.sum(env.completion > env.deadline))
    slow = float(np.sum((env.completion - env.arrival) / env.ideal))
    env0 = TaskSchedulingEnv(miss_penalty=0.0, invalid_penalty=0.0)
    ret0, _, _ = rollout(env0, BASELINES["fifo"](env0, 0), seed=9)
    assert late > 0 and ret0 == pytest.approx(-slow) and ret7 - ret0 == pytest.approx(-7.0 * late)


def test_seeding_arrivals_are_policy_independent_and_deterministic():
    a, b = TaskSchedulingEnv(), TaskSchedulingEnv()
    a.reset(seed=4)
    b.reset(seed=4)
    assert np.array_equal(a.size, b.size) and np.array_equal(a.arrival, b.arrival)
    ra, _, _ = rollout(a, BASELINES["sjf"](a, 0), seed=4)
    rb, _, _ = rollout(b, BASELINES["fifo"](b, 0), seed=4)
    assert np.array_equal(a.size, b.size) and np.array_equal(a.deadline, b.deadline) and ra != rb
    rc, _, _ = rollout(a, BASELINES["sjf"](a, 0), seed=4)
    assert rc == ra
    a.reset(seed=5)
    assert a.n_jobs != b.n_jobs or not np.array_equal(a.size, b.size)


def test_invalid_actions_mask_and_refusals():
    env = TaskSchedulingEnv(invalid_penalty=3.0)
    _, info = env.reset(seed=0)
    n_wait = min(len(env.queue), env.window)
    mask = info["action_mask"]
    assert mask.dtype == bool and mask.shape == (env.action_space.n,)
    assert not mask[-1]                                      # every machine idle: deferring is not allowed
    assert mask[:n_wait * env.n_machines].all() and not mask[n_wait * env.n_machines:-1].any()
    assert n_wait < env.window  # the episode starts with a short queue
    bad = env.window * env.n_machines - 1                    # last window slot: empty now
    largest = int(env.window_jobs()[-1])
    _, r, _, _, info = env.step(bad)
    assert info["invalid"] == 1.0 and r <= -3.0
    assert env.machine_of[largest] == env.n_machines - 1    # executed as the dispatch of the last occupied slot
    assert info["action_mask"][-1] == (env.free_at > env.t).any()
    env.reset(seed=0)
    head, t0 = int(env.window_jobs()[0]), env.t
    _, r, _, _, info = env.step(env.defer_action)           # defer with all machines idle: slot 0 to the fastest
    assert info["invalid"] == 1.0 and env.machine_of[head] == int(np.argmax(env.speeds))
    assert env.completion[head] == pytest.approx(t0 + env.ideal[head])    # started at once, time not deferred
    for a in (1.5, "1", env.action_space.n, -1, True):
        with pytest.raises(gym.error.InvalidAction, match="allowed"):
            env.step(a)
    with pytest.raises(EnvConfigError, match="slack_min"):
        TaskSchedulingEnv(slack_min=5.0, slack_max=3.0)
    with pytest.raises(EnvConfigError, match="machine_speeds"):
        TaskSchedulingEnv(machine_speeds=(1.0, -2.0))


def test_window_is_first_jobs_by_size_and_defer_advances_one_slot():
    env = TaskSchedulingEnv(load=1.2)
    env.reset(seed=1)
    for _ in range(60):                                      # defer until the queue is longer than the window
        if len(env.queue) > env.window:
            break
        busy = (env.free_at > env.t).any()
        _, _, _, _, info = env.step(env.defer_action if busy else env.window * env.n_machines - 1)
        assert info["invalid"] == 0.0 or not busy
    idx = env.window_jobs()
    assert sorted(idx.tolist()) == env.queue[:env.window] and (np.diff(env.size[idx]) >= 0).all()
    t = env.t
    env.step(env.defer_action)
    assert env.t == t + 1.0


def test_client_configs_heterogeneity():
    same = make_client_configs(5, 0.0, 1)
    assert all(c == TaskSchedulingConfig() for c in same)
    diverse = make_client_configs(5, 1.0, 1)
    assert len({c.machine_speeds for c in diverse}) == 5 and len({c.load for c in diverse}) == 5
    assert all(len(c.machine_speeds) == 4 for c in diverse)
    assert make_client_configs(5, 0.6, 2) == make_client_configs(5, 0.6, 2)
    with pytest.raises(EnvConfigError, match="heterogeneity"):
        make_client_configs(2, 1.5, 0)


def _mean_slowdown(name: str, seeds, **over) -> float:
    env = TaskSchedulingEnv(**over)
    return evaluate_policy(env, BASELINES[name](env, 0), seeds, ENTRY.kpis, ENTRY.kpi_weight)["slowdown"]


def test_room_to_learn_random_below_best_heuristic_bound_below_all():
    seeds = [11, 12, 13]
    for over in ({}, make_client_configs(2, 0.5, 0)[1].__dict__):
        sd = {name: _mean_slowdown(name, seeds, **over) for name in BASELINES}
        best = min(v for k, v in sd.items() if k != "random")
        assert sd["random"] > 1.5 * best, sd
        assert TaskSchedulingEnv().slowdown_lower_bound() == 1.0 <= best, sd   # the bound is a true bound
        assert sd["sjf"] < sd["fifo"]                                         # ordering matters


def test_exhaustive_optimum_beats_every_heuristic_on_tiny_instances():
    cfg = TaskSchedulingConfig(**TINY)
    for seed in (0, 1):
        env = TaskSchedulingEnv(cfg)
        env.reset(seed=seed)
        assert 2 <= env.n_jobs <= 8
        opt = exhaustive_optimum(cfg, seed)
        rets = {name: rollout(env, BASELINES[name](env, 0), seed)[0] for name in BASELINES}
        assert all(opt >= r - 1e-9 for r in rets.values()), (opt, rets)
        assert opt <= -env.n_jobs                       # every job contributes slowdown >= 1
        if seed == 0:                                   # 5 jobs: the optimum is strictly better than any heuristic
            assert env.n_jobs == 5 and opt > max(rets.values()) + 0.05
    with pytest.raises(ValueError, match="max_states"):
        exhaustive_optimum(TaskSchedulingConfig(max_steps=150), 0, max_states=50)
    with pytest.raises(ValueError, match="max_steps"):
        exhaustive_optimum(TaskSchedulingConfig(), 0)


def test_ppo_learns_to_beat_random_in_seconds():
    from agents.ppo import PPOAgent
    from scenarios.task_scheduling import _AGENT

    env, ev = TaskSchedulingEnv(), TaskSchedulingEnv()
    agent = PPOAgent(env.observation_space, env.action_space, seed=3, **_AGENT)
    seeds = [71, 72]
    rand = evaluate_policy(ev, BASELINES["random"](ev, 0), seeds, ENTRY.kpis, ENTRY.kpi_weight)
    before = evaluate_policy(ev, lambda o: agent.act(o, explore=False), seeds, ENTRY.kpis, ENTRY.kpi_weight)
    t0 = time.process_time()
    env.reset(seed=5)
    agent.learn(env, 16_384)
    cpu = time.process_time() - t0
    after = evaluate_policy(ev, lambda o: agent.act(o, explore=False), seeds, ENTRY.kpis, ENTRY.kpi_weight)
    assert after["slowdown"] < 0.5 * rand["slowdown"], (after, rand, before)
    assert after["return"] > before["return"] and cpu < 60.0
