"""``envs.batched.reseed`` gives exactly ``np.random.default_rng(seed)``'s streams, reusing generator objects."""

from __future__ import annotations

import numpy as np

from envs.batched import FAST_RESEED, default_rng_states, reseed


def test_vectorised_seeding_matches_numpy():
    assert FAST_RESEED
    rng = np.random.default_rng(0)
    seeds = [0, 1, 2**32 - 1, 2**32, 2**63 - 2, 2**64 - 1, *rng.integers(0, 2**63 - 1, 300).tolist()]
    for seed, (state, inc) in zip(seeds, default_rng_states(seeds), strict=True):
        assert np.random.default_rng(seed).bit_generator.state["state"] == {"state": state, "inc": inc}


def test_reseeded_generators_draw_default_rng_streams():
    seeds = np.random.default_rng(1).integers(0, 2**63 - 1, 6)
    used = [np.random.default_rng(7) for _ in range(3)] + [None] * 3
    for g in used[:3]:
        g.integers(0, 5, 3)                       # leaves a buffered 32-bit half behind
    gens = reseed(used, seeds)
    assert gens[0] is used[0]                     # existing objects are reused
    for g, seed in zip(gens, seeds, strict=True):
        ref = np.random.default_rng(int(seed))
        assert np.array_equal(g.integers(0, 7, 5), ref.integers(0, 7, 5))
        assert np.array_equal(g.random(4), ref.random(4))
        assert np.array_equal(g.poisson(0.3, 50), ref.poisson(0.3, 50))
        assert g.geometric(0.05) == ref.geometric(0.05)
