"""Federated transfer RL for autonomous driving: vehicles on different roads learn together, then drive an unseen one.

Reference: X. Liang, Y. Liu, T. Chen, M. Liu, Q. Yang, "Federated Transfer Reinforcement Learning for
Autonomous Driving", arXiv 1910.06001, 2019. Their agents (AirSim simulator cars and real RC cars) drive in
different environments, align their observations into a common space and share one federated model that every
agent acts with while it learns ("online federated transfer"). CLAIM (their abstract and collision-avoidance
experiments): FTRL learns faster and safer than single-vehicle (non-federated local) learning - fewer
collisions, more distance kept (for the RC cars learning with the simulator cars: +27 % average distance to
obstacles, -42 % collisions) - because knowledge transfers between agents in different environments. Here the
transfer is also checked on a road no client trained on.

What is run: ``frl/DrivingTransfer-v0`` (highway-env 1.12.1, optional extra ``driving``) at heterogeneity 1:
half the clients drive the ``highway`` road, half the ``merge`` road with its access ramp (traffic densities
and counts also differ). Methods, each with the same DQN and the same env steps per client: ``ftrl`` (personal
observation alignment + FedAvg'd network, ``federation/strategies/ftrl.py``), ``local`` (single-vehicle learning:
each vehicle alone) and ``fedavg`` (federation without alignment), plus the env's heuristics (idle, rule-based,
random). Reported beyond the generic contract: per method the ``auc_return`` (mean over the round
evaluations of the clients' return: learning speed), and ``unseen_*``: return, collision rate, speed and
distance on the UNSEEN road (``unseen_road``, the roundabout by default, whose highway-env observation uses
absolute instead of ego-relative coordinates) over ``unseen_episodes`` episodes. Each method's shared model
drives there: FedAvg's global model as is; FTRL's global model behind a new alignment the unseen vehicle fits
on its own first ``unseen_warmup`` observations while driving with that model (no reward, no learning); for
``local`` (no shared model) every vehicle's own model is scored there and averaged. The heuristics are scored
there too.

Scaled down (highway-env steps at ~100-200 per CPU-second here): 4 vehicles x 8 rounds x 400 steps (3200
env steps per vehicle; [1] trains for hours on real cars), DQN with highway-env's documented SB3 DQN settings
(gamma 0.8, lr 5e-4, batch 32, target update every 50 steps, train every step) but (128, 128) hidden units
instead of (256, 256); ``--quick`` is a smoke run (2 vehicles, 2 x 100 steps). The claim is checked on the
numbers the run reports (``claim`` in summary.json), not asserted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents import agent_class
from envs.driving import ROADS, DrivingConfig, highway_classes
from envs.knobs import apply_overrides
from envs.registry import env_entry
from federation import evaluate_policy, run_federation
from federation.strategies.ftrl import AlignedObservation, AlignmentHook, fit_alignment
from scenarios.experiment import (
    METHOD_SINK,
    Experiment,
    ExperimentResult,
    ProgressCallback,
    ScenarioError,
    cli,
    client_setup,
    make_pool,
    method_summary,
    score_heuristics,
)

NAME = "driving-transfer"
SUMMARY = ("FTRL vs single-vehicle learning vs FedAvg on highway/merge roads, then an unseen roundabout "
           "(Liang et al. 2019, arXiv 1910.06001; needs the 'driving' extra)")
CHECKPOINTABLE = False
CHECKPOINT_WHY = "its unseen-road evaluation reads every method's trained models at the end of the run"

_declaring = True  # FULL / QUICK are declared at import, where the optional extra is not required


@dataclass(frozen=True)
class DrivingExperiment(Experiment):
    """An ``Experiment`` on ``frl/DrivingTransfer-v0`` plus the evaluation on a road no client trains on."""

    unseen_road: str = field(default="roundabout", metadata=cli(
        f"road type no client trains on, where each method's shared model is scored; allowed: {', '.join(ROADS)}"))
    unseen_episodes: int = field(default=20, metadata=cli("episodes on the unseen road per model"))
    unseen_warmup: int = field(default=200, metadata=cli(
        "observations an FTRL vehicle on the unseen road fits its alignment on (no reward, no learning)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unseen_road not in ROADS:
            raise ScenarioError(f"unseen_road={self.unseen_road!r} is not a road type; allowed: {', '.join(ROADS)}")
        for name in ("unseen_episodes", "unseen_warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                raise ScenarioError(f"{name}={v!r} is out of range; allowed: integer in [1, 100000]")
        if self.env_id != "frl/DrivingTransfer-v0":
            raise ScenarioError(f"env_id={self.env_id!r}; allowed: frl/DrivingTransfer-v0")
        if self.backend != "inprocess":
            raise ScenarioError(f"backend={self.backend!r}: the unseen-road evaluation reads the trained models "
                                "in this process; allowed: inprocess")
        if not _declaring:
            highway_classes()  # one line naming the install command when the extra is missing (before any run)
            roads = {c.road for c in client_setup(self).configs}
            if self.unseen_road in roads:
                raise ScenarioError(f"unseen_road={self.unseen_road!r} is a road the clients train on "
                                    f"({', '.join(sorted(roads))}); allowed: one of "
                                    f"{', '.join(r for r in ROADS if r not in roads)}")


# highway-env's documented SB3 DQN example (gamma 0.8, lr 5e-4, buffer 15k, batch 32, learning_starts 200,
# target update 50, train every step); (128, 128) hidden units instead of (256, 256) for the CPU budget
_AGENT = {"gamma": 0.8, "lr": 5e-4, "buffer_size": 15_000, "batch_size": 32, "learning_starts": 200,
          "train_freq": 1, "gradient_steps": 1, "target_update_interval": 50, "hidden_sizes": (128, 128),
          "exploration_steps": 2000, "exploration_final_eps": 0.05}

FULL = DrivingExperiment(
    scenario=NAME, env_id="frl/DrivingTransfer-v0", n_clients=4, heterogeneity=1.0, rounds=8, steps_per_round=400,
    eval_every=2, eval_episodes=2, final_eval_episodes=10, agent="dqn", agent_config=_AGENT,
    strategies=("ftrl", "local", "fedavg"), unseen_road="roundabout", unseen_episodes=20, unseen_warmup=200,
)
QUICK = replace(FULL, n_clients=2, rounds=2, steps_per_round=100, eval_every=2, eval_episodes=1,
                final_eval_episodes=2, unseen_episodes=2, unseen_warmup=30,
                agent_config={**_AGENT, "learning_starts": 50, "exploration_steps": 150})
_declaring = False

UNSEEN_KPIS = ("return", "collision", "speed", "distance")


def _unseen_config(exp: DrivingExperiment) -> DrivingConfig:
    return apply_overrides(DrivingConfig(), {**dict(exp.env_overrides), "road": exp.unseen_road})


def _unseen_seeds(exp: DrivingExperiment) -> tuple[list[int], int]:
    """The unseen road's evaluation episodes and the alignment warm-up seed (child 8 of the scenario seed;
    children 0-6 are the generic runner's)."""
    seq = np.random.SeedSequence(exp.seed).spawn(9)[8]
    episodes, warm = seq.spawn(2)
    return [int(s) for s in episodes.generate_state(exp.unseen_episodes)], int(warm.generate_state(1)[0])


