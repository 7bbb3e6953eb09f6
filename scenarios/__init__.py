"""Paper-style experiments. ``SCENARIOS`` maps a CLI name to its module.

A scenario module defines ``NAME``, ``SUMMARY`` (one line, with the paper it reproduces), ``FULL`` (its
experiment config at the paper's scale) and ``QUICK`` (``replace(FULL, …)`` of a few fields, a smoke run); it
may define ``run(exp, on_progress)`` when the generic runner is not enough (e.g. a sweep) and
``progress_total(exp)`` for the progress bar, and ``plot(out, result) -> [paths]`` for figures of its own
(written beside the generic ones, with ``scenarios.results._save_fig``). The config's fields with ``cli``
metadata are its flags.
A new scenario is its module plus one line in ``_MODULES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from scenarios.experiment import Experiment, ExperimentResult, ScenarioError, run_experiment

_MODULES = (
    "mec_offloading",
    "heterogeneity",
    "vertical",
    "cv2x",
    "edge_caching",
    "oran_access",
    "robot_navigation",
    "byzantine",
    "personalization",
    "swarm_navigation",
    "sfc_orchestration",
    "task_scheduling",
    "uav_mec",
    "cfrl",
    "driving_transfer",
    "over_the_air",
    "grouping",
    "femrl",
)
SCENARIOS: dict[str, ModuleType] = {
    m.NAME: m for m in (importlib.import_module(f"scenarios.{name}") for name in _MODULES)}


def scenario_module(name: str) -> ModuleType:
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; allowed: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name]


__all__ = ["SCENARIOS", "Experiment", "ExperimentResult", "ScenarioError", "run_experiment",
           "scenario_module"]
