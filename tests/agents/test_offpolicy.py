"""What DDPG, TD3 and SAC share (agents/offpolicy.py), checked for each: learning a contextual bandit,
personal heads, the FedProx term and the spaces they refuse."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from tests.agents.common import BANDIT, LinearBandit, mean_reward

torch.set_num_threads(1)

ALGOS = {"ddpg": "DDPG", "td3": "TD3", "sac": "SAC"}
TINY = dict(hidden_sizes=(32,), batch_size=16, learning_starts=50)


def make_agent(name: str, env_id: str = "Pendulum-v1", seed: int = 0, **kw):
    env = gym.make(env_id) if env_id != "bandit" else LinearBandit()
    return agent_class(name)(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


# a few hundred updates of tiny networks: the learned policy is within ~0.1 of the best action
@pytest.mark.parametrize("name", ALGOS)
def test_beats_random_on_linear_bandit(name):
    agent, env = make_agent(name, "bandit", **BANDIT)
    agent.learn(env, 400)  # 300 updates
    rng = np.random.default_rng(0)
    random_reward = mean_reward(lambda _: rng.uniform(-1.0, 3.0, 1).astype(np.float32))
    learned = mean_reward(lambda o: agent.act(o, explore=False))
    assert random_reward < -1.5
    assert learned > 0.1 * random_reward, (learned, random_reward)


@pytest.mark.parametrize("name", ALGOS)
def test_personal_heads_stay_local(name):
    agent, _ = make_agent(name, personal="head")
    assert agent.personal_prefixes == ("actor.head.", "critic.head.")
    local = set(agent.get_weights()) - set(agent.get_shared_weights())
    assert local == {"actor.head.weight", "actor.head.bias", "critic.head.weight", "critic.head.bias"}
    plain, _ = make_agent(name)
    assert plain.get_shared_weights().keys() == plain.get_weights().keys()
    assert agent_class(name).personal_prefixes == ()


@pytest.mark.parametrize("name", ALGOS)
def test_prox_term_pulls_toward_anchor(name):
    def drift(mu: float) -> float:
        agent, env = make_agent(name, seed=5, prox_mu=mu, actor_lr=3e-3, critic_lr=3e-3, learning_starts=30)
        anchor = agent.get_weights()
        agent.set_weights(anchor)
        agent.learn(env, 150)
        w = agent.get_weights()
        return float(np.sqrt(sum(np.sum((w[k] - anchor[k]) ** 2) for k in w)))

    free, proximal = drift(0.0), drift(50.0)
    assert proximal < 0.5 * free, (proximal, free)


@pytest.mark.parametrize(
    "obs_space, act_space, msg",
    [
        (
            gym.spaces.Box(-1, 1, (3,)),
            gym.spaces.Discrete(2),
            "{algo} supports Box action spaces; use dqn/ppo for Discrete",
        ),
        (gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([2, 2]), "supports Box action spaces"),
        (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2, 2)), "1-D Box action spaces with finite bounds"),
        (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-np.inf, np.inf, (2,)), "finite bounds"),
        (gym.spaces.Box(0, 1, (3, 3)), gym.spaces.Box(-1, 1, (2,)), "1-D Box observation spaces"),
        (gym.spaces.Discrete(4), gym.spaces.Box(-1, 1, (2,)), "1-D Box observation spaces"),
    ],
)
@pytest.mark.parametrize("name", ALGOS)
def test_unsupported_spaces(name, obs_space, act_space, msg):
    with pytest.raises(AgentError, match=msg.format(algo=ALGOS[name])):
        agent_class(name)(obs_space, act_space)
