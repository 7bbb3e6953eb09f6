"""Contract tests parametrised over the env registry: a new env is tested without new test code.

Each registered env runs every check of the public checker ``envs.check`` (the same function a plugin's
authors call: Gymnasium's checker, spaces and KPIs, seeded determinism, heterogeneity 0 → identical clients,
knobs refused by name, every heuristic legal, PettingZoo's parallel API and seed tests and joint heuristics).
"""

import pytest

import envs
from envs.check import CHECKS

ENTRIES = list(envs.ENV_ENTRIES.values())
CASES = [(e, name) for e in ENTRIES for name in CHECKS
         if e.parallel_entry_point or not (name.startswith("pettingzoo") or name == "parallel-baselines")]


@pytest.mark.parametrize(("entry", "check"), CASES, ids=[f"{e.env_id}:{c}" for e, c in CASES])
def test_env_passes_the_public_check(entry, check):
    CHECKS[check](entry)
