"""APFL (Deng, Kamani, Mahdavi 2020, "Adaptive Personalized Federated Learning", arXiv:2003.13461, Alg. 1):
each client keeps a local model v next to its copy w of the global model and is served the mixture
v̄ = α·v + (1 − α)·w. Per round, w trains as in FedAvg and is averaged by the server; v follows the gradient
of the loss *at the mixture*, v ← v − η·α·∇f(v̄), and the mixing weight adapts, α ← α − η·⟨v − w, ∇f(v̄)⟩
(clipped to [0, 1]), so a client whose environment the global model fits leans on it and one it does not fit
leans on its own model.

RL adaptation: the client's steps are split evenly between w and v (the same sample budget as every method).
The v half trains a personal agent loaded with v̄ for its steps; its change Δ̄ = v̄_after − v̄ stands for
−η·Σ∇f(v̄) (exact for plain SGD, a first-order proxy with Adam), so v ← v + α·Δ̄ and
α ← clip(α + alpha_lr·⟨v − w, Δ̄⟩, 0, 1).
"""

from __future__ import annotations

import numpy as np

from agents.base import Agent, Weights
from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg


def mix(alpha: float, v: Weights, w: Weights) -> Weights:
    """v̄ = α·v + (1 − α)·w per key, in w's dtype."""
    return {k: (alpha * v[k].astype(np.float64) + (1.0 - alpha) * w[k]).astype(w[k].dtype) for k in w}


class AdaptiveMixtureHook(ClientHook):
    """Client half: the local model v, the mixing weight α and the agent that trains at the mixture."""

    def __init__(self, alpha: float, adapt: bool, alpha_lr: float) -> None:
        self.alpha, self.adapt, self.alpha_lr = alpha, adapt, alpha_lr
        self.v: Weights | None = None
        self.agent: Agent | None = None
        self._env = None

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        global_steps = max(1, steps // 2)
        used, stats = super().learn(client, global_steps)
        w = client.agent.get_weights()
        if self.agent is None:
            self.agent, self._env = client.make_agent(), client.new_env()
            self.v = {k: x.copy() for k, x in w.items()}
        if steps - global_steps >= 1:
            start = mix(self.alpha, self.v, w)
            self.agent.set_weights(start)
            stats.update({f"personal/{k}": x for k, x in self.agent.learn(self._env, steps - global_steps).items()})
            change = {k: self.agent.get_weights()[k].astype(np.float64) - start[k] for k in w}
            if self.adapt:
                inner = sum(float(np.vdot(self.v[k] - w[k], change[k])) for k in w)
                self.alpha = float(np.clip(self.alpha + self.alpha_lr * inner, 0.0, 1.0))
            self.v = {k: (self.v[k] + self.alpha * change[k]).astype(w[k].dtype) for k in w}
            used = steps
        stats["apfl/alpha"] = self.alpha
        return used, stats

    def materialize(self, client: Client) -> None:
        if self.agent is None:
            self.agent, self._env = client.make_agent(), client.new_env()

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        if self.agent is None or self.v is None:
            return None
        w = client.agent.get_weights()
        w.update(weights or {})
        self.agent.set_weights(mix(self.alpha, self.v, w))
        return self.agent


class APFL(FedAvg):
    name = "apfl"
    summary = "FedAvg + a local model mixed in with an adaptive weight alpha (Deng et al. 2020)"

    def __init__(self, *, alpha: float = 0.5, adapt: int = 1, alpha_lr: float = 1.0) -> None:
        self.alpha = check_number("alpha", alpha, 0.0, 1.0)
        self.adapt = bool(check_number("adapt", adapt, 0, 1, integer=True))
        self.alpha_lr = check_number("alpha_lr", alpha_lr, 0.0, 1e6)

    def client_hook(self) -> ClientHook:
        return AdaptiveMixtureHook(self.alpha, self.adapt, self.alpha_lr)

    def params(self) -> dict[str, float | int | str]:
        return {"alpha": self.alpha, "adapt": int(self.adapt), "alpha_lr": self.alpha_lr}
