"""The RL agent zoo. ``AGENTS`` maps a CLI name to an Agent class: the one explicit table of agents."""

from __future__ import annotations

from agents.a2c import A2CAgent
from agents.base import Agent, AgentError, Weights
from agents.ddpg import DDPGAgent
from agents.dqn import DQNAgent
from agents.masked_dqn import MaskedDQNAgent
from agents.model_based import ModelBasedAgent
from agents.ppo import PPOAgent
from agents.reinforce import REINFORCEAgent
from agents.sac import SACAgent
from agents.tabular import QLearningAgent, SARSAAgent
from agents.td3 import TD3Agent

AGENTS: dict[str, type[Agent]] = {
    cls.name: cls
    for cls in (A2CAgent, DDPGAgent, DQNAgent, MaskedDQNAgent, ModelBasedAgent, PPOAgent, QLearningAgent,
                REINFORCEAgent, SACAgent, SARSAAgent, TD3Agent)
}


def agent_class(name: str) -> type[Agent]:
    if name not in AGENTS:
        raise AgentError(f"unknown agent {name!r}; allowed: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


__all__ = ["AGENTS", "Agent", "AgentError", "Weights", "agent_class"]
