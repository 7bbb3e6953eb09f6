"""Federated round time per client: the batched backend vs the in-process backend, side by side in one run.

Usage: ``python bench/batched.py [--json] [--sizes 10,100,1000] [--seed S]``

Workload (issue 14): federated DQN with FedAvg on ``frl/MecOffloading-v0`` (heterogeneity 0.5), 5 local env
steps per client per round, the suite's DQN defaults (MLP 64×64, batch 64, an update every 4 steps) except a
replay capacity of 2,000 transitions (so 1,000 in-process clients, which hold two agents each, fit in memory)
and ``learning_starts = 4`` (every round trains). Both backends run through their experiment runners
(:func:`scenarios.experiment.run_experiment` and :func:`scenarios.batched_backend.run_experiment_batched`) on
the same :class:`~scenarios.experiment.Experiment`; a round is timed between two progress callbacks, so it
covers sample → broadcast → local fit → aggregate and not the setup (round 1 is a warm-up and the last round,
which evaluates, is not timed). Round times are the process's CPU time (``time.process_time``): both
backends are single-threaded here (one torch thread, ``OMP_NUM_THREADS=1``), so CPU time is the round time
on an idle core, and it is robust to the other jobs of a shared machine; the wall-clock figures are in
``details`` beside it. Each (backend, size) runs in its own child process so that its peak RSS
(``ru_maxrss``) is its own. Every size is timed over whole periods of the workload (20 rounds: an update every
4 steps of 5-step rounds, an episode every 10 rounds), so the two backends see the same mix of rounds. The two
backends of a size run alternately, three times at 10 and 100 clients (once at 1,000: its in-process run alone
takes ~80 s), and each backend keeps its best run (noise only adds time): this shared machine's speed drifts by
10-35 % over minutes, and single pairs of runs read the 100-client speedup anywhere from 8.4× to 12.1× in one day.

Floors: a 100-client round is >= 10x faster batched than in-process; 1,000 batched clients fit in memory.
With ``--json`` one JSON object is printed: ``{"round_s_per_client": {"batched": {"10": x, ...},
"inprocess": {...}}, "speedup": {...}, "peak_rss_mb": {...}, ...}`` (null where a size was not measured).
The env-steps part comes from ``bench.batched_envs.measure_env_steps``, in the same run.

``--compare-mec K`` (long: about 4 CPU-minutes per seed) instead runs issue 14's "learning is the same" check:
the MEC scenario's FULL experiment (8 cells, 30 rounds × 1,000 steps, double DQN) with FedAvg only, seeds
0..K−1, on both backends, and prints the final mean costs per seed, their means and seed-to-seed standard
deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

# bench/ holds envs.py: keep this folder off sys.path so that ``import envs`` finds the package
_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

ENV_ID = "frl/MecOffloading-v0"
STEPS_PER_ROUND = 5
AGENT = {"buffer_size": 2_000, "learning_starts": 4}
#: timed rounds per (backend, clients): whole periods of the workload (5 updates per 4 rounds, an episode every 10
#: rounds: 20 rounds), so both backends are timed over the same mix of one- and two-update rounds and resets
TIMED_ROUNDS = {"batched": {10: 40, 100: 40, 1000: 20}, "inprocess": {10: 20, 100: 20, 1000: 20}}
#: alternating runs per size; each backend keeps its best (see the module docstring)
REPEATS = {10: 3, 100: 3, 1000: 1}
FLOOR_SPEEDUP_100 = 10.0


def experiment(n: int, timed: int, seed: int):  # -> Experiment
    from scenarios.experiment import Experiment

    # rounds: 1 warm-up + `timed` + 1 that evaluates; episodes of 50 tasks keep that evaluation short
    return Experiment(scenario="bench-batched", env_id=ENV_ID, n_clients=n, heterogeneity=0.5, rounds=timed + 2,
                      steps_per_round=STEPS_PER_ROUND, eval_every=100_000, eval_episodes=1, final_eval_episodes=1,
                      agent="dqn", agent_config=AGENT, strategies=("fedavg",), baselines=(), seed=seed,
                      env_overrides={"episode_tasks": 50})


def child(backend: str, n: int, seed: int) -> dict:
    """Run one (backend, size) and return its timings and peak RSS (runs in its own process)."""
    import torch

    torch.set_num_threads(1)
    from agents.batched import retain_freed_memory
    from scenarios.batched_backend import run_experiment_batched
    from scenarios.experiment import run_experiment

    retain_freed_memory()  # both backends run with the same allocator settings (the batched one sets them)
    timed = TIMED_ROUNDS[backend][n]
    exp = experiment(n, timed, seed)
    stamps: dict[int, tuple[float, float]] = {}

    def progress(spec: str, rnd: int, rounds: int) -> None:
        stamps[rnd] = (time.process_time(), time.perf_counter())

    run = run_experiment_batched if backend == "batched" else run_experiment
    c0, t0 = time.process_time(), time.perf_counter()
    run(exp, progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu_rounds = [stamps[r][0] - stamps[r - 1][0] for r in range(2, timed + 2)]
    wall_rounds = [stamps[r][1] - stamps[r - 1][1] for r in range(2, timed + 2)]
    round_s = sum(cpu_rounds) / len(cpu_rounds)
    round_wall = sum(wall_rounds) / len(wall_rounds)
    return {"backend": backend, "clients": n, "timed_rounds": timed, "round_s": round_s,
            "round_s_per_client": round_s / n, "round_wall_s": round_wall, "round_wall_s_per_client": round_wall / n,
            "total_wall_s": wall, "total_cpu_s": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def compare_mec(seeds: int) -> dict:
    """Final mean cost of FedAvg DQN on the MEC FULL experiment, batched vs in-process, per seed."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from scenarios.batched_backend import run_experiment_batched
    from scenarios.experiment import run_experiment
    from scenarios.mec_offloading import FULL

    cost: dict[str, list[float]] = {"batched": [], "inprocess": []}
    for seed in range(seeds):
        exp = replace(FULL, strategies=("fedavg",), baselines=(), seed=seed)
        cost["batched"].append(run_experiment_batched(exp).methods["fedavg"]["cost"])
        cost["inprocess"].append(run_experiment(exp).methods["fedavg"]["cost"])
    out: dict = {"cost": cost}
    for b, c in cost.items():
        out[f"{b}_mean"] = float(np.mean(c))
        out[f"{b}_sd"] = float(np.std(c, ddof=1)) if len(c) > 1 else None
    out["difference_of_means"] = out["batched_mean"] - out["inprocess_mean"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/batched.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated client counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-mec", type=int, default=0, metavar="K",
                        help="run the MEC FULL fedavg comparison over K seeds instead (long)")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.seed)))
        return 0
    if args.compare_mec:
        out = compare_mec(args.compare_mec)
        print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in TIMED_ROUNDS["batched"]]
    if bad:
        parser.exit(2, f"{parser.prog}: error: --sizes {bad[0]} is not measured; allowed: 10, 100, 1000\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(_ROOT)}
    results: dict[str, dict[str, dict | None]] = {"batched": {}, "inprocess": {}}
    t0 = time.perf_counter()
    for n in sizes:
        runs: dict[str, list[dict]] = {"batched": [], "inprocess": []}
        for _ in range(REPEATS[n]):
            for backend in ("batched", "inprocess"):  # side by side: the two backends of a size alternate
                proc = subprocess.run([sys.executable, __file__, "--child", backend, str(n), "--seed", str(args.seed)],
                                      capture_output=True, text=True, env=env, timeout=900, check=False)
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{backend} at {n} clients failed: {tail}", file=sys.stderr)
                    continue
                runs[backend].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        for backend, rs in runs.items():
            if not rs:
                results[backend][str(n)] = None
                continue
            best = min(rs, key=lambda r: r["round_s"])
            results[backend][str(n)] = {**best, "round_s_runs": [r["round_s"] for r in rs]}
            if not args.json:
                r = best
                print(f"{backend:9s} {n:5d} clients: {r['round_s'] * 1e3:9.1f} ms CPU/round "
                      f"({r['round_wall_s'] * 1e3:.1f} ms wall), "
                      f"{r['round_s_per_client'] * 1e3:7.3f} ms/client ({r['timed_rounds']} timed rounds, best of "
                      f"{len(rs)}), peak RSS {r['peak_rss_mb']:7.0f} MB, total {r['total_wall_s']:.1f} s wall",
                      flush=True)

    def per_client(backend: str) -> dict[str, float | None]:
        return {str(n): (r["round_s_per_client"] if (r := results[backend].get(str(n))) else None) for n in sizes}

    out: dict = {
        "round_s_per_client": {"batched": per_client("batched"), "inprocess": per_client("inprocess")},
        "speedup": {str(n): (results["inprocess"][str(n)]["round_s"] / results["batched"][str(n)]["round_s"]
                             if results["inprocess"].get(str(n)) and results["batched"].get(str(n)) else None)
                    for n in sizes},
        "peak_rss_mb": {b: {str(n): (r["peak_rss_mb"] if (r := results[b].get(str(n))) else None) for n in sizes}
                        for b in results},
        "details": results,
        "workload": {"env_id": ENV_ID, "agent": "dqn", "agent_config": AGENT, "strategy": "fedavg",
                     "steps_per_round": STEPS_PER_ROUND, "episode_tasks": 50},
        "bench_wall_s": None,
    }
    from bench.batched_envs import measure_env_steps  # the env-steps half (issue 14 item 3)

    out.update(measure_env_steps())
    out["bench_wall_s"] = time.perf_counter() - t0
    s100 = out["speedup"].get("100")
    out["floors"] = {"speedup_100_at_least": FLOOR_SPEEDUP_100, "speedup_100": s100,
                     "speedup_100_met": bool(s100 is not None and s100 >= FLOOR_SPEEDUP_100),
                     "batched_1000_fits": results["batched"].get("1000") is not None if 1000 in sizes else None}
    if args.json:
        print(json.dumps(out))
    else:
        for n in sizes:
            s = out["speedup"][str(n)]
            print(f"speedup at {n} clients: " + (f"{s:.1f}x" if s is not None else "n/a"))
        print(f"floor: 100-client speedup >= {FLOOR_SPEEDUP_100:g}x: "
              f"{'met' if out['floors']['speedup_100_met'] else 'NOT met'}; bench took {out['bench_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
