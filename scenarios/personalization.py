"""Where does personalization pay? Every personalised FL method against FedAvg and local learning, on every domain.

References (one per method; the method files cite them in full): FedPer (Arivazhagan et al. 2019), FedRep
(Collins et al., ICML 2021), Ditto (Li, Hu, Beirami, Smith, ICML 2021), local fine-tuning of the FedAvg model
(Wang et al. 2019, "Federated Evaluation of On-device Personalization"), IFCA (Ghosh et al., NeurIPS 2020),
similarity-weighted aggregation (FedAMP, Huang et al., AAAI 2021), environment embeddings (Jin et al., AISTATS
2022) and APFL (Deng, Kamani, Mahdavi 2020). CLAIM common to these papers (e.g. Jin et al. 2022 Sec. 6, Li et
al. 2021 Sec. 5, Deng et al. 2020 Sec. 5): when the clients' tasks differ, one averaged model serves some
clients poorly, and a personalised model beats both the single FedAvg model and purely local training on mean
and on worst-client performance; when the clients are alike, personalization costs little.

What is run: a grid of (domain x heterogeneity level) cells; in each cell one ``Experiment`` (the generic
``run_experiment``) with every method on the same clients, the same samples per client and the same episode
seeds: ``fedavg``, ``local`` and the personalised ``fedper``, ``fedrep``, ``ditto``, ``finetune``, ``ifca``,
``similarity``, ``env-embedding`` and ``apfl`` (default hyperparameters of each method; ``finetune`` tunes
for half a round's steps before every evaluation, ``ifca`` uses 2 clusters), plus the domain's non-clairvoyant
heuristics on the same episodes. Domains (:data:`DOMAINS`): MEC offloading, edge caching, O-RAN access,
robot navigation (the discrete-action form), C-V2X (the gymnasium form: link 0 learns, links 1-3 run SPS, on
the geometry of the ``liang2019`` preset, see below) and CartPole with per-client pole lengths (Jin et al.'s
heterogeneity testbed, as ``scenarios/heterogeneity.py``). Heterogeneity levels 0 (identical clients) and 1
(each env's widest spread of client configs). Every agent is a double DQN (all six envs have discrete
actions; dueling where the domain's own scenario uses it).

Normalisation (so domains are comparable): each client's final greedy return R_c becomes
z_c = (R_c − R_c^random) / (R̄^best − R̄^random), where R_c^random is the ``random`` heuristic's return on
the same client and episodes and R̄^best, R̄^random are the mean over clients of the best non-clairvoyant
heuristic (best by mean return in that cell) and of ``random``. So 0 = random, 1 = the best heuristic's mean,
and the per-client subtraction of random removes the clients' different return scales. The table reports the
mean of z_c over clients and the worst client's z_c. Clairvoyant references are not "heuristics" here:
edge caching's ``belady`` (knows future requests) and ``popularity-top-c`` (knows the true popularity) and
C-V2X's ``exhaustive`` (true channels, every joint action) are left out. A personalised method *pays* in a
cell when it beats both ``fedavg`` and ``local`` by at least ``margin`` (default 0.05, i.e. 5 % of the
random-to-best-heuristic gap) on the mean or on the worst client. One seed: differences below ~0.1 are
within run-to-run noise at these budgets.

Scaled down (2 cores): 3 clients per domain and a few thousand env steps per client per method (per-domain
budgets in :data:`DOMAINS`, chosen so that FedAvg learns something on each domain at full size; the
summary says where its mean return is not above random). Edge caching episodes are 1500 requests after a
3000-request warm-up (5000 / 10000 by default), O-RAN episodes 200 decisions (600), so evaluation stays
cheap. C-V2X: the ``liang2019`` preset's link geometry, grid, RB/link counts, background V2V traffic and
TR 36.885 density are applied to every client; the heterogeneity generator still varies speeds (highway
areas at level 1), shadowing, payload and the V2I weight (the full preset would pin those and leave only
the shadowing spread). The (domain, heterogeneity) cells run in ``workers`` processes (default 2).
``--quick`` is a smoke run (2 clients, 200 steps each, short episodes). At full size (seed 0, ~11.6 CPU-min)
FedAvg is above random in every cell but C-V2X at level 0, yet two domains learn little at these budgets:
CartPole (normalised 0.15-0.2, i.e. ~100 of the PD controller's 500) and C-V2X (random and the best heuristic
are only 3-5 return units apart), so their "paid" marks are within noise.

Figure: :func:`plot` (the scenario plot hook that ``frl run`` calls) writes ``personalization_heatmap.png`` (the
table as two heatmaps) beside the generic PNGs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import is_int, is_number
from envs.registry import env_entry
from federation.strategies import STRATEGIES, parse_spec
from scenarios.cv2x import _LIANG2019
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, check_domain_list, cli, run_experiment
from scenarios.experiment import require as _need

NAME = "personalization"
SUMMARY = ("Where does personalization pay? fedper/fedrep/ditto/finetune/ifca/similarity/env-embedding/apfl vs "
           "fedavg and local on every domain at heterogeneity 0 and 1 (Jin et al. 2022; Li et al. 2021; Deng et al. "
           "2020)")
CHECKPOINTABLE = False  # `frl run --checkpoint-every` is refused:
CHECKPOINT_WHY = "its (domain, level) cells train in worker processes"

PERSONALISED = ("fedper", "fedrep", "ditto", "finetune", "ifca", "similarity", "env-embedding", "apfl")
REFERENCES = ("fedavg", "local")
METHODS = (*REFERENCES, *PERSONALISED)
#: heuristics that see what no deployable policy sees; never the normalisation's "best heuristic"
CLAIRVOYANT = ("belady", "popularity-top-c", "exhaustive")


@dataclass(frozen=True)
class Domain:
    """One domain's cell settings: the env, its clients and the per-client training budget of every method."""

    env_id: str
    n_clients: int
    rounds: int
    steps_per_round: int
    agent_config: Mapping[str, Any]
    env_overrides: Mapping[str, Any] = field(default_factory=dict)
    final_eval_episodes: int = 5