def _scores(ev: dict[str, float]) -> dict[str, float]:
    return {k: float(ev[k]) for k in UNSEEN_KPIS}


def _unseen_eval(exp: DrivingExperiment, pool: Any, strategy: Any, global_weights: Any,
                 final_round: int) -> dict[str, float]:
    """The method's shared model on the unseen road (module docstring): FTRL behind a freshly fitted alignment,
    FedAvg as is; without a shared model (local), the mean over the vehicles' own models."""
    entry = env_entry(exp.env_id)
    cfg = _unseen_config(exp)
    seeds, warm_seed = _unseen_seeds(exp)
    models = strategy.configure_evaluate(final_round, global_weights, [pool.ids[0]])
    clients = pool.clients
    if not models:  # independent learners: each vehicle's own model
        evs = []
        for c in clients:
            agent = c.agent
            evs.append(evaluate_policy(gym.make(exp.env_id, config=cfg), lambda o, a=agent: a.act(o, explore=False),
                                       seeds, entry.kpis, entry.kpi_weight))
        return {k: float(np.mean([e[k] for e in evs])) for k in UNSEEN_KPIS}
    first = clients[0]
    agent = first.make_agent()
    full = first.agent.get_weights()
    full.update(models[pool.ids[0]])
    agent.set_weights(full)
    greedy = lambda o: agent.act(o, explore=False)  # noqa: E731
    env = gym.make(exp.env_id, config=cfg)
    if isinstance(first.hook, AlignmentHook):
        alignment = fit_alignment(gym.make(exp.env_id, config=cfg), greedy, exp.unseen_warmup, warm_seed,
                                  clip=first.hook.clip)
        env = AlignedObservation(env, alignment, fit=False)
    return _scores(evaluate_policy(env, greedy, seeds, entry.kpis, entry.kpi_weight))


