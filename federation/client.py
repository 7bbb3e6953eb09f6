"""A federated client: one environment, one agent, the client half of an FL method, and an evaluation copy.

``Client.fit`` is the same for every method: receive → the method's hook → learn → upload. What a method
does on the client (a proximal pull, head-then-body training, a personal model, a cluster choice, an
embedding report) lives in a :class:`ClientHook` written beside the method's server half in
``federation/strategies/<method>.py``; this module names no method.

Why a separate evaluation agent: evaluating a model on a client must not disturb the client's own training
state (optimiser, target network, replay buffer), or the act of measuring would change the experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from agents.base import Agent, Weights
from agents.parallel_adapter import is_parallel_env
from federation.evaluation import evaluate_parallel, evaluate_policy
from federation.types import FederationError, FitIns, FitResult


class ClientHook:
    """The client half of an FL method. The default is plain local training (FedAvg's client).

    A method overrides only the steps it changes; a hook instance belongs to one client, so it may keep that
    client's method state (Ditto's personal model, APFL's mixing weight).
    """

    def attach(self, client: Client) -> None:
        """Check once, before the first round, that the client can run this method."""

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        """The shared weights the client loads from the broadcast, and metrics about the choice."""
        return dict(ins.weights), {}

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        """Local training for a budget of ``steps`` env steps; returns (samples used, statistics)."""
        return steps, client.agent.learn(client.env, steps)

    def report(self, client: Client) -> dict[str, float]:
        """Extra metrics sent with the upload (numbers only, never weights)."""
        return {}

    def upload(self, client: Client) -> Weights:
        """What leaves the client: its shared (non-personal) parameters."""
        return client.agent.get_shared_weights()

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        """The method's personalised model for evaluation (None: the server's model is the personal one)."""
        return None

    def materialize(self, client: Client) -> None:
        """Create now whatever this hook creates lazily (a personal agent, an env copy), so a checkpoint can be
        restored into it: a checkpoint fills objects, it never builds networks or envs from a file."""


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
        kpi_weight: str | Mapping[str, str] | None = None,
        make_env: Callable[[], gym.Env] | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if steps_per_round < 1:
            raise FederationError(f"steps_per_round={steps_per_round} must be >= 1")
        self.client_id = client_id
        self.env = env
        self.eval_env = eval_env
        self._make_agent = make_agent
        self._make_env = make_env
        self.agent = make_agent()
        self._eval_agent = make_agent()
        self.steps_per_round = steps_per_round
        self.kpis = tuple(kpis)
        self.kpi_weight = kpi_weight
        #: the client's own randomness (e.g. IFCA's evaluation episode), spawned from the scenario seed
        self.rng = rng if rng is not None else np.random.default_rng(np.random.SeedSequence([client_id]))
        self.samples_seen = 0
        self.hook = ClientHook()
        #: the shared weights loaded in the last fit: what this client's uploaded change is measured against
        self.received: Weights = {}

    def use(self, hook: ClientHook) -> None:
        """Install an FL method's client half (done once by the round loop, before the first round)."""
        hook.attach(self)
        self.hook = hook

    def make_agent(self) -> Agent:
        """A fresh agent of this client's kind (a method's personal model starts as one)."""
        return self._make_agent()

    def new_env(self) -> gym.Env:
        """A fresh copy of this client's env (a method that trains a second model needs its own)."""
        if self._make_env is None:
            raise FederationError("this method needs extra env copies: build the Client with make_env=")
        return self._make_env()

    # ----- training ------------------------------------------------------------------------------------
    def fit(self, ins: FitIns) -> FitResult:
        """Receive the broadcast, let the method's hook train, upload what the method shares."""
        weights, metrics = self.hook.receive(self, ins)
        if weights:
            self.agent.set_weights(weights)
        self.received = weights
        used, stats = self.hook.learn(self, self.steps_per_round)
        metrics.update(stats)
        metrics.update(self.hook.report(self))
        self.samples_seen += used
        return FitResult(client_id=self.client_id, weights=self.hook.upload(self), num_samples=used,
                         metrics=metrics)

    # ----- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, weights: Mapping[str, np.ndarray] | None, seeds: Sequence[int]) -> dict[str, float]:
        """Greedy evaluation of this client's own model (``weights=None``) or of given shared weights,
        combined with this client's personal parameters (how a FedPer head or an embedding is scored)."""
        full: Weights = self.agent.get_weights()
        if weights is not None:
            full.update(weights)
        self._eval_agent.set_weights(full)
        return self.evaluate_agent(self._eval_agent, seeds)

    def evaluate_models(self, weights: Weights | None, seeds: Sequence[int]) -> dict[str, dict[str, float]]:
        """The evaluation protocol: ``own`` (the client's current model), ``global`` (the server's model for
        this client, when the method has one) and ``personal`` (the method's personalised model, if any)."""
        out = {"own": self.evaluate(None, seeds)}
        if weights is not None:
            out["global"] = self.evaluate(weights, seeds)
        personal = self.hook.personal_model(self, weights)
        if personal is not None:
            out["personal"] = self.evaluate_agent(personal, seeds)
        return out

    def evaluate_agent(self, agent: Agent, seeds: Sequence[int]) -> dict[str, float]:
        """Greedy episodes on the evaluation env; a PettingZoo env (a multi-agent client, one agent acting
        for every agent id) is scored by the mean per-agent return."""
        greedy = lambda o: agent.act(o, explore=False)  # noqa: E731
        if is_parallel_env(self.eval_env):
            return evaluate_parallel(self.eval_env, greedy, seeds, self.kpis)
        return evaluate_policy(self.eval_env, greedy, seeds, self.kpis, self.kpi_weight)
