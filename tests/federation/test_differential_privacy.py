"""DP-FedAvg wrapper (McMahan et al. 2018): clipping bounds, equivalence with FedAvg, noise scale, the opacus
accountant, parameter checks, refused strategies and a short federation run."""

import copy
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.differential_privacy import (
    ACCOUNTANT,
    ClippingHook,
    DPFedAvg,
    apply_dp,
    clip_update,
    dp_compatible,
    dp_markdown,
    dp_summary,
    epsilon,
    l2_norm,
    noised_mean,
    wrap_dp,
)
from federation.strategies import STRATEGIES, FedAvg, make_strategy
from federation.strategies.fedopt import FedAdam
from federation.types import FederationError, FitResult

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

MEAN_STRATEGIES = {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedper", "fedrep", "ditto",
                   "finetune", "apfl", "ftrl"}  # ftrl: FedAvg of the network; its alignment stays home


def _global(d=(3, 4), dtype=np.float32, value=0.0):
    return {"a": np.full(d, value, dtype=dtype), "b": np.full(d[0], value, dtype=dtype)}


def _results(weights_list, samples=None):
    samples = samples or [10] * len(weights_list)
    return [FitResult(client_id=i, weights=w, num_samples=n) for i, (w, n) in enumerate(zip(weights_list, samples,
                                                                                           strict=True))]


def _run_round(strategy, glob, uploads, *, sampled=None, rnd=1, seed=0):
    strategy.reseed(np.random.SeedSequence(seed))
    ids = list(range(sampled if sampled is not None else len(uploads)))
    strategy.configure_train(rnd, glob, ids)
    return strategy.aggregate_train(rnd, glob, _results(uploads))


# ----- clipping ------------------------------------------------------------------------------------------
_arrays = st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=64), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(a=_arrays, b=_arrays, clip=st.floats(1e-3, 1e3))
def test_clipping_bounds_the_norm_and_keeps_the_direction(a, b, clip):
    update = {"a": np.asarray(a), "b": np.asarray(b)}
    clipped, norm = clip_update(update, clip)
    assert norm == pytest.approx(l2_norm(update))
    assert l2_norm(clipped) <= clip * (1 + 1e-9)
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    for k in update:
        np.testing.assert_allclose(clipped[k], update[k] * factor, rtol=1e-12, atol=0)
    if norm <= clip:  # within the bound: untouched
        for k in update:
            np.testing.assert_array_equal(clipped[k], update[k])


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), clip=st.floats(1e-2, 10.0))
def test_one_client_moves_the_noiseless_sum_by_at_most_clip(data, n, clip):
    """The sensitivity bound behind the noise scale: dropping or replacing any one client's update changes
    Σ π(Δ_k, C) by at most C (add/remove) or 2C (replace), whatever the updates."""
    vec = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=64), min_size=5, max_size=5)
    deltas = [{"w": np.asarray(data.draw(vec))} for _ in range(n)]
    other = {"w": np.asarray(data.draw(vec))}
    template = {"w": np.zeros(5)}
    rng = np.random.default_rng(0)

    def total(ds):
        mean, _ = noised_mean(ds, template, clip=clip, noise_multiplier=0.0, denominator=n, rng=rng)
        return mean["w"] * n

    full = total(deltas)
    j = data.draw(st.integers(0, n - 1))
    without = total(deltas[:j] + deltas[j + 1:])
    replaced = total(deltas[:j] + [other] + deltas[j + 1:])
    assert np.linalg.norm(full - without) <= clip * (1 + 1e-9)
    assert np.linalg.norm(full - replaced) <= 2 * clip * (1 + 1e-9)


# ----- sigma = 0 and a huge clip is unweighted FedAvg ----------------------------------------------------
def test_without_noise_or_clipping_it_is_fedavg():
    rng = np.random.default_rng(1)
    glob = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in _global().items()}
    uploads = [{k: (v + rng.normal(scale=0.1, size=v.shape)).astype(np.float32) for k, v in glob.items()}
               for _ in range(4)]
    dp = DPFedAvg(FedAvg(), clip=1e9, noise_multiplier=0.0, delta=1e-5, num_clients=4)
    got = _run_round(dp, glob, uploads)
    want = FedAvg().aggregate_train(1, glob, _results(uploads))  # equal sample counts: weighted = unweighted
    for k in glob:
        assert got[k].dtype == glob[k].dtype
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)
    # unequal self-reported sample counts are ignored: DP-FedAvg is the *unweighted* mean (w_k = 1)
    dp2 = DPFedAvg(FedAvg(), clip=1e9, noise_multiplier=0.0, num_clients=4)
    dp2.reseed(np.random.SeedSequence(0))
    dp2.configure_train(1, glob, [0, 1, 2, 3])
    got2 = dp2.aggregate_train(1, glob, _results(uploads, samples=[1, 1, 1, 97]))
    for k in glob:
        np.testing.assert_allclose(got2[k], want[k], rtol=1e-6, atol=1e-6)


