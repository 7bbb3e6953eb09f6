"""frl bench: the grid runs, resumes without recomputing, gives the same leaderboard after a kill, refuses a
different grid in the same directory, and its statistics are right."""

import json
import shutil

import numpy as np
import pytest

from scenarios.bench import BenchError, BenchGrid, mean_ci, paired_tied, run_bench, t975
from scenarios.cli import main

# CartPole at one round of 2 clients: the smallest real grid (seconds per cell)
GRID = BenchGrid(env_ids=("frl/CartPoleHetero-v0",), strategies=("fedavg", "local"), seeds=2, clients=2, rounds=1,
                 quick=True)


def test_t_quantiles_and_intervals():
    assert t975(1) == 12.706 and t975(30) == 2.042
    assert abs(t975(60) - 2.000) < 2e-3 and abs(t975(10_000) - 1.960) < 1e-3
    m, half = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and np.isclose(half, 4.303 * 1.0 / np.sqrt(3))
    assert mean_ci([5.0]) == (5.0, None)
    assert paired_tied([10, 11, 12], [1, 2, 3]) is False       # a constant gap of 9 is significant
    assert paired_tied([10, 11, 12], [10, 11, 12.5]) is True    # within noise
    assert paired_tied([1.0], [0.0]) is None


def test_bench_resumes_after_a_kill_with_the_same_leaderboard(tmp_path):
    full = tmp_path / "full"
    calls = []
    run_bench(GRID, full, jobs=1, on_cell=lambda c, cached: calls.append(cached))
    assert calls == [False] * len(GRID.cells()) == [False] * 6
    files = {p.name for p in full.iterdir()}
    assert {"grid.json", "cells", "leaderboard.csv", "leaderboard.md", "leaderboard.png"} <= files
    board = (full / "leaderboard.csv").read_text()

    # a killed run: some cells finished, the rest not
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    for f in ("leaderboard.csv", "leaderboard.md", "leaderboard.png"):
        (killed / f).unlink()
    gone = sorted((killed / "cells").glob("*.json"))[:3]
    for p in gone:
        p.unlink()
    (killed / "cells" / "garbage.json").write_text("{not json")
    calls.clear()
    run_bench(GRID, killed, jobs=1, on_cell=lambda c, cached: calls.append(cached))
    assert calls.count(False) == 3 and calls.count(True) == 3   # only the missing cells ran
    assert (killed / "leaderboard.csv").read_text() == board

    # one aggregate row per method, every method ranked; strategies and heuristics both present
    lines = board.splitlines()
    agg = [row for row in lines[1:] if row.split(",")[4] == "all"]
    methods = {row.split(",")[2] for row in agg}
    assert {"fedavg", "local", "pd-controller", "random"} <= methods and len(agg) == len(methods)
    md = (full / "leaderboard.md").read_text()
    assert "| 1 |" in md and "≈ best" in md


def test_worker_processes_give_the_same_cells(tmp_path):
    run_bench(GRID, tmp_path / "a", jobs=1)
    run_bench(GRID, tmp_path / "b", jobs=2)
    for p in (tmp_path / "a" / "cells").glob("*.json"):
        a, b = json.loads(p.read_text()), json.loads((tmp_path / "b" / "cells" / p.name).read_text())
        for m in a["methods"]:  # everything but the measured CPU time is a function of the seed
            a["methods"][m].pop("train_time_s", None), b["methods"][m].pop("train_time_s", None)
        assert a["methods"] == b["methods"], p.name


def test_a_different_grid_is_refused_and_nothing_is_lost(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["bench", "--env", "frl/CartPoleHetero-v0", "--strategies", "fedavg", "--seeds", "1", "--clients", "2",
            "--rounds", "1", "--quick", "--jobs", "1", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*args[:4], "fedavg,local", *args[5:]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different grid" in err and "strategies" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(("args", "needle"), [
    (["--env", "frl/Nope-v0", "--strategies", "fedavg"], "frl/Nope-v0"),
    (["--env", "frl/CartPoleHetero-v0", "--strategies", "fedavg,nope"], "nope"),
    (["--env", "frl/CartPoleHetero-v0", "--strategies", "fedavg", "--seeds", "0"], "--seeds"),
    (["--env", "frl/CartPoleHetero-v0", "--strategies", "fedavg", "--jobs", "0"], "--jobs"),
    (["--env", "frl/CartPoleHetero-v0", "--strategies", "fedavg", "--heterogeneity", "0,2"], "heterogeneity"),
    (["--strategies", "fedavg"], "--env"),
])
def test_bad_grids_exit_2_with_one_line(args, needle, capsys, tmp_path):
    assert main(["bench", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_grid_validation_names_the_bad_value():
    with pytest.raises(BenchError, match="seeds=0"):
        BenchGrid(env_ids=("frl/CartPoleHetero-v0",), strategies=("fedavg",), seeds=0)


def test_cross_domain_table(tmp_path):
    grid = BenchGrid(env_ids=("frl/CartPoleHetero-v0", "frl/MecOffloading-v0"), strategies=("fedavg", "local"),
                     seeds=1, clients=2, rounds=1, quick=True)
    res = run_bench(grid, tmp_path, jobs=1)
    assert set(res["cross_domain"]) == {"fedavg", "local"}
    for d in grid.env_ids:
        assert all(np.isfinite(v) for v in res["domains"][d]["normalised"].values())
    header = (tmp_path / "leaderboard.csv").read_text().splitlines()[0]
    assert header == "strategy,frl/CartPoleHetero-v0,frl/MecOffloading-v0,mean"
    assert (tmp_path / "cartpole-hetero" / "leaderboard.md").exists()
    assert (tmp_path / "mec-offloading" / "leaderboard.png").stat().st_size > 0
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
