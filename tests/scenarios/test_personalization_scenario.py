"""The personalization scenario: every method scored in every cell, the normalisation, skipped cells, the figure."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from federation.types import FederationError
from scenarios import SCENARIOS, personalization
from scenarios.experiment import ScenarioError
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)


def _tiny(**kw):
    specs = {k: dataclasses.replace(d, rounds=1, steps_per_round=80)
             for k, d in personalization.QUICK_DOMAINS.items()}
    return dataclasses.replace(personalization.QUICK, domain_specs=specs, workers=1, **kw)


def test_every_method_is_scored_and_normalised_in_every_cell(tmp_path):
    assert SCENARIOS["personalization"] is personalization
    assert set(personalization.FULL.strategies) == {"fedavg", "local", *personalization.PERSONALISED}
    assert set(personalization.FULL.domains) == set(personalization.DOMAINS)
    exp = _tiny(domains=("mec-offloading", "cartpole"))
    res = personalization.run(exp)

    cells = res.extra["cells"]
    assert list(cells) == ["mec-offloading/h0", "mec-offloading/h1", "cartpole/h0", "cartpole/h1"]
    for key, cell in cells.items():
        norm = cell["normalisation"]
        assert norm is not None and norm["scale"] > 0, key
        assert norm["best_heuristic"] not in personalization.CLAIRVOYANT and norm["best_heuristic"] != "random"
        assert not cell["skipped"]
        for name in exp.strategies:
            m = cell["methods"][name]
            z = np.asarray(m["norm_per_client"])
            assert len(z) == 2 and np.isfinite(z).all(), (key, name)
            assert m["norm_mean"] == pytest.approx(z.mean()) and m["norm_worst"] == pytest.approx(z.min())
            # z is the return's distance above random in units of the random-to-best-heuristic gap
            raw = np.asarray(m["per_client_return"])
            assert np.allclose(raw, np.asarray(norm["random_per_client"]) + z * norm["scale"])
        assert cell["methods"]["random"]["norm_mean"] == pytest.approx(0.0, abs=1e-9)
        assert cell["methods"][norm["best_heuristic"]]["norm_mean"] == pytest.approx(1.0)
        for name, won in cell["paid"].items():  # paid = beat both references by the margin
            assert name in personalization.PERSONALISED
            for kpi in won:
                refs = max(cell["methods"][r][f"norm_{kpi}"] for r in ("fedavg", "local"))
                assert cell["methods"][name][f"norm_{kpi}"] >= refs + exp.margin
    # heterogeneity 1 makes the clients differ, heterogeneity 0 does not
    cfgs = [c for c in res.client_configs if c["cell"] == "mec-offloading/h1"]
    assert cfgs[0]["arrival_rate"] != cfgs[1]["arrival_rate"]
    assert set(res.methods) == set(exp.strategies)
    assert all(m["cells_scored"] == 4 for m in res.methods.values())

    md = res.extra["personalization_markdown"]
    for name in exp.strategies:
        assert f"| {name} |" in md
    assert "cartpole h=1" in md and "fedavg above random?" in md

    out = prepare_out_dir(tmp_path / "p")
    write_results(out, res)
    (fig,) = personalization.plot(out, res)
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["cells"]) == set(cells) and "Where does personalization pay?" in (out / "summary.md").read_text()
    assert summary["cells"]["cartpole/h1"]["methods"]["apfl"]["norm_worst"] is not None


def test_a_failing_method_is_skipped_with_its_reason_and_the_others_still_run():
    # FedPG-BR's filter refuses a DQN client when the run attaches its hooks (policy-gradient agents only)
    exp = _tiny(domains=("cartpole",), heterogeneity_levels=("1",), strategies=("fedavg", "local", "fedpg-br"))
    res = personalization.run(exp)
    cell = res.extra["cells"]["cartpole/h1"]
    assert set(cell["skipped"]) == {"fedpg-br"} and "dqn" in cell["skipped"]["fedpg-br"]
    assert {"fedavg", "local", "random", "pd-controller"} <= set(cell["methods"])
    assert "skipped: FederationError" in res.extra["personalization_markdown"]


def test_what_cannot_run_is_refused_before_any_training():
    # ifca with declared groups for one client cannot run on two clients: refused when the config is built
    with pytest.raises(FederationError, match="groups lists 1 clients for a run of"):
        _tiny(domains=("cartpole",), heterogeneity_levels=("1",), strategies=("fedavg", "ifca:groups=0"))


def test_finetune_tunes_for_half_a_round_unless_told():
    exp = personalization.FULL
    steps = exp.domain_specs["mec-offloading"].steps_per_round
    cell = personalization.cell_experiment(exp, "mec-offloading", 1.0, ("finetune", "finetune:steps=7"))
    assert cell.strategies == (f"finetune:steps={steps // 2}", "finetune:steps=7")
    assert "belady" not in personalization.cell_experiment(exp, "edge-caching", 0.0).baselines


def test_normalise_uses_random_and_the_best_non_clairvoyant_heuristic():
    h = {"kind": "heuristic"}
    methods = {"random": {**h, "mean_return": 1.0, "per_client_return": [0.0, 2.0]},
               "good": {**h, "mean_return": 5.0, "per_client_return": [4.0, 6.0]},
               "belady": {**h, "mean_return": 50.0, "per_client_return": [50.0, 50.0]}}
    norm = personalization.normalise(methods)
    assert norm["best_heuristic"] == "good" and norm["scale"] == 4.0
    assert personalization.normalise({"random": methods["random"]}) is None


@pytest.mark.parametrize("kw, needle", [
    ({"domains": ("nowhere",)}, "nowhere"),
    ({"heterogeneity_levels": ("0", "2")}, "'2'"),
    ({"heterogeneity_levels": ("x",)}, "'x'"),
    ({"budget": 0.0}, "budget"),
    ({"workers": 0}, "workers"),
    ({"strategies": ("nosuch",)}, "nosuch"),
])
def test_bad_knobs_are_refused_naming_the_value(kw, needle):
    with pytest.raises(ValueError, match=needle):
        dataclasses.replace(personalization.FULL, **kw)
    assert issubclass(ScenarioError, ValueError)
