"""Online job scheduling on a cluster of heterogeneous machines, scored by job slowdown and deadline misses.

## Description

One federated client is one compute cluster (an edge or cloud site) with ``M`` machines of different speeds.
Jobs arrive over time into one central waiting queue; at every decision the agent sees the first ``window``
waiting jobs and either dispatches one of them to one of the machines or defers (lets one time slot pass).
This is the DeepRM formulation [1] (a window of visible jobs, a "do nothing" action that moves time forward,
several jobs may be scheduled in one time slot, reward ``-sum 1/T_j`` over the jobs in the system per unit
time), extended with heterogeneous machine speeds and job deadlines for the setting of the survey's
"federated PPO for task scheduling" item [2] (whose simulator is not reproduced). Clients differ in job mix,
arrival rate, burstiness, deadline tightness and machine speeds, so a scheduler trained at one site is not
right for another, which is what federation has to overcome.

**Time.** Slotted: decisions happen at integer times ``t``; a job runs for a continuous time ``w / s_m`` and
finishes inside a slot, but the next job on that machine can start no earlier than its finish, and a job
waiting in the central queue can only be started at a slot boundary (as in DeepRM, where allocation happens at
time-step boundaries) [1]. Dispatching does not advance time (several jobs can be dispatched in one slot);
deferring advances it by one slot; when the queue is empty the env advances to the next arrival itself (no
decision is needed). After ``episode_slots`` slots no more jobs arrive; the episode *terminates* once every
arrived job has been dispatched (the remaining machine work is then deterministic and accounted exactly in the
last step). Every episode is finite (each decision dispatches a job, or defers while some machine is busy,
see Action Space); the decision cap ``max_steps`` is a safety net that truncates over-long ones.

**Machines.** Machine ``m`` processes ``s_m`` work units per slot (``machine_speeds``). A dispatched job joins
that machine's FIFO queue and runs non-preemptively: ``start = max(free_m, t)``, ``finish = start + w / s_m``
(Lindley's recursion [6]). So dispatching to a busy machine is allowed: it commits the job behind the
machine's backlog, while deferring keeps it in the central queue to be placed later.

**Jobs.** Arrivals per slot are Poisson with a two-state Markov-modulated rate (MMPP, [5]): calm rate
``lambda_c`` and burst rate ``burst_factor * lambda_c``; a calm slot starts a burst with probability
``burst_start_prob``, a burst lasts ``burst_mean_slots`` slots on average (geometric). ``lambda_c`` is set
so the *mean* offered load is ``load``: ``lambda_mean * E[w] = load * sum_m s_m``. Sizes (work units = slots
on a speed-1 machine) follow DeepRM's two classes [1]: a fraction ``1 - long_fraction`` of short jobs with
``w ~ U[short_min, short_max]`` and long jobs whose sizes are heavy tailed, a bounded Pareto on
``[long_min, long_max]`` with shape ``pareto_alpha`` (the job-size model of Harchol-Balter et al. [3]).
A job's ideal duration is its run time on the cluster's fastest machine, ``T_j = w_j / max_m s_m``, and its
deadline is ``d_j = a_j + slack_j * T_j`` with ``slack_j ~ U[slack_min, slack_max]`` (a deadline relative to
the job's own length, as in deadline-aware cluster scheduling [4]).

**Slowdown** of a completed job [1]: ``S_j = (C_j - a_j) / T_j`` with completion time ``C_j``. Since a job
never runs faster than on the fastest machine and cannot start before it arrives, ``S_j >= 1`` always.
A job *misses its deadline* if it is not finished by ``d_j``.

## Action Space

``Discrete(window * M + 1)``: action ``a < window * M`` dispatches the waiting job in window slot
``a // M`` to machine ``a % M``; action ``window * M`` defers
(advance one slot). The window holds the first ``window`` waiting jobs in arrival order (so no job waits
behind more than ``window - 1`` later arrivals for a place in it), *listed by size*, shortest in slot 0: the
slots are then the same kind of choice in every state, and a constant action is a sensible rule (slot 0 to the
fastest machine is shortest-job-first within the window) instead of one that starves jobs. An action is
*invalid* if it names an empty window slot, or defers while every machine is idle (the cluster may not idle
entirely while jobs wait: a work-conserving constraint, without which a policy that keeps deferring stalls
until the decision cap once arrivals stop). It is executed as the nearest valid action (the same machine with
the last occupied slot, i.e. the largest job of the window; for a defer, slot 0 to the fastest machine) and
costs an extra ``invalid_penalty``. ``info["action_mask"]`` (bool, one entry per action) marks the valid
actions for the next observation (in ``reset``'s info too) and ``info["invalid"]`` flags the step. Anything
but an integer in range is refused (``envs.registry.discrete_action``).

## Observation Space

``Box(0, 1, (window * (4 + M) + 2 * M + 5,), float32)``; unbounded quantities are squashed with ``x / (x + s)``
for a fixed scale ``s`` (the same for every client, so a feature means the same thing across a federation):

| index                          | feature                                                        | scale ``s``  |
|--------------------------------|----------------------------------------------------------------|--------------|
| ``(4+M) i``                    | window slot ``i`` holds a job (0/1)                            |              |
| ``(4+M) i + 1``                | its size ``w``                                                 | 10 units     |
| ``(4+M) i + 2``                | its waiting time ``t - a``                                     | 10 slots     |
| ``(4+M) i + 3``                | time to its deadline ``d - t`` (signed: ``0.5 + 0.5 x/(abs(x)+s)``) | 10 slots |
| ``(4+M) i + 4 + m``            | its slowdown if dispatched to machine ``m`` now (minus 1)      | 5            |
| ``W + 2m``                     | machine ``m`` backlog ``max(free_m - t, 0)``                   | 10 slots     |
| ``W + 2m + 1``                 | machine ``m`` speed ``s_m``                                    | 1 unit/slot  |
| ``W + 2M``                     | waiting jobs beyond the window                                 | 5 jobs       |
| ``W + 2M + 1``                 | total waiting work                                             | 50 units     |
| ``W + 2M + 2``                 | jobs that arrived at the current slot                          | 2 jobs       |
| ``W + 2M + 3``                 | elapsed fraction of the arrival period ``min(t / episode_slots, 1)`` |        |
| ``W + 2M + 4``                 | arrivals are over (0/1)                                        |              |

(``W = window * (4 + M)``; empty window slots are all zeros.)

## Rewards

DeepRM's slowdown reward [1], charged as early as it is known, plus a deadline-miss penalty. DeepRM charges
``-sum_j 1/T_j`` over the jobs in the system per unit time, whose episode sum is ``-sum_j S_j``. Here a job's
time in the system is split at its dispatch: while it waits in the central queue it costs ``1/T_j`` per slot
(charged when time advances), and at dispatch its remaining time ``C_j - t`` is already fixed (FIFO,
non-preemptive, known speeds), so ``(C_j - t) / T_j`` is charged at once. The episode sum is the same,
``-sum_j S_j`` over the jobs that terminate, but a machine choice is credited in its own step, which makes the
credit assignment far easier. A late job costs ``miss_penalty`` once: at dispatch if ``C_j > d_j`` is then
certain, or when its deadline passes while it still waits. An invalid action costs ``invalid_penalty``.
So ``return = -(sum_j S_j + miss_penalty * #late + invalid_penalty * #invalid)`` for a terminated episode:
maximising it minimises the mean slowdown (the number of jobs is fixed by the seed) and the misses.

``info`` carries per-step KPIs: ``completed`` (jobs finished during the step), ``slowdown`` (their mean
slowdown, 0 if none), ``deadline_miss`` (the fraction of them that finished late), ``elapsed`` (slots
advanced), ``utilisation`` (work done / capacity over the advanced time, 0 if none), ``invalid`` and
``action_mask``. ``ENTRY.kpi_weight`` weights ``slowdown`` and ``deadline_miss`` by ``completed`` and
``utilisation`` by ``elapsed``, so evaluated KPIs are the exact per-job and per-time means.
``episode_kpis()`` returns the same for the episode so far.

## Starting State

All machines idle at ``t = 0``; the whole arrival stream of the episode (MMPP states, counts, sizes, slacks) is
drawn at reset from the env's seeded generator, so it does not depend on the policy. The first observation
is taken at the first slot with a waiting job.

## Episode End

Terminated when the arrival period is over and every job has been dispatched; truncated after ``max_steps``
decisions. ``ENTRY.max_episode_steps`` is ``None`` (the env truncates itself).

## Arguments

``TaskSchedulingEnv(config: TaskSchedulingConfig | None = None, render_mode: str | None = None,
**overrides)``; overrides go through ``envs.knobs.apply_overrides``. Knobs ("design" marks choices of this env):

{knob_table}

The default cluster (speeds 0.5, 1, 1, 2; ``load`` 0.85; 20 % long jobs with a bounded-Pareto tail) is in the
contended regime where the order of service and the machine choice both matter: shortest-job-first cuts the
mean slowdown of FIFO but makes long jobs late, and immediate least-loaded dispatch sends long jobs to the slow
machine. For federation all clients share ``window`` and the number of machines (they fix the spaces);
``make_client_configs`` varies speeds, load, job mix, burstiness and deadline slack.

## Bound

``slowdown_lower_bound()``: every job has slowdown >= 1 (it cannot finish before ``a_j + T_j``), so the mean
slowdown of any policy on any episode is >= 1, and 1 is attained only if no job ever waits or runs on a slower
machine. This bound is true but loose; ``exhaustive_optimum`` computes the exact optimal return of tiny
instances by exhaustive search over every action sequence that serves all jobs within the decision cap
(memoised on the state): the true optimum that no such policy can beat on that instance.

## References

1. H. Mao, M. Alizadeh, I. Menache, S. Kandula, "Resource management with deep reinforcement learning",
   ACM HotNets 2016 (DeepRM: window of jobs, "void" action advancing time, reward -sum_j 1/T_j per time step
   whose episode sum is the negated total slowdown, 80 % short jobs of 1-3 t and 20 % long of 10-15 t).
2. Survey item "federated PPO for task scheduling" (Tai et al.): clients train PPO schedulers on their own job
   streams and FedAvg merges them; this env is a from-scratch model in that spirit, not their simulator.
3. M. Harchol-Balter, M. E. Crovella, C. D. Murta, "On choosing a task assignment policy for a distributed
   server system", J. Parallel Distrib. Comput. 59(2), 1999 (bounded-Pareto job sizes, least-work-left
   dispatch, size-based assignment).
4. H. Mao, M. Schwarzkopf, S. B. Venkatakrishnan, Z. Meng, M. Alizadeh, "Learning scheduling algorithms for
   data processing clusters", ACM SIGCOMM 2019 (Decima: heterogeneous job mixes, continuous arrivals);
   deadlines as a multiple of a job's minimum run time: design choice of this env.
5. W. Fischer, K. Meier-Hellstern, "The Markov-modulated Poisson process (MMPP) cookbook", Performance
   Evaluation 18(2), 1993.
6. D. V. Lindley, "The theory of queues with a single server", Proc. Cambridge Philos. Soc. 48, 1952.

## Version History

* v0: initial version (issue 15).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.knobs import KnobConfig, check_client_args, clip_knob, document_knobs, knob, knob_spec, resolve_config
from envs.registry import BaselineFactory, EnvConfigError, EnvEntry, Policy, check_render_mode, discrete_action

__all__ = [
    "BASELINES",
    "ENTRY",
    "TaskSchedulingConfig",
    "TaskSchedulingEnv",
    "exhaustive_optimum",
    "make_client_configs",
]

_INF = math.inf
_MAX_SEARCH_DEPTH = 200               # exhaustive_optimum recurses once per decision
_ORDERED = (("short_min", "short_max"), ("long_min", "long_max"), ("slack_min", "slack_max"))


@dataclass(frozen=True)
class TaskSchedulingConfig(KnobConfig):
    """One cluster and its job stream; default, unit, legal range and source per knob (``knob_table``)."""

    machine_speeds: tuple[float, ...] = knob((0.5, 1.0, 1.0, 2.0), 0.05, 20.0, length=(1, 16),
                                             unit="work units/slot",
                                             source="heterogeneous machines (design; DeepRM's are identical [1])")
    window: int = knob(5, 1, 20, integer=True, unit="jobs", source="visible job slots; DeepRM uses 10 [1]")
    episode_slots: int = knob(200, 5, 100_000, integer=True, unit="slots",
                              source="arrival period of an episode (design)")
    max_steps: int = knob(3000, 10, 1_000_000, integer=True, unit="decisions",
                          source="decision cap (truncation; design)")
    load: float = knob(0.85, 0.05, 1.5, unit="fraction of capacity",
                       source="offered load; DeepRM sweeps 10-190 % [1]")
    long_fraction: float = knob(0.2, 0.0, 1.0, unit="fraction", source="20 % long jobs [1]")
    short_min: float = knob(1.0, 0.05, 100.0, unit="work units", source="short jobs 1-3 t [1]")
    short_max: float = knob(3.0, 0.05, 100.0, unit="work units", source="short jobs 1-3 t [1]")
    long_min: float = knob(10.0, 0.05, 1000.0, unit="work units", source="long jobs from 10 t [1]")
    long_max: float = knob(60.0, 0.05, 1000.0, unit="work units",
                           source="heavy tail up to 60 t (design; bounded Pareto [3])")
    pareto_alpha: float = knob(1.5, 0.2, 5.0, unit="-", source="bounded-Pareto shape ~1-2 [3]")
    slack_min: float = knob(2.0, 1.0, 100.0, unit="x ideal duration", source="deadline slack (design [4])")
    slack_max: float = knob(6.0, 1.0, 100.0, unit="x ideal duration", source="deadline slack (design [4])")
    burst_factor: float = knob(3.0, 1.0, 20.0, unit="x calm rate", source="MMPP burst rate ratio [5] (value: design)")
    burst_start_prob: float = knob(0.05, 0.0, 1.0, unit="1/slot", source="calm -> burst probability [5] (design)")
    burst_mean_slots: float = knob(10.0, 1.0, 10_000.0, unit="slots", source="mean burst length [5] (design)")
    miss_penalty: float = knob(2.0, 0.0, 100.0, unit="slowdown units/job",
                               source="deadline-miss penalty (design)")
    invalid_penalty: float = knob(0.5, 0.0, 100.0, unit="slowdown units",
                                  source="extra cost of an invalid action (design)")

    def check_constraints(self) -> None:
        for lo_name, hi_name in _ORDERED:
            if getattr(self, lo_name) > getattr(self, hi_name):
                raise EnvConfigError(
                    f"{lo_name}={getattr(self, lo_name)!r} exceeds {hi_name}={getattr(self, hi_name)!r}; "
                    f"allowed: {lo_name} <= {hi_name}")


__doc__ = document_knobs(__doc__, TaskSchedulingConfig)


def mean_job_size(cfg: TaskSchedulingConfig) -> float:
    """E[w] of the two-class size mix: uniform short jobs, bounded-Pareto long jobs [3]."""
    lo, hi, a = cfg.long_min, cfg.long_max, cfg.pareto_alpha
    if hi <= lo:
        long_mean = lo
    elif abs(a - 1.0) < 1e-9:
        long_mean = lo * hi * math.log(hi / lo) / (hi - lo)
    else:
        long_mean = a * lo ** a * (lo ** (1 - a) - hi ** (1 - a)) / ((a - 1) * (1 - (lo / hi) ** a))
    short_mean = 0.5 * (cfg.short_min + cfg.short_max)
    return (1 - cfg.long_fraction) * short_mean + cfg.long_fraction * long_mean


def draw_jobs(rng: np.random.Generator, cfg: TaskSchedulingConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode's arrival stream: (arrival slot, size w, slack) per job, in arrival order.

    Per-slot MMPP state (two-state chain [5]), Poisson counts, then the sizes (short uniform / long bounded
    Pareto by inverse CDF [3]) and slacks of all jobs in vectorised draws.
    """
    n = cfg.episode_slots
    speeds = np.asarray(cfg.machine_speeds, dtype=np.float64)
    lam = cfg.load * speeds.sum() / mean_job_size(cfg)
    q, m = cfg.burst_start_prob, 1.0 / cfg.burst_mean_slots
    pi_b = q / (q + m) if q + m > 0 else 0.0
    lam_c = lam / (1.0 - pi_b + cfg.burst_factor * pi_b)
    u = rng.random(n + 1)
    burst = np.empty(n, dtype=bool)
    state = bool(u[n] < pi_b)                       # stationary start
    for i in range(n):                              # n <= episode_slots: bounded
        burst[i] = state
        state = (u[i] >= m) if state else (u[i] < q)
    counts = rng.poisson(np.where(burst, cfg.burst_factor * lam_c, lam_c))
    slot = np.repeat(np.arange(n), counts)
    k = slot.size
    v = rng.random(3 * k)
    short = cfg.short_min + (cfg.short_max - cfg.short_min) * v[:k]
    lo, hi, a = cfg.long_min, cfg.long_max, cfg.pareto_alpha
    long_ = lo / (1.0 - v[k:2 * k] * (1.0 - (lo / hi) ** a)) ** (1.0 / a)   # bounded Pareto inverse CDF
    size = np.where(rng.random(k) < cfg.long_fraction, np.minimum(long_, hi), short)
    slack = cfg.slack_min + (cfg.slack_max - cfg.slack_min) * v[2 * k:]
    return slot.astype(np.float64), size, slack


