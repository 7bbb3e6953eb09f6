"""``frl bench``: a grid of (domain × strategy × seed × heterogeneity) cells → per-domain leaderboards.

Each cell is one ``run_experiment`` of one strategy (or of the domain's heuristics) on one domain at one
seed and heterogeneity level, with the domain's own scenario's agent and sizes (``domain_experiment``). Seeds
are paired: at one seed every strategy and heuristic sees the same clients and the same evaluation episodes
(``client_setup``), so strategies are compared by paired differences over seeds.

Resumable: the grid is stored in ``grid.json`` and every finished cell in ``cells/<id>.json`` (atomic writes)
as it completes; rerunning the same grid into the same directory recomputes nothing finished, and a directory
holding a different grid is refused. Cells are independent, so they run in worker processes (``jobs``); a cell
is deterministic in its seed wherever it runs (one torch thread, seeds from ``Experiment.seed``).

Statistics: per method, the mean over seeds of each per-seed figure with a 95 % Student-t confidence interval
(``t_{0.975, n-1} · s / sqrt(n)``). The best method is the one with the highest mean return; another is
marked tied with it when the 95 % t-interval of the paired per-seed differences (best − other) contains 0
(a paired t-test at the 5 % level; Student 1908). With one seed nothing can be told apart (``n/a``).
The cross-domain score of a method on a domain is its return normalised per seed between the domain's
``random`` heuristic (0) and its best heuristic (1) — the convention of Atari's human-normalised score
(Mnih et al. 2015), with heuristics in the role of the reference policies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.experiment import Experiment, ScenarioError, client_setup, run_experiment, score_heuristics

HEURISTICS = "heuristics"  # the cell of a domain's heuristics (scored once per seed and heterogeneity)
CELL_TIMEOUT_S = 6 * 3600  # a cell that takes longer than this is reported, not waited for forever

# Student t quantiles t_{0.975, df} for df = 1..30 (any statistics table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


class BenchError(ScenarioError):
    """A bad bench grid or output directory (one line naming the bad value and what is allowed)."""


def t975(df: int) -> float:
    """Two-sided 95 % Student t quantile; beyond the table the Cornish-Fisher expansion (Abramowitz &
    Stegun 26.7.5), accurate to 1e-3 for df > 30."""
    if df < 1:
        raise ValueError(f"df={df!r}; allowed: >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95 % t-interval (None for one value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), None
    return float(x.mean()), float(t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def paired_tied(best: Sequence[float], other: Sequence[float]) -> bool | None:
    """Whether the paired 95 % t-interval of ``best − other`` contains 0 (None when there is one pair)."""
    d = np.asarray(best, dtype=float) - np.asarray(other, dtype=float)
    if len(d) < 2:
        return None
    if np.all(d == 0):
        return True
    m, half = mean_ci(d)
    return bool(m - float(half or 0.0) <= 0.0)


# --------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class BenchGrid:
    env_ids: tuple[str, ...]
    strategies: tuple[str, ...]
    seeds: int = 3
    heterogeneity: tuple[float, ...] | None = None   # None: each domain's scenario's level
    agent: str | None = None                          # None: each domain's scenario's agent
    clients: int | None = None
    rounds: int | None = None
    quick: bool = False

    def __post_init__(self) -> None:
        import envs

        if not self.env_ids:
            raise BenchError(f"no env given; allowed: {', '.join(envs.ENV_ENTRIES)} or --domains all")
        for e in self.env_ids:
            envs.env_entry(e)  # EnvConfigError naming the allowed ones
        if not self.strategies:
            raise BenchError("no strategy given; allowed: see `frl list`")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 1000:
            raise BenchError(f"seeds={self.seeds!r} is out of range; allowed: integer in [1, 1000]")
        for h in self.heterogeneity or ():
            if not (isinstance(h, float | int) and 0.0 <= h <= 1.0):
                raise BenchError(f"heterogeneity={h!r} is out of range; allowed: [0, 1]")
        for env_id in self.env_ids:  # every strategy, the agent and the sizes are checked per domain
            self.base(env_id)

    def base(self, env_id: str) -> Experiment:
        """The domain's experiment with this grid's strategies, agent and sizes (validated)."""
        exp = domain_experiment(env_id, self.quick)
        changes: dict[str, Any] = {"strategies": tuple(self.strategies), "scenario": f"bench-{exp.scenario}"}
        if self.agent is not None and self.agent != exp.agent:
            changes.update(agent=self.agent, agent_config={})
        if self.clients is not None:
            changes["n_clients"] = self.clients
        if self.rounds is not None:
            changes.update(rounds=self.rounds, eval_every=min(exp.eval_every, self.rounds))
        return replace(exp, **changes)

    def levels(self, env_id: str) -> tuple[float, ...]:
        return tuple(float(h) for h in self.heterogeneity) if self.heterogeneity else (
            float(domain_experiment(env_id, self.quick).heterogeneity),)

    def cells(self) -> list[dict[str, Any]]:
        out = []
        for env_id in self.env_ids:
            for h in self.levels(env_id):
                for seed in range(self.seeds):
                    for method in (*self.strategies, HEURISTICS):
                        out.append({"env_id": env_id, "method": method, "heterogeneity": h, "seed": seed})
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def domain_experiment(env_id: str, quick: bool) -> Experiment:
    """The experiment of the first scenario that runs this env (its agent, sizes, overrides), or a generic
    one (DQN on discrete actions, PPO otherwise) for a domain no scenario covers, e.g. a plugin."""
    import gymnasium as gym

    from envs.registry import env_entry
    from scenarios import SCENARIOS

    entry = env_entry(env_id)
    for module in SCENARIOS.values():
        exp = module.QUICK if quick else module.FULL
        if isinstance(exp, Experiment) and exp.env_id == entry.env_id:
            return replace(exp, baselines=None)
    space = gym.make(entry.env_id).action_space
    agent = "dqn" if isinstance(space, gym.spaces.Discrete) else "ppo"
    full = Experiment(scenario=entry.name, env_id=entry.env_id, n_clients=4, heterogeneity=0.5, rounds=10,
                      steps_per_round=1000, eval_every=5, eval_episodes=1, final_eval_episodes=5, agent=agent)
    return replace(full, n_clients=3, rounds=3, steps_per_round=300, eval_every=3, final_eval_episodes=2) \
        if quick else full


def cell_id(cell: Mapping[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9.=_-]+", "-", f"{cell['env_id']}__{cell['method']}")
    return f"{name}__h{cell['heterogeneity']:g}__s{cell['seed']}"


def run_cell(grid: BenchGrid, cell: Mapping[str, Any]) -> dict[str, Any]:
    """One cell: a strategy's run (or the heuristics) at one seed and heterogeneity → per-method summaries."""
    import time

    import torch

    torch.set_num_threads(1)
    base = replace(grid.base(cell["env_id"]), seed=int(cell["seed"]), heterogeneity=float(cell["heterogeneity"]))
    t0 = time.perf_counter()
    if cell["method"] == HEURISTICS:
        _, methods = score_heuristics(base, client_setup(base))
    else:
        methods = run_experiment(replace(base, strategies=(cell["method"],), baselines=())).methods
    return {"cell": dict(cell), "methods": methods, "wall_time_s": time.perf_counter() - t0}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ the runner
