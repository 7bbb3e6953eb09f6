"""Paper-style experiments. ``SCENARIOS`` maps a CLI name to its module.

A scenario module defines ``NAME``, ``SUMMARY`` (one line, with the paper it reproduces) and
``experiment(quick: bool) -> Experiment``; it may define ``run(exp, on_progress)`` when the generic runner
is not enough (e.g. a sweep).
"""

from __future__ import annotations

from types import ModuleType

from scenarios import heterogeneity, mec_offloading, vertical
from scenarios.experiment import Experiment, ExperimentResult, ScenarioError, run_experiment

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (mec_offloading, heterogeneity, vertical)}


def scenario_module(name: str) -> ModuleType:
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; allowed: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name]


__all__ = ["SCENARIOS", "Experiment", "ExperimentResult", "ScenarioError", "run_experiment",
           "scenario_module"]
