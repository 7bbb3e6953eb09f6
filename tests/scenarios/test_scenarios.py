"""Scenario modules: the heterogeneity sweep and the vertical scenario produce complete, sane summaries."""

import dataclasses
import json

from scenarios import SCENARIOS, heterogeneity, vertical
from scenarios.results import prepare_out_dir, write_results


def test_every_scenario_has_a_quick_and_a_default_size():
    for name, module in SCENARIOS.items():
        quick, full = module.QUICK, module.FULL
        assert quick.scenario == full.scenario == name
        assert quick.rounds * quick.steps_per_round < full.rounds * full.steps_per_round


def test_heterogeneity_sweep_reports_every_level(tmp_path):
    exp = dataclasses.replace(heterogeneity.QUICK, n_clients=2, rounds=1, steps_per_round=120,
                              strategies=("fedavg", "fedper", "local"), final_eval_episodes=1)
    res = heterogeneity.run(exp)
    sweep = res.extra["sweep"]
    assert set(sweep) == {"0", "0.5", "1"}
    for level in sweep.values():
        assert set(level["methods"]) == {"fedavg", "fedper", "local"}
        assert level["best_personalised"] == "fedper"
        assert level["gap_personalised_minus_fedavg"] == (
            level["methods"]["fedper"]["mean_return"] - level["methods"]["fedavg"]["mean_return"])
    out = prepare_out_dir(tmp_path / "h")
    write_results(out, res)
    assert "sweep" in json.loads((out / "summary.json").read_text())
    assert "Heterogeneity sweep" in (out / "summary.md").read_text()
    assert (out / "heterogeneity_sweep.png").stat().st_size > 1000


def test_vertical_scenario_compares_with_independent_learners():
    exp = dataclasses.replace(vertical.QUICK, rounds=1, steps_per_round=120,
                              final_eval_episodes=1, learner_config={"learning_starts": 50, "batch_size": 16})
    res = vertical.run(exp)
    assert {"vertical-fedrl", "independent", "random", "greedy"} <= set(res.methods)
    assert res.methods["vertical-fedrl"]["bytes_communicated"] > 0
    assert res.methods["independent"]["bytes_communicated"] == 0
