"""TD3 agent: twin critics, delayed actor/target updates, learning on a tiny task, weights, spaces. (The
machinery shared with DDPG and SAC is covered in depth by test_ddpg.py; seeds, weights, checkpoints and
pickling of every agent by test_agent_contract.py.)"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from agents.td3 import PRESETS, TD3Agent
from tests.agents.common import LinearBandit, assert_weights_equal, modules_equal

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), batch_size=16, learning_starts=50)


def make_agent(env_id: str = "Pendulum-v1", seed: int = 0, **kw) -> tuple[TD3Agent, gym.Env]:
    env = gym.make(env_id) if env_id != "bandit" else LinearBandit()
    return TD3Agent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


# ----- basic runs ----------------------------------------------------------------------------------------
def test_registered_and_preset_builds():
    assert agent_class("td3") is TD3Agent
    env = gym.make("Pendulum-v1")
    agent = TD3Agent(env.observation_space, env.action_space, **PRESETS["Pendulum-v1"])
    assert agent.config.hidden_sizes == PRESETS["Pendulum-v1"]["hidden_sizes"]


def test_pendulum_runs_and_reports_losses():
    agent, env = make_agent(train_freq=5)
    s1 = agent.learn(env, 250)
    assert s1["train/steps"] == 250 and s1["train/updates"] == 41 and s1["train/episodes"] == 1
    assert np.isfinite(s1["loss/critic"]) and np.isfinite(s1["loss/actor"])
    s2 = agent.learn(env, 150)  # the episode continues across calls
    assert s2["train/episodes"] == 1 and s2["train/steps"] == 400
    a = agent.act(env.observation_space.sample())
    assert a.shape == (1,) and a.dtype == np.float32 and -2.0 <= a[0] <= 2.0
    assert agent.critic.k == 2


def test_delayed_actor_and_target_updates():
    agent, env = make_agent(policy_delay=3, learning_starts=40)
    agent.learn(env, 40)  # one update (critic only)
    actor, actor_t, critic_t = (copy.deepcopy(m) for m in (agent.actor, agent.actor_target, agent.critic_target))
    agent.learn(env, 1)
    assert agent.num_updates == 2
    assert modules_equal(agent.actor, actor) and modules_equal(agent.actor_target, actor_t)
    assert modules_equal(agent.critic_target, critic_t)  # targets move only with the actor
    agent.learn(env, 1)  # third update: actor and both targets move
    assert not modules_equal(agent.actor, actor) and not modules_equal(agent.actor_target, actor_t)
    assert not modules_equal(agent.critic_target, critic_t)
    agent.learn(env, 27)
    steps = [s["step"].item() for s in agent.actor_optimizer.state.values()]
    assert agent.num_updates == 30 and steps == [10] * len(steps)


def test_target_smoothing_noise_is_clipped():
    agent, env = make_agent(policy_noise=100.0, noise_clip=0.3)
    agent.learn(env, 60)
    next_obs = torch.from_numpy(agent.buffer.next_obs[:60])
    with torch.no_grad():
        smoothed, mu = agent._smoothed_target_actions(next_obs), agent.actor_target(next_obs)
    # huge noise is clipped to ±c, so ã = clip(μ'(s') ± 0.3, −1, 1), with both signs drawn
    expected_hi, expected_lo = (mu + 0.3).clamp(-1, 1), (mu - 0.3).clamp(-1, 1)
    hi, lo = torch.isclose(smoothed, expected_hi), torch.isclose(smoothed, expected_lo)
    assert torch.all(hi | lo) and hi.any() and lo.any()


# ----- learning ------------------------------------------------------------------------------------------


# ----- weights -------------------------------------------------------------------------------------------
def test_weights_round_trip_syncs_both_targets():
    a, env = make_agent(seed=0)
    a.learn(env, 100)
    w = a.get_weights()
    assert w["critic.body.0.weight"].shape == (2, 4, 32) and w["critic.head.bias"].shape == (2, 1, 1)
    assert not any("target" in k for k in w)
    b, _ = make_agent(seed=1)
    b.set_weights(w)
    assert_weights_equal(b.get_weights(), w)
    assert modules_equal(b.actor_target, b.actor) and modules_equal(b.critic_target, b.critic)


# ----- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(policy_freq=2), "unknown TD3 hyperparameter.*policy_freq.*allowed:.*policy_delay"),
        (dict(policy_delay=0), "policy_delay=0 out of range"),
        (dict(noise_clip=-0.5), "noise_clip"),
        (dict(policy_noise=float("inf")), "policy_noise"),
        (dict(critic_lr=-1e-3), "critic_lr"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)

