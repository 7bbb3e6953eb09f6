"""FEMRL (J. Wang, J. Hu, J. Mills, G. Min, M. Xia, N. Georgalas, "Federated Ensemble Model-based Reinforcement
Learning in Edge Computing", IEEE TPDS 34(6):1848-1859, 2023; arXiv:2109.05549): "we utilise FL and knowledge
distillation to create an ensemble of dynamics models for clients, and then train the policy by solely using
the ensemble model without interacting with the environment" (abstract).

Server half: every round each sampled client uploads its dynamics ensemble (``ensemble.*``), its Q-network
(``q.*``) and ``kd_states``, a uniform sample of the states it visited (states only: its actions, rewards and
successor states — the transitions — never leave it). The server distils the ensemble of all uploaded ensembles
(weights ∝ samples) into one model on the union of the uploaded states × every action
(:func:`agents.model_based.distill`, warm-started from the previous distilled model) and averages the
Q-networks (FedAvg, McMahan et al. 2017; ``share_policy=0``: each client keeps its own). It broadcasts the
distilled model (``model.*``) and the averaged Q-network only. The student's input standardisation is the
mixture of the teachers' (fitted on all of their data), its output standardisation that of the teachers'
predictions on the distillation set. The server's copy of ``ensemble.*`` / ``kd_states`` is never broadcast.
Client half: keep its own ensemble and states, load the broadcast; its next ``learn`` trains
the policy on the distilled model (model rollouts only) before collecting new env steps and refitting its
ensemble (:mod:`agents.model_based`, run with ``local_distill=False``).

Assumptions refused at attach time: the client's agent must be ``femrl`` (a dynamics ensemble to upload) and its
env must have a 1-D Box observation space and a Discrete action space.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from agents.base import Weights
from agents.model_based import DynamicsEnsemble, ModelBasedAgent, distill
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitIns, FitResult

BROADCAST = ("model.", "q.")  # what the server may send; the rest (ensemble.*, kd_states) stays the client's own


def broadcast_part(weights: Weights) -> Weights:
    return {k: v for k, v in weights.items() if k.startswith(BROADCAST)}


class FEMRLHook(ClientHook):
    """Client half: load the broadcast distilled model and Q-network, keep the own ensemble and states."""

    def attach(self, client: Client) -> None:
        env, agent = client.env, client.agent
        obs, act = getattr(env, "observation_space", None), getattr(env, "action_space", None)
        spec = getattr(env, "spec", None)
        name = spec.id if spec is not None else type(env).__name__
        if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1 and isinstance(act, gym.spaces.Discrete)):
            raise FederationError(f"femrl cannot model env {name!r} (observations {obs!r}, actions {act!r}); allowed: "
                                  "a gymnasium env with 1-D Box observations and Discrete actions")
        if not isinstance(agent, ModelBasedAgent):
            raise FederationError(f"strategy 'femrl' needs agent 'femrl' (a dynamics ensemble to upload); got agent "
                                  f"{getattr(agent, 'name', type(agent).__name__)!r}")

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        own = client.agent.get_weights()
        return {**{k: v for k, v in own.items() if not k.startswith(BROADCAST)}, **ins.weights}, {}


class FEMRL(Strategy):
    name = "femrl"
    summary = ("federated ensemble model-based RL: distil the clients' dynamics ensembles into one model, "
               "train policies on it only (Wang et al. 2023)")
    agent_overrides = {"local_distill": False}

    def __init__(self, *, distill_steps: int = 1000, batch_size: int = 256, lr: float = 1e-3,
                 share_policy: int = 1) -> None:
        self.share_policy = bool(check_number("share_policy", share_policy, 0, 1, integer=True))
        self.distill_steps = int(check_number("distill_steps", distill_steps, 1, 1e6, integer=True))
        self.batch_size = int(check_number("batch_size", batch_size, 1, 1e6, integer=True))
        self.lr = check_number("lr", lr, 0.0, 1.0, lo_open=True)
        self.distilled = False
        self.last_loss = float("nan")

    def client_hook(self) -> ClientHook:
        return FEMRLHook()

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        part = self._broadcast(weights)
        return [FitIns(client_id=c, weights=part, config={"round": rnd}) for c in clients]

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        part = self._broadcast(weights)
        return {c: part for c in clients}

    def _broadcast(self, weights: Weights) -> Weights:
        """The distilled model, and the averaged Q-network when policies are shared."""
        part = broadcast_part(weights)
        return part if self.share_policy else {k: v for k, v in part.items() if not k.startswith("q.")}

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        missing = [k for k in ("kd_states", "model.fits") if k not in weights]
        if missing or not any(k.startswith("ensemble.") for k in weights):
            raise FederationError(f"femrl needs uploads of agent 'femrl' (ensemble.*, model.*, kd_states); "
                                  f"missing {missing or ['ensemble.*']}")
        counts = [r.num_samples for r in results]
        teachers = [DynamicsEnsemble.from_weights(r.weights, "ensemble.") for r in results]
        student = DynamicsEnsemble.from_weights(weights, "model.")
        states = np.concatenate([np.asarray(r.weights["kd_states"], dtype=np.float32) for r in results])
        if self.rng is None:
            raise FederationError("femrl: call reseed(SeedSequence) before the first aggregate")
        rng = self.rng
        self.last_loss = distill(student, teachers, counts, states, steps=self.distill_steps,
                                 batch_size=self.batch_size, lr=self.lr, rng=rng)
        self.distilled = True
        new = dict(weights)
        new.update({f"model.{k}": v.detach().numpy().copy() for k, v in student.state_dict().items()})
        q_avg = weighted_average([{k: v for k, v in r.weights.items() if k.startswith("q.")} for r in results], counts)
        if self.share_policy:
            new.update(q_avg)
        return new

    def round_metrics(self, rnd: int) -> dict[str, float]:
        return {"femrl/distill_loss": self.last_loss} if self.distilled else {}

    def params(self) -> dict[str, float | int | str]:
        return {"distill_steps": self.distill_steps, "batch_size": self.batch_size, "lr": self.lr,
                "share_policy": int(self.share_policy)}
