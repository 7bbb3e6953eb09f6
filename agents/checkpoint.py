"""Agent checkpoint files: one atomic writer and one checked reader shared by every agent.

Why one place: every agent must write atomically (a crash never leaves a half-written checkpoint) and must
refuse, with an ``AgentError`` and nothing modified, a missing file, a file that is not ours, or another
agent's checkpoint. Loading uses ``torch.load(weights_only=True)``, so a checkpoint can hold tensors,
numbers, strings and containers of them, never arbitrary pickled objects.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from agents.base import AgentError

CHECKPOINT_FORMAT = "frl-agent-checkpoint/1"


def save_checkpoint(path: str | os.PathLike[str], agent: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and agent name) to ``path`` via a temp file and ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, "agent": agent, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_checkpoint(path: str | os.PathLike[str], agent: str) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for ``agent``; refuse anything else."""
    name = os.fspath(path)
    try:
        payload = torch.load(name, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AgentError(f"checkpoint {name!r} does not exist") from None
    except Exception as exc:  # unpickling errors of all kinds: not a checkpoint of ours
        raise AgentError(f"{name!r} is not a readable agent checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise AgentError(f"{name!r} is not an FRL agent checkpoint")
    if payload.get("agent") != agent:
        raise AgentError(f"checkpoint {name!r} is for agent {payload.get('agent')!r}, not {agent!r}")
    return payload
