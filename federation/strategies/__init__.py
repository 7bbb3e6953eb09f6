"""Aggregation strategies by CLI name, and the ``name:key=value`` spec parser the CLI uses.

A method is one module (server half + client hook) and one line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
import inspect

from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import FedAvg, weighted_average
from federation.strategies.local import Local
from federation.types import FederationError

_REGISTRY = (
    "federation.strategies.fedavg:FedAvg",
    "federation.strategies.fedprox:FedProx",
    "federation.strategies.fedopt:FedAvgM",
    "federation.strategies.fedopt:FedAdam",
    "federation.strategies.fedopt:FedYogi",
    "federation.strategies.fedopt:FedAdagrad",
    "federation.strategies.robust:Median",
    "federation.strategies.robust:TrimmedMean",
    "federation.strategies.robust:Krum",
    "federation.strategies.robust:MultiKrum",
    "federation.strategies.local:Local",
    "federation.strategies.central:Central",
    "federation.strategies.fedper:FedPer",
    "federation.strategies.fedper:FedRep",
    "federation.strategies.ditto:Ditto",
    "federation.strategies.finetune:Finetune",
    "federation.strategies.ifca:IFCA",
    "federation.strategies.similarity:Similarity",
    "federation.strategies.env_embedding:EnvEmbedding",
    "federation.strategies.fedbuff:FedBuff",
    "federation.strategies.apfl:APFL",
    "federation.strategies.ucb:UCB",
    "federation.strategies.fedpg_br:FedPGBR",
    "federation.strategies.cfrl:CFRL",
    "federation.strategies.ftrl:FTRL",
    "federation.strategies.over_the_air:OverTheAir",
    "federation.strategies.grouping:Grouping",
    "federation.strategies.femrl:FEMRL",
)


def _load(path: str) -> type[Strategy]:
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module), cls)


STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in map(_load, _REGISTRY)}
DESCRIPTIONS: dict[str, str] = {name: cls.summary for name, cls in STRATEGIES.items()}


def strategy_params(name: str) -> list[str]:
    """The keyword parameters a strategy accepts."""
    cls = STRATEGIES[name]
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]


def make_strategy(name: str, **params: float | int | str) -> Strategy:
    if name not in STRATEGIES:
        raise FederationError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
    allowed = strategy_params(name)
    bad = [k for k in params if k not in allowed]
    if bad:
        raise FederationError(f"strategy {name!r} has no parameter {bad[0]!r}; "
                              f"allowed: {', '.join(allowed) or '(none)'}")
    return STRATEGIES[name](**params)


def _value(text: str) -> float | int | str:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, float | int | str]]:
    """``"name:key=value:key=value"`` → ``(name, {key: value})``; values become int or float when they parse.

    The one syntax for every "pick a component and set its knobs" option (strategies, round policies,
    compression)."""
    name, *parts = spec.strip().split(":")
    params: dict[str, float | int | str] = {}
    for part in parts:
        key, eq, val = part.partition("=")
        if not eq or not key:
            raise FederationError(f"bad parameter {part!r} in {spec!r}; use name:key=value")
        params[key.strip()] = _value(val.strip())
    return name.strip(), params


def parse_strategy_spec(spec: str) -> tuple[str, dict[str, float | int | str]]:
    """``"fedprox:mu=0.5"`` → ``("fedprox", {"mu": 0.5})``; validated by building the strategy once."""
    name, params = parse_spec(spec)
    make_strategy(name, **params)
    return name, params


__all__ = ["DESCRIPTIONS", "STRATEGIES", "FedAvg", "Local", "Strategy", "check_number", "make_strategy",
           "parse_spec", "parse_strategy_spec", "strategy_params", "validate_results", "weighted_average"]
