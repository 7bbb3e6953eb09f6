"""Scale: round wall time per client and peak memory for 10, 100 and 1,000 clients, backend by backend.

Usage: ``python bench/scale.py [--sizes 10,100,1000] [--backends inprocess,processes,flower] [--workers 2]
[--steps 5] [--rounds 2] [--local-clients 8] [--local-steps 500] [--repeats 3] [--json]``

The workload (issue 13): ``frl/CartPoleHetero-v0`` clients (heterogeneity 0.5), a DQN with hidden layers (32, 32)
(replay 5,000, batch 32, learning from step 5, so rounds train), FedAvg over every client, ``--steps`` env
steps per client and round. Each cell — one backend at one size — runs the real round loop
(:func:`federation.server.run_federation` over ``scenarios.experiment.make_pool``) in a fresh Python process,
so one cell's memory high-water mark never leaks into the next:

* **round s/client**: the wall time of the rounds (sampling, broadcast, every client's fit, aggregation; the
  evaluations, which only the last round runs, are timed and taken out), divided by rounds × clients. The pool's
  start (building the clients, starting workers) is reported separately as ``setup_s``; ``cores_busy`` is the
  CPU time of the process tree during the rounds over their wall time (how many cores the backend kept busy).
* **peak MiB**: the sum of ``VmHWM`` (peak resident set, from ``/proc/<pid>/status``) over the cell's process
  tree — the cell process and every descendant alive at the end of the last round (workers, a forkserver,
  Flower's actors). A sum of resident sets counts pages that processes share (the torch libraries a forked
  worker shares with its forkserver) once per process, so it is an upper bound for the multi-process backends;
  ``pss_end_mib`` (in ``--json``) is the tree's proportional set size at that moment, which splits shared pages.

Then the local-training-dominated row: ``--local-clients`` clients × ``--local-steps`` steps per round, in-process
vs processes, interleaved ``--repeats`` times (best kept): the speed-up of ``--workers`` worker processes once fits
outweigh the messages.

Flower (``--backend flower``, written elsewhere) is measured only where ``import flwr`` works and
``make_pool`` accepts it; otherwise the column says why it was skipped. Sizes of 1,000 clients run 1 round.
The whole run takes a few minutes on 2 cores (each cell has a 600 s deadline). The machine is shared, so the
figures are wall times of one pass: compare columns of the same run, not runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# bench/ holds agents.py and envs.py: keep this folder off sys.path so that ``import agents`` finds the package
_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

BACKENDS = ("inprocess", "processes", "flower")
AGENT = {"hidden_sizes": (32, 32), "buffer_size": 5_000, "batch_size": 32, "learning_starts": 5,
         "exploration_steps": 1_000}
CELL_TIMEOUT_S = 600.0


# ----- one cell (in its own process) ----------------------------------------------------------------------------
def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_s(root: int | None = None) -> float:
    """user + system CPU seconds of ``root`` (default: this process) and its live descendants."""
    total = 0
    for pid in _descendants(root or os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total / _TICK


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


def tree_peak_mib(root: int | None = None) -> tuple[float, int, float]:
    """Over ``root`` (default: this process) and its descendants: Σ VmHWM (peak resident, MiB), how many
    processes, and Σ Pss now (proportional set size: shared pages split between their sharers, MiB)."""
    pids = _descendants(root or os.getpid())
    return (sum(_status_kib(p, "VmHWM") for p in pids) / 1024.0, len(pids),
            sum(_pss_kib(p) for p in pids) / 1024.0)


def run_cell(backend: str, clients: int, steps: int, rounds: int, workers: int) -> dict[str, Any]:
    """One backend at one size: the timed rounds of the real loop, and the process tree's peak memory."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from federation.pool import ClientPool
    from federation.server import run_federation
    from scenarios.experiment import Experiment, client_setup, make_pool

    exp = Experiment(scenario="scale", env_id="frl/CartPoleHetero-v0", n_clients=clients, heterogeneity=0.5,
                     rounds=rounds, steps_per_round=steps, eval_every=rounds, eval_episodes=1, final_eval_episodes=1,
                     agent="dqn", agent_config=AGENT, strategies=("fedavg",), baselines=(), backend=backend,
                     workers=workers)
    setup = client_setup(exp)
    t0 = time.perf_counter()
    pool = make_pool(exp, "fedavg", setup)
    setup_s = time.perf_counter() - t0
    marks: list[float] = []
    cpu: list[float] = []
    eval_s = [0.0, 0.0]  # wall, CPU
    peak: list[tuple[float, int, float]] = []

    class Timed(ClientPool):  # the same pool, with its evaluations timed (they are not part of a round's cost)
        ids, steps_per_round = pool.ids, pool.steps_per_round

        def install(self, strategy: Any) -> None:
            pool.install(strategy)

        def initial_weights(self) -> Any:
            w = pool.initial_weights()
            marks.append(time.perf_counter())
            cpu.append(tree_cpu_s())
            return w

        def fit(self, jobs: Any) -> Any:
            return pool.fit(jobs)

        def evaluate(self, models: Any, seeds: Any) -> Any:
            t, c = time.perf_counter(), tree_cpu_s()
            out = pool.evaluate(models, seeds)
            eval_s[0] += time.perf_counter() - t
            eval_s[1] += tree_cpu_s() - c
            return out

    def on_round(rnd: int, history: Any) -> None:
        marks.append(time.perf_counter())
        if rnd == rounds:
            cpu.append(tree_cpu_s())
            peak.append(tree_peak_mib())

    fs = setup.federation_seed
    with pool:
        run_federation(Timed(), exp.strategy("fedavg"), rounds=rounds, eval_every=rounds,
                       eval_seeds=setup.eval_seeds, seed=np.random.SeedSequence(fs.entropy, spawn_key=fs.spawn_key),
                       system=exp.system(setup.devices), on_round=on_round)
    rounds_s = marks[-1] - marks[0] - eval_s[0]
    cpu_s = cpu[-1] - cpu[0] - eval_s[1]
    return {"backend": backend, "clients": clients, "steps": steps, "rounds": rounds, "workers": workers,
            "setup_s": round(setup_s, 3), "round_s": round(rounds_s / rounds, 4),
            "round_ms_per_client": round(1e3 * rounds_s / rounds / clients, 3),
            "round_cpu_s": round(cpu_s / rounds, 4), "cores_busy": round(cpu_s / rounds_s, 2),
            "peak_mib": round(peak[0][0], 1), "processes": peak[0][1], "pss_end_mib": round(peak[0][2], 1)}


