"""DDPG agent and the shared continuous-control machinery (agents/offpolicy.py): learning on a tiny task,
weight names and target networks, malformed checkpoints, spaces. (Seeds, weights, checkpoints and pickling of
every agent: test_agent_contract.py.)"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from agents.ddpg import PRESETS, DDPGAgent, DDPGConfig
from agents.offpolicy import DeterministicActor, EnsembleCritic, EnsembleLinear
from tests.agents.common import LinearBandit, ResetCounter, assert_weights_equal, modules_equal

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), batch_size=16, learning_starts=50)


def make_agent(env_id: str = "Pendulum-v1", seed: int = 0, **kw) -> tuple[DDPGAgent, gym.Env]:
    env = gym.make(env_id) if env_id != "bandit" else LinearBandit()
    return DDPGAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


# ----- basic runs ----------------------------------------------------------------------------------------
def test_registered_and_preset_builds():
    assert agent_class("ddpg") is DDPGAgent
    env = gym.make("Pendulum-v1")
    agent = DDPGAgent(env.observation_space, env.action_space, **PRESETS["Pendulum-v1"])
    assert agent.config.gamma == PRESETS["Pendulum-v1"]["gamma"]


def test_pendulum_runs_and_continues_episode_across_calls():
    agent, env = make_agent(train_freq=5)
    env = ResetCounter(env)
    s1 = agent.learn(env, 300)
    assert s1["train/steps"] == 300 and s1["train/updates"] == 51  # at steps 50, 55, ..., 300
    assert np.isfinite(s1["loss/critic"]) and np.isfinite(s1["loss/actor"])
    assert s1["train/episodes"] == 1 and s1["train/episode_length"] == 200
    resets_before = len(env.reset_seeds)
    s2 = agent.learn(env, 150)
    assert s2["train/steps"] == 450 and s2["train/episodes"] == 1  # the episode continued: 400 = 2 × 200
    assert env.reset_seeds[0] is not None and all(s is None for s in env.reset_seeds[1:])
    assert len(env.reset_seeds) - resets_before == 1
    acts = np.array(env.actions)
    assert acts.shape == (450, 1) and acts.min() >= -2.0 and acts.max() <= 2.0
    a = agent.act(env.observation_space.sample())
    assert a.shape == (1,) and a.dtype == np.float32 and -2.0 <= a[0] <= 2.0


def test_no_episode_and_no_update_means_no_keys():
    agent, env = make_agent(learning_starts=1_000)
    stats = agent.learn(env, 20)
    assert "train/episode_return" not in stats and "loss/critic" not in stats
    assert stats["train/episodes"] == 0 and stats["train/updates"] == 0


def test_warmup_actions_uniform_and_scaled_to_bounds():
    agent, env = make_agent("bandit", learning_starts=400)
    env = ResetCounter(env)
    agent.learn(env, 399)
    assert agent.num_updates == 0
    agent.learn(env, 1)  # the first update comes with step learning_starts
    assert agent.num_updates == 1
    stored = agent.buffer.actions[:400, 0]
    assert stored.min() >= -1.0 and stored.max() <= 1.0 and abs(stored.mean()) < 0.1  # U[−1, 1]
    np.testing.assert_allclose(np.array(env.actions)[:, 0], 1.0 + 2.0 * stored, atol=1e-6)  # → [−1, 3]


def test_multi_dim_actions_and_ou_noise():
    env = LinearBandit(obs_dim=3, act_dim=3)
    agent = DDPGAgent(env.observation_space, env.action_space, noise_type="ou", **TINY)
    stats = agent.learn(env, 200)
    assert np.isfinite(stats["loss/critic"]) and agent.act(env.reset()[0]).shape == (3,)
    # OU noise is temporally correlated and restarts from 0 at each episode start
    agent._ou_state[:] = 0.0
    xs = np.array([agent._noise((3,)) for _ in range(500)])
    assert np.corrcoef(xs[:-1, 0], xs[1:, 0])[0, 1] > 0.9
    agent._episodes_started(np.arange(1))  # a new episode of the single env
    assert np.all(agent._ou_state == 0.0)


def test_fast_path_matches_forward_and_follows_updates():
    torch.manual_seed(0)
    actor = DeterministicActor(5, 2, (16, 8), "tanh")
    x = torch.randn(20, 5)
    np.testing.assert_allclose(np.stack([actor.action(r.numpy()) for r in x]), actor(x).detach(), atol=1e-6)
    clone = copy.deepcopy(actor)
    with torch.no_grad():
        for p in clone.parameters():
            p.mul_(-1.0)  # in-place change: the clone's cached views follow, the original's do not
    np.testing.assert_allclose(np.stack([clone.action(r.numpy()) for r in x]), clone(x).detach(), atol=1e-6)
    np.testing.assert_allclose(np.stack([actor.action(r.numpy()) for r in x]), actor(x).detach(), atol=1e-6)
    gelu = DeterministicActor(5, 2, (16,), "gelu")  # an activation without a numpy form
    np.testing.assert_allclose(np.stack([gelu.action(r.numpy()) for r in x]), gelu(x).detach(), atol=1e-6)


def test_ensemble_critic_equals_separate_networks_and_actor_pass_freezes_it():
    torch.manual_seed(0)
    critic = EnsembleCritic(3, 2, (8, 4), k=3)
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    q = critic(obs, act)
    assert q.shape == (3, 6)
    layers = [m for m in critic.body if isinstance(m, EnsembleLinear)] + [critic.head]
    for i in range(3):
        h = torch.cat((obs, act), -1)
        for j, layer in enumerate(layers):
            h = h @ layer.weight[i] + layer.bias[i]
            h = torch.relu(h) if j < len(layers) - 1 else h
        torch.testing.assert_close(q[i], h.squeeze(-1))
    torch.testing.assert_close(critic(obs, act, first=1), q[:1])
    # the actor's pass differentiates Q through the action only, and leaves the critic trainable
    agent, env = make_agent()
    o = torch.randn(5, 3)
    a = torch.rand(5, 1, requires_grad=True)
    agent._q_for_actor(o, a).sum().backward()
    assert a.grad is not None and all(p.grad is None for p in agent.critic.parameters())
    assert all(p.requires_grad for p in agent.critic.parameters())


# ----- learning ------------------------------------------------------------------------------------------
# a few hundred updates of tiny networks: the learned policy is within ~0.1 of the best action


# ----- weights -------------------------------------------------------------------------------------------
def test_weights_names_and_targets_follow_set_weights():
    a, env = make_agent(seed=0)
    a.learn(env, 120)
    w = a.get_weights()
    assert {k.split(".")[0] for k in w} == {"actor", "critic"}
    assert w["critic.body.0.weight"].shape == (1, 4, 32) and w["actor.head.weight"].shape == (1, 32)
    b, _ = make_agent(seed=1)
    b.set_weights(w)
    assert modules_equal(b.actor_target, b.actor)
    assert modules_equal(b.critic_target, b.critic)
    b.set_weights({"critic.head.bias": np.zeros((1, 1, 1))})  # a subset
    assert torch.equal(b.critic_target.head.bias, torch.zeros(1, 1, 1))
    assert modules_equal(b.actor_target, b.actor)  # untouched keys keep their targets


def test_target_networks_are_not_weights():
    agent, _ = make_agent()
    before = agent.get_weights()
    with pytest.raises(AgentError, match=r"unknown weight 'actor_target\.head\.bias'"):
        agent.set_weights({"actor_target.head.bias": np.zeros(1)})
    assert_weights_equal(agent.get_weights(), before)


# ----- checkpoints ---------------------------------------------------------------------------------------
def test_load_refuses_a_checkpoint_without_target_or_noise_state(tmp_path):
    agent, env = make_agent()
    agent.save(tmp_path / "own.pt")
    payload = torch.load(tmp_path / "own.pt", weights_only=True)
    del payload["modules"]["target"]["actor.head.bias"]
    torch.save(payload, tmp_path / "no_target.pt")
    payload = torch.load(tmp_path / "own.pt", weights_only=True)
    payload["extra"] = {}
    torch.save(payload, tmp_path / "no_noise_state.pt")
    agent.learn(env, 60)  # moves the weights away from own.pt
    before = agent.get_weights()
    for name, msg in [("no_target.pt", "network shapes.*target"), ("no_noise_state.pt", "malformed.*ou_state")]:
        with pytest.raises(AgentError, match=msg):
            agent.load(tmp_path / name)
    assert_weights_equal(agent.get_weights(), before)


# ----- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lr=1e-3), "unknown DDPG hyperparameter.*lr.*allowed: .*actor_lr, critic_lr"),
        (dict(actor_lr=0.0), r"actor_lr=0\.0 out of range"),
        (dict(gamma=1.5), r"gamma=1\.5 out of range"),
        (dict(tau=0.0), r"tau=0\.0 out of range"),
        (dict(batch_size=0), "batch_size=0 out of range"),
        (dict(hidden_sizes=()), "hidden_sizes"),
        (dict(noise_type="pink"), "noise_type='pink' not supported; allowed: gaussian, ou"),
        (dict(exploration_noise=-0.1), "exploration_noise"),
        (dict(personal="tail"), "personal='tail' not supported; allowed: none, head"),
        (dict(prox_mu=float("nan")), "prox_mu"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)


def test_config_coerces_and_is_frozen():
    cfg = DDPGConfig(hidden_sizes=[8, 8], batch_size=np.int64(8), learning_starts=10.0)
    assert cfg.hidden_sizes == (8, 8) and type(cfg.batch_size) is int and cfg.learning_starts == 10
    with pytest.raises(AttributeError):
        cfg.tau = 1.0  # type: ignore[misc]
    env = gym.make("Pendulum-v1")
    agent = DDPGAgent(env.observation_space, env.action_space, config=cfg, gamma=0.5)
    assert agent.config.gamma == 0.5 and agent.config.hidden_sizes == (8, 8)


def test_env_with_mismatched_spaces_refused():
    agent, _ = make_agent()
    with pytest.raises(AgentError, match="action space"):
        agent.learn(gym.make("MountainCarContinuous-v0"), 10)
    with pytest.raises(AgentError, match="num_steps"):
        agent.learn(gym.make("Pendulum-v1"), -1)
