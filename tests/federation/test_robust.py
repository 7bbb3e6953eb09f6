"""Robust aggregation (median, trimmed mean, Krum, Multi-Krum): hand-computed arrays and invariants."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import federation.strategies.robust as robust
from federation.strategies.robust import (
    Krum,
    Median,
    MultiKrum,
    TrimmedMean,
    coordinate_median,
    flatten,
    krum,
    krum_scores,
    multi_krum,
    pairwise_sq_distances,
    trim_count,
    trimmed_mean,
    unflatten,
)
from federation.types import FederationError, FitResult


def _w(*vectors, key="w"):
    return [{key: np.asarray(v, dtype=np.float32)} for v in vectors]


def _res(updates, ns=None):
    ns = ns or [1] * len(updates)
    return [FitResult(i, u, n) for i, (u, n) in enumerate(zip(updates, ns, strict=True))]


# Strategy factories with parameters that accept n ≥ 6 updates and can tolerate one Byzantine client.
RULES = {
    "median": Median,
    "trimmed-mean": lambda: TrimmedMean(beta=0.2),
    "krum": lambda: Krum(num_byzantine=1),
    "multi-krum": lambda: MultiKrum(num_byzantine=1),
}


# --- hand-computed -----------------------------------------------------------------------------------------


def test_coordinate_median_hand_computed():
    out = coordinate_median(_w([1.0, 10.0], [2.0, -5.0], [7.0, 0.0]))
    np.testing.assert_array_equal(out["w"], np.array([2.0, 0.0], np.float32))
    assert out["w"].dtype == np.float32
    # even n: mean of the two middle values, per coordinate: [1,2,3,10] → 2.5
    np.testing.assert_array_equal(coordinate_median(_w([1.0], [10.0], [3.0], [2.0]))["w"], [2.5])


@pytest.mark.parametrize("n, beta, k", [(5, 0.2, 1), (4, 0.2, 0), (10, 0.25, 2), (3, 0.49, 1), (7, 0.0, 0)])
def test_trim_count_is_floor_beta_n(n, beta, k):
    assert trim_count(n, beta) == k


def test_trimmed_mean_hand_computed():
    ups = _w([1.0, -50.0], [100.0, 3.0], [3.0, 0.0], [2.0, 2.0], [4.0, 1.0])
    # β = 0.2, n = 5 → drop 1 value at each end: coord 0 sorted [1,2,3,4,100] → mean(2,3,4) = 3;
    # coord 1 sorted [-50,0,1,2,3] → mean(0,1,2) = 1
    np.testing.assert_array_equal(trimmed_mean(ups, 0.2)["w"], [3.0, 1.0])
    # β = 0.1 → ⌊0.5⌋ = 0: the plain mean [110/5, -44/5]
    np.testing.assert_allclose(trimmed_mean(ups, 0.1)["w"], [22.0, -8.8], rtol=1e-6)


def test_trimmed_mean_refuses_a_beta_that_trims_everything():
    with pytest.raises(FederationError, match=r"beta=0.5 would trim every value; allowed: \[0, 0.5\)"):
        trimmed_mean(_w([1.0], [2.0]), 0.5)
    with pytest.raises(FederationError, match=r"beta=0.4999999999999 trims all n=2 values"):
        TrimmedMean(beta=0.4999999999999).aggregate_train(1, {"w": np.zeros(1, np.float32)},
                                                          _res(_w([1.0], [2.0])))


def test_pairwise_sq_distances_hand_computed():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    # |(3,4)|² = 25, |(0,1)|² = 1, |(3,4) − (0,1)|² = 9 + 9 = 18
    np.testing.assert_allclose(pairwise_sq_distances(x), [[0, 25, 1], [25, 0, 18], [1, 18, 0]], atol=1e-12)


def test_flatten_unflatten_round_trip_in_key_order():
    u = {"b": np.array([[1.0, 2.0]], np.float32), "a": np.array([3.0], np.float64)}
    x = flatten([u], ["a", "b"])
    np.testing.assert_array_equal(x, [[3.0, 1.0, 2.0]])
    back = unflatten(x[0], u, ["a", "b"])
    assert back["b"].shape == (1, 2) and back["b"].dtype == np.float32 and back["a"].dtype == np.float64
    np.testing.assert_array_equal(back["b"], u["b"])


# 1-D points [0, 1, 1.5, 3, 10], stored as a = [x] and b = [[2x]], so every squared distance is 5·(Δx)².
# f = 1 → each score sums the n − f − 2 = 2 nearest squared distances (in x):
#   0: 1 + 2.25 = 3.25     1: 0.25 + 1 = 1.25     1.5: 0.25 + 2.25 = 2.5
#   3: 2.25 + 4 = 6.25     10: 49 + 72.25 = 121.25
POINTS = [0.0, 1.0, 1.5, 3.0, 10.0]
UPDATES = [{"a": np.array([p], np.float32), "b": np.array([[2 * p]], np.float32)} for p in POINTS]


def test_krum_scores_hand_computed():
    x = flatten(UPDATES, ["a", "b"])
    np.testing.assert_allclose(krum_scores(x, 1), 5 * np.array([3.25, 1.25, 2.5, 6.25, 121.25]), rtol=1e-12)


def test_krum_picks_the_minimum_score_update():
    out = krum(UPDATES, 1)
    np.testing.assert_array_equal(out["a"], [1.0])
    np.testing.assert_array_equal(out["b"], [[2.0]])
    assert out["b"].dtype == np.float32 and out["a"] is not UPDATES[1]["a"]


def test_multi_krum_averages_the_m_best():
    # best three: x = 1 (1.25), 1.5 (2.5), 0 (3.25) → mean 2.5 / 3
    out = multi_krum(UPDATES, 1, 3)
    np.testing.assert_allclose(out["a"], [2.5 / 3], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[5.0 / 3]], rtol=1e-6)
    np.testing.assert_allclose(multi_krum(UPDATES, 1, 2)["a"], [1.25], rtol=1e-6)
    # m = 0 → n − f = 4: drops only x = 10 → mean(0, 1, 1.5, 3) = 1.375
    np.testing.assert_allclose(MultiKrum(num_byzantine=1).aggregate_train(1, UPDATES[0], _res(UPDATES))["a"],
                               [1.375], rtol=1e-6)


def test_multi_krum_ignores_sample_counts():
    g = UPDATES[0]
    a = MultiKrum(num_byzantine=1, m=3).aggregate_train(1, g, _res(UPDATES, [1, 1, 1, 1, 1]))
    b = MultiKrum(num_byzantine=1, m=3).aggregate_train(1, g, _res(UPDATES, [1000, 1, 5, 1, 1]))
    np.testing.assert_array_equal(a["a"], b["a"])


def test_krum_ties_are_broken_by_content_not_client_order():
    # 1-D points [0, 1, 2, 3, 10], f = 1: points 1 and 2 tie with score 2; every order must pick the same one
    ups = _w([0.0], [1.0], [2.0], [3.0], [10.0])
    picks = {float(krum([ups[i] for i in p], 1)["w"][0]) for p in itertools.permutations(range(5))}
    assert len(picks) == 1 and picks <= {1.0, 2.0}


# --- invariants (hypothesis) -------------------------------------------------------------------------------

# small pools of values make exact ties (and hence tie-breaking) common
value = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0]),
                  st.floats(-1e3, 1e3, allow_nan=False, width=32))
vec = st.lists(value, min_size=3, max_size=3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(RULES)), st.lists(vec, min_size=6, max_size=8),
       st.lists(st.integers(1, 100), min_size=8, max_size=8), st.randoms())
def test_permutation_invariant(rule, vectors, ns, rnd):
    res = _res(_w(*vectors), ns[:len(vectors)])
    shuffled = list(res)
    rnd.shuffle(shuffled)
    g = {"w": np.zeros(3, np.float32)}
    a = RULES[rule]().aggregate_train(1, g, res)["w"]
    b = RULES[rule]().aggregate_train(1, g, shuffled)["w"]
    np.testing.assert_array_equal(a, b)  # exact: sorting and content-ordered tie-breaks, no order dependence


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([*sorted(RULES), "krum-f0", "multi-krum-f0"]), vec, st.integers(3, 7))
def test_identical_updates_give_the_identity(rule, w, n):
    cls = {"krum-f0": Krum, "multi-krum-f0": MultiKrum}.get(rule) or RULES[rule]
    if rule in ("krum", "multi-krum") and n < 5:
        n = 5  # f = 1 needs n > 4
    g = {"w": np.array(w, np.float32)}
    out = cls().aggregate_train(1, {"w": np.zeros(3, np.float32)}, _res([g] * n))
    np.testing.assert_allclose(out["w"], g["w"], rtol=1e-6, atol=1e-6)


honest_vec = st.lists(st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=3, max_size=3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([*sorted(RULES), "krum-f0"]), st.lists(honest_vec, min_size=5, max_size=5),
       st.sampled_from([1e6, -1e6]), st.integers(0, 5))
def test_one_outlier_does_not_move_the_result_out_of_the_honest_range(rule, honest, outlier, pos):
    cls = Krum if rule == "krum-f0" else RULES[rule]
    vectors = [*honest[:pos], [outlier] * 3, *honest[pos:]]
    h = np.array(honest, np.float32)
    out = cls().aggregate_train(1, {"w": np.zeros(3, np.float32)}, _res(_w(*vectors)))["w"]
    assert np.all(out >= h.min(axis=0) - 1e-6) and np.all(out <= h.max(axis=0) + 1e-6), out


@settings(max_examples=30, deadline=None)
@given(st.lists(vec, min_size=3, max_size=8), st.integers(0, 2))
def test_krum_returns_one_of_the_inputs(vectors, f):
    f = min(f, (len(vectors) - 3) // 2)
    out = krum(_w(*vectors), f)["w"]
    assert any(np.array_equal(out, np.asarray(v, np.float32)) for v in vectors)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_global_keys_absent_from_results_are_kept(rule, monkeypatch):
    # validate_results requires matching keys today; the strategies must still never invent or drop a key
    monkeypatch.setattr(robust, "validate_results", lambda w, r: None)
    personal = np.array([7.0, 8.0], np.float32)
    g = {"w": np.zeros(1, np.float32), "head": personal}
    out = RULES[rule]().aggregate_train(1, g, _res(_w(*[[x] for x in POINTS + [2.0]])))
    assert set(out) == {"w", "head"} and out["head"] is personal


# --- parameters and refusals -------------------------------------------------------------------------------


def test_defaults_are_recorded_by_params():
    assert Median().params() == {}
    assert TrimmedMean().params() == {"beta": 0.2}
    assert Krum().params() == {"num_byzantine": 0}
    assert MultiKrum().params() == {"num_byzantine": 0, "m": 0}
    assert Krum(num_byzantine="2").params() == {"num_byzantine": 2}
    assert [c.name for c in (Median, TrimmedMean, Krum, MultiKrum)] == \
        ["median", "trimmed-mean", "krum", "multi-krum"]


@pytest.mark.parametrize("make, match", [
    (lambda: TrimmedMean(beta=0.5), r"trimmed-mean: beta=0.5 is out of range; allowed: \[0, 0.5\)"),
    (lambda: TrimmedMean(beta=-0.1), r"trimmed-mean: beta=-0.1 is out of range; allowed: \[0, 0.5\)"),
    (lambda: TrimmedMean(beta="x"), r"trimmed-mean: beta='x' is not a number"),
    (lambda: Krum(num_byzantine=-1),
     r"krum: num_byzantine=-1 is out of range; allowed: integer in \[0, inf\]"),
    (lambda: Krum(num_byzantine=1.5), r"krum: num_byzantine=1.5 is not an integer"),
    (lambda: MultiKrum(m=-2), r"multi-krum: m=-2 is out of range"),
    (lambda: MultiKrum(num_byzantine=True), r"multi-krum: num_byzantine=True is not an integer"),
])
def test_bad_params_are_refused_naming_them(make, match):
    with pytest.raises(FederationError, match=match):
        make()


@pytest.mark.parametrize("make", [lambda: Krum(num_byzantine=1), lambda: MultiKrum(num_byzantine=1)])
def test_krum_needs_more_than_2f_plus_2_updates(make):
    g = {"w": np.zeros(1, np.float32)}
    with pytest.raises(FederationError, match=r"n > 2f \+ 2.*n=4, f=1"):
        make().aggregate_train(1, g, _res(_w([0.0], [1.0], [2.0], [3.0])))


def test_multi_krum_refuses_m_above_n():
    match = r"multi-krum: m=6 is out of range for n=5 updates; allowed: \[1, 5\]"
    with pytest.raises(FederationError, match=match):
        MultiKrum(m=6).aggregate_train(1, UPDATES[0], _res(UPDATES))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_nan_update_is_refused(rule):
    g = {"w": np.zeros(1, np.float32)}
    ups = _w(*[[x] for x in POINTS], [np.nan])
    with pytest.raises(FederationError, match="client 5 update 'w' contains NaN"):
        RULES[rule]().aggregate_train(1, g, _res(ups))
