"""CFRL (federation/strategies/cfrl.py): the critic is the global model, the allocation actor never leaves its
region, and domains without hosts contending for a shared resource are refused - unlike FedAvg."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import agent_class
from agents.base import Agent, Weights
from envs.cv2x import parallel_env as cv2x_parallel_env
from envs.mec_allocation import PARALLEL_BASELINES, parallel_env
from federation import Client, run_federation
from federation.evaluation import evaluate_parallel
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.cfrl import SHARED_RESOURCE_ENVS
from federation.types import FederationError, FitResult

torch.set_num_threads(1)


class ActorCriticRecorder(Agent):
    """``actor.w`` / ``critic.w`` arrays; ``learn`` adds the client's own ``push`` per step to both."""

    name = "recorder"

    def __init__(self, act_dim: int, push: float) -> None:
        self.w: Weights = {"actor.w": np.zeros(act_dim, np.float32), "critic.w": np.zeros(3, np.float32)}
        self.push = push
        self.personal_prefixes = ()

    def act(self, obs, *, explore=True):
        return np.clip(0.5 + self.w["actor.w"], 0.0, 1.0).astype(np.float32)

    def learn(self, env, num_steps):
        self.w = {k: v + np.float32(self.push * num_steps) for k, v in self.w.items()}
        return {}

    def get_weights(self):
        return {k: v.copy() for k, v in self.w.items()}

    def set_weights(self, weights):
        self.w.update({k: np.asarray(v, np.float32).copy() for k, v in weights.items()})


def _clients(make_agent, n=3, env_fn=lambda: parallel_env(episode_slots=5)):
    out = []
    for cid in range(n):
        env = env_fn()
        env.reset(seed=cid)
        out.append(Client(cid, env, env_fn(), lambda cid=cid: make_agent(cid), steps_per_round=10))
    return out


def _recorder(cid):
    return ActorCriticRecorder(parallel_env().action_space("host_0").shape[0], push=0.001 * (cid + 1))


def test_cfrl_is_registered_and_describes_its_paper():
    assert STRATEGIES["cfrl"].summary and "Zhu" in STRATEGIES["cfrl"].summary
    assert SHARED_RESOURCE_ENVS == ("frl/MecAllocation-v0",)


def test_critic_is_averaged_and_each_actor_stays_local_unlike_fedavg():
    hist = {}
    for name in ("cfrl", "fedavg"):
        clients = _clients(_recorder)
        uploads: list[FitResult] = []
        strategy = make_strategy(name)
        agg = strategy.aggregate_train

        def spy(rnd, weights, results, agg=agg, uploads=uploads):
            uploads.extend(results)
            return agg(rnd, weights, results)
        strategy.aggregate_train = spy
        hist[name] = run_federation(clients, strategy, rounds=3, seed=0, eval_seeds=(0,))
        actors = [c.agent.get_weights()["actor.w"] for c in clients]
        critics = [c.agent.get_weights()["critic.w"] for c in clients]
        if name == "cfrl":
            # the global model is the critic only: uploads and the server's model never carry the actor
            assert all(set(r.weights) == {"critic.w"} for r in uploads)
            assert set(hist[name].global_weights) == {"critic.w"}
            # every client's actor is its own local training: 3 rounds x 10 steps x its own push, from 0
            for cid, a in enumerate(actors):
                np.testing.assert_allclose(a, 30 * 0.001 * (cid + 1), rtol=1e-5)
            # the critic each client trained from is the server's average (equal sample counts)
            last = np.mean([r.weights["critic.w"] for r in uploads[-3:]], axis=0)
            np.testing.assert_allclose(hist[name].global_weights["critic.w"], last, rtol=1e-6)
        else:
            assert all(set(r.weights) == {"actor.w", "critic.w"} for r in uploads)
        # both methods set the critic to the server's average at every broadcast; only fedavg does it to actors
        assert len({float(c[0]) for c in critics}) == 3                 # each trained one more round locally
    cfrl_clients = _clients(_recorder)
    run_federation(cfrl_clients, make_strategy("cfrl"), rounds=2, seed=0)
    fed_clients = _clients(_recorder)
    run_federation(fed_clients, make_strategy("fedavg"), rounds=2, seed=0)
    spread = lambda cs: np.ptp([c.agent.get_weights()["actor.w"][0] for c in cs])  # noqa: E731
    # after a FedAvg broadcast every actor restarts from one average; CFRL's actors drift apart by their data
    assert spread(cfrl_clients) == pytest.approx(20 * 0.002, rel=1e-4)
    assert spread(fed_clients) == pytest.approx(10 * 0.002, rel=1e-4)


