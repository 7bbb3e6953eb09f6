"""The task-scheduling scenario: every method scored, KPIs in range, the bound below every method."""

import dataclasses
import json

import torch

from envs.task_scheduling import ENTRY
from scenarios import SCENARIOS, task_scheduling
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_task_scheduling_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["task-scheduling"] is task_scheduling
    assert task_scheduling.FULL.agent == "ppo" and task_scheduling.FULL.strategies == ("fedavg", "local")
    assert task_scheduling.QUICK.rounds < task_scheduling.FULL.rounds
    exp = dataclasses.replace(task_scheduling.QUICK, n_clients=2, rounds=2, steps_per_round=512, eval_every=2,
                              env_overrides={"episode_slots": 60})
    res = task_scheduling.run(exp)

    methods = {"fedavg", "local", *ENTRY.baselines}
    assert set(res.methods) == methods
    for name, m in res.methods.items():
        assert m["slowdown"] >= task_scheduling.SLOWDOWN_BOUND, name        # the bound holds for everyone
        assert 0.0 <= m["deadline_miss"] <= 1.0 and 0.0 < m["utilisation"] <= 1.0, name
        assert len(m["per_client_return"]) == 2 and m["mean_return"] < 0, name
    assert res.methods["local"]["bytes_communicated"] == 0 < res.methods["fedavg"]["bytes_communicated"]
    # claim-relevant sanity: the heuristics order as the env promises (random worst, SJF ahead of FIFO)
    sd = {n: res.methods[n]["slowdown"] for n in ENTRY.baselines}
    assert sd["random"] > max(v for k, v in sd.items() if k != "random")
    assert sd["sjf"] < sd["fifo"]
    extra = res.extra["slowdown_bound"]
    assert extra["value"] == 1.0 and extra["best_heuristic"] in ENTRY.baselines
    assert extra["slowdown_vs_best_heuristic"][extra["best_heuristic"]] == 1.0

    out = prepare_out_dir(tmp_path / "ts")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "slowdown_bound" in summary
