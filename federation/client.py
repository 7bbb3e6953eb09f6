"""A federated client: one environment, one agent, and a separate evaluation copy of the agent.

Why a separate evaluation agent: evaluating the global model on a client must not disturb the client's
own training state (optimiser, target network, replay buffer), or the act of measuring would change the
experiment.

The round's ``FitIns.config`` carries what a strategy asks of the client beyond plain local training:
``prox_mu`` (FedProx proximal term), ``fedrep_head_fraction`` (FedRep: train the personal head first with
the body frozen, then the body), ``ditto_lambda`` (Ditto: also train a personal model pulled toward the global
one), and ``select_from`` (IFCA: the weights hold several cluster models ``c<j>/<name>``; the client keeps
the one that scores best on its own env).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from agents.base import Agent, Weights
from agents.parallel_adapter import is_parallel_env
from federation.evaluation import evaluate_parallel, evaluate_policy
from federation.types import FitIns, FitResult


def split_clusters(weights: Mapping[str, np.ndarray], n: int) -> list[Weights]:
    """``{"c0/body.0.weight": …, "c1/…"}`` → one weights dict per cluster (IFCA's broadcast)."""
    out: list[Weights] = [{} for _ in range(n)]
    for key, value in weights.items():
        head, _, name = key.partition("/")
        out[int(head[1:])][name] = value
    return out


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
        kpi_weight: str | None = None,
        make_env: Callable[[], gym.Env] | None = None,
    ) -> None:
        if steps_per_round < 1:
            raise ValueError(f"steps_per_round={steps_per_round} must be >= 1")
        self.client_id = client_id
        self.env = env
        self.eval_env = eval_env
        self._make_agent = make_agent
        self._make_env = make_env
        self.agent = make_agent()
        self._eval_agent = make_agent()
        self.personal_agent: Agent | None = None  # Ditto's personal model, created on first use
        self._personal_env: gym.Env | None = None
        self._finetune_env: gym.Env | None = None
        self.steps_per_round = steps_per_round
        self.kpis = tuple(kpis)
        self.kpi_weight = kpi_weight
        self.samples_seen = 0
        self.cluster: int | None = None

    # ----- training ------------------------------------------------------------------------------------
    def fit(self, ins: FitIns) -> FitResult:
        """Load the broadcast (shared) weights, train locally, upload the shared weights."""
        cfg = ins.config
        steps = int(cfg.get("local_steps", self.steps_per_round))
        metrics: dict[str, float] = {}
        weights: Mapping[str, np.ndarray] = ins.weights
        if "select_from" in cfg:
            weights, self.cluster = self._select_cluster(weights, int(cfg["select_from"]))
            metrics["ifca/cluster"] = float(self.cluster)
        if weights:
            self.agent.set_weights(weights)
        if "prox_mu" in cfg:
            self.agent.set_proximal(float(cfg["prox_mu"]))
        ditto_lambda = cfg.get("ditto_lambda")
        global_steps = steps if ditto_lambda is None else max(1, steps // 2)
        head_steps = int(round(float(cfg.get("fedrep_head_fraction", 0.0)) * global_steps))
        if head_steps:  # FedRep: head with the body frozen, then the body with the head frozen
            personal = self.agent.personal_prefixes
            body = tuple(k for k in self.agent.get_weights() if not k.startswith(personal))
            self.agent.set_trainable(personal)
            metrics.update(_prefixed("head/", self.agent.learn(self.env, head_steps)))
            self.agent.set_trainable(body)
            if global_steps > head_steps:
                metrics.update(self.agent.learn(self.env, global_steps - head_steps))
            self.agent.set_trainable(None)
        else:
            metrics.update(self.agent.learn(self.env, global_steps))
        used = global_steps
        if ditto_lambda is not None:
            used += self._fit_personal(weights, float(ditto_lambda), steps - global_steps)
        self.samples_seen += used
        if cfg.get("report_embedding"):
            emb = self.agent.get_weights().get("embedding")
            if emb is not None:
                metrics.update({f"embedding/{i}": float(v) for i, v in enumerate(emb.ravel())})
        return FitResult(
            client_id=self.client_id,
            weights=self.agent.get_shared_weights(),
            num_samples=used,
            metrics=metrics,
        )

    def _fit_personal(self, global_weights: Mapping[str, np.ndarray], lam: float, steps: int) -> int:
        """Ditto (Li et al. 2021, Alg. 1): v_k ← v_k − η(∇F_k(v_k) + λ(v_k − w)), with w the global model."""
        if steps < 1:
            return 0
        if self.personal_agent is None:
            self.personal_agent = self._make_agent()
            self.personal_agent.set_weights(self.agent.get_weights())
            self._personal_env = self._new_env()
        self.personal_agent.set_anchor(global_weights)
        self.personal_agent.set_proximal(lam)
        self.personal_agent.learn(self._personal_env, steps)
        return steps

    def _select_cluster(self, weights: Mapping[str, np.ndarray], n: int) -> tuple[Weights, int]:
        """IFCA (Ghosh et al. 2020): take the cluster model with the best estimated objective on this
        client — here the greedy return of one evaluation episode on the client's own env."""
        models = split_clusters(weights, n)
        seed = int(np.random.default_rng([self.client_id, self.samples_seen]).integers(2**31 - 1))
        scores = [self.evaluate(m, [seed])["return"] for m in models]
        best = int(np.argmax(scores))
        return models[best], best

    def _new_env(self) -> gym.Env:
        if self._make_env is None:
            raise ValueError("this strategy needs extra env copies: build the Client with make_env=")
        return self._make_env()

    # ----- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, weights: Mapping[str, np.ndarray] | None, seeds: Sequence[int]) -> dict[str, float]:
        """Greedy evaluation of this client's own model (``weights=None``) or of given shared weights.

        Given shared weights are combined with this client's personal parameters (if any), which is how
        a personalised model (FedPer head, environment embedding) is evaluated.
        """
        full: Weights = self.agent.get_weights()
        if weights is not None:
            full.update(weights)
        self._eval_agent.set_weights(full)
        return self._evaluate_agent(self._eval_agent, seeds)

    def evaluate_personal(self, seeds: Sequence[int]) -> dict[str, float]:
        """Ditto's personal model (the client's own model until the first Ditto round)."""
        return self._evaluate_agent(self.personal_agent or self.agent, seeds)

    def evaluate_finetuned(self, weights: Mapping[str, np.ndarray], steps: int,
                           seeds: Sequence[int]) -> dict[str, float]:
        """The global model after ``steps`` local steps (with the client's replay data and optimiser state
        copied), evaluated greedily. The client's own state is untouched."""
        tuned = copy.deepcopy(self.agent)
        tuned.set_weights(weights)
        if self._finetune_env is None:
            self._finetune_env = self._new_env()
        tuned.learn(self._finetune_env, steps)
        return self._evaluate_agent(tuned, seeds)

    def _evaluate_agent(self, agent: Agent, seeds: Sequence[int]) -> dict[str, float]:
        """Greedy episodes on the evaluation env; a PettingZoo env (a multi-agent client, one agent acting
        for every agent id) is scored by the mean per-agent return."""
        greedy = lambda o: agent.act(o, explore=False)  # noqa: E731
        if is_parallel_env(self.eval_env):
            return evaluate_parallel(self.eval_env, greedy, seeds, self.kpis)
        return evaluate_policy(self.eval_env, greedy, seeds, self.kpis, self.kpi_weight)


def _prefixed(prefix: str, stats: Mapping[str, float]) -> dict[str, float]:
    return {prefix + k: v for k, v in stats.items()}