def make_client_configs(n_clients: int, heterogeneity: float, seed: int,
                        base: TaskSchedulingConfig | None = None) -> list[TaskSchedulingConfig]:
    """``n_clients`` cluster configs around ``base`` with spread proportional to ``heterogeneity`` ``h``.

    Each machine speed is scaled by ``2**(h U(-1, 1))`` independently (the number of machines stays: it fixes
    the spaces); ``load`` is shifted by ``0.25 h U(-1, 1)``, ``long_fraction`` by ``0.15 h U(-1, 1)``; the
    Pareto shape is scaled by ``2**(0.5 h U)``, the deadline slacks by ``2**(h U)`` and the burst excess
    ``burst_factor - 1`` by ``2**(h U)``. Every value is clipped to its legal range; ``h = 0`` returns copies of
    ``base``. Randomness only from ``np.random.default_rng(seed)``.
    """
    check_client_args(n_clients, heterogeneity)
    base = base if base is not None else TaskSchedulingConfig()
    rng = np.random.default_rng(seed)
    h = float(heterogeneity)
    n_m = len(base.machine_speeds)
    spec = knob_spec(TaskSchedulingConfig, "machine_speeds")
    speed_mult = np.exp2(h * rng.uniform(-1.0, 1.0, size=(n_clients, n_m)))
    d = h * rng.uniform(-1.0, 1.0, size=(n_clients, 5))

    def clip(name: str, value: float, low: float | None = None, high: float | None = None) -> float:
        return clip_knob(TaskSchedulingConfig, name, value, low, high)

    out = []
    for i in range(n_clients):
        slack = 2.0 ** d[i, 3]
        smin = clip("slack_min", base.slack_min * slack)
        out.append(dataclasses.replace(
            base,
            machine_speeds=tuple(float(v) for v in np.clip(np.asarray(base.machine_speeds) * speed_mult[i],
                                                           spec.low, spec.high)),
            load=clip("load", base.load + 0.25 * d[i, 0]),
            long_fraction=clip("long_fraction", base.long_fraction + 0.15 * d[i, 1]),
            pareto_alpha=clip("pareto_alpha", base.pareto_alpha * 2.0 ** (0.5 * d[i, 2])),
            slack_min=smin,
            slack_max=clip("slack_max", base.slack_max * slack, low=smin),
            burst_factor=clip("burst_factor", 1.0 + (base.burst_factor - 1.0) * 2.0 ** d[i, 4]),
        ))
    return out


