"""Checkpoint and resume: a killed run continues bitwise; a bad checkpoint is refused and left untouched."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from federation.checkpoint import Checkpointer, CheckpointError, capture, read_checkpoint, restore
from federation.server import run_federation
from scenarios import scenario_module
from scenarios.cli import main
from scenarios.experiment import client_setup, make_pool

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


class Kill(Exception):
    """Stands for the process dying after a round (the checkpoint on disk is all that survives)."""


def tiny(scenario: str = "heterogeneity", **changes):
    base = scenario_module(scenario).QUICK
    fields = {"n_clients": 3, "rounds": 4, "steps_per_round": 150, "eval_every": 2, "eval_episodes": 1,
              "final_eval_episodes": 1, **changes}
    if "agent" in changes and changes["agent"] != base.agent:
        fields.setdefault("agent_config", {})
    return dataclasses.replace(base, **fields)


def federate(exp, checkpoint=None, kill_after=None):
    setup = client_setup(exp)
    spec = exp.strategies[0]
    pool = make_pool(exp, spec, setup)
    fs = setup.federation_seed

    def on_round(rnd, history):
        if rnd == kill_after:
            raise Kill

    history = run_federation(pool, exp.strategy(spec), rounds=exp.rounds,
                             seed=np.random.SeedSequence(fs.entropy, spawn_key=fs.spawn_key), fraction=exp.fraction,
                             eval_every=exp.eval_every, eval_seeds=setup.eval_seeds, system=exp.system(setup.devices),
                             on_round=on_round, checkpoint=checkpoint)
    return history, pool


CASES = {
    "dqn-fedavg": dict(strategies=("fedavg",)),
    "dqn-ditto (lazy personal model)": dict(strategies=("ditto",)),
    "ppo-fedprox": dict(agent="ppo", strategies=("fedprox",)),
    "reinforce-fedpg-br": dict(agent="reinforce", strategies=("fedpg-br",)),
    "dqn-ifca": dict(strategies=("ifca",)),
    "faults + fedadam": dict(strategies=("fedadam",), faults=0.4),
    "dp-fedavg": dict(strategies=("fedavg",), dp_clip=1.0, dp_noise=1.0),
    "byzantine sign-flip + median": dict(strategies=("median",), malicious=0.34, attack="sign-flip"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kill_and_resume_is_bitwise_the_uninterrupted_run(case, tmp_path):
    exp = tiny(**CASES[case])
    straight, pool0 = federate(exp)
    path = tmp_path / "f.pt"
    with pytest.raises(Kill):
        federate(exp, Checkpointer(path, 2, {"run": "t"}), kill_after=3)  # dies after round 3: saved round 2
    assert read_checkpoint(path, {"run": "t"})[0] == 2
    resumed, pool1 = federate(exp, Checkpointer(path, 2, {"run": "t"}))
    assert resumed.rows == straight.rows and resumed.faults == straight.faults
    for k, v in straight.global_weights.items():
        assert np.array_equal(v, resumed.global_weights[k]), k
    for c0, c1 in zip(pool0.clients, pool1.clients, strict=True):
        w0, w1 = c0.agent.get_weights(), c1.agent.get_weights()
        assert all(np.array_equal(w0[k], w1[k]) for k in w0)
    assert read_checkpoint(path, {"run": "t"})[0] == exp.rounds  # the last round is always saved


def test_a_finished_federation_is_restored_not_retrained(tmp_path):
    exp = tiny(strategies=("fedavg",), rounds=2)
    path = tmp_path / "f.pt"
    first, _ = federate(exp, Checkpointer(path, 1, {"run": "t"}))
    t0 = time.perf_counter()
    again, _ = federate(exp, Checkpointer(path, 1, {"run": "t"}))
    assert again.rows == first.rows
    assert time.perf_counter() - t0 < 30


def _saved(tmp_path: Path) -> Path:
    exp = tiny(strategies=("fedavg",), rounds=1, n_clients=2, steps_per_round=50)
    path = tmp_path / "f.pt"
    federate(exp, Checkpointer(path, 1, {"run": "t"}))
    return path


@pytest.mark.parametrize("damage", ["flip a payload byte", "truncate", "foreign torch file", "not torch at all",
                                    "code in the pickle", "another run"])
def test_a_bad_checkpoint_is_refused_in_one_line_and_left_untouched(damage, tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip a payload byte":
        outer = torch.load(path, weights_only=True)
        payload = outer["payload"].clone()
        payload[len(payload) // 2] ^= 0xFF
        torch.save({**outer, "payload": payload}, path)
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "foreign torch file":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif damage == "not torch at all":
        path.write_text("hello")
    elif damage == "code in the pickle":
        torch.save(_Evil(), path)
    before = path.read_bytes()
    identity = {"run": "other"} if damage == "another run" else {"run": "t"}
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, identity)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == before
    assert not (tmp_path / "pwned").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {Path(__file__).parent}/pwned",))


def test_a_checkpoint_of_another_federation_does_not_fit(tmp_path):
    path = _saved(tmp_path)
    exp = tiny(strategies=("fedavg",), rounds=2, n_clients=3, steps_per_round=50)
    with pytest.raises(CheckpointError, match="does not fit"):
        federate(exp, Checkpointer(path, 1, {"run": "t"}))


def test_capture_refuses_what_it_cannot_save_and_restore_keeps_sharing():
    with pytest.raises(CheckpointError, match=r"cannot checkpoint state\[.lock.\]"):
        capture({"lock": threading.Lock()})

    class Box:
        def __init__(self):
            self.a = np.zeros(3)
            self.b = self.a  # shared
            self.rng = np.random.default_rng(1)

    src, dst = Box(), Box()
    src.a[:] = [1, 2, 3]
    src.rng.random(5)
    tree = torch.load(io.BytesIO(_bytes(capture(src))), weights_only=True)
    restore(dst, tree)
    assert dst.b is dst.a and list(dst.a) == [1, 2, 3] and dst.rng.random() == src.rng.random()


def _bytes(tree) -> bytes:
    buf = io.BytesIO()
    torch.save(tree, buf)
    return buf.getvalue()


# ----- the command line ---------------------------------------------------------------------------------------------
FLAGS = ["mec-offloading", "--quick", "--clients", "2", "--rounds", "4", "--steps-per-round", "100",
         "--strategy", "fedavg,local", "--eval-every", "2", "--eval-episodes", "1", "--final-eval-episodes", "1",
         "--baselines", "greedy", "--no-progress"]


def test_cli_kill_and_resume_gives_the_same_results(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["run", *FLAGS, "--out", str(straight)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "scenarios.cli", "run", *FLAGS, "--out", str(killed),
                             "--checkpoint-every", "1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while not (killed / "checkpoints" / "federation-001.pt").exists() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert json.loads((killed / "status.json").read_text())["state"] == "running"
    assert main(["run", "--resume", str(killed), "--no-progress"]) == 0
    assert (killed / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    a = json.loads((straight / "summary.json").read_text())["methods"]
    b = json.loads((killed / "summary.json").read_text())["methods"]
    for m in a:
        a[m].pop("train_time_s", None), b[m].pop("train_time_s", None)
    assert a == b
    assert json.loads((killed / "status.json").read_text())["state"] == "complete"
    assert not (killed / "checkpoints").exists()  # they served the resume; the results stay


def test_cli_refuses_resuming_what_cannot_be_resumed(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    done = tmp_path / "done"
    assert main(["run", *FLAGS[:-1], "--rounds", "1", "--strategy", "local", "--out", str(done)]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", str(done)]) == 2
    assert "already complete" in capsys.readouterr().err
    assert main(["run", "--resume", str(done), "mec-offloading"]) == 2
    assert "takes the run's own flags" in capsys.readouterr().err


def test_cli_refuses_a_tampered_checkpoint_with_exit_2_and_keeps_it(tmp_path, capsys):
    run = tmp_path / "run"
    proc_flags = [*FLAGS, "--out", str(run), "--checkpoint-every", "1"]
    assert main(["run", *proc_flags]) == 0
    # make it look killed: status running, a checkpoint on disk (tampered)
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    (run / "checkpoints").mkdir()
    bad = run / "checkpoints" / "federation-000.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    before = bad.read_bytes()
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("frl: error: checkpoint") and "\n" not in err
    assert bad.read_bytes() == before


def test_cli_refuses_checkpointing_a_scenario_that_cannot(capsys):
    assert main(["run", "vertical", "--quick", "--checkpoint-every", "1"]) == 2
    assert "cannot be checkpointed" in capsys.readouterr().err


def test_one_client_restores_into_a_fresh_build_with_its_lazy_parts():
    """How a Flower SuperNode restores a client from Context.state: Ditto's personal model exists only after a
    fit, so the fresh client's hook must materialize it first (plain restore refuses)."""
    from federation.pool import restore_clients
    from federation.types import FitIns
    from scenarios.experiment import build_clients

    exp = tiny(strategies=("ditto",), n_clients=1, steps_per_round=100)
    strategy = exp.strategy("ditto")
    fresh = []
    for _ in range(3):
        c = build_clients(exp, "ditto", [0])[0]
        c.use(strategy.client_hook())
        fresh.append(c)
    trained, plain, prepared = fresh
    trained.fit(FitIns(0, trained.agent.get_shared_weights(), {}))
    tree = torch.load(io.BytesIO(_bytes(capture(trained))), weights_only=True)
    with pytest.raises(CheckpointError, match="hook.agent"):
        restore(plain, tree)
    restore_clients([prepared], tree, prepared)
    w0, w1 = trained.hook.agent.get_weights(), prepared.hook.agent.get_weights()
    assert all(np.array_equal(w0[k], w1[k]) for k in w0)
