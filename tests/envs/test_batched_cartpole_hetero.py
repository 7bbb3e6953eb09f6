"""The batched CartPole-hetero core (``vector_entry_point``) is exactly B single envs: same configs, seeds, actions,
results, and it is what the batched backend's clients step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the envs)
from envs.cartpole_hetero import make_client_configs
from envs.cartpole_hetero_batched import CartPoleHeteroVectorEnv
from envs.registry import EnvConfigError

ENV_ID = "frl/CartPoleHetero-v0"


def _pair(configs, seed):
    batched = gym.make_vec(ENV_ID, num_envs=len(configs), vectorization_mode="vector_entry_point", configs=configs)
    sync = gym.vector.SyncVectorEnv([lambda c=c: gym.make(ENV_ID, config=c) for c in configs],
                                    autoreset_mode=AutoresetMode.NEXT_STEP)
    return batched, sync


@pytest.mark.parametrize("policy", ["random", "stay-up"])
def test_batched_core_equals_single_envs_exactly(policy):
    configs = make_client_configs(7, 1.0, 3)
    batched, sync = _pair(configs, 0)
    assert isinstance(batched, CartPoleHeteroVectorEnv)
    assert batched.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    ob, _ = batched.reset(seed=11)
    os_, _ = sync.reset(seed=11)
    assert ob.dtype == os_.dtype and np.array_equal(ob, os_)
    rng = np.random.default_rng(0)
    ends = truncs = 0
    for t in range(1500):  # "stay-up" balances the poles past the 500-step time limit (truncations)
        if policy == "random":
            a = rng.integers(0, 2, len(configs))
        else:
            a = (ob @ np.array([0.1, 0.5, 10.0, 2.0]) > 0).astype(np.int64)
        ob, rb, tb, trb, _ = batched.step(a)
        os_, rs, ts, trs, _ = sync.step(a)
        assert np.array_equal(ob, os_), f"step {t}: observations differ"
        assert rb.dtype == rs.dtype and np.array_equal(rb, rs), f"step {t}: rewards differ"
        assert np.array_equal(tb, ts) and np.array_equal(trb, trs), f"step {t}: episode ends differ"
        ends += int(tb.sum())
        truncs += int(trb.sum())
    assert ends > 0 if policy == "random" else truncs > 0  # the autoreset paths were exercised


def test_partial_reset_seeds_and_arguments():
    configs = make_client_configs(3, 1.0, 1)
    batched, sync = _pair(configs, 0)
    batched.reset(seed=[5, 6, 7])
    sync.reset(seed=[5, 6, 7])
    mask = np.array([False, True, False])
    ob, _ = batched.reset(seed=[None, 9, None], options={"reset_mask": mask})
    os_, _ = sync.reset(seed=[None, 9, None], options={"reset_mask": mask})
    assert np.array_equal(ob, os_)
    with pytest.raises(gym.error.InvalidAction, match="values in 0..1"):
        batched.step(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="one seed per instance"):
        batched.reset(seed=[1, 2])
    with pytest.raises(EnvConfigError, match="half_pole_length"):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", half_pole_length=-1.0)


def test_the_batched_backend_steps_the_core():
    from federation.batched import make_client_vector_env

    env = make_client_vector_env(ENV_ID, make_client_configs(4, 1.0, 0))
    assert isinstance(env, CartPoleHeteroVectorEnv)