# DQN settings shared by every domain: small MLP, an update every 8 env steps (half the cost of the default 4
# at these budgets, with a larger step size), exploration over ~40 % of a client's budget.
_DQN = {"double_q": True, "hidden_sizes": (64, 64), "lr": 1e-3, "train_freq": 8, "learning_starts": 300,
        "target_update_interval": 500, "buffer_size": 20_000}
# C-V2X: the liang2019 preset's geometry and density; speeds, shadowing, payload and V2I weight stay per client
_CV2X_GEOMETRY = {k: _LIANG2019[k] for k in ("n_rb", "n_v2v", "link_geometry", "grid_scale", "bg_v2v_duty",
                                              "vehicle_density")}

DOMAINS: dict[str, Domain] = {
    # gamma 0.9 as scenarios/mec_offloading.py (a decision's queueing consequences fade within seconds)
    "mec-offloading": Domain("frl/MecOffloading-v0", 3, 4, 1000,
                             {**_DQN, "gamma": 0.9, "exploration_steps": 1600}),
    # dueling, gamma 0.8, 3-step returns as scenarios/edge_caching.py; shorter episodes and warm-up
    "edge-caching": Domain("frl/EdgeCaching-v0", 3, 4, 1000,
                           {**_DQN, "dueling": True, "gamma": 0.8, "n_step": 3, "exploration_steps": 1600},
                           {"episode_requests": 1500, "warmup_requests": 3000}, final_eval_episodes=3),
    "oran-access": Domain("frl/OranAccess-v0", 3, 3, 1000, {**_DQN, "gamma": 0.9, "exploration_steps": 1200},
                          {"episode_steps": 200}, final_eval_episodes=4),
    "robot-navigation": Domain("frl/RobotNavigationDiscrete-v0", 3, 5, 1000,
                               {**_DQN, "gamma": 0.99, "exploration_steps": 2000}),
    # dueling, gamma 0.9 as scenarios/cv2x.py
    "cv2x": Domain("frl/CV2X-v0", 3, 5, 1000, {**_DQN, "dueling": True, "gamma": 0.9, "exploration_steps": 2000},
                   _CV2X_GEOMETRY),
    # CartPole needs more updates per step: every 4 steps, target every 250 (as scenarios/heterogeneity.py)
    "cartpole": Domain("frl/CartPoleHetero-v0", 3, 5, 1000,
                       {**_DQN, "train_freq": 4, "target_update_interval": 250, "exploration_steps": 2000}),
}

