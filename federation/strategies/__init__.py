"""Aggregation strategies by CLI name."""

from __future__ import annotations

from federation.strategies.base import Strategy, validate_results
from federation.strategies.fedavg import FedAvg, weighted_average
from federation.strategies.local import Local
from federation.types import FederationError

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (FedAvg, Local)}

DESCRIPTIONS: dict[str, str] = {
    "fedavg": "sample-weighted mean of client models (McMahan et al. 2017); QAvg for Q-networks",
    "local": "independent agents, same samples, no aggregation (the reference point)",
}


def make_strategy(name: str, **params: float | int | str) -> Strategy:
    if name not in STRATEGIES:
        raise FederationError(f"unknown strategy {name!r}; allowed: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](**params)


__all__ = ["DESCRIPTIONS", "STRATEGIES", "FedAvg", "Local", "Strategy", "make_strategy",
           "validate_results", "weighted_average"]
