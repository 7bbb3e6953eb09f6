"""Tests of the O-RAN user access control env: API contracts, TR 38.901 channel, SINR, HO bookkeeping, KPIs."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs import oran_access as oa
from envs.registry import EnvConfigError, register_entry

if oa.ENTRY.env_id not in gym.registry:
    register_entry(oa.ENTRY)

K = oa.OranAccessConfig().n_candidates
FAST = {"map_resolution_m": 20.0}          # coarse maps build in milliseconds


def _rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs.copy()]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        trace += [obs.copy(), np.array([r, term, trunc, info["throughput"], info["serving_cell"]])]
        if term or trunc:
            obs, _ = env.reset()
    return trace


# ---------------------------------------------------------------------------------------------- API contracts
def test_check_env_and_gymnasium_make():
    env = gym.make("frl/OranAccess-v0")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (5 * K + 2,) and env.action_space.n == K


def test_observations_in_space_and_kpis_in_info():
    env = gym.make("frl/OranAccess-v0")
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(300):
        assert env.observation_space.contains(obs)
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(reward) and not term
        for key in oa.ENTRY.kpis:
            assert np.isfinite(info[key]), key
        assert 0.0 < info["load_fairness"] <= 1.0 and info["throughput"] >= 0.0


def test_seeded_determinism():
    a = _rollout(gym.make("frl/OranAccess-v0"), 11, 300)
    b = _rollout(gym.make("frl/OranAccess-v0"), 11, 300)
    c = _rollout(gym.make("frl/OranAccess-v0"), 12, 300)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_episode_truncates_at_episode_steps():
    env = gym.make("frl/OranAccess-v0", episode_steps=25)
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(25)]
    assert flags == [False] * 24 + [True]


def test_client_configs_heterogeneity():
    same = oa.make_client_configs(4, 0.0, 3)
    assert all(c == same[0] for c in same)
    diverse = oa.make_client_configs(6, 1.0, 3)
    assert len({repr(c) for c in diverse}) == 6
    assert oa.make_client_configs(4, 0.7, 5) == oa.make_client_configs(4, 0.7, 5)
    assert {c.n_candidates for c in diverse} == {K}
    small = oa.make_client_configs(6, 0.1, 3)
    spread = lambda cs: np.std([c.n_ues for c in cs]) + np.std([c.ho_cost for c in cs])  # noqa: E731
    assert spread(small) < spread(diverse)
    for bad in (-0.1, 1.5):
        with pytest.raises(EnvConfigError, match="heterogeneity"):
            oa.make_client_configs(4, bad, 0)
    spaces = {(repr(oa.OranAccessEnv(c).observation_space), repr(oa.OranAccessEnv(c).action_space))
              for c in diverse[:3]}
    assert len(spaces) == 1


@pytest.mark.parametrize(("knob", "value"), [
    ("n_ues", 1), ("n_ues", 2.5), ("isd_m", 50.0), ("shadowing_scale", -1.0), ("small_cells_per_macro", 9),
    ("sectors_per_site", 2), ("a3_ttt_s", 10.0), ("hotspot_fraction", float("nan")), ("n_candidates", True),
    ("background_policy", "greedy"), ("ho_interruption_s", 0.2), ("min_speed_mps", 20.0),
])
def test_out_of_range_knob_is_refused(knob, value):
    with pytest.raises(EnvConfigError, match=knob):
        oa.OranAccessConfig(**{knob: value})


def test_unknown_override_is_refused():
    with pytest.raises(EnvConfigError, match="no_such_knob"):
        gym.make("frl/OranAccess-v0", no_such_knob=1)
    with pytest.raises(EnvConfigError, match="no_such_knob"):
        oa.parallel_env(no_such_knob=1)


def test_illegal_action_is_refused():
    env = oa.OranAccessEnv(**FAST)
    env.reset(seed=0)
    for bad in (K, -1, 1.5, "1", True):  # integers in range only, as Gymnasium's own Discrete envs demand
        with pytest.raises(gym.error.InvalidAction, match="action"):
            env.step(bad)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_ues=st.integers(2, 60), smalls=st.integers(0, 4), sectors=st.sampled_from([1, 3]),
       idle=st.floats(0.0, 1.0), policy=st.sampled_from(oa.BACKGROUND_POLICIES),
       vmax=st.floats(0.5, 30.0), shadow=st.floats(0.0, 2.0), k=st.integers(2, 7), seed=st.integers(0, 99))
def test_property_any_legal_config_runs_inside_its_spaces(n_ues, smalls, sectors, idle, policy, vmax,
                                                          shadow, k, seed):
    cfg = oa.OranAccessConfig(n_ues=n_ues, small_cells_per_macro=smalls, sectors_per_site=sectors,
                              idle_cell_activity=idle, background_policy=policy, min_speed_mps=min(1.0, vmax),
                              max_speed_mps=vmax, shadowing_scale=shadow, n_candidates=k, layout_seed=seed,
                              max_pause_s=0.0, **FAST)
    env = oa.OranAccessEnv(cfg)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(60):
        assert env.observation_space.contains(obs)
        obs, reward, _, _, info = env.step(int(rng.integers(k)))
        assert np.isfinite(reward) and info["throughput"] >= 0.0 and 0.0 < info["load_fairness"] <= 1.0
        core = env.core
        assert core.n.sum() == n_ues and core.sumsq == int(core.n @ core.n)
        assert np.array_equal(core.n, np.bincount(core.serv, minlength=cfg.n_cells))
    par = oa.parallel_env(cfg)
    obs, _ = par.reset(seed=seed)
    for _ in range(20):
        assert all(par.observation_space(a).contains(o) for a, o in obs.items())
        obs, rew, _, _, infos = par.step({a: int(rng.integers(k)) for a in par.agents})
        assert all(np.isfinite(r) for r in rew.values())


# ---------------------------------------------------------------------------------------- channel (TR 38.901)
def test_pathloss_matches_tr38901_formulas_at_hand_computed_distances():
    fc = 3.5
    lf = math.log10(fc)
    # UMa LOS, d2D = 100 m < d'BP: PL1 = 28 + 22 log10(d3D) + 20 log10(fc), d3D = sqrt(100^2 + 23.5^2)
    d3d = math.sqrt(100.0**2 + 23.5**2)
    hand = 28.0 + 22.0 * math.log10(d3d) + 20.0 * lf
    assert hand == pytest.approx(83.138, abs=1e-3)
    assert float(oa.pathloss_db(100.0, True, scenario="uma", fc_ghz=fc)) == pytest.approx(hand, abs=1e-9)
    # UMa LOS beyond the breakpoint d'BP = 4 * 24 * 0.5 * fc / c = 560.4 m
    d_bp = 4 * 24.0 * 0.5 * 3.5e9 / 299_792_458.0
    assert oa.breakpoint_distance(fc, 25.0) == pytest.approx(d_bp) and d_bp == pytest.approx(560.39, abs=0.01)
    d3d = math.sqrt(800.0**2 + 23.5**2)
    hand = 28.0 + 40.0 * math.log10(d3d) + 20.0 * lf - 9.0 * math.log10(d_bp**2 + 23.5**2)
    assert hand == pytest.approx(105.53, abs=0.01)
    assert float(oa.pathloss_db(800.0, True, scenario="uma", fc_ghz=fc)) == pytest.approx(hand, abs=1e-9)
    # UMa NLOS at 300 m: max(PL_LOS, 13.54 + 39.08 log10(d3D) + 20 log10(fc))
    d3d = math.sqrt(300.0**2 + 23.5**2)
    hand = max(28.0 + 22.0 * math.log10(d3d) + 20.0 * lf, 13.54 + 39.08 * math.log10(d3d) + 20.0 * lf)
    assert hand == pytest.approx(121.28, abs=0.01)
    assert float(oa.pathloss_db(300.0, False, scenario="uma", fc_ghz=fc)) == pytest.approx(hand, abs=1e-9)
    # UMi street canyon (h_BS = 10 m): LOS 50 m and NLOS 150 m
    d3d = math.sqrt(50.0**2 + 8.5**2)
    hand = 32.4 + 21.0 * math.log10(d3d) + 20.0 * lf
    assert hand == pytest.approx(79.09, abs=0.01)
    assert float(oa.pathloss_db(50.0, True, scenario="umi", fc_ghz=fc)) == pytest.approx(hand, abs=1e-9)
    d3d = math.sqrt(150.0**2 + 8.5**2)
    hand = max(32.4 + 21.0 * math.log10(d3d) + 20.0 * lf, 22.4 + 35.3 * math.log10(d3d) + 21.3 * lf)
    assert hand == pytest.approx(110.83, abs=0.01)
    assert float(oa.pathloss_db(150.0, False, scenario="umi", fc_ghz=fc)) == pytest.approx(hand, abs=1e-9)
    # NLOS is never below LOS, path loss grows with distance, float32 maps agree with float64
    d = np.linspace(10.0, 2000.0, 500)
    for sc in ("uma", "umi"):
        los, nlos = oa.pathloss_db(d, True, scenario=sc, fc_ghz=fc), oa.pathloss_db(d, False, scenario=sc, fc_ghz=fc)
        assert np.all(nlos >= los) and np.all(np.diff(los) > 0)
        assert np.allclose(oa.pathloss_db(d.astype(np.float32), False, scenario=sc, fc_ghz=fc), nlos, atol=1e-3)


def test_los_probability_table_7_4_2_1():
    assert float(oa.los_probability(10.0, scenario="uma")) == 1.0
    d = 200.0
    assert float(oa.los_probability(d, scenario="uma")) == pytest.approx(18 / d + math.exp(-d / 63) * (1 - 18 / d))
    assert float(oa.los_probability(d, scenario="umi")) == pytest.approx(18 / d + math.exp(-d / 36) * (1 - 18 / d))


def test_map_holds_tx_power_minus_pathloss_and_los_fraction_follows_tr38901():
    cfg = oa.OranAccessConfig(shadowing_scale=0.0, small_cells_per_macro=0, map_resolution_m=5.0,
                              sectors_per_site=1)       # omni, 0 dBi
    dep = oa.deployment_for(cfg)
    nodes = dep.node_position(np.arange(dep.gx * dep.gy))
    d = np.abs(nodes - dep.cell_pos[0])
    rx_dbm = 10.0 * np.log10(dep.rx_mw[:, 0].astype(np.float64))
    near = np.flatnonzero((d > 10.0) & (d < 18.0))            # Pr_LOS = 1 within 18 m
    assert near.size > 0
    expect = 46.0 - oa.pathloss_db(d[near], True, scenario="uma", fc_ghz=3.5)
    assert np.allclose(rx_dbm[near], expect, atol=1e-3)
    ring = np.flatnonzero((d > 150.0) & (d < 250.0))
    los_pl = 46.0 - oa.pathloss_db(d[ring], True, scenario="uma", fc_ghz=3.5)
    nlos_pl = 46.0 - oa.pathloss_db(d[ring], False, scenario="uma", fc_ghz=3.5)
    is_los = np.abs(rx_dbm[ring] - los_pl) < 1e-3
    assert np.all(is_los | (np.abs(rx_dbm[ring] - nlos_pl) < 1e-3))
    expected = float(np.mean(oa.los_probability(d[ring], scenario="uma")))
    assert abs(is_los.mean() - expected) < 0.1                # spatially correlated, so only roughly


def test_shadowing_field_has_tr38901_sigma():
    dep_on = oa.deployment_for(oa.OranAccessConfig(small_cells_per_macro=0))
    dep_off = oa.deployment_for(oa.OranAccessConfig(small_cells_per_macro=0, shadowing_scale=0.0))
    sf = 10.0 * np.log10(dep_off.rx_mw[:, 0].astype(np.float64) / dep_on.rx_mw[:, 0])
    assert abs(sf.mean()) < 1.5 and 4.0 < sf.std() < 7.0     # a mixture of 4 dB (LOS) and 6 dB (NLOS)


def test_three_sectors_follow_the_antenna_pattern():
    dep = oa.deployment_for(oa.OranAccessConfig(sectors_per_site=3, shadowing_scale=0.0,
                                                small_cells_per_macro=0))
    # a node 200 m from site 0 in the boresight (30 deg) of sector 0: sector 0 is 30 dB stronger than sector 1
    p = 200.0 * np.exp(1j * np.deg2rad(30.0))
    q = (p - dep.origin) / dep.res
    flat = int(round(q.imag)) * dep.gx + int(round(q.real))
    rx = 10.0 * np.log10(dep.rx_mw[flat, :3].astype(np.float64))
    assert rx[0] - rx[1] == pytest.approx(30.0, abs=0.5) and rx[0] - rx[2] == pytest.approx(30.0, abs=0.5)
    d = abs(dep.node_position(flat) - dep.sites[0])
    pl = [float(oa.pathloss_db(d, los, scenario="uma", fc_ghz=3.5)) for los in (True, False)]
    assert min(abs(rx[0] - (46.0 + 8.0 - x)) for x in pl) < 1e-2            # 8 dBi on boresight (float32 map)


# ------------------------------------------------------------------------------------------------------ SINR
def test_sinr_hand_computed_two_cells_and_interference_lowers_it():
    noise = oa.noise_mw(20.0, 9.0)
    assert 10.0 * math.log10(noise) == pytest.approx(-174.0 + 10.0 * math.log10(20e6) + 9.0)
    p = np.array([1e-6, 1e-7])                     # -60 dBm serving, -70 dBm interferer
    hand = 1e-6 / (1e-7 + noise)
    assert 10.0 * math.log10(hand) == pytest.approx(9.973, abs=1e-3)
    assert float(oa.sinr(p, 0, noise)) == pytest.approx(hand)
    three = np.array([1e-6, 1e-7, 5e-8])           # adding an interfering cell reduces SINR
    assert float(oa.sinr(three, 0, noise)) < float(oa.sinr(p, 0, noise))
    # an idle interferer (activity 0) does not interfere: back to the single-cell SNR
    assert float(oa.sinr(p, 0, noise, activity=np.array([1.0, 0.0]))) == pytest.approx(1e-6 / noise)


def test_env_rate_uses_sinr_with_interference_and_resource_fair_share():
    env = oa.OranAccessEnv(ho_interruption_s=0.05)
    obs, _ = env.reset(seed=3)
    core = env.core
    for step in range(40):
        row = core.P[0].astype(np.float64).copy()          # the channel the step is served on
        action = 1 if step % 7 == 0 else int(np.argmax(obs[3 * K:4 * K]))
        obs, reward, _, _, info = env.step(action)
        s = info["serving_cell"]
        sinr = row[s] / (row.sum() - row[s] + core.noise)
        assert info["sinr_db"] == pytest.approx(10.0 * math.log10(sinr), abs=1e-9)
        assert sinr < row[s] / core.noise                   # interference is counted
        # truncated Shannon, TR 36.942 A.1: 0 below -10 dB, 0.6 log2(1 + SINR), at most 4.4 b/s/Hz
        se = 0.0 if sinr < 0.1 else min(0.6 * math.log2(1.0 + sinr), 4.4)
        rate = 20.0 / core.n[s] * se * (0.5 if info["handover"] else 1.0)
        assert info["throughput"] == pytest.approx(rate, rel=1e-9)
        expected = math.log(max(rate, 0.01)) - 0.5 * info["handover"] - 1.0 * info["ping_pong"]
        assert reward == pytest.approx(expected, abs=1e-9)
        assert info["load_fairness"] == pytest.approx(30**2 / (core.C * float(core.n @ core.n)))


def test_idle_cells_interfere_less():
    busy = gym.make("frl/OranAccess-v0", idle_cell_activity=1.0)
    quiet = gym.make("frl/OranAccess-v0", idle_cell_activity=0.0)
    s_busy, s_quiet = [], []
    for env, out in ((busy, s_busy), (quiet, s_quiet)):
        obs, _ = env.reset(seed=5)
        for _ in range(200):
            obs, _, _, _, info = env.step(int(np.argmax(obs[3 * K:4 * K])))     # stay
            out.append(info["sinr_db"])
    assert np.all(np.array(s_quiet) >= np.array(s_busy) - 1e-9) and np.mean(s_quiet) > np.mean(s_busy)


def test_single_agent_fast_path_matches_vectorised_observation():
    for idle in (1.0, 0.3):
        env = oa.OranAccessEnv(idle_cell_activity=idle)
        obs, _ = env.reset(seed=7)
        rng = np.random.default_rng(0)
        for _ in range(120):
            core = env.core
            cand = core.candidates_all()
            assert cand[0].tolist() == env.candidates
            assert np.allclose(core.observe_all(cand)[0], obs, atol=1e-5)
            obs, *_ = env.step(int(rng.integers(K)))


# -------------------------------------------------------------------------------------- handover bookkeeping
def test_ping_pong_is_a_return_to_the_previous_cell_within_the_window():
    env = oa.OranAccessEnv()
    obs, _ = env.reset(seed=0)
    serving = int(np.argmax(obs[3 * K:4 * K]))
    first = env.candidates[serving]
    obs, r1, _, _, info = env.step((serving + 1) % K)               # hand over away
    assert info["handover"] == 1.0 and info["ping_pong"] == 0.0
    assert r1 == pytest.approx(math.log(max(info["throughput"], 0.01)) - 0.5)
    back = np.flatnonzero(obs[4 * K:5 * K])                          # the "previous cell" flag
    assert back.size == 1 and env.candidates[back[0]] == first
    obs, r2, _, _, info = env.step(int(back[0]))                     # and back within 1 s
    assert info["handover"] == 1.0 and info["ping_pong"] == 1.0
    assert r2 == pytest.approx(math.log(max(info["throughput"], 0.01)) - 1.5)
    stay = int(np.argmax(obs[3 * K:4 * K]))
    for _ in range(11):                                              # > 1 s later it is a plain HO
        obs, *_ = env.step(stay)
        stay = int(np.argmax(obs[3 * K:4 * K]))
    assert not obs[4 * K:5 * K].any() and obs[5 * K] == pytest.approx(1.2 / 5.0)


def test_background_a3_acts_on_l3_filtered_rsrp_with_offset_hysteresis_and_time_to_trigger():
    env = oa.OranAccessEnv(n_ues=40, a3_ttt_s=0.16, l3_filter_k=4)
    env.reset(seed=2)
    core = env.core
    # TS 38.331 5.5.3.2 in dB: F_0 = M_1, F_n = (1 - a) F_(n-1) + a M_n, a = 1/2^(4/4) per 200 ms sample,
    # so (1 - a)^(100/200) per 100 ms step; re-implemented here independently of the env
    a = 1.0 - math.sqrt(0.5)
    F = 10.0 * np.log10(core.P.astype(np.float64))
    history: list[np.ndarray] = []
    n_moves = 0
    for _ in range(300):
        fs = F[core.ar, core.serv]
        history.append(F.max(axis=1) - fs > 4.0 - 1e-3)            # offset 3 dB + hysteresis 1 dB
        before = core.serv.copy()
        F_then = F.copy()
        env.step(0)
        moved = np.flatnonzero(core.serv != before)
        for u in moved[moved > 0]:
            # the condition held on the last 1 + ceil(160 / 100) = 3 steps, and the target is the strongest
            assert all(h[u] for h in history[-3:]), u
            assert F_then[u, core.serv[u]] >= F_then[u].max() - 1e-3
            n_moves += 1
        F = (1.0 - a) * F + a * 10.0 * np.log10(core.P.astype(np.float64))
    assert n_moves > 20


def test_l3_filter_weight_and_filtering_reduces_handovers_and_ping_pongs():
    assert oa.l3_filter_weight(4, 0.2) == pytest.approx(0.5)                 # a = 1/2^(k/4) at 200 ms
    assert oa.l3_filter_weight(4, 0.1) == pytest.approx(1.0 - math.sqrt(0.5))
    assert oa.l3_filter_weight(0, 0.1) == 1.0 and oa.l3_filter_weight(8, 0.1) < oa.l3_filter_weight(4, 0.1)
    totals = {}
    for k in (0, 4):
        ho = pp = 0.0
        for seed in range(2):
            env = oa.parallel_env(l3_filter_k=k, episode_steps=300)
            obs, _ = env.reset(seed=seed)
            policy = oa.PARALLEL_BASELINES["a3"](env, seed)
            while env.agents:
                obs, _, _, _, infos = env.step(policy(obs))
                info = infos["ue_0"]
                ho += info["handover"]
                pp += info["ping_pong"]
        totals[k] = (ho, pp)
    assert totals[4][0] < totals[0][0] and totals[4][1] < totals[0][1]


def test_unfiltered_observation_rsrp_is_the_local_mean_and_filtered_lags_it():
    raw = oa.parallel_env(l3_filter_k=0, n_ues=5)
    filt = oa.parallel_env(l3_filter_k=4, n_ues=5)
    o_raw, _ = raw.reset(seed=1)
    o_f, _ = filt.reset(seed=1)
    assert np.allclose(o_raw["ue_0"], o_f["ue_0"])                         # F_0 = M_1
    lag = 0.0
    for _ in range(50):
        o_raw, *_ = raw.step({a: 0 for a in raw.agents})
        o_f, *_ = filt.step({a: 0 for a in filt.agents})
        P = raw.core.P.astype(np.float64)
        cand = raw.candidates
        expect = (10.0 * np.log10(P[np.arange(5)[:, None], cand]) + 80.0) / 40.0
        got = np.stack([o_raw[a][:K] for a in raw.agents])
        assert np.allclose(got, np.clip(expect, -3, 3), atol=1e-4)
        lag += float(np.abs(filt.core.F - 10.0 * np.log10(filt.core.P)).max())
    assert lag > 0.0


def test_truncated_shannon_tr36942_annex_a1():
    db = np.array([-20.0, -10.5, -9.9, 0.0, 10.0, 21.0, 30.0, 50.0])
    se = oa.truncated_shannon(10.0 ** (db / 10.0), 0.6, 4.4, -10.0)
    assert se[0] == 0.0 and se[1] == 0.0
    assert se[2] == pytest.approx(0.6 * math.log2(1.0 + 10.0 ** -0.99))
    assert se[4] == pytest.approx(0.6 * math.log2(11.0))
    assert se[-1] == 4.4 and se[-2] == 4.4 and np.all(np.diff(se) >= 0.0)
    fine = oa.truncated_shannon(10.0 ** (np.linspace(-10.0, 60.0, 2000) / 10.0), 0.6, 4.4, -10.0)
    assert np.all(np.diff(fine) >= 0.0) and fine.max() == 4.4


def test_rates_never_exceed_the_spectral_efficiency_cap():
    env = oa.parallel_env(n_ues=20, episode_steps=100)
    obs, _ = env.reset(seed=0)
    policy = oa.PARALLEL_BASELINES["max-sinr"](env, 0)
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        n_serv = env.core.n[env.core.serv]
        rates = np.array([infos[a]["ue_throughput"] for a in infos])
        assert np.all(rates <= 20.0 * 4.4 / n_serv + 1e-9)
    assert env.config.se_max_bps_hz == 4.4


def test_sector_element_pattern_tr38901_table_7_3_1():
    assert float(oa.sector_gain_db(30.0, 30.0)) == pytest.approx(8.0)
    assert float(oa.sector_gain_db(30.0 + 32.5, 30.0)) == pytest.approx(5.0)    # 3 dB down at phi_3dB / 2
    assert float(oa.sector_gain_db(210.0, 30.0)) == pytest.approx(-22.0)          # front-to-back 30 dB
    assert float(oa.sector_gain_db(-330.0 + 1e-9, 30.0)) == pytest.approx(8.0)    # wrapped azimuth
    assert oa.OranAccessConfig().sectors_per_site == 3


# ------------------------------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", list(oa.BASELINES))
def test_every_baseline_acts_legally(name):
    env = gym.make("frl/OranAccess-v0")
    policy = oa.BASELINES[name](env, 0)
    obs, _ = env.reset(seed=1)
    for _ in range(150):
        action = policy(obs)
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)


@pytest.mark.parametrize("name", list(oa.PARALLEL_BASELINES))
def test_every_parallel_baseline_acts_legally(name):
    env = oa.parallel_env()
    policy = oa.PARALLEL_BASELINES[name](env, 0)
    obs, _ = env.reset(seed=1)
    for _ in range(60):
        actions = policy(obs)
        assert set(actions) == set(env.agents)
        assert all(env.action_space(a).contains(x) for a, x in actions.items())
        obs, *_ = env.step(actions)


def _parallel_kpis(name: str, seed: int, steps: int = 300) -> dict[str, float]:
    env = oa.parallel_env()
    policy = oa.PARALLEL_BASELINES[name](env, seed)
    obs, _ = env.reset(seed=seed)
    acc: dict[str, float] = {}
    for _ in range(steps):
        obs, _, _, _, infos = env.step(policy(obs))
        for key in ("throughput", "throughput_p5", "handover", "ping_pong", "load_fairness"):
            acc[key] = acc.get(key, 0.0) + infos["ue_0"][key] / steps
    return acc


@pytest.fixture(scope="module")
def kpis() -> dict[str, dict[str, float]]:
    return {name: _parallel_kpis(name, seed=0) for name in oa.PARALLEL_BASELINES}


def test_kpi_ordering_throughput(kpis):
    assert kpis["max-sinr"]["throughput"] > 2.0 * kpis["random"]["throughput"]
    assert kpis["nearest"]["throughput"] > 2.0 * kpis["random"]["throughput"]
    assert 0.6 * kpis["max-sinr"]["throughput"] < kpis["nearest"]["throughput"] <= kpis["max-sinr"]["throughput"]


def test_kpi_ordering_a3_hands_over_less_than_max_sinr(kpis):
    assert kpis["a3"]["handover"] < 0.8 * kpis["max-sinr"]["handover"]
    assert kpis["a3"]["ping_pong"] < 0.7 * kpis["max-sinr"]["ping_pong"]
    assert kpis["random"]["ping_pong"] > kpis["max-sinr"]["ping_pong"]


def test_kpi_ordering_load_aware_balances_load(kpis):
    assert kpis["load-aware"]["load_fairness"] > kpis["max-sinr"]["load_fairness"] + 0.02


def test_kpi_ordering_single_agent_form():
    env = gym.make("frl/OranAccess-v0")
    out = {}
    for name in ("max-sinr", "random", "a3"):
        policy = oa.BASELINES[name](env, 0)
        thr = ho = 0.0
        for seed in (0, 1):
            obs, _ = env.reset(seed=seed)
            for _ in range(300):
                obs, _, _, _, info = env.step(policy(obs))
                thr, ho = thr + info["throughput"], ho + info["handover"]
        out[name] = (thr, ho)
    assert out["max-sinr"][0] > 2.0 * out["random"][0]
    assert out["a3"][1] < out["max-sinr"][1] < out["random"][1]


# --------------------------------------------------------------------------------------------- PettingZoo form
def test_pettingzoo_parallel_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(oa.parallel_env(), num_cycles=100)


def test_pettingzoo_parallel_seed():
    from pettingzoo.test import parallel_seed_test

    parallel_seed_test(oa.parallel_env, num_cycles=300)


def test_parallel_seeded_determinism():
    def trace(seed):
        env = oa.parallel_env(n_ues=10)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [np.stack(list(obs.values()))]
        for _ in range(150):
            obs, rew, _, _, infos = env.step({a: int(rng.integers(K)) for a in env.agents})
            out += [np.stack(list(obs.values())), np.array(list(rew.values())), np.array([infos["ue_1"]["throughput"]])]
        return out

    a, b, c = trace(3), trace(3), trace(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_parallel_episode_and_kpis():
    env = oa.parallel_env(episode_steps=30, n_ues=12)
    obs, _ = env.reset(seed=4)
    assert env.agents == [f"ue_{i}" for i in range(12)]
    for t in range(30):
        obs, rew, term, trunc, infos = env.step({a: 0 for a in env.agents})
        info = infos["ue_3"]
        rates = np.array([infos[a]["ue_throughput"] for a in infos])
        assert info["throughput"] == pytest.approx(rates.mean())
        assert info["throughput_p5"] == pytest.approx(np.percentile(rates, 5))
        assert all(trunc.values()) == (t == 29) and not any(term.values())
    assert env.agents == []
    with pytest.raises(RuntimeError):
        env.step({})


def test_deployment_is_a_function_of_the_config():
    a = oa.deployment_for(oa.OranAccessConfig(layout_seed=1, sectors_per_site=1, **FAST))
    b = oa._deployment.__wrapped__(500.0, 1, 2, 3.5, 46.0, 30.0, 1.0, 20.0, 1)     # rebuilt, not cached
    c = oa.deployment_for(oa.OranAccessConfig(layout_seed=2, sectors_per_site=1, **FAST))
    assert np.array_equal(a.rx_mw, b.rx_mw) and np.array_equal(a.cell_pos, b.cell_pos)
    assert not np.array_equal(a.cell_pos, c.cell_pos)
    d = np.abs(a.cell_pos[7:, None] - np.concatenate([a.sites, a.cell_pos[7:]])[None, :])
    assert np.all(d[:, :7] >= 75.0) and np.all((d[:, 7:] >= 40.0) | (d[:, 7:] == 0.0))   # TR 36.814 spacing


def test_negative_a3_margin_never_hands_over_to_the_serving_cell():
    env = oa.OranAccessEnv(a3_offset_db=-3.0, a3_hysteresis_db=1.0, a3_ttt_s=0.0, **FAST)
    env.reset(seed=0)
    core = env.core
    moved = 0
    for _ in range(200):
        before = core.serv.copy()
        env.step(int(env.candidates.index(core.s0)))
        moved += int((core.serv[1:] != before[1:]).sum())
        assert core.n.sum() == core.U
    assert moved > 0