def test_without_noise_it_feeds_a_server_optimiser_the_mean_update():
    rng = np.random.default_rng(2)
    glob = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in _global().items()}
    rounds = [[{k: (v + rng.normal(scale=0.1, size=v.shape)).astype(np.float32) for k, v in glob.items()}
               for _ in range(3)] for _ in range(2)]
    plain, dp = FedAdam(eta=0.1), DPFedAvg(FedAdam(eta=0.1), clip=1e9, noise_multiplier=0.0, num_clients=3)
    dp.reseed(np.random.SeedSequence(0))
    w_plain = w_dp = glob
    for rnd, uploads in enumerate(rounds, start=1):
        w_plain = plain.aggregate_train(rnd, w_plain, _results(uploads))
        dp.configure_train(rnd, w_dp, [0, 1, 2])
        w_dp = dp.aggregate_train(rnd, w_dp, _results(uploads))
    for k in glob:
        np.testing.assert_allclose(w_dp[k], w_plain[k], rtol=1e-5, atol=1e-6)


def test_clipping_limits_a_large_update():
    glob = _global()
    huge = {k: np.full_like(v, 100.0) for k, v in glob.items()}
    dp = DPFedAvg(FedAvg(), clip=0.5, noise_multiplier=0.0, num_clients=2)
    new = _run_round(dp, glob, [huge, glob])
    step = {k: new[k].astype(np.float64) - glob[k] for k in glob}
    assert l2_norm(step) == pytest.approx(0.5 / 2, rel=1e-5)  # one clipped update of norm C, divided by m = 2
    assert dp.round_metrics(1)["dp/clipped_fraction"] == 0.5


def test_client_side_clipping_bounds_the_upload_and_delegates_the_rest():
    from types import SimpleNamespace

    from federation.client import ClientHook

    class Inner(ClientHook):
        def upload(self, client):
            return {"w": np.full(4, 3.0, dtype=np.float32)}

        def report(self, client):
            return {"inner/report": 1.0}

    client = SimpleNamespace(received={"w": np.ones(4, dtype=np.float32)})
    hook = ClippingHook(Inner(), clip=0.5)
    up = hook.upload(client)
    assert up["w"].dtype == np.float32
    assert l2_norm({"w": up["w"].astype(np.float64) - 1.0}) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(up["w"], 1.25)  # direction kept: (3 − 1)·0.5/‖(2, 2, 2, 2)‖ = 0.25 per entry
    assert hook.report(client) == {"inner/report": 1.0}
    dp = DPFedAvg(FedAvg(), clip=0.5, noise_multiplier=1.0, clip_on_client=True)
    assert isinstance(dp.client_hook(), ClippingHook) and dp.params()["dp_clip_on_client"] == 1
    assert not isinstance(DPFedAvg(FedAvg(), clip=0.5, noise_multiplier=1.0).client_hook(), ClippingHook)


# ----- noise ---------------------------------------------------------------------------------------------
def test_noise_on_the_sum_has_std_sigma_times_clip():
    """Zero updates, 4 sampled of 8 but only 3 answered: the change is N(0, (σC)²)/m with m = 4 (the fixed
    denominator counts the sampled clients, not those that answered)."""
    glob = _global(d=(200, 100))
    sigma, clip, m = 0.7, 2.0, 4
    dp = DPFedAvg(FedAvg(), clip=clip, noise_multiplier=sigma, delta=1e-5, num_clients=8)
    new = _run_round(dp, glob, [glob, glob, glob], sampled=m, seed=123)
    noise = np.concatenate([(new[k].astype(np.float64) - glob[k]).ravel() * m for k in glob])
    assert noise.size == 20_200
    se = sigma * clip / math.sqrt(2 * noise.size)  # standard error of a sample std
    assert abs(noise.std() - sigma * clip) < 4 * se
    assert abs(noise.mean()) < 4 * sigma * clip / math.sqrt(noise.size)
    assert dp.round_metrics(1)["dp/noise_std"] == pytest.approx(sigma * clip / m)
    # reproducible from the run's seed, different for another seed
    again = _run_round(DPFedAvg(FedAvg(), clip=clip, noise_multiplier=sigma, num_clients=8), glob,
                       [glob, glob, glob], sampled=m, seed=123)
    other = _run_round(DPFedAvg(FedAvg(), clip=clip, noise_multiplier=sigma, num_clients=8), glob,
                       [glob, glob, glob], sampled=m, seed=124)
    assert all(np.array_equal(new[k], again[k]) for k in glob)
    assert not np.array_equal(new["a"], other["a"])


