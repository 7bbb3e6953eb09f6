"""The batched MEC core (``vector_entry_point``) is exactly B single envs: same configs, seeds, actions, results."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers the envs)
from envs.mec_offloading import MecOffloadingConfig, background_runs, draw_task_block_raw, make_client_configs
from envs.mec_offloading_batched import _EBUF, MecOffloadingVectorEnv, poisson_increments
from envs.registry import EnvConfigError

ENV_ID = "frl/MecOffloading-v0"


def _configs() -> list[MecOffloadingConfig]:
    """Heterogeneous clients plus corner cases: short episodes (many autoresets), sparse arrivals (empty task
    blocks, long idle gaps), long deadlines on short slots (wide capacity searches), other device counts."""
    base = make_client_configs(5, 1.0, 11)
    extra = [
        dataclasses.replace(base[0], episode_tasks=10, n_devices=3),
        dataclasses.replace(base[1], arrival_rate=0.01, n_devices=1, episode_tasks=12),
        dataclasses.replace(base[2], slot_s=0.02, deadline_min_s=2.0, deadline_max_s=6.0, episode_tasks=50),
        dataclasses.replace(base[3], burst_start_prob=0.3, burst_mean_slots=1.0, n_devices=40),
        dataclasses.replace(base[4], burst_start_prob=0.0, episode_tasks=37, server_cpu_ghz=1.0),
        # ~80 runs per 256-slot block: more than the vectorised background window
        dataclasses.replace(base[0], burst_start_prob=0.32, burst_mean_slots=3.2, episode_tasks=60),
    ]
    return base + extra


def _assert_same(batched: tuple, sync: tuple, t: int) -> None:
    names = ("obs", "reward", "terminated", "truncated")
    for name, x, y in zip(names, batched[:4], sync[:4], strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y), f"step {t}: {name} differs"
    ib, isy = batched[4], sync[4]
    assert set(ib) == set(isy), f"step {t}: info keys {sorted(ib)} vs {sorted(isy)}"
    for key in isy:
        assert ib[key].dtype == isy[key].dtype and np.array_equal(ib[key], isy[key]), f"step {t}: info[{key!r}]"


def test_batched_core_equals_single_envs_exactly():
    cfgs = _configs()
    b = len(cfgs)
    venv = gym.make_vec(ENV_ID, num_envs=b, vectorization_mode="vector_entry_point", configs=cfgs)
    assert isinstance(venv, MecOffloadingVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    sync = gym.vector.SyncVectorEnv([lambda c=c: gym.make(ENV_ID, config=c) for c in cfgs])
    seeds = [100 + 7 * i for i in range(b)]
    ob, _ = venv.reset(seed=seeds)
    os_, _ = sync.reset(seed=seeds)
    assert np.array_equal(ob, os_)
    rng = np.random.default_rng(5)
    n_reset = 0
    for t in range(600):
        a = rng.integers(0, venv.single_action_space.n, b)
        rb, rs = venv.step(a), sync.step(a)
        _assert_same(rb, rs, t)
        n_reset += int(rb[3].sum())
    assert n_reset >= 40                               # episode ends and autoresets were crossed
    kb = venv.episode_kpis()
    for i, e in enumerate(sync.envs):
        for key, value in e.unwrapped.episode_kpis().items():
            assert kb[key][i] == value


def test_reset_seeding_and_partial_reset_follow_sync_vector_env():
    cfgs = make_client_configs(3, 0.5, 2)
    venv = MecOffloadingVectorEnv(configs=cfgs)
    sync = gym.vector.SyncVectorEnv([lambda c=c: gym.make(ENV_ID, config=c) for c in cfgs])
    assert np.array_equal(venv.reset(seed=9)[0], sync.reset(seed=9)[0])   # int seed -> seed + i
    rng = np.random.default_rng(0)
    for t in range(40):
        a = rng.integers(0, 4, 3)
        _assert_same(venv.step(a), sync.step(a), t)
    mask = np.array([False, True, False])
    ob, _ = venv.reset(seed=[None, 77, None], options={"reset_mask": mask})
    os_, _ = sync.reset(seed=[None, 77, None], options={"reset_mask": mask})
    assert np.array_equal(ob, os_)
    for t in range(40):
        a = rng.integers(0, 4, 3)
        _assert_same(venv.step(a), sync.step(a), t)
    other = MecOffloadingVectorEnv(configs=cfgs)
    assert not np.array_equal(other.reset(seed=10)[0], venv.reset(seed=9)[0])


def test_make_vec_accepts_one_config_for_all_and_checks_arguments():
    cfg = MecOffloadingConfig(n_devices=4)
    venv = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", config=cfg)
    assert venv.num_envs == 3 and all(c == cfg for c in venv.unwrapped.configs)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 8 + 4 * cfg.n_servers) and venv.observation_space.contains(obs)
    assert len(set(map(bytes, obs))) == 3                  # seeds 0, 1, 2: different instances
    over = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", n_devices=7)
    assert all(c.n_devices == 7 for c in over.unwrapped.configs)
    with pytest.raises(EnvConfigError, match="n_servers differs"):
        MecOffloadingVectorEnv(configs=[MecOffloadingConfig(), MecOffloadingConfig(n_servers=2)])
    with pytest.raises(EnvConfigError, match="num_envs=3 but 2 configs"):
        MecOffloadingVectorEnv(num_envs=3, configs=[cfg, cfg])
    with pytest.raises(EnvConfigError, match="bogus"):
        MecOffloadingVectorEnv(num_envs=2, bogus=1)
    with pytest.raises(gym.error.ResetNeeded):
        MecOffloadingVectorEnv(num_envs=2).step(np.zeros(2, dtype=np.int64))
    venv = MecOffloadingVectorEnv(num_envs=2)
    venv.reset(seed=0)
    for bad in (np.array([0, 4]), np.array([0, -1]), np.array([0.5, 1.0]), np.array([0, 1, 2])):
        with pytest.raises(gym.error.InvalidAction):
            venv.step(bad)


def test_observations_stay_in_space_over_long_runs():
    venv = MecOffloadingVectorEnv(configs=make_client_configs(16, 1.0, 4))
    obs, _ = venv.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(700):
        obs, r, term, trunc, info = venv.step(rng.integers(0, 4, 16))
        assert venv.observation_space.contains(obs)
        assert np.all(np.isfinite(r)) and np.all(r <= 0.0) and not term.any()


def test_gymnasium_vector_wrappers_accept_the_core():
    """Gymnasium's own vector wrappers (which read the autoreset mode) work on it: episode statistics add up."""
    cfgs = [dataclasses.replace(c, episode_tasks=25) for c in make_client_configs(4, 1.0, 8)]
    venv = gym.wrappers.vector.RecordEpisodeStatistics(MecOffloadingVectorEnv(configs=cfgs))
    venv.reset(seed=1)
    rng = np.random.default_rng(2)
    ret = np.zeros(4)
    seen = 0
    for _ in range(80):
        _, r, term, trunc, info = venv.step(rng.integers(0, 4, 4))
        ret += r
        if "episode" in info:
            done = info["_episode"]
            assert np.allclose(info["episode"]["r"][done], ret[done]) and np.all(info["episode"]["l"][done] == 25)
            ret[done] = 0.0
            seen += int(done.sum())
    assert seen >= 8


