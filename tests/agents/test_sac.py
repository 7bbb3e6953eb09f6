"""SAC agent: squashed-Gaussian policy and its log-probability, temperature tuning, learning on a tiny task,
weights, spaces. (The machinery shared with DDPG and TD3 is covered in depth by test_ddpg.py; seeds, weights,
checkpoints and pickling of every agent by test_agent_contract.py.)"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from agents import AgentError, agent_class
from agents.offpolicy import SquashedGaussianActor
from agents.sac import PRESETS, SACAgent
from tests.agents.common import LinearBandit, assert_weights_equal, modules_equal

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), batch_size=16, learning_starts=50)


def make_agent(env_id: str = "Pendulum-v1", seed: int = 0, **kw) -> tuple[SACAgent, gym.Env]:
    env = gym.make(env_id) if env_id != "bandit" else LinearBandit()
    return SACAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


# ----- policy ----------------------------------------------------------------------------------------------
def test_squashed_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 3, (16,))
    obs = torch.randn(64, 4)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        action, log_prob = actor(obs, gen)
        mean, log_std = actor.head(actor.body(obs)).split(3, dim=-1)
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    assert action.shape == (64, 3) and log_prob.shape == (64,) and action.abs().max() < 1.0
    u = mean + log_std.exp() * eps
    torch.testing.assert_close(action, torch.tanh(u))
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    # the reference evaluates at tanh(u) (inverting it loses precision near ±1); compare where it is exact
    ok = action.abs().amax(-1) < 0.99
    assert ok.sum() > 40
    torch.testing.assert_close(log_prob[ok], reference.log_prob(action).sum(-1)[ok], rtol=1e-4, atol=1e-3)


def test_fast_path_matches_mode_and_sample():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 2, (16, 16), "tanh")
    obs = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    with torch.no_grad():
        mean, log_std = actor.head(actor.body(torch.from_numpy(obs))).split(2, dim=-1)
    modes = np.stack([actor.action(o, None) for o in obs])
    np.testing.assert_allclose(modes, torch.tanh(mean).numpy(), atol=1e-6)
    noise = np.full(2, 0.5, np.float32)
    samples = np.stack([actor.action(o, noise) for o in obs])
    np.testing.assert_allclose(samples, torch.tanh(mean + 0.5 * log_std.exp()).numpy(), atol=1e-6)


# ----- basic runs ----------------------------------------------------------------------------------------
def test_registered_and_preset_builds():
    assert agent_class("sac") is SACAgent
    env = gym.make("Pendulum-v1")
    agent = SACAgent(env.observation_space, env.action_space, **PRESETS["Pendulum-v1"])
    assert agent.target_entropy == -1.0 and agent.alpha == pytest.approx(1.0)


def test_pendulum_runs_tunes_alpha_and_acts():
    agent, env = make_agent(train_freq=5)
    stats = agent.learn(env, 250)
    assert stats["train/updates"] == 41 and stats["train/episodes"] == 1
    for key in ("loss/critic", "loss/actor", "loss/alpha", "train/alpha"):
        assert np.isfinite(stats[key]), key
    assert agent.alpha != 1.0  # the temperature is learned
    obs = env.observation_space.sample()
    greedy = [agent.act(obs, explore=False) for _ in range(3)]
    assert all(np.array_equal(greedy[0], g) for g in greedy)  # the deterministic action is tanh(mean)
    sampled = np.array([agent.act(obs) for _ in range(20)])
    assert sampled.std() > 0 and sampled.min() >= -2.0 and sampled.max() <= 2.0


def test_fixed_alpha_and_target_entropy():
    agent, env = make_agent(autotune=False, init_alpha=0.2)
    stats = agent.learn(env, 80)
    assert "loss/alpha" not in stats and agent.alpha == pytest.approx(0.2)
    env3 = gym.make("MountainCarContinuous-v0")
    assert SACAgent(env3.observation_space, env3.action_space).target_entropy == -1.0
    assert make_agent(target_entropy=-3.0)[0].target_entropy == -3.0


# ----- learning ------------------------------------------------------------------------------------------


# ----- seeds ---------------------------------------------------------------------------------------------
def test_same_seed_same_temperature():
    alphas = []
    for _ in range(2):
        agent, env = make_agent(seed=3)
        agent.learn(env, 90)
        alphas.append(agent.alpha)
    assert alphas[0] == alphas[1] != 1.0


# ----- weights -------------------------------------------------------------------------------------------
def test_weights_are_actor_and_critics_only():
    a, env = make_agent(seed=0)
    a.learn(env, 100)
    w = a.get_weights()
    assert {k.split(".")[0] for k in w} == {"actor", "critic"}
    assert w["actor.head.weight"].shape == (2, 32)  # [mean, log σ] for one action dimension
    assert w["critic.head.weight"].shape == (2, 32, 1)
    b, _ = make_agent(seed=1)
    alpha_b = b.alpha
    b.set_weights(w)
    assert_weights_equal(b.get_weights(), w)
    assert modules_equal(b.critic_target, b.critic)
    assert b.alpha == alpha_b  # the temperature is local


def test_set_weights_rejects_and_changes_nothing():
    agent, _ = make_agent()
    before = agent.get_weights()
    with pytest.raises(AgentError, match="log_alpha"):
        agent.set_weights({"actor.head.bias": np.zeros(2), "log_alpha": np.zeros(1)})
    assert_weights_equal(agent.get_weights(), before)


# ----- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(ent_coef="auto"), "unknown SAC hyperparameter.*ent_coef.*allowed:.*init_alpha"),
        (dict(init_alpha=0.0), "init_alpha=0.0 out of range"),
        (dict(autotune="yes"), "autotune='yes' must be a bool"),
        (dict(log_std_min=2.0, log_std_max=2.0), "log_std_min=2.0 must be < log_std_max=2.0"),
        (dict(target_entropy=math.nan), "target_entropy"),
        (dict(alpha_lr=0), "alpha_lr"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)

