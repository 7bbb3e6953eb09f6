"""Tabular Q-learning and SARSA: learning on FrozenLake / CliffWalking, bootstrapping, state indexing, FedAvg
and the proximal term, refusals. (Seeds, weights, checkpoints and pickling of every agent:
test_agent_contract.py.)"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents import AGENTS as REGISTRY
from agents import AgentError
from agents.tabular import PRESETS, QLearningAgent, SARSAAgent, TabularConfig
from federation.strategies.fedavg import weighted_average
from tests.agents.common import ResetCounter

AGENTS = (QLearningAgent, SARSAAgent)
RUN_KEYS = ("env_kwargs", "total_steps")


def preset(env_id: str) -> tuple[dict, dict, int]:
    """(agent overrides, gymnasium.make kwargs, step budget) of a preset."""
    p = dict(PRESETS[env_id])
    return {k: v for k, v in p.items() if k not in RUN_KEYS}, p["env_kwargs"], p["total_steps"]


def make_agent(cls, env_id: str = "FrozenLake-v1", seed: int = 0, **kw):
    overrides, env_kwargs, _ = preset(env_id)
    env = gym.make(env_id, **env_kwargs)
    return cls(env.observation_space, env.action_space, seed=seed, **{**overrides, **kw}), env


def greedy_return(agent, env_id: str) -> float:
    env = gym.make(env_id, **PRESETS[env_id]["env_kwargs"])
    obs, _ = env.reset(seed=0)
    ret, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(agent.act(obs, explore=False))
        ret += float(r)
        done = term or trunc
    return ret


# ----- registration, basic runs --------------------------------------------------------------------------
def test_registered():
    for cls in AGENTS:  # the one table in agents/__init__.py
        assert REGISTRY[cls.name] is cls
    assert (QLearningAgent.name, SARSAAgent.name) == ("q-learning", "sarsa")


@pytest.mark.parametrize("cls", AGENTS)
def test_runs_and_continues_episode_across_calls(cls):
    agent, env = make_agent(cls, "CliffWalking-v1")
    env = ResetCounter(env)
    s1 = agent.learn(env, 150)
    assert s1["train/steps"] == 150 and np.isfinite(s1["loss/td"])
    assert env.resets == 1
    s2 = agent.learn(env, 150)
    assert s2["train/steps"] == 300
    assert env.resets == 1 + int(s1["train/episodes"] + s2["train/episodes"])  # no reset between calls
    assert agent.learn(env, 0)["train/steps"] == 300


@pytest.mark.parametrize("cls", AGENTS)
def test_truncation_bootstraps_termination_does_not(cls):
    """A one-state env with reward 1: truncated transitions bootstrap (Q grows past 1), terminated do not."""

    class OneState(gym.Env):
        observation_space = gym.spaces.Discrete(1)
        action_space = gym.spaces.Discrete(1)

        def __init__(self, terminate: bool) -> None:
            self.terminate = terminate

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return 0, {}

        def step(self, action):
            return 0, 1.0, self.terminate, not self.terminate, {}

    for terminate, expected in ((True, 1.0), (False, 1.0 / (1 - 0.5))):
        env = OneState(terminate)
        agent = cls(env.observation_space, env.action_space, alpha=0.5, gamma=0.5)
        agent.learn(env, 200)
        assert agent.q[0, 0] == pytest.approx(expected, rel=1e-4)


def test_box_observations_with_bins():
    env = gym.make("CartPole-v1")
    agent = QLearningAgent(env.observation_space, env.action_space, bins=(3, 3, 6, 6),
                           low=(-2.4, -3.0, -0.21, -3.0), high=(2.4, 3.0, 0.21, 3.0))
    assert agent.get_weights()["q_table"].shape == (3 * 3 * 6 * 6, 2)
    stats = agent.learn(env, 300)
    assert stats["train/steps"] == 300
    idx = agent._index
    assert idx(np.array([-9.0, -9.0, -9.0, -9.0])) == 0  # clipped to the first cell
    assert idx(np.array([9.0, 9.0, 9.0, 9.0])) == 3 * 3 * 6 * 6 - 1  # clipped to the last cell
    cell = np.unravel_index(idx(np.array([0.0, 2.9, -0.2, 0.0])), (3, 3, 6, 6))
    assert tuple(int(c) for c in cell) == (1, 2, 0, 3)
    # finite Box bounds are used when low/high are not given; one int of bins applies to every dimension
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    a = SARSAAgent(box, gym.spaces.Discrete(3), bins=4)
    assert a.n_states == 16 and a.act(np.array([0.9, -0.9], np.float32), explore=False) in (0, 1, 2)


def test_multidiscrete_observations():
    space = gym.spaces.MultiDiscrete([3, 4])
    agent = QLearningAgent(space, gym.spaces.Discrete(2))
    assert agent.n_states == 12 and agent._index(np.array([2, 3])) == 11


# ----- learning ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", AGENTS)
def test_solves_frozenlake_non_slippery(cls):
    agent, env = make_agent(cls, "FrozenLake-v1")
    agent.learn(env, preset("FrozenLake-v1")[2])
    assert greedy_return(agent, "FrozenLake-v1") == 1.0


def test_cliffwalking_q_learning_optimal_sarsa_safe():
    """Sutton & Barto Example 6.6: Q-learning learns the cliff-edge path (−13), SARSA a safer one."""
    budget = preset("CliffWalking-v1")[2]
    q, env = make_agent(QLearningAgent, "CliffWalking-v1")
    q.learn(env, budget)
    assert greedy_return(q, "CliffWalking-v1") == -13.0
    s, env = make_agent(SARSAAgent, "CliffWalking-v1")
    s.learn(env, budget)
    assert -17.0 <= greedy_return(s, "CliffWalking-v1") < -13.0


# ----- weights -----------------------------------------------------------------------------------------------
def test_weights_are_one_float32_table():
    a, _ = make_agent(QLearningAgent)
    w = a.get_weights()
    assert list(w) == ["q_table"] and w["q_table"].dtype == np.float32 and w["q_table"].shape == (16, 4)


def test_fedavg_of_two_tables_is_their_mean():
    """QAvg (Jin et al. 2022) in tabular form: FedAvg with equal sample counts averages the tables."""
    a, env_a = make_agent(QLearningAgent, seed=0)
    b, env_b = make_agent(SARSAAgent, seed=1)
    a.learn(env_a, 800)
    b.learn(env_b, 800)
    wa, wb = a.get_shared_weights(), b.get_shared_weights()
    avg = weighted_average([wa, wb], [800, 800])
    np.testing.assert_allclose(avg["q_table"], (wa["q_table"] + wb["q_table"]) / 2, rtol=0, atol=1e-7)
    weighted = weighted_average([wa, wb], [300, 100])
    np.testing.assert_allclose(weighted["q_table"], 0.75 * wa["q_table"] + 0.25 * wb["q_table"], atol=1e-6)
    a.set_weights(avg)
    np.testing.assert_array_equal(a.get_weights()["q_table"], avg["q_table"])


def test_prox_term_pulls_toward_anchor():
    anchor = {"q_table": np.full((16, 4), 5.0, np.float32)}
    dist = []
    for mu in (0.0, 1.0):
        a, env = make_agent(QLearningAgent, prox_mu=mu)
        a.set_weights(anchor)
        a.learn(env, 400)
        dist.append(float(np.abs(a.q - 5.0).sum()))
    assert dist[1] < 0.5 * dist[0]
    # set_anchor moves the anchor only; set_proximal validates μ (α·μ ≤ 1)
    a, env = make_agent(QLearningAgent)
    before = a.get_weights()["q_table"]
    a.set_anchor(anchor)
    np.testing.assert_array_equal(a.q, before)
    a.set_proximal(1.0)
    a.learn(env, 200)
    assert (a.q > 0).sum() > 0.5 * a.q.size  # pulled toward the 5.0 anchor from the 0.0 start
    with pytest.raises(AgentError, match="prox_mu"):
        a.set_proximal(-1.0)
    with pytest.raises(AgentError, match="prox_mu"):
        a.set_proximal(100.0)  # α = 0.5: α·μ > 1
    with pytest.raises(AgentError, match="anchor"):
        a.set_anchor({"q_table": np.zeros(3)})


# ----- refusals --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("obs_space", "act_space", "kw", "msg"),
    [
        (gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2), {}, "without bins"),
        (gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2), {"bins": 5}, "infinite bounds"),
        (gym.spaces.Box(-1, 1, (2, 2)), gym.spaces.Discrete(2), {"bins": 5}, "supports Discrete observations"),
        (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), {"bins": (2, 2)}, "1 or 3 entries"),
        (gym.spaces.Discrete(5), gym.spaces.Box(-1, 1, (1,)), {}, "Discrete action spaces only"),
        (gym.spaces.Discrete(5), gym.spaces.Discrete(2), {"bins": 3}, "Box observations only"),
        (gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), {"bins": 3, "low": 1.0, "high": 0.0}, "exceed"),
    ],
)
def test_unsupported_spaces(obs_space, act_space, kw, msg):
    with pytest.raises(AgentError, match=msg):
        QLearningAgent(obs_space, act_space, **kw)


def test_cartpole_without_bins_names_what_is_supported():
    env = gym.make("CartPole-v1")
    with pytest.raises(AgentError, match=r"SARSA supports Discrete observations.*bins="):
        SARSAAgent(env.observation_space, env.action_space)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"personal": "head"}, "no head"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"gamma": 1.1}, "gamma"),
        ({"exploration_steps": -1}, "exploration_steps"),
        ({"exploration_final_eps": float("nan")}, "exploration_final_eps"),
        ({"prox_mu": 20.0, "alpha": 0.1}, "alpha \\* prox_mu"),
        ({"bins": 0}, "bins"),
        ({"bins": "x"}, "bins"),
        ({"lr": 0.1}, "unknown Q-learning hyperparameter"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        QLearningAgent(gym.spaces.Discrete(4), gym.spaces.Discrete(2), **kw)


def test_config_coerces_and_is_frozen():
    cfg = TabularConfig(alpha=np.float32(0.25), exploration_steps=100.0, bins=[2, 3], low=-1)
    assert cfg.alpha == 0.25 and isinstance(cfg.alpha, float)
    assert cfg.exploration_steps == 100 and isinstance(cfg.exploration_steps, int)
    assert cfg.bins == (2, 3) and cfg.low == (-1.0,)
    with pytest.raises(AttributeError):
        cfg.alpha = 0.5  # type: ignore[misc]


def test_env_with_mismatched_spaces_refused():
    a, _ = make_agent(QLearningAgent, "FrozenLake-v1")
    with pytest.raises(AgentError, match="observation space"):
        a.learn(gym.make("CliffWalking-v1"), 10)
