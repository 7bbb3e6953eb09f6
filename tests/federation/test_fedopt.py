"""Server optimisers (FedAvgM, FedAdam, FedYogi, FedAdagrad): hand-computed arrays and invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import federation.strategies.fedopt as fedopt
from federation.strategies.fedavg import FedAvg
from federation.strategies.fedopt import (
    FedAdagrad,
    FedAdam,
    FedAvgM,
    FedYogi,
    adaptive_step,
    momentum_step,
    pseudo_gradient,
    second_moment,
)
from federation.types import FederationError, FitResult

ALL = [FedAvgM, FedAdam, FedYogi, FedAdagrad]


def _res(*vectors, ns=None, key="w"):
    ns = ns or [1] * len(vectors)
    return [FitResult(i, {key: np.asarray(v, dtype=np.float32)}, n)
            for i, (v, n) in enumerate(zip(vectors, ns, strict=True))]


# --- hand-computed -----------------------------------------------------------------------------------------


def test_pseudo_gradient_is_sample_weighted_mean_minus_global():
    w = {"w": np.array([1.0, 1.0], np.float32)}
    ups = [{"w": np.array([1.0, 2.0], np.float32)}, {"w": np.array([3.0, 6.0], np.float32)}]
    d = pseudo_gradient(w, ups, [1, 3])
    # (1·[1,2] + 3·[3,6]) / 4 − [1,1] = [2.5, 5] − [1, 1]
    np.testing.assert_array_equal(d["w"], [1.5, 4.0])
    assert d["w"].dtype == np.float64


def test_momentum_step_hand_computed():
    w = {"w": np.array([1.0, -1.0], np.float32)}
    new, v = momentum_step(w, {"w": np.array([2.0, 0.0])}, {"w": np.array([1.0, 4.0])}, eta=0.5, beta=0.5)
    # v = 0.5·[1,4] + [2,0] = [2.5, 2];  w = [1,-1] + 0.5·[2.5, 2] = [2.25, 0]
    np.testing.assert_array_equal(v["w"], [2.5, 2.0])
    np.testing.assert_array_equal(new["w"], np.array([2.25, 0.0], np.float32))
    assert new["w"].dtype == np.float32


@pytest.mark.parametrize("rule, expected", [
    ("adagrad", [5.0, 5.0]),   # v + Δ² = [4,1] + [1,4]
    ("adam", [2.5, 2.5]),      # 0.5·[4,1] + 0.5·[1,4]
    ("yogi", [3.5, 3.0]),      # [4 − 0.5·1·sign(4−1), 1 − 0.5·4·sign(1−4)] = [4 − 0.5, 1 + 2]
])
def test_second_moment_rules_hand_computed(rule, expected):
    out = second_moment(rule, np.array([4.0, 1.0]), np.array([1.0, 2.0]), beta2=0.5)
    np.testing.assert_array_equal(out, expected)


def test_fedadam_asymmetric_betas_hand_computed():
    """β1 = 0.9, β2 = 0.99 (the defaults): swapping β1 with 1 − β1 (or β2 with 1 − β2) changes the result."""
    s = FedAdam(eta=0.1, beta1=0.9, beta2=0.99, tau=0.1)
    w = s.aggregate_train(1, {"w": np.array([0.0], np.float32)}, _res([2.0]))
    # Δ = 2;  m = 0.9·0 + 0.1·2 = 0.2;  v = 0.99·τ² + 0.01·4 = 0.0099 + 0.04 = 0.0499
    np.testing.assert_allclose(w["w"], [0.1 * 0.2 / (np.sqrt(0.0499) + 0.1)], rtol=1e-6)
    w2 = s.aggregate_train(2, w, _res(w["w"]))
    # Δ = 0;  m = 0.9·0.2 = 0.18;  v = 0.99·0.0499
    np.testing.assert_allclose(w2["w"], w["w"] + 0.1 * 0.18 / (np.sqrt(0.99 * 0.0499) + 0.1), rtol=1e-6)


def test_second_moment_unknown_rule_is_refused():
    with pytest.raises(FederationError, match="'rmsprop'.*allowed: adagrad, adam, yogi"):
        second_moment("rmsprop", np.zeros(1), np.zeros(1), 0.5)


def test_adaptive_step_hand_computed():
    w = {"w": np.array([0.0], np.float32)}
    new, m, v = adaptive_step(w, {"w": np.array([2.0])}, {"w": np.array([1.0])}, {"w": np.array([0.0])},
                              rule="adam", eta=0.3, beta1=0.5, beta2=0.75, tau=1.0)
    # m = 0.5·1 + 0.5·2 = 1.5;  v = 0.75·0 + 0.25·4 = 1;  w = 0 + 0.3·1.5/(√1 + 1) = 0.225
    np.testing.assert_array_equal(m["w"], [1.5])
    np.testing.assert_array_equal(v["w"], [1.0])
    np.testing.assert_allclose(new["w"], [0.225], rtol=1e-7)


def test_fedavgm_keeps_momentum_across_rounds():
    s = FedAvgM(eta=0.5, beta=0.5)
    w1 = s.aggregate_train(1, {"w": np.array([0.0], np.float32)}, _res([2.0], [2.0]))
    # Δ = 2, v = 2, w = 0 + 0.5·2 = 1
    np.testing.assert_array_equal(w1["w"], [1.0])
    w2 = s.aggregate_train(2, w1, _res([1.0], [1.0]))
    # Δ = 0, v = 0.5·2 + 0 = 1, w = 1 + 0.5·1 = 1.5: momentum keeps moving the model
    np.testing.assert_array_equal(w2["w"], [1.5])
    s.reset()
    np.testing.assert_array_equal(s.aggregate_train(3, w1, _res([1.0]))["w"], [1.0])


@pytest.mark.parametrize("cls, v1", [
    (FedAdam, [0.625, 4.625]),     # 0.5·τ² + 0.5·Δ² = 0.125 + 0.5·[1, 9]
    (FedYogi, [0.75, 4.75]),       # τ² − 0.5·Δ²·sign(τ² − Δ²) = 0.25 + 0.5·[1, 9]
    (FedAdagrad, [1.25, 9.25]),    # τ² + Δ² = 0.25 + [1, 9]
])
def test_adaptive_strategies_two_rounds_hand_computed(cls, v1):
    kw = {"eta": 0.1, "beta1": 0.5, "tau": 0.5} | ({} if cls is FedAdagrad else {"beta2": 0.5})
    s = cls(**kw)
    w0 = {"w": np.zeros(2, np.float32)}
    # round 1: clients at [1, -3] (weights 1 and 3 at the same point) → Δ = [1, -3], m = 0.5·Δ = [0.5, -1.5]
    m1, v1 = np.array([0.5, -1.5]), np.array(v1)
    w1 = s.aggregate_train(1, w0, _res([1.0, -3.0], [1.0, -3.0], ns=[1, 3]))
    expected1 = 0.1 * m1 / (np.sqrt(v1) + 0.5)
    np.testing.assert_allclose(w1["w"], expected1, rtol=1e-6)
    # round 2: clients return the global model unchanged → Δ = 0, m = 0.5·m1; v decays (Adam), stays (Yogi,
    # Adagrad); the model still moves by η·m/(√v + τ)
    v2 = 0.5 * v1 if cls is FedAdam else v1
    w2 = s.aggregate_train(2, w1, _res(w1["w"]))
    np.testing.assert_allclose(w2["w"], w1["w"] + 0.1 * (0.5 * m1) / (np.sqrt(v2) + 0.5), rtol=1e-6)


# --- invariants --------------------------------------------------------------------------------------------


def test_fedavgm_with_no_momentum_and_unit_step_is_fedavg():
    rng = np.random.default_rng(0)
    g_m = g_a = {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=2).astype(np.float32)}
    s, avg = FedAvgM(eta=1.0, beta=0.0), FedAvg()
    for rnd in range(1, 4):
        res = [FitResult(c, {k: rng.normal(size=v.shape).astype(np.float32) for k, v in g_a.items()},
                         int(rng.integers(1, 100))) for c in range(4)]
        g_m, g_a = s.aggregate_train(rnd, g_m, res), avg.aggregate_train(rnd, g_a, res)
        for k in g_a:
            np.testing.assert_allclose(g_m[k], g_a[k], rtol=1e-6, atol=1e-6)
            assert g_m[k].dtype == g_a[k].dtype


vec = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=3, max_size=3)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ALL), vec, st.lists(st.integers(1, 1000), min_size=1, max_size=5),
       st.integers(1, 3))
def test_identical_updates_equal_to_global_leave_it_unchanged(cls, w, ns, rounds):
    g = {"w": np.array(w, np.float32)}
    s = cls()
    for rnd in range(1, rounds + 1):
        out = s.aggregate_train(rnd, g, _res(*[g["w"]] * len(ns), ns=ns))
        np.testing.assert_array_equal(out["w"], g["w"])


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ALL), vec, st.lists(st.tuples(vec, st.integers(1, 1000)), min_size=1, max_size=5),
       st.randoms())
def test_permutation_invariant(cls, w, updates, rnd):
    g = {"w": np.array(w, np.float32)}
    res = _res(*[u for u, _ in updates], ns=[n for _, n in updates])
    shuffled = list(res)
    rnd.shuffle(shuffled)
    a, b = cls().aggregate_train(1, g, res)["w"], cls().aggregate_train(1, g, shuffled)["w"]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("cls", ALL)
def test_global_keys_absent_from_results_are_kept(cls, monkeypatch):
    # validate_results requires matching keys today; the strategies must still never invent or drop a key
    monkeypatch.setattr(fedopt, "validate_results", lambda w, r: None)
    personal = np.array([7.0, 8.0], np.float32)
    g = {"w": np.zeros(2, np.float32), "head": personal}
    out = cls().aggregate_train(1, g, _res([1.0, 1.0], [3.0, 3.0]))
    assert set(out) == {"w", "head"}
    assert out["head"] is personal
    assert np.all(out["w"] > 0)


# --- parameters and refusals -------------------------------------------------------------------------------


def test_defaults_are_recorded_by_params():
    assert FedAvgM().params() == {"eta": 1.0, "beta": 0.9}
    for cls in (FedAdam, FedYogi):
        assert cls().params() == {"eta": 1e-2, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}
    assert FedAdagrad().params() == {"eta": 1e-2, "beta1": 0.9, "tau": 1e-3}
    assert FedAdam(eta="0.5").params()["eta"] == 0.5  # numeric strings (from a command line) are accepted
    assert [c.name for c in ALL] == ["fedavgm", "fedadam", "fedyogi", "fedadagrad"]


@pytest.mark.parametrize("cls, kw, match", [
    (FedAvgM, {"eta": 0.0}, r"fedavgm: eta=0.0 is out of range; allowed: \(0, 100\]"),
    (FedAvgM, {"beta": 1.0}, r"fedavgm: beta=1.0 is out of range; allowed: \[0, 1\)"),
    (FedAdam, {"beta1": -0.1}, r"fedadam: beta1=-0.1 is out of range; allowed: \[0, 1\)"),
    (FedYogi, {"beta2": 1.5}, r"fedyogi: beta2=1.5 is out of range; allowed: \[0, 1\)"),
    (FedAdagrad, {"tau": 0}, r"fedadagrad: tau=0 is out of range; allowed: \(0, inf\)"),
    (FedAdam, {"eta": float("nan")}, r"fedadam: eta=nan is out of range"),
    (FedAdam, {"eta": float("inf")}, r"fedadam: eta=inf is out of range"),
    (FedAdam, {"eta": 1e30}, r"fedadam: eta=1e\+30 is out of range; allowed: \(0, 100\]"),
    (FedYogi, {"eta": "fast"}, r"fedyogi: eta='fast' is not a number; allowed: \(0, 100\]"),
    (FedAvgM, {"beta": True}, r"fedavgm: beta=True is not a number"),
])
def test_bad_params_are_refused_naming_them(cls, kw, match):
    with pytest.raises(FederationError, match=match):
        cls(**kw)


def test_params_are_keyword_only():
    with pytest.raises(TypeError):
        FedAdam(0.1)  # type: ignore[misc]


@pytest.mark.parametrize("cls", ALL)
def test_nan_update_is_refused(cls):
    g = {"w": np.zeros(2, np.float32)}
    with pytest.raises(FederationError, match="client 1 update 'w' contains NaN"):
        cls().aggregate_train(1, g, _res([1.0, 1.0], [np.nan, 0.0]))
