"""Byzantine clients in federated policy gradient: FedPG-BR's CartPole setup, every attack × every defence.

Reference: F. X. Fan, Y. Ma, Z. Dai, W. Jing, C. Tan, B. K. H. Low, "Fault-Tolerant Federated Reinforcement
Learning with Theoretical Guarantee", NeurIPS 2021. There, K = 10 policy-gradient agents on CartPole-v1
send gradient estimates to a server; 3 of them are Byzantine (random noise, random action or sign
flipping). CLAIM: plain federated averaging breaks down under such agents, while the FedPG-BR filter
(``fedpg-br``) keeps the performance of the attack-free federation (it tolerates fewer than half
Byzantine agents).

What is reproduced: 10 clients on ``frl/CartPoleHetero-v0`` at heterogeneity 0 (every client is
CartPole-v1), a policy-gradient agent (``reinforce`` with a learned baseline: one gradient step per round
on each client's batch, i.e. a FedPG-style federated policy gradient), 30 % Byzantine clients (chosen by a
seeded draw) running each attack of :mod:`federation.attacks` (``sign-flip``, ``gaussian``, ``scale``,
``zero``, ``random-action``, ``reward-flip``) and the attack-free run, under ``fedavg``, ``median``,
``trimmed-mean`` (β = 0.3 ≥ the Byzantine fraction, Yin et al. 2018), ``krum`` (f = 3, Blanchard et al.
2017) and ``fedpg-br``. The KPI is the greedy return of the final global model (CartPole-v1: ≤ 500), the
mean over all clients' evaluation envs (which are never poisoned). ``summary.md`` gets the final-return
table (``byzantine_markdown``); :func:`plot` draws the attack × defence heat map
(``byzantine_returns.png``).

Scaled down: the filter runs on model updates, not on per-trajectory gradients, with an estimated σ and
without the SCSG server step (see :mod:`federation.strategies.fedpg_br`); training is far shorter than
the paper's 5000 trajectories per agent; one seed. ``--quick`` is a smoke run (seconds).

Measured at the default size (seed 0; one seed, so indicative): FedAvg collapses under sign-flip (9 vs 500
attack-free) and gaussian (95), and for every attack some defence keeps >= 92 % of FedAvg's attack-free
return (trimmed-mean and median mostly). ``fedpg-br`` rejects 98-100 % of the sign-flip, gaussian and scale
uploads (2-4 % of honest ones), yet ended at 192 under gaussian and scale: with every attacker rejected
both runs are the same 7-client federation (identical returns), whose final return at 40 rounds varies by
seed (under gaussian: 192, 499, 322 for seeds 0, 1, 2, all attackers rejected) — learning variance near
the jump in CartPole returns, not a filter failure. Behavioural attacks (random-action, reward-flip) and
``zero`` produce honest-looking updates the filter cannot tell apart (30-82 % rejected).

Clients are made malicious through :class:`ByzantineExperiment`, a subclass of the generic ``Experiment``
whose ``strategy(spec)`` wraps each method with :func:`federation.attacks.with_attack`; so the generic
``run_experiment`` runs the attacks unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from federation.attacks import ATTACKS, make_attack
from federation.strategies import Strategy, parse_spec
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, ScenarioError, cli, run_experiment

NAME = "byzantine"
SUMMARY = ("FedPG-BR's CartPole (10 agents, 3 Byzantine): 6 attacks x fedavg/median/trimmed-mean/krum/fedpg-br "
           "(Fan et al. 2021)")

CLEAN = "none"
DEFENCES = ("fedavg", "median", "trimmed-mean:beta=0.3", "krum:num_byzantine=3", "fedpg-br")
#: "collapse": FedAvg's return under attack at most this share of its attack-free return
COLLAPSE_SHARE = 0.5
#: the claim: the best defence keeps at least this share of FedAvg's attack-free return
KEEP_SHARE = 0.8


@dataclass(frozen=True)
class ByzantineExperiment(Experiment):
    """An ``Experiment`` with Byzantine clients: ``malicious`` (fraction) of the clients, chosen by a draw from
    the seed, run ``attack``. ``run`` repeats the experiment for the attack-free case and every entry of
    ``attacks``; ``attack`` is the one the current repetition uses (``strategy`` wraps each method with it)."""

    malicious: float = field(default=0.3, metadata=cli("fraction of Byzantine clients, [0, 0.5)"))
    # set by each repetition from ``attacks`` (so not a flag here: `--attacks` lists them)
    attack: str = "sign-flip"
    attacks: tuple[str, ...] = field(default=tuple(ATTACKS), metadata=cli(
        f"comma-separated attacks, each 'name' or 'name:key=value' (the attack-free run is always added); "
        f"allowed: {', '.join(ATTACKS)}"))

    def __post_init__(self) -> None:
        super().__post_init__()  # checks malicious and the current repetition's attack
        if not isinstance(self.attacks, tuple):
            raise ScenarioError(f"attacks={self.attacks!r} must be a tuple of attack specs")
        for spec in self.attacks:
            make_attack(spec)  # one line naming a bad attack or parameter
        if len(set(self.attacks)) != len(self.attacks):
            raise ScenarioError(f"attack listed twice in {','.join(self.attacks)}")
        object.__setattr__(self, "_strategies_built", [])

    def strategy(self, spec: str) -> Strategy:
        """The method of ``spec`` with this repetition's attack (``Experiment.strategy``), recorded so the run
        can read a method's own record afterwards (e.g. the filter's decisions)."""
        strategy = super().strategy(spec)
        self._strategies_built.append((spec, strategy))  # type: ignore[attr-defined]
        return strategy

    def describe(self) -> str:
        return (f"{super().describe()}; Byzantine clients {list(self.malicious_clients())} "
                f"({self.malicious:.0%}); attacks: {', '.join(self.attacks)}")


# REINFORCE with a learned baseline; one Adam step per round on each client's 500-step batch (complete
# episodes; tails carry over). lr from short single-seed trials of attack-free FedAvg over 10 clients (40
# rounds): lr = 1e-2 reached 494-500 by round 30-35 with 500- and 1000-step batches; lr = 3e-3 reached ~200.
_AGENT = {"n_steps": 500, "lr": 1e-2, "gamma": 0.99, "normalize_advantage": True, "hidden_sizes": (32, 32)}

FULL = ByzantineExperiment(
    scenario=NAME, env_id="frl/CartPoleHetero-v0", n_clients=10, heterogeneity=0.0, rounds=40,
    steps_per_round=500, eval_every=10, eval_episodes=1, final_eval_episodes=2, agent="reinforce",
    agent_config=_AGENT, strategies=DEFENCES,
)
QUICK = replace(FULL, rounds=3, steps_per_round=300, eval_every=3, final_eval_episodes=1,
                agent_config={**_AGENT, "n_steps": 300}, attacks=("sign-flip", "gaussian"),
                strategies=("fedavg", "median", "fedpg-br"))


def progress_total(exp: ByzantineExperiment) -> int:
    return exp.rounds * len(exp.strategies) * (1 + len(exp.attacks))


def _label(attack: str, spec: str) -> str:
    return f"{attack} / {spec}"


def _filter_rates(history: list[dict[str, Any]], malicious: tuple[int, ...]) -> dict[str, float]:
    """Share of Byzantine uploads the filter rejected, and of honest uploads it rejected, over all rounds."""
    bad = {int(c) for c in malicious}
    rej_bad = sum(len([c for c in h["rejected"] if c in bad]) for h in history)
    rej_good = sum(len([c for c in h["rejected"] if c not in bad]) for h in history)
    n_bad = sum(len([c for c in h["accepted"] + h["rejected"] if c in bad]) for h in history)
    n_good = sum(len(h["accepted"]) + len(h["rejected"]) for h in history) - n_bad
    return {"filter_rejected_byzantine": rej_bad / n_bad if n_bad else float("nan"),
            "filter_rejected_honest": rej_good / n_good if n_good else float("nan")}


_Part = tuple[str, ExperimentResult, dict[str, dict[str, float]]]


def _run_attack(exp: ByzantineExperiment, attack: str, first: bool,
                on_progress: ProgressCallback | None = None) -> _Part:
    """One repetition: every defence under ``attack`` (heuristics only in the first); plus the filter's
    per-method rejection rates (read from the strategies the repetition built)."""
    sub = replace(exp, attack=attack, baselines=exp.baselines if first else ())
    res = run_experiment(sub, on_progress)
    rates = {spec: _filter_rates(strategy.history, exp.malicious_clients())
             for spec, strategy in sub._strategies_built  # type: ignore[attr-defined]
             if parse_spec(spec)[0] == "fedpg-br" and attack != CLEAN}
    return attack, res, rates


def run(exp: ByzantineExperiment, on_progress: ProgressCallback | None = None, *, workers: int = 1,
        ) -> ExperimentResult:
    """The attack-free run and one run per attack, every defence on the same clients and seeds (paired);
    then the final-return table and the claim check. ``workers > 1`` runs the repetitions in that many
    processes (identical results: each repetition depends only on the experiment's seed)."""
    start = time.perf_counter()
    attacks = (CLEAN, *exp.attacks)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_attack, exp, a, i == 0) for i, a in enumerate(attacks)]
            parts = []
            for f in futures:
                parts.append(f.result())
                if on_progress:
                    for spec in exp.strategies:
                        for r in range(1, exp.rounds + 1):
                            on_progress(spec, r, exp.rounds)
    else:
        parts = [_run_attack(exp, a, i == 0, on_progress) for i, a in enumerate(attacks)]
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    for attack, res, rates in parts:
        for name, m in res.methods.items():
            if m["kind"] == "heuristic":
                methods[name] = m
                rows.extend(r for r in res.rows if r[0] == name)
                continue
            label = _label(attack, name)
            methods[label] = {**m, "attack": attack, "defence": name, **rates.get(name, {})}
            rows.extend((label, r, c, k, v) for meth, r, c, k, v in res.rows if meth == name)
    result = ExperimentResult(experiment=exp, rows=rows, methods=methods, client_configs=parts[0][1].client_configs,
                              wall_time_s=time.perf_counter() - start)
    result.extra["byzantine"] = claim_check(exp, methods)
    result.extra["byzantine_markdown"] = byzantine_markdown(exp, result.extra["byzantine"], methods)
    return result


