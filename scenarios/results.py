"""Writes a run's results: config.json, metrics.csv, summary.json, summary.md and PNG plots.

Every file is written atomically (temp file in the same directory, then ``os.replace``), so a crash never
leaves a half-written result, and a directory that already holds results is refused rather than
overwritten.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from scenarios.experiment import ExperimentResult, ScenarioError

RESULT_FILES = ("config.json", "metrics.csv", "summary.json", "summary.md",
                "learning_curves.png", "per_client_return.png", "per_client_kpis.png", "heterogeneity_sweep.png")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


STATUS_FILE = "status.json"  # {"state": "running" | "complete", ...}: a killed run stays "running"


def prepare_out_dir(out: Path) -> Path:
    """Create ``out`` and claim it for this run, exclusively: two runs started at once with the same ``--out``
    cannot both get it (``status.json`` is created with O_EXCL), and a directory that already holds results
    or another run's status is refused (nothing written is ever overwritten)."""
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise ScenarioError(f"--out {str(out)!r}: {str(parent)!r} exists and is not a directory")
    existing = [f for f in (*RESULT_FILES, STATUS_FILE) if (out / f).exists()]
    if existing:
        raise ScenarioError(f"--out {str(out)!r} already holds a run ({', '.join(existing)}); "
                            "choose a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / STATUS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ScenarioError(f"--out {str(out)!r} was just claimed by another run; choose a new directory") from None
    except OSError as e:
        raise ScenarioError(f"--out {str(out)!r} cannot be written: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"state": "running", "pid": os.getpid(), "started": time.time()}) + "\n")
    return out


def partial_writer(out: Path) -> Any:
    """A ``METHOD_SINK``: each finished method's summary and rows, atomically, in ``out/partial/`` — kept if a
    later method fails, so finished work is never thrown away (the final files are written at the end)."""
    def write(scenario: str, method: str, summary: dict[str, Any], rows: list[tuple[Any, ...]]) -> None:
        part = out / "partial"
        try:
            part.mkdir(exist_ok=True)
        except OSError:
            return
        name = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in method)
        text = json.dumps(_json_safe({"scenario": scenario, "method": method, "summary": summary,
                                      "rows": [list(r) for r in rows]})) + "\n"
        try:
            existing = sorted(part.glob("*.json"))
            if any(p.name.endswith(f"-{scenario}-{name}.json") and _same_method(p.read_text(), text) for p in existing):
                return  # a resumed run finishing a method the killed run had stored already
            atomic_write_text(part / f"{len(existing):02d}-{scenario}-{name}.json", text)
        except OSError:  # best effort: a full disk must not end the run here (the final write reports it)
            pass
    return write


def _same_method(a: str, b: str) -> bool:
    """Whether two stored methods are the same result (timings aside: they differ between processes)."""
    try:
        x, y = json.loads(a), json.loads(b)
        for d in (x, y):
            d["summary"].pop("train_time_s", None)
        return bool(x == y)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def unique_run_dir(root: Path) -> Path:
    """``root/<timestamp>-<pid>``: distinct for runs started in the same second (the claim settles the rest)."""
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def mark_complete(out: Path, files: list[Path]) -> None:
    """The last write of a run: only a run that reached its end says ``complete``."""
    atomic_write_text(out / STATUS_FILE, json.dumps({"state": "complete", "finished": time.time(),
                                                     "files": sorted(p.name for p in files)}) + "\n")


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_results(out: Path, result: ExperimentResult, *, extra_config: dict[str, Any] | None = None,
                  plot: Any = None) -> list[Path]:
    """Write every result file into ``out`` (which ``prepare_out_dir`` has checked) and return their paths."""
    exp = result.experiment
    config = {"experiment": exp.to_dict(), "client_configs": result.client_configs, **(extra_config or {})}
    atomic_write_text(out / "config.json", json.dumps(_json_safe(config), indent=2) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "round", "client", "metric", "value"])
    for method, rnd, client, metric, value in result.rows:
        w.writerow([method, rnd, client, metric, repr(float(value))])
    atomic_write_text(out / "metrics.csv", buf.getvalue())

    summary = {"scenario": exp.scenario, "env_id": exp.env_id, "seed": exp.seed,
               "wall_time_s": result.wall_time_s, "methods": result.methods, **result.extra}
    atomic_write_text(out / "summary.json", json.dumps(_json_safe(summary), indent=2) + "\n")
    atomic_write_text(out / "summary.md", summary_markdown(result))
    paths = [out / f for f in ("config.json", "metrics.csv", "summary.json", "summary.md")]
    paths += plot_results(out, result)
    if plot is not None:  # a scenario's own figures: ``plot(out, result) -> [paths]`` (written with _save_fig)
        paths += list(plot(out, result))
    if (out / STATUS_FILE).exists():
        mark_complete(out, paths)
    return paths


