"""Every registered env trains under Stable-Baselines3 unchanged: its Gymnasium form is a plain env that a
third-party library's own env checker accepts and whose algorithms run on it (PPO always; DQN for a
``Discrete`` action space; TD3 for a ``Box`` one). A few hundred steps each: this tests the interface, not
learning (the suite's own learning tests do that)."""

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DQN, PPO, TD3
from stable_baselines3.common.env_checker import check_env

import envs

torch.set_num_threads(1)

ENTRIES = list(envs.ENV_ENTRIES.values())


def _algorithms(env: gym.Env) -> list:
    algos = [lambda e: PPO("MlpPolicy", e, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")]
    if isinstance(env.action_space, gym.spaces.Discrete):
        algos.append(lambda e: DQN("MlpPolicy", e, learning_starts=32, buffer_size=1000, seed=0, device="cpu"))
    else:
        algos.append(lambda e: TD3("MlpPolicy", e, learning_starts=32, buffer_size=1000, seed=0, device="cpu"))
    return algos


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.env_id for e in ENTRIES])
def test_env_trains_under_stable_baselines3(entry):
    env = gym.make(entry.env_id, max_episode_steps=50)
    check_env(env.unwrapped, warn=False)
    for make in _algorithms(env):
        model = make(env)
        model.learn(128)
        assert model.num_timesteps >= 128
        obs, _ = env.reset(seed=1)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(action), (entry.env_id, action)
    env.close()
