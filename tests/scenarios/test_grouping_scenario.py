"""The grouping scenario: grouping, IFCA and FedAvg on CartPole and on the MEC domain; the recovery score of the
env types against the hidden pole lengths; the results contract."""

import dataclasses
import json

import torch

from scenarios import SCENARIOS, grouping
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)


def test_rand_index_and_final_assignment():
    assert grouping.rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert grouping.rand_index([0, 0, 0, 0], [0, 0, 1, 1]) == 2 / 6
    rows = [("g", 1, -1, "grouping/group/0", 1.0), ("g", 1, -1, "grouping/group/1", 0.0),
            ("g", 4, -1, "grouping/group/1", 1.0), ("i", 2, 0, "ifca/cluster", 1.0), ("i", 3, 0, "ifca/cluster", 0.0),
            ("i", 3, 1, "ifca/cluster", 1.0)]
    assert grouping.final_assignment(rows, "g", 2) == [1, 1]
    assert grouping.final_assignment(rows, "i", 2) == [0, 1]
    assert grouping.final_assignment(rows, "i", 3) is None


def test_runs_both_envs_and_scores_recovery(tmp_path):
    assert SCENARIOS["grouping"] is grouping
    assert set(grouping.FULL.strategies) >= {"grouping", "ifca", "fedavg"}
    exp = dataclasses.replace(grouping.QUICK, n_clients=3, rounds=1, steps_per_round=120, final_eval_episodes=1,
                              agent_config={**grouping._AGENT, "n_steps": 120},
                              strategies=("grouping:probe_steps=100", "ifca", "fedavg"))
    assert grouping.progress_total(exp) == 2 * len(exp.strategies)
    res = grouping.run(exp)
    rec = res.extra["recovery"]
    assert len(rec["true_half_pole_length"]) == 3 and len(rec["true_partition"]) == 3
    for spec in ("grouping:probe_steps=100", "ifca"):
        assert len(rec[spec]["assignment"]) == 3 and 0.0 <= rec[spec]["rand_index"] <= 1.0
    dom = res.extra["domain"]
    assert dom["env_id"] == "frl/MecOffloading-v0" and set(dom["methods"]) == set(exp.strategies)
    assert all("cost" in m for m in dom["methods"].values())
    assert len(dom["assignments"]["grouping:probe_steps=100"]) == 3 and dom["assignments"]["fedavg"] is None
    out = prepare_out_dir(tmp_path / "g")
    write_results(out, res)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["domain"]["env_id"] == "frl/MecOffloading-v0" and "recovery" in summary
    md = (out / "summary.md").read_text()
    assert "Recovery of the environment types" in md and "## Domain: frl/MecOffloading-v0" in md
