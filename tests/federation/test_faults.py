"""Faulty clients never end the run nor corrupt the global model: a raising fit, a NaN update, a wrongly shaped
update and a timed-out fit are each left out of the round with the reason recorded."""

import time

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.faults import FaultInjector, screen_result
from federation.server import SystemConfig, summarize_system
from federation.strategies import FedAvg, make_strategy
from federation.types import FederationError, FitResult


def _clients(n=3, steps=60):
    out = []
    for cid in range(n):
        env = gym.make("frl/CartPoleHetero-v0")
        env.reset(seed=cid)
        cls = agent_class("dqn")
        out.append(Client(cid, env, gym.make("frl/CartPoleHetero-v0"),
                          lambda env=env, cid=cid, cls=cls: cls(env.observation_space, env.action_space, seed=cid,
                                                       learning_starts=20, hidden_sizes=(16,)),
                          steps_per_round=steps))
    return out


def _finite(w):
    return all(np.all(np.isfinite(v)) for v in w.values())


def _spoil(client, when, how):
    """Make ``client``'s fit misbehave in the rounds of ``when``."""
    fit = client.fit
    calls = {"n": 0}

    def spoiled(ins):
        calls["n"] += 1
        res = fit(ins)
        if calls["n"] in when:
            return how(res)
        return res
    client.fit = spoiled


def _raise(res):
    raise RuntimeError("device out of memory")


def _nan(res):
    k = sorted(res.weights)[0]
    w = dict(res.weights)
    w[k] = np.full_like(w[k], np.nan)
    return FitResult(res.client_id, w, res.num_samples, res.metrics)


def _shape(res):
    k = sorted(res.weights)[0]
    return FitResult(res.client_id, {**res.weights, k: np.zeros((3, 3), np.float32)}, res.num_samples)


@pytest.mark.parametrize(("how", "kind"), [(_raise, "exception"), (_nan, "nonfinite"), (_shape, "shape")])
def test_a_faulty_client_is_left_out_and_the_run_finishes(how, kind):
    clients = _clients()
    _spoil(clients[1], {2}, how)
    hist = run_federation(clients, FedAvg(), rounds=3, seed=0, eval_every=3, eval_seeds=(1,))
    faults = [(r, c, m) for r, c, m, _ in hist.rows if m.startswith("fault/")]
    assert faults == [(2, 1, f"fault/{kind}")]
    assert hist.faults[0][:2] == (2, 1) and kind in hist.faults[0][2]
    assert _finite(hist.global_weights)
    # round 2 aggregated the two healthy clients only
    assert sorted(c for r, c, m, _ in hist.rows if m == "fit/samples" and r == 2) == [0, 2]
    assert summarize_system(hist)["faults"][kind] == 1


def test_a_timed_out_fit_is_discarded():
    clients = _clients(2)
    fit = clients[0].fit

    def slow(ins):
        time.sleep(0.3)
        return fit(ins)
    clients[0].fit = slow
    hist = run_federation(clients, FedAvg(), rounds=2, seed=0, eval_every=2, eval_seeds=(1,),
                          system=SystemConfig(fit_timeout_s=0.25))
    assert [(r, c) for r, c, m, _ in hist.rows if m == "fault/timeout"] == [(1, 0), (2, 0)]
    assert _finite(hist.global_weights)


def test_too_few_answers_skip_the_round_and_keep_the_model():
    clients = _clients(2)
    init = {k: v.copy() for k, v in clients[0].agent.get_shared_weights().items()}
    for c in clients:
        _spoil(c, {1, 2}, _raise)
    hist = run_federation(clients, FedAvg(), rounds=2, seed=0, eval_every=2, eval_seeds=(1,))
    assert [r for r, c, m, _ in hist.rows if m == "round/skipped"] == [1, 2]
    for k, v in init.items():
        np.testing.assert_array_equal(hist.global_weights[k], v)


def test_an_aggregator_refusing_the_survivors_skips_the_round():
    clients = _clients(4)
    _spoil(clients[3], {1}, _raise)  # Krum with f=1 needs n > 2f + 2 = 4 answers; 3 come back
    hist = run_federation(clients, make_strategy("krum", num_byzantine=1), rounds=1, seed=0, eval_seeds=(1,))
    assert [r for r, c, m, _ in hist.rows if m == "round/skipped"] == [1]
    assert any("aggregate" in reason for _, _, reason in hist.faults)


def test_integer_uploads_are_cast_to_the_model_dtype():
    ref = {"w": np.zeros(3, np.float32)}
    res, reason = screen_result(FitResult(0, {"w": np.array([1, 2, 3], np.int64)}, 5), ref)
    assert reason is None and res.weights["w"].dtype == np.float32
    _, reason = screen_result(FitResult(0, {"w": np.array(["a", "b", "c"])}, 5), ref)
    assert reason.startswith("shape")


def test_injected_faults_are_seeded_and_the_run_survives():
    def run(p, seed):
        clients = _clients()
        return run_federation(clients, FedAvg(), rounds=4, seed=seed, eval_every=4, eval_seeds=(1,),
                              system=SystemConfig(faults=FaultInjector(p)))
    a, b = run(0.5, 7), run(0.5, 7)
    fa = [(r, c, m) for r, c, m, _ in a.rows if m.startswith(("fault/", "round/"))]
    assert fa and fa == [(r, c, m) for r, c, m, _ in b.rows if m.startswith(("fault/", "round/"))]
    assert _finite(a.global_weights)
    assert len({m for _, _, m in fa if m.startswith("fault/")}) >= 2   # several kinds drawn
    clean = run(0.0, 7)
    assert not [m for _, _, m, _ in clean.rows if m.startswith("fault/")]


def test_fault_knobs_are_validated():
    with pytest.raises(FederationError, match="faults=1.5"):
        FaultInjector(1.5)
    with pytest.raises(FederationError, match="min_clients=0"):
        SystemConfig(min_clients=0)
    with pytest.raises(FederationError, match="fit_timeout_s=-1"):
        SystemConfig(fit_timeout_s=-1)


def test_a_client_counted_twice_is_refused_by_the_aggregator():
    from federation.strategies.base import validate_results

    w = {"w": np.zeros(2, np.float32)}
    twice = [FitResult(1, {"w": np.ones(2, np.float32)}, 5), FitResult(1, {"w": np.ones(2, np.float32)}, 5)]
    with pytest.raises(FederationError, match="client 1 sent 2 results"):
        FedAvg().aggregate_train(1, w, twice)
    validate_results(w, twice, repeats=True)  # FedBuff's buffer may hold two versions of one client
