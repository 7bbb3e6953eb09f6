"""Grouping by environment type (Nadiger et al. 2019) vs IFCA vs FedAvg, on CartPole and on MEC offloading.

Reference: C. Nadiger, A. Kumar, S. Abdelhak, "Federated Reinforcement Learning for Fast Personalization",
IEEE AIKE 2019: a grouping policy (users federate with users of the same environment type), a learning
policy (a personalised DQN) and a federation policy; CLAIM (abstract): federating within groups personalises
faster - a median ~17 % shorter personalisation time on a Pong non-player character, 3-5 users. Here: grouped
federation gives a higher final return per client than one global model (FedAvg) at the same sample budget,
and it recovers the environment types from observations alone; and how it compares with IFCA's loss-based
cluster choice (Ghosh et al. 2020), the strategy it is most easily confused with
(``federation/strategies/grouping.py`` states the three differences).

What is run: 6 clients on ``frl/CartPoleHetero-v0`` at heterogeneity 1 (half pole lengths 0.1-0.9 m, Jin et
al. 2022), REINFORCE with a learned baseline (one gradient step per 500-step round); ``grouping`` (2 groups
from dynamics signatures, 200 extra probe steps per client in round 1, counted in its samples; bodies
federated across groups, actor and critic heads within), ``ifca`` (2 clusters), ``fedavg`` and ``local``,
the same training samples and seeds for all (paired). Then the same methods on one domain,
``frl/MecOffloading-v0`` (6 edge cells, heterogeneity 1, the mec-offloading scenario's double DQN, 8 rounds x
1000 steps), reported under ``domain`` in summary.json with its table in summary.md. For CartPole the final
assignment of ``grouping`` and ``ifca`` is scored against the hidden pole lengths (``recovery``): the Rand
index of the learned partition against the 2-means split of the true log lengths (the dynamics scale with
1/l; 1 = the same partition; the truth is used only for this score, never by the methods).

Scaled down: the paper's users are Pong players with a DQN; CartPole here runs 30 rounds x 500 steps per
client (minutes on 2 cores); ``--quick`` is a smoke run (4 clients, 3 rounds x 300 steps) that says nothing
about the claims.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from federation.strategies.grouping import kmeans
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, run_experiment

NAME = "grouping"
SUMMARY = ("Grouping by env type from dynamics signatures vs IFCA vs FedAvg, CartPole + MEC "
           "(Nadiger et al. 2019)")

# CartPole: REINFORCE with a learned baseline, one gradient step per 500-step round (the byzantine scenario's
# settings; DQN does not learn CartPole within a few thousand steps per client). Its heads: actor.head, critic.head
_AGENT = {"n_steps": 500, "lr": 1e-2, "gamma": 0.99, "normalize_advantage": True, "hidden_sizes": (32, 32)}
DOMAIN_ENV = "frl/MecOffloading-v0"
_DOMAIN_AGENT = {"double_q": True, "gamma": 0.9, "lr": 1e-3, "hidden_sizes": (128, 128), "exploration_steps": 5000}
DOMAIN_ROUNDS, DOMAIN_STEPS = 8, 1000  # MEC: the DQN of the mec-offloading scenario, 8k steps per cell

FULL = Experiment(
    scenario=NAME, env_id="frl/CartPoleHetero-v0", n_clients=6, heterogeneity=1.0, rounds=30,
    steps_per_round=500, eval_every=5, eval_episodes=1, final_eval_episodes=4, agent="reinforce",
    agent_config=_AGENT, strategies=("grouping", "ifca", "fedavg", "local"),
)
QUICK = replace(FULL, n_clients=4, rounds=3, steps_per_round=300, eval_every=3, eval_episodes=1,
                final_eval_episodes=2, agent_config={**_AGENT, "n_steps": 300})


def domain_experiment(exp: Experiment) -> Experiment:
    """The same methods and clients on the MEC offloading domain with its own DQN; ``DOMAIN_ROUNDS`` x
    ``DOMAIN_STEPS`` at the default size, the CartPole run's rounds x steps when that is smaller (``--quick``)."""
    quick = exp.rounds * exp.steps_per_round < DOMAIN_ROUNDS * DOMAIN_STEPS
    rounds, steps = (exp.rounds, exp.steps_per_round) if quick else (DOMAIN_ROUNDS, DOMAIN_STEPS)
    agent = {**_DOMAIN_AGENT, "learning_starts": 200, "exploration_steps": 600} if quick else _DOMAIN_AGENT
    return replace(exp, env_id=DOMAIN_ENV, agent="dqn", agent_config=agent, rounds=rounds, steps_per_round=steps,
                   eval_every=min(exp.eval_every, rounds), baselines=(), env_overrides={})


