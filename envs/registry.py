"""Registry of the suite's domain environments.

Each env module defines one ``EnvEntry`` (named ``ENTRY``) that says how to build the env, how to build N
heterogeneous client configs, which heuristic baselines solve it and which ``info`` keys are its KPIs. The
package ``envs`` registers every entry with gymnasium as ``frl/<Name>-v0`` so ``gymnasium.make`` works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], Any]
"""A policy maps one observation to one action (heuristics read the env through ``env.unwrapped``)."""

BaselineFactory = Callable[[gym.Env, int], Policy]
"""Builds a heuristic policy for a given env instance and seed."""


class EnvConfigError(ValueError):
    """A knob outside its legal range, an unknown env id, or an unknown baseline."""


@dataclass(frozen=True)
class EnvEntry:
    env_id: str                      # "frl/MecOffloading-v0"
    name: str                        # kebab-case CLI name, "mec-offloading"
    entry_point: str                 # "envs.mec_offloading:MecOffloadingEnv"
    config_cls: type                 # frozen dataclass of physical parameters
    client_configs: Callable[..., list[Any]]  # (n_clients, heterogeneity, seed) -> [config, ...]
    baselines: Mapping[str, BaselineFactory]
    kpis: tuple[str, ...]            # numeric info keys averaged per step in evaluation
    lower_is_better: tuple[str, ...] = ()  # KPIs where the worst client is the one with the largest value
    # info key weighting each step's KPIs (e.g. requests served in the step), or one per KPI
    # ({"delay": "completed"}: the delay KPI averages the completed tasks only)
    kpi_weight: str | Mapping[str, str] | None = None
    summary: str = ""                # one line for `frl list`
    parallel_entry_point: str | None = None   # "envs.cv2x:parallel_env" for PettingZoo forms
    max_episode_steps: int | None = None
    # joint heuristics of the PettingZoo form: (parallel env, seed) -> (obs dict -> action dict)
    parallel_baselines: Mapping[str, Callable[[Any, int], Callable[[dict[str, Any]], dict[str, Any]]]] = field(
        default_factory=dict)
    # batched core: a gymnasium VectorEnv over per-instance configs, what ``gymnasium.make_vec(env_id, num_envs=B,
    # vectorization_mode="vector_entry_point", configs=[...])`` returns ("envs.mec_offloading_batched:make_vector_env")
    vector_entry_point: str | None = None

    def parallel_factory(self) -> Callable[..., Any]:
        """The PettingZoo ``parallel_env`` function of this env (``EnvConfigError`` if it has none)."""
        if not self.parallel_entry_point:
            have = ", ".join(sorted(e.env_id for e in ENV_ENTRIES.values() if e.parallel_entry_point))
            raise EnvConfigError(f"env {self.env_id!r} has no PettingZoo parallel form; envs with one: {have}")
        module, _, name = self.parallel_entry_point.partition(":")
        return getattr(importlib.import_module(module), name)


ENV_ENTRIES: dict[str, EnvEntry] = {}


def register_entry(entry: EnvEntry) -> None:
    ENV_ENTRIES[entry.env_id] = entry
    if entry.env_id not in gym.registry:
        gym.register(id=entry.env_id, entry_point=entry.entry_point,
                     max_episode_steps=entry.max_episode_steps, vector_entry_point=entry.vector_entry_point)


def env_entry(env_id_or_name: str) -> EnvEntry:
    for e in ENV_ENTRIES.values():
        if env_id_or_name in (e.env_id, e.name):
            return e
    allowed = ", ".join(sorted(ENV_ENTRIES))
    raise EnvConfigError(f"unknown env {env_id_or_name!r}; allowed: {allowed}")


def discrete_action(action: Any, n: int) -> int:
    """``action`` as an int in ``[0, n)``, or ``gym.error.InvalidAction`` naming it: integers only (Python or
    NumPy, 0-d arrays included), as Gymnasium's own ``Discrete`` envs demand — never 1.5 or ``'1'``."""
    a = action.item() if isinstance(action, np.ndarray) and action.ndim == 0 else action
    if isinstance(a, bool) or not isinstance(a, int | np.integer) or not 0 <= a < n:
        raise gym.error.InvalidAction(f"action={action!r} is out of range; allowed: an integer in 0..{n - 1}")
    return int(a)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ``EnvConfigError`` naming the knob and its legal range when value is outside [low, high]."""
    if not (low <= value <= high) or value != value:
        raise EnvConfigError(f"{name}={value!r} is out of range; allowed: [{low}, {high}]")


def check_render_mode(render_mode: str | None, metadata: Mapping[str, Any]) -> None:
    """Raise ``EnvConfigError`` naming the allowed modes unless ``render_mode`` is None or one of them."""
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None, {', '.join(metadata['render_modes'])}")