_QUICK_DQN = {"learning_starts": 50, "exploration_steps": 150, "batch_size": 32}
_QUICK_EPISODES = {"frl/MecOffloading-v0": {"episode_tasks": 60},
                   "frl/EdgeCaching-v0": {"episode_requests": 300, "warmup_requests": 300},
                   "frl/OranAccess-v0": {"episode_steps": 40},
                   "frl/RobotNavigationDiscrete-v0": {"max_steps": 60},
                   "frl/CV2X-v0": {"deadline_ms": 30},
                   "frl/CartPoleHetero-v0": {}}
QUICK_DOMAINS: dict[str, Domain] = {
    k: replace(d, n_clients=2, rounds=2, steps_per_round=100, final_eval_episodes=1,
               agent_config={**d.agent_config, **_QUICK_DQN},
               env_overrides={**d.env_overrides, **_QUICK_EPISODES[d.env_id]})
    for k, d in DOMAINS.items()}



@dataclass(frozen=True)
class PersonalizationExperiment:
    """The grid: domains x heterogeneity levels x methods. Per-domain sizes live in ``domain_specs``; the
    flags choose the grid, scale the budget and set the seed."""

    scenario: str = NAME
    env_id: str = "(every domain)"
    domains: tuple[str, ...] = field(default=tuple(DOMAINS), metadata=cli(
        f"comma-separated domains; allowed: {', '.join(DOMAINS)}"))
    heterogeneity_levels: tuple[str, ...] = field(default=("0", "1"), metadata=cli(
        "comma-separated heterogeneity levels, each in [0, 1]", flag="levels"))
    strategies: tuple[str, ...] = field(default=METHODS, metadata=cli(
        "comma-separated strategies, each 'name' or 'name:key=value' (see `frl list`); fedavg and local are "
        "the references", flag="strategy"))
    budget: float = field(default=1.0, metadata=cli(
        "multiplies every domain's env steps per round, (0, 10]"))
    margin: float = field(default=0.05, metadata=cli(
        "normalised margin a personalised method must beat fedavg and local by to count as paying, [0, 10]"))
    workers: int = field(default=2, metadata=cli("processes running the (domain, level) cells, [1, 16]"))
    seed: int = field(default=0, metadata=cli("the one seed every random choice derives from"))
    domain_specs: Mapping[str, Domain] = field(default_factory=lambda: dict(DOMAINS))

    def __post_init__(self) -> None:
        check_domain_list(self.domains, self.domain_specs)
        levels = []
        for v in self.heterogeneity_levels:
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = float("nan")
            _need(x == x and 0.0 <= x <= 1.0, f"heterogeneity level {v!r} is out of range; allowed: [0, 1]")
            levels.append(x)
        _need(bool(levels), "no heterogeneity level given; allowed: numbers in [0, 1]")
        _need(len(set(levels)) == len(levels), f"heterogeneity level listed twice in {levels}")
        object.__setattr__(self, "heterogeneity_levels", tuple(f"{x:.15g}" for x in levels))
        _need(isinstance(self.strategies, tuple) and bool(self.strategies),
              f"no strategy given; allowed: {', '.join(STRATEGIES)}")
        _need(is_number(self.budget) and 0.0 < self.budget <= 10.0,
              f"budget={self.budget!r} is out of range; allowed: (0, 10]")
        _need(is_number(self.margin) and 0.0 <= self.margin <= 10.0,
              f"margin={self.margin!r} is out of range; allowed: [0, 10]")
        _need(is_int(self.workers) and 1 <= self.workers <= 16,
              f"workers={self.workers!r} is out of range; allowed: integer in [1, 16]")
        _need(is_int(self.seed) and 0 <= self.seed < 2**32,
              f"seed={self.seed!r} is out of range; allowed: integer in [0, 2**32)")
        for d in self.domains:  # validates every strategy spec, heuristic and agent setting once, up front
            for h in levels:
                cell_experiment(self, d, h)

    # the sizes other code reads off an experiment (the largest cell's; per-domain values in domain_specs)
    @property
    def rounds(self) -> int:
        return max(self.domain_specs[d].rounds for d in self.domains)

    @property
    def steps_per_round(self) -> int:
        return max(_steps(self, d) for d in self.domains)

    @property
    def final_eval_episodes(self) -> str:
        eps = sorted({self.domain_specs[d].final_eval_episodes for d in self.domains})
        return "-".join(map(str, (eps[0], eps[-1]) if len(eps) > 1 else eps)) + " (per domain)"

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(float(h) for h in self.heterogeneity_levels)

    def cells(self) -> list[tuple[str, float]]:
        return [(d, h) for d in self.domains for h in self.levels]

    def describe(self) -> str:
        sizes = "; ".join(f"{d}: {self.domain_specs[d].n_clients} clients x {self.domain_specs[d].rounds} rounds x "
                          f"{_steps(self, d)} steps" for d in self.domains)
        return (f"{len(self.strategies)} methods on {len(self.domains)} domains at heterogeneity "
                f"{', '.join(self.heterogeneity_levels)} ({sizes}), agent `dqn`, seed {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "domains": list(self.domains),
                "heterogeneity_levels": list(self.levels), "strategies": list(self.strategies),
                "budget": self.budget, "margin": self.margin, "workers": self.workers, "seed": self.seed,
                "cells": {f"{d}/h{h:g}": cell_experiment(self, d, h).to_dict() for d, h in self.cells()}}


