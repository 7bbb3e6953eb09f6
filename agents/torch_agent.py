"""The agent contract written once: an algorithm declares its pieces, :class:`TorchAgent` does the rest.

As in Stable-Baselines3's ``base_class.py``, a subclass only names what it has — ``net`` (the module whose
``state_dict`` *is* the weights), an optional ``target_net`` (its entries of the same name follow
``set_weights``), its optimisers (:meth:`TorchAgent._optimizers`), counters and extra state — and inherits
named weights with the shared/personal split, the FedProx/Ditto anchor and proximal term, FedRep freezing,
atomic checkpoints read with ``torch.load(weights_only=True)`` and pickling without the env. Every way in
(``set_weights``, ``set_anchor``, ``load``) goes through the one validator :func:`agents.base.checked_weights`,
so unknown names, wrong shapes and non-finite values are refused before anything changes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import Agent, AgentError, Weights, checked_weights, is_number, seed_sequence

CHECKPOINT_FORMAT = "frl-agent-checkpoint/1"


def save_checkpoint(path: str | os.PathLike[str], agent: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and agent name) via a temp file and ``os.replace``: a crash never
    leaves a half-written checkpoint."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, "agent": agent, **payload}, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_checkpoint(path: str | os.PathLike[str], agent: str) -> dict[str, Any]:
    """Load a checkpoint of ``agent`` with ``torch.load(weights_only=True)``; refuse anything else."""
    name = os.fspath(path)
    try:
        payload = torch.load(name, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AgentError(f"checkpoint {name!r} does not exist") from None
    except Exception as exc:  # unpickling errors of all kinds: not a checkpoint of ours
        raise AgentError(f"{name!r} is not a readable agent checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise AgentError(f"{name!r} is not an FRL agent checkpoint")
    if payload.get("agent") != agent:
        raise AgentError(f"checkpoint {name!r} is for agent {payload.get('agent')!r}, not {agent!r}")
    return payload


def check_mu(mu: Any) -> float:
    if not (is_number(mu) and math.isfinite(mu) and mu >= 0.0):
        raise AgentError(f"prox_mu={mu!r} is out of range; allowed: finite >= 0")
    return float(mu)


class TorchAgent(Agent):
    """An agent whose parameters are the ``state_dict`` of ``net`` (see the module docstring).

    A subclass calls :meth:`_setup` in its constructor (seeding, anchor, personal prefixes), builds ``net``
    (and ``target_net``) inside ``seeded_init(init_ss)`` and overrides :meth:`_optimizers`; optionally
    :meth:`_extra_state` / :meth:`_restore_extra` (more checkpointed state) and :meth:`_before_params_change`.
    """

    net: nn.Module
    target_net: nn.Module | None = None
    #: integer counters a checkpoint keeps
    _counters: tuple[str, ...] = ("total_steps", "num_updates")
    #: weight-name prefixes that ``personal="head"`` keeps local (FedPer, Arivazhagan et al. 2019)
    head_prefixes: tuple[str, ...] = ()

    #: the algorithm's hyperparameter dataclass (a ``ConfigChecks``) and its name in messages
    config_class: Any = None
    algorithm: str = "agent"

    def __init__(self, observation_space: Any, action_space: Any, *, seed: int | np.random.SeedSequence = 0,
                 config: Any = None, **overrides: Any) -> None:
        """``Cls(observation_space, action_space, seed=…, config=… | **overrides)`` for every algorithm: the
        config is resolved and checked once here, then the algorithm builds its pieces (:meth:`_build`)."""
        self.observation_space, self.action_space = observation_space, action_space
        self._build(self.config_class.resolve(config, overrides, self.algorithm), seed)

    def _build(self, cfg: Any, seed: int | np.random.SeedSequence) -> None:
        """Check the spaces, call :meth:`_setup`, build ``net`` (and ``target_net``) and the optimisers."""
        raise NotImplementedError

    def _setup(self, cfg: Any, seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
        """Spawn the generators (a numpy one for acting/sampling/reset seeds, a torch one for update-time
        noise) and return the SeedSequence for the network initialisation (used in a forked torch RNG)."""
        self.config = cfg
        np_ss, init_ss, noise_ss = seed_sequence(seed).spawn(3)
        self._rng = np.random.default_rng(np_ss)
        self._gen = torch.Generator().manual_seed(int(noise_ss.generate_state(1, np.uint64)[0] >> 1))
        prefixes = self.head_prefixes if getattr(cfg, "personal", "none") == "head" else ()
        if getattr(cfg, "embedding_dim", 0) > 0:  # Jin et al. 2022: the environment embedding stays local
            prefixes += ("embedding",)
        if prefixes:
            self.personal_prefixes = prefixes
        self.prox_mu = float(getattr(cfg, "prox_mu", 0.0))  # set_proximal may change it per round
        self._anchor: dict[str, torch.Tensor] = {}
        self._prox_pairs: list[tuple[str, nn.Parameter, torch.Tensor]] = []
        self.total_steps = self.num_updates = 0
        self._env: Any = None
        self._stepper: Any = None
        return init_ss

    # ----- hooks ---------------------------------------------------------------------------------------
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def _extra_state(self) -> dict[str, Any]:
        """Algorithm state a checkpoint keeps besides modules, optimisers and counters. By default live
        tensors that *share memory* with the state (``load`` copies into them in place)."""
        return {}

    def _restore_extra(self, extra: Any) -> Callable[[], None]:
        """Validate the checkpoint's ``extra`` (raise on anything wrong, change nothing) and return the
        commit. The default fits the live-tensor form of :meth:`_extra_state`."""
        live = self._extra_state()
        shapes = {k: tuple(v.shape) for k, v in live.items()}
        if not isinstance(extra, Mapping) or set(extra) != set(live):
            raise ValueError(f"algorithm state {sorted(extra or {})} does not match {sorted(live)}")
        checked = checked_weights({k: v.numpy() for k, v in extra.items()}, shapes, "algorithm state")

        def commit() -> None:
            with torch.no_grad():
                for k, v in checked.items():
                    live[k].copy_(torch.from_numpy(v))

        return commit

    def _before_params_change(self) -> None:
        """Called before parameters are overwritten from outside (``set_weights``, ``load``)."""

    # ----- weights -------------------------------------------------------------------------------------
    def get_weights(self) -> Weights:
        """Independent float32 numpy copies of ``net``'s ``state_dict``."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}

    def _checked(self, weights: Mapping[str, Any], what: str) -> dict[str, torch.Tensor]:
        shapes = {k: tuple(v.shape) for k, v in self.net.state_dict().items()}
        return {k: torch.from_numpy(v) for k, v in checked_weights(weights, shapes, what).items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load a subset of the weights by name into ``net`` and the same names of ``target_net`` (a
        broadcast model gets a consistent target); they become the proximal anchor. Optimiser state,
        buffers and counters stay: they are local to the client. Refused input changes nothing."""
        staged = self._checked(weights, "weight")
        self._before_params_change()
        online = self.net.state_dict()
        target = self.target_net.state_dict() if self.target_net is not None else {}
        with torch.no_grad():
            for key, value in staged.items():
                online[key].copy_(value)
                if key in target:
                    target[key].copy_(value)
        self._set_anchor(staged)

    def set_anchor(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set the proximal anchor without touching the parameters (Ditto pulls a personal model toward the
        global one). Refuses what ``set_weights`` refuses."""
        self._set_anchor(self._checked(weights, "anchor weight"))

    def _set_anchor(self, staged: Mapping[str, torch.Tensor], *, replace: bool = False) -> None:
        self._anchor = dict(staged) if replace else {**self._anchor, **staged}
        named = dict(self.net.named_parameters())
        self._prox_pairs = [(k, named[k], a) for k, a in self._anchor.items() if k in named]

    def set_proximal(self, mu: float) -> None:
        """FedProx / Ditto: the weight μ of (μ/2)·||θ − θ_anchor||² (Li et al. 2020, eq. 2)."""
        self.prox_mu = check_mu(mu)

    def set_trainable(self, prefixes: tuple[str, ...] | None) -> None:
        """Train only the parameters whose names start with one of ``prefixes`` (None: all) — FedRep
        (Collins et al. 2021) alternates head-only and body-only local updates with this."""
        for name, p in self.net.named_parameters():
            p.requires_grad_(prefixes is None or name.startswith(tuple(prefixes)))

    # ----- the proximal term and one gradient step ------------------------------------------------------
    def proximal_term(self, prefix: str = "") -> torch.Tensor | None:
        """(μ/2)·||θ − θ_anchor||² over the trainable anchored parameters named ``prefix…`` (FedProx, Li et
        al. 2020, "Federated Optimization in Heterogeneous Networks", eq. 2); None when off."""
        if self.prox_mu <= 0.0:
            return None
        terms = [torch.sum((p - a) ** 2) for k, p, a in self._prox_pairs if p.requires_grad and k.startswith(prefix)]
        return 0.5 * self.prox_mu * sum(terms) if terms else None

    def _descend(
        self, loss: torch.Tensor, *optimizers: torch.optim.Optimizer, prefix: str = "", clip: float | None = None
    ) -> None:
        """One step of ``optimizers`` on ``loss`` plus the proximal term of the ``prefix`` parameters, with
        optional global gradient-norm clipping; skipped when nothing it depends on is trainable."""
        prox = self.proximal_term(prefix)
        if prox is not None:
            loss = loss + prox
        if not loss.requires_grad:  # everything frozen by set_trainable
            return
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            params = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        for opt in optimizers:
            opt.step()

    # ----- checkpoints ---------------------------------------------------------------------------------
    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if self.target_net is None else {"net": self.net, "target": self.target_net}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write modules, optimiser states, counters, generator states, the anchor and the algorithm's extra
        state atomically. Replay buffers and pending rollouts are not saved."""
        payload = {
            "config": json.dumps(dataclasses.asdict(self.config)),
            "modules": {k: m.state_dict() for k, m in self._modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "counters": {k: int(getattr(self, k)) for k in self._counters},
            "rng_state": json.dumps(self._rng.bit_generator.state),
            "torch_generator": self._gen.get_state(),
            "anchor": dict(self._anchor),
            "extra": {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                      for k, v in self._extra_state().items()},
        }
        save_checkpoint(path, self.name, payload)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save`. Refuses (AgentError, nothing modified) another
        agent's file, other shapes, non-finite values and malformed files. The agent keeps its own config
        (optimiser step sizes are reset to it)."""
        where = os.fspath(path)
        payload = read_checkpoint(where, self.name)
        modules, saved = self._modules(), payload.get("modules")
        if not isinstance(saved, Mapping) or set(saved) != set(modules):
            raise AgentError(f"checkpoint {where!r} is malformed: modules {sorted(saved or {})}, "
                             f"expected {sorted(modules)}")
        states = {}
        for name, module in modules.items():
            expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            got = saved[name]
            shapes = {k: tuple(v.shape) for k, v in got.items()} if isinstance(got, Mapping) else None
            if shapes != expected:
                raise AgentError(f"checkpoint {where!r} has network shapes {shapes} ({name}), "
                                 f"but this agent expects {expected}")
            try:
                states[name] = checked_weights({k: v.numpy() for k, v in got.items()}, expected, f"{name} weight")
            except AgentError as exc:
                raise AgentError(f"checkpoint {where!r}: {exc}") from None
        try:  # stage everything that can fail, then commit
            optimizers = self._optimizers()
            for name, opt in optimizers.items():
                copy.deepcopy(opt).load_state_dict(payload["optimizers"][name])
            rng_state = json.loads(payload["rng_state"])
            np.random.default_rng().bit_generator.state = rng_state
            gen = torch.Generator()
            gen.set_state(payload["torch_generator"])
            counters = {k: int(payload["counters"][k]) for k in self._counters}
            anchor = {k: v.numpy() for k, v in payload.get("anchor", {}).items()}
            anchor = self._checked(anchor, "anchor weight")
            commit_extra = self._restore_extra(payload.get("extra"))
        except Exception as exc:
            raise AgentError(f"checkpoint {where!r} is malformed: {exc}") from None
        self._before_params_change()
        for name, module in modules.items():
            module.load_state_dict({k: torch.from_numpy(v) for k, v in states[name].items()})
        for name, opt in optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
            for group in opt.param_groups:
                group["lr"] = opt.defaults["lr"]  # the agent's own config, not the checkpoint's
        self._rng.bit_generator.state = rng_state
        self._gen = gen
        for k, v in counters.items():
            setattr(self, k, v)
        self._set_anchor(anchor, replace=True)
        commit_extra()

    # ----- pickling (worker processes, deepcopy): the env is not part of the agent -----------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_gen"] = self._gen.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._gen = torch.Generator()
        self._gen.set_state(state["_gen"])
