"""SFC orchestration env: topology data, resource invariants, mask exactness, delay budgets, determinism,
the public checks, and room to learn (random < best heuristic <= offline LP bound)."""

import copy

import gymnasium as gym
import networkx as nx
import numpy as np
import pytest

import envs  # noqa: F401  (registers frl/*)
from envs.check import check_env_entry
from envs.registry import EnvConfigError
from envs.sfc_orchestration import (
    BASELINES,
    ENTRY,
    SfcOrchestrationConfig,
    SfcOrchestrationEnv,
    make_client_configs,
    offline_acceptance_bound,
    window_acceptance,
)
from envs.topologies import great_circle_km, topology_graph
from federation.evaluation import evaluate_policy


def test_topology_is_abilene_with_propagation_delays():
    g = topology_graph("abilene")
    assert g.number_of_nodes() == 12 and g.number_of_edges() == 15 and nx.is_connected(g)
    names = {d["name"] for _, d in g.nodes(data=True)}
    assert {"NYCMng", "WASHng", "STTLng", "SNVAng", "LOSAng", "HSTNng", "ATLAM5"} <= names
    by_name = {d["name"]: i for i, d in g.nodes(data=True)}
    e = g.edges[by_name["NYCMng"], by_name["WASHng"]]
    assert 320 < e["km"] < 340                                     # New York - Washington ~330 km
    assert e["delay_ms"] == pytest.approx(e["km"] * 1e3 / 2e8 * 1e3)
    assert great_circle_km(0.0, 0.0, 90.0, 0.0) == pytest.approx(6371.0 * np.pi / 2)
    env = SfcOrchestrationEnv()
    assert env.action_space.n == 12 and env.observation_space.shape == (6 * 12 + 5,)
    # coast to coast (Sunnyvale - New York) on the backbone: ~20-25 ms of propagation
    assert 18.0 < env.sp_delay_ms[by_name["SNVAng"], by_name["NYCMng"]] < 26.0
    nsf = SfcOrchestrationEnv(topology="nsfnet")
    assert nsf.action_space.n == 14 and nsf.graph.number_of_edges() == 21


def test_public_checks_pass():
    assert "determinism" in check_env_entry(ENTRY)


def test_bad_knobs_are_refused_by_name():
    with pytest.raises(EnvConfigError, match="egress_hotspot"):
        SfcOrchestrationEnv(egress_hotspot=12)                    # Abilene has nodes 0..11
    with pytest.raises(EnvConfigError, match="vnf_cpu_min"):
        SfcOrchestrationEnv(vnf_cpu_min=5.0, vnf_cpu_max=2.0)
    with pytest.raises(EnvConfigError, match="bw_max_gbps"):
        SfcOrchestrationEnv(bw_max_gbps=20.0)
    with pytest.raises(EnvConfigError, match="topology"):
        SfcOrchestrationEnv(topology="geant")


def _independent_mask(env):
    """Feasibility of every node recomputed from scratch with networkx (module docstring's definition)."""
    e = env
    r, i, p, cfg = e._req, e._k, e._prev, e.config
    L, b = len(r.cpu), r.bw

    def feasible_graph(res):
        g = nx.Graph()
        g.add_nodes_from(e.graph.nodes)
        g.add_edges_from((u, v, d) for u, v, d in e.graph.edges(data=True) if res[d["idx"]] >= b - 1e-9)
        return g

    g = feasible_graph(e.bw_res)
    d_from = nx.single_source_dijkstra_path_length(g, p, weight="delay_ms")
    d_to = nx.single_source_dijkstra_path_length(g, r.egress, weight="delay_ms")
    out = np.zeros(e.n_nodes, dtype=bool)
    for v in range(e.n_nodes):
        if e.cpu_res[v] < r.cpu[i] - 1e-9 or v not in d_from or v not in d_to:
            continue
        if e._used_ms + d_from[v] + (L - i) * cfg.vnf_delay_ms + d_to[v] > r.budget_ms + 1e-9:
            continue
        if i == L - 1:
            path = nx.dijkstra_path(g, p, v, weight="delay_ms")
            res = e.bw_res.copy()
            for a, c in zip(path[:-1], path[1:], strict=True):
                res[e.graph.edges[a, c]["idx"]] -= b
            g2 = feasible_graph(res)
            if not nx.has_path(g2, v, r.egress):
                continue
            rest = nx.dijkstra_path_length(g2, v, r.egress, weight="delay_ms")
            if e._used_ms + d_from[v] + cfg.vnf_delay_ms + rest > r.budget_ms + 1e-9:
                continue
        out[v] = True
    return out


def _held(env):
    """CPU per node and bandwidth per link held by active chains and the pending chain's placed VNFs."""
    cpu, bw = np.zeros(env.n_nodes), np.zeros(env.n_links)
    for _, _, nodes, cpus, links, b in env._active:
        np.add.at(cpu, nodes, cpus)
        np.add.at(bw, links, b)
    np.add.at(cpu, env._nodes, env._cpus)
    np.add.at(bw, env._links, env._req.bw)
    return cpu, bw


