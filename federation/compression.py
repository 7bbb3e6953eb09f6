"""Update compression for the uplink, selectable per run by name: ``none``, ``int8``, ``topk``.

Compression applies to the *update delta* Δ = w_client − w_global, not to the weights themselves: deltas are
small and centred on zero, which is what quantization and sparsification assume, and a dropped coordinate of
Δ means "unchanged" rather than "zero". The round loop therefore compresses ``delta(w_client, w_global)``
and the server reconstructs ŵ_client = ``apply_delta(w_global, decode(encoded))``, then aggregates the ŵ's
with any strategy as before (FedAvg of ŵ_k equals w_global + Σ p_k Δ̂_k).

- ``none``: the raw arrays (``lossless``; the loop may skip the delta round-trip entirely).
- ``int8``: per-tensor 8-bit linear (asymmetric) quantization, x̂ = zero_point + q·scale with
  zero_point = min(x), scale = (max(x) − min(x))/255, q = round((x − zero_point)/scale) ∈ {0..255}
  (the affine scheme of Jacob et al. 2018, CVPR, with a float zero point so both ends of the range are
  exact grid points). Error bound per element: |x − x̂| ≤ scale/2 in exact arithmetic; the decoded value is
  rounded once to the tensor's dtype, which adds at most half an ulp of max|x|. Payload: 1 byte per element
  plus scale and zero point as two float64 per tensor.
- ``topk``: per-tensor top-k sparsification by magnitude, k = ⌈ratio·n⌉ (at least 1), with error feedback
  (Stich et al. 2018, "Sparsified SGD with Memory", NeurIPS; Karimireddy et al. 2019, "Error Feedback
  Fixes SignSGD", ICML): each client keeps the residual e of what it did not send and adds it to its next
  update, p = Δ + e, sent = top_k(p), e ← p − sent. The transmitted updates then sum to the true ones
  minus the current residual, Σ sent_t = Σ Δ_t − e_T, and since ‖x − top_k(x)‖² ≤ (1 − k/n)‖x‖² (Stich
  et al. Lemma A.1) the residual stays bounded. Payload: k int32 indices + k values in the tensor's dtype
  (float32 → 8 bytes per kept entry).

Non-floating tensors (e.g. integer counters) are always sent raw. Shapes, dtypes and key names are part of
the model architecture both ends already know, so they are not counted in the payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agents.base import Weights
from federation.types import FederationError

COMPRESSORS = ("none", "int8", "topk")


# ----- deltas ---------------------------------------------------------------------------------------------
def _check_keys(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], what: str) -> None:
    if set(a) != set(b):
        raise FederationError(f"{what}: keys differ: missing {sorted(set(b) - set(a))}, "
                              f"unexpected {sorted(set(a) - set(b))}")
    for k in b:
        if np.shape(a[k]) != np.shape(b[k]):
            raise FederationError(f"{what}: {k!r} has shape {np.shape(a[k])}; expected {np.shape(b[k])}")


def delta(weights: Mapping[str, np.ndarray], global_weights: Mapping[str, np.ndarray]) -> Weights:
    """Δ = w − w_global per key, in the global tensor's dtype."""
    _check_keys(weights, global_weights, "delta")
    return {k: np.subtract(weights[k], g).astype(np.asarray(g).dtype, copy=False)
            for k, g in global_weights.items()}


def apply_delta(global_weights: Mapping[str, np.ndarray], d: Mapping[str, np.ndarray]) -> Weights:
    """w_global + Δ per key, in the global tensor's dtype (the server's reconstruction of a client model)."""
    _check_keys(d, global_weights, "apply_delta")
    return {k: np.add(g, d[k]).astype(np.asarray(g).dtype, copy=False) for k, g in global_weights.items()}