@settings(max_examples=40, deadline=None)
@given(q=st.sampled_from([0.0, 1e-12, 0.004, 0.02, 0.2, 0.33, 0.5, 1.0]),
       mean=st.sampled_from([1.0, 2.9, 3.01, 3.5, 20.0, 400.0]), seed=st.integers(0, 2**32 - 1),
       n=st.sampled_from([1, 7, 256]), blocks=st.integers(1, 4))
def test_vectorised_background_blocks_are_background_runs(q, mean, seed, n, blocks):
    """The background chain vectorised over instances (exponentials drawn ahead, runs = ceil(-E / log1p(-p)))
    gives exactly ``background_runs``'s blocks on the same generator: every branch (inversion range, the
    reference outside it, blocks with more runs than the window), blocks in a row, servers interleaved."""
    cfgs = [MecOffloadingConfig(burst_start_prob=q, burst_mean_slots=mean, n_servers=2),
            MecOffloadingConfig(burst_start_prob=0.02, burst_mean_slots=20.0, n_servers=2)]
    venv = MecOffloadingVectorEnv(configs=cfgs)
    rows = np.arange(2)
    for i in rows:
        venv._rng_bg[i] = np.random.default_rng(seed + i)
        venv._bg_state[i] = [0, 1]
    venv._ep[:] = _EBUF
    got = [[venv._background_blocks(rows, k, n) for k in range(2)] for _ in range(blocks)]
    for i, c in enumerate(cfgs):
        rng, state = np.random.default_rng(seed + i), [0, 1]
        levels = (float(c.background_load), float(c.burst_load))
        for b in range(blocks):
            for k in range(2):
                want, state[k] = background_runs(rng, state[k], c.burst_start_prob, 1.0 / c.burst_mean_slots, levels, n)
                assert np.array_equal(got[b][k][i], want), (i, b, k)
        assert venv._bg_state[i].tolist() == state


