"""Over-the-air ADMM (A-RLADMM): the analog sum tends to the exact sum as SNR → ∞ and its error grows as SNR
drops (monotone in expectation over seeds); truncated clients are silent; every client keeps its energy budget;
the digital baseline's accounting; consensus ADMM's dual update and convergence on a quadratic toy problem;
ideal FedAvg over the channel is FedAvg; seeded channel; bad input refused."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from agents import agent_class
from federation import Client, run_federation
from federation.compression import Int8Compressor
from federation.strategies import STRATEGIES, make_strategy
from federation.strategies.fedavg import FedAvg
from federation.strategies.over_the_air import (
    SIDE_BITS,
    ADMMHook,
    OverTheAir,
    analog_sum,
    digital_budget,
    digital_decode,
    dual_update,
    quantize,
)
from federation.types import FederationError, FitResult

torch.set_num_threads(1)


def _u(seed=0, k=5, d=2000):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.05, size=(k, d)) * rng.uniform(0.5, 2.0, size=(k, 1))


def _analog(u, snr, seed, gains=None, threshold=0.1, w=None, power=1.0, uses=1):
    rng = np.random.default_rng(seed)
    g = gains if gains is not None else rng.exponential(1.0, size=len(u))
    w = np.ones(len(u)) if w is None else w
    return analog_sum(u, w, g, rng, snr_db=snr, power=power, threshold=threshold, uses=uses)


def test_registered():
    assert STRATEGIES["over-the-air"] is OverTheAir


def test_analog_sum_tends_to_the_exact_sum_as_snr_grows():
    u = _u()
    gains = np.array([1.0, 0.5, 2.0, 0.3, 1.5])
    exact = u.sum(axis=0)
    errs = []
    for snr in (40.0, 80.0, 120.0, 160.0):
        est, active, _ = _analog(u, snr, 3, gains=gains)
        assert active.all()
        errs.append(float(np.max(np.abs(est - exact))))
    assert errs[-1] < 1e-8 * np.max(np.abs(exact))
    assert all(a > 10 * b for a, b in zip(errs, errs[1:], strict=False))  # 40 dB = 100x in amplitude


def test_error_grows_as_snr_drops_monotone_in_expectation_over_seeds():
    u = _u(1)
    exact_fn = lambda active: u[active].sum(axis=0)  # noqa: E731
    snrs = (-10.0, 0.0, 10.0, 20.0, 30.0)
    mse = []
    for snr in snrs:
        vals = []
        for seed in range(30):
            est, active, _ = _analog(u, snr, seed)
            if active.any():
                vals.append(np.mean((est - exact_fn(active)) ** 2))
        mse.append(np.mean(vals))
    assert all(a > b for a, b in zip(mse, mse[1:], strict=False)), mse
    ratios = [a / b for a, b in zip(mse, mse[1:], strict=False)]
    assert all(4.0 < r < 25.0 for r in ratios), ratios  # noise power ∝ 1/SNR: ~10x per 10 dB


def test_truncated_clients_are_silent():
    u = _u(2, k=4)
    u[1] *= 1e3  # a deeply faded client with a huge vector must not leak into the sum
    gains = np.array([1.0, 0.05, 0.8, 0.2])
    est, active, energy = _analog(u, 200.0, 0, gains=gains, threshold=0.1)
    assert active.tolist() == [True, False, True, True]
    assert energy[1] == 0.0
    np.testing.assert_allclose(est, u[[0, 2, 3]].sum(axis=0), atol=1e-9)
    est, active, energy = _analog(u, 10.0, 0, gains=np.full(4, 0.01), threshold=0.1)
    assert not active.any() and not energy.any() and not est.any()


@pytest.mark.parametrize("seed", range(5))
def test_power_budget_is_respected_and_tight(seed):
    rng = np.random.default_rng(seed)
    k, d, power, uses = 6, 300, float(rng.uniform(0.1, 10.0)), int(rng.integers(1, 4))
    u = rng.normal(size=(k, d)) * rng.uniform(0.01, 10.0, size=(k, 1))
    w = rng.uniform(0.5, 2.0, size=k)
    gains = rng.exponential(1.0, size=k)
    _, active, energy = _analog(u, 5.0, seed, gains=gains, threshold=0.2, w=w, power=power, uses=uses)
    budget = power * d * uses
    assert np.all(energy <= budget * (1 + 1e-9))
    assert energy[active].max() == pytest.approx(budget)  # the binding client uses all of it
    assert np.all(energy[~active] == 0)


def test_strategy_reports_the_channel_and_matches_ideal_at_high_snr():
    w0 = {"a": np.zeros((3, 4), np.float32), "b": np.ones(5, np.float32)}
    rng = np.random.default_rng(0)
    res = [FitResult(c, {k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) for k, v in w0.items()}, 10)
           for c in range(4)]
    out = {}
    for ch, snr in (("ideal", 10.0), ("analog", 150.0), ("analog", 0.0)):
        s = OverTheAir(channel=ch, snr_db=snr, threshold=0.0)
        s.reseed(np.random.SeedSequence(1))
        out[(ch, snr)] = s.aggregate_train(1, w0, res)
        m = s.round_metrics(1)
        assert m["ota/active"] == 4.0 and 0.0 <= m["ota/energy_ratio"] <= 1.0 + 1e-9
    for k in w0:
        np.testing.assert_allclose(out[("analog", 150.0)][k], out[("ideal", 10.0)][k], atol=1e-6)
        expect = np.mean([r.weights[k].astype(np.float64) for r in res], axis=0)  # ADMM: plain mean of the x_i
        np.testing.assert_allclose(out[("ideal", 10.0)][k], expect, atol=1e-6)
    assert not np.allclose(out[("analog", 0.0)]["a"], out[("ideal", 10.0)]["a"], atol=1e-4)


def test_ideal_fedavg_over_the_channel_is_fedavg():
    w0 = {"a": np.zeros(7, np.float32)}
    rng = np.random.default_rng(4)
    res = [FitResult(c, {"a": rng.normal(size=7).astype(np.float32)}, n) for c, n in enumerate((10, 30, 60))]
    s = OverTheAir(channel="ideal", admm=0)
    s.reseed(np.random.SeedSequence(0))
    np.testing.assert_allclose(s.aggregate_train(1, w0, res)["a"], FedAvg().aggregate_train(1, w0, res)["a"],
                               atol=1e-6)


def test_channel_is_seeded_from_the_strategy_seed():
    w0 = {"a": np.zeros(50, np.float32)}
    res = [FitResult(c, {"a": np.full(50, 0.1 * (c + 1), np.float32)}, 5) for c in range(3)]

    def agg(seed):
        s = OverTheAir(snr_db=0.0, threshold=0.0)
        s.reseed(np.random.SeedSequence(seed))
        return s.aggregate_train(1, w0, res)["a"]

    np.testing.assert_array_equal(agg(7), agg(7))
    assert not np.array_equal(agg(7), agg(8))
    with pytest.raises(FederationError, match="reseed"):
        OverTheAir().aggregate_train(1, w0, res)


# ----- the digital baseline ---------------------------------------------------------------------------------
def test_eight_bit_quantiser_is_the_int8_compressor():
    x = np.random.default_rng(0).normal(size=(40,))
    enc = Int8Compressor().encode(0, {"x": x})
    np.testing.assert_allclose(quantize(x, 8), Int8Compressor().decode(enc)["x"], rtol=0, atol=1e-12)
    assert np.max(np.abs(quantize(x, 16) - x)) < np.max(np.abs(quantize(x, 8) - x)) / 100


def test_digital_budget_is_capacity_at_equal_bandwidth_and_energy():
    d, k, uses, power, snr = 1000, 4, 2, 2.0, 10.0
    gains = np.array([1.0, 0.1, 3.0, 0.0])
    bits = digital_budget(d, k, gains, snr_db=snr, power=power, uses=uses)
    slot = d * uses // k  # 500 channel uses each
    n0 = power / 10.0
    expect = np.floor(slot * 0.5 * np.log2(1 + (power * d * uses / slot) * gains / n0))
    np.testing.assert_array_equal(bits, expect)
    assert bits[3] == 0 and bits[2] > bits[0] > bits[1]
    more = digital_budget(d, k, gains, snr_db=30.0, power=power, uses=uses)
    assert np.all(more[:3] > bits[:3])


def test_digital_decode_full_sparse_and_outage():
    d = 200
    u = np.random.default_rng(1).normal(size=(3, d))
    bits = np.array([SIDE_BITS + 10 * d, SIDE_BITS + 8 * 50, SIDE_BITS + 7])
    out, ok, per_entry = digital_decode(u, bits, np.random.default_rng(0))
    assert ok.tolist() == [True, True, False] and per_entry[0] == 10 and per_entry[1] == pytest.approx(2.0)
    np.testing.assert_allclose(out[0], quantize(u[0], 10))
    assert np.count_nonzero(out[1]) == 50 and not out[2].any()


def test_digital_strategy_hears_everyone_at_high_snr_and_nobody_at_very_low():
    w0 = {"a": np.zeros(400, np.float32)}
    res = [FitResult(c, {"a": np.random.default_rng(c).normal(0, 0.01, 400).astype(np.float32)}, 5)
           for c in range(3)]
    for snr, heard in ((60.0, 3.0), (-60.0, 0.0)):
        s = OverTheAir(channel="digital", admm=0, snr_db=snr)
        s.reseed(np.random.SeedSequence(0))
        new = s.aggregate_train(1, w0, res)
        assert s.round_metrics(1)["ota/active"] == heard
        if not heard:
            np.testing.assert_array_equal(new["a"], w0["a"])  # nobody decoded: the model stays


# ----- ADMM on a quadratic toy problem ----------------------------------------------------------------------
class QuadAgent:
    """f(θ) = (a/2)||θ − c||²; ``learn`` solves the proximal subproblem exactly (the ADMM primal step)."""

    personal_prefixes = ()

    def __init__(self, a, c):
        self.a, self.c = a, np.asarray(c, np.float64)
        self.theta = np.zeros_like(self.c)
        self.anchor = self.theta.copy()
        self.mu = 0.0

    def get_weights(self):
        return {"t": self.theta.astype(np.float32)}

    get_shared_weights = get_weights

    def set_weights(self, w):
        self.theta = np.asarray(w["t"], np.float64).copy()
        self.anchor = self.theta.copy()

    def set_anchor(self, w):
        self.anchor = np.asarray(w["t"], np.float64).copy()

    def set_proximal(self, mu):
        self.mu = mu

    def learn(self, env, steps):
        self.theta = (self.a * self.c + self.mu * self.anchor) / (self.a + self.mu)
        return {}


def _toy(a_vals, c_vals, rho, admm=1):
    clients = [Client(i, None, None, lambda a=a, c=c: QuadAgent(a, c), steps_per_round=1)
               for i, (a, c) in enumerate(zip(a_vals, c_vals, strict=True))]
    s = OverTheAir(channel="ideal", rho=rho, admm=admm)
    s.reseed(np.random.SeedSequence(0))
    for c in clients:
        c.use(s.client_hook())
    return s, clients


def test_admm_dual_update_and_convergence_to_the_consensus_optimum():
    a = [1.0, 2.0, 4.0]
    c = [[1.0, -2.0], [3.0, 0.0], [-1.0, 5.0]]
    rho = 1.0
    s, clients = _toy(a, c, rho)
    opt = sum(ai * np.array(ci) for ai, ci in zip(a, c, strict=True)) / sum(a)
    glob = {"t": np.zeros(2, np.float32)}
    for rnd in range(1, 61):
        before = [dict(cl.hook.lam) for cl in clients]
        thetas = [dict(cl.hook.theta) for cl in clients]
        res = [cl.fit(ins) for cl, ins in zip(clients, s.configure_train(rnd, glob, [0, 1, 2]), strict=True)]
        for cl, lam0, th0 in zip(clients, before, thetas, strict=True):  # λ ← λ + ρ(θ_prev − Θ_received)
            if th0:
                np.testing.assert_allclose(cl.hook.lam["t"], dual_update(lam0.get("t", 0.0), th0["t"], glob["t"], rho),
                                           atol=1e-6)
        if rnd > 1:  # consensus ADMM keeps Σ_i λ_i = 0
            np.testing.assert_allclose(sum(cl.hook.lam["t"] for cl in clients), 0.0, atol=1e-5)
        glob = s.aggregate_train(rnd, glob, res)
    np.testing.assert_allclose(glob["t"], opt, atol=1e-4)
    for cl in clients:  # every client agrees with the consensus
        np.testing.assert_allclose(cl.agent.theta, opt, atol=1e-3)
    # FedAvg (admm=0) on the same problem stops at the mean of local optima, not the consensus optimum
    s0, clients0 = _toy(a, c, rho, admm=0)
    assert all(isinstance(cl.hook, ADMMHook) and not cl.hook.admm for cl in clients0)
    g0 = {"t": np.zeros(2, np.float32)}
    for rnd in range(1, 61):
        g0 = s0.aggregate_train(rnd, g0, [cl.fit(i) for cl, i in zip(clients0, s0.configure_train(rnd, g0, [0, 1, 2]),
                                                                          strict=True)])
    assert np.linalg.norm(g0["t"] - opt) > 0.5


def test_admm_converges_near_the_optimum_over_a_noisy_analog_channel():
    a, c = [1.0, 1.0, 1.0, 1.0], [[0.0], [2.0], [4.0], [6.0]]
    s, clients = _toy(a, c, 1.0)
    s.channel, s.snr_db, s.threshold = "analog", 30.0, 0.0
    glob = {"t": np.zeros(1, np.float32)}
    for rnd in range(1, 41):
        glob = s.aggregate_train(rnd, glob, [cl.fit(i) for cl, i in zip(clients, s.configure_train(rnd, glob,
                                                                                                   [0, 1, 2, 3]),
                                                                         strict=True)])
    assert abs(float(glob["t"][0]) - 3.0) < 0.2


def test_hook_on_a_real_agent_anchors_at_consensus_minus_scaled_dual():
    env_id = "frl/CartPoleHetero-v0"
    cls = agent_class("dqn")
    clients = []
    for i in range(2):
        env = gym.make(env_id, half_pole_length=0.2 + 0.5 * i)
        env.reset(seed=i)
        clients.append(Client(i, env, gym.make(env_id), lambda env=env, i=i: cls(env.observation_space,
                                                                                 env.action_space, seed=i,
                                                                                 learning_starts=20),
                              steps_per_round=60, rng=np.random.default_rng(i)))
    s = make_strategy("over-the-air", snr_db=20.0, rho=0.5)
    hist = run_federation(clients, s, rounds=2, seed=np.random.SeedSequence(3), eval_seeds=[0])
    rows = [r for r in hist.rows if r[1] == -1 and r[2].startswith("ota/")]
    assert {m for _, _, m, _ in rows} >= {"ota/active", "ota/mse", "ota/channel_mse", "ota/energy_ratio"}
    hook = clients[0].hook
    assert hook.lam and float(np.abs(hook.lam["body.0.weight"]).max()) > 0
    anchor = {k: v.numpy() for k, v in clients[0].agent._anchor.items()}
    expect = clients[0].received["body.0.weight"] - hook.lam["body.0.weight"] / 0.5
    np.testing.assert_allclose(anchor["body.0.weight"], expect, atol=1e-5)
    assert clients[0].agent.prox_mu == 0.5


@pytest.mark.parametrize("kw, match", [({"channel": "radio"}, "allowed: analog, digital, ideal"),
                                       ({"admm": 2}, "admm=2"), ({"rho": 0.0}, "rho=0.0"),
                                       ({"uses": 0}, "uses=0"), ({"snr_db": float("inf")}, "snr_db=inf")])
def test_bad_parameters_are_refused_with_one_line(kw, match):
    with pytest.raises(FederationError, match=match):
        make_strategy("over-the-air", **kw)


def test_worker_processes_are_bitwise_equal_to_in_process():
    import dataclasses

    from scenarios.experiment import run_experiment
    from scenarios.heterogeneity import QUICK

    exp = dataclasses.replace(QUICK, n_clients=3, rounds=2, steps_per_round=40, eval_every=1, eval_episodes=1,
                              final_eval_episodes=1, baselines=(), seed=5,
                              strategies=("over-the-air", "over-the-air:channel=digital:admm=0"),
                              agent_config={**QUICK.agent_config, "learning_starts": 16, "batch_size": 8,
                                            "hidden_sizes": (16, 16)})
    a, b = run_experiment(exp), run_experiment(dataclasses.replace(exp, backend="processes", workers=2))
    assert a.rows == b.rows
