"""scenarios/femrl.py: samples-to-target bookkeeping, validation, and a tiny end-to-end run through the results
contract."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from scenarios import SCENARIOS
from scenarios import femrl as sc
from scenarios.experiment import ScenarioError
from scenarios.results import write_results

torch.set_num_threads(1)


def test_registered_with_full_and_quick():
    assert SCENARIOS["femrl"] is sc
    assert sc.QUICK.domains == sc.FULL.domains == ("cartpole", "mec-offloading")
    for d in sc.FULL.domains:  # the quick run is smaller on every arm
        for arm in sc.ARMS:
            full, quick = sc.FULL.domain_specs[d].arms[arm], sc.QUICK.domain_specs[d].arms[arm]
            assert quick.rounds * quick.steps_per_round < full.rounds * full.steps_per_round


def test_samples_to_target_is_the_first_evaluation_reaching_it():
    rows = [("m", 1, 0, "global/return", 10.0), ("m", 1, 1, "global/return", 30.0),
            ("m", 2, 0, "global/return", 50.0), ("m", 2, 1, "global/return", 40.0),
            ("m", 3, 0, "global/return", 20.0), ("m", 3, 1, "global/return", 20.0),
            ("m", 2, 0, "own/return", 999.0)]
    curve = sc.learning_curve(rows, 100)
    assert curve == [(100, 20.0), (200, 45.0), (300, 20.0)]
    assert sc.samples_to_target(curve, 45.0) == 200
    assert sc.samples_to_target(curve, 20.0) == 100
    assert sc.samples_to_target(curve, 46.0) is None


def test_bad_domain_is_refused_naming_the_allowed_ones():
    with pytest.raises(ScenarioError, match=r"unknown domain 'atari'; allowed: cartpole, mec-offloading"):
        replace(sc.FULL, domains=("atari",))


def test_tiny_run_writes_the_results_contract(tmp_path):
    spec = sc.QUICK_DOMAINS["cartpole"]
    tiny = replace(spec, n_clients=2, final_eval_episodes=1, arms={
        "femrl": replace(spec.arms["femrl"], rounds=2, steps_per_round=100,
                         agent_config={**spec.arms["femrl"].agent_config, "policy_updates": 30,
                                       "model_updates": 30, "rollout_batch": 32}),
        "fedavg-dqn": replace(spec.arms["fedavg-dqn"], rounds=2, steps_per_round=100)})
    exp = replace(sc.QUICK, domains=("cartpole",), domain_specs={"cartpole": tiny})
    result = sc.run(exp)
    assert set(result.methods) == {"femrl@cartpole", "fedavg-dqn@cartpole"}
    table = result.extra["samples_to_target"]["cartpole"]
    assert table["target_return"] == 150.0
    for arm in sc.ARMS:
        assert [s for s, _ in table[arm]["curve"]] == [100, 200]
        assert table[arm]["budget_per_client"] == 200
        assert result.methods[f"{arm}@cartpole"]["samples_per_client"] == 200
    paths = write_results(tmp_path, result, plot=sc.plot)
    names = {p.name for p in paths}
    assert {"config.json", "metrics.csv", "summary.json", "summary.md", "femrl_samples.png"} <= names
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "cartpole" in summary["samples_to_target"]
    assert "Env samples per client to reach the target" in (tmp_path / "summary.md").read_text()
