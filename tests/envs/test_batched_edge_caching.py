"""The edge-caching vector entry point: per-instance configs, same results as single envs, argument checks."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the envs)
from envs.edge_caching import EdgeCachingConfig, make_client_configs
from envs.registry import EnvConfigError

ENV_ID = "frl/EdgeCaching-v0"


def test_make_vec_steps_per_instance_configs_like_single_envs():
    base = EdgeCachingConfig(episode_requests=300, warmup_requests=500)
    cfgs = make_client_configs(3, 1.0, 4, base=base)
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", configs=cfgs)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert [e.config for e in venv.envs] == cfgs
    singles = [gym.make(ENV_ID, config=c) for c in cfgs]
    obs, _ = venv.reset(seed=[3, 4, 5])
    for i, e in enumerate(singles):
        assert np.array_equal(obs[i], e.reset(seed=3 + i)[0])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(500):
        a = rng.integers(0, venv.single_action_space.n, 3)
        obs, r, term, trunc, info = venv.step(a)
        for i, e in enumerate(singles):
            if info["_hit"][i]:                 # a stepped instance (not the step after its episode's end)
                o, ri, _, tri, inf = e.step(int(a[i]))
                assert np.array_equal(obs[i], o) and r[i] == ri and trunc[i] == tri and info["hit"][i] == inf["hit"]
            else:
                assert np.array_equal(obs[i], e.reset()[0]) and r[i] == 0.0
        ends += int(trunc.sum())
    assert ends >= 3


def test_one_config_for_all_and_bad_arguments():
    cfg = EdgeCachingConfig(warmup_requests=0, episode_requests=100)
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", config=cfg)
    assert venv.num_envs == 2 and all(e.config == cfg for e in venv.envs)
    with pytest.raises(EnvConfigError, match="num_envs=3 but 2 configs"):
        gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", configs=[cfg, cfg])
    with pytest.raises(EnvConfigError, match="n_lru_candidates, n_lfu_candidates"):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point",
                     configs=[cfg, dataclasses.replace(cfg, n_lru_candidates=2)])
