"""Update compression: int8 error bound, exact top-k, error feedback, exact payload sizes, validation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from federation.compression import (
    TopKCompressor,
    apply_delta,
    delta,
    make_compressor,
    topk_count,
)
from federation.types import FederationError, weights_nbytes

finite32 = st.floats(min_value=-1e6, max_value=1e6, width=32, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=9),
                  elements=finite32))
def test_int8_decode_error_is_within_half_a_step(x):
    comp = make_compressor("int8")
    enc = comp.encode(0, {"w": x})
    out = comp.decode(enc)["w"]
    assert out.dtype == np.float32 and out.shape == x.shape
    scale = (float(x.max()) - float(x.min())) / 255
    assert enc.tensors["w"].scale == pytest.approx(scale)
    # the documented bound: scale/2, plus the single rounding of the output to float32
    bound = scale / 2 + float(np.spacing(np.float32(np.abs(x).max())))
    assert np.all(np.abs(out.astype(np.float64) - x.astype(np.float64)) <= bound)
    assert comp.nbytes(enc) == x.size + 16 == comp.nbytes_for({"w": x})


def test_int8_constant_tensor_is_exact_and_size_is_about_a_quarter():
    comp = make_compressor("int8")
    c = np.full((3, 4), -0.25, np.float32)
    assert np.array_equal(comp.decode(comp.encode(1, {"c": c}))["c"], c)
    w = {"a": np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32),
         "b": np.zeros(32, np.float32)}
    enc = comp.encode(1, w)
    assert comp.nbytes(enc) == 64 * 32 + 16 + 32 + 16
    assert 3.8 < weights_nbytes(w) / comp.nbytes(enc) < 4.0


def test_topk_keeps_exactly_the_k_largest_magnitudes():
    rng = np.random.default_rng(0)
    mags = rng.permutation(np.arange(1, 101, dtype=np.float32))
    x = (mags * rng.choice([-1, 1], size=100)).astype(np.float32).reshape(10, 10)
    comp = make_compressor("topk", ratio=0.07, error_feedback=False)
    enc = comp.encode(0, {"x": x})
    out = comp.decode(enc)["x"]
    kept = np.flatnonzero(out)
    assert len(kept) == 7 == topk_count(100, 0.07)
    assert set(kept) == set(np.argsort(-np.abs(x.ravel()))[:7])
    assert np.array_equal(out.ravel()[kept], x.ravel()[kept])
    assert comp.nbytes(enc) == 7 * (4 + 4) == comp.nbytes_for({"x": x})
    assert comp.residual(0) == {}


def test_topk_count_and_full_ratio_is_lossless():
    assert topk_count(30, 0.1) == 3 and topk_count(31, 0.1) == 4 and topk_count(5, 0.01) == 1
    assert topk_count(0, 0.5) == 0
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    comp = make_compressor("topk", ratio=1.0)
    assert np.array_equal(comp.decode(comp.encode(0, {"x": x}))["x"], x)


def test_error_feedback_transmits_the_sum_of_true_updates_up_to_a_bounded_residual():
    """Σ_t sent_t = Σ_t Δ_t − e_T, and ‖e_t‖ ≤ √(1−δ)/(1−√(1−δ)) · max‖Δ‖ with δ = k/n (Stich et al. 2018)."""
    rng = np.random.default_rng(0)
    n, ratio, rounds = 200, 0.05, 400
    gamma = math.sqrt(1 - topk_count(n, ratio) / n)  # δ = k/n = 10/200
    ef = make_compressor("topk", ratio=ratio)
    plain = make_compressor("topk", ratio=ratio, error_feedback=False)
    true_sum = np.zeros(n)
    sent_ef, sent_plain = np.zeros(n), np.zeros(n)
    max_norm, max_resid = 0.0, 0.0
    for _ in range(rounds):
        d = (1.0 + 0.5 * rng.standard_normal(n)).astype(np.float32)
        true_sum += d
        max_norm = max(max_norm, float(np.linalg.norm(d)))
        sent_ef += ef.decode(ef.encode(3, {"w": d}))["w"]
        sent_plain += plain.decode(plain.encode(3, {"w": d}))["w"]
        max_resid = max(max_resid, float(np.linalg.norm(ef.residual(3)["w"])))
    assert np.allclose(sent_ef, true_sum - ef.residual(3)["w"], atol=1e-6 * rounds)
    assert max_resid <= gamma / (1 - gamma) * max_norm
    rel = np.linalg.norm(sent_ef - true_sum) / np.linalg.norm(true_sum)
    rel_plain = np.linalg.norm(sent_plain - true_sum) / np.linalg.norm(true_sum)
    assert rel < 0.05 and rel_plain > 0.5
    ef.reset()
    assert ef.residual(3) == {}


def test_none_is_raw_and_payload_sizes_are_exact():
    w = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "step": np.array([7], dtype=np.int64)}
    none = make_compressor("none")
    enc = none.encode(0, w)
    assert none.lossless and none.nbytes(enc) == weights_nbytes(w) == none.nbytes_for(w)
    assert all(np.array_equal(none.decode(enc)[k], w[k]) for k in w)
    # integer tensors always go raw, whatever the method
    for name in ("int8", "topk"):
        comp = make_compressor(name)
        dec = comp.decode(comp.encode(0, w))
        assert np.array_equal(dec["step"], w["step"]) and dec["step"].dtype == np.int64
    big = {"w": np.random.default_rng(0).normal(size=10_000).astype(np.float32)}
    topk = make_compressor("topk", ratio=0.01)
    assert topk.nbytes(topk.encode(0, big)) == 100 * 8 == weights_nbytes(big) // 50


def test_delta_round_trip_through_int8():
    rng = np.random.default_rng(2)
    g = {"l.weight": rng.normal(size=(8, 4)).astype(np.float32),
         "l.bias": rng.normal(size=4).astype(np.float32)}
    w = {k: v + 0.01 * rng.normal(size=v.shape).astype(np.float32) for k, v in g.items()}
    d = delta(w, g)
    assert all(d[k].dtype == np.float32 for k in d)
    assert all(np.allclose(apply_delta(g, d)[k], w[k], atol=1e-7) for k in w)
    comp = make_compressor("int8")
    w_hat = apply_delta(g, comp.decode(comp.encode(0, d)))
    for k in w:
        scale = (d[k].max() - d[k].min()) / 255
        assert np.all(np.abs(w_hat[k] - w[k]) <= scale / 2 + 1e-6)
    with pytest.raises(FederationError, match=r"missing \['l.bias'\]"):
        delta({"l.weight": w["l.weight"]}, g)
    with pytest.raises(FederationError, match=r"'l.bias' has shape \(3,\); expected \(4,\)"):
        apply_delta(g, {**d, "l.bias": np.zeros(3, np.float32)})


def test_bad_names_params_and_payloads_are_refused():
    with pytest.raises(FederationError, match="unknown compression 'fp16'; allowed: none, int8, topk"):
        make_compressor("fp16")
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(FederationError, match=rf"ratio={bad} is out of range; allowed: \(0, 1\]"):
            make_compressor("topk", ratio=bad)
    with pytest.raises(FederationError, match="allowed: ratio, error_feedback"):
        make_compressor("topk", k=3)
    with pytest.raises(FederationError, match="allowed: none"):
        make_compressor("int8", bits=4)
    with pytest.raises(FederationError, match=r"client 2 update 'w' contains NaN"):
        make_compressor("int8").encode(2, {"w": np.array([1.0, np.nan], np.float32)})
    enc = make_compressor("int8").encode(0, {"w": np.ones(3, np.float32)})
    with pytest.raises(FederationError, match="encoded with 'int8'; this compressor is 'topk'"):
        make_compressor("topk").decode(enc)
    comp = TopKCompressor(0.5)
    comp.encode(0, {"w": np.ones(4, np.float32)})
    with pytest.raises(FederationError, match="changed size from 4 to 6"):
        comp.encode(0, {"w": np.ones(6, np.float32)})
