"""Aggregation strategies by CLI name, and the ``name:key=value`` spec parser the CLI uses."""

from __future__ import annotations

import inspect

from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.central import Central
from federation.strategies.ditto import Ditto
from federation.strategies.env_embedding import EnvEmbedding
from federation.strategies.fedavg import FedAvg, weighted_average
from federation.strategies.fedopt import FedAdagrad, FedAdam, FedAvgM, FedYogi
from federation.strategies.fedper import FedPer, FedRep
from federation.strategies.fedprox import FedProx
from federation.strategies.finetune import Finetune
from federation.strategies.ifca import IFCA
from federation.strategies.local import Local
from federation.strategies.robust import Krum, Median, MultiKrum, TrimmedMean
from federation.strategies.similarity import Similarity
from federation.types import FederationError

_CLASSES: tuple[type[Strategy], ...] = (
    FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad, Median, TrimmedMean, Krum, MultiKrum,
    Local, Central, FedPer, FedRep, Ditto, Finetune, IFCA, Similarity, EnvEmbedding,
)
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in _CLASSES}

DESCRIPTIONS: dict[str, str] = {
    "fedavg": "sample-weighted mean of client models (McMahan et al. 2017); QAvg for Q-networks",
    "fedprox": "FedAvg + client proximal term (mu/2)||w - w_global||^2 (Li et al. 2020)",
    "fedavgm": "FedAvg with server momentum (Hsu et al. 2019)",
    "fedadam": "server Adam on the mean client change (Reddi et al. 2021)",
    "fedyogi": "server Yogi on the mean client change (Reddi et al. 2021)",
    "fedadagrad": "server Adagrad on the mean client change (Reddi et al. 2021)",
    "median": "coordinate-wise median, Byzantine-robust (Yin et al. 2018)",
    "trimmed-mean": "coordinate-wise beta-trimmed mean, Byzantine-robust (Yin et al. 2018)",
    "krum": "the update closest to its n-f-2 nearest neighbours (Blanchard et al. 2017)",
    "multi-krum": "mean of the m best Krum-scored updates (Blanchard et al. 2017)",
    "local": "independent agents, same samples, no aggregation (the reference point)",
    "central": "one model trained on every client's env in turn (centralised reference)",
    "fedper": "shared body, personal Q head that never leaves the client (Arivazhagan et al. 2019)",
    "fedrep": "FedPer with head-then-body local updates (Collins et al. 2021)",
    "ditto": "FedAvg + a personal model pulled toward the global one (Li et al. 2021)",
    "finetune": "FedAvg, then k local steps before evaluation",
    "ifca": "clustered FL: K models, each client picks the best (Ghosh et al. 2020); groups= for declared types",
    "similarity": "per-client aggregation weighted by update similarity (attention; FedAMP / DPFed spirit)",
    "env-embedding": "shared network + personal learnable environment embedding (Jin et al. 2022)",
}


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
