"""FedAvg against hand-computed arrays, its invariants, and update validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.strategies import FedAvg, Local, make_strategy, weighted_average
from federation.types import FederationError, FitResult


def test_weighted_average_hand_computed():
    a = {"w": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([[0.0]], dtype=np.float32)}
    b = {"w": np.array([3.0, 6.0], dtype=np.float32), "b": np.array([[4.0]], dtype=np.float32)}
    out = weighted_average([a, b], [1, 3])
    # (1·[1,2] + 3·[3,6]) / 4 = [2.5, 5.0];  (1·0 + 3·4) / 4 = 3
    np.testing.assert_array_equal(out["w"], np.array([2.5, 5.0], dtype=np.float32))
    np.testing.assert_array_equal(out["b"], np.array([[3.0]], dtype=np.float32))
    assert out["w"].dtype == np.float32


def test_fedavg_strategy_uses_sample_weights():
    g = {"w": np.zeros(3, dtype=np.float32)}
    res = [FitResult(0, {"w": np.full(3, 10.0, np.float32)}, 100),
           FitResult(1, {"w": np.full(3, 20.0, np.float32)}, 300)]
    new = FedAvg().aggregate_train(1, g, res)
    np.testing.assert_allclose(new["w"], np.full(3, 17.5))


def test_local_strategy_broadcasts_nothing_and_keeps_global():
    g = {"w": np.ones(2, dtype=np.float32)}
    s = Local()
    assert all(ins.weights == {} for ins in s.configure_train(1, g, [0, 1]))
    assert s.aggregate_train(1, g, [FitResult(0, {}, 5)]) is g


arrays = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=4, max_size=4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(arrays, st.integers(1, 1000)), min_size=1, max_size=6), st.randoms())
def test_fedavg_permutation_invariant(updates, rnd):
    ws = [{"w": np.array(u, dtype=np.float64)} for u, _ in updates]
    ns = [n for _, n in updates]
    order = list(range(len(ws)))
    rnd.shuffle(order)
    a = weighted_average(ws, ns)["w"]
    b = weighted_average([ws[i] for i in order], [ns[i] for i in order])["w"]
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(arrays, st.lists(st.integers(1, 1000), min_size=1, max_size=6))
def test_fedavg_identical_updates_is_identity(u, ns):
    w = {"w": np.array(u, dtype=np.float32)}
    out = weighted_average([w] * len(ns), ns)
    np.testing.assert_allclose(out["w"], w["w"], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("bad, match", [
    ({"w": np.array([np.nan, 0.0], dtype=np.float32)}, "NaN"),
    ({"w": np.zeros(3, dtype=np.float32)}, "shape"),
    ({"v": np.zeros(2, dtype=np.float32)}, "keys"),
])
def test_bad_update_is_refused_with_its_client_and_key(bad, match):
    g = {"w": np.zeros(2, dtype=np.float32)}
    with pytest.raises(FederationError, match=match) as e:
        FedAvg().aggregate_train(1, g, [FitResult(7, bad, 10)])
    assert "client 7" in str(e.value)


def test_unknown_strategy_lists_allowed():
    with pytest.raises(FederationError, match="allowed: fedavg, .*local.*ditto"):
        make_strategy("fedmagic")
