"""The `frl` command line: listing, a real (tiny) run with its result files, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from scenarios.cli import main


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("frl/MecOffloading-v0", "greedy", "dqn", "fedavg", "local", "mec-offloading"):
        assert name in out


def test_list_json_is_machine_readable(capsys):
    assert main(["list", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert {"envs", "agents", "strategies", "scenarios"} <= set(cat)
    mec = next(e for e in cat["envs"] if e["id"] == "frl/MecOffloading-v0")
    assert "greedy" in mec["baselines"]


@pytest.mark.parametrize("argv, needles", [
    (["run", "no-such-scenario"], ["no-such-scenario", "allowed", "mec-offloading"]),
    (["run", "mec-offloading", "--clients", "0"], ["0", "[1, 1000]"]),
    (["run", "mec-offloading", "--heterogeneity", "2"], ["2", "[0, 1]"]),
    (["run", "mec-offloading", "--seed", "abc"], ["'abc'", "integer"]),
    (["run", "mec-offloading", "--rounds", "1.5"], ["'1.5'", "integer"]),
    (["run", "mec-offloading", "--strategy", "fedavg,bogus"], ["bogus", "allowed", "fedavg"]),
    (["run", "mec-offloading", "--strategy", "fedavg,,median"], ["''", "allowed", "fedavg"]),
    (["run", "mec-offloading", "--round-policy", "buffered-async:k=2"], ["buffered-async", "fedavg", "fedbuff"]),
    (["run", "mec-offloading", "--compression", "topk:ratio=x"], ["ratio", "'x'", "not a number"]),
    (["run", "vertical", "--clients", "50"], ["--clients", "vertical", "--rounds", "--methods"]),
    (["run", "vertical", "--compression", "int8"], ["--compression", "vertical"]),
    (["run", "vertical", "--heterogeneity", "1"], ["--heterogeneity", "vertical"]),
    (["run", "vertical", "--methods", "vertical-fedrl,fedavg"], ["fedavg", "independent"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_input_is_one_line_and_exit_2(argv, needles, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


def test_console_script_error_has_no_traceback(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "frl")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "scenarios.cli"]
    p = subprocess.run([*cmd, "run", "mec-offloading", "--clients", "0", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_quick_run_writes_results_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "mec-offloading", "--quick", "--clients", "2", "--rounds", "2", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "summary.json", "summary.md", "learning_curves.png",
            "per_client_return.png", "per_client_kpis.png"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    summary = json.loads((out / "summary.json").read_text())
    for m in ("fedavg", "local", "greedy", "all-local"):
        assert {"mean_return", "worst_client_return", "cost", "delay", "energy", "dropped"} <= set(
            summary["methods"][m])
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"]["seed"] == 0 and config["experiment"]["n_clients"] == 2
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header == "method,round,client,metric,value" and rows
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_train_writes_results_and_a_loadable_checkpoint(tmp_path, capsys):
    out, ckpt = tmp_path / "t", tmp_path / "dqn.pt"
    assert main(["train", "dqn", "CartPole-v1", "--steps", "300", "--out", str(out), "--save", str(ckpt),
                 "--no-progress"]) == 0
    assert "final evaluation return" in capsys.readouterr().out
    assert {"summary.json", "metrics.csv", "summary.md", "config.json"} <= {p.name for p in out.iterdir()}
    import gymnasium as gym

    from agents import agent_class

    env = gym.make("CartPole-v1")
    agent_class("dqn")(env.observation_space, env.action_space).load(ckpt)


def test_train_parallel_uses_the_pettingzoo_form_beside_its_heuristics(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["train", "dqn", "frl/CV2X-v0", "--parallel", "--steps", "400", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "PettingZoo form" in printed and "sps" in printed
    summary = json.loads((out / "summary.json").read_text())
    methods = summary["methods"]
    assert {"dqn", "random", "greedy", "sps"} <= set(methods)
    rows = (out / "metrics.csv").read_text().splitlines()
    steps = [float(r.split(",")[-1]) for r in rows if ",train/steps," in r]
    assert steps[-1] == 400  # agent-steps summed over the 4 links


@pytest.mark.parametrize("argv, needles", [
    (["train", "dqn", "frl/MecOffloading-v0", "--parallel"], ["MecOffloading", "no PettingZoo", "frl/CV2X-v0"]),
    (["train", "ddpg", "frl/CV2X-v0", "--parallel"], ["Box", "Discrete"]),
    (["train", "dqn", "Pendulum-v1"], ["Discrete"]),
    (["train", "dqn", "Nope-v0"], ["Nope-v0", "allowed"]),
    (["train", "no-agent", "CartPole-v1"], ["no-agent", "allowed", "dqn", "ppo"]),
    (["train", "dqn", "CartPole-v1", "--steps", "0"], ["0", "integer"]),
])
def test_train_refuses_bad_pairs_in_one_line(argv, needles, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for n in needles:
        assert n in err


def test_scenario_flags_come_from_its_config_fields(capsys):
    import dataclasses

    from scenarios import SCENARIOS
    from scenarios.cli import config_flags

    for name, module in SCENARIOS.items():
        assert main(["run", name, "--help"]) == 0
        text = capsys.readouterr().out
        declared = [f for f in dataclasses.fields(module.FULL) if "help" in f.metadata]
        assert declared and len(config_flags(type(module.FULL))) == len(declared)
        for flag in config_flags(type(module.FULL)):
            assert flag in text, (name, flag)
    assert "--clients" not in str(config_flags(type(SCENARIOS["vertical"].FULL)))


def test_train_q_learning_on_cliffwalking_returns_and_learns(tmp_path, capsys):
    """CliffWalking has no time limit: evaluation must be capped, and 20k steps must learn the cliff path."""
    out = tmp_path / "cliff"
    assert main(["train", "q-learning", "CliffWalking-v1", "--steps", "20000", "--seed", "0", "--out", str(out),
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["q-learning"]["mean_return"] >= -20.0  # optimal: -13; random walk: far below


def test_readme_knob_tables_are_the_generated_ones(capsys):
    from pathlib import Path

    from scenarios.cli import knob_tables

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("<!-- knobs:begin -->\n", 1)[1].split("<!-- knobs:end -->", 1)[0]
    assert section == knob_tables()
    assert main(["list", "--knobs"]) == 0 and capsys.readouterr().out == knob_tables()
    assert main(["list", "--json"]) == 0
    mec = next(e for e in json.loads(capsys.readouterr().out)["envs"] if e["id"] == "frl/MecOffloading-v0")
    assert {"name": "n_devices", "default": 20, "unit": "devices"}.items() <= next(
        k for k in mec["knobs"] if k["name"] == "n_devices").items()


def test_a_bad_save_path_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["train", "dqn", "CartPole-v1", "--steps", "100", "--out", str(out),
                 "--save", str(tmp_path / "missing" / "x.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--save" in err and "does not exist" in err
    assert not out.exists()  # nothing was claimed or trained


def test_an_out_dir_deleted_during_the_run_ends_in_one_line(tmp_path, capsys, monkeypatch):
    import shutil

    from scenarios import experiment

    out = tmp_path / "gone"
    real = experiment.run_experiment

    def run_then_delete(exp, on_progress=None):
        res = real(exp, on_progress)
        shutil.rmtree(out)  # someone removes the directory before the results are written
        return res
    monkeypatch.setattr(experiment, "run_experiment", run_then_delete)
    argv = ["run", "mec-offloading", "--quick", "--clients", "2", "--rounds", "1", "--strategy", "fedavg",
            "--baselines", "greedy", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write the results" in err and "Traceback" not in err



def test_a_run_refused_before_any_method_finished_leaves_its_out_dir_as_it_found_it(tmp_path, capsys):
    """cfrl refuses a single-agent env when it attaches to the first client, after the run claimed --out: the
    claim is given back (a new directory removed, an existing one emptied of the run's files)."""
    new = tmp_path / "new"
    assert main(["run", "mec-offloading", "--quick", "--strategy", "cfrl", "--out", str(new), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cfrl cannot run on" in err[0] and "allowed: frl/MecAllocation-v0" in err[0]
    assert not new.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["run", "mec-offloading", "--quick", "--strategy", "cfrl", "--out", str(mine), "--no-progress"]) == 2
    assert mine.is_dir() and not any(mine.iterdir())
