"""frl/DrivingTransfer-v0 (envs/driving.py): one space over highway-env's road types, knobs refused by name,
the optional extra imported lazily (one line without it), the suite's checks, and room to learn."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers frl/*)
from envs.check import check_env_entry
from envs.driving import (
    CLIENT_ROADS,
    ENTRY,
    INSTALL,
    ROADS,
    DrivingConfig,
    DrivingExtraMissing,
    highway_classes,
    make_client_configs,
)
from envs.registry import EnvConfigError
from federation.evaluation import evaluate_policy

ROOT = Path(__file__).resolve().parents[2]
# the optional extra; the missing-extra and import tests below run without it
needs_highway = pytest.mark.skipif(importlib.util.find_spec("highway_env") is None,
                                      reason='needs the driving extra: pip install -e ".[driving]"')


@needs_highway
def test_suite_checks_pass() -> None:
    assert "baselines" in check_env_entry(ENTRY)


@needs_highway
def test_same_space_on_every_road_and_observations_inside_it() -> None:
    spaces = set()
    for road in ROADS:
        env = gym.make(ENTRY.env_id, road=road)
        spaces.add((repr(env.observation_space), repr(env.action_space)))
        obs, info = env.reset(seed=1)
        assert info["road"] == road
        for _ in range(5):
            assert env.observation_space.contains(obs)
            obs, *_ = env.step(1)
    assert len(spaces) == 1
    assert gym.make(ENTRY.env_id).observation_space.shape == (5 * 7,)


@needs_highway
def test_road_semantics_differ_as_in_highway_env() -> None:
    """Highway/merge rows are ego-relative, the roundabout's absolute (roundabout-v0's own config)."""
    env = gym.make(ENTRY.env_id, road="highway", vehicles_count=20)
    obs, _ = env.reset(seed=2)
    rows = obs.reshape(5, 7)
    inner = env.unwrapped.inner
    other = inner.road.close_objects_to(inner.vehicle, inner.PERCEPTION_DISTANCE, count=4, see_behind=False)[0]
    dx = other.position[0] - inner.vehicle.position[0]
    assert rows[1, 0] == 1.0 and rows[1, 1] == pytest.approx(np.clip(dx / 200.0, -1, 1), abs=1e-5)
    env = gym.make(ENTRY.env_id, road="roundabout")
    obs, _ = env.reset(seed=2)
    ego = env.unwrapped.inner.vehicle
    assert obs[1] == pytest.approx(np.clip(ego.position[0] / 100.0, -1, 1), abs=1e-5)


@pytest.mark.parametrize("kw, name", [({"road": "mountain"}, "road"), ({"vehicles_count": 0}, "vehicles_count"),
                                      ({"observed_vehicles": 11}, "observed_vehicles"),
                                      ({"duration": -1.0}, "duration"), ({"no_such": 1}, "no_such")])
@needs_highway
def test_bad_knobs_are_refused_by_name(kw, name) -> None:
    with pytest.raises(EnvConfigError, match=name):
        gym.make(ENTRY.env_id, **kw)


def test_cross_knob_constraint() -> None:
    with pytest.raises(EnvConfigError, match="simulation_frequency=7.*policy_frequency=2"):
        DrivingConfig(simulation_frequency=7, policy_frequency=2)


@needs_highway
def test_actions_checked() -> None:
    env = gym.make(ENTRY.env_id)
    env.reset(seed=0)
    for bad in (5, -1, 1.5, "1"):
        with pytest.raises(gym.error.InvalidAction):
            env.unwrapped.step(bad)


def test_client_configs_mix_training_roads_only() -> None:
    same = make_client_configs(4, 0.0, 3)
    assert all(c == same[0] for c in same)
    mixed = make_client_configs(4, 1.0, 3)
    assert sorted(c.road for c in mixed) == ["highway", "highway", "merge", "merge"]
    assert all(c.road in CLIENT_ROADS for seed in range(5) for c in make_client_configs(6, 0.7, seed))
    with pytest.raises(EnvConfigError, match="heterogeneity"):
        make_client_configs(4, 1.5, 0)


@needs_highway
def test_kpis_per_episode() -> None:
    """collision and distance are per episode (weighted by episode_end): idle crashes on a busy highway,
    the rule-based driver does not and drives farther."""
    env = gym.make(ENTRY.env_id, road="highway")
    idle = evaluate_policy(env, ENTRY.baselines["idle"](env, 0), [1, 2], ENTRY.kpis, ENTRY.kpi_weight)
    rule = evaluate_policy(env, ENTRY.baselines["rule-based"](env, 0), [1, 2], ENTRY.kpis, ENTRY.kpi_weight)
    assert idle["collision"] == 1.0 and rule["collision"] == 0.0
    assert rule["distance"] > idle["distance"] > 0.0
    assert 0.0 < rule["speed"] <= 40.0


@needs_highway
@pytest.mark.parametrize("road", CLIENT_ROADS)
def test_room_to_learn(road) -> None:
    """Random is clearly below the best heuristic on the training roads (fixed seeds); no bound is computable."""
    env = gym.make(ENTRY.env_id, road=road)
    seeds = [11, 12, 13]
    scores = {b: evaluate_policy(env, f(env, 0), seeds, ENTRY.kpis, ENTRY.kpi_weight)
              for b, f in ENTRY.baselines.items()}
    best = max(scores.values(), key=lambda s: s["return"])
    assert best["return"] > 1.3 * scores["random"]["return"], scores
    assert best["collision"] < scores["random"]["collision"]


def _block_highway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "highway_env" or m.startswith("highway_env.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "highway_env", None)
    highway_classes.cache_clear()


@pytest.fixture
def no_highway_env(monkeypatch: pytest.MonkeyPatch):
    _block_highway_env(monkeypatch)
    yield
    highway_classes.cache_clear()


def test_missing_extra_one_line_error(no_highway_env) -> None:
    with pytest.raises(DrivingExtraMissing) as e:
        gym.make(ENTRY.env_id)
    assert INSTALL in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, EnvConfigError)


def test_missing_extra_cli_prints_one_line(no_highway_env, tmp_path, capsys) -> None:
    from scenarios.cli import main

    out = tmp_path / "run"
    assert main(["run", "driving-transfer", "--quick", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    lines = (cap.out + cap.err).strip().splitlines()
    assert len(lines) == 1 and INSTALL in lines[0], lines
    assert not out.exists()  # refused before the run directory is claimed


def test_import_hygiene() -> None:
    code = ("import envs, scenarios, federation.strategies, sys; "
            "assert 'highway_env' not in sys.modules, 'highway_env imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_missing_extra_train_and_check_say_it_once(no_highway_env, tmp_path, capsys) -> None:
    from scenarios.cli import main

    out = tmp_path / "run"
    assert main(["train", "dqn", ENTRY.env_id, "--steps", "10", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and INSTALL in err
    assert not out.exists()  # refused before the output directory is claimed: the same --out works later
    assert main(["check", ENTRY.env_id]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.count(INSTALL) == 1  # one reason, the checks it failed listed once
