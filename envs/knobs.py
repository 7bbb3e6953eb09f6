"""Env knobs declared once: default, legal range, unit and source in dataclass field metadata.

Every env config is a frozen dataclass whose fields are declared with :func:`knob`; one routine,
:func:`validate_knobs`, checks every declared knob (type, range, choices) when a config is built, and one
function, :func:`apply_overrides`, is the only way keyword overrides reach a config (env constructors,
scenario ``env_overrides``, the CLI). The knob tables of the docs and of ``frl list --json`` are generated
from the same declarations by :func:`knob_table` and :func:`knob_records`, so they cannot drift from the
validation. Cross-knob constraints (``min <= max`` and the like) stay in a short per-config
``check_constraints`` run after the shared check.

Kinds of knob (inferred from the declaration): a number in ``[low, high]`` (``integer=True`` for counts and
seeds; bools and NaN are rejected), a string from ``choices``, a bool, or a tuple of ``length`` numbers each
in ``[low, high]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.registry import EnvConfigError, check_range

__all__ = [
    "Knob",
    "KnobConfig",
    "apply_overrides",
    "check_client_args",
    "clip_knob",
    "document_knobs",
    "knob",
    "knob_records",
    "knob_spec",
    "knob_table",
    "resolve_config",
    "validate_knobs",
]

METADATA_KEY = "knob"

_INT = (int, np.integer)
_NUM = (int, float, np.integer, np.floating)


@dataclass(frozen=True)
class Knob:
    """What a config field may hold, in which unit, and where its default comes from."""

    unit: str
    source: str
    kind: str                                   # "float" | "int" | "choice" | "bool" | "tuple"
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    length: tuple[int, int] | None = None       # (min, max) number of elements of a tuple knob

    def range_text(self) -> str:
        """The legal values as shown in errors and tables."""
        if self.kind == "choice":
            return ", ".join(str(c) for c in self.choices)
        if self.kind == "bool":
            return "True, False"
        if self.kind == "tuple":
            lo, hi = self.length  # type: ignore[misc]
            return f"a tuple of {lo}..{hi} numbers in [{self.low}, {self.high}]"
        return f"[{self.low}, {self.high}]"

    def validate(self, name: str, value: Any) -> None:
        """Raise ``EnvConfigError`` (one line: knob, bad value, legal values) unless ``value`` is legal."""
        if self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise EnvConfigError(f"{name}={value!r} is not allowed; allowed: {self.range_text()}")
        elif self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise EnvConfigError(f"{name}={value!r} must be a bool; allowed: {self.range_text()}")
        elif self.kind == "tuple":
            lo, hi = self.length  # type: ignore[misc]
            if (not isinstance(value, tuple) or not lo <= len(value) <= hi
                    or any(isinstance(v, bool) or not isinstance(v, _NUM) or not self.low <= v <= self.high
                           for v in value)):
                raise EnvConfigError(f"{name}={value!r} is not allowed; allowed: {self.range_text()} {self.unit}")
        else:
            if self.kind == "int":
                if isinstance(value, bool) or not isinstance(value, _INT):
                    raise EnvConfigError(f"{name}={value!r} must be an integer in {self.range_text()}")
            elif isinstance(value, bool) or not isinstance(value, _NUM):
                raise EnvConfigError(f"{name}={value!r} must be a number in {self.range_text()}")
            check_range(name, value, self.low, self.high)  # type: ignore[arg-type]


def knob(default: Any, low: float | None = None, high: float | None = None, *, unit: str, source: str,
         integer: bool = False, choices: tuple[Any, ...] = (), length: tuple[int, int] | None = None) -> Any:
    """A dataclass field carrying its ``Knob`` declaration (the kind is inferred from the arguments).

    ``choices`` makes a categorical knob, a bool ``default`` a flag, ``length`` a tuple of numbers each in
    ``[low, high]``; otherwise the knob is a number in ``[low, high]`` (an integer if ``integer``).
    """
    if choices:
        kind = "choice"
    elif isinstance(default, bool):
        kind = "bool"
    elif length is not None:
        kind = "tuple"
    else:
        kind = "int" if integer else "float"
    if kind in ("float", "int", "tuple") and (low is None or high is None or not low <= high):
        raise ValueError(f"knob of kind {kind} needs low <= high, got low={low!r}, high={high!r}")
    spec = Knob(unit=unit, source=source, kind=kind, low=low, high=high, choices=tuple(choices), length=length)
    spec.validate("default", default)
    return dataclasses.field(default=default, metadata={METADATA_KEY: spec})


def _knobs(config_or_cls: Any) -> list[tuple[dataclasses.Field, Knob]]:
    return [(f, f.metadata[METADATA_KEY]) for f in dataclasses.fields(config_or_cls) if METADATA_KEY in f.metadata]


def knob_spec(config_cls: type, name: str) -> Knob:
    """The declaration of knob ``name`` of ``config_cls`` (``EnvConfigError`` naming the allowed knobs)."""
    for f, spec in _knobs(config_cls):
        if f.name == name:
            return spec
    allowed = ", ".join(f.name for f, _ in _knobs(config_cls))
    raise EnvConfigError(f"unknown knob {name!r} of {config_cls.__name__}; allowed: {allowed}")


def validate_knobs(config: Any) -> None:
    """The one validator: every declared knob of ``config`` must hold a legal value (see ``Knob.validate``)."""
    for f, spec in _knobs(config):
        spec.validate(f.name, getattr(config, f.name))


class KnobConfig:
    """Base of the env configs: ``__post_init__`` runs :func:`validate_knobs`, then ``check_constraints``."""

    def __post_init__(self) -> None:
        validate_knobs(self)
        self.check_constraints()

    def check_constraints(self) -> None:
        """Cross-knob constraints of a config (``EnvConfigError``); none by default."""


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """The one override path: ``config`` with the fields in ``overrides`` replaced, validated.

    Unknown names raise ``EnvConfigError`` naming them and listing the allowed knobs; lists given for tuple
    knobs (e.g. from JSON) become tuples; the new config is validated by its ``__post_init__``.
    """
    if not overrides:
        return config
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise EnvConfigError(f"unknown knob(s) {', '.join(unknown)} of {type(config).__name__}; "
                             f"allowed: {', '.join(names)}")
    tuples = {f.name for f, spec in _knobs(config) if spec.kind == "tuple"}
    changes = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(config, **changes)


def resolve_config(config_cls: type, config: Any, overrides: Mapping[str, Any]) -> Any:
    """What an env constructor gets from ``(config=None, **overrides)``: defaults or ``config``, overridden."""
    cfg = config_cls() if config is None else config
    if not isinstance(cfg, config_cls):
        raise EnvConfigError(f"config={cfg!r} must be a {config_cls.__name__}")
    return apply_overrides(cfg, overrides)


def check_client_args(n_clients: int, heterogeneity: float) -> None:
    """Validate the common arguments of every ``make_client_configs`` (``EnvConfigError``)."""
    if isinstance(n_clients, bool) or not isinstance(n_clients, _INT) or n_clients < 1:
        raise EnvConfigError(f"n_clients={n_clients!r} is out of range; allowed: integer >= 1")
    check_range("heterogeneity", heterogeneity, 0.0, 1.0)


def clip_knob(config_cls: type, name: str, value: float, low: float | None = None,
              high: float | None = None) -> float:
    """``value`` clipped to the legal range of knob ``name``, tightened by ``low`` / ``high`` if given."""
    spec = knob_spec(config_cls, name)
    lo = spec.low if low is None else max(spec.low, low)  # type: ignore[type-var]
    hi = spec.high if high is None else min(spec.high, high)  # type: ignore[type-var]
    return float(min(max(value, lo), hi))


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def knob_records(config_cls: type) -> list[dict[str, Any]]:
    """One JSON-ready dict per knob (name, kind, default, unit, low, high, choices, length, range, source)."""
    out = []
    for f, spec in _knobs(config_cls):
        out.append({
            "name": f.name, "kind": spec.kind, "default": _json(f.default), "unit": spec.unit,
            "low": spec.low, "high": spec.high, "choices": list(spec.choices),
            "length": list(spec.length) if spec.length else None, "range": spec.range_text(),
            "source": spec.source,
        })
    return out


def knob_table(config_cls: type) -> str:
    """A Markdown table of the knobs of ``config_cls``: knob, default, unit, legal range, source."""
    lines = ["| knob | default | unit | range | source |", "|---|---|---|---|---|"]
    for r in knob_records(config_cls):
        default = r["default"]
        default = ", ".join(str(v) for v in default) if isinstance(default, list) else default
        lines.append(f"| `{r['name']}` | {default} | {r['unit']} | {r['range']} | {r['source']} |")
    return "\n".join(lines)


def document_knobs(doc: str | None, config_cls: type) -> str:
    """``doc`` with its ``{knob_table}`` placeholder replaced by the generated table of ``config_cls``."""
    if not doc or "{knob_table}" not in doc:
        raise ValueError(f"docstring has no {{knob_table}} placeholder for {config_cls.__name__}")
    return doc.replace("{knob_table}", knob_table(config_cls))
