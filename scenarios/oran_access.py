"""Federated dueling-DQN user access control in O-RAN with UCB participant selection (Cao et al., TWC 2022).

Reference: Y. Cao, S.-Y. Lien, Y.-C. Liang, K.-C. Chen, X. Shen, "User Access Control in Open Radio Access
Networks: A Federated Deep Reinforcement Learning Approach", IEEE Trans. Wireless Commun. 21(6), 3721-3736,
2022. Every UE trains a DQN that picks its serving cell; a global model server in the near-RT RIC federates
the UEs' DQNs; the UEs that upload are chosen by an upper confidence bound (UCB) and a dueling structure
splits the DQN so only part of it is exchanged. CLAIM (abstract; the paper's figures were not reachable
here, so no number of theirs is quoted): with the proposed scheme each UE maximises its long-term throughput
while avoiding frequent handovers (HOs), outperforming the state of the art; read here as: the UCB-selected
federated dueling DQN gets a higher throughput than max-SINR association and the A3 rule with fewer HOs
than max-SINR, and beats independently trained DQNs and plain FedAvg.

What is reproduced: ``frl/OranAccess-v0`` in its PettingZoo form (every UE of an area acts with the area's
shared-parameter dueling double DQN: a client is one RAN area, i.e. one group of UEs, as in the brief's
"client = a group of UEs"), 3GPP channel (TR 38.901 UMa/UMi, 3 sectors + small cells, truncated Shannon of
TR 36.942, L3-filtered RSRP of TS 38.331). ``N`` heterogeneous areas (``heterogeneity`` 0.5: UE density,
small cells, speeds, shadowing, HO cost and hotspots differ, each area its own deployment). Methods:

* ``ucb`` (the paper's scheme, ``federation/strategies/ucb.py``): every area trains every round; the server
  picks m = round(0.5 N) areas (2 of 5 at full size) by the UCB1 index of their reported training return
  and averages their uploads (the return also reflects how dense an area is, so the bandit's mean favours
  sparse areas; the exploration bonus, scaled by the spread of returns across areas, keeps rotating them);
  only the DQN's feature body is shared, the dueling value and advantage streams stay in the area
  (``personal="head"``; which part of the dueling network Cao et al. upload could not be checked, see the
  strategy's docstring);
* ``fedavg``: every area uploads the whole dueling DQN every round (federated DQN without the two devices);
* ``local``: the same DQN trained per area alone (independent learners, same samples);
* the env's heuristics: ``max-sinr``, ``a3`` (TS 38.331 A3 with offset 3 dB, hysteresis 1 dB, TTT 160 ms on
  L3-filtered RSRP), ``load-aware``, ``nearest``, ``random``.

KPIs per area (summary.md table ``Per-area KPIs``): mean UE throughput (Mbps, HO interruption included),
HOs per UE per minute (``handover`` x 60 s / 0.1 s), ping-pong HOs per UE per minute, and which areas UCB
selected how often. The reward is the env's ln(rate) - HO cost - ping-pong cost.

Scaled down: ``N`` areas of 17-52 UEs (not one DQN per UE: parameter sharing within an area), 10 s episodes
(``episode_steps=100``), 62 k agent-steps per area (12 rounds x 5200); ``steps_per_round`` counts agent-steps and
covers one episode of the largest area, so every area reports a training return each round (the UCB reward).
``--quick`` is a smoke run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from envs.oran_access import OranAccessConfig
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, run_experiment

NAME = "oran-access"
SUMMARY = ("UCB-selected federated dueling DQN (shared body, personal head) vs FedAvg, local DQN, max-SINR "
           "and A3 for O-RAN user access (Cao et al. 2022)")

EPISODE_STEPS = 100
PAPER_METHOD = "ucb"

# Dueling double DQN. gamma 0.9 (a horizon of ~1 s, the ping-pong window): the reward is a per-step log-rate,
# and with 0.99 the Q-values (~ reward / (1 - gamma)) dwarf the differences between cells (as in cv2x).
# train_freq 16: with 17-52 UEs per area an env step gives that many agent-steps, so updates every 16
# agent-steps are still ~1-3 per env step.
_AGENT = {"dueling": True, "double_q": True, "gamma": 0.9, "hidden_sizes": (64, 64), "train_freq": 16,
          "learning_starts": 2000, "exploration_steps": 20_000, "exploration_final_eps": 0.02}

FULL = Experiment(
    scenario=NAME, env_id="frl/OranAccess-v0", n_clients=5, heterogeneity=0.5, rounds=12, steps_per_round=5200,
    eval_every=3, eval_episodes=1, final_eval_episodes=6, agent="dqn", agent_config=_AGENT,
    strategies=(PAPER_METHOD, "fedavg", "local"), env_form="parallel",
    env_overrides={"episode_steps": EPISODE_STEPS},
)
QUICK = replace(FULL, n_clients=3, rounds=2, steps_per_round=2000, eval_every=2, final_eval_episodes=1,
                agent_config={**_AGENT, "learning_starts": 500, "exploration_steps": 2000},
                env_overrides={"episode_steps": 40})


def progress_total(exp: Experiment) -> int:
    return exp.rounds * len(exp.strategies)


def ho_per_minute(handover_per_step: float, step_s: float) -> float:
    """Mean HOs per UE-step → HOs per UE per minute."""
    return float(handover_per_step) * 60.0 / step_s


def per_client_kpis(res: ExperimentResult) -> dict[str, dict[str, list[float]]]:
    """Per method, the final evaluation's KPIs per client (the model each method is scored with)."""
    exp = res.experiment
    final_round = exp.rounds + 1
    n = exp.n_clients
    out: dict[str, dict[str, list[float]]] = {}
    for name, m in res.methods.items():
        prefix = "final/" if m["kind"] == "heuristic" else f"final/{m['evaluated_model']}/"
        vals: dict[str, list[float]] = {k: [float("nan")] * n for k in ("throughput", "handover", "ping_pong",
                                                                        "return")}
        for method, rnd, client, metric, value in res.rows:
            if method == name and rnd == final_round and metric.startswith(prefix):
                key = metric[len(prefix):]
                if key in vals:
                    vals[key][client] = float(value)
        out[name] = vals
    return out


