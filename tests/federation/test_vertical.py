"""Vertical FRL (FedRL): reproducibility, the message/gradient protocol, privacy noise, bad input."""

import numpy as np
import pytest

from envs.cv2x import parallel_env
from federation.types import FederationError
from federation.vertical import VerticalFRL, evaluate_team

SMALL = {"learning_starts": 20, "batch_size": 16, "buffer_size": 500, "train_freq": 1, "message_dim": 4,
         "encoder_hidden": (8,), "q_hidden": (16,)}


def _run(seed, share=True, **kw):
    env = parallel_env()
    learner = VerticalFRL(env, seed=seed, share=share, **{**SMALL, **kw})
    for _ in range(2):  # two "rounds" of local interaction and message exchange
        learner.learn(env, 60)
    return learner


def test_two_round_vertical_run_is_bitwise_reproducible():
    a, b = _run(3), _run(3)
    wa, wb = a.weights(), b.weights()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    c = _run(4)
    assert not all(np.array_equal(wa[k], c.weights()[k]) for k in wa)


def test_only_messages_and_gradients_cross_party_borders():
    learner = _run(0)
    n_updates = 120 - SMALL["learning_starts"] + 1
    per_update = len(learner.agents) * SMALL["batch_size"] * SMALL["message_dim"] * 4
    assert learner.bytes_messages == learner.bytes_gradients == n_updates * per_update
    alone = _run(0, share=False)
    assert alone.bytes_messages == alone.bytes_gradients == 0


def test_privacy_noise_changes_training():
    quiet, noisy = _run(1).weights(), _run(1, noise_std=0.5).weights()
    assert not all(np.array_equal(quiet[k], noisy[k]) for k in quiet)


def test_greedy_team_evaluation_runs():
    out = evaluate_team(parallel_env(), _run(0), [5])
    assert np.isfinite(out["return"])


def test_bad_options_are_refused():
    with pytest.raises(FederationError, match="no_such"):
        VerticalFRL(parallel_env(), no_such=1)
    with pytest.raises(FederationError, match="gamma"):
        VerticalFRL(parallel_env(), gamma=2.0)


def test_double_q_target_changes_training_and_is_validated():
    plain, double = _run(2).weights(), _run(2, double_q=True).weights()
    assert not all(np.array_equal(plain[k], double[k]) for k in plain)
    with pytest.raises(FederationError, match="double_q"):
        VerticalFRL(parallel_env(), double_q=1)
