"""Every method's client half receives its parameter and uses it; the server half scores the right model.

A recording agent (weights are two small arrays; ``learn`` moves the trainable ones) makes each hook's effect
on the agent visible exactly, so a method that drops or swaps its parameter fails here.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.base import Agent, Weights
from federation import Client, run_federation
from federation.evaluation import evaluate_policy
from federation.strategies import make_strategy
from federation.types import FitIns


class OneStepBandit(gym.Env):
    """One decision per episode: action ``best`` pays 1, the other 0 (clients of different types disagree)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, best: int = 1) -> None:
        self.best = best

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), float(int(action) == self.best), True, False, {}


class RecordingAgent(Agent):
    """Acts by the sign of ``head.w``; ``learn`` adds ``push`` per step to every trainable weight."""

    name = "recording"

    def __init__(self, push: float = 0.01, personal: bool = False, head: float = 0.5) -> None:
        self.w: Weights = {"body.w": np.zeros(3, np.float32), "head.w": np.full(1, head, np.float32)}
        self.push, self.calls = push, []
        self.personal_prefixes = ("head.",) if personal else ()
        self.mu, self.anchor, self.trainable = 0.0, None, None

    def act(self, obs, *, explore=True):
        return int(self.w["head.w"][0] > 0)

    def learn(self, env, num_steps):
        self.calls.append(("learn", num_steps, self.trainable, self.mu))
        for k in self.w:
            if self.trainable is None or k.startswith(self.trainable):
                self.w[k] = self.w[k] + self.push * num_steps
        return {"train/steps": float(num_steps)}

    def get_weights(self):
        return {k: v.copy() for k, v in self.w.items()}

    def set_weights(self, weights):
        self.w.update({k: np.array(v, np.float32) for k, v in weights.items()})
        self.anchor = self.get_weights()

    def set_proximal(self, mu):
        self.calls.append(("prox", mu))
        self.mu = mu

    def set_anchor(self, weights):
        self.calls.append(("anchor", {k: v.copy() for k, v in weights.items()}))

    def set_trainable(self, prefixes):
        self.trainable = prefixes


def clients(n=2, steps=10, best=(1, 1), **agent_kw):
    out = []
    for cid in range(n):
        out.append(Client(cid, OneStepBandit(best[cid]), OneStepBandit(best[cid]),
                          lambda: RecordingAgent(**agent_kw), steps_per_round=steps,
                          make_env=lambda b=best[cid]: OneStepBandit(b), rng=np.random.default_rng(cid)))
    return out


def test_fedprox_client_trains_with_the_servers_mu():
    cs = clients()
    run_federation(cs, make_strategy("fedprox", mu=0.37), rounds=1, seed=0)
    assert ("prox", 0.37) in cs[0].agent.calls
    assert [c for c in cs[0].agent.calls if c[0] == "learn"][0][3] == 0.37  # set before learning


def test_ditto_personal_model_is_pulled_toward_the_received_model_with_lambda():
    cs = clients(steps=10)
    hist = run_federation(cs, make_strategy("ditto", lam=2.5), rounds=1, seed=0)
    personal = cs[0].hook.agent
    assert ("prox", 2.5) in personal.calls
    anchor = next(c[1] for c in personal.calls if c[0] == "anchor")
    assert all(np.array_equal(anchor[k], cs[0].received[k]) for k in anchor)
    assert [c[1] for c in personal.calls if c[0] == "learn"] == [5]  # half the budget
    assert [c[1] for c in cs[0].agent.calls if c[0] == "learn"] == [5]
    assert any(m == "personal/return" for _, _, m, _ in hist.rows)


@pytest.mark.parametrize("fraction, head_steps", [(0.3, 3), (0.8, 8)])
def test_fedrep_trains_head_for_its_fraction_then_body(fraction, head_steps):
    cs = clients(steps=10, personal=True)
    run_federation(cs, make_strategy("fedrep", head_fraction=fraction), rounds=1, seed=0)
    learns = [(n, t) for kind, n, t, *_ in cs[0].agent.calls if kind == "learn"]
    assert learns == [(head_steps, ("head.",)), (10 - head_steps, ("body.w",))]
    assert cs[0].agent.trainable is None


