"""Client faults: screening what comes back from a fit, and injecting faults on purpose to show the screening.

Real clients are unreliable devices: a fit can raise, overrun its time, diverge (NaN/Inf) or send a model of
the wrong shape (a version mismatch). The round loop screens every result with :func:`screen_result`; a bad
one is left out of the round with its reason recorded (``fault/<kind>`` in the metrics) and never reaches an
aggregator, so one faulty device can neither crash the run nor corrupt the global model. Uploads of another
dtype (an ``int64`` array) are cast to the global model's dtype, so the aggregate keeps the model's dtype.

:class:`FaultInjector` (``frl run … --faults P``) makes each client fit fail with probability ``P`` in one of
those ways, drawn from its own seeded stream, to exercise the screening.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from agents.base import Weights
from federation.types import FederationError, FitIns, FitResult

FAULT_KINDS = ("exception", "timeout", "nonfinite", "shape")


class ClientFault(RuntimeError):
    """A fault raised inside a client's fit (injected or real); the round loop leaves the client out."""


def screen_result(res: FitResult, reference: Mapping[str, np.ndarray], *,
                  allow_empty: bool = True) -> tuple[FitResult | None, str | None]:
    """``(result, None)`` when ``res`` is usable against ``reference`` (the weights the client loaded, or the
    global model), with every array cast to the reference dtype; ``(None, "kind: reason")`` otherwise.
    The one per-upload check: the round loop screens with it, aggregators validate with it
    (``validate_results``, where an empty upload is refused: ``allow_empty=False``)."""
    if not isinstance(res, FitResult):
        return None, f"exception: fit returned {type(res).__name__}, not a FitResult"
    if isinstance(res.num_samples, bool) or not isinstance(res.num_samples, int | np.integer) or res.num_samples < 0:
        return None, f"shape: num_samples={res.num_samples!r} is not a count"
    if not res.weights and allow_empty:
        return res, None  # a method that uploads nothing (local)
    missing, extra = set(reference) - set(res.weights), set(res.weights) - set(reference)
    if missing or extra:
        return None, f"shape: update keys do not match the global model: missing {sorted(missing)}, " \
                     f"unexpected {sorted(extra)}"
    cast: Weights = {}
    for k, v in res.weights.items():
        ref = np.asarray(reference[k])
        arr = np.asarray(v)
        if arr.shape != ref.shape:
            return None, f"shape: {k!r} has shape {arr.shape}; expected {ref.shape}"
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            return None, f"shape: {k!r} has dtype {arr.dtype}, expected {ref.dtype}"
        if not np.all(np.isfinite(arr)):
            return None, f"nonfinite: {k!r} contains NaN or inf"
        cast[k] = arr.astype(ref.dtype, copy=False)
    return replace(res, weights=cast), None


@dataclass
class FaultInjector:
    """With probability ``probability`` a client's fit fails in one of ``kinds`` (uniformly), reproducibly:
    ``exception`` raises after the local training (a crash mid-round), ``timeout`` reports the fit as over
    its deadline, ``nonfinite`` returns NaN in one array, ``shape`` returns one array with a wrong shape."""

    probability: float
    kinds: tuple[str, ...] = FAULT_KINDS
    rng: np.random.Generator | None = None

    def __post_init__(self) -> None:
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0 or p != p:
            raise FederationError(f"faults={p!r} is out of range; allowed: probability in [0, 1]")
        bad = [k for k in self.kinds if k not in FAULT_KINDS]
        if bad or not self.kinds:
            raise FederationError(f"unknown fault kind {bad[0] if bad else ''!r}; allowed: {', '.join(FAULT_KINDS)}")

    def reseed(self, seq: np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seq)

    def draw(self) -> str | None:
        """The fault of the next fit (``None``: none), from this injector's own seeded stream. The round loop
        draws it, so every backend injects the same faults wherever the fit runs."""
        if self.rng is None:  # seeded from the run, never from a constant
            raise FederationError("FaultInjector: call reseed(SeedSequence) before the first fit")
        fails = self.probability > 0 and self.rng.random() < self.probability
        return self.kinds[int(self.rng.integers(len(self.kinds)))] if fails else None

    def fit(self, fit: Callable[[FitIns], FitResult], ins: FitIns) -> tuple[FitResult, bool]:
        """Run ``fit(ins)``, perhaps spoiled; returns (result, timed_out)."""
        kind = self.draw()
        res = fit(ins)
        if kind is None:
            return res, False
        return spoil(res, kind, ins.client_id), kind == "timeout"


def spoil(res: FitResult, kind: str, client_id: int) -> FitResult:
    """``res`` with the injected fault ``kind``: ``exception`` raises (a crash after the local training),
    ``nonfinite`` puts NaN in one array, ``shape`` lengthens one array; ``timeout`` is the caller's to report."""
    if kind == "exception":
        raise ClientFault(f"injected fault: client {client_id} crashed after training")
    if kind in ("nonfinite", "shape") and res.weights:
        key = sorted(res.weights)[0]
        arr = np.array(res.weights[key], dtype=np.float64 if kind == "nonfinite" else None, copy=True)
        if kind == "nonfinite":
            arr.flat[0] = np.nan
        else:
            arr = np.concatenate([arr.ravel(), arr.ravel()[:1]])
        res = replace(res, weights={**res.weights, key: arr})
    return res
