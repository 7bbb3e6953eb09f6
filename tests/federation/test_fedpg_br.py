"""FedPG-BR's Byzantine filter: keeps every honest update and drops far outliers while attackers are a
minority (property test of the R2 rule under the paper's bounded-deviation assumption), the estimated-σ
mode on realistic clusters, the strategy's update and its parameter checks."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import agent_class
from federation.client import Client
from federation.strategies import make_strategy
from federation.strategies.fedpg_br import FedPGBR, fedpg_aggregate, filter_updates, majority_radii
from federation.types import FederationError, FitResult


def _unit(rng, d):
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


@settings(max_examples=150, deadline=None)
@given(k=st.integers(3, 15), d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       sigma=st.floats(1e-3, 1e3), collude=st.booleans(), far=st.floats(7.01, 1e4))
def test_r2_keeps_every_honest_update_and_drops_far_outliers(k, d, seed, sigma, collude, far):
    """Honest updates within σ of the true gradient c, fewer than half attackers farther than 7σ from c
    (colluding at one point or scattered): R2 (radius 2σ) keeps exactly the honest ones."""
    rng = np.random.default_rng(seed)
    n_bad = int(rng.integers(0, (k - 1) // 2 + 1))  # strictly fewer than half
    c = rng.normal(size=d) * sigma * 10
    honest = [c + _unit(rng, d) * sigma * rng.uniform(0, 1) for _ in range(k - n_bad)]
    spot = c + _unit(rng, d) * sigma * far
    bad = [spot if collude else c + _unit(rng, d) * sigma * far * rng.uniform(1, 3) for _ in range(n_bad)]
    order = rng.permutation(k)
    x = np.stack(honest + bad)[order]
    is_bad = order >= k - n_bad
    good, mom = filter_updates(x, 2 * sigma)
    assert mom is not None and not is_bad[mom]
    assert sorted(good) == sorted(np.flatnonzero(~is_bad).tolist())


def test_auto_sigma_separates_attackers_from_a_noisy_honest_cluster():
    """7 honest updates = signal + noise (d = 500, noise half the signal), 3 attackers:
    sign-flipped ×2.5, Gaussian noise of large scale, or boosted ×10 — all rejected, all honest kept."""
    rng = np.random.default_rng(0)
    d = 500
    signal = rng.normal(size=d) * 0.02
    honest = [signal + rng.normal(size=d) * 0.01 for _ in range(7)]
    attacks = {"sign-flip": [-2.5 * (signal + rng.normal(size=d) * 0.01) for _ in range(3)],
               "gaussian": [rng.normal(size=d) for _ in range(3)],
               "scale": [10 * (signal + rng.normal(size=d) * 0.01) for _ in range(3)]}
    for name, bad in attacks.items():
        good, rule, radius = fedpg_aggregate(np.stack(honest + bad), sigma=0.0, alpha=0.3, delta=0.6, batch=16)
        assert rule == "auto" and radius > 0
        assert good == list(range(7)), name


def test_r1_then_r2_fallback():
    rng = np.random.default_rng(1)
    x = np.stack([rng.normal(size=4) * 0.1 for _ in range(8)] + [np.full(4, 50.0)] * 2)
    good, rule, r = fedpg_aggregate(x, sigma=1.0, alpha=0.2, delta=0.6, batch=16)
    assert rule == "R1" and good == list(range(8))
    # honest spread beyond R1's radius: R1 keeps too few, R2 (2σ) keeps the honest ones
    x2 = np.stack([np.eye(4)[i % 4] * 0.9 * (1 if i < 4 else -1) for i in range(8)] + [np.full(4, 50.0)] * 2)
    good, rule, r = fedpg_aggregate(x2, sigma=1.0, alpha=0.2, delta=0.6, batch=1000)
    assert rule == "R2" and r == 2.0 and good == list(range(8))


def test_majority_radii_and_no_majority():
    d = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], float)
    np.testing.assert_array_equal(majority_radii(d), [1, 1, 4])
    assert majority_radii(np.zeros((1, 1))).tolist() == [0.0]
    good, mom = filter_updates(np.array([[0.0], [10.0], [20.0], [30.0]]), 1.0)  # nobody has a majority
    assert good == [] and mom is None


def _results(rows):
    return [FitResult(i, {"a": r[:2].astype(np.float32), "b": r[2:].astype(np.float32)}, 1) for i, r in enumerate(rows)]


def test_strategy_applies_the_mean_of_the_accepted_updates_and_records_them():
    rng = np.random.default_rng(2)
    w = {"a": np.ones(2, np.float32), "b": np.zeros(3, np.float32)}
    base = np.r_[w["a"], w["b"]]
    deltas = [rng.normal(size=5) * 0.01 + 0.05 for _ in range(7)] + [np.full(5, -3.0)] * 3
    s = FedPGBR()
    new = s.aggregate_train(1, w, _results([base + dl for dl in deltas]))
    expect = base + np.mean(deltas[:7], axis=0)
    np.testing.assert_allclose(np.r_[new["a"], new["b"]], expect, atol=1e-6)
    assert new["a"].dtype == np.float32
    assert s.history[-1]["accepted"] == list(range(7)) and s.history[-1]["rejected"] == [7, 8, 9]
    # no majority agrees: the global model is kept
    s2 = FedPGBR(sigma=1e-6, alpha=0.0)
    far = [base + np.full(5, 10.0 * i) for i in range(4)]
    kept = s2.aggregate_train(1, w, _results(far))
    np.testing.assert_array_equal(kept["a"], w["a"])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 9))
def test_strategy_is_permutation_invariant(seed, k):
    rng = np.random.default_rng(seed)
    w = {"a": rng.normal(size=2).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
    rows = [rng.normal(size=5) for _ in range(k)]
    perm = rng.permutation(k)
    a = FedPGBR().aggregate_train(1, w, _results(rows))
    b = FedPGBR().aggregate_train(1, w, _results([rows[i] for i in perm]))
    for key in w:
        np.testing.assert_array_equal(a[key], b[key])


def test_registry_params_and_errors():
    s = make_strategy("fedpg-br", sigma=0.06, delta=0.6, batch=16)
    assert s.params() == {"sigma": 0.06, "alpha": 0.3, "delta": 0.6, "batch": 16}
    for kw, word in [({"alpha": 0.5}, "alpha"), ({"delta": 1.0}, "delta"), ({"sigma": -1}, "sigma"),
                     ({"batch": 0}, "batch"), ({"batch": 1.5}, "batch")]:
        with pytest.raises(FederationError, match=word) as e:
            make_strategy("fedpg-br", **kw)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("agent, ok", [("reinforce", True), ("ppo", True), ("dqn", False)])
def test_client_half_accepts_only_policy_gradient_agents(agent, ok):
    env = gym.make("CartPole-v1")
    cls = agent_class(agent)
    c = Client(0, env, gym.make("CartPole-v1"), lambda: cls(env.observation_space, env.action_space, seed=0),
               steps_per_round=10)
    if ok:
        c.use(FedPGBR().client_hook())
    else:
        with pytest.raises(FederationError, match="policy-gradient"):
            c.use(FedPGBR().client_hook())
