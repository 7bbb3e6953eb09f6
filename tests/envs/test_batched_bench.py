"""``bench/batched_envs.py`` returns the issue's JSON shape (a tiny, fast run; speed is the bench's business)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_batched_envs", ROOT / "bench" / "batched_envs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_measure_env_steps_shape_and_json(capsys):
    bench = _bench_module()
    res = bench.measure_env_steps(batch_sizes=(1, 3), seconds=0.01, repeats=1, only="mec-offloading")
    assert set(res) == {"env_steps_per_s", "cartpole_single_steps_per_s", "single_loop_steps_per_s"}
    row = res["env_steps_per_s"]["frl/MecOffloading-v0"]
    assert set(row) == {"1", "3"} and all(v > 0 for v in row.values())
    assert res["cartpole_single_steps_per_s"] > 0 and res["single_loop_steps_per_s"]["frl/MecOffloading-v0"] > 0
    assert "frl/MecOffloading-v0" in bench.format_table(res)
    assert bench.main(["--batch-sizes", "2", "--seconds", "0.01", "--repeats", "1", "--env", "mec-offloading",
                       "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["env_steps_per_s"]) == {"frl/MecOffloading-v0"}
