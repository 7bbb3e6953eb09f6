"""The ``agent_id_obs`` knob of the C-V2X env: a one-hot link id after the local state, nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from envs.cv2x import PARALLEL_BASELINES, CV2XConfig, CV2XEnv, parallel_env
from envs.registry import EnvConfigError


def test_off_by_default_and_one_hot_when_on():
    assert CV2XConfig().agent_id_obs is False
    plain = parallel_env(config=CV2XConfig.preset("liang2019"))
    ided = parallel_env(config=CV2XConfig.preset("liang2019", agent_id_obs=True))
    R, K = 4, 4
    assert plain.observation_space("link_0").shape == (3 * R + 2,)
    assert ided.observation_space("link_3").shape == (3 * R + 2 + K,)
    a, _ = plain.reset(seed=7)
    b, _ = ided.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(100):
        for k, name in enumerate(plain.possible_agents):
            np.testing.assert_array_equal(b[name][:3 * R + 2], a[name])       # the local state is untouched
            np.testing.assert_array_equal(b[name][3 * R + 2:], np.eye(K)[k])
            assert ided.observation_space(name).contains(b[name])
        acts = {name: int(rng.integers(16)) for name in plain.possible_agents}
        a, ra, *_ = plain.step(acts)
        b, rb, *_ = ided.step(acts)
        assert ra == rb                                                      # same physics, same reward


@pytest.mark.parametrize("name", sorted(PARALLEL_BASELINES))
def test_heuristics_ignore_the_id(name):
    """Every heuristic reads its features by index, so the id columns change none of their actions."""
    rets = []
    for ids in (False, True):
        env = parallel_env(config=CV2XConfig.preset("liang2019", agent_id_obs=ids, payload_bytes=4240.0))
        pol = PARALLEL_BASELINES[name](env, 3)
        obs, _ = env.reset(seed=11)
        total = 0.0
        while env.agents:
            obs, rew, *_ = env.step(pol(obs))
            total += rew["link_0"]
        rets.append(total)
    assert rets[0] == rets[1]


def test_api_conformance_with_ids():
    check_env(CV2XEnv(agent_id_obs=True))
    parallel_api_test(parallel_env(agent_id_obs=True, n_v2v=3), num_cycles=120)
    with pytest.raises(EnvConfigError, match="agent_id_obs"):
        CV2XConfig(agent_id_obs=1)