def selection_counts(res: ExperimentResult, method: str = PAPER_METHOD) -> list[int]:
    """How many rounds each client was selected to upload (the ``ucb/selected`` training metric)."""
    counts = [0] * res.experiment.n_clients
    for m, _rnd, client, metric, value in res.rows:
        if m == method and metric == "ucb/selected" and value > 0.5:
            counts[client] += 1
    return counts


def kpi_markdown(res: ExperimentResult, kpis: dict[str, dict[str, list[float]]], step_s: float,
                 selected: list[int] | None) -> str:
    n = res.experiment.n_clients
    lines = ["## Per-area KPIs (final evaluation)", "",
             "Throughput: mean UE throughput in Mbps; HO/min and PP/min: handovers and ping-pongs per UE per minute. "
             "Cells: throughput / HO per min / ping-pong per min.", "",
             "| method | " + " | ".join(f"area {c}" for c in range(n)) + " | mean |", "|" + "---|" * (n + 2)]
    for name in sorted(kpis, key=lambda k: -res.methods[k]["throughput"]):
        v = kpis[name]
        cells = [f"{v['throughput'][c]:.2f} / {ho_per_minute(v['handover'][c], step_s):.1f} / "
                 f"{ho_per_minute(v['ping_pong'][c], step_s):.2f}" for c in range(n)]
        m = res.methods[name]
        cells.append(f"{m['throughput']:.2f} / {ho_per_minute(m['handover'], step_s):.1f} / "
                     f"{ho_per_minute(m['ping_pong'], step_s):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if selected is not None:
        lines += ["", f"Rounds each area was selected by UCB to upload ({res.experiment.rounds} rounds): "
                  + ", ".join(f"area {c}: {k}" for c, k in enumerate(selected)) + "."]
    return "\n".join(lines)


def claim_check(res: ExperimentResult, step_s: float) -> dict[str, Any]:
    """The paper's claim, method by method, in this run's numbers (None where a method was not run)."""
    m = res.methods
    if PAPER_METHOD not in m:
        return {}
    p = m[PAPER_METHOD]
    out: dict[str, Any] = {"method": PAPER_METHOD, "throughput": p["throughput"],
                           "ho_per_min": ho_per_minute(p["handover"], step_s), "mean_return": p["mean_return"]}
    for ref in ("max-sinr", "a3"):
        if ref in m:
            out[f"throughput_gain_vs_{ref}"] = p["throughput"] - m[ref]["throughput"]
            out[f"fewer_ho_per_min_than_{ref}"] = ho_per_minute(m[ref]["handover"] - p["handover"], step_s)
    for ref in ("fedavg", "local"):
        if ref in m:
            out[f"return_gain_vs_{ref}"] = p["mean_return"] - m[ref]["mean_return"]
            out[f"throughput_gain_vs_{ref}"] = p["throughput"] - m[ref]["throughput"]
    checks = [out.get("throughput_gain_vs_max-sinr"), out.get("throughput_gain_vs_a3"),
              out.get("fewer_ho_per_min_than_max-sinr"), out.get("return_gain_vs_fedavg"),
              out.get("return_gain_vs_local")]
    out["held"] = all(c is not None and c > 0 for c in checks) if all(c is not None for c in checks) else None
    return out


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """The generic comparison, plus per-area KPI tables, UCB's selection counts and the claim check."""
    res = run_experiment(exp, on_progress)
    t0 = time.perf_counter()
    step_s = float(exp.env_overrides.get("step_s", OranAccessConfig().step_s))
    kpis = per_client_kpis(res)
    selected = selection_counts(res) if PAPER_METHOD in res.methods else None
    res.extra["per_area_kpis"] = {name: {**v, "ho_per_min": [ho_per_minute(h, step_s) for h in v["handover"]]}
                                  for name, v in kpis.items()}
    if selected is not None:
        res.extra["ucb_selection_counts"] = selected
    res.extra["claim"] = claim_check(res, step_s)
    res.extra["oran_access_markdown"] = kpi_markdown(res, kpis, step_s, selected)
    res.wall_time_s += time.perf_counter() - t0
    return res