# ----- accounting ----------------------------------------------------------------------------------------
def test_epsilon_is_opacus_own_answer():
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    sigma, n, m, steps, delta = 1.1, 10, 3, 7, 1e-5
    glob = _global()
    dp = DPFedAvg(FedAvg(), clip=1.0, noise_multiplier=sigma, delta=delta, num_clients=n)
    dp.reseed(np.random.SeedSequence(5))
    for rnd in range(1, steps + 1):
        dp.configure_train(rnd, glob, list(range(m)))
        glob = dp.aggregate_train(rnd, glob, _results([glob] * m))
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = compute_rdp(q=m / n, noise_multiplier=sigma, steps=steps, orders=orders)
    want, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    assert dp.epsilon() == pytest.approx(float(want), rel=1e-12)
    assert epsilon(sigma, m / n, steps, delta) == pytest.approx(float(want), rel=1e-12)
    s = dp.privacy_summary()
    assert s["dp_epsilon"] == dp.epsilon() and s["dp_rounds"] == steps and s["dp_sample_rate"] == m / n
    assert s["dp_accountant"] == ACCOUNTANT == "opacus.accountants.RDPAccountant"


def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    by_rounds = [epsilon(1.0, 0.5, r, 1e-5) for r in (1, 2, 5, 20)]
    assert all(a < b for a, b in zip(by_rounds, by_rounds[1:], strict=False))
    by_sigma = [epsilon(s, 0.5, 10, 1e-5) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(by_sigma, by_sigma[1:], strict=False))
    assert epsilon(0.0, 0.5, 1, 1e-5) == math.inf  # no noise, no privacy
    assert epsilon(1.0, 0.2, 10, 1e-5) < epsilon(1.0, 1.0, 10, 1e-5)  # amplification by sampling


# ----- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, needle", [
    ({"clip": 0.0}, "clip=0.0"), ({"clip": -1.0}, "clip=-1.0"), ({"clip": math.nan}, "clip=nan"),
    ({"clip": math.inf}, "clip=inf"), ({"clip": "1"}, "clip='1'"), ({"clip": True}, "clip=True"),
    ({"noise_multiplier": -0.1}, "noise_multiplier=-0.1"), ({"noise_multiplier": math.nan}, "noise_multiplier=nan"),
    ({"noise_multiplier": None}, "noise_multiplier=None"), ({"delta": 0.0}, "delta=0.0"),
    ({"delta": 1.0}, "delta=1.0"), ({"delta": -1e-5}, "delta=-1e-05"), ({"delta": 2}, "delta=2"),
    ({"num_clients": 0}, "num_clients=0"), ({"num_clients": 2.5}, "num_clients=2.5"),
])
def test_bad_parameters_are_refused_with_one_line(kw, needle):
    args = {"clip": 1.0, "noise_multiplier": 1.0, "delta": 1e-5, **kw}
    with pytest.raises(FederationError) as info:
        DPFedAvg(FedAvg(), **args)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_only_mean_aggregating_strategies_are_wrapped():
    assert set(dp_compatible()) == MEAN_STRATEGIES
    for name in STRATEGIES:
        inner = make_strategy(name)
        if name in MEAN_STRATEGIES:
            dp = wrap_dp(inner, 1.0, 1.0)
            assert dp.inner is inner and dp.agent_overrides == inner.agent_overrides
            assert dp.params()["dp_clip"] == 1.0
        else:
            with pytest.raises(FederationError) as info:
                wrap_dp(inner, 1.0, 1.0)
            msg = str(info.value)
            assert f"strategy {name!r} cannot run under differential privacy" in msg and "\n" not in msg
    with pytest.raises(FederationError, match="already wrapped"):
        wrap_dp(wrap_dp(FedAvg(), 1.0, 1.0), 1.0, 1.0)


