"""The robot-navigation (LFRL) scenario: every method scored in the unseen worlds, KPIs in range, the results
contract written; the knowledge fusion's confidence weighting and its distillation checked on their own."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import agent_class
from envs.robot_navigation import BASELINES
from federation.strategies.fedavg import weighted_average
from scenarios import SCENARIOS, robot_navigation
from scenarios.experiment import ScenarioError
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)

SMALL = dataclasses.replace(robot_navigation.QUICK, steps_per_world=800, steps_per_round=400, fedavg_rounds=2,
                            fusion_states=200, fusion_steps=50, eval_episodes=2, final_eval_episodes=3,
                            env_overrides={"max_steps": 120})


def test_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["robot-navigation"] is robot_navigation
    res = robot_navigation.run(SMALL)
    methods = {*robot_navigation.METHODS, *BASELINES}
    assert set(res.methods) == methods
    n_ckpt = SMALL.rounds + 1
    assert res.extra["checkpoint_steps"] == [r * SMALL.steps_per_round for r in range(n_ckpt)]
    for name, m in res.methods.items():
        for k in ("success", "collision", "timeout"):
            assert 0.0 <= m[k] <= 1.0, (name, k)
        assert m["success"] + m["collision"] + m["timeout"] == pytest.approx(1.0), name
        assert len(m["per_client_return"]) == SMALL.unseen_worlds
        if m["time_to_goal_s"] is not None:   # at least one goal reached: a positive duration within the cap
            assert 0.0 < m["time_to_goal_s"] <= 120 * 0.2 + 1e-9
    for name in robot_navigation.METHODS:
        m = res.methods[name]
        assert len(m["success_curve"]) == n_ckpt and all(0.0 <= s <= 1.0 for s in m["success_curve"])
        assert m["success_auc"] == pytest.approx(np.mean(m["success_curve"]))
        seen = m["seen_worlds_success"]
        assert (seen is None) == (name == "scratch")
        assert seen is None or len(seen) == SMALL.n_clients
    assert res.methods["scratch"]["samples_pretraining"] == 0
    assert res.methods["lfrl"]["samples_pretraining"] == SMALL.n_clients * SMALL.steps_per_world
    assert 0.0 <= res.methods["lfrl"]["fusion_greedy_agreement"] <= 1.0   # the cloud fused (2 worlds)
    assert res.methods["random"]["collision"] > 0.5                         # a random walk hits something
    assert res.extra["claim"]["checked"] is True
    roles = [c["role"] for c in res.client_configs]
    assert roles == ["train"] * SMALL.n_clients + ["unseen"] * SMALL.unseen_worlds

    out = prepare_out_dir(tmp_path / "rn")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png",
              "per_client_return.png"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "claim" in summary
    assert "Unseen worlds" in (out / "summary.md").read_text()


def test_worlds_come_from_the_seed_and_differ():
    a, b = robot_navigation.setup(SMALL), robot_navigation.setup(SMALL)
    assert a.train_cfgs == b.train_cfgs and a.unseen_cfgs == b.unseen_cfgs and a.robot_seeds == b.robot_seeds
    worlds = [c.map_seed for c in a.train_cfgs + a.unseen_cfgs]
    assert len(set(worlds)) == len(worlds)                                   # the unseen world is new
    c = robot_navigation.setup(dataclasses.replace(SMALL, seed=1))
    assert c.train_cfgs != a.train_cfgs
    for cfg in a.train_cfgs + a.unseen_cfgs:
        assert cfg.discrete_actions and cfg.v_max <= 0.22 and cfg.w_max <= 2.84


def test_fusion_targets_weight_each_network_by_its_confidence():
    decisive = np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    flat = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    fused, conf = robot_navigation.fusion_targets([decisive, flat])
    assert conf.shape == (2, 2) and ((conf >= 0) & (conf <= 1)).all()
    assert conf[1, 0] == pytest.approx(0.0) and conf[0, 1] == pytest.approx(0.0)   # uniform Q: no confidence
    np.testing.assert_allclose(fused[0], decisive[0])   # state 0: only the first network is confident
    np.testing.assert_allclose(fused[1], flat[1])       # state 1: only the second
    same, _ = robot_navigation.fusion_targets([decisive, decisive])
    np.testing.assert_allclose(same, decisive)
    both_flat, conf2 = robot_navigation.fusion_targets([np.zeros((1, 3)), np.ones((1, 3))])
    np.testing.assert_allclose(both_flat, [[0.5, 0.5, 0.5]])   # nobody confident: the plain mean
    # confidence is scale-free: scaling a network's Q-values does not change its confidence
    _, c_scaled = robot_navigation.fusion_targets([3.0 * decisive, flat])
    np.testing.assert_allclose(c_scaled, conf)
    assert 0.0 < robot_navigation.fusion_targets([np.array([[1.0, 0.0, 0.0]])])[1][0, 0] < 1.0 - 1e-3
    assert math.isclose(robot_navigation.fusion_targets([np.array([[2.0, 1.0]])])[0][0, 0], 2.0)
    # the confidence measures the action preference, not the state's value level: a network whose values
    # differ a lot between states but prefers action 0 by the same gap everywhere is equally, clearly confident
    _, c_level = robot_navigation.fusion_targets([np.array([[100.0, 90.0, 90.0], [0.0, -10.0, -10.0]])])
    assert c_level[0, 0] == pytest.approx(c_level[0, 1]) and c_level[0, 0] > 0.3


def test_fused_network_follows_each_expert_where_it_is_confident():
    """Two Q-networks, each made decisive on its own half of the state space and indifferent on the other:
    the fused network picks the confident expert's action on both halves; averaging their parameters
    (FedAvg's fusion) does not."""
    env = gym.make("frl/RobotNavigationDiscrete-v0")
    cls = agent_class("dqn")
    rng = np.random.default_rng(0)
    states = rng.uniform(0.0, 1.0, (600,) + env.observation_space.shape).astype(np.float32)
    half = states[:, 0] < 0.5

    def expert(action: int, region: np.ndarray, seed: int) -> dict:
        agent = cls(env.observation_space, env.action_space, seed=seed, hidden_sizes=(64, 64))
        target = np.zeros((len(states), 5), dtype=np.float32)
        target[region, action] = 5.0
        opt = torch.optim.Adam(agent.q.parameters(), lr=3e-3)
        x, y = torch.from_numpy(states), torch.from_numpy(target)
        for _ in range(400):
            loss = torch.nn.functional.mse_loss(agent.q(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return agent.get_weights()

    a, b = expert(0, half, 1), expert(4, ~half, 2)
    want = np.where(half, 0, 4)
    cloud = cls(env.observation_space, env.action_space, seed=3, hidden_sizes=(64, 64))
    fused, stats = robot_navigation.fuse(cloud, [a, b], states, 600, np.random.default_rng(1))
    cloud.set_weights(fused)
    acc_fused = (robot_navigation.q_values(cloud, states).argmax(1) == want).mean()
    cloud.set_weights(weighted_average([a, b], [1, 1]))
    acc_avg = (robot_navigation.q_values(cloud, states).argmax(1) == want).mean()
    assert acc_fused >= 0.9 and acc_fused > acc_avg + 0.2, (acc_fused, acc_avg)
    assert stats["fusion/greedy_agreement"] >= 0.9


@pytest.mark.parametrize("change, match", [
    ({"methods": ("lfrl", "maml")}, "unknown method 'maml'"),
    ({"methods": ()}, "no method given"),
    ({"heterogeneity": 1.5}, "heterogeneity=1.5"),
    ({"env_id": "frl/RobotNavigation-v0"}, "allowed: frl/RobotNavigationDiscrete-v0"),
    ({"unseen_worlds": 0}, "unseen_worlds=0"),
    ({"fedavg_rounds": 5000, "steps_per_world": 100}, "fedavg_rounds=5000"),
    ({"baselines": ("teleport",)}, "unknown baseline teleport"),
    ({"success_target": 0.0}, "success_target=0.0"),
    ({"transfer_initial_eps": -0.1}, "transfer_initial_eps=-0.1"),
])
def test_bad_knobs_are_refused_in_one_line(change, match):
    with pytest.raises(ScenarioError, match=match) as e:
        dataclasses.replace(robot_navigation.FULL, **change)
    assert "\n" not in str(e.value)
