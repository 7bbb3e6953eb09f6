"""DQN agent, its Q-network builder and its replay buffer: runs, learning, target network, validation. (Seeds,
weights, checkpoints and pickling of every agent: test_agent_contract.py.)"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AgentError, agent_class
from agents.buffers import ReplayBuffer
from agents.dqn import DQNAgent, DQNConfig
from agents.nets import QNetwork
from tests.agents.common import ResetCounter, eval_return

torch.set_num_threads(1)

# small and fast: updates from step 50 on tiny batches
TINY = dict(hidden_sizes=(32,), batch_size=16, learning_starts=50, train_freq=2, exploration_steps=200)


def make_agent(env_id: str = "CartPole-v1", seed: int = 0, **kw) -> tuple[DQNAgent, gym.Env]:
    env = gym.make(env_id)
    return DQNAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


# ----- basic runs ----------------------------------------------------------------------------------------
def test_registered():
    assert agent_class("dqn") is DQNAgent


def test_cartpole_runs_and_continues_episode_across_calls():
    agent, env = make_agent()
    env = ResetCounter(env)
    s1 = agent.learn(env, 300)
    assert s1["train/steps"] == 300 and np.isfinite(s1["loss/td"])
    assert s1["train/episodes"] >= 1 and s1["train/episode_return"] > 0
    assert 0.05 <= s1["train/epsilon"] <= 1.0
    resets_before = len(env.reset_seeds)
    s2 = agent.learn(env, 300)
    assert s2["train/steps"] == 600
    # one seeded reset on first use, then unseeded resets only at episode ends (no reset per call)
    assert env.reset_seeds[0] is not None and all(s is None for s in env.reset_seeds[1:])
    assert len(env.reset_seeds) - resets_before == s2["train/episodes"]
    assert isinstance(agent.act(env.observation_space.sample()), int)


def test_no_episode_means_no_return_key():
    agent, env = make_agent(learning_starts=10_000)
    stats = agent.learn(env, 5)  # CartPole episodes last >= 8 steps
    assert "train/episode_return" not in stats and "loss/td" not in stats
    assert stats["train/episodes"] == 0 and stats["train/steps"] == 5


def test_new_env_object_is_reset_and_closes_nstep_chain():
    agent, env = make_agent(n_step=3)
    agent.learn(env, 7)  # mid-episode
    env2 = ResetCounter(gym.make("CartPole-v1"))
    agent.learn(env2, 5)
    assert env2.reset_seeds[0] is not None
    assert agent.buffer.truncated[6]  # abandoned episode marked, so 3-step returns stop there


def test_frozenlake_discrete_observations():
    agent, env = make_agent("FrozenLake-v1", n_step=3)
    stats = agent.learn(env, 300)
    assert np.isfinite(stats["loss/td"]) and stats["train/episodes"] >= 1
    assert agent.get_weights()["body.0.weight"].shape == (32, 16)  # one-hot input
    assert agent.act(5, explore=False) in range(4)
    with pytest.raises(AgentError, match="outside Discrete"):
        agent.act(16)


@pytest.mark.parametrize(
    "kw",
    [
        dict(double_q=False),
        dict(dueling=True),
        dict(dueling=True, double_q=False, n_step=3, tau=0.05, target_update_interval=1),
        dict(loss="mse", max_grad_norm=None, hidden_sizes=(16, 16), activation="tanh"),
    ],
)
def test_variants_run(kw):
    agent, env = make_agent(**kw)
    stats = agent.learn(env, 200)
    assert np.isfinite(stats["loss/td"])
    keys = set(agent.get_weights())
    assert ("head.value.weight" in keys and "head.advantage.weight" in keys) == bool(kw.get("dueling"))


def test_greedy_fast_path_matches_forward_and_survives_copies():
    torch.manual_seed(0)
    for dueling in (False, True):
        net = QNetwork(5, 3, (16, 8), "tanh", dueling=dueling)
        x = torch.randn(50, 5)
        assert [int(net.greedy(r.numpy())) for r in x] == net(x).argmax(1).tolist()
        assert net.greedy(x.numpy()).tolist() == net(x).argmax(1).tolist()
        clone = copy.deepcopy(net)
        with torch.no_grad():
            for p in clone.parameters():
                p.mul_(-1.0)  # in-place change: the clone's cached views must follow, the original's not
        assert [int(clone.greedy(r.numpy())) for r in x] == clone(x).argmax(1).tolist()
        assert [int(net.greedy(r.numpy())) for r in x] == net(x).argmax(1).tolist()


# ----- learning ------------------------------------------------------------------------------------------
def test_dqn_beats_random_on_cartpole():
    agent, env = make_agent(
        lr=1e-3,
        hidden_sizes=(64, 64),
        batch_size=64,
        buffer_size=10_000,
        learning_starts=500,
        train_freq=2,
        target_update_interval=250,
        exploration_steps=2_000,
        exploration_final_eps=0.05,
    )
    agent.learn(env, 4_000)
    rng = np.random.default_rng(0)
    random_return = eval_return(gym.make("CartPole-v1"), lambda _: int(rng.integers(2)))
    dqn_return = eval_return(gym.make("CartPole-v1"), lambda o: agent.act(o, explore=False))
    assert random_return < 40
    assert dqn_return >= 3 * random_return, (dqn_return, random_return)


# ----- weights -------------------------------------------------------------------------------------------
def test_target_follows_set_weights():
    a, env = make_agent(seed=0)
    a.learn(env, 120)
    b, _ = make_agent(seed=1)
    b.learn(gym.make("CartPole-v1"), 120)  # online and target networks have drifted apart
    assert not all(torch.equal(t, b.q.state_dict()[k]) for k, t in b.target.state_dict().items())
    b.set_weights(a.get_weights())
    assert all(torch.equal(t, b.q.state_dict()[k]) for k, t in b.target.state_dict().items())


def test_personal_head_stays_local():
    for dueling in (False, True):
        agent, _ = make_agent(personal="head", dueling=dueling)
        assert agent.personal_prefixes == ("head.",)
        shared = agent.get_shared_weights()
        assert shared and not any(k.startswith("head.") for k in shared)
        assert set(agent.get_weights()) - set(shared) == {k for k in agent.get_weights() if "head." in k}
    plain, _ = make_agent()
    assert plain.get_shared_weights().keys() == plain.get_weights().keys()
    assert DQNAgent.personal_prefixes == ()  # instance attribute, the class is untouched


def test_prox_term_pulls_toward_anchor():
    def drift(mu: float) -> float:
        agent, env = make_agent(seed=5, prox_mu=mu, lr=3e-3)
        anchor = agent.get_weights()
        agent.set_weights(anchor)
        agent.learn(env, 400)
        w = agent.get_weights()
        return float(np.sqrt(sum(np.sum((w[k] - anchor[k]) ** 2) for k in w)))

    free, proximal = drift(0.0), drift(50.0)
    assert proximal < 0.5 * free, (proximal, free)


# ----- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lrr=1e-3), "unknown DQN hyperparameter.*lrr.*allowed: gamma.*, lr,"),
        (dict(lr=0.0), r"lr=0\.0 out of range.*\(0\.0, inf\)"),
        (dict(gamma=1.5), r"gamma=1\.5 out of range.*\[0\.0, 1\.0\]"),
        (dict(batch_size=0), "batch_size=0 out of range"),
        (dict(tau=0.0), "tau=0.0 out of range"),
        (dict(exploration_final_eps=-0.1), "exploration_final_eps"),
        (dict(n_step=0), "n_step=0"),
        (dict(hidden_sizes=(64, 0)), "hidden_sizes"),
        (dict(personal="tail"), "personal='tail' not supported; allowed: none, head"),
        (dict(activation="sigmoidx"), "activation"),
        (dict(prox_mu=float("nan")), "prox_mu"),
        (dict(double_q="yes"), "double_q"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)


def test_config_coerces_and_is_frozen():
    cfg = DQNConfig(hidden_sizes=[8, 8], batch_size=np.int64(8), learning_starts=10.0)
    assert cfg.hidden_sizes == (8, 8) and type(cfg.batch_size) is int and cfg.learning_starts == 10
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, config=cfg, gamma=0.5)
    assert agent.config.gamma == 0.5 and agent.config.hidden_sizes == (8, 8)


@pytest.mark.parametrize(
    "obs_space, act_space, msg",
    [
        (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (2,)), "Discrete action spaces only"),
        (gym.spaces.Box(0, 1, (3, 3)), gym.spaces.Discrete(2), "Box with a 1-D shape or Discrete"),
        (gym.spaces.MultiDiscrete([2, 2]), gym.spaces.Discrete(2), "Box with a 1-D shape or Discrete"),
    ],
)
def test_unsupported_spaces(obs_space, act_space, msg):
    with pytest.raises(AgentError, match=msg):
        DQNAgent(obs_space, act_space)


def test_env_with_mismatched_spaces_refused():
    agent, _ = make_agent()
    with pytest.raises(AgentError, match="action space"):
        agent.learn(gym.make("Acrobot-v1"), 10)


# ----- replay buffer -------------------------------------------------------------------------------------
def test_replay_buffer_n_step_returns():
    buf = ReplayBuffer(8, (1,), np.float32, (), np.int64, np.random.default_rng(0), n_step=3, gamma=0.5)
    # episode 1: r = 1, 2, 4 then terminated; episode 2: r = 8, 16 then truncated; then 32 (open)
    for t, (r, term, trunc) in enumerate(
        [
            (1, False, False),
            (2, False, False),
            (4, True, False),
            (8, False, False),
            (16, False, True),
            (32, 0, 0),
        ]
    ):
        buf.add(np.array([t]), t, r, np.array([t + 1]), term, trunc)
    batch = buf._sample_n_step(np.arange(6))
    np.testing.assert_allclose(batch.rewards, [1 + 1 + 1, 2 + 2, 4, 8 + 8, 16, 32])
    np.testing.assert_allclose(batch.discounts, [0, 0, 0, 0.25, 0.5, 0.5])  # truncation bootstraps
    np.testing.assert_array_equal(batch.next_obs[:, 0], [3, 3, 3, 5, 5, 6])
    # wrap-around: after overwriting, the oldest slot looks ahead in time order, not into older data
    for t in range(6, 10):
        buf.add(np.array([t]), t, 1.0, np.array([t + 1]), False, False)
    assert len(buf) == 8 and buf.pos == 2
    batch = buf._sample_n_step(np.array([2, 1]))  # slot 2 holds t=2 (oldest), slot 1 holds t=9 (newest)
    np.testing.assert_allclose(batch.rewards, [4, 1])
    np.testing.assert_allclose(batch.discounts, [0, 0.5])
    one = ReplayBuffer(4, (), np.int64, (), np.int64, np.random.default_rng(0), gamma=0.9)
    one.add(0, 1, 1.0, 1, True, False)
    b = one.sample(5)
    assert b.obs.shape == (5,) and np.all(b.discounts == 0) and b.actions.dtype == np.int64