@settings(max_examples=40, deadline=None)
@given(lam=st.sampled_from([1e-4, 0.01, 0.075, 0.15, 0.3, 0.6, 1.0]), seed=st.integers(0, 2**32 - 1),
       n_draws=st.sampled_from([1, 5, 640]))
def test_poisson_read_off_the_doubles_is_numpy_poisson(lam, seed, n_draws):
    """``poisson_increments`` on a stream's doubles gives exactly ``Generator.poisson``'s counts (multiplication
    method, exp(-lam) as NumPy computes it), rows of different lam side by side."""
    lams = [lam, 0.3]
    u = np.zeros((2, 4 * n_draws + 64))
    want = []
    for r, x in enumerate(lams):
        np.random.default_rng(seed + r).random(out=u[r, 1:-1])
        want.append(np.random.default_rng(seed + r).poisson(x, n_draws))
    inc = poisson_increments(u, np.array([math.exp(-x) for x in lams]))
    for r in range(2):
        pos = inc[inc // u.shape[1] == r] - r * u.shape[1] - 1
        cell = pos - np.arange(pos.size)
        assert np.array_equal(np.bincount(cell[cell < n_draws], minlength=n_draws), want[r])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.01, 0.3, 1.5, 3.0, 10.0, 15.0]),
       n_devices=st.sampled_from([1, 20, 60]), blocks=st.integers(1, 3), short=st.booleans())
def test_task_blocks_read_off_the_doubles_are_draw_task_block_raw(seed, rate, n_devices, blocks, short):
    """The task blocks of ``_refill_tasks`` (one ``random`` call per instance, counts and uniforms read off it;
    the reference function where lam is out of range or the doubles do not cover the block) are exactly
    ``draw_task_block_raw``'s, block after block, appended behind the unread tasks, and leave the generator where
    it leaves it."""
    cfgs = [MecOffloadingConfig(arrival_rate=rate, n_devices=n_devices),
            MecOffloadingConfig(arrival_rate=1.5, n_devices=20, slot_s=0.05)]
    venv = MecOffloadingVectorEnv(configs=cfgs)
    venv.reset(seed=0)
    if short:                                          # too few doubles drawn: rewind, reference function
        venv._pois_words //= 3
    refs = []
    for i in range(2):
        venv._rng_task[i] = np.random.default_rng(seed + i)
        venv._task_slot_end[i] = 0
        refs.append(np.random.default_rng(seed + i))
    end = [0, 0]
    for b in range(blocks):
        unread = b % 2                                 # 0 or 1 unread task kept in front of the new block
        venv._ptr[:] = np.maximum(venv._nblk - unread, 0)
        kept = [venv._tb[i, venv._ptr[i]:venv._nblk[i]].copy() for i in range(2)]
        venv._refill_tasks([0, 1])
        for i, c in enumerate(cfgs):
            lam = c.arrival_rate * c.slot_s
            end[i], first, counts, size, dens, dl, fade = draw_task_block_raw(refs[i], c, lam, end[i], 64)
            n, k = size.size, len(kept[i])
            assert venv._ptr[i] == 0 and venv._nblk[i] == k + n and venv._task_slot_end[i] == end[i]
            assert np.array_equal(venv._tb[i, :k], kept[i])
            got = venv._tb[i, k:k + n]
            cell = np.repeat(np.arange(counts.size), counts)
            assert np.array_equal(got[:, 0], cell // c.n_devices + first)
            assert np.array_equal(got[:, 1], cell % c.n_devices)
            for col, want in zip(range(2, 6), (size, dens, dl, fade), strict=True):
                assert np.array_equal(got[:, col], want), col
    for i in range(2):
        assert venv._rng_task[i].random() == refs[i].random()
