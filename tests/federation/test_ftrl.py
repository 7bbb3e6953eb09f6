"""FTRL (federation/strategies/ftrl.py): each client's observation alignment is personal and fitted on its own
observations; the shared network is uploaded whole and averaged. Runs on CartPole (no optional extra)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers frl/*)
from agents.dqn import DQNAgent
from federation import Client, run_federation
from federation.evaluation import evaluate_policy
from federation.strategies import make_strategy, weighted_average
from federation.strategies.ftrl import FTRL, AlignedObservation, AlignmentHook, ObservationAlignment, fit_alignment
from federation.types import FederationError

torch.set_num_threads(1)


def _scaled(env: gym.Env, scale: float, shift: float) -> gym.Env:
    """The same dynamics seen through another sensor: o' = scale·o + shift."""
    low = np.full(env.observation_space.shape, -np.inf, np.float32)
    return gym.wrappers.TransformObservation(
        env, lambda o: (scale * o + shift).astype(np.float32), gym.spaces.Box(low, -low, dtype=np.float32))


def _env(k: int) -> gym.Env:
    env = gym.make("frl/CartPoleHetero-v0")
    return _scaled(env, 20.0, 5.0) if k == 1 else env


_AGENT = {"learning_starts": 100, "exploration_steps": 1500, "target_update_interval": 100, "hidden_sizes": (64, 64),
          "lr": 1e-3, "train_freq": 2}


def _clients(steps: int) -> list[Client]:
    out = []
    for k in range(2):
        env = _env(k)
        env.reset(seed=10 + k)
        out.append(Client(k, env, _env(k), lambda env=env, k=k: DQNAgent(env.observation_space, env.action_space,
                                                                          seed=100 + k, **_AGENT),
                          steps_per_round=steps, rng=np.random.default_rng(k)))
    return out


