"""The vertical scenario: the liang2019 road, every learner and heuristic scored on the KPIs, references, results."""

import dataclasses
import json

from envs.cv2x import CV2XConfig
from scenarios import SCENARIOS, vertical
from scenarios.results import prepare_out_dir, write_results

HEURISTICS = {"random", "greedy", "round-robin", "sps", "exhaustive"}


def test_the_shared_road_is_the_liang2019_preset():
    assert SCENARIOS["vertical"] is vertical
    assert vertical.ENV_CONFIG == CV2XConfig.preset("liang2019")
    assert vertical.QUICK.learner_config["gamma"] == vertical.FULL.learner_config["gamma"]


def test_quick_run_is_complete_and_sane(tmp_path):
    exp = dataclasses.replace(vertical.QUICK, rounds=1, steps_per_round=150, final_eval_episodes=1)
    ticks = []
    res = vertical.run(exp, lambda m, r, n: ticks.append(m), workers=1)
    assert len(ticks) == vertical.progress_total(exp)
    assert set(res.methods) == set(vertical.METHODS) | HEURISTICS
    for name, m in res.methods.items():
        assert 0.0 <= m["v2v_delivery_prob"] <= 1.0, name
        assert 0.0 < m["v2i_capacity"] < 200.0, name
        assert -1.0 < m["mean_return"] <= 100.0, name  # 100 slots of a reward <= 1
    assert res.methods["vertical-fedrl"]["bytes_communicated"] > 0 == res.methods["independent"]["bytes_communicated"]
    refs = res.extra["references"]
    assert refs["best_heuristic"] in HEURISTICS - {"exhaustive"}
    # the per-slot oracle scores at least the heuristics on the same episodes
    assert refs["exhaustive_return"] >= refs["best_heuristic_return"] > refs["random_return"]
    assert refs["vertical-fedrl_minus_independent"] == (res.methods["vertical-fedrl"]["mean_return"]
                                                        - res.methods["independent"]["mean_return"])
    assert res.client_configs[0]["link_geometry"] == "v2i-vehicles"
    out = prepare_out_dir(tmp_path / "vertical")
    write_results(out, res)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == set(res.methods)
    assert "exhaustive oracle" in (out / "summary.md").read_text()
    for f in ("config.json", "metrics.csv", "learning_curves.png"):
        assert (out / f).stat().st_size > 0


def test_worker_processes_change_no_number():
    exp = dataclasses.replace(vertical.QUICK, rounds=1, steps_per_round=120, final_eval_episodes=1)
    one, two = vertical.run(exp, workers=1), vertical.run(exp, workers=2)
    strip = {m: {k: v for k, v in d.items() if "time" not in k} for m, d in one.methods.items()}
    assert strip == {m: {k: v for k, v in d.items() if "time" not in k} for m, d in two.methods.items()}