def _atomic_json(path: Path, obj: Any) -> None:
    from scenarios.results import _json_safe, atomic_write_text

    atomic_write_text(path, json.dumps(_json_safe(obj), indent=1) + "\n")


def open_bench_dir(out: Path, grid: BenchGrid) -> dict[str, dict[str, Any]]:
    """Create ``out`` for ``grid`` or reopen it; return the finished cells found there. A directory that
    holds another grid (or a file) is refused; unreadable cell files are ignored (they are recomputed)."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {str(out)!r} is a file; allowed: a new or a bench directory")
    grid_file = out / "grid.json"
    if out.is_dir() and any(out.iterdir()) and not grid_file.exists():
        raise BenchError(f"--out {str(out)!r} is a non-empty directory that is not a bench; allowed: a new "
                         f"directory or one holding the same grid")
    if grid_file.exists():
        try:
            stored = json.loads(grid_file.read_text())
        except (OSError, ValueError) as e:
            raise BenchError(f"--out {str(out)!r}: grid.json is unreadable ({e}); use another directory") from None
        if stored != grid.to_dict():
            diff = sorted(k for k in set(stored) | set(grid.to_dict()) if stored.get(k) != grid.to_dict().get(k))
            raise BenchError(f"--out {str(out)!r} holds a different grid (differs in {', '.join(diff)}); "
                             f"allowed: the same arguments, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "cells").mkdir(exist_ok=True)
    if not grid_file.exists():
        _atomic_json(grid_file, grid.to_dict())
    done = {}
    wanted = {cell_id(c): c for c in grid.cells()}
    for path in (out / "cells").glob("*.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        cid = path.stem
        if cid in wanted and rec.get("cell") == wanted[cid] and isinstance(rec.get("methods"), dict):
            done[cid] = rec
    return done


def run_bench(grid: BenchGrid, out: Path, *, jobs: int = 1,
              on_cell: Callable[[Mapping[str, Any], bool], None] | None = None) -> dict[str, Any]:
    """Run every unfinished cell of ``grid`` (``jobs`` worker processes), storing each as it finishes, then
    write the leaderboards. ``on_cell(cell, cached)`` is called once per cell."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"jobs={jobs!r} is out of range; allowed: integer >= 1")
    done = open_bench_dir(out, grid)
    for rec in done.values():
        if on_cell:
            on_cell(rec["cell"], True)
    todo = [c for c in grid.cells() if cell_id(c) not in done]

    def store(rec: dict[str, Any]) -> None:
        cid = cell_id(rec["cell"])
        _atomic_json(out / "cells" / f"{cid}.json", rec)
        done[cid] = rec
        if on_cell:
            on_cell(rec["cell"], False)

    if jobs == 1 or len(todo) <= 1:
        for cell in todo:
            store(run_cell(grid, cell))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn"),
                                 initializer=_worker_init) as pool:
            pending = {pool.submit(run_cell, grid, c) for c in todo}
            while pending:
                finished, pending = wait(pending, timeout=CELL_TIMEOUT_S, return_when=FIRST_COMPLETED)
                if not finished:
                    for f in pending:
                        f.cancel()
                    raise BenchError(f"no cell finished within {CELL_TIMEOUT_S} s; finished cells are kept in "
                                     f"{out / 'cells'}")
                for f in finished:
                    store(f.result())
    return write_leaderboards(out, grid, [done[cell_id(c)] for c in grid.cells()])