def _steps(exp: PersonalizationExperiment, domain: str) -> int:
    return max(1, int(round(exp.budget * exp.domain_specs[domain].steps_per_round)))


def _cell_spec(spec: str, steps_per_round: int) -> str:
    """A plain ``finetune`` tunes for half a round's steps (its default of 500 is a whole round at some
    budgets); every other spec is used as given."""
    name, params = parse_spec(spec)
    if name == "finetune" and "steps" not in params:
        return f"finetune:steps={max(1, steps_per_round // 2)}"
    return spec


def cell_experiment(exp: PersonalizationExperiment, domain: str, heterogeneity: float,
                    strategies: tuple[str, ...] | None = None) -> Experiment:
    """The generic experiment of one cell: the domain's clients at this heterogeneity, every method and the
    domain's non-clairvoyant heuristics, evaluated once at the end (round evaluations cost as much as
    training at these budgets)."""
    d = exp.domain_specs[domain]
    steps = _steps(exp, domain)
    specs = tuple(_cell_spec(s, steps) for s in (strategies if strategies is not None else exp.strategies))
    heuristics = tuple(b for b in env_entry(d.env_id).baselines if b not in CLAIRVOYANT)
    return Experiment(
        scenario=NAME, env_id=d.env_id, n_clients=d.n_clients, heterogeneity=float(heterogeneity),
        rounds=d.rounds, steps_per_round=steps, eval_every=d.rounds, eval_episodes=1,
        final_eval_episodes=d.final_eval_episodes, agent="dqn", agent_config=dict(d.agent_config),
        strategies=specs, baselines=heuristics, seed=exp.seed, env_overrides=dict(d.env_overrides))


FULL = PersonalizationExperiment()
QUICK = replace(FULL, domain_specs=dict(QUICK_DOMAINS))


def progress_total(exp: PersonalizationExperiment) -> int:
    return sum(exp.domain_specs[d].rounds for d, _ in exp.cells()) * len(exp.strategies)


