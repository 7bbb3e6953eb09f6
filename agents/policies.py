"""Actor-critic networks for the on-policy agents (PPO, A2C, REINFORCE with a baseline).

One module holds the policy π(a|s) (the *actor*) and the state-value function V(s) (the *critic*), built
from :func:`agents.nets.mlp`. Parameter names are stable and split so that personalisation can keep heads
local (FedPer, Arivazhagan et al. 2019):

- separate networks (default, as in Stable-Baselines3 and CleanRL for small control tasks):
  ``actor.body.0.weight``, ``actor.body.2.weight``, ``actor.head.weight``, ``critic.body.*``,
  ``critic.head.weight``;
- a shared trunk (``shared_body=True``): ``body.0.weight``, ..., ``actor.head.weight``,
  ``critic.head.weight``;
- Gaussian policies add a state-independent ``actor.log_std`` (one entry per action dimension, as in
  Schulman et al. 2017, §6.1, and Duan et al. 2016);
- ``embedding_dim > 0`` adds a learnable ``embedding`` vector concatenated to every observation (Jin et al.
  2022, "Federated Reinforcement Learning with Environment Heterogeneity", AISTATS: a personal environment
  embedding in front of a shared network).

Action distributions:

- Discrete: categorical with logits ``actor(s)``; log π(a|s) = log_softmax(logits)[a].
- 1-D Box: diagonal Gaussian N(μ(s), diag(σ²)), σ = exp(log_std):
  log π(a|s) = −½ Σ_i ((a_i − μ_i)/σ_i)² − Σ_i log σ_i − (d/2) log 2π; entropy Σ_i (½ + ½ log 2π + log σ_i).

Initialisation: orthogonal weights (Saxe et al. 2014) with gain √2 on hidden layers, 0.01 on the policy head
and 1 on the value head, zero biases — the "orthogonal initialisation and layer scaling" of Engstrom et al.
(2020, "Implementation Matters in Deep Policy Gradients", ICLR) used by the OpenAI baselines PPO.

Acting fast path: :meth:`ActorCritic.np_actor` runs the actor on numpy views of the parameters
(:class:`agents.nets.NumpyActing`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from agents.nets import NumpyActing, mlp

LOG_2PI = math.log(2.0 * math.pi)

class PolicyPart(nn.Module):
    """``head(body(features))`` — the actor's or the critic's own layers (``body`` may be empty)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ActorCritic(NumpyActing):
    """Actor π and critic V over a flat float observation of size ``obs_dim``.

    ``num_outputs`` is the number of discrete actions (``continuous=False``) or the action dimension
    (``continuous=True``). See the module docstring for names, distributions and initialisation.
    """

    def __init__(
        self,
        obs_dim: int,
        num_outputs: int,
        *,
        continuous: bool,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "tanh",
        shared_body: bool = False,
        log_std_init: float = 0.0,
        ortho_init: bool = True,
        embedding_dim: int = 0,
    ) -> None:
        super().__init__()
        self.continuous = bool(continuous)
        self.obs_dim, self.num_outputs = int(obs_dim), int(num_outputs)
        self.embedding_dim = int(embedding_dim)
        if self.embedding_dim > 0:
            self.embedding = nn.Parameter(torch.zeros(self.embedding_dim))
        in_dim = self.obs_dim + self.embedding_dim
        width = int(hidden_sizes[-1]) if len(hidden_sizes) else in_dim
        if shared_body:
            self.body = mlp(in_dim, hidden_sizes, None, activation)
            actor_body, critic_body = nn.Sequential(), nn.Sequential()
        else:
            self.body = nn.Sequential()
            actor_body = mlp(in_dim, hidden_sizes, None, activation)
            critic_body = mlp(in_dim, hidden_sizes, None, activation)
        self.actor = PolicyPart(actor_body, nn.Linear(width, self.num_outputs))
        self.critic = PolicyPart(critic_body, nn.Linear(width, 1))
        if self.continuous:
            self.actor.log_std = nn.Parameter(torch.full((self.num_outputs,), float(log_std_init)))
        if ortho_init:
            for seq in (self.body, self.actor.body, self.critic.body):
                for layer in seq:
                    if isinstance(layer, nn.Linear):
                        nn.init.orthogonal_(layer.weight, math.sqrt(2.0))
                        nn.init.zeros_(layer.bias)
            for head, gain in ((self.actor.head, 0.01), (self.critic.head, 1.0)):
                nn.init.orthogonal_(head.weight, gain)
                nn.init.zeros_(head.bias)

    # ----- training-side evaluation (batched torch) ----------------------------------------------------
    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.embedding_dim:
            obs = torch.cat([obs, self.embedding.expand(*obs.shape[:-1], self.embedding_dim)], dim=-1)
        return self.body(obs)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(actor output, value)``: logits or Gaussian mean ``(B, num_outputs)`` and V ``(B,)``."""
        h = self._features(obs)
        return self.actor(h), self.critic(h).squeeze(-1)

    def actor_out(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits or Gaussian mean only."""
        return self.actor(self._features(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self._features(obs)).squeeze(-1)

    def log_prob_entropy(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(a|s) ``(B,)`` and the entropy ``(B,)`` (or ``()`` for the state-independent Gaussian) from
        the actor output, without building ``torch.distributions`` objects."""
        if self.continuous:
            log_std = self.actor.log_std
            z = (actions - out) * torch.exp(-log_std)
            log_prob = -0.5 * (z * z).sum(-1) - log_std.sum() - 0.5 * self.num_outputs * LOG_2PI
            entropy = log_std.sum() + 0.5 * self.num_outputs * (1.0 + LOG_2PI)
            return log_prob, entropy
        log_p = torch.log_softmax(out, dim=-1)
        log_prob = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return log_prob, entropy

    # ----- acting fast path (numpy, agents.nets.NumpyActing) --------------------------------------------
    def _acting_layers(self) -> list[nn.Module]:
        return [*self.body, *self.actor.body, self.actor.head]

    def np_actor(self, x: np.ndarray) -> np.ndarray:
        """Actor output (logits or mean) for one float32 observation ``(obs_dim,)`` or a batch."""
        return self.acting_output(x)

    def np_log_std(self) -> np.ndarray:
        """A numpy view of ``actor.log_std`` (Gaussian policies)."""
        return self.actor.log_std.detach().numpy()
