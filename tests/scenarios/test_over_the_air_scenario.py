"""The over-the-air scenario: the main methods and the SNR sweep run paired in one experiment; the sweep table,
its figure and the results contract are written."""

import dataclasses
import json

import numpy as np
import torch

from scenarios import SCENARIOS, over_the_air
from scenarios.results import prepare_out_dir, write_results

torch.set_num_threads(1)


def test_sweep_runs_paired_and_reports_every_snr(tmp_path):
    assert SCENARIOS["over-the-air"] is over_the_air
    exp = dataclasses.replace(over_the_air.QUICK, n_clients=2, rounds=1, steps_per_round=60, final_eval_episodes=1,
                              agent_config={**over_the_air._AGENT, "n_steps": 60})
    specs = exp.strategies + over_the_air._sweep_specs(exp)
    assert over_the_air.progress_total(exp) == len(specs) and len(set(specs)) == len(specs)
    res = over_the_air.run(exp)
    assert set(specs) <= set(res.methods)
    sweep = res.extra["snr_sweep"]
    assert sweep["snr_db"] == sorted({*over_the_air.SWEEP_SNRS, over_the_air.DEFAULT_SNR})
    for label, points in sweep["families"].items():
        assert [p["snr_db"] for p in points] == sweep["snr_db"], label
        for p in points:  # numbers are the run's own, not restated
            m = res.methods[p["spec"]]
            assert p["mean_return"] == m["mean_return"] and p["worst_client_return"] == m["worst_client_return"]
            assert p["aggregation_mse"] is not None and p["aggregation_mse"] >= 0
    analog = sweep["families"]["A-RLADMM (analog ADMM)"]
    digital = sweep["families"]["D-FRL (digital FedAvg)"]
    assert analog[0]["channel_mse"] > analog[-1]["channel_mse"]  # -20 dB vs 20 dB: noisier at low SNR
    assert all(p["bits_per_entry"] is None for p in analog) and digital[-1]["bits_per_entry"] > 0
    assert digital[0]["bits_per_entry"] <= digital[-1]["bits_per_entry"]
    assert set(sweep["references"]) == set(over_the_air.REFERENCES)
    # every method trained the same samples on the same clients (paired)
    samples = {m["samples_per_client"] for s, m in res.methods.items() if m["kind"] != "heuristic"}
    assert samples == {60.0}
    out = prepare_out_dir(tmp_path / "o")
    write_results(out, res, plot=over_the_air.plot)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["snr_sweep"]["snr_db"] == sweep["snr_db"]
    md = (out / "summary.md").read_text()
    assert "## SNR sweep" in md and "| D-FRL (digital FedAvg) | -20 |" in md
    assert (out / "snr_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert any(",ota/mse," in r for r in rows)
    assert np.isfinite([m["mean_return"] for m in res.methods.values()]).all()


def test_spec_at_keeps_the_default_snr_as_the_main_method():
    assert over_the_air.spec_at("over-the-air", over_the_air.DEFAULT_SNR) == "over-the-air"
    assert over_the_air.spec_at("over-the-air:channel=digital:admm=0", -20.0) == \
        "over-the-air:channel=digital:admm=0:snr_db=-20"