# ----- the table (the parent process) ---------------------------------------------------------------------------
def _cell(backend: str, clients: int, steps: int, rounds: int, workers: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cell", backend, str(clients), str(steps), str(rounds),
           str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CELL_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"backend": backend, "clients": clients, "error": f"did not finish within {CELL_TIMEOUT_S:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": backend, "clients": clients, "error": err[:300]}
    out = json.loads(lines[-1])
    out["cell_wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def flower_unavailable(workers: int) -> str | None:
    """Why the Flower column cannot run here (None: it can)."""
    if importlib.util.find_spec("flwr") is None:
        return "flwr is not installed (pip install -e '.[flower]')"
    probe = _cell("flower", 2, 2, 1, workers)
    return probe.get("error") and f"--backend flower does not run here: {probe['error']}"


def _fmt(row: dict[str, Any] | None, key: str, spec: str) -> str:
    if row is None:
        return "skipped"
    if "error" in row:
        return "failed"
    return format(row[key], spec)


def markdown(report: dict[str, Any]) -> str:
    backends = report["backends"]
    head = "| clients | " + " | ".join(f"{b} ms/client-round | {b} peak MiB" for b in backends) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(backends))]
    for n in report["sizes"]:
        cells = []
        for b in backends:
            row = next((r for r in report["cells"] if r["backend"] == b and r["clients"] == n), None)
            cells += [_fmt(row, "round_ms_per_client", ".2f"), _fmt(row, "peak_mib", ".0f")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for why in report["skipped"].values():
        lines.append(f"\nskipped: {why}")
    for r in report["cells"]:
        if "error" in r:
            lines.append(f"\n{r['backend']} at {r['clients']} clients failed: {r['error']}")
    lt = report["local_training"]
    if lt:
        a, b = lt.get("inprocess", {}), lt.get("processes", {})
        if "round_s" in a and "round_s" in b:
            lines.append(f"\nlocal training dominates ({lt['clients']} clients x {lt['steps']} steps per round): "
                         f"in-process {a['round_s']:.2f} s/round, processes ({lt['workers']} workers) "
                         f"{b['round_s']:.2f} s/round: speed-up x{lt['speedup']:.2f} (CPU busy during the rounds: "
                         f"{a['cores_busy']:.2f} vs {b['cores_busy']:.2f} cores; load average at the start "
                         f"{report['load_average']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000", help="comma-separated client counts (default 10,100,1000)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: inprocess, processes, flower")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the processes backend (default 2)")
    p.add_argument("--steps", type=int, default=5, help="env steps per client and round (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per cell; 1,000-client cells run 1 (default 2)")
    p.add_argument("--local-clients", type=int, default=8, help="clients of the local-training row (8; 0: skip)")
    p.add_argument("--local-steps", type=int, default=500, help="steps per round of the local-training row (500)")
    p.add_argument("--repeats", type=int, default=3, help="passes of the local-training row, best kept (3)")
    p.add_argument("--json", action="store_true", help="print the table as one JSON object")
    p.add_argument("--cell", nargs=5, metavar=("BACKEND", "CLIENTS", "STEPS", "ROUNDS", "WORKERS"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cell:
        b, n, s, r, w = args.cell
        print(json.dumps(run_cell(b, int(n), int(s), int(r), int(w))), flush=True)
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes {args.sizes!r} must be comma-separated integers")
    if not sizes or any(not 1 <= s <= 1000 for s in sizes):
        p.error(f"--sizes {args.sizes!r} is out of range; allowed: integers in [1, 1000]")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        p.error(f"unknown backend {bad[0]!r}; allowed: {', '.join(BACKENDS)}")
    load = [round(x, 2) for x in os.getloadavg()]
    skipped: dict[str, str] = {}
    if "flower" in backends:
        why = flower_unavailable(args.workers)
        if why:
            skipped["flower"] = why
    cells = []
    for n in sizes:
        for b in backends:
            if b in skipped:
                continue
            row = _cell(b, n, args.steps, 1 if n >= 1000 else args.rounds, args.workers)
            cells.append(row)
            if not args.json:
                print(f"# {b} x {n}: {row}", file=sys.stderr, flush=True)
    local: dict[str, Any] = {}
    if args.local_clients > 0:
        local = {"clients": args.local_clients, "steps": args.local_steps, "workers": args.workers}
        tries: dict[str, list[dict[str, Any]]] = {"inprocess": [], "processes": []}
        for _ in range(args.repeats):  # interleaved, best of --repeats: the machine is shared
            for b in tries:
                tries[b].append(_cell(b, args.local_clients, args.local_steps, args.rounds, args.workers))
                if not args.json:
                    print(f"# local training, {b}: {tries[b][-1]}", file=sys.stderr, flush=True)
        for b, rows in tries.items():
            ok = [r for r in rows if "round_s" in r]
            local[b] = min(ok, key=lambda r: r["round_s"]) if ok else rows[-1]
            local[f"{b}_round_s_all"] = [r.get("round_s") for r in rows]
        if "round_s" in local["inprocess"] and "round_s" in local["processes"]:
            local["speedup"] = round(local["inprocess"]["round_s"] / local["processes"]["round_s"], 3)
    workload = {"env": "frl/CartPoleHetero-v0", "agent": "dqn", "agent_config": AGENT, "strategy": "fedavg",
                "steps_per_round": args.steps, "rounds": args.rounds, "rounds_at_1000": 1}
    report = {"load_average": load, "workload": workload, "sizes": sizes, "backends": backends, "cells": cells,
              "skipped": skipped, "local_training": local}
    if args.json:
        print(json.dumps(report))
    else:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
