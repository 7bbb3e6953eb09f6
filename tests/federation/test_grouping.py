"""Grouping by environment type (Nadiger et al. 2019): groups recovered from observed dynamics on a constructed
case; the body federated across groups, each head only within its group; periodic regrouping; where it
differs from IFCA (loss-based choice collapses to one cluster, env-type grouping separates); bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.grouping import Grouping, dynamics_signature, kmeans, signature_features
from federation.strategies.ifca import IFCA
from federation.types import FederationError, FitResult

torch.set_num_threads(1)
ENV = "frl/CartPoleHetero-v0"
LENGTHS = (0.1, 0.9, 0.12, 0.8)  # env types: short poles {0, 2}, long poles {1, 3}


def _clients(lengths=LENGTHS, steps=150):
    cls = agent_class("dqn")
    out = []
    for i, length in enumerate(lengths):
        make = lambda length=length: gym.make(ENV, half_pole_length=length)  # noqa: E731
        env = make()
        env.reset(seed=i)
        out.append(Client(i, env, make(), lambda env=env, i=i: cls(env.observation_space, env.action_space, seed=i,
                                                                   hidden_sizes=(16,), learning_starts=10),
                          steps_per_round=steps, make_env=make, rng=np.random.default_rng(100 + i)))
    return out


def _same_partition(a, b):
    n = len(a)
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(n) for j in range(n))


def test_registered():
    assert STRATEGIES["grouping"] is Grouping


def test_groups_are_recovered_from_observed_dynamics():
    clients = _clients(steps=20)  # the probe's steps come on top of the round's budget
    s = make_strategy("grouping", probe_steps=150)
    s.reseed(np.random.SeedSequence(0))
    for c in clients:
        c.use(s.client_hook())
    w = clients[0].agent.get_shared_weights()
    ins = s.configure_train(1, w, [0, 1, 2, 3])
    assert all(i.config["probe"] == 1 for i in ins)
    res = [c.fit(i) for c, i in zip(clients, ins, strict=True)]
    assert all(r.num_samples == 170 and r.metrics["grouping/probe_steps"] == 150 for r in res)
    s.aggregate_train(1, w, res)
    groups = [s.groups[c] for c in range(4)]
    assert _same_partition(groups, [0, 1, 0, 1]), groups
    assert s.round_metrics(1) == {f"grouping/group/{c}": float(g) for c, g in enumerate(groups)}
    assert s.round_metrics(2) == {} and all(i.config["probe"] == 0 for i in s.configure_train(2, w, [0, 1]))


def test_signature_is_seeded_and_separates_pole_lengths():
    sig = lambda length, seed: dynamics_signature(gym.make(ENV, half_pole_length=length), 200,  # noqa: E731
                                                  np.random.default_rng(seed))
    np.testing.assert_array_equal(sig(0.3, 1), sig(0.3, 1))
    f = signature_features(np.stack([sig(0.1, 1), sig(0.12, 2), sig(0.9, 3), sig(0.8, 4)]))
    d = np.linalg.norm(f[:, None] - f[None], axis=-1)
    assert max(d[0, 1], d[2, 3]) < 0.5 * min(d[0, 2], d[0, 3], d[1, 2], d[1, 3])


def test_kmeans_recovers_blobs_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (5, 3)), rng.normal(5, 0.1, (4, 3)), rng.normal(-5, 0.1, (3, 3))])
    labels = kmeans(x, 3, np.random.default_rng(1))
    assert labels.tolist() == [0] * 5 + [1] * 4 + [2] * 3
    np.testing.assert_array_equal(labels, kmeans(x, 3, np.random.default_rng(2)))


def _result(cid, body, head, sig=None, n=10):
    metrics = {f"grouping/sig/{i}": float(v) for i, v in enumerate(sig)} if sig is not None else {}
    return FitResult(cid, {"body.w": np.full(3, body, np.float32), "head.w": np.full(2, head, np.float32)}, n, metrics)


def _sig(center):
    # p=1 input, q=1 output: [p, q, W, sd_in, sd_out]
    return np.array([1.0, 1.0, center, 1.0, 1.0])


def test_body_is_federated_across_groups_and_heads_within():
    s = Grouping(num_groups=2)
    s.reseed(np.random.SeedSequence(0))
    w = {"body.w": np.zeros(3, np.float32), "head.w": np.zeros(2, np.float32)}
    sigs = [_sig(0.0), _sig(0.1), _sig(5.0), _sig(5.1)]
    res = [_result(c, body=c, head=10 * c, sig=sigs[c], n=n) for c, n in enumerate((10, 30, 20, 20))]
    new = s.aggregate_train(1, w, res)
    assert s.groups[0] == s.groups[1] != s.groups[2] == s.groups[3]
    np.testing.assert_allclose(new["body.w"], (0 * 10 + 1 * 30 + 2 * 20 + 3 * 20) / 80)  # across every client
    g_a, g_b = s.groups[0], s.groups[2]
    np.testing.assert_allclose(s.heads[g_a]["head.w"], (0 * 10 + 10 * 30) / 40)       # within group A
    np.testing.assert_allclose(s.heads[g_b]["head.w"], (20 * 20 + 30 * 20) / 40)      # within group B
    # each client trains from and is scored with the global body and its group's head
    for models in (s.configure_evaluate(2, new, [0, 1, 2, 3]),
                   {i.client_id: i.weights for i in s.configure_train(2, new, [0, 1, 2, 3])}):
        for c in range(4):
            np.testing.assert_allclose(models[c]["body.w"], new["body.w"])
            np.testing.assert_allclose(models[c]["head.w"], s.heads[s.groups[c]]["head.w"])
    # a later round without signatures keeps the groups; only the members' heads move
    res2 = [_result(0, 1.0, 7.0), _result(1, 1.0, 9.0), _result(2, 1.0, 100.0)]
    s.aggregate_train(2, new, res2)
    np.testing.assert_allclose(s.heads[g_a]["head.w"], 8.0)
    np.testing.assert_allclose(s.heads[g_b]["head.w"], 100.0)


def test_periodic_regrouping_follows_the_signatures():
    s = Grouping(num_groups=2, regroup_every=3)
    s.reseed(np.random.SeedSequence(0))
    assert [r for r in range(1, 9) if s.probe_round(r)] == [1, 4, 7]
    w = {"body.w": np.zeros(3, np.float32), "head.w": np.zeros(2, np.float32)}
    s.aggregate_train(1, w, [_result(c, 0, 0, _sig(x)) for c, x in enumerate((0.0, 0.0, 5.0, 5.0))])
    first = dict(s.groups)
    s.aggregate_train(4, w, [_result(c, 0, 0, _sig(x)) for c, x in enumerate((0.0, 5.0, 0.0, 5.0))])
    assert _same_partition([first[c] for c in range(4)], [0, 0, 1, 1])
    assert _same_partition([s.groups[c] for c in range(4)], [0, 1, 0, 1])


def test_differs_from_ifca_where_loss_based_choice_and_env_types_disagree():
    """One cluster model is better on every client (as early in training): IFCA's loss-based choice sends every
    client to it; grouping still separates the short-pole from the long-pole clients."""
    clients = _clients(steps=20)
    ifca = IFCA(num_clusters=2)
    ifca.reseed(np.random.SeedSequence(0))
    w = clients[0].agent.get_shared_weights()
    ins = ifca.configure_train(1, w, [0, 1, 2, 3])
    best = ifca.models[1]
    for c in clients:
        c.use(ifca.client_hook())
        # the client's objective: model 1 scores higher on every env type
        c.evaluate = lambda m, seeds, best=best: {"return": 100.0 if all(np.array_equal(m[k], best[k]) for k in m)
                                                   else 10.0}
    ifca.aggregate_train(1, w, [c.fit(i) for c, i in zip(clients, ins, strict=True)])
    assert set(ifca.assignment.values()) == {1}  # everybody in one cluster

    clients = _clients(steps=20)
    grouping = Grouping(num_groups=2, probe_steps=150)
    grouping.reseed(np.random.SeedSequence(0))
    for c in clients:
        c.use(grouping.client_hook())
    ins = grouping.configure_train(1, w, [0, 1, 2, 3])
    grouping.aggregate_train(1, w, [c.fit(i) for c, i in zip(clients, ins, strict=True)])
    assert _same_partition([grouping.groups[c] for c in range(4)], [0, 1, 0, 1])


def test_runs_in_the_round_loop_with_probe_steps_in_the_budget():
    clients = _clients(lengths=(0.1, 0.9, 0.15), steps=120)
    s = make_strategy("grouping", probe_steps=60)
    hist = run_federation(clients, s, rounds=2, seed=np.random.SeedSequence(1), eval_seeds=[0])
    samples = [v for r, c, m, v in hist.rows if m == "fit/samples"]
    assert samples == [180.0] * 3 + [120.0] * 3  # the probe's env steps are counted in the samples
    probes = [(r, c) for r, c, m, _ in hist.rows if m == "grouping/probe_steps"]
    assert sorted(probes) == [(1, 0), (1, 1), (1, 2)]
    assert sum(1 for _, c, m, _ in hist.rows if m.startswith("grouping/group/") and c == -1) == 3
    assert _same_partition([s.groups[c] for c in range(3)], [0, 1, 0])


def test_auto_head_finds_dqn_and_actor_critic_heads():
    s = Grouping()
    assert s.params()["head"] == "auto"
    assert s.is_head("head.weight") and s.is_head("head.value.bias") and s.is_head("actor.head.weight")
    assert s.is_head("critic.head.bias") and not s.is_head("body.0.weight") and not s.is_head("actor.body.0.bias")
    assert Grouping(head="actor.head.").is_head("actor.head.bias") and not Grouping(head="actor.head.").is_head(
        "critic.head.bias")


def test_bad_input_is_refused_with_one_line():
    with pytest.raises(FederationError, match="num_groups=5 is more than the 3 clients"):
        make_strategy("grouping", num_groups=5).check_federation(3, 3)
    with pytest.raises(FederationError, match="probe_steps=1"):
        make_strategy("grouping", probe_steps=1)
    clients = _clients(lengths=(0.5,))
    with pytest.raises(FederationError, match=r"head='actor\.head\.'.*allowed: this agent's head prefixes head\."):
        clients[0].use(make_strategy("grouping", head="actor.head.").client_hook())


def test_worker_processes_are_bitwise_equal_to_in_process():
    import dataclasses

    from scenarios.experiment import run_experiment
    from scenarios.heterogeneity import QUICK

    exp = dataclasses.replace(QUICK, n_clients=3, rounds=2, steps_per_round=40, eval_every=1, eval_episodes=1,
                              final_eval_episodes=1, baselines=(), seed=5, strategies=("grouping:probe_steps=20",),
                              agent_config={**QUICK.agent_config, "learning_starts": 16, "batch_size": 8,
                                            "hidden_sizes": (16, 16)})
    a, b = run_experiment(exp), run_experiment(dataclasses.replace(exp, backend="processes", workers=2))
    assert a.rows == b.rows
    assert any(m.startswith("grouping/group/") for _, _, _, m, _ in a.rows)
