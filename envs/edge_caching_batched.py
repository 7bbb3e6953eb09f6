"""Vector entry point of the edge-caching env: B base stations with per-instance configs in one VectorEnv.

``gymnasium.make_vec("frl/EdgeCaching-v0", num_envs=B, vectorization_mode="vector_entry_point",
configs=[cfg_0, ..., cfg_{B-1}])`` (or ``config=cfg`` for every instance) returns a
``gymnasium.vector.SyncVectorEnv`` over B single ``EdgeCachingEnv`` cores, one per config (autoreset mode
``NEXT_STEP``; ``reset(seed=s)`` seeds instance i with ``s + i``). It is exact by construction (each instance *is*
the single env), but it is not an array rewrite: it steps the instances one after another.

Why not an array core (yet): the single env's work per decision is dominated by per-instance, per-request
structures that do not map onto a few array operations over the instance axis: the hits between two misses are
fast-forwarded by a scan whose length differs per instance and per step, the LRU order is an ordered dict
updated on every hit, the LFU candidates come from an incrementally maintained reserve, and the six
neighbours' request streams are drawn and folded into their LRU caches per drift interval. Its reset alone
(10,000 warm-up requests at the BS and at each neighbour, ~9 ms) costs ~2.7 us per decision amortised over a
default episode (~3,400 decisions), so even a perfect array core of the same model would stay below the
issue's 1,000,000 env-steps/s at B = 1,024 on one core; the floor needs a cheaper model (fewer warm-up
requests, neighbour caches refreshed from a shorter stream) first, a modelling change for the lead to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from envs.batched import instance_configs
from envs.edge_caching import EdgeCachingConfig, EdgeCachingEnv
from envs.registry import EnvConfigError

__all__ = ["make_vector_env"]


def make_vector_env(num_envs: int | None = None, configs: Sequence[EdgeCachingConfig] | None = None,
                    config: EdgeCachingConfig | None = None, render_mode: str | None = None,
                    **overrides: Any) -> gym.vector.SyncVectorEnv:
    """``vector_entry_point`` of ``frl/EdgeCaching-v0`` (``gymnasium.make_vec`` passes ``num_envs``)."""
    cfgs = instance_configs(EdgeCachingConfig, num_envs, configs, config, overrides)
    spaces = {(c.n_lru_candidates, c.n_lfu_candidates) for c in cfgs}
    if len(spaces) > 1:
        raise EnvConfigError(f"(n_lru_candidates, n_lfu_candidates) differ across instances ({sorted(spaces)}); "
                             f"allowed: one pair for all (they fix the spaces)")
    venv = gym.vector.SyncVectorEnv([lambda c=c: EdgeCachingEnv(c, render_mode=render_mode) for c in cfgs])
    venv.configs = cfgs
    return venv
