"""The cv2x scenario: liang2019 clients, multi-agent clients, a payload sweep with every method and sane KPIs."""

import dataclasses
import json

import pytest

from envs.cv2x import CV2XConfig, make_client_configs
from envs.knobs import apply_overrides
from scenarios import SCENARIOS, cv2x
from scenarios.results import prepare_out_dir, write_results


def test_clients_run_the_liang2019_preset():
    preset = CV2XConfig.preset("liang2019")
    configs = [apply_overrides(c, dict(cv2x.FULL.env_overrides))
               for c in make_client_configs(cv2x.FULL.n_clients, cv2x.FULL.heterogeneity, 0)]
    for c in configs:
        differ = {f.name for f in dataclasses.fields(c) if getattr(c, f.name) != getattr(preset, f.name)}
        assert differ <= {"shadow_std_v2i_db", "shadow_std_v2v_db", "agent_id_obs"}, differ
        assert c.agent_id_obs is False  # agent ids measured no better at full size (module docstring)
    assert SCENARIOS["cv2x"] is cv2x
    assert cv2x.FULL.env_form == cv2x.QUICK.env_form == "parallel"


def test_quick_run_is_complete_and_sane(tmp_path):
    exp = dataclasses.replace(cv2x.QUICK, rounds=1, steps_per_round=400,
                              baselines=("random", "greedy", "sps", "exhaustive"))
    ticks = []
    res = cv2x.run(exp, lambda m, r, n: ticks.append(m), workers=1)
    assert len(ticks) == cv2x.progress_total(exp)
    methods = {"fedavg", "local", "random", "greedy", "sps", "exhaustive"}
    assert set(res.methods) == methods
    for name, m in res.methods.items():
        assert 0.0 <= m["v2v_delivery_prob"] <= 1.0, name
        assert 0.0 <= m["v2v_delivery"] <= 1.0, name
        assert 0.0 < m["v2i_capacity"] < 200.0, name  # 4 RBs of 1 MHz: tens of Mbit/s
        assert len(m["per_client_return"]) == exp.n_clients
    # every client ran the liang2019 geometry at the main payload
    assert all(c["link_geometry"] == "v2i-vehicles" and c["payload_bytes"] == 2120.0 for c in res.client_configs)
    sweep = res.extra["payload_sweep"]
    assert list(sweep) == ["1x1060B", "2x1060B", "4x1060B", "8x1060B"]
    for row in sweep.values():
        assert set(row["methods"]) == methods - {"local"}
        assert row["best_heuristic_excl_exhaustive"] in {"random", "greedy", "sps"}
    # heuristics are unaffected by training: larger payloads are harder for random resource selection
    assert sweep["8x1060B"]["methods"]["random"]["v2v_delivery"] < sweep["1x1060B"]["methods"]["random"][
        "v2v_delivery"]
    out = prepare_out_dir(tmp_path / "cv2x")
    write_results(out, res)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == methods
    assert "payload_sweep" in summary and "| payload |" in summary["payload_sweep_markdown"]
    for f in ("config.json", "metrics.csv", "summary.md", "learning_curves.png", "per_client_return.png"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize("payload, expected", [(2120.0, 3), (1060.0, 2)])
def test_sweep_skips_the_main_payload(payload, expected):
    exp = dataclasses.replace(cv2x.QUICK, env_overrides={**cv2x.QUICK.env_overrides, "payload_bytes": payload})
    assert len(cv2x._payloads(exp)) == expected


def test_worker_processes_change_no_number():
    """The main run split by method and the sweep in 2 processes give the same results as one process."""
    exp = dataclasses.replace(cv2x.QUICK, rounds=1, steps_per_round=200, n_clients=1, final_eval_episodes=1,
                              baselines=("random", "greedy"))
    one, two = cv2x.run(exp, workers=1), cv2x.run(exp, workers=2)

    def numbers(res):  # everything but the measured times
        return {m: {k: v for k, v in d.items() if "time" not in k} for m, d in res.methods.items()}
    assert numbers(one) == numbers(two)
    assert [r for r in one.rows if "time" not in r[3]] == [r for r in two.rows if "time" not in r[3]]
    assert one.extra["payload_sweep"] == two.extra["payload_sweep"]
