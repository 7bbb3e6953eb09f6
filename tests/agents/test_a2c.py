"""A2C agent: updates, learning, shared-body names, what its checkpoint keeps (the shared on-policy machinery
is tested in test_ppo.py; seeds, weights, checkpoints and pickling of every agent in test_agent_contract.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from agents.a2c import PRESETS, A2CAgent, A2CConfig
from tests.agents.common import assert_weights_equal, eval_return

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), n_steps=8)


def make_agent(env_id: str = "CartPole-v1", seed: int = 0, **kw) -> tuple[A2CAgent, gym.Env]:
    env = gym.make(env_id)
    return A2CAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


def test_registered_and_presets_are_valid():
    assert agent_class("a2c") is A2CAgent
    for env_id, preset in PRESETS.items():
        gym.spec(env_id)
        A2CConfig(**{k: v for k, v in preset.items() if k not in ("n_envs", "total_steps")})


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_spaces_and_optimizers_run(env_id, optimizer):
    agent, env = make_agent(env_id, optimizer=optimizer, gae_lambda=0.9 if optimizer == "adam" else 1.0)
    stats = agent.learn(env, 100)
    assert stats["train/updates"] == 12 and agent.buffer.pos == 4  # 100 = 12 x 8 + 4 pending
    assert all(np.isfinite(stats[k]) for k in ("loss/policy", "loss/value", "loss/entropy"))
    expected = torch.optim.Adam if optimizer == "adam" else torch.optim.RMSprop
    assert isinstance(agent.optimizer, expected)
    a = agent.act(env.observation_space.sample())
    assert env.action_space.contains(a if isinstance(a, int) else a.astype(env.action_space.dtype))


def test_one_gradient_step_per_rollout():
    agent, env = make_agent(n_steps=5, lr=1e-3)
    before = agent.get_weights()
    agent.learn(env, 4)
    assert_weights_equal(agent.get_weights(), before)  # no update before the rollout is full
    steps = []
    original = agent.optimizer.step
    agent.optimizer.step = lambda *a, **k: (steps.append(1), original(*a, **k))[1]
    agent.learn(env, 6)  # completes the first rollout, then a second one: 2 updates
    assert len(steps) == 2 and agent.num_updates == 2 and agent.buffer.pos == 0
    assert any(not np.array_equal(before[k], v) for k, v in agent.get_weights().items())


def test_vector_env():
    agent, _ = make_agent(n_steps=5)
    venv = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    stats = agent.learn(venv, 400)
    assert stats["train/updates"] == 20 and stats["train/steps"] == 400 and stats["train/episodes"] > 0


def test_a2c_beats_random_on_cartpole():
    agent, env = make_agent(hidden_sizes=(64, 64), n_steps=16, lr=1e-3)
    agent.learn(env, 6_000)
    rng = np.random.default_rng(0)
    random_return = eval_return(gym.make("CartPole-v1"), lambda _: int(rng.integers(2)))
    a2c_return = eval_return(gym.make("CartPole-v1"), lambda o: agent.act(o, explore=False))
    assert random_return < 40
    assert a2c_return >= 3 * random_return, (a2c_return, random_return)


def test_shared_body_weight_names_round_trip():
    a, env = make_agent(seed=0, shared_body=True)
    a.learn(env, 50)
    assert "body.0.weight" in a.get_weights() and "actor.body.0.weight" not in a.get_weights()
    b, _ = make_agent(seed=1, shared_body=True)
    b.set_weights(a.get_weights())
    assert_weights_equal(b.get_weights(), a.get_weights())


def test_personal_head():
    agent, _ = make_agent("Pendulum-v1", personal="head")
    assert set(agent.get_weights()) - set(agent.get_shared_weights()) == {
        "actor.head.weight",
        "actor.head.bias",
        "critic.head.weight",
        "critic.head.bias",
        "actor.log_std",
    }


def test_prox_term_pulls_toward_anchor():
    def drift(mu: float) -> float:
        agent, env = make_agent(seed=5, prox_mu=mu, lr=3e-3)
        anchor = agent.get_weights()
        agent.set_weights(anchor)
        agent.learn(env, 400)
        w = agent.get_weights()
        return float(np.sqrt(sum(np.sum((w[k] - anchor[k]) ** 2) for k in w)))

    free, proximal = drift(0.0), drift(100.0)
    assert proximal < 0.5 * free, (proximal, free)


def test_checkpoint_keeps_update_count_and_rmsprop_state(tmp_path):
    a, env = make_agent(seed=0)
    a.learn(env, 60)
    a.save(tmp_path / "a2c.pt")
    b, _ = make_agent(seed=9)
    b.load(tmp_path / "a2c.pt")
    assert b.num_updates == 7
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa and all(torch.equal(sa[i]["square_avg"], sb[i]["square_avg"]) for i in sa)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lrr=1e-3), "unknown A2C hyperparameter.*lrr"),
        (dict(optimizer="sgd"), "optimizer='sgd' not supported; allowed: rmsprop, adam"),
        (dict(rms_alpha=0.0), "rms_alpha"),
        (dict(optimizer_eps=-1.0), "optimizer_eps"),
        (dict(n_steps=0), "n_steps=0"),
        (dict(vf_coef=-1.0), "vf_coef"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)


def test_unsupported_spaces_and_env_mismatch():
    with pytest.raises(AgentError, match="A2C supports Discrete or 1-D Box action spaces"):
        A2CAgent(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiBinary(2))
    agent, _ = make_agent()
    with pytest.raises(AgentError, match="action space"):
        agent.learn(gym.make("Pendulum-v1"), 5)
