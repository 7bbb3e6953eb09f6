"""The batched federation (federation/batched.py, scenarios/batched_backend.py): aggregation over the client
axis, FedPer's personal heads, local isolation, the results contract against the in-process backend, refusals,
and a learning test."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers frl/* envs)
from agents.dqn import DQNAgent
from federation.batched import ClientSyncVectorEnv, aggregate_stacked, make_client_vector_env, run_batched_federation
from federation.strategies import make_strategy
from federation.strategies.fedavg import weighted_average
from scenarios.batched_backend import build_learner, run_experiment_batched
from scenarios.experiment import ScenarioError, client_setup, run_experiment
from scenarios.mec_offloading import QUICK

MEC = "frl/MecOffloading-v0"
SHORT = {"episode_tasks": 40}  # short MEC episodes keep evaluation cheap


def _tiny(**kw) -> object:
    base = dict(n_clients=3, rounds=2, steps_per_round=60, eval_every=1, eval_episodes=1, final_eval_episodes=2,
                baselines=("random",), env_overrides=SHORT,
                agent_config={**QUICK.agent_config, "learning_starts": 20, "hidden_sizes": (16, 16)})
    return dataclasses.replace(QUICK, **{**base, **kw})


def _federation(exp, strategy_name: str, learner=None, rounds: int = 2, **kw):
    setup = client_setup(exp)
    strategy = make_strategy(strategy_name, **kw)
    learner = learner or build_learner(exp, strategy, setup)
    env = make_client_vector_env(exp.env_id, setup.configs)
    eval_env = make_client_vector_env(exp.env_id, setup.configs)
    hist = run_batched_federation(learner, env, eval_env, strategy, rounds=rounds,
                                  steps_per_round=exp.steps_per_round, seed=0, env_seeds=[s[0] for s in setup.seeds],
                                  eval_every=rounds, eval_seeds=(7,), kpis=("cost",))
    return learner, hist


def test_vector_env_falls_back_to_sync_envs_with_per_client_configs() -> None:
    exp = _tiny()
    configs = client_setup(exp).configs
    env = make_client_vector_env(MEC, configs)
    assert env.num_envs == 3
    if isinstance(env, gym.vector.SyncVectorEnv):  # no batched core registered in this tree
        assert [e.unwrapped.config for e in env.envs] == list(configs)
        assert configs[0] != configs[1]


def test_client_vector_env_steps_like_gymnasiums_sync_vector_env() -> None:
    """The lean info merge changes nothing: observations, rewards, flags and infos (values, masks, dtypes,
    final observations and final infos of same-step resets) equal SyncVectorEnv's."""
    configs = client_setup(_tiny()).configs
    ours = ClientSyncVectorEnv([lambda c=c: gym.make(MEC, config=c) for c in configs])  # MEC has a core now
    theirs = gym.vector.SyncVectorEnv([lambda c=c: gym.make(MEC, config=c) for c in configs],
                                      autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    ours.reset(seed=[1, 2, 3])
    theirs.reset(seed=[1, 2, 3])
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(90):  # episodes of 40 tasks: two rounds of resets
        a = rng.integers(4, size=3)
        mine, ref = ours.step(a), theirs.step(a)
        for x, y in zip(mine[:4], ref[:4], strict=True):
            assert np.array_equal(x, y) and x.dtype == y.dtype
        infos, ref_infos = mine[4], ref[4]
        assert set(infos) == set(ref_infos)
        for k, v in ref_infos.items():
            if k == "final_obs":
                resets += int(v.astype(bool).sum()) if v.dtype == bool else sum(o is not None for o in v)
                for i in np.flatnonzero(ref_infos["_final_obs"]):
                    assert np.array_equal(infos[k][i], v[i])
            elif k == "final_info":
                assert set(infos[k]) == set(v)
                for kk, vv in v.items():
                    assert np.array_equal(infos[k][kk], vv) and infos[k][kk].dtype == vv.dtype, kk
            else:
                assert np.array_equal(infos[k], v) and infos[k].dtype == v.dtype, k
    assert resets == 6


def test_fedavg_over_the_client_axis_is_the_weighted_mean_of_client_dicts() -> None:
    rng = np.random.default_rng(0)
    stacked = {"a": torch.from_numpy(rng.normal(size=(4, 3, 2)).astype(np.float32)),
               "b": torch.from_numpy(rng.normal(size=(4, 5)).astype(np.float32))}
    samples = [10, 30, 5, 55]
    got = aggregate_stacked(stacked, samples)
    want = weighted_average([{k: v[i].numpy() for k, v in stacked.items()} for i in range(4)], samples)
    for k in want:
        assert got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-7)