class RecordingFTRL(FTRL):
    """FTRL that keeps every round's uploads and the aggregate it returned."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.log: list[tuple[dict, list]] = []

    def aggregate_train(self, rnd, weights, results):
        new = super().aggregate_train(rnd, weights, results)
        self.log.append((new, list(results)))
        return new


def test_alignment_moments_fitted_then_frozen() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([3.0, -2.0], [10.0, 0.1], size=(300, 2))
    al = ObservationAlignment((2,), fit_steps=200, clip=5.0)
    for x in data:
        al.observe(x)
    assert al.frozen and al.seen == 200
    np.testing.assert_allclose(al.stats.mean, data[:200].mean(0), rtol=1e-6)
    np.testing.assert_allclose(al.stats.var, data[:200].var(0), rtol=1e-3)
    z = al(data[250])
    np.testing.assert_allclose(z, (data[250] - data[:200].mean(0)) / np.sqrt(data[:200].var(0) + 1e-4), rtol=1e-3)
    assert np.abs(al(np.array([1e6, -1e6]))).max() == pytest.approx(5.0)  # clipped


def test_alignment_maps_differently_scaled_sensors_to_the_same_inputs() -> None:
    """The defining property: two clients whose sensors differ by an affine map see the same aligned inputs."""
    aligned = []
    for k in range(2):
        al = ObservationAlignment((4,), fit_steps=150)
        env = AlignedObservation(_env(k), al, fit=True)
        rng = np.random.default_rng(7)
        obs, _ = env.reset(seed=3)
        seq = []
        for _ in range(300):
            obs, _, term, trunc, _ = env.step(int(rng.integers(2)))
            seq.append(obs)
            if term or trunc:
                obs, _ = env.reset(seed=int(rng.integers(1000)))
        aligned.append(np.array(seq[150:]))  # after the fit: both frozen
    np.testing.assert_allclose(aligned[0], aligned[1], atol=0.05)  # up to the variance floor ε


def test_personal_alignment_never_leaves_and_shared_network_is_averaged() -> None:
    clients = _clients(steps=200)
    strategy = RecordingFTRL(align_steps=150)
    history = run_federation(clients, strategy, rounds=2, seed=np.random.SeedSequence(1), eval_every=2,
                             eval_seeds=(0,))
    keys = set(clients[0].agent.get_weights())
    for new, results in strategy.log:
        for r in results:  # the whole network goes up, nothing else (no alignment statistics)
            assert set(r.weights) == keys
        avg = weighted_average([r.weights for r in results], [r.num_samples for r in results])
        for k in keys:
            np.testing.assert_array_equal(new[k], avg[k])
    assert set(history.global_weights) == keys
    for c in clients:  # every client trained round 2 from round 1's average ...
        for k in keys:
            np.testing.assert_array_equal(c.received[k], strategy.log[0][0][k])
        hook = c.hook
        assert isinstance(hook, AlignmentHook) and hook.alignment.frozen
        assert isinstance(c.env, AlignedObservation) and c.env.fit
        assert isinstance(c.eval_env, AlignedObservation) and not c.eval_env.fit
        assert c.eval_env.alignment is hook.alignment
    # ... but each keeps its own alignment, fitted on its own sensor (client 1's is scaled 20x, shifted 5)
    a0, a1 = clients[0].hook.alignment.stats, clients[1].hook.alignment.stats
    assert not np.allclose(a0.mean, a1.mean)
    assert np.all(a1.var > 50.0 * a0.var)  # 400x in distribution; the two clients' trajectories differ


def test_evaluation_does_not_refit_the_alignment() -> None:
    clients = _clients(steps=50)
    run_federation(clients, FTRL(align_steps=10_000), rounds=1, seed=1, eval_every=1, eval_seeds=(0, 1))
    before = clients[0].hook.alignment.seen
    clients[0].evaluate(None, [5, 6])
    assert clients[0].hook.alignment.seen == before >= 50  # 50 steps + the reset observations


def test_ftrl_learns_across_differently_scaled_sensors() -> None:
    """After 2 x 1500 steps per client the averaged network, behind each client's alignment, balances the pole
    more than 3x as long as a random policy on both sensors (fixed seeds)."""
    clients = _clients(steps=1500)
    run_federation(clients, FTRL(align_steps=300), rounds=2, seed=3, eval_every=2, eval_seeds=(0,))
    rng = np.random.default_rng(0)
    for c in clients:
        learned = c.evaluate(None, [21, 22, 23])["return"]
        rand = evaluate_policy(c.eval_env, lambda o: int(rng.integers(2)), [21, 22, 23])["return"]
        assert learned > 3 * rand, (c.client_id, learned, rand)


def test_fit_alignment_on_a_new_vehicle() -> None:
    env = _env(1)
    al = fit_alignment(env, lambda o: 0, steps=40, seed=5)
    assert al.frozen and al.seen == 40 and al.stats.mean.shape == (4,)
    with pytest.raises(FederationError, match="steps"):
        fit_alignment(env, lambda o: 0, steps=0, seed=5)


def test_bad_parameters_and_spaces_are_refused() -> None:
    with pytest.raises(FederationError, match="align_steps"):
        make_strategy("ftrl", align_steps=0)
    with pytest.raises(FederationError, match="clip"):
        make_strategy("ftrl", clip=-1.0)
    with pytest.raises(FederationError, match="wobble"):
        make_strategy("ftrl", wobble=1)
    env = gym.make("FrozenLake-v1")
    client = Client(0, env, gym.make("FrozenLake-v1"),
                    lambda: DQNAgent(env.observation_space, env.action_space, seed=0), steps_per_round=1)
    with pytest.raises(FederationError, match="1-D Box"):
        client.use(FTRL().client_hook())


def test_kill_and_resume_restores_the_alignments_bitwise(tmp_path) -> None:
    """A checkpoint holds each client's alignment (fitting mid-way at the kill): the resumed run is the same."""
    import dataclasses

    from federation.checkpoint import Checkpointer
    from scenarios import scenario_module
    from scenarios.experiment import client_setup, make_pool

    exp = dataclasses.replace(scenario_module("heterogeneity").QUICK, n_clients=2, rounds=3, steps_per_round=100,
                              eval_every=1, eval_episodes=1, final_eval_episodes=1,
                              strategies=("ftrl:align_steps=250",))

    class Kill(Exception):
        pass

    def federate(checkpoint=None, kill_after=None):
        setup = client_setup(exp)
        pool = make_pool(exp, exp.strategies[0], setup)
        fs = setup.federation_seed

        def on_round(rnd, history):
            if rnd == kill_after:
                raise Kill

        history = run_federation(pool, exp.strategy(exp.strategies[0]), rounds=exp.rounds,
                                 seed=np.random.SeedSequence(fs.entropy, spawn_key=fs.spawn_key),
                                 eval_every=exp.eval_every, eval_seeds=setup.eval_seeds,
                                 system=exp.system(setup.devices), on_round=on_round, checkpoint=checkpoint)
        return history, pool

    straight, pool0 = federate()
    path = tmp_path / "f.pt"
    with pytest.raises(Kill):
        federate(Checkpointer(path, 1, {"run": "t"}), kill_after=2)  # saved after round 1: alignments not frozen
    resumed, pool1 = federate(Checkpointer(path, 1, {"run": "t"}))
    assert resumed.rows == straight.rows
    for c0, c1 in zip(pool0.clients, pool1.clients, strict=True):
        a0, a1 = c0.hook.alignment, c1.hook.alignment
        assert a0.seen == a1.seen and np.array_equal(a0.stats.mean, a1.stats.mean)
        assert np.array_equal(a0.stats.var, a1.stats.var)


def test_ftrl_refuses_a_pettingzoo_env_by_name() -> None:
    from envs.uav_mec import parallel_env
    from federation.strategies.ftrl import _box_shape

    with pytest.raises(FederationError, match=r"'uav_mec_v0' is a multi-agent \(PettingZoo\) env; allowed: "):
        _box_shape(parallel_env())
