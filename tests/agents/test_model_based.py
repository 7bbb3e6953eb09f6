"""The FEMRL client learner (agents/model_based.py): env steps are counted exactly, the policy is updated from
model samples only, the dynamics ensemble learns, distillation matches its teachers, bad spaces are refused."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers frl/* envs)
from agents import AGENTS
from agents.base import AgentError
from agents.model_based import DynamicsEnsemble, ModelBasedAgent, distill, prediction_error

torch.set_num_threads(1)

TINY = dict(ensemble_size=3, model_hidden=(32, 32), model_updates=150, kd_samples=64, distill_steps=100,
            rollout_batch=32, policy_updates=40, updates_per_model_step=4, batch_size=32, hidden_sizes=(32,),
            exploration_steps=100)


class CountingEnv(gym.Wrapper):
    """Counts steps; refuses any step while ``forbid`` is set."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0
        self.forbid = False

    def step(self, action):
        if self.forbid:
            raise AssertionError("env.step called during a policy update")
        self.steps += 1
        return self.env.step(action)


def transitions(env: gym.Env, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` real transitions under uniformly random actions (held-out data)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    O, A, N = [], [], []
    for _ in range(n):
        a = int(rng.integers(env.action_space.n))
        nxt, _, term, trunc, _ = env.step(a)
        O.append(obs), A.append(a), N.append(nxt)
        obs = env.reset()[0] if term or trunc else nxt
    return np.array(O, np.float32), np.array(A), np.array(N, np.float32)


def test_registered_under_its_cli_name():
    assert AGENTS["femrl"] is ModelBasedAgent


def test_learn_takes_exactly_num_steps_env_steps_and_policy_updates_take_none():
    env = CountingEnv(gym.make("CartPole-v1"))
    agent = ModelBasedAgent(env.observation_space, env.action_space, seed=0, **TINY)
    stats = agent.learn(env, 150)  # the model is untrained before this call: no policy update yet
    assert env.steps == 150 and stats["train/updates"] == 0
    assert agent.net.model.fits.item() == 1.0  # standalone: its own ensemble was distilled
    q_before = {k: v for k, v in agent.get_weights().items() if k.startswith("q.")}
    stats = agent.learn(env, 70)
    assert env.steps == 220 and stats["train/steps"] == 220
    assert stats["train/updates"] == TINY["policy_updates"] and stats["train/imagined_steps"] > 0
    assert stats["train/env_steps_in_policy_updates"] == 0
    assert any(not np.array_equal(v, agent.get_weights()[k]) for k, v in q_before.items())
    # the policy update on its own: the env refuses every step, the Q-network still changes
    env.forbid = True
    q_before = {k: v for k, v in agent.get_weights().items() if k.startswith("q.")}
    agent.improve_policy()
    assert any(not np.array_equal(v, agent.get_weights()[k]) for k, v in q_before.items())
    assert env.steps == 220


def test_the_dynamics_ensemble_learns_prediction_error_drops():
    env = gym.make("CartPole-v1")
    agent = ModelBasedAgent(env.observation_space, env.action_space, seed=1, **{**TINY, "model_updates": 400})
    held = transitions(gym.make("CartPole-v1"), 300, seed=7)
    agent.learn(env, 400)
    trained = prediction_error(agent.net.ensemble, *held)
    fresh = ModelBasedAgent(env.observation_space, env.action_space, seed=1, **TINY)
    # an untrained model with the trained one's standardisation: the error drop is the learning
    fresh.net.ensemble.load_state_dict({**fresh.net.ensemble.state_dict(),
                                        **{k: v for k, v in agent.net.ensemble.state_dict().items()
                                           if not k.startswith("layers.")}})
    untrained = prediction_error(fresh.net.ensemble, *held)
    persist = float(np.mean((held[0] - held[2]) ** 2))  # predicting "nothing moves"
    assert trained < 0.1 * untrained and trained < 0.2 * persist, (trained, untrained, persist)


def test_distillation_matches_the_teachers_mixture_mean():
    gen = np.random.default_rng(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        teachers = [DynamicsEnsemble(2, 3, 2, (16,)) for _ in range(2)]
        student = DynamicsEnsemble(1, 3, 2, (32, 32))
    states = gen.normal(size=(200, 3)).astype(np.float32)
    obs = torch.as_tensor(states)
    before = [student.predict(obs, torch.zeros(200, dtype=torch.long))[0][0].detach()]
    distill(student, teachers, [1.0, 3.0], states, steps=600, batch_size=128, lr=3e-3, rng=gen)
    with torch.no_grad():
        a = torch.ones(200, dtype=torch.long)
        want = 0.25 * teachers[0].predict(obs, a)[0].mean(0) + 0.75 * teachers[1].predict(obs, a)[0].mean(0)
        got = student.predict(obs, a)[0][0]
        err, base = torch.mean((got - want) ** 2), torch.mean((before[0] - want) ** 2)
    assert student.fits.item() == 1.0
    assert err < 0.05 * base, (float(err), float(base))


@pytest.mark.parametrize(("env_id", "what"), [("FrozenLake-v1", "observation"), ("Pendulum-v1", "action")])
def test_refuses_spaces_it_cannot_model_naming_them(env_id, what):
    env = gym.make(env_id)
    with pytest.raises(AgentError, match=f"femrl .*{what}|femrl supports Discrete action"):
        ModelBasedAgent(env.observation_space, env.action_space, seed=0)


def test_bad_hyperparameter_is_named():
    env = gym.make("CartPole-v1")
    with pytest.raises(AgentError, match="rollout_length=0"):
        ModelBasedAgent(env.observation_space, env.action_space, seed=0, rollout_length=0)
