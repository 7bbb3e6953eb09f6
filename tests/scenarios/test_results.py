"""Result summaries and files: worst-client figures, atomic writes."""

import json
import os

import numpy as np
import pytest

import envs  # noqa: F401
from envs.registry import env_entry
from scenarios import results
from scenarios.experiment import ScenarioError, summarize_clients
from scenarios.mec_offloading import QUICK


def test_worst_client_is_the_lowest_return_and_the_worst_kpi():
    entry = env_entry("frl/MecOffloading-v0")  # cost: lower is better; offloaded: higher is "better"
    per_client = [{"return": 1.0, "cost": 0.5, "delay": 1.0, "energy": 1.0, "dropped": 0.0, "offloaded": 0.2},
                  {"return": 5.0, "cost": 2.0, "delay": 3.0, "energy": 1.0, "dropped": 0.3, "offloaded": 0.9},
                  {"return": 3.0, "cost": 1.0, "delay": 2.0, "energy": 1.0, "dropped": 0.1, "offloaded": 0.5}]
    out = summarize_clients(per_client, entry, kind="heuristic", extra={})
    assert out["mean_return"] == 3.0 and out["worst_client_return"] == 1.0
    assert out["worst_client_cost"] == 2.0  # lower is better: the worst is the largest
    worst_offloaded = max if "offloaded" in entry.lower_is_better else min
    assert out["worst_client_offloaded"] == worst_offloaded(p["offloaded"] for p in per_client)
    assert np.isclose(out["cost"], 3.5 / 3)
    assert out["per_client_cost"] == [0.5, 2.0, 1.0]  # the per-client KPI figure's data, in client order


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("OLD")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        results.atomic_write_text(path, "NEW")
    assert path.read_text() == "OLD"
    assert os.listdir(tmp_path) == ["summary.json"]  # no temp file left behind


def test_every_result_file_is_written_through_the_atomic_writer(tmp_path, monkeypatch):
    from scenarios.experiment import ExperimentResult

    written = []
    real = results.atomic_write_bytes

    def spy(path, data):
        written.append(path.name)
        real(path, data)
    monkeypatch.setattr(results, "atomic_write_bytes", spy)
    res = ExperimentResult(experiment=QUICK, rows=[("fedavg", 1, 0, "global/return", 1.0)],
                           methods={"fedavg": {"kind": "federated", "mean_return": 1.0, "worst_client_return": 1.0,
                                               "per_client_return": [1.0]}}, client_configs=[], wall_time_s=0.1)
    out = results.prepare_out_dir(tmp_path / "o")
    paths = results.write_results(out, res)
    # status.json is claimed (O_EXCL) before the run and rewritten atomically, last, when it completes
    assert sorted(written) == sorted([p.name for p in paths] + ["status.json"]) == sorted(os.listdir(out))
    assert written[-1] == "status.json"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "complete" and "summary.json" in status["files"]


def test_an_out_dir_is_claimed_exclusively(tmp_path):
    out = results.prepare_out_dir(tmp_path / "run")
    assert json.loads((out / "status.json").read_text())["state"] == "running"  # a killed run stays so
    with pytest.raises(ScenarioError, match="already holds a run"):
        results.prepare_out_dir(out)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ScenarioError, match="is not a directory"):
        results.prepare_out_dir(tmp_path / "afile" / "sub")
    a, b = results.unique_run_dir(tmp_path), results.unique_run_dir(tmp_path)
    assert a == b and str(os.getpid()) in a.name  # same process and second: the O_EXCL claim decides


def test_a_scenarios_own_markdown_tables_reach_summary_md():
    from scenarios.experiment import ExperimentResult

    res = ExperimentResult(experiment=QUICK, rows=[], methods={"fedavg": {
        "kind": "federated", "mean_return": 1.0, "worst_client_return": 1.0, "per_client_return": [1.0]}},
        client_configs=[], wall_time_s=0.1, extra={"payload_sweep_markdown": "| payload |\n|---|\n| 1 |"})
    assert "| payload |\n|---|\n| 1 |" in results.summary_markdown(res)


def test_a_failure_in_a_later_method_keeps_the_finished_ones(tmp_path, monkeypatch):
    import dataclasses

    from scenarios import experiment
    from scenarios.cli import main

    real = experiment.method_summary

    def failing(spec, *a, **kw):
        if spec == "local":
            raise RuntimeError("disk on fire")
        return real(spec, *a, **kw)
    monkeypatch.setattr(experiment, "method_summary", failing)
    monkeypatch.setattr("scenarios.mec_offloading.QUICK", dataclasses.replace(
        QUICK, n_clients=2, rounds=1, steps_per_round=100, final_eval_episodes=1))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["run", "mec-offloading", "--quick", "--out", str(out), "--no-progress"])
    parts = sorted((out / "partial").glob("*.json"))
    assert len(parts) == 1
    saved = json.loads(parts[0].read_text())
    assert saved["method"] == "fedavg" and "mean_return" in saved["summary"] and saved["rows"]
    assert json.loads((out / "status.json").read_text())["state"] == "running"  # not marked complete


def test_plots_hold_methods_with_different_client_counts(tmp_path):
    """A multi-domain scenario (femrl, grouping) scores methods over different numbers of clients."""
    from scenarios.experiment import ExperimentResult

    def method(vals):
        return {"kind": "federated", "mean_return": float(np.mean(vals)), "worst_client_return": min(vals),
                "per_client_return": vals, "per_client_cost": vals}
    res = ExperimentResult(experiment=QUICK, rows=[("a", 1, 0, "global/return", 1.0)],
                           methods={"a": method([1.0, 2.0]), "b": method([3.0, 1.0, 2.0, 0.5])},
                           client_configs=[], wall_time_s=0.1)
    paths = results.plot_results(tmp_path, res)
    assert {p.name for p in paths} >= {"learning_curves.png", "per_client_return.png"}
    assert all(p.stat().st_size > 1000 for p in paths)