# ----- payloads -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedTensor:
    """One compressed tensor. ``kind`` is ``raw`` (data = the array), ``int8`` (data = uint8 codes, plus
    ``zero_point`` and ``scale``) or ``topk`` (data = kept values, ``indices`` = flat int32 positions)."""

    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray
    indices: np.ndarray | None = None
    zero_point: float = 0.0
    scale: float = 0.0

    @property
    def nbytes(self) -> int:
        if self.kind == "raw":
            return int(self.data.nbytes)
        if self.kind == "int8":
            return int(self.data.nbytes) + 2 * 8  # codes + (zero point, scale) as float64
        assert self.indices is not None
        return int(self.indices.nbytes + self.data.nbytes)


@dataclass(frozen=True)
class Encoded:
    """A client's compressed update: ``method`` names the compressor, ``tensors`` maps key → payload."""

    method: str
    client_id: int
    tensors: Mapping[str, EncodedTensor]


def _is_float(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating)


def _raw(a: np.ndarray) -> EncodedTensor:
    return EncodedTensor("raw", a.shape, a.dtype, a.copy())


# ----- compressors ----------------------------------------------------------------------------------------
class Compressor:
    """Encode a client's update delta into a payload, decode it on the server, and count its exact bytes."""

    name = "none"
    lossless = True

    def encode(self, client_id: int, update: Mapping[str, np.ndarray]) -> Encoded:
        """Compress ``update`` (a delta, see the module docstring) from ``client_id``."""
        tensors: dict[str, EncodedTensor] = {}
        for key, v in update.items():
            a = np.asarray(v)
            if _is_float(a) and not np.all(np.isfinite(a)):
                raise FederationError(f"client {client_id} update {key!r} contains NaN or inf")
            tensors[key] = self._encode_tensor(client_id, key, a) if _is_float(a) else _raw(a)
        return Encoded(self.name, int(client_id), tensors)

    def decode(self, encoded: Encoded) -> Weights:
        if encoded.method != self.name:
            raise FederationError(
                f"payload was encoded with {encoded.method!r}; this compressor is {self.name!r}")
        return {k: self._decode_tensor(t) for k, t in encoded.tensors.items()}

    @staticmethod
    def nbytes(encoded: Encoded) -> int:
        """Exact payload size in bytes (see the module docstring for each format)."""
        return int(sum(t.nbytes for t in encoded.tensors.values()))

    def nbytes_for(self, template: Mapping[str, np.ndarray]) -> int:
        """Payload size ``encode`` produces for tensors of these shapes and dtypes (it is data-independent),
        so upload times can be simulated before local training runs."""
        total = 0
        for v in template.values():
            a = np.asarray(v)
            total += self._tensor_nbytes(a.size, a.dtype) if _is_float(a) else a.nbytes
        return int(total)

    def reset(self) -> None:
        """Forget any per-client state (error-feedback residuals)."""

    def params(self) -> dict[str, float | int | str]:
        return {"compression": self.name}

    # per-tensor hooks
    def _encode_tensor(self, client_id: int, key: str, a: np.ndarray) -> EncodedTensor:
        return _raw(a)

    def _decode_tensor(self, t: EncodedTensor) -> np.ndarray:
        return t.data.copy()

    def _tensor_nbytes(self, size: int, dtype: np.dtype) -> int:
        return size * np.dtype(dtype).itemsize


class Int8Compressor(Compressor):
    """8-bit linear quantization per tensor; |x − x̂| ≤ scale/2 (+ one rounding to the dtype)."""

    name = "int8"
    lossless = False

    def _encode_tensor(self, client_id: int, key: str, a: np.ndarray) -> EncodedTensor:
        x = a.astype(np.float64)
        if x.size == 0:
            return EncodedTensor("int8", a.shape, a.dtype, np.zeros(a.shape, np.uint8))
        lo, hi = float(x.min()), float(x.max())
        scale = (hi - lo) / 255.0
        if scale > 0:
            q = np.clip(np.rint((x - lo) / scale), 0, 255).astype(np.uint8)
        else:
            q = np.zeros(a.shape, np.uint8)
        return EncodedTensor("int8", a.shape, a.dtype, q, zero_point=lo, scale=scale)

    def _decode_tensor(self, t: EncodedTensor) -> np.ndarray:
        if t.kind == "raw":
            return t.data.copy()
        return (t.zero_point + t.data.astype(np.float64) * t.scale).astype(t.dtype)

    def _tensor_nbytes(self, size: int, dtype: np.dtype) -> int:
        return size + 16


