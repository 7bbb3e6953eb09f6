"""The byzantine scenario: every attack x defence scored, returns in range, the attackers are the chosen
clients, the table, the claim check and the figure are written."""

import dataclasses
import json

import pytest
import torch

from federation.types import FederationError
from scenarios import SCENARIOS, byzantine
from scenarios.cli import apply_flags
from scenarios.experiment import ScenarioError
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)


def test_full_setup_is_fedpg_br_cartpole():
    assert SCENARIOS["byzantine"] is byzantine
    f = byzantine.FULL
    assert f.n_clients == 10 and f.heterogeneity == 0.0 and len(f.malicious_clients()) == 3
    assert f.agent in ("reinforce", "ppo", "a2c") and f.env_id == "frl/CartPoleHetero-v0"
    assert set(f.attacks) == {"sign-flip", "gaussian", "scale", "zero", "random-action", "reward-flip"}
    assert [s.split(":")[0] for s in f.strategies] == ["fedavg", "median", "trimmed-mean", "krum", "fedpg-br"]


def test_quick_run_is_complete_and_sane(tmp_path):
    exp = dataclasses.replace(byzantine.QUICK, n_clients=6, malicious=0.34, rounds=2, steps_per_round=200,
                              agent_config={**byzantine.QUICK.agent_config, "n_steps": 200},
                              attacks=("sign-flip", "random-action"), strategies=("fedavg", "median", "fedpg-br"))
    bad = exp.malicious_clients()
    assert len(bad) == 2
    res = byzantine.run(exp)
    labels = {f"{a} / {s}" for a in ("none", *exp.attacks) for s in exp.strategies}
    assert labels | {"pd-controller", "random"} == set(res.methods)
    for name, m in res.methods.items():
        assert 0.0 <= m["mean_return"] <= 500.0, name
        assert len(m["per_client_return"]) == 6
    flagged = {(meth, c) for meth, _, c, k, _ in res.rows if k == "byzantine/malicious"}
    for a in exp.attacks:
        for s in exp.strategies:
            assert {c for meth, c in flagged if meth == f"{a} / {s}"} == set(bad)
    assert not {meth for meth, _ in flagged if meth.startswith("none /")}
    fb = res.methods["sign-flip / fedpg-br"]
    assert 0.0 <= fb["filter_rejected_byzantine"] <= 1.0 and 0.0 <= fb["filter_rejected_honest"] <= 1.0
    check = res.extra["byzantine"]
    assert set(check["per_attack"]) == set(exp.attacks) and check["attack_free_fedavg_return"] > 0
    assert "| sign-flip |" in res.extra["byzantine_markdown"]

    out = prepare_out_dir(tmp_path / "byz")
    paths = write_results(out, res, plot=byzantine.plot)   # as `frl run byzantine` writes it
    assert (out / "byzantine_returns.png") in paths and (out / "byzantine_returns.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert "byzantine" in summary and "Byzantine clients" in (out / "summary.md").read_text()
    assert json.loads((out / "config.json").read_text())["experiment"]["malicious"] == 0.34


def test_flags_and_bad_values():
    exp = apply_flags("byzantine", byzantine.QUICK, ["--malicious", "0.2", "--attacks", "zero,scale:k=3"])
    assert exp.malicious == 0.2 and exp.attacks == ("zero", "scale:k=3")
    with pytest.raises(ScenarioError, match=r"malicious=0\.5"):
        dataclasses.replace(byzantine.QUICK, malicious=0.5)
    with pytest.raises(FederationError, match="unknown attack 'flip'"):
        dataclasses.replace(byzantine.QUICK, attacks=("flip",))
    with pytest.raises(ScenarioError, match="twice"):
        dataclasses.replace(byzantine.QUICK, attacks=("zero", "zero"))