def test_resources_mask_and_delay_invariants_under_a_policy_that_errs():
    env = SfcOrchestrationEnv(arrival_rate=2.0)                   # overloaded: every kind of rejection
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    cap_cpu, cap_bw = env.config.node_cpu, env.config.link_capacity_gbps
    errors = accepted = 0
    for t in range(400):
        mask = env.action_mask()
        assert mask.any()                                          # every decision has a feasible node
        assert np.array_equal(mask, _independent_mask(env)), t
        assert (env.cpu_res >= -1e-9).all() and (env.bw_res >= -1e-9).all()
        cpu, bw = _held(env)                                        # conservation: residual + held = capacity
        np.testing.assert_allclose(env.cpu_res + cpu, cap_cpu, atol=1e-6)
        np.testing.assert_allclose(env.bw_res + bw, cap_bw, atol=1e-6)
        assert all(exp > env.now for exp, *_ in env._active)       # expired chains were released
        if t % 25 == 0 and (~mask).any():                          # an infeasible node is a placement error
            probe = copy.deepcopy(env)
            _, reward, _, _, info = probe.step(int(np.flatnonzero(~mask)[0]))
            assert info["placement_error"] == 1.0 and info["rejected"] >= 1.0 and reward < 0
        a = int(rng.integers(env.n_nodes)) if rng.random() < 0.2 else int(rng.choice(np.flatnonzero(mask)))
        _, _, _, _, info = env.step(a)
        errors += info["placement_error"]
        accepted += info["accepted"]
        assert np.array_equal(info["action_mask"], env.action_mask())
        assert 0.0 <= info["acceptance"] <= 1.0 and info["decided"] == info["accepted"] + info["rejected"]
        assert 0.0 <= info["utilisation"] <= 1.0
    assert errors > 0 and accepted > 0 and env.accepted_delays
    assert all(delay <= budget + 1e-9 for delay, budget in env.accepted_delays)
    # every chain releases everything at its lifetime end
    env._release_until(np.inf)
    env._rollback()
    np.testing.assert_allclose(env.cpu_res, cap_cpu)
    np.testing.assert_allclose(env.bw_res, cap_bw)


def test_same_seed_same_episode_other_seed_differs():
    def trace(seed):
        env = gym.make(ENTRY.env_id)
        obs, _ = env.reset(seed=seed)
        policy = BASELINES["first-fit"](env, 0)
        out = [obs]
        for _ in range(100):
            obs, r, *_ = env.step(policy(obs))
            out.append(np.append(obs, r))
        return np.concatenate(out)

    assert np.array_equal(trace(3), trace(3))
    assert not np.array_equal(trace(3), trace(4))


def test_requests_do_not_depend_on_the_policy():
    env = SfcOrchestrationEnv()
    env.reset(seed=9)
    for _ in range(200):
        env.step(0)
    first = env.requests(60)
    env.reset(seed=9)
    assert env.requests(60) == first


def test_heterogeneous_operators_differ_in_traffic_mix():
    same = make_client_configs(3, 0.0, 1)
    assert all(c == SfcOrchestrationConfig() for c in same)
    cfgs = make_client_configs(4, 1.0, 1)
    assert len({c.chain_len_probs for c in cfgs}) == 4 and len({c.arrival_rate for c in cfgs}) == 4
    assert all(c.ingress_hotspot_share > 0 for c in cfgs)
    for c in cfgs:
        SfcOrchestrationEnv(c)                                     # every client config is legal


def test_room_to_learn_random_below_best_heuristic_below_bound():
    env = gym.make(ENTRY.env_id)
    h, seeds = 30, (1, 2, 3)
    accepted = {name: sum(window_acceptance(env, f(env, 0), s, h) for s in seeds) for name, f in BASELINES.items()}
    bound = 0.0
    for s in seeds:
        env.reset(seed=s)
        bound += offline_acceptance_bound(env, env.unwrapped.requests(h))
    best = max(v for k, v in accepted.items() if k != "random")
    assert accepted["random"] < best <= bound <= h * len(seeds)
    # over whole episodes (acceptance per request) too
    acc = {name: evaluate_policy(env, f(env, 0), [11, 12], ENTRY.kpis, ENTRY.kpi_weight)["acceptance"]
           for name, f in BASELINES.items()}
    assert acc["random"] + 0.02 < max(acc.values()) < 1.0


def test_the_bound_binds_on_a_tiny_instance():
    """On 4 requests on an empty network every one can be accepted: the LP says so, and MILP agrees."""
    env = SfcOrchestrationEnv()
    env.reset(seed=0)
    reqs = env.requests(4)
    assert offline_acceptance_bound(env, reqs) == pytest.approx(4.0)
    assert offline_acceptance_bound(env, reqs, integral=True, time_limit_s=10) == pytest.approx(4.0)
    # a link too thin for any chain: only chains that can stay on one node... none can reach the egress
    thin = SfcOrchestrationEnv(link_capacity_gbps=0.4, bw_min_gbps=0.1, bw_max_gbps=0.4)
    thin.reset(seed=0)
    reqs = thin.requests(30)
    assert offline_acceptance_bound(thin, reqs) < 30
