"""The uav-mec scenario: fedavg, local and every heuristic scored, KPIs in range, claim table and results files."""

import dataclasses
import json

import pytest
import torch

from envs.uav_mec import PARALLEL_BASELINES
from scenarios import SCENARIOS, uav_mec
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)


def test_uav_mec_quick_run_is_complete_and_sane(tmp_path):
    assert SCENARIOS["uav-mec"] is uav_mec
    assert uav_mec.FULL.env_form == uav_mec.QUICK.env_form == "parallel"
    exp = dataclasses.replace(uav_mec.QUICK, rounds=1, steps_per_round=300, final_eval_episodes=1,
                              agent_config={**uav_mec.QUICK.agent_config, "learning_starts": 150},
                              env_overrides={"episode_slots": 60})
    ticks = []
    res = uav_mec.run(exp, lambda m, r, n: ticks.append(m))
    assert len(ticks) == uav_mec.progress_total(exp)
    methods = {"fedavg", "local", *PARALLEL_BASELINES}
    assert set(res.methods) == methods
    table = res.extra["uav_kpis"]
    assert set(table) == methods
    for name, row in table.items():
        assert len(row["per_client_delay"]) == exp.n_clients == len(res.methods[name]["per_client_return"])
        assert all(0.0 <= d <= exp_deadline(res) for d in row["per_client_delay"]), name
        assert all(0.0 <= p <= 1.0 for p in row["per_client_dropped"]), name
        # a UAV needs at least its minimum propulsion power (~126 W at Table I; lighter/denser air lowers it
        # little) and at most full-speed power plus computing
        assert all(80.0 < e < 800.0 for e in row["per_client_energy"]), name
    # heuristics behave as their physics says: chasing the backlog cuts delay against hovering at the centre,
    # circling at the maximum-endurance speed costs less energy than hovering
    assert table["fly-to-backlog"]["delay"] < table["hover"]["delay"]
    assert table["circle"]["energy"] < table["hover"]["energy"]
    m = res.methods
    assert m["local"]["bytes_communicated"] == 0 < m["fedavg"]["bytes_communicated"]
    claim = res.extra["claim"]
    assert isinstance(claim["held"], bool) and claim["best_heuristic"] in PARALLEL_BASELINES
    assert claim["delay_minus_local"] == pytest.approx(table["fedavg"]["delay"] - table["local"]["delay"])

    out = prepare_out_dir(tmp_path / "uav")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods and "uav_kpis" in summary
    assert "UAV-MEC KPIs" in (out / "summary.md").read_text()


def exp_deadline(res):
    return max(c["deadline_s"] for c in res.client_configs)


def test_claim_check_verdicts():
    def row(kind, ret, delay, energy):
        return {"kind": kind, "mean_return": ret, "delay": delay, "energy": energy, "dropped": 0.0}
    table = {"fedavg": row("federated", -100, 2.0, 150), "local": row("local", -120, 3.0, 160),
             "circle": row("heuristic", -110, 3.0, 140)}
    assert uav_mec.claim_check(table)["held"] is True
    table["local"] = row("local", -120, 1.0, 160)
    assert uav_mec.claim_check(table)["held"] is False
    table["local"] = row("local", -120, 3.0, 160)
    table["circle"] = row("heuristic", -90, 3.0, 140)
    assert uav_mec.claim_check(table)["held"] is False
    assert uav_mec.claim_check({"local": table["local"]})["held"] is None


def test_uav_mec_refuses_the_single_env_form():
    with pytest.raises(ValueError, match="env_form='single'"):
        uav_mec.run(dataclasses.replace(uav_mec.QUICK, env_form="single"))
