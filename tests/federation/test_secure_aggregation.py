"""Secure aggregation (Bonawitz et al. 2017): exactness against the plain strategies, dropout recovery, what a
single masked upload reveals, refusal of strategies that need individual updates, and a real federated run."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.client import ClientHook
from federation.secure_aggregation import (
    MASKED_KEY,
    NEEDS_INDIVIDUAL,
    SUM_BASED,
    SecAggParty,
    SecAggServer,
    SecureAggregation,
    SecureUploadHook,
    decode_fixed,
    encode_fixed,
    secure_strategy,
    shamir_combine,
    shamir_split,
    wrap_secure,
)
from federation.strategies import STRATEGIES, FedAvg, make_strategy
from federation.types import FederationError, FitResult

torch.set_num_threads(1)


class _Agent:
    def __init__(self, weights):
        self.weights = weights

    def get_shared_weights(self):
        return {k: v.copy() for k, v in self.weights.items()}

    def learn(self, env, steps):
        return {}


class _Client:
    """Just enough of a Client for the hooks: an id and an agent whose 'trained' weights are given."""

    def __init__(self, cid, weights):
        self.client_id, self.agent, self.env = cid, _Agent(weights), None


def _round(strategy, rnd, glob, updates, counts, drop=(), clients=None):
    """One round by hand, as run_federation does it: configure (key agreement), fit the survivors, aggregate."""
    ids = list(range(len(updates)))
    if clients is None:
        clients = [_Client(c, updates[c]) for c in ids]
        for c in clients:  # the wrapper's client half around plain local training (the stub has no env)
            c.hook = SecureUploadHook(ClientHook(), strategy)
            c.hook.attach(c)
    for c in clients:
        c.agent.weights = updates[c.client_id]
    strategy.configure_train(rnd, glob, ids)
    results = []
    for c in clients:
        if c.client_id in drop:
            continue
        used, _ = c.hook.learn(c, counts[c.client_id])
        c.hook.report(c)
        results.append(FitResult(c.client_id, c.hook.upload(c), used))
    return strategy.aggregate_train(rnd, glob, results), results, clients


def _plain(strategy, rnd, glob, updates, counts, drop=()):
    strategy.configure_train(rnd, glob, list(range(len(updates))))
    res = [FitResult(c, updates[c], counts[c]) for c in range(len(updates)) if c not in drop]
    return strategy.aggregate_train(rnd, glob, res)


def _rel(a, b):
    fa = np.concatenate([np.asarray(a[k], np.float64).ravel() for k in sorted(a)])
    fb = np.concatenate([np.asarray(b[k], np.float64).ravel() for k in sorted(b)])
    return float(np.linalg.norm(fa - fb) / max(np.linalg.norm(fb), 1e-12)), float(np.max(np.abs(fa - fb)))


def _random_updates(rng, n, shapes, scale=1.0):
    return [{f"k{i}": (scale * rng.standard_normal(s)).astype(np.float32) for i, s in enumerate(shapes)}
            for _ in range(n)]


# ----- exactness ------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 7),
       shapes=st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple), min_size=1, max_size=3),
       counts_seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-3, 1.0, 50.0]))
def test_secure_fedavg_equals_plain_fedavg(n, shapes, counts_seed, scale):
    rng = np.random.default_rng(counts_seed)
    updates = _random_updates(rng, n, shapes, scale)
    counts = [int(c) for c in rng.integers(1, 5000, size=n)]
    glob = {k: np.zeros_like(v) for k, v in updates[0].items()}
    secure, results, _ = _round(SecureAggregation(FedAvg()), 1, glob, updates, counts)
    plain = _plain(FedAvg(), 1, glob, updates, counts)
    rel, worst = _rel(secure, plain)
    assert rel <= 1e-6 and worst <= 1e-6 * max(1.0, scale)
    assert all(set(r.weights) == {MASKED_KEY} for r in results)
    assert all(secure[k].dtype == glob[k].dtype and secure[k].shape == glob[k].shape for k in glob)


@pytest.mark.parametrize("name", ["fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedbuff", "ditto",
                                  "apfl", "finetune", "fedper"])
def test_every_sum_based_strategy_matches_its_plain_self_over_rounds(name):
    rng = np.random.default_rng(7)
    glob = {"a": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    secure_s, plain_s = SecureAggregation(make_strategy(name)), make_strategy(name)
    for s in (secure_s, plain_s):
        s.reseed(np.random.SeedSequence(1))
    g_sec, g_plain, clients = dict(glob), dict(glob), None
    for rnd in (1, 2, 3):
        updates = [{k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in g_plain.items()}
                   for _ in range(4)]
        counts = [int(c) for c in rng.integers(50, 500, size=4)]
        g_sec, _, clients = _round(secure_s, rnd, g_sec, updates, counts, clients=clients)
        g_plain = _plain(plain_s, rnd, g_plain, updates, counts)
        rel, _ = _rel(g_sec, g_plain)
        assert rel <= 1e-6, (name, rnd, rel)


def test_a_client_dropping_after_key_agreement_leaves_the_survivors_sum_exact():
    rng = np.random.default_rng(3)
    updates = _random_updates(rng, 6, [(30,), (2, 5)])
    counts = [100, 200, 300, 400, 500, 600]
    glob = {k: np.zeros_like(v) for k, v in updates[0].items()}
    wrapped = SecureAggregation(FedAvg())
    secure, results, _ = _round(wrapped, 1, glob, updates, counts, drop={1, 4})
    plain = _plain(FedAvg(), 1, glob, updates, counts, drop={1, 4})
    assert _rel(secure, plain)[0] <= 1e-6
    assert wrapped.ledger[-1] == {"round": 1, "clients": 6, "threshold": 4, "survivors": 4, "dropped": 2,
                                  "aborted": False}
    # and without the unmasking round the survivors' sum is noise: the dropped clients' masks are in it
    total = sum((r.weights[MASKED_KEY] for r in results), np.zeros_like(results[0].weights[MASKED_KEY]))
    naive, _ = decode_fixed(total, 24)
    assert np.max(np.abs(naive)) > 1e6


def test_too_few_survivors_abort_the_round_and_keep_the_model():
    rng = np.random.default_rng(4)
    updates = _random_updates(rng, 4, [(8,)])
    glob = {"k0": np.ones(8, np.float32)}
    wrapped = SecureAggregation(FedAvg())  # t = 3 of 4
    new, _, _ = _round(wrapped, 1, glob, updates, [10] * 4, drop={0, 2})
    assert new is glob and wrapped.ledger[-1]["aborted"]


def test_the_server_learns_the_weights_only_as_their_sum():
    rng = np.random.default_rng(5)
    parties = {u: SecAggParty(u) for u in range(3)}
    server = SecAggServer()
    server.setup(1, parties)
    counts = [17, 250, 3]
    ys = {u: parties[u].mask(1, encode_fixed(rng.standard_normal(4), counts[u], 24, 2.0**62)) for u in parties}
    assert all(int(y[-1]) not in counts for y in ys.values())  # the sample count is masked too
    total = server.aggregate(1, ys, parties)
    assert decode_fixed(total, 24)[1] == sum(counts)


# ----- what one masked upload reveals ---------------------------------------------------------------------


def test_a_single_masked_update_is_uncorrelated_with_the_true_update():
    rng = np.random.default_rng(6)
    updates = _random_updates(rng, 3, [(10_000,)])
    glob = {"k0": np.zeros(10_000, np.float32)}
    _, results, _ = _round(SecureAggregation(FedAvg()), 1, glob, updates, [100, 100, 100])
    for r in results:
        masked = r.weights[MASKED_KEY][:-1]
        for view in (masked.astype(np.float64), masked.view(np.int64).astype(np.float64)):
            corr = np.corrcoef(view, updates[r.client_id]["k0"].astype(np.float64))[0, 1]
            assert abs(corr) < 0.05
    # fresh keys every round: the same update masks differently
    _, again, _ = _round(SecureAggregation(FedAvg()), 2, glob, updates, [100, 100, 100])
    assert not np.array_equal(again[0].weights[MASKED_KEY], results[0].weights[MASKED_KEY])


def test_shamir_any_t_shares_rebuild_the_key_and_fewer_do_not():
    secret = bytes(range(32))
    shares = shamir_split(secret, [1, 2, 3, 4, 5], 3)
    assert shamir_combine({x: shares[x] for x in (1, 3, 5)}) == secret
    assert shamir_combine({x: shares[x] for x in (2, 4, 5)}) == secret
    with pytest.raises(FederationError):  # two points of a degree-2 polynomial: a random 521-bit element
        shamir_combine({x: shares[x] for x in (1, 2)})


def test_a_client_never_reveals_both_masks_of_one_peer():
    parties = {u: SecAggParty(u) for u in range(3)}
    SecAggServer().setup(1, parties)
    parties[0].mask(1, np.zeros(3, np.uint64))
    with pytest.raises(FederationError, match="refuses to unmask"):
        parties[0].unmask(1, survivors=[0, 1], dropped=[1, 2])


# ----- limits and refusals --------------------------------------------------------------------------------


def test_fixed_point_overflow_and_nan_are_refused_with_one_line():
    with pytest.raises(FederationError) as e:
        encode_fixed(np.array([1e12]), 10, 24, 2.0**63 / 10)
    assert "\n" not in str(e.value) and "overflows" in str(e.value)
    with pytest.raises(FederationError, match="NaN"):
        encode_fixed(np.array([np.nan]), 1, 24, 2.0**62)
    # the one-line error names the client when it comes from an upload
    updates = [{"k0": np.array([1e9], np.float32)}, {"k0": np.array([0.0], np.float32)}]
    with pytest.raises(FederationError, match="client 0"):
        _round(SecureAggregation(FedAvg()), 1, {"k0": np.zeros(1, np.float32)}, updates, [5000, 1])


@pytest.mark.parametrize("name", sorted(NEEDS_INDIVIDUAL))
def test_strategies_that_need_individual_updates_are_refused_with_one_line(name):
    with pytest.raises(FederationError) as e:
        wrap_secure(make_strategy(name))
    msg = str(e.value)
    assert "\n" not in msg and repr(name) in msg and "allowed: " in msg


def test_every_registered_strategy_is_either_wrapped_or_refused():
    for name, cls in STRATEGIES.items():
        if name in NEEDS_INDIVIDUAL:
            continue
        assert cls in SUM_BASED, f"{name} has no secure-aggregation decision"
        wrapped = wrap_secure(make_strategy(name))
        assert wrapped.name == name and not wrapped.accepts_stale
        copy.deepcopy(wrapped)  # the runner deep-copies strategies
    with pytest.raises(FederationError, match="already"):
        wrap_secure(wrap_secure(FedAvg()))
    # a run under --secure-aggregation keeps `local` (nothing is uploaded) and refuses e.g. `krum` up front
    assert type(secure_strategy(make_strategy("local"))).__name__ == "Local"
    assert isinstance(secure_strategy(make_strategy("fedavg")), SecureAggregation)
    with pytest.raises(FederationError, match="krum"):
        secure_strategy(make_strategy("krum"))


def test_an_unmasked_or_compressed_upload_is_refused():
    glob = {"k0": np.zeros(3, np.float32)}
    wrapped = SecureAggregation(FedAvg())
    clients = [_Client(c, glob) for c in range(2)]
    for c in clients:
        c.hook = wrapped.client_hook()
        c.hook.attach(c)
    wrapped.configure_train(1, glob, [0, 1])
    with pytest.raises(FederationError, match="lossless"):
        wrapped.aggregate_train(1, glob, [FitResult(0, {"k0": np.ones(3, np.float32)}, 1)])


def test_a_wrapped_strategy_refuses_clients_without_its_client_half():
    with pytest.raises(FederationError, match="client half"):
        SecureAggregation(FedAvg()).configure_train(1, {"k0": np.zeros(1)}, [0, 1])


# ----- end to end ------------------------------------------------------------------------------------------


def _mec_clients(n):
    import gymnasium as gym

    import envs  # noqa: F401
    from agents import agent_class
    from federation import Client

    cls = agent_class("dqn")
    out = []
    for cid in range(n):
        env = gym.make("frl/MecOffloading-v0")
        env.reset(seed=cid)
        out.append(Client(cid, env, gym.make("frl/MecOffloading-v0"),
                          lambda env=env, cid=cid: cls(env.observation_space, env.action_space, seed=cid,
                                                       learning_starts=50),
                          steps_per_round=100 + 40 * cid, kpis=("cost",)))
    return out


def test_run_federation_under_secure_aggregation_ends_with_the_plain_final_weights():
    from federation import run_federation

    plain = run_federation(_mec_clients(3), FedAvg(), rounds=2, seed=11, eval_seeds=(1,), eval_every=2)
    wrapped = SecureAggregation(FedAvg())
    secure = run_federation(_mec_clients(3), wrapped, rounds=2, seed=11, eval_seeds=(1,), eval_every=2)
    rel, _ = _rel(secure.global_weights, plain.global_weights)
    assert rel <= 1e-5
    assert all(not e["aborted"] for e in wrapped.ledger) and len(wrapped.ledger) == 2
    up = [v for _, _, m, v in secure.rows if m == "comm/bytes_up"]
    plain_up = [v for _, _, m, v in plain.rows if m == "comm/bytes_up"]
    assert min(up) > max(plain_up)  # uint64 words instead of float32: the masked upload costs twice the bytes
    assert [v for _, _, m, v in secure.rows if m == "secagg/bytes_up"]


def test_run_experiment_with_every_strategy_wrapped(monkeypatch):
    from scenarios import experiment as ex
    from scenarios.mec_offloading import QUICK

    exp = dataclasses.replace(QUICK, n_clients=3, rounds=2, steps_per_round=200, final_eval_episodes=1,
                              baselines=("greedy",), strategies=("fedavg", "fedadam"), seed=5)
    plain = ex.run_experiment(exp)
    original = ex.Experiment.strategy
    monkeypatch.setattr(ex.Experiment, "strategy", lambda self, spec: wrap_secure(original(self, spec)))
    secure = ex.run_experiment(exp)
    for method in ("fedavg", "fedadam"):
        a, b = plain.methods[method], secure.methods[method]
        assert b["strategy_params"]["secure_aggregation"] == 1
        assert b["mean_return"] == pytest.approx(a["mean_return"], rel=1e-3, abs=1e-3)
        assert b["bytes_up"] > a["bytes_up"]
    assert any(r[3] == "secagg/bytes_up" for r in secure.rows)


def test_the_self_masks_the_server_rebuilds_leave_each_upload_hidden_by_the_pairwise_masks():
    from federation.secure_aggregation import kdf, prg

    rng = np.random.default_rng(8)
    parties = {u: SecAggParty(u) for u in range(3)}
    SecAggServer().setup(1, parties)
    x = rng.standard_normal(10_000)
    ys = {u: parties[u].mask(1, encode_fixed(x, 1, 24, 2.0**62)) for u in parties}
    replies = {v: parties[v].unmask(1, survivors=[0, 1, 2], dropped=[]) for v in parties}
    b0 = shamir_combine({v + 1: replies[v][0] for v in (0, 1)})
    left = (ys[0] - prg(kdf(b0, 1, "self"), ys[0].size))[:-1].view(np.int64).astype(np.float64)
    assert abs(np.corrcoef(left, x)[0, 1]) < 0.05


def test_devices_dropping_out_of_real_rounds_are_unmasked_and_the_run_matches_plain_fedavg():
    from federation import run_federation
    from federation.devices import DeviceProfile
    from federation.server import SystemConfig

    system = SystemConfig(devices=tuple(DeviceProfile(1000.0, 1e7, 1e7, availability=0.7) for _ in range(5)))
    wrapped = SecureAggregation(FedAvg())
    secure = run_federation(_mec_clients(5), wrapped, rounds=3, seed=3, eval_seeds=(1,), eval_every=3, system=system)
    plain = run_federation(_mec_clients(5), FedAvg(), rounds=3, seed=3, eval_seeds=(1,), eval_every=3, system=system)
    assert [e["dropped"] for e in wrapped.ledger] == [2, 0, 2] and not any(e["aborted"] for e in wrapped.ledger)
    assert _rel(secure.global_weights, plain.global_weights)[0] <= 1e-5