def test_cfrl_refuses_envs_without_hosts_on_a_shared_resource():
    ok = _clients(_recorder, n=1)[0]
    make_strategy("cfrl").client_hook().attach(ok)
    single = Client(0, gym.make("frl/MecAllocation-v0"), gym.make("frl/MecAllocation-v0"),
                    lambda: _recorder(0), steps_per_round=10)
    with pytest.raises(FederationError, match=r"'frl/MecAllocation-v0'.*allowed: frl/MecAllocation-v0") as e:
        make_strategy("cfrl").client_hook().attach(single)
    assert "\n" not in str(e.value)
    v2x = _clients(_recorder, n=1, env_fn=lambda: cv2x_parallel_env())[0]
    with pytest.raises(FederationError, match="cv2x_v0.*shared resource"):
        make_strategy("cfrl").client_hook().attach(v2x)


def test_cfrl_refuses_agents_without_an_actor_critic_split_and_leaked_actors():
    env = parallel_env()
    obs_space, act_space = env.observation_space("host_0"), env.action_space("host_0")
    shared = agent_class("ppo")(obs_space, act_space, seed=0, shared_body=True)
    client = Client(0, env, parallel_env(), lambda: shared, steps_per_round=10)
    with pytest.raises(FederationError, match="actor.*critic.*allowed: ppo or a2c"):
        make_strategy("cfrl").client_hook().attach(client)
    w = {"critic.w": np.zeros(3, np.float32)}
    leak = FitResult(client_id=0, weights={**w, "actor.w": np.zeros(2, np.float32)}, num_samples=1, metrics={})
    with pytest.raises(FederationError):
        make_strategy("cfrl").aggregate_train(1, w, [leak])


def test_cfrl_with_ppo_learns_allocations_better_than_random_shares():
    """A real run: two regions, PPO actor-critic, 6 short rounds; CFRL's actors beat random shares."""
    ppo = agent_class("ppo")
    env0 = parallel_env(episode_slots=20)
    spaces = env0.observation_space("host_0"), env0.action_space("host_0")
    cfg = dict(gamma=0.5, gae_lambda=0.9, n_steps=64, lr=1e-3, log_std_init=-1.0, hidden_sizes=(32, 32))
    clients = _clients(lambda cid: ppo(*spaces, seed=np.random.SeedSequence([7, cid]), **cfg), n=2,
                       env_fn=lambda: parallel_env(episode_slots=20))
    for c in clients:
        c.steps_per_round = 1200
    hist = run_federation(clients, make_strategy("cfrl"), rounds=6, seed=1, eval_every=6, eval_seeds=(0,))
    assert set(hist.global_weights) and all(k.startswith("critic.") for k in hist.global_weights)
    seeds = [21, 22, 23]
    learned, rand = [], []
    for c in clients:
        learned.append(evaluate_parallel(c.eval_env, lambda o, a=c.agent: a.act(o, explore=False), seeds)["return"])
        rand.append(evaluate_parallel(c.eval_env, PARALLEL_BASELINES["random"](c.eval_env, 0), seeds,
                                      joint=True)["return"])
    assert np.mean(learned) > np.mean(rand) + 0.5
