"""Placeholder until the knob declarations land: the one override path for env configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from envs.registry import EnvConfigError


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    names = [f.name for f in dataclasses.fields(config)]
    bad = [k for k in overrides if k not in names]
    if bad:
        raise EnvConfigError(f"unknown knob {bad[0]!r}; allowed: {', '.join(names)}")
    return dataclasses.replace(config, **dict(overrides))
