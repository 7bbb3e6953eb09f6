"""Environment throughput: steps/s with random actions for every registered env, beside CartPole-v1.

Usage: ``python bench/envs.py [--steps N] [--repeats R] [--seed S] [--env ID_OR_NAME] [--strict]``

Every entry of ``envs.ENV_ENTRIES`` is built with ``gymnasium.make`` (so gymnasium's default wrappers are
included) and stepped with actions sampled in advance from its seeded action space; entries with a
``parallel_entry_point`` are also measured as PettingZoo parallel envs with all live agents acting (joint
steps/s). Episodes are reset as they end. Each figure is the best of ``--repeats`` timed passes (the machine
is shared). Floors: 20,000 steps/s single-agent, 2,000 joint steps/s parallel. ``--strict`` exits with
status 1 if any env is below its floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

# This file is named envs.py: keep its own folder off sys.path so that ``import envs`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import gymnasium as gym  # noqa: E402

import envs  # noqa: E402

SINGLE_FLOOR = 20_000.0
PARALLEL_FLOOR = 2_000.0
REFERENCE = "CartPole-v1"


def bench_single(env_id: str, steps: int, seed: int, repeats: int) -> float:
    """Best steps/s over ``repeats`` passes of ``steps`` random-action steps through ``gymnasium.make``."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = step(a)
            if terminated or truncated:
                reset()
        best = max(best, steps / (time.perf_counter() - t0))
    env.close()
    return best


def bench_parallel(entry: Any, steps: int, seed: int, repeats: int) -> float:
    """Best joint steps/s of a PettingZoo parallel env with every live agent taking a random action."""
    env = entry.parallel_factory()()
    env.reset(seed=seed)
    actions: dict[str, list[Any]] = {}
    for i, agent in enumerate(env.possible_agents):
        space = env.action_space(agent)
        space.seed(seed + i)
        actions[agent] = [space.sample() for _ in range(steps)]
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            env.step({agent: actions[agent][i] for agent in env.agents})
            if not env.agents:
                env.reset()
        best = max(best, steps / (time.perf_counter() - t0))
    env.close()
    return best


def run(steps: int, repeats: int, seed: int, only: str | None = None) -> list[dict[str, Any]]:
    """Measure CartPole and every registered env; returns one row per measurement."""
    ref = bench_single(REFERENCE, steps, seed, repeats)
    rows: list[dict[str, Any]] = [
        {"env": REFERENCE, "kind": "single", "steps_per_s": ref, "floor": None}]
    for entry in envs.ENV_ENTRIES.values():
        if only is not None and only not in (entry.env_id, entry.name):
            continue
        rows.append({"env": entry.env_id, "kind": "single",
                     "steps_per_s": bench_single(entry.env_id, steps, seed, repeats), "floor": SINGLE_FLOOR})
        if entry.parallel_entry_point:
            rows.append({"env": entry.parallel_entry_point, "kind": "parallel",
                         "steps_per_s": bench_parallel(entry, steps, seed, repeats),
                         "floor": PARALLEL_FLOOR})
    for row in rows:
        row["ratio"] = row["steps_per_s"] / ref
        row["pass"] = row["floor"] is None or row["steps_per_s"] >= row["floor"]
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'env':<36} {'kind':<8} {'steps/s':>10} {'x CartPole':>10} {'floor':>8} {'result':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        floor = "-" if r["floor"] is None else f"{r['floor']:,.0f}"
        result = "ref" if r["floor"] is None else ("pass" if r["pass"] else "FAIL")
        lines.append(f"{r['env']:<36} {r['kind']:<8} {r['steps_per_s']:>10,.0f} {r['ratio']:>10.2f} "
                     f"{floor:>8} {result:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="timed steps per pass (default 20000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, best is reported (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default=None, help="only this env id or kebab name (CartPole always runs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any env is below its floor")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps={args.steps} and --repeats={args.repeats} must be >= 1")
    if args.env is not None:
        try:
            envs.env_entry(args.env)
        except envs.EnvConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    rows = run(args.steps, args.repeats, args.seed, args.env)
    print(format_table(rows))
    return 1 if args.strict and not all(r["pass"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
