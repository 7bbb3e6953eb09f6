"""REINFORCE agent: Monte Carlo returns over batch boundaries, learning, what its checkpoint keeps (the shared
on-policy machinery is tested in test_ppo.py; seeds, weights, checkpoints and pickling of every agent in
test_agent_contract.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from agents.reinforce import PRESETS, REINFORCEAgent, REINFORCEConfig

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), n_steps=64)


def make_agent(env_id: str | gym.Env = "CartPole-v1", seed: int = 0, **kw) -> tuple[REINFORCEAgent, gym.Env]:
    env = gym.make(env_id) if isinstance(env_id, str) else env_id
    return REINFORCEAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


class Chain(gym.Env):
    """Reward 2^t at step t (t = 0, 1, ...); terminates after ``length`` steps (or is truncated with
    ``truncate=True``). The observation is the step index."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int, truncate: bool = False) -> None:
        self.length, self.truncate = length, truncate
        self.observation_space = gym.spaces.Box(0.0, float(length), (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        r = float(2**self.t)
        self.t += 1
        end = self.t >= self.length
        return np.array([self.t], np.float32), r, end and not self.truncate, end and self.truncate, {}


def test_registered_and_presets_are_valid():
    assert agent_class("reinforce") is REINFORCEAgent
    for env_id, preset in PRESETS.items():
        gym.spec(env_id)
        REINFORCEConfig(**{k: v for k, v in preset.items() if k not in ("n_envs", "total_steps")})


def test_monte_carlo_returns_never_cut_at_batch_boundaries(monkeypatch):
    agent, env = make_agent(Chain(3), n_steps=8, gamma=0.5)
    seen = []
    original = agent._process_rollout

    def spy():
        buf = agent.buffer
        starts = buf.tail_starts()
        seen.append((buf.rewards[: buf.pos, 0].copy(), int(starts[0])))
        return original()

    monkeypatch.setattr(agent, "_process_rollout", spy)
    s1 = agent.learn(env, 8)  # episodes of 3: two finished (6 steps) + a 2-step tail carried over
    assert s1["train/batch_steps"] == 6 and agent.buffer.pos == 2
    np.testing.assert_array_equal(agent.buffer.rewards[:2, 0], [1, 2])
    s2 = agent.learn(env, 6)  # the carried tail is completed in the next batch
    assert s2["train/updates"] == 1
    rewards, start = seen[1]
    np.testing.assert_array_equal(rewards, [1, 2, 4, 1, 2, 4, 1, 2])
    assert start == 6 and s2["train/batch_steps"] == 6


def test_returns_value_with_gamma():
    from agents.rollout import gae

    r = np.array([[1], [2], [4]], np.float32)
    done = np.array([[0], [0], [1]], bool)
    z = np.zeros((3, 1), np.float32)
    g, _ = gae(r, z, done, z, z[0], 0.5, 1.0)
    np.testing.assert_allclose(g[:, 0], [1 + 1 + 1, 2 + 2, 4])


def test_long_episodes_are_cut_with_a_bootstrap():
    agent, env = make_agent(Chain(100), n_steps=8)  # max tail 4: the episode never finishes in a batch
    stats = agent.learn(env, 8)
    assert stats["train/batch_steps"] == 8 and agent.buffer.pos == 0
    agent.learn(env, 7)
    buf = agent.buffer
    assert buf.pos == 7


def test_truncated_episodes_bootstrap_and_terminated_do_not():
    agent, env = make_agent(Chain(3, truncate=True), n_steps=8)
    agent.learn(env, 7)
    buf = agent.buffer
    np.testing.assert_array_equal(np.flatnonzero(buf.bootstrap[:7, 0]), [2, 5])
    agent2, env2 = make_agent(Chain(3), n_steps=8)
    agent2.learn(env2, 7)
    assert not agent2.buffer.bootstrap[:7].any() and agent2.buffer.dones[:7, 0].sum() == 2


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"])
def test_spaces_run(env_id):
    agent, env = make_agent(env_id, normalize_returns=True, normalize_advantage=True)
    stats = agent.learn(env, 300)
    assert stats["train/updates"] >= 4 and np.isfinite(stats["loss/policy"])
    a = agent.act(env.observation_space.sample())
    assert env.action_space.contains(a if isinstance(a, int) else a.astype(env.action_space.dtype))


def test_vector_env_and_no_baseline():
    agent, _ = make_agent(baseline=False)
    before = {k: v for k, v in agent.get_weights().items() if k.startswith("critic.")}
    venv = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
    stats = agent.learn(venv, 600)
    assert stats["train/updates"] >= 3 and stats["train/episodes"] > 0
    after = agent.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the critic is not trained


def test_reinforce_beats_random_on_cartpole():
    agent, env = make_agent(hidden_sizes=(64, 64), n_steps=512, lr=3e-3, normalize_advantage=True)
    agent.learn(env, 8_000)
    rng = np.random.default_rng(0)

    def evaluate(policy, episodes=10):
        e, out = gym.make("CartPole-v1"), []
        for i in range(episodes):
            obs, _ = e.reset(seed=10_000 + i)
            done, ret = False, 0.0
            while not done:
                obs, r, te, tr, _ = e.step(policy(obs))
                ret, done = ret + r, te or tr
            out.append(ret)
        return float(np.mean(out))

    random_return = evaluate(lambda _: int(rng.integers(2)))
    rf_return = evaluate(lambda o: agent.act(o, explore=False))
    assert random_return < 40
    assert rf_return >= 3 * random_return, (rf_return, random_return)


def test_personal_head_and_prox_term():
    agent, env = make_agent(personal="head", prox_mu=0.5)
    assert "actor.head.weight" not in agent.get_shared_weights()

    def drift(mu: float) -> float:
        a, e = make_agent(seed=5, prox_mu=mu, lr=1e-2)
        anchor = a.get_weights()
        a.set_weights(anchor)
        a.learn(e, 400)
        now = a.get_weights()
        return float(np.sqrt(sum(np.sum((now[k] - anchor[k]) ** 2) for k in now)))

    assert drift(100.0) < 0.5 * drift(0.0)


def test_checkpoint_keeps_observation_statistics(tmp_path):
    a, env = make_agent(normalize_obs=True)
    a.learn(env, 100)
    a.save(tmp_path / "rf.pt")
    b, _ = make_agent(seed=3, normalize_obs=True)
    b.load(tmp_path / "rf.pt")
    assert a.obs_rms.count > 1
    np.testing.assert_array_equal(b.obs_rms.mean, a.obs_rms.mean)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(gae_lambda=0.9), "gae_lambda=0.9 not supported: REINFORCE uses Monte Carlo returns"),
        (dict(n_steps=1), "n_steps=1 out of range"),
        (dict(normalize_returns=1), "normalize_returns"),
        (dict(baseline="no"), "baseline"),
        (dict(nsteps=5), "unknown REINFORCE hyperparameter"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)


def test_unsupported_spaces():
    with pytest.raises(AgentError, match="REINFORCE supports observation spaces Box with a 1-D shape"):
        REINFORCEAgent(gym.spaces.Box(0, 1, (2, 2)), gym.spaces.Discrete(2))
