"""Every agent on the PettingZoo and vector forms: one learner acting for all agent ids with shared
parameters (batched), the vector stepper's autoreset modes, the strided replay buffer, learning."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AGENTS, AgentError, agent_class
from agents.buffers import ReplayBuffer
from agents.vector_stepping import VectorStepper, updates_due
from envs.cv2x import parallel_env as cv2x_parallel
from envs.robot_navigation import parallel_env as robots_parallel
from tests.agents.common import BANDIT, BanditSwarm, BitMatch, assert_weights_equal, mean_reward

torch.set_num_threads(1)

DISCRETE = ("dqn", "ppo", "a2c", "reinforce", "q-learning", "sarsa", "femrl", "masked-dqn")
CONTINUOUS = ("ddpg", "td3", "sac", "ppo", "a2c", "reinforce")
#: small and fast settings per agent (tabular agents discretise BitMatch's one-hot Box into 2 × 2 cells)
SMALL = {
    "dqn": dict(hidden_sizes=(32,), batch_size=16, learning_starts=30, exploration_steps=300),
    "ppo": dict(hidden_sizes=(32,), n_steps=16, batch_size=32, n_epochs=2),
    "a2c": dict(hidden_sizes=(32,), n_steps=8),
    "reinforce": dict(hidden_sizes=(32,), n_steps=32),
    "ddpg": dict(hidden_sizes=(32,), batch_size=16, learning_starts=30),
    "td3": dict(hidden_sizes=(32,), batch_size=16, learning_starts=30),
    "sac": dict(hidden_sizes=(32,), batch_size=16, learning_starts=30),
    "q-learning": dict(bins=(2,), exploration_steps=300),
    "sarsa": dict(bins=(2,), exploration_steps=300),
    "masked-dqn": dict(hidden_sizes=(32,), batch_size=16, learning_starts=30, exploration_steps=300,
                       mask_in_obs=False, exploration_schedule="exponential", exploration_spread=0.5),
    "femrl": dict(hidden_sizes=(32,), ensemble_size=2, model_hidden=(16,), model_updates=10, kd_samples=16,
                  distill_steps=10, rollout_batch=16, policy_updates=10, batch_size=16),
}
CV2X_TABULAR = dict(bins=(2,), low=(-200.0,), high=(200.0,))  # a coarse grid: only the run is checked


def make(name: str, env, seed: int = 0, **kw):
    agent_id = env.possible_agents[0] if hasattr(env, "possible_agents") else None
    obs_space = env.observation_space(agent_id) if agent_id else env.single_observation_space
    act_space = env.action_space(agent_id) if agent_id else env.single_action_space
    return agent_class(name)(obs_space, act_space, seed=seed, **{**SMALL[name], **kw})


def test_every_agent_is_covered():
    assert set(DISCRETE) | set(CONTINUOUS) == set(AGENTS)


# ----- the step counter rule ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(1, 40), st.integers(1, 30), st.integers(0, 100))
def test_updates_due_counts_the_single_env_rule(t_prev, n, every, start):
    brute = sum(1 for t in range(t_prev + 1, t_prev + n + 1) if t >= start and t % every == 0)
    assert updates_due(t_prev, t_prev + n, every, start) == brute


# ----- the strided replay buffer ------------------------------------------------------------------------
def test_replay_buffer_strided_n_step_never_mixes_sub_envs_or_samples_padding():
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(12, (1,), np.float32, (), np.int64, rng, n_step=3, gamma=0.5, num_envs=3)
    assert buf.capacity == 12 and buf.num_envs == 3
    # sub-env 0 earns 1 per step, sub-env 1 earns 10 (episode ends at its 2nd step), sub-env 2 is padding
    for t in range(3):
        buf.add_batch(
            obs=np.array([[t], [10 + t], [-1]], np.float32),
            actions=np.zeros(3, np.int64),
            rewards=np.array([1.0, 10.0, 0.0]),
            next_obs=np.array([[t + 1], [11 + t], [-1]], np.float32),
            terminated=np.array([False, t == 1, False]),
            truncated=np.zeros(3, bool),
            valid=np.array([True, t < 2, False]),
        )
    assert buf.size == 9 and buf.num_valid == 5
    b = buf.sample(500)
    assert not (b.obs == -1).any()  # padding never sampled
    first = b.obs[:, 0] == 0  # sub-env 0 at step 0: three steps of 1 -> 1 + .5 + .25, bootstrap from obs 3
    np.testing.assert_allclose(b.rewards[first], 1.75)
    np.testing.assert_allclose(b.next_obs[first, 0], 3.0)
    np.testing.assert_allclose(b.discounts[first], 0.125)
    ten = b.obs[:, 0] == 10  # sub-env 1: 10 + 5, then the termination cuts the bootstrap
    np.testing.assert_allclose(b.rewards[ten], 15.0)
    np.testing.assert_allclose(b.discounts[ten], 0.0)
    assert first.any() and ten.any()
    # two more steps fill the buffer and wrap: step 0 (one padding row) is overwritten, steps 1-2 (three) stay
    for _ in range(2):
        buf.add_batch(np.zeros((3, 1)), np.zeros(3), np.zeros(3), np.zeros((3, 1)), np.zeros(3, bool),
                      np.zeros(3, bool), np.ones(3, bool))
    assert buf.size == 12 and buf.num_valid == 12 - 3 and buf.pos == 3
    buf.mark_episode_end()
    assert buf.truncated[0:3].all() and not buf.truncated[9:12].any()  # the newest step's rows only


# ----- the stepper's autoreset modes ----------------------------------------------------------------------
def _cartpole_vec(mode: AutoresetMode):
    return gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode})


def _run_stepper(mode: AutoresetMode, steps: int = 150):
    stepper = VectorStepper(_cartpole_vec(mode), lambda o: np.array(o, dtype=np.float32), seed=0)
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(steps):
        obs = stepper.obs
        tr = stepper.step(rng.integers(2, size=3))
        rows.append((obs, tr))
    return stepper, rows


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_stepper_gives_true_successors_in_every_autoreset_mode(mode):
    stepper, rows = _run_stepper(mode)
    n_done = 0
    for i, (_, tr) in enumerate(rows):
        assert not (tr.done & ~tr.valid).any() and np.all(tr.rewards[~tr.valid] == 0)
        for e in np.flatnonzero(tr.terminated):  # CartPole terminates out of |x| ≤ 2.4, |θ| ≤ 12°
            x, theta = tr.next_obs[e, 0], tr.next_obs[e, 2]
            assert abs(x) > 2.4 or abs(theta) > 12 * 2 * np.pi / 360
            n_done += 1
        ongoing = tr.valid & ~tr.done
        if i + 1 < len(rows):  # inside an episode the successor is the next step's observation
            np.testing.assert_array_equal(tr.next_obs[ongoing], rows[i + 1][0][ongoing])
            if mode == AutoresetMode.NEXT_STEP:  # the step after an ending resets: not a transition
                assert not rows[i + 1][1].valid[tr.done].any()
    assert n_done >= 5 and len(stepper.returns) == n_done
    assert sum(stepper.lengths) <= sum(int(tr.valid.sum()) for _, tr in rows)


def test_same_step_and_disabled_autoreset_give_identical_transitions():
    _, a = _run_stepper(AutoresetMode.SAME_STEP)
    _, b = _run_stepper(AutoresetMode.DISABLED)
    for (oa, ta), (ob, tb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ta.next_obs, tb.next_obs)
        np.testing.assert_array_equal(ta.done, tb.done)


# ----- every agent runs on every form ------------------------------------------------------------------
@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_agents_run_on_parallel_and_vector_envs(name):
    env = BitMatch()
    agent = make(name, env)
    stats = agent.learn(env, 90)  # a ParallelEnv is wrapped automatically: 3 sub-envs, 30 vector steps
    assert stats["train/steps"] == 90 and stats["train/episodes"] >= 3
    assert agent.act(np.eye(2, dtype=np.float32)[1], explore=False) in (0, 1)
    venv = _cartpole_vec(AutoresetMode.NEXT_STEP)
    kw = dict(bins=(2,), low=(-3.0,), high=(3.0,)) if name in ("q-learning", "sarsa") else {}
    agent = make(name, venv, **kw)
    stats = agent.learn(venv, 301)  # rounded up to a multiple of num_envs
    assert stats["train/steps"] == 303 and stats["train/episodes"] >= 3
    assert all(np.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_agents_run_on_parallel_and_vector_envs(name):
    env = BanditSwarm()
    agent = make(name, env)
    stats = agent.learn(env, 200)
    assert stats["train/steps"] == 200 and stats["train/episodes"] >= 4
    venv = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    agent = make(name, venv)
    stats = agent.learn(venv, 100)
    assert stats["train/steps"] == 100 and all(np.isfinite(v) for v in stats.values())
    assert agent.act(np.zeros(3, np.float32), explore=False).shape == (1,)


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_agents_run_on_the_cv2x_pettingzoo_env(name):
    env = cv2x_parallel()
    agent = make(name, env, **(CV2X_TABULAR if name in ("q-learning", "sarsa") else {}))
    stats = agent.learn(env, 4 * 150)
    assert stats["train/steps"] == 600 and stats["train/episodes"] >= 4 and all(np.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_continuous_agents_run_on_the_robot_swarm_pettingzoo_env(name):
    env = robots_parallel(n_robots=3)
    agent = make(name, env, hidden_sizes=(16,), train_freq=4)
    stats = agent.learn(env, 3 * 100)
    assert stats["train/steps"] == 300 and np.isfinite(stats["loss/critic"])


# ----- layout, determinism, switching -----------------------------------------------------------------
def test_dqn_buffer_keeps_each_agents_transitions_and_masks_dead_agents():
    env = BitMatch()
    agent = make("dqn", env, n_step=3)
    agent.learn(env, 21)  # one episode: 7 vector steps of 3 rows
    valid = agent.buffer.valid[:21].reshape(7, 3)
    np.testing.assert_array_equal(valid.sum(0), [3, 5, 7])  # a0 acts 3 steps, a1 5, a2 7
    term = agent.buffer.terminated[:21].reshape(7, 3)
    trunc = agent.buffer.truncated[:21].reshape(7, 3)
    assert term[2, 0] and term[4, 1] and trunc[6, 2] and not trunc[6, 0]
    assert agent.buffer.num_valid == 15


@pytest.mark.parametrize("name", ["dqn", "td3", "q-learning"])
def test_same_seed_gives_identical_weights_on_a_parallel_env(name):
    def run(seed):
        env = BitMatch() if name != "td3" else BanditSwarm()
        agent = make(name, env, seed=seed)
        agent.learn(env, 150)
        return agent.get_weights()

    assert_weights_equal(run(3), run(3))
    assert any(not np.array_equal(v, run(4)[k]) for k, v in run(3).items())


@pytest.mark.parametrize("name", ["dqn", "sac", "sarsa"])
def test_switching_between_single_and_parallel_envs(name):
    single = gym.make("CartPole-v1") if name != "sac" else gym.make("Pendulum-v1")
    parallel = BitMatch() if name != "sac" else None
    if name == "sac":  # same spaces as Pendulum: a 2-robot vector of Pendulums stands in for the swarm
        parallel = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
        agent = make(name, parallel)
    else:
        kw = dict(bins=(2,), low=(-3.0,), high=(3.0,)) if name == "sarsa" else {}
        agent = make(name, gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync"), **kw)
        parallel = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
    agent.learn(single, 60)
    agent.learn(parallel, 60)
    stats = agent.learn(single, 60)
    assert stats["train/steps"] == 180


def test_a_parallel_env_with_other_spaces_is_refused():
    agent = make("dqn", BitMatch())
    with pytest.raises(AgentError, match="does not match"):
        agent.learn(cv2x_parallel(), 10)
    with pytest.raises(AgentError, match="ParallelEnv"):
        agent.learn(object(), 10)


# ----- learning with shared parameters ----------------------------------------------------------------
def _bitmatch_accuracy(agent) -> float:
    return float(np.mean([agent.act(np.eye(2, dtype=np.float32)[b], explore=False) == b for b in (0, 1)]))


@pytest.mark.parametrize("name", ["dqn", "q-learning", "sarsa"])
def test_value_based_agents_learn_bitmatch_with_shared_parameters(name):
    env = BitMatch()
    agent = make(name, env, **({"lr": 1e-2} if name == "dqn" else {}))
    agent.learn(env, 900)
    stats = agent.learn(env, 300)
    # per agent-episode the optimum averages 5 (3, 5, 7 steps of reward 1); random play earns half
    assert stats["train/episode_return"] > 3.5, stats
    assert _bitmatch_accuracy(agent) == 1.0


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_continuous_agents_learn_the_bandit_swarm_with_shared_parameters(name):
    env = BanditSwarm()
    agent = make(name, env, **BANDIT)
    agent.learn(env, 600)  # 4 agents' transitions feed one buffer: 500 updates
    rng = np.random.default_rng(0)
    random_reward = mean_reward(lambda _: rng.uniform(-1.0, 3.0, 1).astype(np.float32))
    learned = mean_reward(lambda o: agent.act(o, explore=False))
    assert random_reward < -1.5
    assert learned > 0.1 * random_reward, (learned, random_reward)
