"""Messages between server and clients, Flower-style (configure a round → fit → aggregate).

Weights are named (``dict[str, np.ndarray]``), never positional, so aggregators match layers by name and
personal parameters can be filtered out by prefix before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from agents.base import Weights

Scalar = float | int | str


class FederationError(ValueError):
    """Bad federation input: unknown strategy, malformed or non-finite update, bad knob."""


@dataclass(frozen=True)
class FitIns:
    """What the server sends one client for one round: the global (shared) weights and a config."""

    client_id: int
    weights: Weights
    config: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """What one client sends back: its shared weights after local training and how many samples it used.

    ``staleness`` is set by the round loop: how many global versions were published between the model the
    client trained from and the one its result reaches (0 in synchronous rounds; FedBuff weighs by it)."""

    client_id: int
    weights: Weights
    num_samples: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    staleness: int = 0


def weights_nbytes(weights: Mapping[str, np.ndarray]) -> int:
    """Exact payload size of a weights message (raw array bytes)."""
    return int(sum(np.asarray(v).nbytes for v in weights.values()))