def topk_count(n: int, ratio: float) -> int:
    """k = ⌈ratio·n⌉, at least 1 (0 for an empty tensor); ratio·n is rounded to 9 digits first so that
    e.g. 0.1·30 keeps 3, not 4."""
    if n == 0:
        return 0
    return min(n, max(1, math.ceil(round(ratio * n, 9))))


class TopKCompressor(Compressor):
    """Top-k by magnitude per tensor, with per-client error feedback (on by default)."""

    name = "topk"
    lossless = False

    def __init__(self, ratio: float = 0.1, error_feedback: bool = True) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
            raise FederationError(f"topk ratio={ratio!r} is out of range; allowed: (0, 1]")
        self.ratio = float(ratio)
        self.error_feedback = bool(error_feedback)
        self._residual: dict[int, dict[str, np.ndarray]] = {}

    def residual(self, client_id: int) -> Weights:
        """The error-feedback memory of one client (float64; empty before its first update)."""
        return {k: v.copy() for k, v in self._residual.get(client_id, {}).items()}

    def reset(self) -> None:
        self._residual.clear()

    def params(self) -> dict[str, float | int | str]:
        return {"compression": self.name, "ratio": self.ratio, "error_feedback": int(self.error_feedback)}

    def _encode_tensor(self, client_id: int, key: str, a: np.ndarray) -> EncodedTensor:
        if a.size >= 2**31:
            raise FederationError(f"tensor {key!r} has {a.size} elements; int32 indices allow < 2**31")
        p = a.astype(np.float64).ravel()
        mem = self._residual.setdefault(client_id, {}) if self.error_feedback else None
        if mem is not None and key in mem:
            if mem[key].shape != p.shape:
                raise FederationError(f"client {client_id} update {key!r} changed size from "
                                      f"{mem[key].size} to {p.size}")
            p = p + mem[key]
        n = p.size
        k = topk_count(n, self.ratio)
        idx = np.sort(np.argpartition(np.abs(p), n - k)[n - k:]) if k < n else np.arange(n)
        vals = p[idx].astype(a.dtype)
        if mem is not None:
            rest = p.copy()
            rest[idx] -= vals.astype(np.float64)  # what was not transmitted (incl. the value rounding)
            mem[key] = rest
        return EncodedTensor("topk", a.shape, a.dtype, vals, indices=idx.astype(np.int32))

    def _decode_tensor(self, t: EncodedTensor) -> np.ndarray:
        if t.kind == "raw":
            return t.data.copy()
        assert t.indices is not None
        out = np.zeros(math.prod(t.shape), dtype=t.dtype)
        out[t.indices] = t.data
        return out.reshape(t.shape)

    def _tensor_nbytes(self, size: int, dtype: np.dtype) -> int:
        return topk_count(size, self.ratio) * (4 + np.dtype(dtype).itemsize)


_CLASSES: dict[str, type[Compressor]] = {"none": Compressor, "int8": Int8Compressor, "topk": TopKCompressor}
_PARAMS = {"none": "none", "int8": "none", "topk": "ratio, error_feedback"}


def make_compressor(name: str, **params: float | int | bool) -> Compressor:
    """``none`` · ``int8`` · ``topk`` (``ratio`` in (0, 1], ``error_feedback``). A compressor holds per-client
    state (top-k residuals): use a fresh one per run and per method."""
    if name not in _CLASSES:
        raise FederationError(f"unknown compression {name!r}; allowed: {', '.join(COMPRESSORS)}")
    try:
        return _CLASSES[name](**params)
    except TypeError as e:
        raise FederationError(f"bad parameters {sorted(params)} for compression {name!r}; "
                              f"allowed: {_PARAMS[name]}") from e
