"""A federated client: one environment, one agent, and a separate evaluation copy of the agent.

Why a separate evaluation agent: evaluating the global model on a client must not disturb the client's
own training state (optimiser, target network, replay buffer), or the act of measuring would change the
experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from agents.base import Agent, Weights
from federation.evaluation import evaluate_policy
from federation.types import FitIns, FitResult


class Client:
    def __init__(
        self,
        client_id: int,
        env: gym.Env,
        eval_env: gym.Env,
        make_agent: Callable[[], Agent],
        *,
        steps_per_round: int,
        kpis: Sequence[str] = (),
    ) -> None:
        if steps_per_round < 1:
            raise ValueError(f"steps_per_round={steps_per_round} must be >= 1")
        self.client_id = client_id
        self.env = env
        self.eval_env = eval_env
        self.agent = make_agent()
        self._eval_agent = make_agent()
        self.steps_per_round = steps_per_round
        self.kpis = tuple(kpis)
        self.samples_seen = 0

    def fit(self, ins: FitIns) -> FitResult:
        """Load the broadcast (shared) weights, train locally, upload the shared weights."""
        if ins.weights:
            self.agent.set_weights(ins.weights)
        steps = int(ins.config.get("local_steps", self.steps_per_round))
        stats = self.agent.learn(self.env, steps)
        self.samples_seen += steps
        return FitResult(
            client_id=self.client_id,
            weights=self.agent.get_shared_weights(),
            num_samples=steps,
            metrics=dict(stats),
        )

    def evaluate(self, weights: Mapping[str, np.ndarray] | None, seeds: Sequence[int]) -> dict[str, float]:
        """Greedy evaluation of this client's own model (``weights=None``) or of given shared weights.

        Given shared weights are combined with this client's personal parameters (if any), which is how
        a personalised model is evaluated.
        """
        full: Weights = self.agent.get_weights()
        if weights is not None:
            full.update(weights)
        self._eval_agent.set_weights(full)
        eval_agent = self._eval_agent
        return evaluate_policy(self.eval_env, lambda o: eval_agent.act(o, explore=False), seeds, self.kpis)
