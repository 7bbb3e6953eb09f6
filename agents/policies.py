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

Acting fast path: :meth:`ActorCritic.np_actor` runs the actor on numpy *views* of the parameters (they share
memory with the tensors, so in-place optimiser steps are seen) — for one observation a few ``ndarray.dot``
calls cost a fraction of a torch module call. Sampling uses noise drawn in advance from the agent's
``numpy.random.Generator``: Gumbel-max for categoricals (Gumbel 1954; argmax(logits + g) ~ softmax(logits)),
μ + σ·ε for Gaussians.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from agents.nets import CachedViews, activation_class, mlp

LOG_2PI = math.log(2.0 * math.pi)

# numpy versions of the activations for the acting fast path (others fall back to a torch forward)
_NP_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: lambda h: np.tanh(h, out=h),
    nn.ReLU: lambda h: np.maximum(h, 0.0, out=h),
}

NpPlan = list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray] | None]]


class PolicyPart(nn.Module):
    """``head(body(features))`` — the actor's or the critic's own layers (``body`` may be empty)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ActorCritic(CachedViews):
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
        self._act_cls = activation_class(activation)
        self._plan: NpPlan | None = None

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

    # ----- acting fast path (numpy) --------------------------------------------------------------------
    def np_actor(self, x: np.ndarray) -> np.ndarray:
        """Actor output (logits or mean) for one observation ``(obs_dim,)`` or a batch ``(N, obs_dim)``
        of float32 numpy data, without autograd. Parameter views are cached (see the module docstring)."""
        plan = self._plan if self._plan is not None else self._build_np_plan()
        if not plan:  # an activation without a numpy version: plain torch forward
            with torch.no_grad():
                return self.actor_out(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        h = x
        if self.embedding_dim:
            emb = self.embedding.detach().numpy()
            h = np.concatenate((x, emb if x.ndim == 1 else np.broadcast_to(emb, (len(x), len(emb)))), axis=-1)
        for weight_t, bias, act in plan:
            h = h.dot(weight_t)
            h += bias
            if act is not None:
                h = act(h)
        return h

    def np_actor_snapshot(self) -> Callable[[np.ndarray], np.ndarray]:
        """The actor for one float32 observation ``(obs_dim,)`` as a numpy function over *copies* of the
        current parameters — valid only until they change (the acting loop takes one per segment of
        steps between updates). Each layer is one ``dot`` with the bias folded in as an extra column
        (``[W b]·[h; 1]``) and an in-place activation into a preallocated buffer, and the environment
        embedding is folded into the first bias: about a third faster than :meth:`np_actor`."""
        act = _NP_ACTIVATIONS.get(self._act_cls)
        if act is None:
            return self.np_actor
        linears = [m for seq in (self.body, self.actor.body) for m in seq if isinstance(m, nn.Linear)]
        linears.append(self.actor.head)
        d = self.obs_dim
        x_aug = np.ones(d + 1, dtype=np.float32)
        x_view = x_aug[:d]
        layers = []
        for k, layer in enumerate(linears):
            w = layer.weight.detach().numpy()
            b = layer.bias.detach().numpy()
            if k == 0 and self.embedding_dim:
                b = b + w[:, d:] @ self.embedding.detach().numpy()
                w = w[:, :d]
            w_aug = np.ascontiguousarray(np.concatenate([w, b[:, None]], axis=1), dtype=np.float32)
            out = np.ones(w.shape[0] + 1, dtype=np.float32)
            layers.append((w_aug, out, out[:-1]))
        hidden, (w_last, _, _) = layers[:-1], layers[-1]

        def actor(x: np.ndarray) -> np.ndarray:
            x_view[...] = x
            h = x_aug
            for w_aug, out, view in hidden:
                act(np.dot(w_aug, h, out=view))
                h = out
            return w_last.dot(h)

        return actor

    def np_log_std(self) -> np.ndarray:
        """A numpy view of ``actor.log_std`` (Gaussian policies)."""
        return self.actor.log_std.detach().numpy()

    def _build_np_plan(self) -> NpPlan:
        act = _NP_ACTIVATIONS.get(self._act_cls)
        plan: NpPlan = []
        if act is None:
            self._plan = plan
            return plan
        for seq in (self.body, self.actor.body):
            for layer in seq:
                if isinstance(layer, nn.Linear):
                    plan.append((layer.weight.detach().numpy().T, layer.bias.detach().numpy(), act))
        head = self.actor.head
        plan.append((head.weight.detach().numpy().T, head.bias.detach().numpy(), None))
        self._plan = plan
        return plan



def personal_prefixes(continuous: bool, personal: str, embedding_dim: int) -> tuple[str, ...]:
    """Parameter-name prefixes kept local: with ``personal="head"`` both heads (and the Gaussian log-std,
    which belongs to the policy head); the environment embedding whenever there is one."""
    out: tuple[str, ...] = ()
    if personal == "head":
        out += ("actor.head.", "critic.head.") + (("actor.log_std",) if continuous else ())
    if embedding_dim > 0:
        out += ("embedding",)
    return out
