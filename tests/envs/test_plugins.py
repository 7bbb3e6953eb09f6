"""Domains from other packages: the frl.envs entry point registers them, a broken one does not break the suite,
and the public checker passes the example plugin and fails a broken copy with one clear line."""

from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.check import EnvCheckError, check_env_entry
from envs.plugins import ENTRY_POINT_GROUP, PLUGIN_ENTRIES, PLUGIN_ERRORS, load_plugins
from scenarios.cli import catalog, main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "frl-queue-admission"
EXAMPLE_ID = "queue/Admission-v0"


@pytest.fixture
def plugin(monkeypatch):
    """The example plugin loaded through its entry point, as `pip install -e examples/...` would; removed after."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    was_there = EXAMPLE_ID in envs.ENV_ENTRIES
    ep = metadata.EntryPoint(name="queue-admission", value="frl_queue_admission.env:ENTRY", group=ENTRY_POINT_GROUP)
    if not was_there:
        assert load_plugins([ep]) == [EXAMPLE_ID]
    yield envs.ENV_ENTRIES[EXAMPLE_ID]
    if not was_there:
        envs.ENV_ENTRIES.pop(EXAMPLE_ID, None)
        PLUGIN_ENTRIES.pop(EXAMPLE_ID, None)
        gym.registry.pop(EXAMPLE_ID, None)


def test_a_plugin_appears_in_the_catalog_and_builds(plugin):
    cat = catalog()
    ids = {e["id"]: e for e in cat["envs"]}
    assert EXAMPLE_ID in ids and ids[EXAMPLE_ID]["plugin"] and ids[EXAMPLE_ID]["baselines"] == [
        "accept-all", "naor-individual", "random"]
    env = gym.make(EXAMPLE_ID, arrival_rate=2.0)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_the_public_checker_passes_the_example_plugin(plugin, capsys):
    assert "knobs" in check_env_entry(plugin)
    assert main(["check", EXAMPLE_ID]) == 0
    assert "passed" in capsys.readouterr().out


def test_the_checker_fails_a_broken_copy_with_one_line(plugin, monkeypatch, capsys):
    env_cls = type(gym.make(EXAMPLE_ID).unwrapped)
    unseeded = np.random.default_rng()

    def reset_ignoring_seed(self, *, seed=None, options=None):  # the classic bug: a global, unseeded RNG
        super(env_cls, self).reset(seed=seed)
        self.np_random = np.random.default_rng(unseeded.integers(2**32))
        self._q, self._t = 0, 0
        self._draw_value()
        return self._obs(), {}

    monkeypatch.setattr(env_cls, "reset", reset_ignoring_seed)
    with pytest.raises(EnvCheckError, match=r"^queue/Admission-v0 failed \d+ of \d+ checks: .*determinism"):
        check_env_entry(plugin)
    assert main(["check", EXAMPLE_ID]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "determinism" in err and "Traceback" not in err


def test_a_broken_plugin_does_not_break_the_suite(capsys):
    ep = metadata.EntryPoint(name="broken-domain", value="no_such_package_xyz.env:ENTRY", group=ENTRY_POINT_GROUP)
    try:
        assert load_plugins([ep]) == []
        assert "ModuleNotFoundError" in PLUGIN_ERRORS["broken-domain"]
        assert main(["list"]) == 0
        assert "Plugin 'broken-domain' failed to load" in capsys.readouterr().out
        assert main(["check", "broken-domain"]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    finally:
        PLUGIN_ERRORS.pop("broken-domain", None)


def test_a_plugin_may_not_shadow_a_builtin_env(tmp_path, monkeypatch):
    (tmp_path / "shadow_plugin.py").write_text(
        "import dataclasses\nfrom envs.mec_offloading import ENTRY as E\n"
        "ENTRY = dataclasses.replace(E, summary='an impostor')\nNOT_AN_ENTRY = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [metadata.EntryPoint(name="shadow", value="shadow_plugin:ENTRY", group=ENTRY_POINT_GROUP),
           metadata.EntryPoint(name="junk", value="shadow_plugin:NOT_AN_ENTRY", group=ENTRY_POINT_GROUP)]
    try:
        assert load_plugins(eps) == []
        assert "already registered" in PLUGIN_ERRORS["shadow"]
        assert "TypeError" in PLUGIN_ERRORS["junk"]
        assert envs.ENV_ENTRIES["frl/MecOffloading-v0"].summary != "an impostor"
    finally:
        PLUGIN_ERRORS.pop("shadow", None)
        PLUGIN_ERRORS.pop("junk", None)


def test_unknown_check_is_refused(capsys):
    assert main(["check", "frl/CartPoleHetero-v0", "--checks", "determinism,nope"]) == 2
    assert "nope" in capsys.readouterr().err
