"""The oran-access scenario: every method scored, KPIs in range, UCB selects and shares less, results written."""

import dataclasses
import json
import math

import pytest
import torch

from envs.oran_access import ENTRY, OranAccessConfig
from scenarios import SCENARIOS, oran_access
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_oran_access_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["oran-access"] is oran_access
    full = oran_access.FULL
    assert full.agent_config["dueling"] is True and full.env_form == "parallel"
    assert full.strategies[0] == "ucb" and {"fedavg", "local"} <= set(full.strategies)
    exp = dataclasses.replace(oran_access.QUICK, rounds=3, eval_every=3, steps_per_round=1800,
                              env_overrides={"episode_steps": 40})
    res = oran_access.run(exp)

    methods = {"ucb", "fedavg", "local", *ENTRY.parallel_baselines}
    assert set(res.methods) == methods
    cfg = OranAccessConfig()
    cap_mbps = cfg.bandwidth_mhz * cfg.se_max_bps_hz  # one UE alone in its cell at the spectral-efficiency cap
    for name, m in res.methods.items():
        assert 0.0 < m["throughput"] <= cap_mbps, name
        assert 0.0 <= m["ping_pong"] <= m["handover"] <= 1.0, name
        assert len(m["per_client_return"]) == 3 and all(math.isfinite(r) for r in m["per_client_return"])
        per = res.extra["per_area_kpis"][name]
        assert all(0.0 < t <= cap_mbps for t in per["throughput"]), name
        assert per["ho_per_min"] == pytest.approx([600.0 * x for x in per["handover"]])
    # the paper's method: the dueling streams stay personal, half the areas upload each round
    assert res.methods["ucb"]["evaluated_model"] == "global"
    assert res.methods["ucb"]["strategy_params"]["share"] == "body"
    assert sum(res.extra["ucb_selection_counts"]) == 3 * 2  # round(0.5 * 3) = 2 areas per round
    assert 0 < res.methods["ucb"]["bytes_communicated"] < res.methods["fedavg"]["bytes_communicated"]
    assert res.methods["local"]["bytes_communicated"] == 0
    # a learned policy (any of them) is far above random association and nearest-cell association
    for name in ("ucb", "fedavg", "local"):
        assert res.methods[name]["mean_return"] > res.methods["nearest"]["mean_return"] + 20.0, name
        assert res.methods[name]["mean_return"] > res.methods["random"]["mean_return"] + 100.0, name
    claim = res.extra["claim"]
    assert claim["method"] == "ucb" and isinstance(claim["held"], bool)

    out = prepare_out_dir(tmp_path / "oran")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png",
              "per_client_return.png"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "per_area_kpis" in summary and "claim" in summary
    assert "Per-area KPIs" in (out / "summary.md").read_text()
