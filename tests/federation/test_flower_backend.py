"""``--backend flower``: the same run through Flower's simulation engine and through a real SuperLink + two
SuperNodes on 127.0.0.1 matches the in-process run; the default path never imports ``flwr``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the run that every backend must reproduce: two clients that learn (learning_starts=200 < 300 steps)
FLAGS = ["--quick", "--clients", "2", "--rounds", "2", "--steps-per-round", "300", "--eval-every", "2",
         "--final-eval-episodes", "1"]
DEPLOYED = [*FLAGS, "--strategy", "fedavg"]  # one method: every ClientApp message is a fresh process
TIMING = {"train_time_s", "wall_time_s"}  # wall-clock measurements: the only fields allowed to differ


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _same(a: object, b: object, path: str = "") -> list[str]:
    """Paths where two summaries differ (floats within 1e-9 relative), timing fields ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: missing" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            if k not in TIMING:
                out += _same(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if a == pytest.approx(b, rel=1e-9, abs=1e-12) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _experiment(backend: str):  # noqa: ANN202
    from scenarios import scenario_module
    from scenarios.cli import apply_flags

    exp = apply_flags("mec-offloading", scenario_module("mec-offloading").QUICK, FLAGS[1:])
    return replace(exp, backend=backend)


def test_the_default_path_never_imports_flwr() -> None:
    code = ("import sys; from scenarios.cli import main; "
            f"rc = main(['run', 'mec-offloading', *{FLAGS!r}, '--strategy', 'local', '--out', sys.argv[1], "
            "'--no-progress']); "
            "assert rc == 0, rc; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flwr', 'ray')); "
            "print('IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code, str(Path(os.environ.get("TMPDIR", "/tmp")) /
                                                        f"frl-noflwr-{os.getpid()}-{time.time_ns()}")],
                         capture_output=True, text=True, env=_env(), timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORTED []" in out.stdout, out.stdout[-500:]


def _need_flwr() -> None:
    pytest.importorskip("flwr", reason="the optional extra is not installed: pip install -e '.[flower]'")


def test_what_cannot_run_on_flower_is_refused_before_anything_starts() -> None:
    _need_flwr()
    from scenarios.experiment import CHECKPOINTS, ScenarioError
    from scenarios.flower_app import check_flower

    exp = _experiment("flower")
    with pytest.raises(ScenarioError, match="strategy 'central' cannot run with --backend flower"):
        check_flower(replace(exp, strategies=("central",)), "central")
    with pytest.raises(ScenarioError, match="--secure-aggregation is not supported with --backend flower"):
        check_flower(replace(exp, secure_aggregation=True), "fedavg")
    token = CHECKPOINTS.set(object())  # type: ignore[arg-type]
    try:
        with pytest.raises(ScenarioError, match="--checkpoint-every is not supported with --backend flower"):
            check_flower(exp, "fedavg")
    finally:
        CHECKPOINTS.reset(token)


def test_the_experiment_survives_the_wire() -> None:
    _need_flwr()
    from scenarios.flower_app import experiment_from_json, experiment_json

    exp = _experiment("flower")
    again = experiment_from_json(experiment_json(exp))
    assert again == exp and isinstance(again.agent_config["hidden_sizes"], tuple)


def test_flower_simulation_matches_in_process() -> None:
    """Flower's simulation engine (Ray actors run the ClientApp; state in Context.state) = in-process."""
    _need_flwr()
    import torch

    from scenarios.experiment import run_experiment

    torch.set_num_threads(1)
    ref = run_experiment(_experiment("inprocess"))
    got = run_experiment(replace(_experiment("flower"), workers=1))
    assert _same(ref.methods, got.methods) == []
    strip = lambda rows: sorted(r for r in rows)  # noqa: E731
    assert strip(ref.rows) == strip(got.rows)  # every per-round, per-client metric, bitwise


# ----- a real deployment: one SuperLink, two SuperNodes, `flwr run` -----------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """The process and everything it started (its own session), TERM then KILL; every wait bounded."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_for(pred, timeout: float, what: str, logs: list[Path]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs if p.exists())
    pytest.fail(f"{what} within {timeout:.0f} s\n{tails}")


def test_superlink_and_two_supernodes_match_in_process(tmp_path: Path) -> None:
    _need_flwr()
    import torch

    from scenarios.cli import main as frl_main
    from scenarios.flower_app import write_app

    torch.set_num_threads(1)
    link, nodes = _free_port(), [_free_port(), _free_port()]
    home, out = tmp_path / "flwr-home", tmp_path / "out"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "test"\n\n[superlink.test]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    app = write_app(tmp_path / "app", "mec-offloading", flags=" ".join(DEPLOYED), out=str(out), min_nodes=2,
                    node_wait_s=60)
    env = {**_env(), "FLWR_HOME": str(home)}
    bindir = Path(sys.executable).parent
    logs = [tmp_path / n for n in ("superlink.log", "supernode-0.log", "supernode-1.log", "flwr-run.log")]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start([str(bindir / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                             "--port", str(link)], logs[0], env))
        for i, port in enumerate(nodes):
            procs.append(_start([str(bindir / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                                 "--port", str(port), "--node-config", f"partition-id={i} num-partitions=2"],
                                logs[1 + i], env))
        _wait_for(lambda: logs[0].read_text(errors="replace").count("Activated node_id") >= 2, 90,
                  "two SuperNodes did not register with the SuperLink", logs)
        with open(logs[3], "wb") as f:
            run = subprocess.run([str(bindir / "flwr"), "run", str(app), "test", "--stream"], stdout=f,
                                 stderr=subprocess.STDOUT, env=env, timeout=300, cwd=tmp_path)
        _wait_for(lambda: (out / "summary.json").exists(), 60, "the ServerApp wrote no summary.json", logs)
        assert run.returncode == 0, logs[3].read_text(errors="replace")[-2000:]
    finally:
        for p in reversed(procs):
            _stop(p)
    assert all(p.poll() is not None for p in procs)
    assert frl_main(["run", "mec-offloading", *DEPLOYED, "--out", str(tmp_path / "ref"), "--no-progress"]) == 0
    deployed = json.loads((out / "summary.json").read_text())
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert _same(ref, deployed) == []
    per_node = [logs[1 + i].read_text(errors="replace").count("Start `flwr-clientapp`") for i in range(2)]
    assert min(per_node) >= 1, per_node  # both SuperNodes hosted a client