# ----- running the cells ---------------------------------------------------------------------------------
def run_cell(exp: PersonalizationExperiment, domain: str, heterogeneity: float,
             on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """One cell: every method in one ``run_experiment``; if that fails, each method alone (the same clients,
    seeds and episodes: ``client_setup`` does not depend on the methods), and a method that fails alone is
    skipped with its error as the reason."""
    t0, c0 = time.perf_counter(), time.process_time()
    cell = cell_experiment(exp, domain, heterogeneity)
    names = dict(zip(cell.strategies, exp.strategies, strict=True))  # cell spec -> the spec the user gave
    skipped: dict[str, str] = {}
    try:
        res = run_experiment(cell, on_progress)
        methods, rows = res.methods, res.rows
        configs = res.client_configs
    except Exception:  # noqa: BLE001 - find the failing method(s), keep the others
        methods, rows, configs = {}, [], []
        for i, spec in enumerate(exp.strategies):
            one = replace(cell, strategies=(cell.strategies[i],),
                          baselines=cell.baselines if not methods else ())
            try:
                r = run_experiment(one, on_progress)
            except Exception as e:  # noqa: BLE001
                skipped[spec] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
                continue
            methods.update(r.methods)
            rows.extend(r.rows)
            configs = r.client_configs
        if not any(m["kind"] == "heuristic" for m in methods.values()):  # every method failed: heuristics alone
            r = run_experiment(replace(cell, strategies=("local",)))
            methods.update({k: v for k, v in r.methods.items() if v["kind"] == "heuristic"})
            configs = r.client_configs
    methods = {names.get(k, k): v for k, v in methods.items()}
    rows = [(names.get(m, m), rnd, c, k, v) for m, rnd, c, k, v in rows]
    return {"domain": domain, "heterogeneity": heterogeneity, "methods": methods, "rows": rows,
            "client_configs": configs, "skipped": skipped, "wall_time_s": time.perf_counter() - t0,
            "cpu_time_s": time.process_time() - c0,
            "experiment": cell.to_dict()}


def _cell_worker(args: tuple[PersonalizationExperiment, str, float]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return run_cell(*args)


def run(exp: PersonalizationExperiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """Every cell (in ``exp.workers`` processes), then the normalised method x domain x level table."""
    start = time.perf_counter()
    cells = exp.cells()
    if exp.workers == 1 or len(cells) == 1:
        results = [run_cell(exp, d, h, on_progress) for d, h in cells]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        results_by: dict[tuple[str, float], dict[str, Any]] = {}
        # costliest cells first, so the last one to finish is short
        order = sorted(cells, key=lambda c: -exp.domain_specs[c[0]].rounds * _steps(exp, c[0]))
        with ProcessPoolExecutor(max_workers=min(exp.workers, len(cells)),
                                 mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_cell_worker, (exp, d, h)): (d, h) for d, h in order}
            for fut in as_completed(futures):
                d, h = futures[fut]
                results_by[(d, h)] = fut.result()
                if on_progress:
                    rounds = exp.domain_specs[d].rounds
                    for spec in exp.strategies:
                        for r in range(1, rounds + 1):
                            on_progress(f"{d}/h{h:g}/{spec}", r, rounds)
        results = [results_by[c] for c in cells]
    table = personalization_table(exp, results)
    rows = [(f"{c['domain']}/h{c['heterogeneity']:g}/{m}", rnd, cl, k, v)
            for c in results for m, rnd, cl, k, v in c["rows"]]
    res = ExperimentResult(experiment=exp, rows=rows, methods=table["methods"],
                           client_configs=[{"cell": f"{c['domain']}/h{c['heterogeneity']:g}", "client": i, **cfg}
                                           for c in results for i, cfg in enumerate(c["client_configs"])],
                           wall_time_s=time.perf_counter() - start)
    res.extra["normalisation"] = ("z_c = (R_c - R_c^random) / (mean best non-clairvoyant heuristic - mean random), "
                                  "per cell; 0 = random, 1 = best heuristic's mean")
    res.extra["cells"] = table["cells"]
    res.extra["paid"] = table["paid"]
    res.extra["cell_wall_time_s"] = {f"{c['domain']}/h{c['heterogeneity']:g}": c["wall_time_s"] for c in results}
    res.extra["cell_cpu_time_s"] = {f"{c['domain']}/h{c['heterogeneity']:g}": c["cpu_time_s"] for c in results}
    res.extra["personalization_markdown"] = table_markdown(exp, table)
    return res


# ----- the table -----------------------------------------------------------------------------------------
def normalise(methods: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Random and best-heuristic anchors of one cell, or None when the cell cannot be normalised (no
    ``random``, or no heuristic above it)."""
    heur = {k: m for k, m in methods.items() if m["kind"] == "heuristic" and k not in CLAIRVOYANT}
    if "random" not in heur:
        return None
    rand = np.asarray(heur["random"]["per_client_return"], dtype=float)
    others = {k: m for k, m in heur.items() if k != "random"}
    if not others:
        return None
    best = max(others, key=lambda k: others[k]["mean_return"])
    scale = float(others[best]["mean_return"] - rand.mean())
    if not scale > 0:
        return None
    return {"random_per_client": rand.tolist(), "random_mean": float(rand.mean()), "best_heuristic": best,
            "best_mean": float(others[best]["mean_return"]), "scale": scale}


def _z(per_client: list[float], norm: Mapping[str, Any]) -> np.ndarray:
    return (np.asarray(per_client, dtype=float) - np.asarray(norm["random_per_client"])) / norm["scale"]


def personalization_table(exp: PersonalizationExperiment, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell: every method's normalised mean and worst-client return and which personalised methods paid;
    per method: the mean over cells (``methods`` of the summary)."""
    cells: dict[str, dict[str, Any]] = {}
    paid: dict[str, dict[str, list[str]]] = {}
    pooled: dict[str, dict[str, list[float]]] = {s: {"mean": [], "worst": [], "clients": []} for s in exp.strategies}
    for c in results:
        key = f"{c['domain']}/h{c['heterogeneity']:g}"
        norm = normalise(c["methods"])
        scored: dict[str, Any] = {}
        for name, m in c["methods"].items():
            entry = dict(m)
            if norm is not None:
                z = _z(m["per_client_return"], norm)
                entry.update(norm_mean=float(z.mean()), norm_worst=float(z.min()), norm_per_client=z.tolist())
                if name in pooled:
                    pooled[name]["mean"].append(float(z.mean()))
                    pooled[name]["worst"].append(float(z.min()))
                    pooled[name]["clients"].extend(z.tolist())
            scored[name] = entry
        refs = [scored[r] for r in REFERENCES if r in scored]
        cell_paid: dict[str, list[str]] = {}
        if norm is not None and len(refs) == len(REFERENCES):
            for name in exp.strategies:
                if name in REFERENCES or name not in scored:
                    continue
                won = [kpi for kpi in ("mean", "worst")
                       if scored[name][f"norm_{kpi}"] >= max(r[f"norm_{kpi}"] for r in refs) + exp.margin]
                if won:
                    cell_paid[name] = won
        fedavg = scored.get("fedavg", {})
        cells[key] = {
            "domain": c["domain"], "heterogeneity": c["heterogeneity"], "env_id": exp.domain_specs[c["domain"]].env_id,
            "normalisation": norm, "methods": scored, "skipped": c["skipped"], "paid": cell_paid,
            "fedavg_above_random": (fedavg["norm_mean"] > 0) if "norm_mean" in fedavg else None,
            "experiment": c["experiment"], "wall_time_s": c["wall_time_s"], "cpu_time_s": c["cpu_time_s"]}
        paid[key] = {k: v for k, v in cell_paid.items()}
    methods: dict[str, dict[str, Any]] = {}
    for name in exp.strategies:
        p = pooled[name]
        if not p["mean"]:
            continue
        methods[name] = {
            "kind": "local" if name == "local" else "federated",
            "mean_return": float(np.mean(p["mean"])), "worst_client_return": float(np.mean(p["worst"])),
            "per_client_return": p["clients"], "normalised": True, "cells_scored": len(p["mean"]),
            "cells_paid": sum(1 for v in paid.values() if name in v)}
    return {"cells": cells, "paid": paid, "methods": methods}


def _fmt(x: float | None) -> str:
    return f"{x:.2f}" if x is not None and np.isfinite(x) else "–"


def table_markdown(exp: PersonalizationExperiment, table: Mapping[str, Any]) -> str:
    """The method x (domain, level) table: normalised mean / worst-client return; ``+m`` / ``+w`` marks a
    personalised method that beat both fedavg and local on the mean / worst client by the margin."""
    cells = table["cells"]
    keys = list(cells)
    lines = ["## Where does personalization pay?", "",
             "Normalised return per cell, **mean / worst client**: z = (R − R_random) / (best heuristic mean − "
             "random mean), per client against the random heuristic on the same episodes; 0 = random, 1 = the "
             "best non-clairvoyant heuristic's mean. `+m` / `+w`: beat both fedavg and local by ≥ "
             f"{exp.margin:g} on the mean / worst client. One seed. (The main table above averages these over "
             "cells; its 'per-client' figure pools the normalised clients of every cell.)", "",
             "| method | " + " | ".join(f"{cells[k]['domain']} h={cells[k]['heterogeneity']:g}" for k in keys) + " |",
             "|" + "---|" * (len(keys) + 1)]
    for name in exp.strategies:
        row = [name]
        for k in keys:
            cell = cells[k]
            if name in cell["skipped"]:
                row.append(f"skipped: {cell['skipped'][name]}")
                continue
            m = cell["methods"].get(name)
            if m is None or "norm_mean" not in m:
                row.append("–")
                continue
            mark = "".join(f" +{w[0]}" for w in cell["paid"].get(name, []))
            row.append(f"{_fmt(m['norm_mean'])} / {_fmt(m['norm_worst'])}{mark}")
        lines.append("| " + " | ".join(row) + " |")
    best_row, raw_row, above = ["best heuristic"], ["raw: random → best mean"], ["fedavg above random?"]
    for k in keys:
        cell, norm = cells[k], cells[k]["normalisation"]
        if norm is None:
            best_row.append("cannot normalise")
            raw_row.append("")
            above.append("")
            continue
        b = cell["methods"][norm["best_heuristic"]]
        best_row.append(f"{norm['best_heuristic']}: {_fmt(b.get('norm_mean'))} / {_fmt(b.get('norm_worst'))}")
        raw_row.append(f"{norm['random_mean']:.4g} → {norm['best_mean']:.4g}")
        above.append({True: "yes", False: "**no**", None: ""}[cell["fedavg_above_random"]])
    lines += ["| " + " | ".join(best_row) + " |", "| " + " | ".join(raw_row) + " |", "| " + " | ".join(above) + " |"]
    lines += ["", "Where personalization paid (method: on mean / worst client):", ""]
    for k in keys:
        paid = cells[k]["paid"]
        lines.append(f"- {k}: " + (", ".join(f"{n} ({'+'.join(w)})" for n, w in paid.items()) if paid else "nowhere"))
    return "\n".join(lines)


# ----- the figure ----------------------------------------------------------------------------------------
def heatmap_png(exp: PersonalizationExperiment, cells: Mapping[str, Any]) -> bytes:
    """The table as two heatmaps (normalised mean and worst-client return; method x cell), as PNG bytes.
    Colours are clipped to [-1, 1.5]; grey = skipped or not normalisable; a black frame = paid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(cells)
    names = list(exp.strategies)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.3 * len(keys) + 2.5), 0.45 * len(names) + 2.4),
                             constrained_layout=True)
    for ax, kpi, title in zip(axes, ("mean", "worst"), ("mean over clients", "worst client"), strict=True):
        grid = np.full((len(names), len(keys)), np.nan)
        for j, k in enumerate(keys):
            for i, n in enumerate(names):
                m = cells[k]["methods"].get(n)
                if m is not None and f"norm_{kpi}" in m:
                    grid[i, j] = m[f"norm_{kpi}"]
        cmap = plt.get_cmap("RdYlGn").copy()
        cmap.set_bad("0.8")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1.0, vmax=1.5, aspect="auto")
        for i in range(len(names)):
            for j in range(len(keys)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
                elif names[i] in cells[keys[j]]["skipped"]:
                    ax.text(j, i, "skip", ha="center", va="center", fontsize=7)
                if kpi in cells[keys[j]]["paid"].get(names[i], []):
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.8, ec="black"))
        ax.set_xticks(range(len(keys)), [k.replace("/h", "\nh=") for k in keys], fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(f"normalised return, {title}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="0 = random, 1 = best heuristic")
    fig.suptitle(f"{exp.scenario}: where does personalization pay? (frame: beat fedavg and local by "
                 f"≥ {exp.margin:g})", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def plot(out: Path, result: ExperimentResult) -> list[Path]:
    """The scenario's own figure, ``personalization_heatmap.png`` in ``out``, written atomically."""
    from scenarios.results import atomic_write_bytes

    path = Path(out) / "personalization_heatmap.png"
    atomic_write_bytes(path, heatmap_png(result.experiment, result.extra["cells"]))
    return [path]

