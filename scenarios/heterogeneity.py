"""Environment heterogeneity: when does a plain federated average stop serving every client?

Reference: H. Jin, Y. Peng, W. Yang, S. Wang, Z. Zhang, "Federated Reinforcement Learning with Environment
Heterogeneity", AISTATS 2022. Their testbed is CartPole whose half pole length differs per client,
0.1 + 0.8·θ with θ ~ U(0, 1); they show that QAvg (FedAvg of Q-networks) converges to a model that can be
sub-optimal for individual clients and propose personalisation through learnable environment embeddings.

What is reproduced: 5 clients on ``frl/CartPoleHetero-v0`` (heterogeneity 1 = Jin et al.'s pole-length
distribution), double DQN, the same samples per client for every method: QAvg (``fedavg``),
``env-embedding``, ``fedper``, ``ditto`` and ``local``. Then a sweep of the heterogeneity level (0, 0.5, 1)
for ``fedavg``, ``fedper`` and ``local``, reporting the gap between the best personalised method and
FedAvg at each level. Scale: the default is minutes on 2 cores; ``--quick`` is a smoke run (seconds).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, run_experiment

NAME = "heterogeneity"
SUMMARY = "CartPole clients with different pole lengths: QAvg vs env-embedding/fedper/ditto/local (Jin et al. 2022)"

_AGENT = {"double_q": True, "lr": 1e-3, "hidden_sizes": (64, 64), "learning_starts": 500, "train_freq": 4,
          "target_update_interval": 250, "exploration_steps": 4000, "batch_size": 64}
SWEEP_LEVELS = (0.0, 0.5, 1.0)
SWEEP_STRATEGIES = ("fedavg", "fedper", "local")


FULL = Experiment(
    scenario=NAME, env_id="frl/CartPoleHetero-v0", n_clients=5, heterogeneity=1.0, rounds=12,
    steps_per_round=1000, eval_every=4, eval_episodes=2, final_eval_episodes=5, agent="dqn",
    agent_config=_AGENT, strategies=("fedavg", "env-embedding", "fedper", "ditto", "local"),
)
QUICK = replace(FULL, n_clients=3, rounds=3, steps_per_round=400, eval_every=3, eval_episodes=1,
                final_eval_episodes=2, agent_config={**_AGENT, "learning_starts": 100, "exploration_steps": 600})


def progress_total(exp: Experiment) -> int:
    sweep = [h for h in SWEEP_LEVELS if h != exp.heterogeneity]
    return exp.rounds * (len(exp.strategies) + len(sweep) * len(SWEEP_STRATEGIES))


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """The main experiment at ``exp.heterogeneity``, then the sweep over the other levels."""
    main = run_experiment(exp, on_progress)
    levels: dict[str, dict[str, Any]] = {}
    results = {exp.heterogeneity: main}
    for h in SWEEP_LEVELS:
        if h in results:
            continue
        sub = replace(exp, heterogeneity=h, strategies=SWEEP_STRATEGIES, baselines=())
        results[h] = run_experiment(sub, on_progress)
    for h in sorted(results):
        r = results[h]
        row = {s: {"mean_return": r.methods[s]["mean_return"],
                   "worst_client_return": r.methods[s]["worst_client_return"]}
               for s in SWEEP_STRATEGIES if s in r.methods}
        personalised = {s: m["mean_return"] for s, m in r.methods.items()
                        if s not in ("fedavg", "local") and m["kind"] != "heuristic"}
        best = max(personalised, key=personalised.get) if personalised else None
        fedavg, local = (r.methods.get(s, {}).get("mean_return") for s in ("fedavg", "local"))
        levels[f"{h:g}"] = {
            "methods": row,
            "best_personalised": best,
            "gap_personalised_minus_fedavg":
                (personalised[best] - fedavg) if best and fedavg is not None else None,
            "fedavg_minus_local": (fedavg - local) if fedavg is not None and local is not None else None,
        }
    main.extra["sweep"] = levels
    main.wall_time_s = sum(r.wall_time_s for r in results.values())
    return main
