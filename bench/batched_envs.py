"""Aggregate env-steps/s of the batched env cores (``vector_entry_point``) beside CartPole-v1 and a loop of singles.

Usage: ``OMP_NUM_THREADS=1 python bench/batched_envs.py [--seconds S] [--batch-sizes 1,64,1024] [--clock wall|cpu]
[--json]``

For every registered env with a ``vector_entry_point`` and every batch size B, the batched core is built by
``gymnasium.make_vec(env_id, num_envs=B, vectorization_mode="vector_entry_point", configs=...)`` with B
heterogeneous client configs (``client_configs(B, heterogeneity=1, seed)``), reset with a seed and stepped with
random valid actions drawn in advance; autoresets (Gymnasium's next-step mode) are part of the timed steps and
count as steps, as in ``SyncVectorEnv``. Each timed window is a whole number of episode cycles when every
instance has the same number of decisions per episode (MEC: ``episode_tasks`` + 1 steps), so the reset cost is
included in its true proportion, otherwise at least ``seconds`` long. Peers measured in the same run: CartPole-v1
single (``gymnasium.make``, actions drawn in advance) and ``single_loop``: B single envs (``gymnasium.make`` with
the same configs) stepped one after another in a Python loop (B = the largest batch size <= 64). Every figure
is the best of ``--repeats`` windows (the machine is shared). The issue's floor: >= 1,000,000 aggregate
env-steps/s at B = 1,024 on one core (run with ``OMP_NUM_THREADS=1``).

``--json`` prints one JSON object: ``{"env_steps_per_s": {ENV_ID: {"1": x, "64": x, "1024": x}},
"cartpole_single_steps_per_s": x, "single_loop_steps_per_s": {ENV_ID: x}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402

FLOOR = 1_000_000.0
FLOOR_BATCH = 1024
REFERENCE = "CartPole-v1"


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _cycle(configs: list[Any]) -> int | None:
    """Steps per episode cycle (decisions + the autoreset step) if every instance has the same fixed number."""
    lengths = {getattr(c, "episode_tasks", None) for c in configs}
    if len(lengths) == 1 and None not in lengths:
        return int(lengths.pop()) + 1
    return None


def _window(cycle: int | None, batch: int, seconds: float, rate_guess: float) -> int:
    steps = max(1, int(seconds * rate_guess / batch))
    if cycle is not None:
        steps = cycle * max(1, round(steps / cycle))
    return steps


def bench_batched(entry: Any, batch: int, seconds: float, repeats: int, seed: int,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Best aggregate env-steps/s of the batched core at ``batch`` instances."""
    configs = entry.client_configs(batch, 1.0, seed)
    venv = gym.make_vec(entry.env_id, num_envs=batch, vectorization_mode="vector_entry_point", configs=configs)
    venv.reset(seed=seed)
    n_act = int(venv.single_action_space.n)
    rng = np.random.default_rng(seed)
    # a short warm-up run gives the window length (a whole number of episode cycles when they are fixed)
    t0 = clock()
    warm = 20
    for a in rng.integers(0, n_act, (warm, batch)):
        venv.step(a)
    guess = warm * batch / (clock() - t0)
    steps = _window(_cycle(configs), batch, seconds, guess)
    best = 0.0
    for _ in range(repeats):
        acts = rng.integers(0, n_act, (steps, batch))
        step = venv.step
        t0 = clock()
        for a in acts:
            step(a)
        best = max(best, steps * batch / (clock() - t0))
    venv.close()
    return best


def bench_single_loop(entry: Any, batch: int, seconds: float, repeats: int, seed: int,
                      clock: Callable[[], float] = time.perf_counter) -> float:
    """Best aggregate steps/s of ``batch`` single envs (same configs) stepped one after another in a loop."""
    configs = entry.client_configs(batch, 1.0, seed)
    singles = [gym.make(entry.env_id, config=c) for c in configs]
    for i, e in enumerate(singles):
        e.reset(seed=seed + i)
    n_act = int(singles[0].action_space.n)
    rng = np.random.default_rng(seed)
    steps = max(1, int(seconds * 50_000 / batch))
    best = 0.0
    for _ in range(repeats):
        acts = rng.integers(0, n_act, (steps, batch)).tolist()
        t0 = clock()
        for row in acts:
            for e, a in zip(singles, row, strict=True):
                _, _, term, trunc, _ = e.step(a)
                if term or trunc:
                    e.reset()
        best = max(best, steps * batch / (clock() - t0))
    return best


