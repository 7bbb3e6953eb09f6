"""Small network builders shared by the agents of the zoo.

Parameter names matter here: the federation layer matches weights by ``state_dict`` name and personal
parameters are chosen by name prefix. A :class:`QNetwork` is therefore always split into a ``body`` (shared
trunk, names ``body.0.weight``, ``body.2.weight``, ...) and a ``head`` (``head.weight`` or, for the dueling
architecture, ``head.value.weight`` / ``head.advantage.weight``), so FedPer-style personalisation can keep
``"head."`` local.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import AgentError


@contextmanager
def seeded_init(ss: np.random.SeedSequence) -> Iterator[None]:
    """A torch RNG scope seeded from ``ss`` for building networks: initialisation is reproducible from the
    agent's seed and the global torch RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(ss.generate_state(1, np.uint64)[0]))
        yield

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def activation_class(activation: str | type[nn.Module]) -> type[nn.Module]:
    """Resolve an activation given by name (see :data:`ACTIVATIONS`) or as an ``nn.Module`` class."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise AgentError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[activation]
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    raise AgentError(f"activation must be a name ({', '.join(ACTIVATIONS)}) or an nn.Module class")


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None,
    activation: str | type[nn.Module] = "relu",
) -> nn.Sequential:
    """``Linear → act → … → Linear(out_dim)``; with ``out_dim=None`` a trunk ending in an activation.

    Layers are numbered like ``nn.Sequential`` numbers them (``0.weight``, ``2.weight``, ...). With empty
    ``hidden`` and ``out_dim=None`` the result is the identity (an empty ``nn.Sequential``).
    """
    act = activation_class(activation)
    layers: list[nn.Module] = []
    width = int(in_dim)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), act()]
        width = int(h)
    if out_dim is not None:
        layers.append(nn.Linear(width, int(out_dim)))
    return nn.Sequential(*layers)


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a') (Wang et al. 2016, "Dueling Network Architectures
    for Deep Reinforcement Learning", ICML, eq. 9): the mean-subtraction makes V and A identifiable."""

    def __init__(self, in_dim: int, num_actions: int) -> None:
        super().__init__()
        self.value = nn.Linear(in_dim, 1)
        self.advantage = nn.Linear(in_dim, num_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(features)
        return self.value(features) + adv - adv.mean(dim=-1, keepdim=True)


class CachedViews(nn.Module):
    """A module whose acting fast path caches detached views of its parameters in ``_plan``.

    The views share storage with the parameters, so in-place updates (optimiser steps, ``copy_``) are seen;
    the cache is dropped whenever parameters may be replaced: ``to()``/``_apply``, ``load_state_dict`` and
    pickling (``deepcopy`` included). Subclasses build ``_plan`` lazily."""

    _plan: Any = None

    def _apply(self, fn: Callable, recurse: bool = True) -> CachedViews:
        self._plan = None
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._plan = None
        return super().load_state_dict(state_dict, strict, assign)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_plan"] = None
        return state


class QNetwork(CachedViews):
    """State → one Q-value per discrete action, as ``head(body(obs))``.

    ``body`` is an MLP trunk (:func:`mlp` with ``out_dim=None``); ``head`` is a linear layer or a
    :class:`DuelingHead`.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str | type[nn.Module] = "relu",
        *,
        dueling: bool = False,
        embedding_dim: int = 0,
    ) -> None:
        super().__init__()
        # Jin et al. 2022 (AISTATS), "personalization via environment embeddings": a learnable per-client
        # vector is concatenated to every observation; the network is shared, the embedding stays local.
        self.embedding_dim = int(embedding_dim)
        if self.embedding_dim > 0:
            self.embedding = nn.Parameter(torch.zeros(self.embedding_dim))
        self.body = mlp(obs_dim + self.embedding_dim, hidden, None, activation)
        width = int(hidden[-1]) if len(hidden) else int(obs_dim)
        self.head: nn.Module = DuelingHead(width, num_actions) if dueling else nn.Linear(width, num_actions)
        self._plan: list[tuple[torch.Tensor, torch.Tensor | None, Callable | None]] | None = None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.embedding_dim:
            emb = self.embedding.expand(*obs.shape[:-1], self.embedding_dim)
            obs = torch.cat([obs, emb], dim=-1)
        return self.head(self.body(obs))

    # ----- acting fast path --------------------------------------------------------------------------
    def greedy_action(self, obs: torch.Tensor) -> int:
        """``argmax_a Q(obs, a)`` for one unbatched float32 observation: the per-step acting fast path.

        Runs the layers as plain ``addmv`` calls on cached detached views of the parameters, skipping
        autograd and module-call overhead (several times faster than ``self(obs).argmax()`` for small
        MLPs). The views share storage with the parameters, so in-place updates (optimiser steps,
        ``copy_``, ``load_state_dict``) are seen; the cache is dropped when parameters may be replaced
        (``to()``/``_apply``, ``load_state_dict``, pickling). For a dueling head argmax Q = argmax A.
        """
        plan = self._plan if self._plan is not None else self._build_plan()
        h = torch.cat([obs, self.embedding.detach()]) if self.embedding_dim else obs
        for weight, bias, act in plan:
            h = torch.mv(weight, h) if bias is None else torch.addmv(bias, weight, h)
            if act is not None:
                h = act(h)
        return int(h.argmax())

    def _build_plan(self) -> list[tuple[torch.Tensor, torch.Tensor | None, Callable | None]]:
        plan: list[list] = []
        for layer in self.body:
            if isinstance(layer, nn.Linear):
                plan.append([layer.weight.detach(), _detached(layer.bias), None])
            elif plan and plan[-1][2] is None and not any(True for _ in layer.parameters()):
                plan[-1][2] = layer.forward  # a parameter-free activation after a linear layer
            else:
                raise TypeError(f"greedy_action cannot run body layer {layer!r}")
        head = self.head.advantage if isinstance(self.head, DuelingHead) else self.head
        if not isinstance(head, nn.Linear):
            raise TypeError(f"greedy_action cannot run head {head!r}")
        plan.append([head.weight.detach(), _detached(head.bias), None])
        self._plan = [(w, b, a) for w, b, a in plan]
        return self._plan



def _detached(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()
