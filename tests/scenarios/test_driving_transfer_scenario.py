"""The driving-transfer scenario (scenarios/driving_transfer.py): a tiny run honours the results contract, every
method and heuristic is scored on the training roads and on the unseen road, and bad settings are refused."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("highway_env") is None,
                                reason='needs the driving extra: pip install -e ".[driving]"')

from scenarios import driving_transfer as dt  # noqa: E402
from scenarios.experiment import ScenarioError  # noqa: E402
from scenarios.results import write_results  # noqa: E402

torch.set_num_threads(1)

TINY = replace(dt.QUICK, rounds=1, steps_per_round=40, eval_every=1, eval_episodes=1, final_eval_episodes=1,
               unseen_episodes=2, unseen_warmup=10, agent_config={**dt.QUICK.agent_config, "learning_starts": 20,
                                                                    "exploration_steps": 40})


@pytest.fixture(scope="module")
def result():
    return dt.run(TINY)


def test_every_method_scored_with_kpis_in_range(result) -> None:
    assert set(result.methods) == {"ftrl", "local", "fedavg", "idle", "rule-based", "random"}
    for name, m in result.methods.items():
        assert np.isfinite(m["mean_return"]), name
        for prefix in ("", "unseen_"):
            assert 0.0 <= m[f"{prefix}collision"] <= 1.0, name
            assert 0.0 <= m[f"{prefix}speed"] <= 40.0, name
            assert m[f"{prefix}distance"] >= 0.0, name
        assert np.isfinite(m["unseen_return"]), name
        if m["kind"] != "heuristic":
            assert np.isfinite(m["auc_return"]) and m["samples_per_client"] == 40, name
    assert result.methods["ftrl"]["evaluated_model"] == "global"
    assert result.methods["local"]["evaluated_model"] == "own"


def test_unseen_road_is_not_a_training_road(result) -> None:
    roads = {c["road"] for c in result.client_configs}
    assert roads == {"highway", "merge"} and result.extra["unseen_road"] == "roundabout" not in roads
    unseen_rows = [r for r in result.rows if r[3].startswith("unseen/")]
    assert {r[0] for r in unseen_rows} == set(result.methods)


def test_claim_checks_and_sanity(result) -> None:
    claim = result.extra["claim"]
    assert set(claim) == {"ftrl_faster_than_local", "ftrl_fewer_collisions_than_local", "ftrl_higher_return_than_local",
                          "ftrl_transfers_better_than_local", "ftrl_transfers_better_than_fedavg"}
    assert all(isinstance(v, bool) for v in claim.values())
    h = result.methods
    assert h["rule-based"]["collision"] <= h["random"]["collision"]
    assert h["rule-based"]["mean_return"] > h["random"]["mean_return"]


def test_results_written(result, tmp_path) -> None:
    write_results(tmp_path, result, plot=dt.plot)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["claim"] == result.extra["claim"] and "unseen_return" in summary["methods"]["ftrl"]
    assert "unseen road" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "metrics.csv").stat().st_size > 0 and (tmp_path / "unseen_road.png").exists()


@pytest.mark.parametrize("change, name", [({"unseen_road": "highway"}, "unseen_road"),
                                          ({"unseen_road": "moon"}, "unseen_road"),
                                          ({"unseen_episodes": 0}, "unseen_episodes"),
                                          ({"backend": "processes"}, "backend")])
def test_bad_settings_refused(change, name) -> None:
    with pytest.raises(ScenarioError, match=name):
        replace(TINY, **change)
