"""The round loop end to end on the real MEC env and DQN: determinism, evaluation records, bytes."""

import dataclasses

import numpy as np
import pytest

from federation import Client, run_federation
from federation.strategies import FedAvg, Local
from scenarios.experiment import run_experiment
from scenarios.mec_offloading import QUICK


def _tiny(**kw):
    return dataclasses.replace(QUICK, n_clients=2, rounds=2, steps_per_round=300,
                               final_eval_episodes=1, baselines=("greedy",), **kw)


def test_two_client_two_round_run_is_bitwise_reproducible():
    a = run_experiment(_tiny(seed=3))
    b = run_experiment(_tiny(seed=3))
    assert a.rows == b.rows
    strip = {"train_time_s"}  # wall-clock time is the one thing allowed to differ
    assert [{k: v for k, v in m.items() if k not in strip} for m in a.methods.values()] == \
        [{k: v for k, v in m.items() if k not in strip} for m in b.methods.values()]
    c = run_experiment(_tiny(seed=4))
    assert c.rows != a.rows


def test_fedavg_counts_exact_bytes_and_local_moves_none():
    res = run_experiment(_tiny(seed=1))
    fed = res.methods["fedavg"]["bytes_communicated"]
    assert res.methods["local"]["bytes_communicated"] == 0
    assert fed > 0
    # 2 rounds x 2 clients x (down + up) x model size
    down = [v for m, r, c, k, v in res.rows if m == "fedavg" and k == "comm/bytes_down"]
    up = [v for m, r, c, k, v in res.rows if m == "fedavg" and k == "comm/bytes_up"]
    assert len(down) == len(up) == 4 and len(set(down + up)) == 1
    assert fed == sum(down) + sum(up)


def test_global_model_is_the_weighted_mean_of_client_uploads():
    import gymnasium as gym

    import envs  # noqa: F401
    from agents import agent_class

    clients = []
    for cid in range(2):
        env = gym.make("frl/MecOffloading-v0")
        env.reset(seed=cid)
        cls = agent_class("dqn")
        clients.append(Client(cid, env, gym.make("frl/MecOffloading-v0"),
                              lambda env=env, cid=cid, cls=cls: cls(env.observation_space, env.action_space, seed=cid,
                                                           learning_starts=50),
                              steps_per_round=120 + 60 * cid, kpis=("cost",)))
    hist = run_federation(clients, FedAvg(), rounds=1, seed=0, eval_seeds=(1,))
    w0, w1 = clients[0].agent.get_shared_weights(), clients[1].agent.get_shared_weights()
    for k, g in hist.global_weights.items():
        expect = (120 * w0[k].astype(np.float64) + 180 * w1[k].astype(np.float64)) / 300
        np.testing.assert_allclose(g, expect, rtol=1e-6, atol=1e-7)
    assert {m for _, _, m, _ in hist.rows} >= {"own/return", "global/return", "own/cost", "global/cost"}


def test_local_history_has_no_global_evaluation():
    res = run_experiment(_tiny(seed=2, strategies=("local",)))
    assert not [r for r in res.rows if r[3].startswith("global/")]
    assert [r for r in res.rows if r[3] == "own/return"]


@pytest.mark.parametrize("kw", [{"rounds": 0}, {"fraction": 0.0}])
def test_round_loop_refuses_bad_knobs(kw):
    from federation.types import FederationError

    args = {"rounds": 1, "seed": 0, **kw}
    with pytest.raises(FederationError):
        run_federation([object()], Local(), **args)  # type: ignore[list-item]


# ----- multi-agent clients (PettingZoo form) -------------------------------------------------------------
def _cv2x_parallel(**kw):
    from scenarios.experiment import Experiment

    return Experiment(scenario="cv2x-parallel-test", env_id="frl/CV2X-v0", n_clients=2, heterogeneity=0.5, rounds=2,
                      steps_per_round=200, eval_every=1, eval_episodes=1, final_eval_episodes=1,
                      agent_config={"hidden_sizes": (16,), "learning_starts": 50, "batch_size": 16},
                      strategies=("fedavg",), baselines=("greedy", "random"), env_form="parallel", **kw)


def test_multi_agent_clients_federate_on_the_pettingzoo_form():
    res = run_experiment(_cv2x_parallel(seed=1))
    again = run_experiment(_cv2x_parallel(seed=1))
    assert res.rows == again.rows  # reproducible
    steps = [v for m, r, c, k, v in res.rows if k == "train/steps" and c == 0]
    assert steps[-1] == 400  # each client's agent counts the steps of all its agents (4 links)
    assert set(res.methods) == {"fedavg", "greedy", "random"}  # the parallel heuristics of the env
    assert res.methods["greedy"]["mean_return"] > res.methods["random"]["mean_return"]
    assert len(res.methods["fedavg"]["per_client_return"]) == 2
    assert 0.0 <= res.methods["fedavg"]["v2v_delivery_prob"] <= 1.0


@pytest.mark.parametrize("kw, needles", [
    ({"env_form": "swarm"}, ["swarm", "single", "parallel"]),
    ({"env_form": "parallel", "env_id": "frl/MecOffloading-v0"}, ["no PettingZoo", "frl/CV2X-v0"]),
    ({"env_form": "parallel", "baselines": ("sps", "bug2")}, ["bug2", "greedy"]),
])
def test_env_form_knob_is_checked(kw, needles):
    from envs.registry import EnvConfigError
    from scenarios.experiment import ScenarioError

    with pytest.raises((ScenarioError, EnvConfigError)) as info:
        dataclasses.replace(_cv2x_parallel(), **kw)
    for n in needles:
        assert n in str(info.value)