def test_fedper_averages_the_body_and_leaves_each_head_in_its_slice() -> None:
    exp = _tiny()
    setup = client_setup(exp)
    learner = build_learner(exp, make_strategy("fedper"), setup)
    seen = []
    learn = learner.learn

    def spy(env, steps, **kw):  # parameters as broadcast (entry) and as trained (exit)
        entry = learner.stacked_weights()
        out = learn(env, steps, **kw)
        seen.append((entry, learner.stacked_weights()))
        return out

    learner.learn = spy
    _, hist = _federation(exp, "fedper", learner, rounds=3)
    assert all(not k.startswith("head.") for k in hist.global_weights)
    assert len(seen) == 3
    for (_, trained), (entry, _) in zip(seen, seen[1:], strict=False):
        for k in learner.params:
            if k.startswith("head."):  # the broadcast never touches a head
                assert torch.equal(entry[k], trained[k])
                assert not torch.allclose(entry[k][0], entry[k][1])
            else:  # every client starts the round from the same (averaged) body
                want = torch.from_numpy(aggregate_stacked({k: trained[k]}, [exp.steps_per_round] * 3)[k])
                assert torch.equal(entry[k], want.expand_as(entry[k]))


@pytest.mark.parametrize("strategy_name,mixes", [("local", False), ("fedavg", True)])
def test_local_never_mixes_clients(strategy_name: str, mixes: bool) -> None:
    """Perturbing client 1's model after its first local fit changes client 0's final model under FedAvg,
    never under local."""
    exp = _tiny()
    setup = client_setup(exp)
    strategy = make_strategy(strategy_name)
    finals = []
    for perturb in (False, True):
        learner = build_learner(exp, strategy, setup)
        learn, calls = learner.learn, []

        def fit(env, steps, learner=learner, learn=learn, calls=calls, perturb=perturb, **kw):
            out = learn(env, steps, **kw)
            if perturb and not calls:
                with torch.no_grad():
                    learner.params["body.0.weight"][1] += 0.5
            calls.append(steps)
            return out

        learner.learn = fit
        learner, _ = _federation(exp, strategy_name, learner)
        finals.append(learner.client_weights(0))
    same = all(np.array_equal(finals[0][k], finals[1][k]) for k in finals[0])
    assert same is (not mixes)


def test_results_contract_and_metric_names_match_the_in_process_backend() -> None:
    exp = _tiny(strategies=("fedavg", "local"))
    batched, inproc = run_experiment_batched(exp), run_experiment(exp)
    assert set(batched.methods) == set(inproc.methods)
    for m in inproc.methods:
        assert set(batched.methods[m]) - {"backend"} == set(inproc.methods[m]) - {"backend"}, m
        names_b = {r[3] for r in batched.rows if r[0] == m}
        names_i = {r[3] for r in inproc.rows if r[0] == m}
        assert names_b == names_i, (m, names_b ^ names_i)
        assert len(batched.methods[m]["per_client_return"]) == exp.n_clients
    assert batched.methods["random"] == inproc.methods["random"]  # heuristics: same clients, same episodes
    assert batched.methods["fedavg"]["bytes_communicated"] == inproc.methods["fedavg"]["bytes_communicated"]
    assert batched.methods["local"]["bytes_communicated"] == 0
    assert batched.client_configs == inproc.client_configs
    # same seed, same result: everything derives from the experiment seed
    again = run_experiment_batched(exp)
    assert [r for r in again.rows] == [r for r in batched.rows]


