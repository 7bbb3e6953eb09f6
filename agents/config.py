"""Validation shared by every agent's frozen hyperparameter dataclass.

Why one place: every agent must refuse a bad hyperparameter the same way — an ``AgentError`` that names the
value and the allowed range — and coerce numpy / integral-float values to plain Python types, so configs
compare, hash and serialise alike. A config dataclass inherits :class:`ConfigChecks` and calls the
``_int`` / ``_float`` / ``_optional_float`` / ``_choice`` / ``_bool`` checks from its ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from agents.base import AgentError


def is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


class ConfigChecks:
    """Mixin of validation helpers for frozen config dataclasses (they write via ``object.__setattr__``)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    def _int(self, name: str, lo: int) -> None:
        v = getattr(self, name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not is_int(v) or v < lo:
            raise AgentError(f"{name}={getattr(self, name)!r} out of range: must be an int >= {lo}")
        object.__setattr__(self, name, int(v))

    def _float(self, name: str, lo: float, hi: float, *, lo_open: bool = False) -> None:
        v = getattr(self, name)
        ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        ok = ok and math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo}, {hi}{']' if math.isfinite(hi) else ')'}"
            raise AgentError(f"{name}={v!r} out of range: must be a finite number in {rng}")
        object.__setattr__(self, name, float(v))

    def _optional_float(self, name: str, lo: float, hi: float, *, lo_open: bool = False) -> None:
        if getattr(self, name) is not None:
            self._float(name, lo, hi, lo_open=lo_open)

    def _bool(self, *names: str) -> None:
        for name in names:
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise AgentError(f"{name}={getattr(self, name)!r} must be a bool")
            object.__setattr__(self, name, bool(getattr(self, name)))

    def _choice(self, name: str, allowed: tuple[str, ...]) -> None:
        if getattr(self, name) not in allowed:
            raise AgentError(f"{name}={getattr(self, name)!r} not supported; allowed: {', '.join(allowed)}")