def _unseen_heuristics(exp: DrivingExperiment, names: list[str]) -> dict[str, dict[str, float]]:
    entry = env_entry(exp.env_id)
    seeds, _ = _unseen_seeds(exp)
    out = {}
    for i, name in enumerate(names):
        env = gym.make(exp.env_id, config=_unseen_config(exp))
        out[name] = _scores(evaluate_policy(env, entry.baselines[name](env, seeds[0] + i), seeds, entry.kpis,
                                            entry.kpi_weight))
    return out


def _auc(history: Any) -> float:
    """Learning speed: the mean over round evaluations of the clients' mean return (global model if any)."""
    kind = "global/return" if history.series("global/return") else "own/return"
    by_round: dict[int, list[float]] = {}
    for rnd, v in history.series(kind):
        by_round.setdefault(rnd, []).append(v)
    return float(np.mean([np.mean(v) for v in by_round.values()])) if by_round else float("nan")


def claim_check(methods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The paper's claim on this run's numbers: FTRL vs single-vehicle learning (and vs FedAvg)."""
    out: dict[str, Any] = {}
    if "ftrl" in methods and "local" in methods:
        f, loc = methods["ftrl"], methods["local"]
        out["ftrl_faster_than_local"] = bool(f["auc_return"] > loc["auc_return"])
        out["ftrl_fewer_collisions_than_local"] = bool(f["collision"] < loc["collision"])
        out["ftrl_higher_return_than_local"] = bool(f["mean_return"] > loc["mean_return"])
        out["ftrl_transfers_better_than_local"] = bool(f["unseen_return"] > loc["unseen_return"])
    if "ftrl" in methods and "fedavg" in methods:
        ftrl, fedavg = methods["ftrl"], methods["fedavg"]
        out["ftrl_transfers_better_than_fedavg"] = bool(ftrl["unseen_return"] > fedavg["unseen_return"])
    return out


def progress_total(exp: Experiment) -> int:
    return exp.rounds * len(exp.strategies)


def run(exp: DrivingExperiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """The generic runner's per-method loop (same clients, seeds and budgets for every method), plus the
    learning-speed and unseen-road scores of each method and of each heuristic."""
    if not isinstance(exp, DrivingExperiment):
        raise ScenarioError(f"{NAME} runs a DrivingExperiment; got {type(exp).__name__}")
    start = time.perf_counter()
    entry = env_entry(exp.env_id)
    agent_class(exp.agent)
    setup = client_setup(exp)
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    final_round = exp.rounds + 1
    for spec in exp.strategies:
        strategy = exp.strategy(spec)
        t0 = time.perf_counter()
        fed = setup.federation_seed
        with make_pool(exp, spec, setup) as pool:
            history = run_federation(
                pool, strategy, rounds=exp.rounds,
                seed=np.random.SeedSequence(fed.entropy, spawn_key=fed.spawn_key), fraction=exp.fraction,
                eval_every=exp.eval_every, eval_seeds=setup.eval_seeds, system=exp.system(setup.devices),
                on_round=(lambda r, h, s=spec: on_progress(s, r, exp.rounds)) if on_progress else None)
            models: dict[int, Any] = {}
            for cid in pool.ids:
                models.update(strategy.configure_evaluate(final_round, history.global_weights, [cid]))
            finals = pool.evaluate(models, {cid: setup.final_seeds[cid] for cid in pool.ids})
            train_time = time.perf_counter() - t0
            unseen = _unseen_eval(exp, pool, strategy, history.global_weights, final_round)
        rows.extend((spec, r, c, m, v) for r, c, m, v in history.rows)
        extra = {"auc_return": _auc(history), **{f"unseen_{k}": v for k, v in unseen.items()}}
        final_rows, methods[spec] = method_summary(spec, final_round, finals, history, strategy, train_time, entry,
                                                   exp.n_clients, extra)
        rows.extend(final_rows)
        rows.extend((spec, final_round, -1, f"unseen/{k}", v) for k, v in unseen.items())
        sink = METHOD_SINK.get()
        if sink is not None:  # the CLI keeps each finished method, so a later failure loses nothing
            sink(exp.scenario, spec, methods[spec], [r for r in rows if r[0] == spec])
    h_rows, h_methods = score_heuristics(exp, setup)
    rows.extend(h_rows)
    for name, scores in _unseen_heuristics(exp, list(h_methods)).items():
        h_methods[name].update({f"unseen_{k}": v for k, v in scores.items()})
        rows.extend((name, final_round, -1, f"unseen/{k}", v) for k, v in scores.items())
    methods.update(h_methods)
    claim = claim_check(methods)
    return ExperimentResult(
        experiment=exp, rows=rows, methods=methods,
        client_configs=[{**c.__dict__} for c in setup.configs], wall_time_s=time.perf_counter() - start,
        extra={"claim": claim, "unseen_road": exp.unseen_road, "unseen_markdown": unseen_markdown(exp, methods, claim)})


def unseen_markdown(exp: DrivingExperiment, methods: dict[str, dict[str, Any]], claim: dict[str, Any]) -> str:
    lines = [f"## Learning speed and the unseen road ({exp.unseen_road}, {exp.unseen_episodes} episodes)", "",
             "| method | auc return | final return | collisions | unseen return | unseen collisions "
             "| unseen distance (m) |",
             "|---|---|---|---|---|---|---|"]
    for name, m in methods.items():
        auc = f"{m['auc_return']:.2f}" if "auc_return" in m else "-"
        lines.append(f"| {name} | {auc} | {m['mean_return']:.2f} | {m['collision']:.2f} | {m['unseen_return']:.2f} | "
                     f"{m['unseen_collision']:.2f} | {m['unseen_distance']:.0f} |")
    lines += ["", "Claim checks: " + (", ".join(f"{k}={v}" for k, v in claim.items()) or "(methods missing)")]
    return "\n".join(lines)


def plot(out: Path, result: ExperimentResult) -> list[Path]:
    """Bar chart of the unseen-road return and collision rate per method and heuristic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.results import _save_fig

    names = list(result.methods)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in ((axes[0], "unseen_return", "return"), (axes[1], "unseen_collision", "collision rate")):
        ax.bar(names, [result.methods[n][key] for n in names], color="tab:blue")
        ax.set_title(f"unseen {result.extra.get('unseen_road', '')}: {label}")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return [_save_fig(fig, out / "unseen_road.png")]