class TaskSchedulingEnv(gym.Env[np.ndarray, np.int64]):
    __doc__ = __doc__

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: TaskSchedulingConfig | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        cfg = resolve_config(TaskSchedulingConfig, config, overrides)
        check_render_mode(render_mode, self.metadata)
        self.config = cfg
        self.render_mode = render_mode
        self.speeds = np.asarray(cfg.machine_speeds, dtype=np.float64)
        self.n_machines = m = self.speeds.size
        self.window = k = cfg.window
        self.defer_action = k * m
        self.action_space = spaces.Discrete(k * m + 1)
        self.n_obs = k * (4 + m) + 2 * m + 5
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.n_obs,), dtype=np.float32)
        self._capacity = float(self.speeds.sum())
        self._s_max = float(self.speeds.max())
        self._fastest = int(np.argmax(self.speeds))
        self._speed_feat = self.speeds / (self.speeds + 1.0)
        self._has_reset = False

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        slot, size, slack = draw_jobs(self.np_random, self.config)
        self.arrival = slot
        self.size = size
        self.ideal = size / self._s_max                          # T_j: run time on the fastest machine
        self.deadline = slot + slack * self.ideal
        self.n_jobs = n = slot.size
        self.completion = np.full(n, _INF)                       # inf until dispatched
        self.machine_of = np.full(n, -1, dtype=np.int64)
        self._finished = np.zeros(n, dtype=bool)
        self._lo = 0                                             # jobs before _lo are finished
        self._n_arrived = 0
        self.queue: list[int] = []                               # waiting jobs, arrival order
        self.free_at = np.zeros(self.n_machines)
        self._busy_from = np.zeros(self.n_machines)
        self.t = 0.0
        self._steps = 0
        self._arrived_now = 0
        self._ep = dict.fromkeys(("completed", "slowdown_sum", "late", "work_done", "elapsed", "invalid"), 0.0)
        self._acc = self._new_acc()
        self._has_reset = True
        self._admit()
        self._skip_idle()
        self._acc = self._new_acc()               # time before the first decision is not the agent's doing
        return self._observation(), {"action_mask": self.action_mask()}

    @staticmethod
    def _new_acc() -> dict[str, float]:
        return dict.fromkeys(("cost", "misses", "completed", "slowdown_sum", "late", "work", "elapsed"), 0.0)

    def _admit(self) -> None:
        """Append the jobs arriving at the current slot to the waiting queue."""
        i = self._n_arrived
        j = int(np.searchsorted(self.arrival, self.t, side="right"))
        self.queue.extend(range(i, j))
        self._arrived_now = j - i
        self._n_arrived = j

    @property
    def arrivals_over(self) -> bool:
        return self._n_arrived >= self.n_jobs

    def _advance(self, t1: float) -> None:
        """Let time run from ``self.t`` to ``t1`` (no decisions in between): waiting cost and deadlines of the
        queued jobs, completions and busy time of the machines; then admit the jobs arriving at ``t1``."""
        t0 = self.t
        if t1 > t0:
            acc = self._acc
            if self.queue:
                q = np.asarray(self.queue, dtype=np.int64)
                acc["cost"] += (t1 - t0) * float(np.sum(1.0 / self.ideal[q]))
                dq = self.deadline[q]
                acc["misses"] += int(np.count_nonzero((dq > t0) & (dq <= t1)))   # late while still waiting
            lo, hi = self._lo, self._n_arrived
            c = self.completion[lo:hi]
            done = ~self._finished[lo:hi] & (c <= t1)
            if done.any():
                cd = c[done]
                acc["completed"] += int(cd.size)
                acc["slowdown_sum"] += float(np.sum((cd - self.arrival[lo:hi][done]) / self.ideal[lo:hi][done]))
                acc["late"] += int(np.count_nonzero(cd > self.deadline[lo:hi][done]))
                self._finished[lo:hi] |= done
                while self._lo < hi and self._finished[self._lo]:
                    self._lo += 1
            busy = np.clip(np.minimum(self.free_at, t1) - np.maximum(self._busy_from, t0), 0.0, None)
            acc["work"] += float(busy @ self.speeds)
            acc["elapsed"] += t1 - t0
            self.t = t1
        self._admit()

    def _skip_idle(self) -> bool:
        """With an empty queue, advance to the next arrival; at the end, run out the machines. True if over."""
        if self.queue:
            return False
        if not self.arrivals_over:
            self._advance(float(self.arrival[self._n_arrived]))
            return False
        self._advance(max(float(self.free_at.max()), self.t))
        return True

    def _dispatch(self, job: int, m: int) -> None:
        self.queue.remove(job)
        now = self.t
        if self.free_at[m] <= now:
            self._busy_from[m] = now
            start = now
        else:
            start = self.free_at[m]
        c = start + self.size[job] / self.speeds[m]
        self.free_at[m] = c
        self.completion[job] = c
        self.machine_of[job] = m
        # the rest of the job's time in the system is now fixed: charge it (and a miss not yet charged) now
        self._acc["cost"] += (c - now) / self.ideal[job]
        self._acc["misses"] += int(c > self.deadline[job] > now)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = discrete_action(action, self.defer_action + 1)
        self._acc = self._new_acc()
        idx = self.window_jobs()                     # never empty at a decision (_skip_idle)
        if a < self.defer_action:
            j, m = divmod(a, self.n_machines)
            invalid = j >= idx.size
            self._dispatch(int(idx[min(j, idx.size - 1)]), m)
        elif (self.free_at <= self.t).all():         # defer with every machine idle: not allowed
            invalid = True
            self._dispatch(int(idx[0]), self._fastest)
        else:
            invalid = False
            self._advance(self.t + 1.0)
        terminated = self._skip_idle()
        self._steps += 1
        cfg = self.config
        acc = self._acc
        reward = -(acc["cost"] + cfg.miss_penalty * acc["misses"] + (cfg.invalid_penalty if invalid else 0.0))
        n_done = acc["completed"]
        ep = self._ep
        ep["completed"] += n_done
        ep["slowdown_sum"] += acc["slowdown_sum"]
        ep["late"] += acc["late"]
        ep["work_done"] += acc["work"]
        ep["elapsed"] += acc["elapsed"]
        ep["invalid"] += invalid
        info = {
            "completed": n_done,
            "slowdown": acc["slowdown_sum"] / n_done if n_done else 0.0,
            "deadline_miss": acc["late"] / n_done if n_done else 0.0,
            "elapsed": acc["elapsed"],
            "utilisation": acc["work"] / (self._capacity * acc["elapsed"]) if acc["elapsed"] > 0 else 0.0,
            "invalid": 1.0 if invalid else 0.0,
            "action_mask": self.action_mask(),
        }
        truncated = not terminated and self._steps >= cfg.max_steps
        return self._observation(), float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ views used by heuristics and tests
    def action_mask(self) -> np.ndarray:
        """Valid actions now: dispatches of occupied window slots (to any machine), and defer unless every
        machine is idle."""
        mask = np.zeros(self.defer_action + 1, dtype=bool)
        mask[:min(len(self.queue), self.window) * self.n_machines] = True
        mask[-1] = bool((self.free_at > self.t).any())
        return mask

    def window_jobs(self) -> np.ndarray:
        """Job ids in the window: the first ``window`` waiting jobs (arrival order), listed by size (ascending;
        ties by arrival). Window slot ``i`` of the actions and observation is entry ``i``."""
        idx = np.asarray(self.queue[:self.window], dtype=np.int64)
        return idx[np.lexsort((idx, self.size[idx]))]

    def backlog(self) -> np.ndarray:
        """Time (slots) until each machine has finished its committed work."""
        return np.maximum(self.free_at - self.t, 0.0)

    def _observation(self) -> np.ndarray:
        k, m = self.window, self.n_machines
        obs = np.zeros(self.n_obs, dtype=np.float64)
        now = self.t
        back = self.backlog()
        idx = self.window_jobs()
        n = idx.size
        if n:
            w = self.size[idx]
            waited = now - self.arrival[idx]
            to_dl = self.deadline[idx] - now
            # slowdown if dispatched to machine m now, minus 1 (>= 0)
            sd = (waited[:, None] + back[None, :] + w[:, None] / self.speeds[None, :]) / self.ideal[idx][:, None]
            sd = np.maximum(sd - 1.0, 0.0)
            rows = np.zeros((k, 4 + m))
            rows[:n, 0] = 1.0
            rows[:n, 1] = w / (w + 10.0)
            rows[:n, 2] = waited / (waited + 10.0)
            rows[:n, 3] = 0.5 + 0.5 * to_dl / (np.abs(to_dl) + 10.0)
            rows[:n, 4:] = sd / (sd + 5.0)
            obs[:k * (4 + m)] = rows.ravel()
        base = k * (4 + m)
        obs[base:base + 2 * m:2] = back / (back + 10.0)
        obs[base + 1:base + 2 * m:2] = self._speed_feat
        extra = max(len(self.queue) - k, 0)
        work = float(self.size[self.queue].sum()) if self.queue else 0.0
        g = base + 2 * m
        obs[g] = extra / (extra + 5.0)
        obs[g + 1] = work / (work + 50.0)
        obs[g + 2] = self._arrived_now / (self._arrived_now + 2.0)
        obs[g + 3] = min(now / self.config.episode_slots, 1.0)
        obs[g + 4] = 1.0 if self.arrivals_over else 0.0
        return obs.astype(np.float32)

    def episode_kpis(self) -> dict[str, float]:
        """This episode so far: mean slowdown and late fraction of completed jobs, utilisation, counts."""
        ep = self._ep
        n = ep["completed"]
        return {"slowdown": ep["slowdown_sum"] / n if n else 0.0, "deadline_miss": ep["late"] / n if n else 0.0,
                "utilisation": ep["work_done"] / (self._capacity * ep["elapsed"]) if ep["elapsed"] else 0.0,
                "completed": n, "work_done": ep["work_done"], "invalid": ep["invalid"]}

    def slowdown_lower_bound(self) -> float:
        """A true lower bound on the mean slowdown of any policy on this episode: 1 (see Bound)."""
        return 1.0

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if not self._has_reset:
            return "TaskScheduling (not reset)"
        back = " ".join(f"{b:.1f}" for b in self.backlog())
        win = " ".join(f"{self.size[j]:.1f}" for j in self.window_jobs())
        return f"t={self.t:.0f} step={self._steps} waiting={len(self.queue)} window=[{win}] backlog=[{back}]"