def test_finetune_scores_the_global_model_after_its_steps():
    cs = clients(head=-1.0, push=0.1)  # greedy action 0 (reward 0) until 10 fine-tuning steps flip it
    hist = run_federation(cs, make_strategy("finetune", steps=20), rounds=1, seed=0)
    final = {m: v for _, c, m, v in hist.rows if c == 0 and m.endswith("/return")}
    assert final["global/return"] == 0.0 and final["personal/return"] == 1.0


def test_ifca_clients_pick_the_cluster_that_serves_them():
    cs = clients(n=4, best=(1, 0, 1, 0), push=0.0)
    strat = make_strategy("ifca", num_clusters=2)
    strat.reseed(np.random.SeedSequence(0))
    strat._ensure_models(cs[0].agent.get_shared_weights())
    strat.models[0]["head.w"][:] = 1.0   # cluster 0 plays action 1
    strat.models[1]["head.w"][:] = -1.0  # cluster 1 plays action 0
    for c in cs:
        c.use(strat.client_hook())
    plan = strat.configure_train(1, {}, range(4))
    picks = [c.fit(ins).metrics["ifca/cluster"] for c, ins in zip(cs, plan, strict=True)]
    assert picks == [0.0, 1.0, 0.0, 1.0]


def test_ifca_separates_clients_that_truly_differ():
    """Both clusters start out playing the same action: random tie-breaking and training must split them."""
    cs = clients(n=4, best=(1, 0, 1, 0), push=0.0)

    def learn_toward_best(agent, env, steps):  # a learner that moves its head toward its env's best action
        agent.w["head.w"] = agent.w["head.w"] + (0.2 if env.best == 1 else -0.2)
        return {}
    for c in cs:
        c.agent.learn = lambda env, n, a=c.agent: learn_toward_best(a, env, n)
    strat = make_strategy("ifca", num_clusters=2)
    hist = run_federation(cs, strat, rounds=6, seed=0)
    last = {c: v for r, c, m, v in hist.rows if m == "ifca/cluster" and r == 6}
    assert last[0] == last[2] and last[1] == last[3] and last[0] != last[1]


def test_env_embedding_reports_the_personal_embedding():
    class WithEmbedding(RecordingAgent):
        def __init__(self):
            super().__init__()
            self.w["embedding"] = np.array([0.25, -0.5], np.float32)
            self.personal_prefixes = ("embedding",)
    cs = [Client(0, OneStepBandit(), OneStepBandit(), WithEmbedding, steps_per_round=4)]
    strat = make_strategy("env-embedding", dim=2)
    hist = run_federation(cs, strat, rounds=1, seed=0)
    assert [v for _, _, m, v in hist.rows if m.startswith("embedding/")] == pytest.approx([0.29, -0.46])
    np.testing.assert_allclose(strat.new_client_personal_weights()["embedding"], [0.29, -0.46], rtol=1e-6)


def test_local_uploads_nothing_and_has_no_global_score():
    cs = clients()
    hist = run_federation(cs, make_strategy("local"), rounds=2, seed=0)
    assert {v for _, _, m, v in hist.rows if m.startswith("comm/")} == {0.0}
    assert not any(m.startswith("global/") for _, _, m, _ in hist.rows)


def test_global_score_is_the_aggregated_model_evaluated():
    """``global/return`` must be the server's weights evaluated, not the client's own model."""
    cs = clients(n=2, best=(1, 1), head=-0.05, push=0.0)
    cs[1].agent.learn = lambda env, n: cs[1].agent.w.update({"head.w": np.full(1, 1.0, np.float32)}) or {}
    hist = run_federation(cs, make_strategy("fedavg"), rounds=1, seed=0, eval_seeds=(3,))
    # client 0's own head stays -0.05 (action 0, return 0); the mean head is 0.475 (action 1, return 1)
    scored = {m: v for _, c, m, v in hist.rows if c == 0 and m in ("own/return", "global/return")}
    probe = RecordingAgent()
    probe.set_weights(hist.global_weights)
    expect = evaluate_policy(OneStepBandit(1), lambda o: probe.act(o), [3])["return"]
    assert scored == {"own/return": 0.0, "global/return": expect} and expect == 1.0


def test_fit_names_no_strategy_key():
    """A FitIns config carrying only the round trains exactly like plain local training."""
    c = clients(n=1)[0]
    res = c.fit(FitIns(0, {"body.w": np.ones(3, np.float32), "head.w": np.ones(1, np.float32)}, {"round": 1}))
    assert res.num_samples == 10 and np.allclose(res.weights["body.w"], 1.1)
