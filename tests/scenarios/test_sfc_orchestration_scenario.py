"""The SSCO scenario: every method scored, KPIs in range, exchange once per episode, the offline bound above
every heuristic on the same requests, and the results contract."""

import dataclasses
import json

import torch

from envs.sfc_orchestration import ENTRY, SfcOrchestrationConfig
from scenarios import SCENARIOS, sfc_orchestration
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_declared_as_ssco():
    assert SCENARIOS["sfc-orchestration"] is sfc_orchestration
    for exp in (sfc_orchestration.FULL, sfc_orchestration.QUICK):
        assert exp.steps_per_round == SfcOrchestrationConfig().episode_steps   # exchange at episode ends
        assert exp.agent == "masked-dqn" and exp.agent_config["exploration_schedule"] == "exponential"
        assert set(exp.strategies) == {"fedavg", "local"}
    assert "Huang" in sfc_orchestration.__doc__ and "CLAIM" in sfc_orchestration.__doc__


def test_quick_run_is_complete_and_sane(tmp_path):
    exp = dataclasses.replace(sfc_orchestration.QUICK, n_clients=2, rounds=2, eval_every=2, final_eval_episodes=1)
    res = sfc_orchestration.run(exp)

    methods = {"fedavg", "local", "fedavg-unmasked", *ENTRY.baselines}
    assert set(res.methods) == methods
    for name, m in res.methods.items():
        assert 0.0 < m["acceptance"] < 1.0, name
        assert 0.0 < m["utilisation"] <= 1.0 and 0.0 <= m["link_utilisation"] <= 1.0, name
        assert 0.0 <= m["placement_error"] <= 1.0, name
        assert len(m["per_client_return"]) == 2, name
        if name != "fedavg-unmasked":                     # the mask rules out placement errors
            assert m["placement_error"] == 0.0, name
    assert res.methods["local"]["bytes_communicated"] == 0 < res.methods["fedavg"]["bytes_communicated"]
    assert res.methods["fedavg-unmasked"]["bytes_communicated"] > 0
    best = max(res.methods[b]["acceptance"] for b in ENTRY.baselines if b != "random")
    assert res.methods["random"]["acceptance"] < best

    bound = res.extra["offline_bound"]
    assert len(bound["per_client"]) == 2
    for client in bound["per_client"]:                    # the LP bound is above every heuristic's count
        assert all(client[b] <= client["bound"] + 1e-6 for b in ENTRY.baselines)
        assert client["bound"] <= bound["requests"] + 1e-6
    assert any(r[0] == "fedavg-unmasked" for r in res.rows)

    out = prepare_out_dir(tmp_path / "sfc")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "offline_bound" in summary