def test_initial_model_is_client_zeros_suite_agent() -> None:
    exp = _tiny()
    setup = client_setup(exp)
    learner = build_learner(exp, make_strategy("fedavg"), setup)
    env = gym.make(MEC, config=setup.configs[0])
    ref = DQNAgent(env.observation_space, env.action_space, seed=setup.seeds[0][1], **exp.agent_config)
    for i in range(exp.n_clients):
        for k, v in ref.get_weights().items():
            assert np.array_equal(learner.client_weights(i)[k], v)


@pytest.mark.parametrize("kw,match", [
    (dict(strategies=("ditto",)), "allowed: fedavg, fedprox, local, fedper, fedavgm"),
    (dict(strategies=("fedrep",)), "allowed: fedavg, fedprox, local, fedper, fedavgm"),
    (dict(agent="a2c"), "allowed: dqn, ppo"),
    (dict(fraction=0.5), "fraction"),
    (dict(compression="int8"), "compression"),
])
def test_refuses_what_it_does_not_run_in_one_line(kw, match) -> None:
    with pytest.raises(ScenarioError, match=match) as e:
        run_experiment_batched(_tiny(**kw))
    assert "\n" not in str(e.value)


def test_batched_ppo_fedprox_runs_and_records_own_and_global() -> None:
    exp = _tiny(agent="ppo", agent_config={"n_steps": 30, "batch_size": 15, "n_epochs": 2, "hidden_sizes": (16,)},
                strategies=("fedprox:mu=0.5",))
    res = run_experiment_batched(exp)
    summary = res.methods["fedprox:mu=0.5"]
    assert summary["evaluated_model"] == "global" and summary["samples_per_client"] == 2 * 60
    assert {"loss/policy", "own/cost", "global/cost"} <= {r[3] for r in res.rows}
    assert np.isfinite(summary["cost"])


def test_batched_fedavg_dqn_learns_mec_offloading() -> None:
    """Fixed seed, a few seconds: federated DQN's cost beats the random heuristic's by a clear margin."""
    exp = dataclasses.replace(QUICK, strategies=("fedavg",), baselines=("random",), final_eval_episodes=2)
    res = run_experiment_batched(exp)
    fed, rnd = res.methods["fedavg"]["cost"], res.methods["random"]["cost"]
    assert fed < 0.8 * rnd, (fed, rnd)


def test_server_optimisers_step_on_the_stacked_mean() -> None:
    """FedAvgM/FedAdam/... see only the sample-weighted mean of the client models, so on the batched backend the
    strategy's own aggregate runs on that mean as one result: with beta = 0 and eta = 1 FedAvgM is FedAvg bit
    for bit, and FedAdam's step on the mean equals its step on the N separate results (float rounding apart)."""
    from federation.batched import aggregate_stacked
    from federation.types import FitResult

    exp = _tiny()
    _, plain = _federation(exp, "fedavg")
    _, momentum = _federation(exp, "fedavgm", beta=0.0, eta=1.0)
    assert plain.global_weights.keys() == momentum.global_weights.keys()
    for k, v in plain.global_weights.items():
        assert np.array_equal(v, momentum.global_weights[k]), k
    _, adam = _federation(exp, "fedadam", eta=0.1)
    assert any(not np.array_equal(v, adam.global_weights[k]) for k, v in plain.global_weights.items())

    rng = np.random.default_rng(0)
    stacked = {"w": torch.from_numpy(rng.normal(size=(4, 3, 2)).astype(np.float32)),
               "b": torch.from_numpy(rng.normal(size=(4, 3)).astype(np.float32))}
    x = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float32)}
    n = [10, 30, 5, 55]
    separate = make_strategy("fedadam", eta=0.1).aggregate_train(
        1, x, [FitResult(i, {k: v[i].numpy() for k, v in stacked.items()}, n[i]) for i in range(4)])
    on_mean = make_strategy("fedadam", eta=0.1).aggregate_train(
        1, x, [FitResult(-1, aggregate_stacked(stacked, n), sum(n))])
    for k in separate:
        np.testing.assert_allclose(on_mean[k], separate[k], rtol=1e-5, atol=1e-6)