def summary_markdown(result: ExperimentResult) -> str:
    from envs.registry import ENV_ENTRIES

    exp = result.experiment
    methods = result.methods
    kpis = list(ENV_ENTRIES[exp.env_id].kpis) if exp.env_id in ENV_ENTRIES else []
    others = sorted({k[len("mean_"):-len("_model_return")] for m in methods.values() for k in m
                     if k.startswith("mean_") and k.endswith("_model_return")})
    head = ["method", "kind", "model", "mean return", "worst-client return", *kpis,
            *[f"{o} model mean return" for o in others], "sim time (s)", "MB moved"]
    lines = [f"# {exp.scenario}: {exp.env_id}", "",
             f"{exp.describe()}; final evaluation over {exp.final_eval_episodes} episodes per client "
             f"(the same episode seeds for every method). 'model' is the model each client is scored with "
             f"(global = the server's model for that client with its personal parameters; personal = Ditto's, "
             f"APFL's mixture or the fine-tuned model; own = the independently trained one). Sorted by mean return.",
             "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(x: Any, spec: str = ".4g") -> str:
        return format(x, spec) if isinstance(x, (int, float)) else ""

    for name, m in sorted(methods.items(), key=lambda kv: -kv[1]["mean_return"]):
        cells = [name, m["kind"], m.get("evaluated_model", "policy"), fmt(m["mean_return"], ".3f"),
                 fmt(m["worst_client_return"], ".3f"), *[fmt(m.get(k)) for k in kpis],
                 *[fmt(m.get(f"mean_{o}_model_return"), ".3f") for o in others],
                 fmt(m.get("sim_wall_clock_s"), ".1f"),
                 fmt(m["bytes_communicated"] / 1e6, ".2f") if "bytes_communicated" in m else ""]
        lines.append("| " + " | ".join(cells) + " |")
    sweep = result.extra.get("sweep")
    if sweep:
        strategies = sorted({s for lvl in sweep.values() for s in lvl["methods"]})
        lines += ["", "## Heterogeneity sweep (mean / worst-client return)", "",
                  "| heterogeneity | " + " | ".join(strategies) +
                  " | best personalised − fedavg | fedavg − local |",
                  "|" + "---|" * (len(strategies) + 3)]
        for h, lvl in sweep.items():
            cells = [h] + [f"{lvl['methods'][s]['mean_return']:.1f} / {lvl['methods'][s]['worst_client_return']:.1f}"
                           if s in lvl["methods"] else "" for s in strategies]
            gap = lvl["gap_personalised_minus_fedavg"]
            cells += [f"{gap:+.1f} ({lvl['best_personalised']})" if gap is not None else "",
                      f"{lvl['fedavg_minus_local']:+.1f}" if lvl["fedavg_minus_local"] is not None else ""]
            lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for name, m in methods.items():
        if m.get("kind") != "heuristic" and m.get("samples_trained") == 0:
            notes.append(f"- **{name} trained nothing**: no client result was accepted in any round (its row scores "
                         f"the initial model).")
        faults = {k: v for k, v in (m.get("faults") or {}).items() if v}
        if faults or m.get("skipped_rounds"):
            notes.append(f"- {name}: client results left out: "
                         f"{', '.join(f'{v} {k}' for k, v in faults.items()) or 'none'}; "
                         f"rounds skipped: {m.get('skipped_rounds', 0)}.")
    if notes:
        lines += ["", "## Faults and dropped work", "", *notes]
    for key in sorted(k for k in result.extra if k.endswith("_markdown")):  # a scenario's own tables
        lines += ["", str(result.extra[key]).rstrip()]
    lines += ["", f"Wall time: {result.wall_time_s:.1f} s.", ""]
    return "\n".join(lines)


def plot_results(out: Path, result: ExperimentResult) -> list[Path]:
    """Learning curves (mean over clients per round) and final per-client returns, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for method, rnd, _client, metric, value in result.rows:
        if metric == "global/return":
            curves[f"{method} (global model)"][rnd].append(value)
        elif metric == "own/return":
            curves[f"{method} (own model)"][rnd].append(value)
        elif metric == "personal/return":
            curves[f"{method} (personal model)"][rnd].append(value)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, by_round in curves.items():
        rs = sorted(by_round)
        ax.plot(rs, [sum(by_round[r]) / len(by_round[r]) for r in rs], marker="o", ms=3, label=label)
    heuristics = [(n, m) for n, m in result.methods.items() if m["kind"] == "heuristic"]
    cmap = plt.get_cmap("Greys")
    for i, (name, m) in enumerate(sorted(heuristics, key=lambda nm: -nm[1]["mean_return"])):
        shade = cmap(0.85 - 0.55 * i / max(len(heuristics) - 1, 1))
        ax.axhline(m["mean_return"], ls=(0, (4, 2 + i)), lw=1.2, color=shade, label=f"{name} (heuristic)")
    ax.set_xlabel("round")
    ax.set_ylabel("mean evaluation return over clients")
    ax.set_title(f"{result.experiment.scenario}: learning curves")
    n_labels = len(ax.get_legend_handles_labels()[1])  # many curves (a multi-domain scenario): more columns
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 + n_labels // 28)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths = [_save_fig(fig, out / "learning_curves.png")]
    plt.close(fig)

    names = sorted(result.methods, key=lambda n: -result.methods[n]["mean_return"])
    n_clients = max(len(m["per_client_return"]) for m in result.methods.values())
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * n_clients + 3), 4.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        vals = result.methods[name]["per_client_return"]
        ax.bar([c + i * width for c in range(len(vals))], vals, width=width, label=name)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(n_clients)], [str(c) for c in range(n_clients)])
    ax.set_xlabel("client")
    ax.set_ylabel("final evaluation return")
    ax.set_title(f"{result.experiment.scenario}: per-client return")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    paths.append(_save_fig(fig, out / "per_client_return.png"))
    plt.close(fig)

    kpi_plot = _plot_client_kpis(out, result, names, n_clients)
    if kpi_plot is not None:
        paths.append(kpi_plot)

    sweep = result.extra.get("sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        levels = sorted(sweep, key=float)
        strategies = sorted({s for lvl in sweep.values() for s in lvl["methods"]})
        for strat in strategies:
            xs = [float(h) for h in levels if strat in sweep[h]["methods"]]
            ys = [sweep[h]["methods"][strat]["mean_return"] for h in levels if strat in sweep[h]["methods"]]
            ax.plot(xs, ys, marker="o", label=strat)
        ax.set_xlabel("heterogeneity level")
        ax.set_ylabel("mean final return over clients")
        ax.set_title(f"{result.experiment.scenario}: return vs heterogeneity")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save_fig(fig, out / "heterogeneity_sweep.png"))
        plt.close(fig)
    return paths


def _plot_client_kpis(out: Path, result: ExperimentResult, names: list[str], n_clients: int) -> Path | None:
    """One panel per domain KPI: its final value per client and method (``per_client_<kpi>`` in the summary)."""
    import matplotlib.pyplot as plt

    kpis = sorted({k[len("per_client_"):] for m in result.methods.values() for k in m
                   if k.startswith("per_client_") and k != "per_client_return"})
    if not kpis:
        return None
    fig, axes = plt.subplots(len(kpis), 1, figsize=(max(7, 0.9 * n_clients + 3), 2.6 * len(kpis) + 0.6),
                             squeeze=False)
    width = 0.8 / max(len(names), 1)
    for ax, kpi in zip(axes[:, 0], kpis, strict=True):
        for i, name in enumerate(names):
            vals = result.methods[name].get(f"per_client_{kpi}")
            if vals:
                ax.bar([c + i * width for c in range(len(vals))], vals, width=width, label=name)
        ax.set_ylabel(kpi)
        ax.set_xticks([c + 0.4 - width / 2 for c in range(n_clients)], [str(c) for c in range(n_clients)])
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_title(f"{result.experiment.scenario}: domain KPIs per client (final evaluation)")
    axes[-1, 0].set_xlabel("client")
    axes[0, 0].legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path = _save_fig(fig, out / "per_client_kpis.png")
    plt.close(fig)
    return path


def _save_fig(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path