# ---------------------------------------------------------------------- exhaustive optimum of tiny instances
def exhaustive_optimum(config: TaskSchedulingConfig, seed: int, max_states: int = 200_000) -> float:
    """The maximal return over *all* action sequences that finish the episode ``reset(seed=seed)`` within
    ``config.max_steps`` decisions (a tiny instance), i.e. the exact optimum of its scheduling problem.

    Exhaustive depth-first search over every valid action (an invalid action is dominated: it is a valid
    dispatch plus a penalty), memoised on the state (decision count, time, waiting jobs, arrivals, machine free
    times; the rewards of dispatched jobs are already charged, so nothing else matters for the future).
    Sequences cut by the decision cap are excluded (a truncated episode leaves jobs unserved and uncharged).
    So no policy that serves every job within the cap returns more on that episode: an upper bound on the
    return, hence (same jobs, same penalties) a lower bound on ``sum_j S_j + penalties``. ``ValueError`` if
    the search exceeds ``max_states`` states or no sequence finishes within the cap.
    """
    if config.max_steps > _MAX_SEARCH_DEPTH:
        raise ValueError(f"exhaustive_optimum: max_steps={config.max_steps} is the search depth; allowed: "
                         f"<= {_MAX_SEARCH_DEPTH} (a tiny instance)")
    env = TaskSchedulingEnv(config)
    env.reset(seed=seed)
    memo: dict[tuple, float] = {}
    visited = [0]

    def best(e: TaskSchedulingEnv) -> float:
        key = (e._steps, e.t, tuple(e.queue), e._n_arrived, tuple(np.round(e.free_at, 9)))
        if key in memo:
            return memo[key]
        visited[0] += 1
        if visited[0] > max_states:
            raise ValueError(f"exhaustive_optimum: more than max_states={max_states} states; allowed: a tiny "
                             "instance (few jobs, machines and max_steps)")
        value = -_INF
        for a in np.flatnonzero(e.action_mask()):           # depth <= max_steps: every step counts
            child = _clone(e)
            _, r, term, trunc, _ = child.step(int(a))
            value = max(value, r if term else -_INF if trunc else r + best(child))
        memo[key] = value
        return value

    opt = best(env)
    if opt == -_INF:
        raise ValueError(f"exhaustive_optimum: no action sequence finishes within max_steps="
                         f"{config.max_steps}; allowed: a larger max_steps")
    return opt


