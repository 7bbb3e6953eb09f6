"""A backend that cannot run is refused in one line before anything runs."""

from __future__ import annotations

import importlib.util

from scenarios.cli import main


def test_flower_without_the_extra_is_refused_in_one_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flwr" else real(name, *a))
    assert main(["run", "mec-offloading", "--quick", "--backend", "flower", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs the optional Flower extra" in err and '".[flower]"' in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before the run directory is claimed


def test_checkpointing_the_batched_backend_is_refused(capsys, tmp_path):
    assert main(["run", "mec-offloading", "--quick", "--backend", "batched", "--checkpoint-every", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "not supported with --backend batched" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_an_unknown_backend_names_the_allowed_ones(capsys):
    assert main(["run", "mec-offloading", "--quick", "--backend", "gpu"]) == 2
    assert "allowed: inprocess, processes, flower, batched" in capsys.readouterr().err
