"""Batched core of the MEC offloading env: B cells, each with its own config, stepped as numpy array operations.

``MecOffloadingVectorEnv`` is a ``gymnasium.vector.VectorEnv`` (registered as the ``vector_entry_point`` of
``frl/MecOffloading-v0``)::

    gymnasium.make_vec("frl/MecOffloading-v0", num_envs=B, vectorization_mode="vector_entry_point",
                       configs=[cfg_0, ..., cfg_{B-1}])        # or config=cfg for every instance

Instance ``i`` is the single env ``MecOffloadingEnv(configs[i])`` (``envs.mec_offloading``: physics, sources,
spaces): the same observations, rewards, truncations and ``info`` KPIs bit for bit, given the same seeds and
actions, as a ``SyncVectorEnv`` of single envs (autoreset mode ``NEXT_STEP``, Gymnasium's default: the step
after an episode's last one resets the instance, ignores its action and returns its first observation with
reward 0; ``reset(seed=s)`` seeds instance i with ``s + i``, a list seeds each one). The configs may differ in
every knob except ``n_servers``, which fixes the spaces.

## Why it is exact

Everything random in the single env comes from its ``np_random`` and three generators created from it at each reset
(``episode_seeds``): device geometry (``geometry_draws``, once per episode), the *task* stream and the *background
load* stream. Both streams are drawn in fixed blocks whose content depends on the seed alone, never on the policy
or on when the block is drawn: tasks in blocks of 64 slots (``draw_task_block_raw``: Poisson counts per slot and
device, then sizes, densities, deadlines and fades), background load in blocks of 256 slots per server
(``background_runs``: geometric run lengths of the two-state chain, memoryless at block ends). The batched core
keeps one ``np_random`` and the three generators per instance and calls *the same functions* on them when instance
i needs its next block (a short Python loop over the instances that need one; a block serves ~190 decisions at
defaults, and task blocks are batched ahead, see below). For a task block the same stream is read in fewer calls:
``Generator.poisson`` (multiplication method, lam < 10) and ``random`` consume the same doubles, so one ``random``
call per instance gives the counts (``poisson_increments``, checked against NumPy on import and in the tests) and
the uniforms, the generator is moved back to just after them and draws the fades. The generators are put into
``default_rng(seed)``'s state with the seed hashing vectorised over the instances being reset
(``envs.batched.reseed``, checked against NumPy). A block's draws are stored raw; every derived quantity (link
gain, rate, times, energies, features) is computed for the B pending tasks at once with the single env's
elementwise expressions (``device_link_gain``; ``draw_task_block`` and ``task_physics``'s formulas), and the
background's capacities and cumulative sums for all the blocks of a step at once; elementwise IEEE operations give
the same doubles whatever the batching. The per-decision physics (FIFO queues of device CPUs, uplink and servers
with the Lindley recursion, deadline drops, the exact inversion of a server's cumulative capacity, the cost) are
array operations over the instance axis that perform the single env's double operations in the same order
(``np.where`` picks the branch the single env takes), so the results are identical, not merely close. The
inversion's search (``bisect_right`` over the cumulative capacity, non-decreasing) is a binary search with
descending power-of-two steps, as many as the bit length of the widest search interval in the batch.
``tests/envs/test_batched_mec_offloading.py`` checks equality with a ``SyncVectorEnv`` of single envs.

Task blocks are drawn ahead: when an instance runs out of tasks, every instance with at most ``_AHEAD`` unread
tasks (and more loads left in its episode) gets its next block appended behind them, so a step draws ~130 blocks
at once every ~30 steps instead of a few every step; each instance's blocks are the same, only drawn earlier.

The single env is event driven: one decision per task, empty slots are skipped because the task list already
carries each task's slot. In the batched core each instance reads its own next task, so instances advance
their clocks by different numbers of slots in the same call without any loop; the only loops are the block
draws (a block of 64 slots without any task is skipped, as in the single env, at most 10^6 in a row: a step
cap never reached at legal loads) and the background extension (``ceil(gap / 256)`` blocks for a gap of
``gap`` slots).

Each instance keeps its background state (one byte per slot: the load and capacity are one of two values, looked
up) and cumulative capacity in a ring of ``R`` slots (a power of two covering the longest deadline of the batch plus
one block), so memory does not grow with the episode and the rings' random reads stay in cache longer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random as make_np_random
from gymnasium.vector.utils import batch_space

from envs.batched import ArrayVectorEnv, instance_configs, reseed, step_actions
from envs.mec_offloading import (
    MecOffloadingConfig,
    MecOffloadingEnv,
    background_runs,
    device_link_gain,
    draw_task_block_raw,
    episode_seeds,
    geometry_draws,
)
from envs.registry import EnvConfigError

__all__ = ["MecOffloadingVectorEnv", "make_vector_env"]

# columns of a task record (one row per task in the per-instance task buffer)
# (slot, device, size (Mbit), density, deadline, raw fade)
_SLOT, _DEV, _SMB, _DENS, _DL, _FADE = range(6)
_NF = 6
_AHEAD = 24           # an instance with at most this many unread tasks gets its next block with the others
_INFO_KEYS = ("delay", "completed", "energy", "dropped", "cost", "offloaded")
# NumPy's Generator.geometric(p) takes its inversion branch, ceil(-E / log1p(-p)) with E one standard
# exponential of the stream, for p < 1/3; below _MIN_P a run could pass 2**53 slots (float cumsums lose exactness)
_INVERSION_MAX_P = 1.0 / 3.0
_MIN_P = 1e-9
_EBUF = 512          # standard exponentials kept ahead per instance (the background generator's stream)
_EDRAW = 192         # ... drawn per refill (an episode at defaults needs ~22: a reset draws no more than this)
_EWIN = 64           # runs looked at per vectorised block (a block needing more is finished run by run)


_FAST_CHUNK = 96      # instances per _refill_fast call
_POIS_MAX_LAM = 1.0   # Poisson counts read off the doubles up to this mean (NumPy's multiplication branch: lam < 10)


def poisson_increments(u: np.ndarray, enlam: np.ndarray) -> np.ndarray:
    """Flat positions in rows of a stream's doubles ``u`` (m, L) of the doubles that add one to a
    ``Generator.poisson(lam)`` count (every other double ends a draw), each row with its ``enlam = exp(-lam)``.

    For 0 < lam < 10 NumPy draws a count by the multiplication method: ``prod = 1.0``; per double U of the
    stream ``prod *= U``; the count grows while ``prod > enlam`` and is returned at the first double with
    ``prod <= enlam`` (that double ends the draw). A double ``<= enlam`` ends a draw wherever it falls (prod
    <= 1), so only runs of doubles ``> enlam`` need the running product: one pass per run position, over all the
    runs at once, with the same double products. Column 0 and any padding must be 0.0 (sentinels ending runs).
    """
    hf = (u > enlam[:, None]).reshape(-1)
    c = np.flatnonzero(hf[1:] & hf[:-1]) + 1          # doubles > enlam right after another one (in a run)
    if c.size:
        uf = u.reshape(-1)
        uc = uf[c]
        gap = np.diff(c, prepend=-2)
        nxt = np.append(gap[1:] == 1, False)           # c[k + 1] follows c[k] in the same run
        cur = np.flatnonzero(gap != 1)                 # the second double of each run
        prod = uf[c[cur] - 1]                          # the run's first double: a draw starts there (1.0 * U)
        en = enlam[c[cur] // u.shape[1]]
        stops = []
        while cur.size:
            prod *= uc[cur]
            s = prod <= en
            stops.append(c[cur[s]])
            prod[s] = 1.0                              # the next double starts a new draw
            keep = nxt[cur]
            cur, prod, en = cur[keep] + 1, prod[keep], en[keep]
        hf[np.concatenate(stops)] = False
    return np.flatnonzero(hf)


def _check_poisson() -> bool:
    """``poisson_increments`` reproduces NumPy's Poisson stream (checked on import, like ``envs.batched.reseed``)."""
    lams = np.array([1e-3, 0.05, 0.15, 0.3, 0.7, _POIS_MAX_LAM])
    u = np.zeros((lams.size, 4002))
    want = []
    for r, lam in enumerate(lams.tolist()):
        np.random.default_rng(r).random(out=u[r, 1:4001])
        want.append(np.random.default_rng(r).poisson(lam, 1000))
    inc = poisson_increments(u, np.array([math.exp(-x) for x in lams.tolist()]))
    for r in range(lams.size):
        pos = inc[inc // u.shape[1] == r] - r * u.shape[1] - 1
        cell = pos - np.arange(pos.size)                # ends before an increment: the index of its draw
        if not np.array_equal(np.bincount(cell[cell < 1000], minlength=1000), want[r]):
            return False
    return True


_POIS_OK = _check_poisson()


def _resolve_configs(num_envs: int | None, configs: Sequence[Any] | None, config: Any,
                     overrides: dict[str, Any]) -> list[MecOffloadingConfig]:
    out = instance_configs(MecOffloadingConfig, num_envs, configs, config, overrides)
    ks = sorted({c.n_servers for c in out})
    if len(ks) > 1:
        raise EnvConfigError(f"n_servers differs across instances ({ks}); allowed: one n_servers for all "
                             f"(it fixes the action and observation spaces)")
    return out


class MecOffloadingVectorEnv(ArrayVectorEnv):
    """B MEC cells with per-instance configs, stepped together (see the module docstring)."""

    _TASK_BLOCK_SLOTS = MecOffloadingEnv._TASK_BLOCK_SLOTS
    _BG_BLOCK_SLOTS = MecOffloadingEnv._BG_BLOCK_SLOTS

    def __init__(self, num_envs: int | None = None, configs: Sequence[MecOffloadingConfig] | None = None,
                 config: MecOffloadingConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        if render_mode is not None:
            raise EnvConfigError(f"render_mode={render_mode!r}; allowed: None (the batched core does not render)")
        cfgs = _resolve_configs(num_envs, configs, config, overrides)
        self.configs = cfgs
        self.num_envs = b = len(cfgs)
        self.render_mode = None
        protos: dict[MecOffloadingConfig, MecOffloadingEnv] = {}
        self._protos = [protos.setdefault(c, MecOffloadingEnv(c)) for c in cfgs]
        p0 = self._protos[0]
        self.n_servers = k = p0.n_servers
        self.single_action_space = p0.action_space
        self.single_observation_space = p0.observation_space
        self.action_space = batch_space(self.single_action_space, b)
        self.observation_space = batch_space(self.single_observation_space, b)

        # ---- per-instance constants, taken from a single env of the same config (identical values) ----
        def col(name: str) -> np.ndarray:
            return np.array([getattr(p, name) for p in self._protos], dtype=np.float64)

        self._slot = col("_slot")
        self._inv = col("_inv_slot")
        self._p_tx = col("_p_tx")
        self._w = col("_w")
        self._we = col("_we")
        self._pen = col("_penalty")
        self._ep_tasks = np.array([c.episode_tasks for c in cfgs], dtype=np.int64)
        self._nd_arr = np.array([c.n_devices for c in cfgs], dtype=np.int64)
        self._bw = col("_bw")
        self._snr = col("_snr_scale")
        self._f_loc = col("_f_loc")
        self._e_pc = col("_e_per_cycle")
        self._gain_dbi = np.array([c.bs_antenna_gain_dbi for c in cfgs], dtype=np.float64)
        self._bh_lat = np.array([p._bh_lat for p in self._protos], dtype=np.float64).reshape(b, k)
        self._bh_bit = np.array([p._bh_bit for p in self._protos], dtype=np.float64).reshape(b, k)
        self._srv_feat = np.array([p._srv_feat for p in self._protos], dtype=np.float64).reshape(b, k)
        # server capacity per slot at zero background, f_k * slot (the single env's Python product)
        self._fs = np.array([[f * p._slot for f in p._f_srv] for p in self._protos], dtype=np.float64)
        # slots of background needed ahead of the current task's slot (longest deadline + rounding margin)
        self._ahead = np.array([math.ceil(c.deadline_max_s / c.slot_s) + 4 for c in cfgs], dtype=np.int64)
        r = 1
        while r < int(self._ahead.max()) + self._BG_BLOCK_SLOTS + 8:
            r *= 2
        self._R = r
        self._mask = r - 1

        # ---- state ----
        self._dmax = dmax = int(self._nd_arr.max())
        self._rows = np.arange(b)
        self._rows_k = self._rows * k                  # flat row offsets of (B, K) arrays
        self._rows_d = self._rows * dmax               # ... of (B, n_devices_max) arrays
        self._rows_kr = self._rows * (k * r)           # ... of (B, K, R) rings
        self._k_r = np.arange(k) * r
        self._pg = np.zeros((b, dmax))
        self._local_free = np.zeros((b, dmax))
        self._up_free = np.zeros(b)
        self._srv_free = np.zeros((b, k))
        self._tcap = 256
        self._tb = np.ones((b, self._tcap, _NF))        # task records (raw draws), one row per task
        self._nblk = np.zeros(b, dtype=np.int64)       # tasks in the buffer; the next one to read is at _ptr
        self._ptr = np.zeros(b, dtype=np.int64)
        self._rst = np.zeros((b, k, r), dtype=np.int8)  # background state (1 = burst) per slot
        # cumulative capacity at the *end* of each slot: phi[j] (before slot j) is read at ring slot j - 1
        self._rphi = np.zeros((b, k, r))
        nb = self._BG_BLOCK_SLOTS
        assert r % nb == 0
        self._rst4 = self._rst.reshape(b, k, r // nb, nb)       # block views (aligned writes)
        self._rphi4 = self._rphi.reshape(b, k, r // nb, nb)
        self._bg_len = np.zeros(b, dtype=np.int64)
        self._phi_last = np.zeros((b, k))
        self._bg_state = np.zeros((b, k), dtype=np.int64)   # each server's chain state carried into its next block
        # the background chain vectorised over instances (_background_blocks): log1p(-p) of (calm, burst) runs,
        # the two load levels, and each instance's exponentials drawn ahead with a read pointer
        q = np.array([c.burst_start_prob for c in cfgs], dtype=np.float64)
        m = 1.0 / np.array([c.burst_mean_slots for c in cfgs], dtype=np.float64)
        self._bg_q, self._bg_m = q, m
        self._bg_vec = (q >= _MIN_P) & (q < _INVERSION_MAX_P) & (m >= _MIN_P) & (m < _INVERSION_MAX_P)
        with np.errstate(divide="ignore"):
            self._bg_log = np.stack([np.log1p(-q), np.log1p(-m)], axis=1)
        self._bg_lv = np.array([p._bg_levels for p in self._protos], dtype=np.float64).reshape(b, 2)
        self._burst_stat = np.array([p._burst_stationary for p in self._protos], dtype=np.float64)
        # a slot's load and capacity are one of two values per instance (and server), looked up by its state:
        # capacity f_k * slot * (1 - level), the single env's expression on the same doubles
        self._lv_flat = self._bg_lv.reshape(-1)
        self._rows2 = self._rows * 2
        self._capv = (self._fs[:, :, None] * (1.0 - self._bg_lv[:, None, :])).reshape(-1)
        # task blocks read off one block of doubles per instance (_refill_fast): exp(-lam) as NumPy's C code
        # computes it (libm exp, which math.exp calls), cells per block, doubles drawn per block (the mean use,
        # cells * (1 + 4 lam), plus 4 standard deviations), and the uniforms' ranges
        lam = np.array([p._lam_slot for p in self._protos], dtype=np.float64)
        self._enlam = np.array([math.exp(-x) for x in lam.tolist()])
        self._cells = self._TASK_BLOCK_SLOTS * self._nd_arr
        self._pois_fast = ((lam > 0.0) & (lam <= _POIS_MAX_LAM)).tolist() if _POIS_OK else [False] * b
        self._pois_words = (self._cells * (1.0 + 4.0 * lam) + 16.0 * np.sqrt(self._cells * lam) + 16).astype(np.int64)
        self._size_lo = np.array([c.task_size_min_mbit for c in cfgs], dtype=np.float64)
        self._size_span = np.array([c.task_size_max_mbit - c.task_size_min_mbit for c in cfgs], dtype=np.float64)
        self._dens_lo = np.array([c.density_min for c in cfgs], dtype=np.float64)
        self._dens_span = np.array([c.density_max - c.density_min for c in cfgs], dtype=np.float64)
        self._dl_lo = np.array([c.deadline_min_s for c in cfgs], dtype=np.float64)
        self._dl_span = np.array([c.deadline_max_s - c.deadline_min_s for c in cfgs], dtype=np.float64)
        self._eb = np.zeros((b, _EBUF))
        self._ep = np.full(b, _EBUF, dtype=np.int64)
        self._steps = np.zeros(b, dtype=np.int64)
        self._n_done = np.zeros(b, dtype=np.int64)
        self._delay_done = np.zeros(b)
        self._autoreset = np.zeros(b, dtype=bool)
        self._np_random: list[np.random.Generator | None] = [None] * b
        self._rng_task: list[np.random.Generator | None] = [None] * b
        self._rng_bg: list[np.random.Generator | None] = [None] * b
        self._rng_geo: list[np.random.Generator | None] = [None] * b
        self._task_slot_end = np.zeros(b, dtype=np.int64)
        self._srv_feat32 = self._srv_feat.astype(np.float32)
        self._obs = np.zeros((b, 8 + 4 * k), dtype=np.float32)
        self._has_reset = False

    # ------------------------------------------------------------------ block draws (per instance) + physics (batched)
    def _refill_tasks(self, idx: list[int]) -> None:
        """The next task block of every instance in ``idx``: the draws of ``draw_task_block_raw`` on the instance's
        own task generator (as ``MecOffloadingEnv``), stored raw; the derived quantities are computed for the
        pending tasks in ``_load`` (the same elementwise expressions as ``draw_task_block`` and ``task_physics``;
        keep them in step). Instances whose Poisson counts can be read off the stream's doubles
        (``poisson_increments``) take one ``random`` call, the counts and uniforms for all of them at once, and
        one ``standard_exponential`` call; the others (and a block the drawn doubles do not cover) call
        ``draw_task_block_raw`` itself."""
        ia = np.array(idx, dtype=np.int64)
        rem = self._nblk[ia] - self._ptr[ia]
        width = int(rem.max()) if ia.size else 0
        if width:                                      # the unread tasks move to the front of the buffer
            tb2 = self._tb.reshape(-1, _NF)
            src = (ia * self._tcap + self._ptr[ia])[:, None] + np.arange(width)
            np.minimum(src, (ia * self._tcap + self._tcap - 1)[:, None], out=src)
            tb2[(ia * self._tcap)[:, None] + np.arange(width)] = np.take(tb2, src, axis=0)
        self._ptr[ia] = 0
        self._nblk[ia] = rem
        fast = [i for i in idx if self._pois_fast[i]]
        slow = [i for i in idx if not self._pois_fast[i]]
        for c0 in range(0, len(fast), _FAST_CHUNK):     # chunks keep a call's doubles in cache
            slow += self._refill_fast(fast[c0:c0 + _FAST_CHUNK])
        for i in slow:
            p = self._protos[i]
            end, first, per_cell, size_mbit, dens, dl, fade = draw_task_block_raw(
                self._rng_task[i], p.config, p._lam_slot, int(self._task_slot_end[i]), self._TASK_BLOCK_SLOTS)
            n = size_mbit.size
            at = int(self._nblk[i])
            self._grow_tasks(at + n)
            # (slot, device) cell of every task in the block (draw_task_block's np.repeat, over the non-empty cells)
            cells = per_cell.nonzero()[0]
            cell = np.repeat(cells, per_cell[cells])
            row = self._tb[i, at:at + n]
            row[:, _SLOT] = cell // p.config.n_devices + first
            row[:, _DEV] = cell % p.config.n_devices
            row[:, _SMB] = size_mbit
            row[:, _DENS] = dens
            row[:, _DL] = dl
            row[:, _FADE] = fade
            self._task_slot_end[i] = end
            self._nblk[i] = at + n

    def _grow_tasks(self, n: int) -> None:
        if n > self._tcap:
            grow = max(n, 2 * self._tcap)
            tb = np.ones((self.num_envs, grow, _NF))
            tb[:, :self._tcap] = self._tb
            self._tb, self._tcap = tb, grow

    def _refill_fast(self, idx: list[int]) -> list[int]:
        """``draw_task_block_raw`` for the instances ``idx`` (0 < lam_slot <= ``_POIS_MAX_LAM``) from one block of
        doubles each: ``Generator.poisson`` (multiplication method) and ``random`` read the same doubles of the
        stream, so the counts (``poisson_increments``) and the three uniforms of every task come from one
        ``random`` call; the generator is then moved back to just after the uniforms (``advance``) and draws the
        fades. Returns the instances whose block the doubles did not cover (rewound: the caller draws them)."""
        ia = np.array(idx, dtype=np.int64)
        m = ia.size
        w = self._pois_words[ia]
        width = int(w.max()) + 2
        u = np.zeros((m, width))        # column 0 and the columns past a row's doubles are sentinels (0.0)
        for r, (i, wi) in enumerate(zip(idx, w.tolist(), strict=True)):
            self._rng_task[i].random(out=u[r, 1:1 + wi])
        f = poisson_increments(u, self._enlam[ia])       # one double per task, in (slot, device) order
        # the k-th increment of row r at column col belongs to cell col - 1 - k (the ends before it), so
        # h = f - (its rank in f) is non-decreasing and each row's tasks (cells < c) end at a searchsorted
        h = f - np.arange(f.size)
        row0 = np.searchsorted(f, np.arange(m) * width)                # first increment of each row
        off = np.arange(m) * width + 1 - row0                          # h - cell in row r
        c = self._cells[ia]
        n = np.searchsorted(h, off + c) - row0
        used = c + 4 * n                # Poisson doubles (c ends + n increments), then 3 n uniforms
        ok = (n > 0) & (used <= w)
        if not ok.all():
            n = np.where(ok, n, 0)
        at = self._nblk[ia]
        self._grow_tasks(int((at + n).max()))
        tot = int(n.sum())
        t0 = np.cumsum(n) - n                                          # first task of each row
        t = np.arange(tot)
        rec = np.empty((tot, _NF))
        cell = h[t + np.repeat(row0 - t0, n)] - np.repeat(off, n)
        nd = np.repeat(self._nd_arr[ia], n)
        rec[:, _SLOT] = cell // nd + np.repeat(self._task_slot_end[ia], n)
        rec[:, _DEV] = cell % nd
        ub = u.reshape(-1)
        base = t + np.repeat(np.arange(m) * width + 1 + c + n - t0, n)  # first uniform of each task
        nr = np.repeat(n, n)
        rec[:, _SMB] = np.repeat(self._size_lo[ia], n) + np.repeat(self._size_span[ia], n) * ub[base]
        base += nr
        rec[:, _DENS] = np.repeat(self._dens_lo[ia], n) + np.repeat(self._dens_span[ia], n) * ub[base]
        base += nr
        rec[:, _DL] = np.repeat(self._dl_lo[ia], n) + np.repeat(self._dl_span[ia], n) * ub[base]
        fade = np.empty(tot)
        redo = []
        rows = list(zip(idx, ok.tolist(), (used - w).tolist(), w.tolist(), t0.tolist(), n.tolist(), at.tolist(),
                        strict=True))
        for i, ok_i, back, w_i, a, k, _ in rows:
            g = self._rng_task[i]
            if ok_i:
                g.bit_generator.advance(back)        # back to just after the uniforms
                g.standard_exponential(out=fade[a:a + k])
            else:
                g.bit_generator.advance(-w_i)        # back to where the block starts
                redo.append(i)
        rec[:, _FADE] = fade
        tb = self._tb
        for i, ok_i, _, _, a, k, at_i in rows:       # each block is one contiguous run of the instance's buffer
            if ok_i:
                tb[i, at_i:at_i + k] = rec[a:a + k]
        iok = ia[ok]
        self._task_slot_end[iok] += self._TASK_BLOCK_SLOTS
        self._nblk[iok] += n[ok]
        return redo

    def _extend_background(self, idx: list[int], needed: list[int]) -> None:
        """Extend the background ring of each instance ``idx[m]`` until it covers slot ``needed[m] - 1``, in
        256-slot blocks: the chain states per instance and server (``_background_states``, exactly the runs of
        ``background_runs`` on the instance's own background generator, as ``MecOffloadingEnv``), capacities
        (looked up by state) and cumulative capacities in one pass per round."""
        n = self._BG_BLOCK_SLOTS
        kk = self.n_servers
        todo = [(i, need) for i, need in zip(idx, needed, strict=True) if self._bg_len[i] < need]
        capv = self._capv.reshape(-1, kk, 2)
        while todo:
            ia = np.array([t[0] for t in todo], dtype=np.int64)
            every = ia.size == self.num_envs and bool((ia == self._rows).all())
            st = np.empty((ia.size, kk, n), dtype=np.int8)
            for k in range(kk):              # an instance's servers draw in this order from its one generator
                st[:, k] = self._background_states(ia, k, n)
            cv = capv if every else capv[ia]
            cum = np.where(st.view(bool), cv[:, :, 1:2], cv[:, :, 0:1])
            np.cumsum(cum, axis=2, out=cum)
            cum += (self._phi_last if every else self._phi_last[ia])[:, :, None]
            self._phi_last[ia] = cum[:, :, -1]
            start = self._bg_len[ia]
            blk = (start & self._mask) // n            # blocks start at multiples of n, aligned in the ring
            if every and (blk == blk[0]).all():         # every instance (a reset): one slice of the ring
                self._rst4[:, :, blk[0]] = st
                self._rphi4[:, :, blk[0]] = cum
            else:
                self._rst4[ia, :, blk] = st
                self._rphi4[ia, :, blk] = cum
            self._bg_len[ia] = start + n
            todo = [(i, need) for i, need in todo if self._bg_len[i] < need]

    def _exponentials(self, rows: np.ndarray, count: int) -> None:
        """Make sure every instance in ``rows`` has ``count`` unread exponentials ahead (refill from its
        generator, keeping the unread ones first: the stream stays in order)."""
        eb = self._eb
        for i, p in zip(rows.tolist(), self._ep[rows].tolist(), strict=True):
            if p + count > _EBUF:
                left = _EBUF - p
                d = max(_EDRAW, count)
                start = _EBUF - d - left
                if left:
                    eb[i, start:start + left] = eb[i, p:].copy()
                self._rng_bg[i].standard_exponential(out=eb[i, _EBUF - d:])
                self._ep[i] = start

    def _background_blocks(self, ia: np.ndarray, k: int, n: int) -> np.ndarray:
        """The next ``n`` slots of server ``k``'s background utilisation for the instances ``ia``
        (``_background_states`` as load levels: the values of ``background_runs``)."""
        st = self._background_states(ia, k, n).view(bool)
        lv = self._bg_lv[ia]
        return np.where(st, lv[:, 1:2], lv[:, 0:1])

    def _background_states(self, ia: np.ndarray, k: int, n: int) -> np.ndarray:
        """The next ``n`` slots of server ``k``'s background chain state (1 = burst) for the instances ``ia``
        ``(len(ia), n)`` int8, updating their chain states: the runs ``background_runs`` draws, vectorised over the
        instances.

        ``background_runs`` alternates calm runs ~ Geometric(q) and bursts ~ Geometric(m), one
        ``Generator.geometric`` call per run; for p < 1/3 NumPy computes it as ``ceil(-E / log1p(-p))`` from one
        standard exponential E of the stream, and nothing else draws from the background generator after the
        episode's first states, so the runs are the instance's exponentials, consumed in order, divided by the
        state's ``log1p(-p)``: a window of ``_EWIN`` of them per instance at once. The run ends before slot ``n``
        mark where the state flips (a running parity). Instances outside that range of p call
        ``background_runs`` itself; a block needing more than ``_EWIN`` runs is finished run by run.
        (``tests/envs/test_batched_mec_offloading.py`` checks both against ``background_runs``.)
        """
        out = np.empty((ia.size, n), dtype=np.int8)
        vec = self._bg_vec[ia]
        for m_ in np.flatnonzero(~vec).tolist():     # outside the inversion branch: the reference function
            i = int(ia[m_])
            u, self._bg_state[i, k] = background_runs(
                self._rng_bg[i], int(self._bg_state[i, k]), float(self._bg_q[i]), float(self._bg_m[i]),
                tuple(self._bg_lv[i]), n)
            out[m_] = u == self._bg_lv[i, 1]
        sel = np.flatnonzero(vec)
        if sel.size == 0:
            return out
        rows = ia[sel]
        self._exponentials(rows, _EWIN)
        w = np.arange(_EWIN)
        e = self._eb.reshape(-1)[(rows * _EBUF + self._ep[rows])[:, None] + w]
        s0 = self._bg_state[rows, k]
        st = s0[:, None] ^ (w & 1)
        cum = np.cumsum(np.ceil(-e / self._bg_log[rows[:, None], st]), axis=1)    # run ends (exact integers)
        done = cum >= n
        j = done.argmax(axis=1)                       # the run that reaches the block's end
        r_idx = np.arange(rows.size)
        ok = done[r_idx, j]
        for m_ in np.flatnonzero(~ok).tolist():      # more than _EWIN runs in the block: run by run instead
            out[sel[m_]] = self._background_block_slow(int(rows[m_]), k, n) == self._bg_lv[rows[m_], 1]
        if not ok.all():
            sel, rows, s0, st, cum, j, r_idx = (sel[ok], rows[ok], s0[ok], st[ok], cum[ok], j[ok],
                                               np.arange(int(ok.sum())))
        end = cum[r_idx, j]
        last = st[r_idx, j]
        self._bg_state[rows, k] = np.where(end > n, last, 1 - last)
        self._ep[rows] += j + 1
        # state of slot t: s0 flipped once per run end at or before t (the ends inside the block, distinct)
        flips = np.zeros((rows.size, n + 1), dtype=np.int8)
        rr, cc = np.nonzero(w[None, :] < j[:, None])
        flips.reshape(-1)[rr * (n + 1) + cum[rr, cc].astype(np.int64)] = 1
        flips[:, 0] ^= s0.astype(np.int8)
        burst = np.bitwise_xor.accumulate(flips[:, :n], axis=1)
        if sel.size == out.shape[0]:
            out[...] = burst
        else:
            out[sel] = burst
        return out

    def _background_block_slow(self, i: int, k: int, n: int) -> np.ndarray:
        """One block of instance ``i``'s server ``k``, one run per exponential (``background_runs``'s loop on the
        same exponentials), for a block with more runs than the vectorised window."""
        u = np.empty(n)
        pos = 0
        state = int(self._bg_state[i, k])
        log_p, lv = self._bg_log[i].tolist(), self._bg_lv[i].tolist()
        one = np.array([i])
        while True:
            self._exponentials(one, 1)
            e = float(self._eb[i, self._ep[i]])
            self._ep[i] += 1
            run = math.ceil(-e / log_p[state])
            u[pos:pos + run] = lv[state]
            pos += run
            if pos >= n:
                self._bg_state[i, k] = state if pos > n else 1 - state
                return u
            state = 1 - state

    def _reset_many(self, idx: list[int], seeds: Sequence[int | None]) -> None:
        """Start a new episode in every instance of ``idx`` (``MecOffloadingEnv.reset``'s draws per instance)."""
        seeds3 = []
        for i, seed in zip(idx, seeds, strict=True):
            if seed is not None or self._np_random[i] is None:
                self._np_random[i] = make_np_random(seed)[0]
            seeds3.append(episode_seeds(self._np_random[i]))
        # the three generators of each episode, as default_rng(seed) builds them (envs.batched.reseed)
        gens = reseed([g for i in idx for g in (self._rng_task[i], self._rng_bg[i], self._rng_geo[i])],
                      np.concatenate(seeds3))
        areas, shadows = [], []
        u0 = np.empty((len(idx), self.n_servers))      # each server's first state: U < stationary burst share
        for m, i in enumerate(idx):
            self._rng_task[i], self._rng_bg[i], self._rng_geo[i] = gens[3 * m], gens[3 * m + 1], gens[3 * m + 2]
            area, shadow = geometry_draws(gens[3 * m + 2], self.configs[i])
            areas.append(area)
            shadows.append(shadow)
            gens[3 * m + 1].random(out=u0[m])
        ia = np.asarray(idx, dtype=np.int64)
        self._bg_state[ia] = u0 < self._burst_stat[ia][:, None]
        self._task_slot_end[ia] = 0
        counts = self._nd_arr[ia]
        rep = np.repeat(ia, counts)
        _, pg = device_link_gain(np.concatenate(areas), np.concatenate(shadows), self._gain_dbi[rep])
        offs = np.cumsum(counts) - counts
        self._pg.reshape(-1)[rep * self._dmax + (np.arange(rep.size) - np.repeat(offs, counts))] = pg
        self._local_free[ia] = 0.0
        self._up_free[ia] = 0.0
        self._srv_free[ia] = 0.0
        self._n_done[ia] = 0
        self._delay_done[ia] = 0.0
        self._steps[ia] = 0
        self._bg_len[ia] = 0
        self._phi_last[ia] = 0.0
        self._rphi[ia, :, -1] = 0.0                   # phi before slot 0 (read as the end of slot -1)
        self._ep[ia] = _EBUF                          # no exponentials ahead of the new background generators
        self._extend_background(idx, [self._BG_BLOCK_SLOTS] * len(idx))
        self._ptr[ia] = 0
        self._nblk[ia] = 0
        self._refill_tasks(idx)

    # ------------------------------------------------------------------ batched read-outs
    def _load(self) -> None:
        """Gather every instance's pending task, derive its physics (the single env's ``draw_task_block`` and
        ``task_physics`` expressions, elementwise) and make sure its background covers the task's deadline."""
        c = np.take(self._tb.reshape(-1, _NF), self._rows * self._tcap + self._ptr, axis=0).T
        self._slot_i = slot_i = c[_SLOT].astype(np.int64)
        self._dev = c[_DEV].astype(np.int64) + self._rows_d
        self._now = slot_i * self._slot
        size = c[_SMB] * 1e6                                                            # bit
        dens = c[_DENS]
        self._dl = dl = np.ascontiguousarray(c[_DL])
        gain = self._pg.reshape(-1)[self._dev] * np.maximum(c[_FADE], 1e-12)            # |h|^2 [2]
        rate = self._bw * np.log2(1.0 + self._snr * gain)                               # bit/s [2]
        self._size = size
        self._work = work = size * dens
        self._t_loc = t_loc = work / self._f_loc
        self._e_loc = work * self._e_pc
        self._t_up = t_up = size / rate
        # the task's observation columns, computed in double and rounded once to float32 on the way out (as the
        # single env's np.array(vals, dtype=float32)); the rest is filled in by _observe
        self._obs = o = np.empty((self.num_envs, 8 + 4 * self.n_servers), dtype=np.float32)
        np.divide(size, size + 1e6, out=o[:, 0])
        np.divide(dens, dens + 1000.0, out=o[:, 1])
        np.divide(dl, dl + 1.0, out=o[:, 2])
        np.divide(t_loc, t_loc + 1.0, out=o[:, 3])
        np.divide(t_up, t_up + 1.0, out=o[:, 6])
        g = np.log10(gain)                            # np.clip(x, 0, 1) as max then min (same doubles, no NaN)
        g *= 10.0
        g += 160.0
        g /= 120.0
        np.maximum(g, 0.0, out=g)
        np.minimum(g, 1.0, out=o[:, 7])
        bh = self._bh_lat + self._bh_bit * size[:, None]
        np.divide(bh, bh + 0.01, out=o[:, 11::4])
        o[:, 10::4] = self._srv_feat32
        need = slot_i + self._ahead
        short = np.flatnonzero(self._bg_len < need)
        if short.size:
            self._extend_background(short.tolist(), need[short].tolist())

    def _observe(self) -> np.ndarray:
        """The queue and load columns of the observation ``_load`` started (a new array every call)."""
        now = self._now
        o = self._obs
        b = np.maximum(self._local_free.reshape(-1)[self._dev] - now, 0.0)
        np.divide(b, b + 1.0, out=o[:, 4])
        ub = np.maximum(self._up_free - now, 0.0)
        np.divide(ub, ub + 1.0, out=o[:, 5])
        sb = np.maximum(self._srv_free - now[:, None], 0.0)
        np.divide(sb, sb + 1.0, out=o[:, 8::4])
        st = self._rst.reshape(-1)[(self._rows_kr + (self._slot_i & self._mask))[:, None] + self._k_r]
        o[:, 9::4] = self._lv_flat[self._rows2[:, None] + st]
        return o

    def _server_finish(self, ii: np.ndarray, k: np.ndarray, start: np.ndarray, work: np.ndarray,
                       t_d: np.ndarray) -> np.ndarray:
        """Exact completion times (inf past the deadline) of ``work`` cycles started at ``start`` on server k of
        instances ``ii`` (``MecOffloadingEnv._server_finish`` as masked array operations)."""
        inv = self._inv[ii]
        mask = self._mask
        base = (ii * self.n_servers + k) * self._R
        phi = self._rphi.reshape(-1)
        st = self._rst.reshape(-1)
        cap = self._capv
        cb = (ii * self.n_servers + k) * 2
        tdi = t_d * inv
        jd = tdi.astype(np.int64)
        x = start * inv
        j = x.astype(np.int64)
        pj = base + (j & mask)
        target = phi[base + ((j - 1) & mask)] + cap[cb + st[pj]] * (x - j) + work
        pd = base + (jd & mask)
        over = target > phi[base + ((jd - 1) & mask)] + cap[cb + st[pd]] * (tdi - jd)
        # bisect_right(phi, target, j, jd + 1) - 1: the last slot m in [j, jd] with phi[m] <= target
        # (phi[j] <= target always), found by descending power-of-two steps
        span = jd - j
        width = int(span.max()) if span.size else 0
        m = j.copy()
        step = 1 << max(width.bit_length() - 1, 0)
        while step and width:
            cand = np.minimum(m + step, jd)           # clamped to jd: phi[jd] <= target makes jd the answer
            m = np.where(phi[base + ((cand - 1) & mask)] <= target, cand, m)
            step >>= 1
        fin = (m + (target - phi[base + ((m - 1) & mask)]) / cap[cb + st[base + (m & mask)]]) * self._slot[ii]
        fin[over] = np.inf
        return fin

    # ------------------------------------------------------------------ VectorEnv API
    def _reset_observation(self) -> np.ndarray:
        self._load()
        return self._observe()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        b, kk = self.num_envs, self.n_servers
        a = step_actions(actions, b, kk + 1, self._has_reset)
        now = self._now
        dev = self._dev                                            # flat index into (B, n_devices_max)
        size, work, t_loc, e_loc, t_up, dl = self._size, self._work, self._t_loc, self._e_loc, self._t_up, self._dl
        t_d = now + dl
        loc = a == 0

        # ---- local execution on the device's FIFO CPU ----
        local_free = self._local_free.reshape(-1)
        lf = local_free[dev]
        st_l = np.maximum(lf, now)
        fin_l = st_l + t_loc
        l_late = st_l >= t_d
        l_ok = fin_l <= t_d
        l_ok &= ~l_late
        e_l = np.where(l_ok, e_loc, np.where(l_late, 0.0, e_loc * (t_d - st_l) / t_loc))
        free_l = np.where(l_ok, fin_l, np.where(l_late, st_l, t_d))

        # ---- offload: FIFO uplink, backhaul, FIFO server with time-varying capacity ----
        kf = self._rows_k + np.maximum(a - 1, 0)                   # flat index into (B, K)
        s = np.maximum(self._up_free, now)
        srv_free = self._srv_free.reshape(-1)
        srv = srv_free[kf]
        o_late = s >= t_d
        fin_tx = s + t_up
        o_cut = fin_tx > t_d                       # (an upload that starts late is late: o_late decides first)
        arrive = fin_tx + self._bh_lat.reshape(-1)[kf] + self._bh_bit.reshape(-1)[kf] * size
        st_s = np.maximum(srv, arrive)
        need = st_s < t_d
        need &= ~loc
        need &= ~o_late
        need &= ~o_cut
        fin_s = np.full(b, np.inf)
        ii = np.flatnonzero(need)
        if ii.size:
            fin_s[ii] = self._server_finish(ii, kf[ii] - self._rows_k[ii], st_s[ii], work[ii], t_d[ii])
        o_ok = fin_s != np.inf
        e_o = np.where(o_late, 0.0, np.where(o_cut, self._p_tx * (t_d - s), self._p_tx * t_up))
        free_up = np.where(o_late, s, np.where(o_cut, t_d, fin_tx))
        free_srv = np.where(need, np.where(o_ok, fin_s, t_d), srv)

        # ---- commit to the queues ----
        local_free[dev] = np.where(loc, free_l, lf)
        self._up_free = np.where(loc, self._up_free, free_up)
        srv_free[kf] = np.where(loc, srv, free_srv)

        # ---- cost and KPIs ----
        ok = np.where(loc, l_ok, o_ok)
        energy = np.where(loc, e_l, e_o)
        fin = np.where(loc, fin_l, fin_s)
        delay = np.where(ok, fin - now, 0.0)          # a dropped task has no delay (inf - now is inf)
        e_term = self._we * energy / e_loc
        c_ok = self._w * delay / t_loc + e_term
        np.minimum(c_ok, self._pen, out=c_ok)         # c if c < pen else pen (finite values)
        cost = np.where(ok, c_ok, self._pen + e_term)
        self._n_done += ok                             # (dropped = steps - done)
        self._delay_done += delay
        self._steps += 1
        self._ptr += 1
        trunc = self._steps >= self._ep_tasks
        reward = -cost

        # ---- next task (block draws per instance), autoresets ----
        ar = self._autoreset
        rem = self._nblk - self._ptr
        out = rem == 0
        if out.any() and (out & ~ar).any():
            # every instance near the end of its buffer gets its next block now (one batched draw instead of
            # one per step), unless its unread tasks already cover the loads left in its episode (then its
            # next block would be drawn only to be thrown away at the reset)
            near = (rem <= _AHEAD) & (rem <= self._ep_tasks - self._steps) & ~ar
            self._refill_tasks(np.flatnonzero(near).tolist())
        done = ok.astype(np.float64)
        info = {"delay": delay, "completed": done, "energy": energy, "dropped": 1.0 - done, "cost": cost,
                "offloaded": (~loc).astype(np.float64)}
        if ar.all():                                   # as SyncVectorEnv: only reset infos (empty)
            self._reset_many(list(range(b)), [None] * b)
            reward[:] = 0.0
            trunc[:] = False
            info = {}
        elif ar.any():
            idx = np.flatnonzero(ar)
            self._reset_many(idx.tolist(), [None] * idx.size)
            reward[idx] = 0.0
            trunc[idx] = False
            live = ~ar
            for key in _INFO_KEYS:
                info[key][idx] = 0.0
                info["_" + key] = live
        else:
            live = np.ones(b, dtype=bool)
            for key in _INFO_KEYS:
                info["_" + key] = live
        self._autoreset = trunc.copy()
        self._load()
        return self._observe(), reward, np.zeros(b, dtype=bool), trunc, info

    # ------------------------------------------------------------------ read-outs
    def episode_kpis(self) -> dict[str, np.ndarray]:
        """Per instance, this episode so far: mean delay of completed tasks, drop ratio, #completed, #dropped."""
        n = self._steps
        n_dropped = n - self._n_done
        nd = np.maximum(self._n_done, 1)
        return {"delay": np.where(self._n_done > 0, self._delay_done / nd, 0.0),
                "dropped": np.where(n > 0, n_dropped / np.maximum(n, 1), 0.0),
                "completed": self._n_done.astype(np.float64), "n_dropped": n_dropped.astype(np.float64)}


def make_vector_env(num_envs: int | None = None, configs: Sequence[MecOffloadingConfig] | None = None,
                    config: MecOffloadingConfig | None = None, **kwargs: Any) -> MecOffloadingVectorEnv:
    """``vector_entry_point`` of ``frl/MecOffloading-v0`` (``gymnasium.make_vec`` passes ``num_envs``)."""
    return MecOffloadingVectorEnv(num_envs=num_envs, configs=configs, config=config, **kwargs)
