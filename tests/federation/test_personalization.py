"""Personalised strategies, the system simulation in the round loop, and what clients upload."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.compression import make_compressor
from federation.devices import DeviceProfile, make_round_policy
from federation.server import SystemConfig
from federation.strategies import make_strategy
from federation.strategies.similarity import attention_weights
from federation.types import FederationError, FitIns

ENV = "frl/CartPoleHetero-v0"


def _clients(n=3, steps=60, **agent_kw):
    out = []
    for cid in range(n):
        env = gym.make(ENV, half_pole_length=0.2 + 0.3 * cid)
        env.reset(seed=cid)
        cls = agent_class("dqn")
        kw = {"learning_starts": 20, "batch_size": 16, "hidden_sizes": (16,), **agent_kw}
        length = 0.2 + 0.3 * cid
        out.append(Client(cid, env, gym.make(ENV, half_pole_length=length),
                          lambda env=env, cls=cls, kw=kw: cls(env.observation_space, env.action_space, seed=7, **kw),
                          steps_per_round=steps, make_env=lambda length=length: gym.make(ENV, half_pole_length=length)))
    return out


def _uploads(monkeypatch, clients):
    seen = []
    for c in clients:
        orig = c.fit

        def spy(ins, orig=orig):
            res = orig(ins)
            seen.append(res)
            return res
        monkeypatch.setattr(c, "fit", spy)
    return seen


@pytest.mark.parametrize("name, personal, overrides", [
    ("fedper", "head.", {"personal": "head"}),
    ("fedrep", "head.", {"personal": "head"}),
    ("env-embedding", "embedding", {"embedding_dim": 3}),
])
def test_personal_parameters_never_leave_the_client(monkeypatch, name, personal, overrides):
    clients = _clients(**overrides)
    seen = _uploads(monkeypatch, clients)
    hist = run_federation(clients, make_strategy(name), rounds=2, seed=0, eval_seeds=(1,))
    assert seen and all(not any(k.startswith(personal) for k in r.weights) for r in seen)
    assert not any(k.startswith(personal) for k in hist.global_weights)
    # personal parameters diverge between clients, shared ones are the global model after a broadcast
    heads = [np.concatenate([v.ravel() for k, v in c.agent.get_weights().items() if k.startswith(personal)])
             for c in clients]
    assert not np.allclose(heads[0], heads[1])


def test_new_env_embedding_client_starts_from_the_mean_embedding():
    clients = _clients(embedding_dim=3)
    strat = make_strategy("env-embedding", dim=3)
    run_federation(clients, strat, rounds=2, seed=0, eval_seeds=(1,))
    mean = np.mean([c.agent.get_weights()["embedding"] for c in clients], axis=0)
    np.testing.assert_allclose(strat.new_client_personal_weights()["embedding"], mean, rtol=1e-6)
    newcomer = _clients(n=1, embedding_dim=3)[0]
    newcomer.agent.set_weights(strat.new_client_personal_weights())
    np.testing.assert_allclose(newcomer.agent.get_weights()["embedding"], mean, rtol=1e-6)


def test_fedper_refuses_agents_without_a_personal_head():
    with pytest.raises(FederationError, match="personal='head'"):
        run_federation(_clients(n=2), make_strategy("fedper"), rounds=1, seed=0)


def test_fedrep_freezes_the_body_while_training_the_head():
    c = _clients(n=1, steps=80, personal="head")[0]
    before = c.agent.get_weights()
    c.agent.set_trainable(("head.",))
    c.agent.learn(c.env, 80)
    after = c.agent.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before if k.startswith("body."))
    assert any(not np.array_equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_ditto_trains_a_personal_model_with_the_same_sample_budget():
    clients = _clients()
    hist = run_federation(clients, make_strategy("ditto", lam=0.5), rounds=2, seed=0, eval_seeds=(1,))
    assert all(c.hook.agent is not None for c in clients)
    assert {m for _, _, m, _ in hist.rows} >= {"personal/return", "global/return", "own/return"}
    assert all(c.samples_seen == 2 * c.steps_per_round for c in clients)


def test_finetune_evaluation_leaves_the_client_untouched():
    clients = _clients(n=2)
    hist = run_federation(clients, make_strategy("finetune", steps=30), rounds=1, seed=0, eval_seeds=(1,))
    before = clients[0].agent.get_weights()
    clients[0].evaluate_models(hist.global_weights, [3])
    after = clients[0].agent.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert [r for r in hist.rows if r[2] == "personal/return"]


def test_ifca_with_declared_groups_averages_within_groups():
    clients = _clients(n=4)
    strat = make_strategy("ifca", num_clusters=2, groups="0,1,0,1")
    run_federation(clients, strat, rounds=1, seed=0, eval_seeds=(1,))
    w = [c.agent.get_shared_weights() for c in clients]
    for g, members in ((0, (0, 2)), (1, (1, 3))):
        for k, v in strat.models[g].items():
            np.testing.assert_allclose(v, (w[members[0]][k] + w[members[1]][k]) / 2, rtol=1e-5, atol=1e-6)
    assert strat.configure_evaluate(2, {}, [2])[2] is strat.models[0]


def test_ifca_estimated_clusters_broadcast_every_model_and_clients_pick_one():
    clients = _clients(n=3)
    strat = make_strategy("ifca", num_clusters=2)
    hist = run_federation(clients, strat, rounds=1, seed=0, eval_seeds=(1,))
    picks = [v for _, _, m, v in hist.rows if m == "ifca/cluster"]
    assert len(picks) == 3 and set(picks) <= {0.0, 1.0}
    down = [v for _, _, m, v in hist.rows if m == "comm/bytes_down"]
    up = [v for _, _, m, v in hist.rows if m == "comm/bytes_up"]
    assert down[0] == 2 * up[0]  # both cluster models go down, one comes back


def test_similarity_attention_hand_computed():
    d = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    a = attention_weights(d, temperature=1.0)
    e = np.e
    np.testing.assert_allclose(a[0], [e / (2 * e + 1), e / (2 * e + 1), 1 / (2 * e + 1)])
    np.testing.assert_allclose(a[2], [1 / (2 + e), 1 / (2 + e), e / (2 + e)])
    np.testing.assert_allclose(a.sum(1), 1.0)


def test_similarity_gives_each_client_its_own_model():
    clients = _clients()
    strat = make_strategy("similarity", temperature=0.1)
    run_federation(clients, strat, rounds=1, seed=0, eval_seeds=(1,))
    models = [strat.configure_evaluate(2, {}, [c])[c] for c in range(3)]
    assert not np.allclose(models[0]["head.weight"], models[1]["head.weight"])


def test_central_passes_one_model_from_client_to_client(monkeypatch):
    clients = _clients()
    received = []
    for c in clients:
        orig = c.fit

        def spy(ins: FitIns, orig=orig, c=c):
            res = orig(ins)
            received.append(c.received)  # what the client loaded: the previous client's model
            return res
        monkeypatch.setattr(c, "fit", spy)
    hist = run_federation(clients, make_strategy("central"), rounds=1, seed=0, eval_seeds=(1,))
    w1 = clients[0].agent.get_shared_weights()
    assert all(np.array_equal(received[1][k], w1[k]) for k in w1)
    w_last = clients[-1].agent.get_shared_weights()
    assert all(np.array_equal(hist.global_weights[k], w_last[k]) for k in w_last)


def _profiles(speeds, availability=(1.0, 1.0, 1.0)):
    return tuple(DeviceProfile(steps_per_second=s, uplink_bps=8e6, downlink_bps=8e6, availability=a)
                 for s, a in zip(speeds, availability, strict=True))


def test_deadline_policy_drops_the_straggler_and_reports_sim_time():
    clients = _clients(steps=50)
    system = SystemConfig(devices=_profiles((100.0, 100.0, 5.0)),
                          round_policy=make_round_policy("deadline", deadline_s=2.0))
    hist = run_federation(clients, make_strategy("fedavg"), rounds=1, seed=0, eval_seeds=(1,), system=system)
    assert [c for _, c, m, _ in hist.rows if m == "devices/straggler"] == [2]
    assert sorted(c for _, c, m, _ in hist.rows if m == "comm/bytes_up") == [0, 1]
    assert hist.series("sim/round_s")[0][1] == pytest.approx(2.0)


def test_synchronous_round_time_is_the_slowest_client():
    clients = _clients(steps=50)
    nbytes = sum(v.nbytes for v in clients[0].agent.get_weights().values())
    system = SystemConfig(devices=_profiles((100.0, 50.0, 25.0)))
    hist = run_federation(clients, make_strategy("fedavg"), rounds=1, seed=0, eval_seeds=(1,), system=system)
    expect = 2 * 8 * nbytes / 8e6 + 50 / 25.0  # download + train + upload of the slowest client
    assert hist.series("sim/round_s")[0][1] == pytest.approx(expect)


def test_unavailable_clients_drop_out():
    clients = _clients(steps=40)
    system = SystemConfig(devices=_profiles((100.0, 100.0, 100.0), availability=(1.0, 0.0, 1.0)))
    hist = run_federation(clients, make_strategy("fedavg"), rounds=2, seed=0, eval_seeds=(1,), system=system)
    assert sorted(c for _, c, m, _ in hist.rows if m == "devices/dropped") == [1, 1]
    assert clients[1].samples_seen == 0


def test_buffered_async_is_reproducible_and_reports_staleness():
    def run():
        clients = _clients(steps=40)
        system = SystemConfig(devices=_profiles((100.0, 40.0, 10.0)),
                              round_policy=make_round_policy("buffered-async", k=2))
        return run_federation(clients, make_strategy("fedbuff"), rounds=3, seed=0, eval_seeds=(1,), system=system)

    a, b = run(), run()
    assert a.rows == b.rows
    assert len([1 for _, _, m, _ in a.rows if m == "async/staleness"]) == 6
    assert max(v for _, _, m, v in a.rows if m == "async/staleness") >= 1
    with pytest.raises(FederationError, match="buffered-async"):
        run_federation(_clients(), make_strategy("median"), rounds=1, seed=0,
                       system=SystemConfig(round_policy=make_round_policy("buffered-async", k=2)))


def test_int8_compression_in_the_loop_cuts_upload_bytes():
    clients = _clients(steps=40, hidden_sizes=(64, 64))
    raw = sum(v.nbytes for v in clients[0].agent.get_shared_weights().values())
    hist = run_federation(clients, make_strategy("fedavg"), rounds=1, seed=0, eval_seeds=(1,),
                          system=SystemConfig(compressor=make_compressor("int8")))
    up = [v for _, _, m, v in hist.rows if m == "comm/bytes_up"]
    assert all(raw / 4.5 < u < raw / 3 for u in up)


# ----- every agent family under the strategies that use the proximal / freezing hooks ---------------------
HOOK_AGENTS = {
    "dqn": ("CartPole-v1", {"learning_starts": 20, "batch_size": 16, "hidden_sizes": (16,)}),
    "ppo": ("CartPole-v1", {"n_steps": 32, "batch_size": 32, "hidden_sizes": (16,)}),
    "td3": ("Pendulum-v1", {"learning_starts": 20, "batch_size": 16, "hidden_sizes": (16,)}),
    "sac": ("Pendulum-v1", {"learning_starts": 20, "batch_size": 16, "hidden_sizes": (16,)}),
    "q-learning": ("FrozenLake-v1", {}),
}


@pytest.mark.parametrize("strategy", ["fedprox:mu=0.1", "ditto:lam=0.5", "fedrep"])
@pytest.mark.parametrize("agent", sorted(HOOK_AGENTS))
def test_hook_strategies_run_with_every_agent_family(agent, strategy):
    from federation.strategies import parse_strategy_spec

    env_id, kw = HOOK_AGENTS[agent]
    name, params = parse_strategy_spec(strategy)
    strat = make_strategy(name, **params)
    kw = {**kw, **dict(strat.agent_overrides)}
    if agent == "q-learning":
        kw.pop("personal", None)  # a table has no head
    cls = agent_class(agent)
    clients = []
    for cid in range(2):
        env = gym.make(env_id)
        env.reset(seed=cid)
        clients.append(Client(cid, env, gym.make(env_id),
                              lambda env=env, cid=cid: cls(env.observation_space, env.action_space, seed=cid, **kw),
                              steps_per_round=40, make_env=lambda: gym.make(env_id)))
    if agent == "q-learning" and name == "fedrep":  # nothing personal to split off: refused up front
        with pytest.raises(FederationError, match="personal='head'"):
            run_federation(clients, strat, rounds=2, seed=0, eval_seeds=(1,))
        return
    hist = run_federation(clients, strat, rounds=2, seed=0, eval_seeds=(1,))
    assert all(np.isfinite(v).all() for v in hist.global_weights.values())
    assert all(c.samples_seen == 80 for c in clients)


def test_ifca_single_group_spec_parsed_as_a_number_is_still_a_declared_group():
    """``ifca:groups=0`` reaches the strategy as the integer 0 (the spec parser makes numbers of values)."""
    from federation.strategies import parse_strategy_spec

    name, params = parse_strategy_spec("ifca:groups=0")
    assert make_strategy(name, **params).groups == [0]
    assert make_strategy("ifca", groups="").groups is None
