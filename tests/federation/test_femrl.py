"""FEMRL's server and client halves (federation/strategies/femrl.py).

The defining test: on CartPole clients with different pole lengths, the model the server distils from the
clients' ensembles predicts held-out transitions of the union of the clients' environments better than each
client's own ensemble does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers frl/* envs)
from agents.dqn import DQNAgent
from agents.model_based import DynamicsEnsemble, ModelBasedAgent, prediction_error
from envs.cartpole_hetero import CartPoleHeteroConfig
from federation.client import Client
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.femrl import FEMRL
from federation.types import FederationError
from tests.agents.test_model_based import transitions

torch.set_num_threads(1)

AGENT = dict(ensemble_size=3, model_hidden=(32, 32), model_updates=400, kd_samples=200, rollout_batch=32,
             policy_updates=20, batch_size=32, hidden_sizes=(32,), exploration_steps=10**6,
             exploration_initial_eps=1.0, exploration_final_eps=1.0, local_distill=False)
POLES = (0.1, 0.5, 0.9)  # Jin et al. 2022's range of half pole lengths


def make_env(half_pole_length: float) -> gym.Env:
    return gym.make("frl/CartPoleHetero-v0", config=CartPoleHeteroConfig(half_pole_length=half_pole_length))


def make_client(cid: int, pole: float, seed: int, agent_kw: dict | None = None) -> Client:
    env = make_env(pole)
    env.reset(seed=seed)
    kw = {**AGENT, **(agent_kw or {})}
    return Client(cid, env, make_env(pole), lambda: ModelBasedAgent(env.observation_space, env.action_space,
                                                                    seed=seed, **kw),
                  steps_per_round=500, rng=np.random.default_rng(seed))


def test_registered():
    assert STRATEGIES["femrl"] is FEMRL
    assert FEMRL.agent_overrides == {"local_distill": False}


def test_distilled_model_beats_every_clients_own_ensemble_on_the_union_of_their_data():
    clients = [make_client(i, pole, seed=10 + i) for i, pole in enumerate(POLES)]
    strategy = make_strategy("femrl", distill_steps=1500)
    strategy.reseed(np.random.SeedSequence(3))
    for c in clients:
        c.use(strategy.client_hook())
    global_w = clients[0].agent.get_shared_weights()
    ins = strategy.configure_train(1, global_w, [c.client_id for c in clients])
    results = [c.fit(i) for c, i in zip(clients, ins, strict=True)]
    new = strategy.aggregate_train(1, global_w, results)
    distilled = DynamicsEnsemble.from_weights(new, "model.")
    assert distilled.fits.item() == 1.0
    held = [transitions(make_env(pole), 400, seed=100 + i) for i, pole in enumerate(POLES)]
    union = tuple(np.concatenate(parts) for parts in zip(*held, strict=True))
    distilled_err = prediction_error(distilled, *union)
    own_errs = [prediction_error(c.agent.net.ensemble, *union) for c in clients]
    assert all(distilled_err < e for e in own_errs), (distilled_err, own_errs)
    # ... and each client's ensemble is the better model of its own environment (the heterogeneity is real)
    assert all(prediction_error(c.agent.net.ensemble, *h) < prediction_error(distilled, *h) * 1.5
               for c, h in zip(clients, held, strict=True))


def test_broadcast_is_the_distilled_model_and_policy_and_clients_keep_their_ensembles():
    clients = [make_client(i, pole, seed=20 + i, agent_kw={"model_updates": 20}) for i, pole in enumerate(POLES[:2])]
    strategy = make_strategy("femrl", distill_steps=20)
    strategy.reseed(np.random.SeedSequence(4))
    for c in clients:
        c.use(strategy.client_hook())
    global_w = clients[0].agent.get_shared_weights()
    ins = strategy.configure_train(1, global_w, [0, 1])
    assert all(k.startswith(("model.", "q.")) for i in ins for k in i.weights)
    results = [c.fit(i) for c, i in zip(clients, ins, strict=True)]
    assert all(any(k.startswith("ensemble.") for k in r.weights) and "kd_states" in r.weights for r in results)
    new = strategy.aggregate_train(1, global_w, results)
    own = clients[1].agent.get_weights()
    (ins2,) = strategy.configure_train(2, new, [1])
    weights, _ = clients[1].hook.receive(clients[1], ins2)
    clients[1].agent.set_weights(weights)
    after = clients[1].agent.get_weights()
    for k in own:
        if k.startswith("ensemble.") or k == "kd_states":
            np.testing.assert_array_equal(after[k], own[k], err_msg=k)
        else:
            np.testing.assert_array_equal(after[k], new[k], err_msg=k)
    # the Q-networks are averaged (equal sample counts)
    k = next(k for k in new if k.startswith("q."))
    np.testing.assert_allclose(new[k], 0.5 * (results[0].weights[k] + results[1].weights[k]), rtol=1e-6)
    assert strategy.round_metrics(1)["femrl/distill_loss"] >= 0


def test_refuses_envs_and_agents_it_cannot_model_in_one_line():
    hook = FEMRL().client_hook()
    lake = gym.make("FrozenLake-v1")
    c = Client(0, lake, gym.make("FrozenLake-v1"),
               lambda: DQNAgent(lake.observation_space, lake.action_space, seed=0), steps_per_round=10)
    with pytest.raises(FederationError, match=r"femrl cannot model env 'FrozenLake-v1'.*allowed: .*1-D Box"):
        hook.attach(c)
    cart = gym.make("CartPole-v1")
    c = Client(0, cart, gym.make("CartPole-v1"),
               lambda: DQNAgent(cart.observation_space, cart.action_space, seed=0), steps_per_round=10)
    with pytest.raises(FederationError, match="needs agent 'femrl'.*got agent 'dqn'"):
        hook.attach(c)


def test_bad_parameter_is_named():
    with pytest.raises(FederationError, match="distill_steps=0"):
        make_strategy("femrl", distill_steps=0)
