"""The RL agent zoo. ``AGENTS`` maps a CLI name to an Agent class."""

from __future__ import annotations

from agents.base import Agent, AgentError, Weights

AGENTS: dict[str, type[Agent]] = {}


def register_agent(cls: type[Agent]) -> type[Agent]:
    AGENTS[cls.name] = cls
    return cls


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise AgentError(f"unknown agent {name!r}; allowed: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


# Importing each algorithm module registers it (decorated with register_agent).
from agents import a2c as _a2c  # noqa: E402,F401
from agents import ddpg as _ddpg  # noqa: E402,F401
from agents import dqn as _dqn  # noqa: E402,F401
from agents import ppo as _ppo  # noqa: E402,F401
from agents import reinforce as _reinforce  # noqa: E402,F401
from agents import sac as _sac  # noqa: E402,F401
from agents import tabular as _tabular  # noqa: E402,F401
from agents import td3 as _td3  # noqa: E402,F401

__all__ = ["AGENTS", "Agent", "AgentError", "Weights", "agent_class", "register_agent"]
