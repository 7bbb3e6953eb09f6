"""The cfrl scenario: a quick run scores CFRL, FedAvg, independent hosts and every heuristic on the same regions,
writes the full results contract, and records the claim check."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from envs.mec_allocation import PARALLEL_BASELINES
from scenarios import SCENARIOS, cfrl
from scenarios.experiment import ScenarioError
from scenarios.results import RESULT_FILES, prepare_out_dir, write_results

torch.set_num_threads(1)


def test_cfrl_quick_run_is_complete_and_writes_the_contract(tmp_path):
    assert SCENARIOS["cfrl"] is cfrl
    assert "Zhu" in cfrl.__doc__ and "CLAIM" in cfrl.__doc__
    exp = dataclasses.replace(cfrl.QUICK, rounds=1, steps_per_round=300)
    res = cfrl.run(exp, workers=1)
    assert set(res.methods) == {"cfrl", "fedavg", "local", *PARALLEL_BASELINES}
    for name, m in res.methods.items():
        assert len(m["per_client_return"]) == exp.n_clients, name
        assert 0.0 <= m["served"] <= 1.0 and m["utility"] >= 0.0 and 0.0 < m["delay"] < 1.0, name
    m = res.methods
    # bytes: independent hosts send nothing; CFRL sends the critic only, so less than FedAvg's whole model
    assert m["local"]["bytes_communicated"] == 0 < m["cfrl"]["bytes_communicated"] < m["fedavg"]["bytes_communicated"]
    claim = res.extra["claim"]
    assert isinstance(claim["held"], bool) and claim["utility_cfrl"] == m["cfrl"]["utility"]
    assert claim["vs_heuristics"]["best"] in PARALLEL_BASELINES

    out = prepare_out_dir(tmp_path / "cfrl")
    write_results(out, res)
    for f in ("config.json", "metrics.csv", "summary.json", "summary.md"):
        assert f in RESULT_FILES and (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == set(res.methods) and "claim" in summary
    assert "## Claim" in (out / "summary.md").read_text()


def test_cfrl_scenario_refuses_the_single_env_form():
    with pytest.raises(ScenarioError, match="env_form='single'"):
        cfrl.run(dataclasses.replace(cfrl.QUICK, env_form="single"))


def test_claim_check_reads_utility_and_delay():
    def m(u, d, kind="strategy"):
        return {"utility": u, "delay": d, "served": 0.5, "kind": kind}

    base = {"local": m(0.7, 0.4), "fedavg": m(0.75, 0.4), "equal": m(0.6, 0.5, "heuristic")}
    assert cfrl.claim_check({**base, "cfrl": m(0.8, 0.39)})["held"] is True
    assert cfrl.claim_check({**base, "cfrl": m(0.8, 0.45)})["held"] is False      # slower than its peers
    assert cfrl.claim_check({**base, "cfrl": m(0.72, 0.3)})["held"] is False      # below fedavg's utility
    assert cfrl.claim_check(base)["held"] is None
