"""Contract tests parametrised over the env registry: a new env is tested without new test code.

Every registered env must pass Gymnasium's checker, keep observations inside its space, be deterministic
under a seed, expose its KPIs in ``info``, turn heterogeneity 0 into identical client configs, and run every
heuristic baseline. Every PettingZoo form must pass PettingZoo's parallel API and seed tests and run its joint
heuristics (random among them) for every live agent.
"""


import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.registry import EnvConfigError

ENTRIES = list(envs.ENV_ENTRIES.values())
IDS = [e.env_id for e in ENTRIES]
PARALLEL = [e for e in ENTRIES if e.parallel_entry_point]


def _rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [np.asarray(obs).copy()]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        trace.append(np.asarray(obs).copy())
        trace.append(np.array([r, term, trunc], dtype=np.float64))
        if term or trunc:
            obs, _ = env.reset()
    return trace


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_gymnasium_env_checker(entry):
    env = gym.make(entry.env_id)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_observations_in_space_and_kpis_in_info(entry):
    env = gym.make(entry.env_id)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(300):
        assert env.observation_space.contains(obs)
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(reward)
        for k in entry.kpis:
            assert k in info and np.isfinite(float(info[k])), k
        if term or trunc:
            obs, _ = env.reset()


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_seeded_determinism(entry):
    a = _rollout(gym.make(entry.env_id), 11, 200)
    b = _rollout(gym.make(entry.env_id), 11, 200)
    c = _rollout(gym.make(entry.env_id), 12, 200)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_client_configs_heterogeneity(entry):
    same = entry.client_configs(4, 0.0, 3)
    assert len(same) == 4 and all(c == same[0] for c in same)
    diverse = entry.client_configs(4, 1.0, 3)
    assert len({repr(c) for c in diverse}) > 1
    assert entry.client_configs(4, 0.7, 5) == entry.client_configs(4, 0.7, 5)
    for bad in (-0.1, 1.5):
        with pytest.raises(EnvConfigError, match="heterogeneity"):
            entry.client_configs(4, bad, 0)
    # every client env builds with the same spaces, so one model can be federated across them
    spaces = {(repr(gym.make(entry.env_id, config=c).observation_space),
               repr(gym.make(entry.env_id, config=c).action_space)) for c in diverse}
    assert len(spaces) == 1


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_unknown_override_is_refused(entry):
    with pytest.raises(EnvConfigError, match="no_such_knob"):
        gym.make(entry.env_id, no_such_knob=1)


@pytest.mark.parametrize(("entry", "baseline"),
                         [(e, b) for e in ENTRIES for b in e.baselines],
                         ids=[f"{e.env_id}:{b}" for e in ENTRIES for b in e.baselines])
def test_every_baseline_acts_legally(entry, baseline):
    env = gym.make(entry.env_id)
    policy = entry.baselines[baseline](env, 0)
    obs, _ = env.reset(seed=1)
    for _ in range(150):
        action = policy(obs)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype)
                                         if isinstance(env.action_space, gym.spaces.Box) else action)
        obs, _, term, trunc, _ = env.step(action)
        if term or trunc:
            obs, _ = env.reset()


@pytest.mark.parametrize("entry", PARALLEL, ids=[e.env_id for e in PARALLEL])
def test_pettingzoo_parallel_api(entry):
    from pettingzoo.test import parallel_api_test

    parallel_api_test(entry.parallel_factory()(), num_cycles=200)


@pytest.mark.parametrize("entry", PARALLEL, ids=[e.env_id for e in PARALLEL])
def test_pettingzoo_parallel_seed(entry):
    from pettingzoo.test import parallel_seed_test

    parallel_seed_test(entry.parallel_factory())


PARALLEL_HEURISTICS = [(e, b) for e in PARALLEL for b in e.parallel_baselines]


def test_every_pettingzoo_form_has_heuristics_including_random():
    for entry in PARALLEL:
        names = set(entry.parallel_baselines)
        assert "random" in names and len(names) >= 2, entry.env_id


@pytest.mark.parametrize(("entry", "baseline"), PARALLEL_HEURISTICS,
                         ids=[f"{e.env_id}:{b}" for e, b in PARALLEL_HEURISTICS])
def test_every_parallel_heuristic_acts_legally_for_every_live_agent(entry, baseline):
    env = entry.parallel_factory()()
    policy = entry.parallel_baselines[baseline](env, 0)
    obs, _ = env.reset(seed=1)
    for _ in range(60):
        if not env.agents:
            obs, _ = env.reset()
        actions = policy(obs)
        assert set(env.agents) <= set(actions)
        for agent in env.agents:
            space = env.action_space(agent)
            a = actions[agent]
            assert space.contains(np.asarray(a, dtype=space.dtype) if isinstance(space, gym.spaces.Box) else a)
        obs, *_ = env.step({a: actions[a] for a in env.agents})