def _clone(e: TaskSchedulingEnv) -> TaskSchedulingEnv:
    c = TaskSchedulingEnv.__new__(TaskSchedulingEnv)
    c.__dict__.update(e.__dict__)
    for name in ("completion", "machine_of", "_finished", "free_at", "_busy_from"):
        setattr(c, name, getattr(e, name).copy())
    c.queue = list(e.queue)
    c._ep = dict(e._ep)
    return c


# ---------------------------------------------------------------------- heuristic baselines
def _idle_first(e: TaskSchedulingEnv, pick: str) -> Policy:
    """Central-queue list scheduling: when a machine is idle, start the job chosen by ``pick`` (window order,
    size or deadline) on the fastest idle machine; otherwise defer."""

    def policy(obs: np.ndarray) -> int:
        idle = e.free_at <= e.t
        idx = e.window_jobs()
        if not idle.any() or idx.size == 0:
            return e.defer_action
        m = int(np.argmax(np.where(idle, e.speeds, -1.0)))
        if pick == "fifo":
            j = int(np.argmin(idx))                  # the head of the queue (job ids follow arrival order)
        elif pick == "sjf":
            j = int(np.argmin(e.size[idx]))
        else:
            j = int(np.argmin(e.deadline[idx]))
        return j * e.n_machines + m
    return policy