def progress_total(exp: Experiment) -> int:
    return (exp.rounds + domain_experiment(exp).rounds) * len(exp.strategies)


def rand_index(a: list[int], b: list[int]) -> float:
    """The Rand index of two partitions (fraction of client pairs on which they agree: together or apart)."""
    n = len(a)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if not pairs:
        return 1.0
    return sum((a[i] == a[j]) == (b[i] == b[j]) for i, j in pairs) / len(pairs)


def final_assignment(rows: list[tuple[Any, ...]], method: str, n_clients: int) -> list[int] | None:
    """Each client's last group (``grouping/group/<c>`` at client −1) or IFCA cluster (``ifca/cluster``)."""
    last: dict[int, tuple[int, float]] = {}
    for m, rnd, c, k, v in rows:
        if m != method:
            continue
        if c == -1 and k.startswith("grouping/group/"):
            cid = int(k.rsplit("/", 1)[1])
        elif k == "ifca/cluster" and c >= 0:
            cid = c
        else:
            continue
        if cid not in last or rnd >= last[cid][0]:
            last[cid] = (rnd, v)
    if len(last) != n_clients:
        return None
    return [int(last[c][1]) for c in range(n_clients)]


def _table(result: ExperimentResult) -> dict[str, Any]:
    return {s: {"mean_return": m["mean_return"], "worst_client_return": m["worst_client_return"],
                **({"cost": m["cost"]} if "cost" in m else {})}
            for s, m in result.methods.items() if m["kind"] != "heuristic"}


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    main = run_experiment(exp, on_progress)
    truth_len = [float(c["half_pole_length"]) for c in main.client_configs if "half_pole_length" in c]
    recovery: dict[str, Any] = {}
    if len(truth_len) == exp.n_clients and exp.n_clients >= 2:
        rng = np.random.default_rng(np.random.SeedSequence(exp.seed).spawn(8)[7])
        truth = kmeans(np.log(np.array(truth_len))[:, None], 2, rng).tolist()
        recovery["true_half_pole_length"] = truth_len
        recovery["true_partition"] = truth
        for spec in exp.strategies:
            assigned = final_assignment(main.rows, spec, exp.n_clients)
            if assigned is not None:
                recovery[spec] = {"assignment": assigned, "rand_index": rand_index(assigned, truth)}
    dom = run_experiment(domain_experiment(exp), on_progress)
    domain = {"env_id": DOMAIN_ENV, "methods": _table(dom), "wall_time_s": dom.wall_time_s,
              "assignments": {s: final_assignment(dom.rows, s, exp.n_clients) for s in exp.strategies}}
    main.extra["recovery"] = recovery
    main.extra["domain"] = domain
    main.extra["grouping_markdown"] = markdown(recovery, domain)
    main.wall_time_s += dom.wall_time_s
    return main


def markdown(recovery: dict[str, Any], domain: dict[str, Any]) -> str:
    lines = []
    if recovery:
        lines += ["## Recovery of the environment types (CartPole, hidden pole lengths)", "",
                  f"True 2-means split of log half pole length "
                  f"{[round(x, 2) for x in recovery['true_half_pole_length']]}: {recovery['true_partition']}", "",
                  "| method | final assignment | Rand index vs truth |",
                  "|---|---|---|"]
        for spec, rec in recovery.items():
            if isinstance(rec, dict) and "rand_index" in rec:
                lines.append(f"| {spec} | {rec['assignment']} | {rec['rand_index']:.2f} |")
        lines.append("")
    lines += [f"## Domain: {domain['env_id']} (mean / worst-client final return)", "",
              "| method | return | worst client | cost | final assignment |", "|---|---|---|---|---|"]
    for spec, m in sorted(domain["methods"].items(), key=lambda kv: -kv[1]["mean_return"]):
        cost = f"{m['cost']:.4g}" if "cost" in m else ""
        lines.append(f"| {spec} | {m['mean_return']:.2f} | {m['worst_client_return']:.2f} | {cost} | "
                     f"{domain['assignments'].get(spec) or ''} |")
    return "\n".join(lines)
