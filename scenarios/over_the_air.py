"""Over-the-air ADMM (A-RLADMM) against digital FedAvg at equal bandwidth and energy, and the effect of SNR.

Reference: M. Krouka, A. Elgabli, C. B. Issaid, M. Bennis, "Communication-Efficient and Federated Multi-Agent
Reinforcement Learning", IEEE Trans. Cogn. Commun. Netw. 8(1), 311-320, 2022. CLAIM (abstract): ADMM with
analog over-the-air aggregation (A-RLADMM) "significantly outperforms" its digital version (D-RLADMM) and the
analog and digital versions of vanilla federated RL (A-FRL, D-FRL) on a multi-agent navigation task. A second
claim implicit in any analog scheme, checked here: the aggregation error falls as the SNR rises and the
return approaches the noise-free sum's.

What is run (``federation/strategies/over_the_air.py`` documents the channel and the equal-resources
accounting): 8 clients on ``frl/CartPoleHetero-v0`` (heterogeneity 0.5), REINFORCE with a learned baseline
(policy gradient, as in the paper; one gradient step per 500-step round), every method with the same samples
per client and the same client seeds (paired): A-RLADMM (``over-the-air``: analog, ADMM, SNR 10 dB, Rayleigh
fading, truncation |h|² < 0.1), D-RLADMM (``channel=digital``), A-FRL (``admm=0``), D-FRL = digital FedAvg at
equal resources (``channel=digital:admm=0``), the noise-free ADMM sum (``channel=ideal``) and exact FedAvg
(``fedavg``). Then an SNR sweep (``SWEEP_SNRS`` dB) of A-RLADMM and D-FRL, in the same run (so paired with the
main methods), reported as ``snr_sweep`` in summary.json (return, worst client, aggregation MSE per round,
clients heard, digital bits per entry) with its table in summary.md and ``snr_sweep.png``.

Scaled down: the paper's task is multi-agent collaborative navigation with policy gradient; here it is the
CartPole heterogeneity testbed, 8 clients, 30 rounds x 500 steps per client (a few CPU-minutes);
``--quick`` is a smoke run (3 clients, 3 rounds x 300 steps), which says nothing about the claims.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, run_experiment

NAME = "over-the-air"
SUMMARY = ("Analog over-the-air ADMM vs digital FedAvg at equal bandwidth/energy, SNR sweep "
           "(A-RLADMM, Krouka et al. 2022)")

# Policy gradient, as in the paper: REINFORCE with a learned baseline, one gradient step per round on the round's
# 500 steps (the byzantine scenario's FedPG-BR CartPole settings, which learn CartPole in tens of rounds)
_AGENT = {"n_steps": 500, "lr": 1e-2, "gamma": 0.99, "normalize_advantage": True, "hidden_sizes": (32, 32)}
DEFAULT_SNR = 10.0  # the strategy's default snr_db: the main run's methods
ANALOG_ADMM = "over-the-air"                          # A-RLADMM
DIGITAL_FEDAVG = "over-the-air:channel=digital:admm=0"  # D-FRL: digital FedAvg at equal resources
SWEEP_FAMILIES = {"A-RLADMM (analog ADMM)": ANALOG_ADMM, "D-FRL (digital FedAvg)": DIGITAL_FEDAVG}
SWEEP_SNRS = (-20.0, -10.0, 0.0, 20.0, 30.0)
REFERENCES = {"noise-free ADMM": "over-the-air:channel=ideal", "FedAvg (exact)": "fedavg"}

FULL = Experiment(
    scenario=NAME, env_id="frl/CartPoleHetero-v0", n_clients=8, heterogeneity=0.5, rounds=30,
    steps_per_round=500, eval_every=5, eval_episodes=1, final_eval_episodes=4, agent="reinforce",
    agent_config=_AGENT,
    strategies=(ANALOG_ADMM, "over-the-air:channel=digital", "over-the-air:admm=0", DIGITAL_FEDAVG,
                "over-the-air:channel=ideal", "fedavg"),
)
QUICK = replace(FULL, n_clients=3, rounds=3, steps_per_round=300, eval_every=3, eval_episodes=1,
                final_eval_episodes=2, agent_config={**_AGENT, "n_steps": 300})


def spec_at(base: str, snr_db: float) -> str:
    """The strategy spec of ``base`` at ``snr_db`` (the base itself at the default SNR)."""
    return base if snr_db == DEFAULT_SNR else f"{base}:snr_db={snr_db:g}"


def _sweep_specs(exp: Experiment) -> tuple[str, ...]:
    extra = [spec_at(b, s) for b in SWEEP_FAMILIES.values() for s in SWEEP_SNRS]
    return tuple(s for s in extra if s not in exp.strategies)


def progress_total(exp: Experiment) -> int:
    return exp.rounds * (len(exp.strategies) + len(_sweep_specs(exp)))


def _round_mean(rows: list[tuple[Any, ...]], method: str, metric: str) -> float | None:
    vals = [v for m, _, c, k, v in rows if m == method and c == -1 and k == metric]
    return float(np.mean(vals)) if vals else None


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """The main methods and the SNR sweep as one paired run, then the sweep table."""
    full = replace(exp, strategies=exp.strategies + _sweep_specs(exp))
    result = run_experiment(full, on_progress)
    snrs = sorted({*SWEEP_SNRS, DEFAULT_SNR})
    sweep: dict[str, Any] = {"snr_db": snrs, "families": {}, "references": {}}
    for label, base in SWEEP_FAMILIES.items():
        points = []
        for snr in snrs:
            spec = spec_at(base, snr)
            m = result.methods.get(spec)
            if m is None:
                continue
            points.append({"snr_db": snr, "spec": spec, "mean_return": m["mean_return"],
                           "worst_client_return": m["worst_client_return"],
                           "aggregation_mse": _round_mean(result.rows, spec, "ota/mse"),
                           "channel_mse": _round_mean(result.rows, spec, "ota/channel_mse"),
                           "active_clients": _round_mean(result.rows, spec, "ota/active"),
                           "bits_per_entry": _round_mean(result.rows, spec, "ota/bits_per_entry")})
        sweep["families"][label] = points
    for label, spec in REFERENCES.items():
        if spec in result.methods:
            sweep["references"][label] = {"spec": spec, "mean_return": result.methods[spec]["mean_return"],
                                          "worst_client_return": result.methods[spec]["worst_client_return"]}
    result.extra["snr_sweep"] = sweep
    result.extra["snr_sweep_markdown"] = sweep_markdown(sweep)
    return result


def sweep_markdown(sweep: dict[str, Any]) -> str:
    lines = ["## SNR sweep (mean / worst-client final return; aggregation MSE per entry, mean over rounds)", "",
             "| method | SNR (dB) | return | worst client | aggregation MSE | channel MSE | clients heard | "
             "bits/entry |", "|---|---|---|---|---|---|---|---|"]

    def f(x: Any, spec: str) -> str:
        return format(x, spec) if isinstance(x, (int, float)) else ""

    for label, points in sweep["families"].items():
        for p in points:
            lines.append(f"| {label} | {p['snr_db']:g} | {p['mean_return']:.1f} | {p['worst_client_return']:.1f} | "
                         f"{f(p['aggregation_mse'], '.3g')} | {f(p['channel_mse'], '.3g')} | "
                         f"{f(p['active_clients'], '.2f')} | {f(p['bits_per_entry'], '.3f')} |")
    for label, ref in sweep["references"].items():
        lines.append(f"| {label} | inf | {ref['mean_return']:.1f} | {ref['worst_client_return']:.1f} | 0 | 0 | all | |")
    return "\n".join(lines)


def plot(out: Path, result: ExperimentResult) -> list[Path]:
    """``snr_sweep.png``: final return and aggregation MSE against SNR, noise-free references as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.results import _save_fig

    sweep = result.extra.get("snr_sweep")
    if not sweep:
        return []
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in sweep["families"].items():
        xs = [p["snr_db"] for p in points]
        ax.plot(xs, [p["mean_return"] for p in points], marker="o", label=label)
        mse = [(p["snr_db"], p["aggregation_mse"]) for p in points if p["aggregation_mse"]]
        if mse:
            bx.semilogy(*zip(*mse, strict=True), marker="o", label=label)
    for i, (label, ref) in enumerate(sweep["references"].items()):
        ax.axhline(ref["mean_return"], ls=("--", ":")[i % 2], color="grey", label=f"{label} (no noise)")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("mean final return over clients")
    ax.set_title(f"{result.experiment.scenario}: return vs SNR")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    bx.set_xlabel("SNR (dB)")
    bx.set_ylabel("aggregation MSE per entry")
    bx.set_title("aggregation error vs SNR")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    path = _save_fig(fig, out / "snr_sweep.png")
    plt.close(fig)
    return [path]