# ------------------------------------------------------------------------------------ the leaderboards
_FIGURES = ("mean_return", "worst_client_return")
_SYSTEM = ("sim_wall_clock_s", "bytes_communicated")


def domain_table(grid: BenchGrid, env_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate rows (one per heterogeneity level and method), ranked by mean return, with CIs and ties."""
    from envs.registry import env_entry

    entry = env_entry(env_id)
    figures = (*_FIGURES, *entry.kpis, *_SYSTEM)
    rows = []
    for h in grid.levels(env_id):
        per_method: dict[str, dict[int, dict[str, Any]]] = {}
        for rec in records:
            c = rec["cell"]
            if c["env_id"] == env_id and c["heterogeneity"] == h:
                for m, summ in rec["methods"].items():
                    per_method.setdefault(m, {})[c["seed"]] = summ
        seeds = list(range(grid.seeds))
        ranked = sorted(per_method, key=lambda m: -np.mean([per_method[m][s]["mean_return"] for s in seeds]))
        best = ranked[0]
        best_ret = [per_method[best][s]["mean_return"] for s in seeds]
        for rank, m in enumerate(ranked, 1):
            by_seed = per_method[m]
            row: dict[str, Any] = {"env_id": env_id, "heterogeneity": h, "method": m,
                                   "kind": by_seed[0].get("kind", ""), "rank": rank, "seeds": len(seeds)}
            for f in figures:
                vals = [by_seed[s][f] for s in seeds if f in by_seed[s]]
                if len(vals) == len(seeds):
                    row[f], row[f"{f}_ci95"] = mean_ci(vals)
            ret = [by_seed[s]["mean_return"] for s in seeds]
            row["tied_with_best"] = True if m == best else paired_tied(best_ret, ret)
            row["per_seed_return"] = ret
            rows.append(row)
    return rows


def normalised_scores(grid: BenchGrid, env_id: str, records: list[dict[str, Any]]) -> dict[str, float]:
    """Per strategy: mean over seeds and levels of (R − R_random) / (R_best_heuristic − R_random)."""
    heuristics = {(r["cell"]["heterogeneity"], r["cell"]["seed"]): r["methods"] for r in records
                  if r["cell"]["env_id"] == env_id and r["cell"]["method"] == HEURISTICS and r["methods"]}
    scores: dict[str, list[float]] = {}
    for rec in records:
        c = rec["cell"]
        heur = heuristics.get((c["heterogeneity"], c["seed"]))
        if c["env_id"] != env_id or c["method"] == HEURISTICS or heur is None:
            continue
        lo = heur["random"]["mean_return"] if "random" in heur else min(v["mean_return"] for v in heur.values())
        hi = max(v["mean_return"] for v in heur.values())
        r = rec["methods"][c["method"]]["mean_return"]
        scores.setdefault(c["method"], []).append((r - lo) / (hi - lo) if hi > lo else float("nan"))
    return {m: float(np.mean(v)) for m, v in scores.items()}


def _fmt(x: Any, ci: Any = None) -> str:
    if not isinstance(x, int | float):
        return ""
    s = f"{x:.4g}"
    return s + (f" ± {ci:.2g}" if isinstance(ci, int | float) else "")


def leaderboard_markdown(env_id: str, rows: list[dict[str, Any]], kpis: Sequence[str], seeds: int) -> str:
    lines = [f"# Leaderboard: {env_id}", "",
             f"Mean ± 95 % t-interval over {seeds} paired seed(s). '=' marks methods statistically "
             f"indistinguishable from the best (paired t-test on per-seed mean return, 5 %); 'n/a' with one seed.",
             ""]
    head = ["rank", "method", "kind", "mean return", "worst-client return", *kpis, "sim time (s)", "MB moved", "≈ best"]
    for h in sorted({r["heterogeneity"] for r in rows}):
        lines += [f"## heterogeneity {h:g}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in (r for r in rows if r["heterogeneity"] == h):
            tie = {True: "=", False: "", None: "n/a"}[r["tied_with_best"]]
            mb = r.get("bytes_communicated")
            cells = [str(r["rank"]), r["method"], r["kind"], _fmt(r.get("mean_return"), r.get("mean_return_ci95")),
                     _fmt(r.get("worst_client_return"), r.get("worst_client_return_ci95")),
                     *[_fmt(r.get(k), r.get(f"{k}_ci95")) for k in kpis], _fmt(r.get("sim_wall_clock_s")),
                     _fmt(mb / 1e6) if isinstance(mb, int | float) else "", tie]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _csv(rows: list[dict[str, Any]], records: list[dict[str, Any]], kpis: Sequence[str]) -> str:
    import csv
    import io

    figures = [*_FIGURES, *kpis, *_SYSTEM]
    cols = ["env_id", "heterogeneity", "method", "kind", "seed", "rank", "tied_with_best",
            *[c for f in figures for c in (f, f"{f}_ci95")]]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for rec in records:  # one row per cell and method
        c = rec["cell"]
        for m, summ in rec["methods"].items():
            w.writerow({"env_id": c["env_id"], "heterogeneity": c["heterogeneity"], "method": m,
                        "kind": summ.get("kind", ""), "seed": c["seed"], **{f: summ.get(f) for f in figures}})
    for r in rows:  # one aggregate row per method
        w.writerow({**r, "seed": "all", "tied_with_best": {True: "yes", False: "no", None: "n/a"}[r["tied_with_best"]]})
    return buf.getvalue()


def _plot_domain(path: Path, env_id: str, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.results import _save_fig

    levels = sorted({r["heterogeneity"] for r in rows})
    fig, axes = plt.subplots(1, len(levels), figsize=(6.5 * len(levels), 0.35 * len(rows) / len(levels) + 2),
                             squeeze=False)
    for ax, h in zip(axes[0], levels, strict=True):
        sub = [r for r in rows if r["heterogeneity"] == h][::-1]
        colors = ["tab:gray" if r["kind"] == "heuristic" else ("tab:green" if r["tied_with_best"] else "tab:blue")
                  for r in sub]
        ax.barh([r["method"] for r in sub], [r["mean_return"] for r in sub],
                xerr=[r.get("mean_return_ci95") or 0.0 for r in sub], color=colors, capsize=3)
        ax.set_title(f"{env_id}, heterogeneity {h:g}")
        ax.set_xlabel("mean return over clients (± 95 % CI over seeds)")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("green: tied with the best (paired t-test); grey: heuristics", fontsize=8)
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def _plot_cross(path: Path, strategies: Sequence[str], domains: Sequence[str],
                scores: Mapping[str, Mapping[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.results import _save_fig

    grid = np.array([[scores[d].get(s, np.nan) for d in domains] for s in strategies], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(domains) + 3, 0.5 * len(strategies) + 2))
    im = ax.imshow(np.clip(grid, -1, 1.5), cmap="RdYlGn", vmin=-1, vmax=1.5, aspect="auto")
    ax.set_xticks(range(len(domains)), [d.split("/")[-1] for d in domains], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(strategies)), strategies, fontsize=8)
    for i in range(len(strategies)):
        for j in range(len(domains)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="normalised return (0 = random, 1 = best heuristic)")
    ax.set_title("cross-domain leaderboard")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def write_leaderboards(out: Path, grid: BenchGrid, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per domain ``leaderboard.csv/.md/.png`` (in ``out`` for one domain, ``out/<domain>/`` for several) and,
    for several domains, the cross-domain ``leaderboard.*`` (strategy × domain, normalised) in ``out``."""
    from envs.registry import env_entry
    from scenarios.results import atomic_write_text

    result: dict[str, Any] = {"grid": grid.to_dict(), "domains": {}}
    several = len(grid.env_ids) > 1
    for env_id in grid.env_ids:
        entry = env_entry(env_id)
        d_out = out / entry.name if several else out
        d_out.mkdir(parents=True, exist_ok=True)
        recs = [r for r in records if r["cell"]["env_id"] == env_id]
        rows = domain_table(grid, env_id, recs)
        atomic_write_text(d_out / "leaderboard.csv", _csv(rows, recs, entry.kpis))
        atomic_write_text(d_out / "leaderboard.md", leaderboard_markdown(env_id, rows, entry.kpis, grid.seeds))
        _plot_domain(d_out / "leaderboard.png", env_id, rows)
        result["domains"][env_id] = {"rows": rows, "normalised": normalised_scores(grid, env_id, recs),
                                     "dir": str(d_out)}
    if several:
        scores = {d: v["normalised"] for d, v in result["domains"].items()}
        lines = ["# Cross-domain leaderboard", "",
                 f"Normalised return per domain (0 = the domain's random heuristic, 1 = its best heuristic; mean "
                 f"over {grid.seeds} seed(s) and the heterogeneity levels), strategies sorted by their mean.", "",
                 "| strategy | " + " | ".join(grid.env_ids) + " | mean |", "|" + "---|" * (len(grid.env_ids) + 2)]
        order = sorted(grid.strategies, key=lambda s: -np.nanmean([scores[d].get(s, np.nan) for d in grid.env_ids]))
        csv_lines = ["strategy," + ",".join(grid.env_ids) + ",mean"]
        for s in order:
            vals = [scores[d].get(s, float("nan")) for d in grid.env_ids]
            mean = float(np.nanmean(vals))
            lines.append(f"| {s} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {mean:.2f} |")
            csv_lines.append(f"{s}," + ",".join(repr(v) for v in vals) + f",{mean!r}")
        atomic_write_text(out / "leaderboard.md", "\n".join(lines) + "\n")
        atomic_write_text(out / "leaderboard.csv", "\n".join(csv_lines) + "\n")
        _plot_cross(out / "leaderboard.png", order, list(grid.env_ids), scores)
        result["cross_domain"] = {s: {d: scores[d].get(s) for d in grid.env_ids} for s in order}
    return result


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
