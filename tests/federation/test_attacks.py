"""Byzantine attacks: spec parsing, the seeded choice of attackers, the poisoned uploads and envs, and the
strategy wrapper that attacks any method through its client hooks."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import agent_class
from federation.attacks import (
    ATTACKS,
    AttackHook,
    ByzantineStrategy,
    MaliciousClient,
    choose_malicious,
    make_attack,
    make_malicious,
    with_attack,
)
from federation.client import Client, ClientHook
from federation.server import run_federation
from federation.strategies import make_strategy
from federation.types import FederationError, FitIns

torch.set_num_threads(1)


def _client(cid=0, seed=0):
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    cls = agent_class("reinforce")
    return Client(cid, env, gym.make("CartPole-v1"),
                  lambda: cls(env.observation_space, env.action_space, seed=seed, n_steps=64, lr=1e-2),
                  steps_per_round=128, rng=np.random.default_rng(seed))


def _fit(client):
    ins = FitIns(client.client_id, client.agent.get_shared_weights())
    return ins.weights, client.fit(ins).weights


def test_registry_and_specs():
    assert set(ATTACKS) == {"sign-flip", "gaussian", "scale", "zero", "random-action", "reward-flip"}
    assert make_attack("sign-flip").k == 2.5
    assert make_attack("sign-flip:k=4").k == 4.0
    assert make_attack("gaussian:std=0.5").std == 0.5
    assert make_attack("scale:k=3").spec() == "scale:k=3"
    assert make_attack(" zero ").spec() == "zero"


@pytest.mark.parametrize("spec, words", [
    ("flip", ["unknown attack 'flip'", "sign-flip"]),
    ("sign-flip:q=1", ["no parameter 'q'", "allowed: k"]),
    ("gaussian:std=-1", ["std=-1", "allowed"]),
    ("scale:k=abc", ["k='abc'"]),
    ("zero:k=1", ["no parameter 'k'", "(none)"]),
    ("sign-flip:k", ["bad parameter"]),
])
def test_bad_specs_are_one_line_errors(spec, words):
    with pytest.raises(FederationError) as e:
        make_attack(spec)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_choose_malicious_is_seeded_and_sized():
    a = choose_malicious(10, 0.3, 7)
    assert a == choose_malicious(10, 0.3, np.random.SeedSequence(7)) and len(a) == 3
    assert all(0 <= c < 10 for c in a) and list(a) == sorted(set(a))
    assert len({choose_malicious(10, 0.3, s) for s in range(20)}) > 1  # the seed matters
    assert choose_malicious(10, 0.0, 0) == () and len(choose_malicious(7, 1.0, 0)) == 7
    for bad in (-0.1, 1.5, float("nan"), "0.3"):
        with pytest.raises(FederationError, match="fraction"):
            choose_malicious(10, bad, 0)


@pytest.mark.parametrize("spec", ["sign-flip:k=2.5", "scale:k=10", "zero", "gaussian:std=1"])
def test_update_attacks_poison_the_change_of_the_received_model(spec):
    honest_client, bad_client = _client(), _client()
    received, honest = _fit(honest_client)
    make_malicious(bad_client, spec, rng=np.random.default_rng(1))
    assert isinstance(bad_client, MaliciousClient) and isinstance(bad_client.hook, AttackHook)
    received_b, poisoned = _fit(bad_client)
    for k in received:
        np.testing.assert_array_equal(received[k], received_b[k])
        delta = honest[k].astype(np.float64) - received[k]
        got = poisoned[k].astype(np.float64) - received[k]
        assert poisoned[k].dtype == honest[k].dtype and poisoned[k].shape == honest[k].shape
        if spec.startswith("sign-flip"):
            np.testing.assert_allclose(got, -2.5 * delta, atol=1e-5)
        elif spec.startswith("scale"):
            np.testing.assert_allclose(got, 10 * delta, atol=1e-5)
        elif spec == "zero":
            np.testing.assert_allclose(got, 0.0, atol=1e-6)
    if spec.startswith("gaussian"):
        noise = np.concatenate([(poisoned[k].astype(np.float64) - received[k]).ravel() for k in received])
        assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.0) < 0.05


def test_malicious_client_survives_the_round_loop_installing_a_method_hook():
    c = make_malicious(_client(), "zero")
    c.use(make_strategy("fedprox", mu=0.1).client_hook())  # what run_federation does before round 1
    assert isinstance(c.hook, AttackHook) and type(c.hook.inner).__name__ == "ProximalHook"
    received, up = _fit(c)
    for k in received:
        np.testing.assert_allclose(up[k], received[k], atol=1e-6)


def test_reward_flip_negates_what_the_client_learns_from_but_not_its_evaluation():
    c = make_malicious(_client(), "reward-flip:k=2", rng=np.random.default_rng(0))
    c.use(ClientHook())  # installing another hook wraps the env only once
    c.env.reset(seed=0)
    _, r, *_ = c.env.step(0)
    assert r == -2.0
    assert isinstance(c.env.env, gym.Wrapper) and not isinstance(c.env.env, type(c.env))
    c.eval_env.reset(seed=0)
    assert c.eval_env.step(0)[1] == 1.0


def test_random_action_executes_seeded_random_actions():
    env = make_malicious(_client(), "random-action", rng=np.random.default_rng(3)).env
    seen = [env.action(0) for _ in range(200)]
    assert set(seen) == {0, 1}  # the agent's choice (always 0) is ignored
    env2 = make_malicious(_client(), "random-action", rng=np.random.default_rng(3)).env
    assert [env2.action(0) for _ in range(200)] == seen


def test_behavioural_attack_refuses_a_non_gymnasium_env():
    c = _client()
    c.env = object()
    with pytest.raises(FederationError, match="Gymnasium env"):
        make_malicious(c, "reward-flip")


def test_strategy_wrapper_attacks_exactly_the_chosen_clients():
    clients = [_client(i, seed=i) for i in range(4)]
    inner = make_strategy("fedavg")
    strategy = with_attack(inner, "zero", [2], seed=5)
    assert isinstance(strategy, ByzantineStrategy) and strategy.name == "fedavg"
    assert strategy.params()["attack"] == "zero" and strategy.params()["malicious_clients"] == "2"
    assert with_attack(inner, "none", [2], seed=5) is inner and with_attack(inner, "zero", [], seed=5) is inner
    hist = run_federation(clients, strategy, rounds=1, seed=0)
    flagged = {c for _, c, m, _ in hist.rows if m == "byzantine/malicious"}
    assert flagged == {2}
    # the attacker's upload equals what it received (zero attack); honest ones moved
    assert all(not isinstance(c, MaliciousClient) for c in clients)


def test_strategy_wrapper_poisons_only_the_malicious_upload():
    clients = [_client(i, seed=i) for i in range(3)]
    strategy = with_attack(make_strategy("fedavg"), "zero", [1], seed=0)
    for c in clients:
        c.use(strategy.client_hook())
    w = clients[0].agent.get_shared_weights()
    ups = [c.fit(FitIns(c.client_id, w)).weights for c in clients]
    for k in w:
        np.testing.assert_allclose(ups[1][k], w[k], atol=1e-6)
        assert not np.allclose(ups[0][k], w[k]) or not np.allclose(ups[2][k], w[k])
