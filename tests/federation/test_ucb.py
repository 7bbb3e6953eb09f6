"""UCB participant selection (Cao et al. 2022): explores every client, then prefers high-UCB ones; seeded;
only selected clients upload; the dueling head stays personal with share=body."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.ucb import UCB, ucb_scores
from federation.types import FederationError, FitResult

torch.set_num_threads(1)
ENV = "frl/CartPoleHetero-v0"


def _feed(strat: UCB, rnd: int, rewards: dict[int, float]) -> list[int]:
    """One round of the server half with scalar 'weights' and the given per-client rewards."""
    w = {"x": np.zeros(1, np.float32)}
    ins = strat.configure_train(rnd, w, list(rewards))
    chosen = [i.client_id for i in ins if i.config["upload"]]
    res = [FitResult(i.client_id, {"x": np.ones(1, np.float32)} if i.config["upload"] else {}, 10,
                     {"train/episode_return": rewards[i.client_id]}) for i in ins]
    strat.aggregate_train(rnd, w, res)
    return chosen


def test_ucb1_index():
    s = ucb_scores(np.array([1.0, 2.0, 0.0]), np.array([4, 1, 0]), 5, 0.5, 2.0)
    np.testing.assert_allclose(s[:2], [1.0 + np.sqrt(2 * np.log(5) / 4), 2.0 + np.sqrt(2 * np.log(5))])
    assert s[2] == np.inf


def test_explores_every_client_then_prefers_high_reward():
    strat = make_strategy("ucb", select_fraction=0.25, c=0.1)
    strat.reseed(np.random.SeedSequence(7))
    rewards = {c: float(c) for c in range(8)}  # client 7 is best
    picks = [_feed(strat, r, rewards) for r in range(1, 31)]
    assert all(len(p) == 2 for p in picks)
    assert sorted(c for p in picks[:4] for c in p) == list(range(8))  # every client once before any twice
    late = [c for p in picks[10:] for c in p]
    assert late.count(7) >= 15 and late.count(6) >= 10 and late.count(0) <= 2


def test_large_exploration_coefficient_spreads_selection():
    greedy, curious = make_strategy("ucb", select_fraction=0.25, c=0.0), make_strategy("ucb", select_fraction=0.25,
                                                                                        c=20.0)
    for s in (greedy, curious):
        s.reseed(np.random.SeedSequence(1))
    rewards = {c: float(c) for c in range(8)}
    g = [c for r in range(1, 31) for c in _feed(greedy, r, rewards)][8:]
    k = [c for r in range(1, 31) for c in _feed(curious, r, rewards)][8:]
    assert len(set(k)) > len(set(g)) and set(g) == {6, 7}


def test_deterministic_with_a_seed():
    def run(seed):
        s = make_strategy("ucb", select_fraction=0.5)
        s.reseed(np.random.SeedSequence(seed))
        return [_feed(s, r, dict.fromkeys(range(6), 1.0)) for r in range(1, 6)]
    assert run(3) == run(3)
    assert any(run(3) != run(s) for s in (4, 5, 6))


def test_bad_params_are_one_line_errors():
    for kw, word in (({"select_fraction": 0}, "select_fraction"), ({"select_fraction": 1.5}, "select_fraction"),
                     ({"c": -1}, "c=-1"), ({"share": "head"}, "share='head'"), ({"metric": ""}, "metric")):
        with pytest.raises(FederationError, match=word) as e:
            make_strategy("ucb", **kw)
        assert "\n" not in str(e.value)
    assert "ucb" in STRATEGIES


def _clients(n=3, steps=80, personal="head"):
    cls = agent_class("dqn")
    out = []
    for cid in range(n):
        length = 0.2 + 0.3 * cid
        env = gym.make(ENV, half_pole_length=length)
        env.reset(seed=cid)
        out.append(Client(cid, env, gym.make(ENV, half_pole_length=length),
                          lambda env=env: cls(env.observation_space, env.action_space, seed=3, learning_starts=20,
                                              batch_size=16, hidden_sizes=(16,), dueling=True, personal=personal),
                          steps_per_round=steps))
    return out


def test_round_loop_only_selected_upload_and_head_stays_personal():
    clients = _clients()
    strat = make_strategy("ucb", select_fraction=0.34)
    hist = run_federation(clients, strat, rounds=4, seed=0, eval_seeds=(1,))
    assert all(len(p) == 1 for p in strat.history)
    assert sorted(c for p in strat.history[:3] for c in p) == [0, 1, 2]
    assert set(hist.global_weights) == {"body.0.weight", "body.0.bias"}  # the dueling streams never leave
    up = {(r, c): v for r, c, m, v in hist.rows if m == "comm/bytes_up"}
    for rnd, chosen in enumerate(strat.history, start=1):
        for c in range(3):
            assert (up[(rnd, c)] > 0) == (c in chosen)
    heads = [c.agent.get_weights()["head.advantage.weight"] for c in clients]
    assert not np.allclose(heads[0], heads[1])
    assert all(c.samples_seen == 4 * 80 for c in clients)  # every client trains every round


def test_share_body_needs_a_personal_head():
    with pytest.raises(FederationError, match="personal='head'"):
        run_federation(_clients(2, personal="none"), make_strategy("ucb"), rounds=1, seed=0)
    hist = run_federation(_clients(2, personal="none"), make_strategy("ucb", share="all"), rounds=1, seed=0)
    assert "head.value.weight" in hist.global_weights