def test_apply_dp_wraps_mean_strategies_passes_local_and_refuses_the_rest():
    from federation.strategies import Local
    from federation.strategies.robust import Median

    local = Local()
    assert apply_dp(local, 1.0, 1.0) is local  # releases no model: nothing to privatise, epsilon 0
    assert dp_summary(local)["dp_epsilon"] == 0.0
    assert isinstance(apply_dp(FedAvg(), 1.0, 1.0, 1e-5, num_clients=4), DPFedAvg)
    with pytest.raises(FederationError, match="'median' cannot run under differential privacy"):
        apply_dp(Median(), 1.0, 1.0)
    with pytest.raises(FederationError, match="delta=1.5"):
        apply_dp(local, 1.0, 1.0, 1.5)  # bad parameters are refused even for local
    dp = apply_dp(FedAvg(), 1.0, 0.0, num_clients=2)
    glob = _global()
    _run_round(dp, glob, [glob, glob])
    table = dp_markdown({"fedavg": dp_summary(dp), "local": dp_summary(local), "greedy": {"mean_return": 1.0}})
    assert "| fedavg | ∞ | 1e-05 | 0 | 1 | 1 | 1 |" in table and "| local | 0 |" in table and "greedy" not in table


def test_non_float_parameters_and_unknown_population_are_refused():
    dp = DPFedAvg(FedAvg(), clip=1.0, noise_multiplier=1.0)
    glob = {"w": np.zeros(3, dtype=np.float32)}
    with pytest.raises(FederationError, match="population size is unknown"):
        _run_round(dp, glob, [glob])
    ints = {"w": np.zeros(3, dtype=np.int64)}
    with pytest.raises(FederationError, match="floating-point"):
        _run_round(DPFedAvg(FedAvg(), clip=1.0, noise_multiplier=1.0, num_clients=1), ints, [ints])


def test_wrapper_survives_the_deep_copy_experiments_make():
    dp = DPFedAvg(FedAvg(), clip=1.0, noise_multiplier=1.0, num_clients=2)
    glob = _global()
    _run_round(dp, glob, [glob, glob])
    clone = copy.deepcopy(dp)
    assert clone.epsilon() == dp.epsilon() > 0


# ----- a short federation run ----------------------------------------------------------------------------
def test_short_federation_run_records_epsilon_per_round_and_stays_finite():
    import gymnasium as gym

    import envs  # noqa: F401
    from agents import agent_class
    from federation import Client, run_federation

    n, rounds, sigma, delta = 3, 3, 1.0, 1e-5
    clients = []
    for cid in range(n):
        env = gym.make("frl/MecOffloading-v0")
        env.reset(seed=cid)
        cls = agent_class("dqn")
        clients.append(Client(cid, env, gym.make("frl/MecOffloading-v0"),
                              lambda env=env, cid=cid, cls=cls: cls(env.observation_space, env.action_space,
                                                                    seed=cid, learning_starts=30),
                              steps_per_round=60, kpis=("cost",)))
    dp = DPFedAvg(FedAvg(), clip=1.0, noise_multiplier=sigma, delta=delta)  # N counted from the client hooks
    seen = []
    hist = run_federation(clients, dp, rounds=rounds, seed=7, fraction=2 / 3, eval_seeds=(1,),
                          on_round=lambda r, h: seen.append(r))  # the loop records dp.round_metrics
    assert seen == [1, 2, 3]
    eps = hist.series("dp/epsilon", client=-1)
    assert [r for r, _ in eps] == [1, 2, 3]
    for r, e in eps:
        assert e == pytest.approx(epsilon(sigma, 2 / 3, r, delta), rel=1e-12)
    assert eps[0][1] < eps[1][1] < eps[2][1] < math.inf
    assert [v for _, v in hist.series("dp/delta", client=-1)] == [delta] * rounds
    assert all(np.all(np.isfinite(v)) for v in hist.global_weights.values())
    assert hist.series("global/return")  # the inner strategy's evaluation protocol is kept
    s = dp.privacy_summary()
    assert s["dp_epsilon"] == eps[-1][1] and s["dp_sample_rate"] == pytest.approx(2 / 3) and s["dp_rounds"] == 3
    assert FedAvg().round_metrics(1) == {}  # a plain strategy records nothing of its own
