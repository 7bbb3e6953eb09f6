"""Helpers of the batched env cores: many ``np.random.default_rng(seed)`` generators at once, exactly.

A batched core keeps one generator per instance and stream, exactly as its single env does, so that instance i
reproduces the single env's random streams. A single env typically re-creates its stream generators at every
reset (``default_rng(seed)`` with seeds drawn from its ``np_random``); creating one costs ~10 us, mostly
NumPy's ``SeedSequence`` hashing, which would dominate a batched reset. ``reseed(gens, seeds)`` puts each
generator of ``gens`` into the state ``np.random.default_rng(seeds[m])`` starts in, with the ``SeedSequence``
hashing vectorised over all seeds:

* ``SeedSequence(seed)`` (NumPy's ``bit_generator.pyx``, after M. E. O'Neill's ``seed_seq_fe``): the seed's
  32-bit words (little-endian) are mixed into a 4-word pool by ``hashmix`` (multiply-xorshift with the
  constants ``INIT_A``/``MULT_A``) and ``mix``; ``generate_state(4, uint64)`` hashes the pool again with
  ``INIT_B``/``MULT_B`` into 8 words = 4 uint64;
* ``PCG64`` takes them as a 128-bit initial state and stream (``pcg_setseq_128_srandom_r``: ``inc = 2 seq + 1``,
  one LCG step, ``state += init``, one LCG step; M. E. O'Neill, "PCG: A family of simple fast space-efficient
  statistically good algorithms for random number generation", HMC-CS-2014-0905, 2014).

The result is checked against NumPy on import (``FAST_RESEED``); if NumPy ever seeds differently, ``reseed``
falls back to building the generators with ``default_rng`` (slower, never wrong). Seeds must be integers in
``[0, 2**64)`` (what the envs draw with ``integers(0, 2**63 - 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

__all__ = ["FAST_RESEED", "ArrayVectorEnv", "default_rng_states", "instance_configs", "reseed", "reset_targets",
           "step_actions"]

_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = np.uint32(16)
_M32 = 0xFFFFFFFF
_M128 = (1 << 128) - 1
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341


def default_rng_states(seeds: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """PCG64 ``(state, inc)`` of ``np.random.default_rng(seed)`` for every seed (integers in [0, 2**64))."""
    s = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    hash_a = [_INIT_A]

    def hashmix(v: np.ndarray) -> np.ndarray:
        v = v ^ np.uint32(hash_a[0])
        hash_a[0] = (hash_a[0] * _MULT_A) & _M32
        v = v * np.uint32(hash_a[0])
        return v ^ (v >> _XSHIFT)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
        return r ^ (r >> _XSHIFT)

    with np.errstate(over="ignore"):
        zero = np.zeros(s.shape, np.uint32)
        words = [(s & np.uint64(_M32)).astype(np.uint32), (s >> np.uint64(32)).astype(np.uint32), zero, zero]
        pool = [hashmix(w) for w in words]
        for i_src in range(4):
            for i_dst in range(4):
                if i_src != i_dst:
                    pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src]))
        hash_b = _INIT_B
        out = []
        for i in range(8):
            v = pool[i % 4] ^ np.uint32(hash_b)
            hash_b = (hash_b * _MULT_B) & _M32
            v = v * np.uint32(hash_b)
            out.append(v ^ (v >> _XSHIFT))
    u64 = [(out[2 * k].astype(np.uint64) | (out[2 * k + 1].astype(np.uint64) << np.uint64(32))).tolist()
           for k in range(4)]
    states = []
    for a, b, c, d in zip(*u64, strict=True):
        init, seq = (a << 64) | b, (c << 64) | d
        inc = ((seq << 1) | 1) & _M128
        state = (((inc + init) & _M128) * _PCG_MULT + inc) & _M128
        states.append((state, inc))
    return states


def _check() -> bool:
    seeds = [0, 1, 2**32 - 1, 2**32, 2**63 - 2, 123456789012345678]
    for seed, (state, inc) in zip(seeds, default_rng_states(seeds), strict=True):
        ref = np.random.default_rng(seed).bit_generator.state
        if ref["bit_generator"] != "PCG64" or ref["state"] != {"state": state, "inc": inc}:
            return False
    return True


FAST_RESEED = _check()


def reseed(gens: list[np.random.Generator | None], seeds: Sequence[int] | np.ndarray) -> list[np.random.Generator]:
    """``gens[m]`` set to the state ``np.random.default_rng(seeds[m])`` starts in (a new generator where
    ``gens[m]`` is None); returns the list. Drawing from it afterwards gives exactly ``default_rng``'s stream."""
    seeds = [int(x) for x in np.asarray(seeds).reshape(-1)]
    if not FAST_RESEED:
        return [np.random.default_rng(x) for x in seeds]
    out = []
    for g, (state, inc) in zip(gens, default_rng_states(seeds), strict=True):
        if g is None:
            g = np.random.Generator(np.random.PCG64(0))     # any state: overwritten below
        g.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                                 "has_uint32": 0, "uinteger": 0}
        out.append(g)
    return out


