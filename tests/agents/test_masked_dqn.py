"""Masked DQN: acts and bootstraps over valid actions only, SSCO-style per-client ε, and learns SFC placement."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers frl/*)
from agents import AGENTS, AgentError
from agents.masked_dqn import MaskedDQNAgent
from envs.sfc_orchestration import BASELINES, ENTRY
from federation.evaluation import evaluate_policy

torch.set_num_threads(1)

N_ACT = 4
OBS = gym.spaces.Box(0.0, 1.0, (6 + N_ACT,), np.float32)
ACT = gym.spaces.Discrete(N_ACT)


def _obs(rng, mask):
    return np.concatenate([rng.random(6), mask]).astype(np.float32)


def test_registered_and_bad_config_named():
    assert AGENTS["masked-dqn"] is MaskedDQNAgent
    with pytest.raises(AgentError, match="exploration_schedule"):
        MaskedDQNAgent(OBS, ACT, exploration_schedule="cosine")
    with pytest.raises(AgentError, match="mask_in_obs"):
        MaskedDQNAgent(gym.spaces.Box(0.0, 1.0, (2,), np.float32), ACT)


def test_acts_only_on_valid_actions_and_greedy_is_the_masked_argmax():
    agent = MaskedDQNAgent(OBS, ACT, seed=3, exploration_steps=0, exploration_final_eps=1.0)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        mask = (rng.random(N_ACT) < 0.5).astype(np.float32)
        mask[rng.integers(N_ACT)] = 1.0
        o = _obs(rng, mask)
        a_explore = agent.act(o, explore=True)                     # ε = 1: uniform over the valid actions
        a_greedy = agent.act(o, explore=False)
        assert mask[a_explore] == 1.0 and mask[a_greedy] == 1.0
        seen.add(a_explore)
        q = agent.q(torch.from_numpy(o)[None])[0].detach().numpy()
        assert a_greedy == int(np.argmax(np.where(mask > 0.5, q, -np.inf)))
        batch = agent._behaviour(np.stack([o, o]))
        assert (mask[batch] == 1.0).all()
    assert seen == set(range(N_ACT))


def test_td_target_maximises_over_the_valid_next_actions_only(monkeypatch):
    agent = MaskedDQNAgent(OBS, ACT, seed=0, double_q=False, batch_size=1, gamma=0.5, learning_starts=0)
    rng = np.random.default_rng(1)
    nxt = _obs(rng, np.array([1, 0, 0, 0], np.float32))
    q_next = agent.target(torch.from_numpy(nxt)[None])[0].detach().numpy()
    o = _obs(rng, np.ones(N_ACT, np.float32))
    agent.buffer.add_batch(o[None], np.array([2]), np.array([1.0]), nxt[None], np.array([False]), np.array([False]),
                           np.array([True]))
    captured = {}
    orig = torch.nn.functional.smooth_l1_loss

    def spy(q, target):
        captured["target"] = float(target[0])
        return orig(q, target)

    monkeypatch.setattr(torch.nn.functional, "smooth_l1_loss", spy)
    agent._update()
    assert captured["target"] == pytest.approx(1.0 + 0.5 * q_next[0], rel=1e-5)   # only action 0 is valid
    assert np.argmax(q_next) != 0                                   # so an unmasked max would differ


def test_exponential_epsilon_decays_on_a_per_client_time_constant():
    a = MaskedDQNAgent(OBS, ACT, seed=0, exploration_schedule="exponential", exploration_spread=1.0,
                       exploration_steps=3000)
    b = MaskedDQNAgent(OBS, ACT, seed=1, exploration_schedule="exponential", exploration_spread=1.0,
                       exploration_steps=3000)
    c = MaskedDQNAgent(OBS, ACT, seed=1, exploration_schedule="exponential", exploration_spread=0.0,
                       exploration_steps=3000)
    assert a.exploration_time_constant != b.exploration_time_constant
    assert c.exploration_time_constant == pytest.approx(1000.0)
    assert 500.0 <= a.exploration_time_constant <= 2000.0
    eps = []
    for t in (0, 1000, 5000, 50_000):
        c.total_steps = t
        eps.append(c.epsilon)
    assert eps[0] == pytest.approx(1.0) and eps[1] == pytest.approx(0.05 + 0.95 * np.exp(-1.0))
    assert eps == sorted(eps, reverse=True) and eps[-1] == pytest.approx(0.05, abs=1e-6)


def test_learns_sfc_placement_better_than_random_placement():
    env, ev = gym.make(ENTRY.env_id), gym.make(ENTRY.env_id)
    agent = MaskedDQNAgent(env.observation_space, env.action_space, seed=0, gamma=0.9, lr=1e-3,
                           hidden_sizes=(128, 128), learning_starts=500, target_update_interval=500,
                           exploration_steps=4000, exploration_schedule="exponential")
    agent.learn(env, 6000)
    seeds = [101, 102, 103]
    learned = evaluate_policy(ev, lambda o: agent.act(o, explore=False), seeds, ENTRY.kpis, ENTRY.kpi_weight)
    rand = evaluate_policy(ev, BASELINES["random"](ev, 0), seeds, ENTRY.kpis, ENTRY.kpi_weight)
    assert learned["placement_error"] == 0.0
    assert learned["acceptance"] > rand["acceptance"] + 0.04
