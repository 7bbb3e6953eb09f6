"""The swarm-navigation scenario: FLDDPG / IDDPG / SEDDPG and the heuristics all scored, rates and bytes sane."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from agents import agent_class
from envs.robot_navigation import PARALLEL_BASELINES, RobotNavigationConfig, parallel_env
from scenarios import SCENARIOS, swarm_navigation
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_swarm_navigation_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["swarm-navigation"] is swarm_navigation
    exp = dataclasses.replace(swarm_navigation.QUICK, rounds=1, steps_per_round=400, final_eval_episodes=1,
                              env_overrides={"map_family": "open", "max_steps": 80})
    res = swarm_navigation.run(exp)

    methods = {"fedavg", "local", *swarm_navigation.SHARED_EXPERIENCE, *PARALLEL_BASELINES}
    assert set(res.methods) == methods
    table = res.extra["swarm_kpis"]
    assert set(table) == methods
    for name, row in table.items():
        assert len(row["per_client_success_rate"]) == exp.n_clients == len(res.methods[name]["per_client_return"])
        for s, c in zip(row["per_client_success_rate"], row["per_client_collision_rate"], strict=True):
            assert 0.0 <= s <= 1.0 and 0.0 <= c <= 1.0 and s + c <= 1.0 + 1e-9, name
    # bytes: independent learners send nothing; budgeted SEDDPG stays within FLDDPG's bytes; unlimited uploads
    # every live robot-step's transition
    m = res.methods
    assert m["local"]["bytes_communicated"] == 0 < m["fedavg"]["bytes_communicated"]
    budget = res.extra["fedavg_byte_budget"]
    assert budget == m["fedavg"]["bytes_communicated"]
    assert 0 < m["seddpg"]["bytes_communicated"] <= budget
    assert 0.0 < m["seddpg"]["upload_probability"] < 1.0
    assert m["seddpg-unlimited"]["transitions_uploaded"] == m["seddpg-unlimited"]["transitions_offered"] > 0
    assert m["seddpg"]["transitions_uploaded"] < m["seddpg"]["transitions_offered"]
    # the potential field steers around the other robots: it beats random robots on the swarm KPIs
    assert table["potential-field"]["success_rate"] > table["random"]["success_rate"]
    assert table["potential-field"]["collision_rate"] <= table["random"]["collision_rate"]  # few episodes: may tie
    assert isinstance(res.extra["claim"]["held"], bool)

    out = prepare_out_dir(tmp_path / "swarm")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "swarm_kpis" in summary
    assert "Swarm KPIs" in (out / "summary.md").read_text()


def test_swarm_navigation_refuses_the_single_env_form():
    with pytest.raises(ValueError, match="env_form='single'"):
        swarm_navigation.run(dataclasses.replace(swarm_navigation.QUICK, env_form="single"))


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_pooled_arenas_upload_only_the_sent_transitions(prob):
    cfg = RobotNavigationConfig(map_family="open", max_steps=30)
    envs = [parallel_env(cfg, n_robots=2), parallel_env(cfg, n_robots=3)]
    pooled = swarm_navigation.PooledArenas(envs, prob, np.random.default_rng(3))
    assert pooled.num_envs == 5
    agent = agent_class("ddpg")(envs[0].observation_space("robot_0"), envs[0].action_space("robot_0"), seed=1,
                                hidden_sizes=(16,), learning_starts=10_000)
    agent.learn(pooled, 5 * 80)  # 80 arena steps: episodes end (max_steps 30) and arenas reset themselves
    stored = agent.buffer.num_valid
    assert pooled.stepped == 5 * 80 >= pooled.offered > 0 and stored == pooled.uploaded
    if prob == 0.0:
        assert pooled.uploaded == 0
    elif prob == 1.0:
        assert pooled.uploaded == pooled.offered
    else:
        assert 0.3 * pooled.offered < pooled.uploaded < 0.7 * pooled.offered
