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


_NP_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.ReLU: lambda h: np.maximum(h, 0.0, out=h),
    nn.Tanh: lambda h: np.tanh(h, out=h),
}


class NumpyActing(nn.Module):
    """The acting fast path, written once: :meth:`acting_output` runs the layers of
    :meth:`_acting_layers` (linear layers, each optionally followed by a parameter-free activation) as
    numpy ``W h + b`` on cached views of the parameters, for one observation ``(d,)`` or a batch ``(N, d)``.

    The views share storage with the parameters, so in-place updates (optimiser steps, ``copy_``) are seen;
    the cache is dropped whenever parameters may be replaced (``to()``/``_apply``, ``load_state_dict``,
    pickling). Several times cheaper per env step than a module call. A learnable ``embedding`` (Jin et al.
    2022) is appended to the observation, as in ``forward``.
    """

    _plan: Any = None
    embedding_dim: int = 0

    def _acting_layers(self) -> list[nn.Module]:
        raise NotImplementedError

    def acting_output(self, x: np.ndarray) -> np.ndarray:
        plan = self._plan if self._plan is not None else self._build_plan()
        h = x
        if self.embedding_dim:
            emb = self.embedding.detach().numpy()
            h = np.concatenate((x, emb if x.ndim == 1 else np.broadcast_to(emb, (len(x), len(emb)))), axis=-1)
        for weight, bias, act in plan:
            h = h @ weight.T if h.ndim == 2 else weight @ h
            h += bias
            if act is not None:
                h = act(h)
        return h

    def _build_plan(self) -> list[tuple[np.ndarray, np.ndarray, Callable | None]]:
        plan: list[list] = []
        for layer in self._acting_layers():
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                plan.append([layer.weight.detach().numpy(), layer.bias.detach().numpy(), None])
            elif plan and plan[-1][2] is None and not any(True for _ in layer.parameters()):
                fn = _NP_ACTIVATIONS.get(type(layer))
                plan[-1][2] = fn if fn is not None else (lambda h, f=layer: f(torch.from_numpy(h)).numpy())
            else:
                raise TypeError(f"the acting fast path cannot run layer {layer!r}")
        self._plan = [(w, b, a) for w, b, a in plan]
        return self._plan

    def _apply(self, fn: Callable, recurse: bool = True) -> NumpyActing:
        self._plan = None
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._plan = None
        return super().load_state_dict(state_dict, strict, assign)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_plan"] = None
        return state


class QNetwork(NumpyActing):
    """State → one Q-value per discrete action, as ``head(body(obs))``.

    ``body`` is an MLP trunk (:func:`mlp` with ``out_dim=None``); ``head`` is a linear layer or a
    :class:`DuelingHead`. Jin et al. 2022 (AISTATS): with ``embedding_dim > 0`` a learnable per-client
    vector is concatenated to every observation; the network is shared, the embedding stays local.
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
        self.embedding_dim = int(embedding_dim)
        if self.embedding_dim > 0:
            self.embedding = nn.Parameter(torch.zeros(self.embedding_dim))
        self.body = mlp(obs_dim + self.embedding_dim, hidden, None, activation)
        width = int(hidden[-1]) if len(hidden) else int(obs_dim)
        self.head: nn.Module = DuelingHead(width, num_actions) if dueling else nn.Linear(width, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.embedding_dim:
            emb = self.embedding.expand(*obs.shape[:-1], self.embedding_dim)
            obs = torch.cat([obs, emb], dim=-1)
        return self.head(self.body(obs))

    def _acting_layers(self) -> list[nn.Module]:
        # for a dueling head argmax Q = argmax A: the acting path runs the advantage stream only
        return [*self.body, self.head.advantage if isinstance(self.head, DuelingHead) else self.head]

    def greedy(self, x: np.ndarray) -> np.ndarray:
        """``argmax_a Q(x, a)`` for one float32 observation or each row of a batch (the fast path)."""
        return self.acting_output(x).argmax(-1)
