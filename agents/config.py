"""Validation shared by every agent's frozen hyperparameter dataclass.

Why one place: every agent must refuse a bad hyperparameter the same way — an ``AgentError`` that names the
value and the allowed range — and coerce numpy / integral-float values to plain Python types, so configs
compare, hash and serialise alike. A config dataclass inherits :class:`ConfigChecks` and calls the
``_int`` / ``_float`` / ``_optional_float`` / ``_choice`` / ``_bool`` checks from its ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.base import AgentError, is_int, is_number


class ConfigChecks:
    """Mixin of validation helpers for frozen config dataclasses (they write via ``object.__setattr__``)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def resolve(cls, config: Any, overrides: Mapping[str, Any], algo: str) -> Any:
        """``config`` (default ``cls()``) with ``overrides`` applied; a config of another class or an unknown
        name → AgentError naming the allowed ones."""
        base = cls() if config is None else config
        if not isinstance(base, cls):
            raise AgentError(f"config must be a {cls.__name__}, got {type(base).__name__}")
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise AgentError(
                f"unknown {algo} hyperparameter(s) {', '.join(unknown)}; allowed: {', '.join(cls.names())}"
            )
        return dataclasses.replace(base, **overrides) if overrides else base

    def _sizes(self, name: str, *, non_empty: bool = False) -> None:
        """A sequence of layer widths (ints >= 1), stored as a tuple of ints."""
        a = "a non-empty" if non_empty else "a"
        value = getattr(self, name)
        try:
            sizes = tuple(value)
        except TypeError:
            raise AgentError(f"{name}={value!r} must be {a} sequence of ints >= 1") from None
        if (non_empty and not sizes) or not all(is_int(h) and h >= 1 for h in sizes):
            raise AgentError(f"{name}={value!r} must be {a} sequence of ints >= 1")
        object.__setattr__(self, name, tuple(int(h) for h in sizes))

    def _int(self, name: str, lo: int) -> None:
        v = getattr(self, name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not is_int(v) or v < lo:
            raise AgentError(f"{name}={getattr(self, name)!r} out of range: must be an int >= {lo}")
        object.__setattr__(self, name, int(v))

    def _float(self, name: str, lo: float, hi: float, *, lo_open: bool = False) -> None:
        v = getattr(self, name)
        ok = is_number(v) and math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
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
