"""APFL: the personal model is the α-mixture of the local and the global model, α adapts within [0, 1]."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.apfl import mix
from federation.types import FederationError

ENV = "frl/CartPoleHetero-v0"


def _clients(n=2, steps=60):
    cls = agent_class("dqn")
    out = []
    for cid in range(n):
        length = 0.2 + 0.6 * cid
        env = gym.make(ENV, half_pole_length=length)
        env.reset(seed=cid)
        out.append(Client(cid, env, gym.make(ENV, half_pole_length=length),
                          lambda env=env: cls(env.observation_space, env.action_space, seed=3, learning_starts=20,
                                              batch_size=16, hidden_sizes=(16,)),
                          steps_per_round=steps, make_env=lambda length=length: gym.make(ENV, half_pole_length=length)))
    return out


def test_mix_is_the_convex_combination():
    v, w = {"a": np.array([1.0, 3.0], np.float32)}, {"a": np.array([5.0, -1.0], np.float32)}
    np.testing.assert_allclose(mix(0.25, v, w)["a"], [4.0, 0.0])
    assert mix(1.0, v, w)["a"].tolist() == [1.0, 3.0] and mix(0.0, v, w)["a"].tolist() == [5.0, -1.0]


def test_personal_model_is_alpha_v_plus_one_minus_alpha_global():
    clients = _clients()
    strat = make_strategy("apfl", alpha=0.3, adapt=0)
    hist = run_federation(clients, strat, rounds=2, seed=0, eval_seeds=(1,))
    hook = clients[1].hook
    assert hook.alpha == 0.3  # not adapted
    w = clients[1].agent.get_weights()
    w.update(hist.global_weights)
    personal = hook.personal_model(clients[1], hist.global_weights).get_weights()
    for k, v in hook.v.items():
        np.testing.assert_allclose(personal[k], 0.3 * v + 0.7 * w[k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(hook.v["head.weight"], w["head.weight"])  # the local model really is separate
    assert {m for _, _, m, _ in hist.rows} >= {"personal/return", "global/return", "apfl/alpha"}
    assert all(c.samples_seen == 2 * c.steps_per_round for c in clients)


def test_alpha_adapts_and_stays_a_weight():
    clients = _clients()
    hist = run_federation(clients, make_strategy("apfl", alpha=0.5, alpha_lr=50.0), rounds=3, seed=0,
                          eval_seeds=(1,))
    alphas = [v for _, _, m, v in hist.rows if m == "apfl/alpha"]
    assert all(0.0 <= a <= 1.0 for a in alphas)
    assert any(a != 0.5 for a in alphas)


def test_apfl_is_registered_and_checks_its_parameters():
    assert "apfl" in STRATEGIES
    with pytest.raises(FederationError, match=r"alpha=1\.5"):
        make_strategy("apfl", alpha=1.5)