def instance_configs(config_cls: type, num_envs: int | None, configs: Sequence[Any] | None, config: Any,
                     overrides: dict[str, Any]) -> list[Any]:
    """The per-instance configs of a ``vector_entry_point`` call: ``configs=[...]`` (one per instance) or
    ``config=...`` for all ``num_envs`` instances, each resolved with the knob ``overrides`` (one validator)."""
    from envs.knobs import resolve_config
    from envs.registry import EnvConfigError

    if configs is not None and config is not None:
        raise EnvConfigError("pass either configs=[...] (one per instance) or config=... (for all), not both")
    if configs is not None:
        configs = list(configs)
        if num_envs is not None and num_envs != 1 and num_envs != len(configs):
            raise EnvConfigError(f"num_envs={num_envs!r} but {len(configs)} configs; allowed: one config per "
                                 f"instance")
    else:
        n = 1 if num_envs is None else int(num_envs)
        if n < 1:
            raise EnvConfigError(f"num_envs={n!r}; allowed: an integer >= 1")
        configs = [config] * n
    if not configs:
        raise EnvConfigError("configs=[]; allowed: at least one config")
    return [resolve_config(config_cls, c, overrides) for c in configs]


def reset_targets(num_envs: int, seed: Any, options: dict[str, Any] | None, has_reset: bool
                  ) -> tuple[list[int], list[int | None]]:
    """The instances a batched core's ``reset`` restarts and their seeds, as ``SyncVectorEnv`` reads the arguments:
    ``seed`` None, an int (instance i gets ``seed + i``) or one seed per instance; ``options["reset_mask"]`` a
    bool array choosing the instances (the first reset must take all). Bad arguments: one-line errors."""
    import gymnasium as gym

    b = num_envs
    if seed is None:
        seeds: list[int | None] = [None] * b
    elif isinstance(seed, int | np.integer):
        seeds = [int(seed) + i for i in range(b)]
    else:
        seeds = list(seed)
        if len(seeds) != b:
            raise ValueError(f"seed list of length {len(seeds)}; allowed: one seed per instance ({b})")
    mask = None if options is None else options.get("reset_mask")
    if mask is None:
        todo = list(range(b))
    else:
        mask = np.asarray(mask)
        if mask.shape != (b,) or mask.dtype != np.bool_ or not mask.any():
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({b},) with a True value")
        if not has_reset and not mask.all():
            raise gym.error.ResetNeeded("the first reset must reset every instance")
        todo = np.flatnonzero(mask).tolist()
    return todo, [seeds[i] for i in todo]


def step_actions(actions: Any, num_envs: int, n_actions: int, has_reset: bool) -> np.ndarray:
    """A batched core's ``step`` argument as an int64 array of one Discrete(``n_actions``) action per instance;
    ``ResetNeeded`` before the first reset, ``InvalidAction`` (one line, what is allowed) for anything else."""
    import gymnasium as gym

    if not has_reset:
        raise gym.error.ResetNeeded("call reset() before step()")
    a = np.asarray(actions)
    b = num_envs
    if a.shape != (b,) or a.dtype.kind not in "iu" or (b and (a.min() < 0 or a.max() > n_actions - 1)):
        raise gym.error.InvalidAction(f"actions={actions!r}; allowed: an integer array of shape ({b},) with "
                                      f"values in 0..{n_actions - 1}")
    return a.astype(np.int64)


class ArrayVectorEnv(VectorEnv):
    """What every batched core shares: Gymnasium's next-step autoreset, and ``reset`` as pick the instances
    (:func:`reset_targets`), restart them (``_reset_many``), observe (``_reset_observation``). A core sets
    ``_autoreset`` (bool per instance) and ``_has_reset`` in its ``__init__``."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    _autoreset: np.ndarray
    _has_reset: bool

    def _reset_many(self, idx: list[int], seeds: Sequence[int | None]) -> None:
        raise NotImplementedError

    def _reset_observation(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        todo, seeds = reset_targets(self.num_envs, seed, options, self._has_reset)
        self._reset_many(todo, seeds)
        self._autoreset[todo] = False
        self._has_reset = True
        return self._reset_observation(), {}