def claim_check(exp: ByzantineExperiment, methods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Final returns per attack and defence, FedAvg's collapse and the best defence's share of FedAvg's
    attack-free return per attack; the attacks no defence survives (share < ``KEEP_SHARE``)."""
    returns = {a: {d: methods[_label(a, d)]["mean_return"] for d in exp.strategies if _label(a, d) in methods}
               for a in (CLEAN, *exp.attacks)}
    fedavg = next((d for d in exp.strategies if parse_spec(d)[0] == "fedavg"), None)
    clean = returns[CLEAN].get(fedavg) if fedavg else None
    out: dict[str, Any] = {"returns": returns, "attack_free_fedavg_return": clean,
                           "malicious_clients": list(exp.malicious_clients()),
                           "collapse_share": COLLAPSE_SHARE, "keep_share": KEEP_SHARE, "per_attack": {}}
    for a in exp.attacks:
        row = returns[a]
        best = max(row, key=row.get)
        share = row[best] / clean if clean else None
        fed_share = row[fedavg] / clean if clean and fedavg in row else None
        out["per_attack"][a] = {"best_defence": best, "best_return": row[best], "best_share": share,
                                "fedavg_share": fed_share,
                                "fedavg_collapsed": fed_share is not None and fed_share <= COLLAPSE_SHARE,
                                "survived": share is not None and share >= KEEP_SHARE}
    out["unsurvived_attacks"] = [a for a, v in out["per_attack"].items() if not v["survived"]]
    return out


def byzantine_markdown(exp: ByzantineExperiment, check: dict[str, Any], methods: dict[str, dict[str, Any]]) -> str:
    heads = list(exp.strategies)
    lines = ["## Byzantine clients: final return of the global model (mean over clients)", "",
             f"{len(check['malicious_clients'])} of {exp.n_clients} clients Byzantine "
             f"({check['malicious_clients']}); 'best share' = best defence's return / FedAvg's attack-free "
             f"return ({_fmt(check['attack_free_fedavg_return'])}); FedAvg 'collapsed' = at most "
             f"{COLLAPSE_SHARE:.0%} of it; an attack is survived when the best share is at least {KEEP_SHARE:.0%}.",
             "", "| attack | " + " | ".join(heads) + " | best defence | best share | FedAvg collapsed |",
             "|" + "---|" * (len(heads) + 4)]
    for a, row in check["returns"].items():
        cells = [a, *[_fmt(row.get(d)) for d in heads]]
        if a == CLEAN:
            cells += ["", "", ""]
        else:
            pa = check["per_attack"][a]
            cells += [pa["best_defence"], _fmt(pa["best_share"], ".0%"), "yes" if pa["fedavg_collapsed"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    filt = [(a, methods[k]) for a in exp.attacks for k in [_label(a, d) for d in heads]
            if k in methods and "filter_rejected_byzantine" in methods[k]]
    if filt:
        lines += ["", "FedPG-BR filter decisions over all rounds (share of uploads rejected):", "",
                  "| attack | Byzantine rejected | honest rejected |", "|---|---|---|"]
        lines += [f"| {a} | {_fmt(m['filter_rejected_byzantine'], '.0%')} | "
                  f"{_fmt(m['filter_rejected_honest'], '.0%')} |" for a, m in filt]
    bad = check["unsurvived_attacks"]
    lines += ["", f"Attacks no defence survives: {', '.join(bad) if bad else 'none'}."]
    return "\n".join(lines)


def _fmt(x: Any, spec: str = ".1f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and x == x else ""


def plot(out: Path, result: ExperimentResult) -> list[Path]:
    """``byzantine_returns.png``: heat map of the final return per attack (rows) and defence (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios.results import _save_fig

    check = result.extra["byzantine"]
    attacks = list(check["returns"])
    defences = list(result.experiment.strategies)
    grid = np.array([[check["returns"][a].get(d, np.nan) for d in defences] for a in attacks], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(defences) + 3, 0.55 * len(attacks) + 2))
    im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=max(500.0, float(np.nanmax(grid)) if grid.size else 500.0),
                   aspect="auto")
    for i in range(len(attacks)):
        for j in range(len(defences)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center",
                        color="white" if grid[i, j] < 250 else "black", fontsize=9)
    ax.set_xticks(range(len(defences)), defences, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(attacks)), attacks, fontsize=8)
    ax.set_xlabel("defence (server aggregation)")
    ax.set_ylabel("attack of the Byzantine clients")
    ax.set_title(f"{result.experiment.scenario}: final return, {len(check['malicious_clients'])} of "
                 f"{result.experiment.n_clients} clients Byzantine")
    fig.colorbar(im, ax=ax, label="mean final return")
    fig.tight_layout()
    path = _save_fig(fig, out / "byzantine_returns.png")
    plt.close(fig)
    return [path]