def bench_cartpole(seconds: float, repeats: int, seed: int, clock: Callable[[], float] = time.perf_counter) -> float:
    env = gym.make(REFERENCE)
    env.action_space.seed(seed)
    steps = max(1000, int(seconds * 150_000))
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    best = 0.0
    for _ in range(repeats):
        t0 = clock()
        for a in actions:
            _, _, term, trunc, _ = step(a)
            if term or trunc:
                reset()
        best = max(best, steps / (clock() - t0))
    return best


def measure_env_steps(batch_sizes: tuple[int, ...] = (1, 64, 1024), seconds: float = 1.0, repeats: int = 5,
                      seed: int = 0, only: str | None = None, clock_name: str = "wall") -> dict[str, Any]:
    """The issue's env-throughput figures, measured side by side (see the module docstring). ``clock_name="cpu"``
    times with this process's CPU time instead of the wall clock (steps per CPU-second: on a machine shared
    with other jobs it is what one core would do; the wall clock is the default and the issue's measure)."""
    if clock_name not in CLOCKS:
        raise ValueError(f"clock_name={clock_name!r}; allowed: {', '.join(CLOCKS)}")
    clock = CLOCKS[clock_name]
    entries = [e for e in envs.ENV_ENTRIES.values() if e.vector_entry_point
               and (only is None or only in (e.env_id, e.name))]
    out: dict[str, Any] = {"env_steps_per_s": {}, "cartpole_single_steps_per_s": 0.0,
                           "single_loop_steps_per_s": {}}
    out["cartpole_single_steps_per_s"] = bench_cartpole(seconds, repeats, seed, clock)
    loop_b = max([b for b in batch_sizes if b <= 64] or [1])
    for entry in entries:
        out["env_steps_per_s"][entry.env_id] = {
            str(b): bench_batched(entry, b, seconds, repeats, seed, clock) for b in batch_sizes}
        out["single_loop_steps_per_s"][entry.env_id] = bench_single_loop(entry, loop_b, seconds, repeats, seed, clock)
    return out


def format_table(res: dict[str, Any]) -> str:
    ref = res["cartpole_single_steps_per_s"]
    sizes = sorted({b for row in res["env_steps_per_s"].values() for b in row}, key=int)
    header = (f"{'env':<26} " + " ".join(f"{'B=' + b:>12}" for b in sizes)
              + f" {'single loop':>12} {'x CartPole':>10} {'floor':>6}")
    lines = [header, "-" * len(header)]
    for env_id, row in res["env_steps_per_s"].items():
        top = row.get(str(FLOOR_BATCH))
        verdict = "-" if top is None else ("pass" if top >= FLOOR else "FAIL")
        ratio = (top if top is not None else max(row.values())) / ref
        lines.append(f"{env_id:<26} " + " ".join(f"{row[b]:>12,.0f}" for b in sizes)
                     + f" {res['single_loop_steps_per_s'][env_id]:>12,.0f} {ratio:>10.1f} {verdict:>6}")
    lines.append(f"{REFERENCE + ' single':<26} {ref:>12,.0f}")
    lines.append(f"env-steps/s; 'x CartPole' is B={FLOOR_BATCH} over CartPole-v1 single; floor: "
                 f">= {FLOOR:,.0f} at B={FLOOR_BATCH}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="approximate length of one timed window")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per figure, best is reported")
    parser.add_argument("--batch-sizes", default="1,64,1024", help="comma-separated batch sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None, help="only this env id or kebab name")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="time with the wall clock (default) or this process's CPU time (a shared machine)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        parser.error(f"--batch-sizes={args.batch_sizes!r}; allowed: comma-separated positive integers")
    if not sizes or min(sizes) < 1 or args.seconds <= 0 or args.repeats < 1:
        parser.error(f"--batch-sizes={args.batch_sizes!r}, --seconds={args.seconds!r}, --repeats={args.repeats!r}; "
                     f"allowed: positive values")
    res = measure_env_steps(sizes, args.seconds, args.repeats, args.seed, args.env, args.clock)
    print(json.dumps(res) if args.json else format_table(res) + f"\n(clock: {args.clock})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