def _fifo(env: gym.Env, seed: int) -> Policy:
    return _idle_first(env.unwrapped, "fifo")


def _sjf(env: gym.Env, seed: int) -> Policy:
    return _idle_first(env.unwrapped, "sjf")


def _edf(env: gym.Env, seed: int) -> Policy:
    return _idle_first(env.unwrapped, "edf")


def _least_loaded(env: gym.Env, seed: int) -> Policy:
    """Immediate dispatch of the head job to the machine with the least work left (in time) [3]; ties to the
    fastest."""
    e = env.unwrapped

    def policy(obs: np.ndarray) -> int:
        idx = e.window_jobs()
        if idx.size == 0:
            return e.defer_action
        m = int(np.lexsort((-e.speeds, e.backlog()))[0])
        return int(np.argmin(idx)) * e.n_machines + m
    return policy


def _random(env: gym.Env, seed: int) -> Policy:
    """Uniform over the valid actions (``action_mask``)."""
    e = env.unwrapped
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.choice(np.flatnonzero(e.action_mask())))


BASELINES: dict[str, BaselineFactory] = {
    "fifo": _fifo,
    "sjf": _sjf,
    "edf": _edf,
    "least-loaded": _least_loaded,
    "random": _random,
}

ENTRY = EnvEntry(
    env_id="frl/TaskScheduling-v0",
    name="task-scheduling",
    entry_point="envs.task_scheduling:TaskSchedulingEnv",
    config_cls=TaskSchedulingConfig,
    client_configs=make_client_configs,
    baselines=BASELINES,
    kpis=("slowdown", "deadline_miss", "utilisation"),
    lower_is_better=("slowdown", "deadline_miss"),
    kpi_weight={"slowdown": "completed", "deadline_miss": "completed", "utilisation": "elapsed"},
    summary="Cluster of heterogeneous machines schedules arriving jobs (DeepRM slowdown + deadline misses)",
    max_episode_steps=None,
)
