"""``frl``: the command line, a thin layer over the scenario, env, agent and strategy registries.

Bad input (unknown names, out-of-range knobs, malformed numbers) exits with status 2 and one line naming
the bad value and what is allowed — never a traceback. Only this module prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """Raised by the parser instead of printing usage; turned into one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _bounded_int(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed: integer in [{lo}, {hi}]") \
                from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: integer in [{lo}, {hi}]")
        return value

    parse.__name__ = name
    return parse


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed: [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: [0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="frl", description="Federated reinforcement learning in real application domains.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="{list,run,train}")
    sub.required = True
    ls = sub.add_parser("list", help="list envs (with baselines), agents, strategies and scenarios")
    ls.add_argument("--json", action="store_true", help="print the same as JSON")
    run = sub.add_parser("run", help="run a paper-style scenario and write results")
    run.add_argument("scenario", help="scenario name (see `frl list`)")
    run.add_argument("--quick", action="store_true", help="smoke-sized run (seconds)")
    run.add_argument("--seed", type=_bounded_int("seed", 0, 2**32 - 1), default=0)
    run.add_argument("--out", type=Path, default=None, help="results directory (default runs/<scenario>/<time>)")
    run.add_argument("--clients", type=_bounded_int("clients", 1, 1000), default=None)
    run.add_argument("--rounds", type=_bounded_int("rounds", 1, 100_000), default=None)
    run.add_argument("--heterogeneity", type=_unit_float, default=None)
    run.add_argument("--strategy", default=None,
                     help="comma-separated strategies, each 'name' or 'name:key=value' (see `frl list`)")
    run.add_argument("--device-heterogeneity", type=_unit_float, default=None,
                     help="spread of client compute speed, bandwidth and availability in [0, 1]")
    run.add_argument("--round-policy", default=None, help="synchronous | deadline:deadline_s=S | buffered-async:k=K")
    run.add_argument("--compression", default=None, help="none | int8 | topk:ratio=R")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tr = sub.add_parser("train", help="train one agent alone (no federation) on any registered env")
    tr.add_argument("agent", help="agent name (see `frl list`)")
    tr.add_argument("env_id", help="env id: frl/<Name>-v0 or a Gymnasium id such as CartPole-v1")
    tr.add_argument("--steps", type=_bounded_int("steps", 1, 10**9), default=50_000)
    tr.add_argument("--seed", type=_bounded_int("seed", 0, 2**32 - 1), default=0)
    tr.add_argument("--out", type=Path, default=None, help="results directory (default runs/train-<agent>/<time>)")
    tr.add_argument("--save", type=Path, default=None, help="also save the trained agent (checkpoint file)")
    tr.add_argument("--parallel", action="store_true",
                    help="train on the env's PettingZoo form: one agent with shared parameters acts for all agents")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def catalog() -> dict[str, Any]:
    """Everything `frl list` shows, as plain data."""
    import envs
    from agents import AGENTS
    from federation.strategies import DESCRIPTIONS, STRATEGIES
    from scenarios import SCENARIOS

    return {
        "envs": [
            {"id": e.env_id, "name": e.name, "summary": e.summary, "baselines": list(e.baselines),
             "kpis": list(e.kpis), "parallel_env": e.parallel_entry_point,
             "entry_point": e.entry_point}
            for e in envs.ENV_ENTRIES.values()
        ],
        "agents": [{"name": n, "summary": " ".join((c.__doc__ or "").strip().split("\n\n")[0].split())}
                   for n, c in AGENTS.items()],
        "strategies": [{"name": n, "summary": DESCRIPTIONS.get(n, "")} for n in STRATEGIES],
        "scenarios": [{"name": n, "summary": m.SUMMARY} for n, m in SCENARIOS.items()],
    }


def cmd_list(args: argparse.Namespace) -> int:
    cat = catalog()
    if args.json:
        print(json.dumps(cat, indent=2))
        return 0
    print("Environments:")
    for e in cat["envs"]:
        print(f"  {e['id']:<28} {e['summary']}")
        if e["parallel_env"]:
            print(f"  {'':<28} PettingZoo parallel_env: {e['parallel_env']}")
        print(f"  {'':<28} baselines: {', '.join(e['baselines'])}")
    print("Agents:")
    for a in cat["agents"]:
        print(f"  {a['name']:<28} {a['summary']}")
    print("Strategies:")
    for s in cat["strategies"]:
        print(f"  {s['name']:<28} {s['summary']}")
    print("Scenarios:")
    for s in cat["scenarios"]:
        print(f"  {s['name']:<28} {s['summary']}")
    return 0


def _spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"deadline:deadline_s=30"`` → ``("deadline", {"deadline_s": 30})``; every value must be a number."""
    from federation.strategies import parse_spec
    from federation.types import FederationError

    name, params = parse_spec(text)
    for key, val in params.items():
        if isinstance(val, str):
            raise FederationError(f"parameter {key}={val!r} in {text!r} is not a number")
    return name, params


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from scenarios import scenario_module
    from scenarios.experiment import Experiment, run_experiment
    from scenarios.results import prepare_out_dir, write_results

    # The agents' networks are small: one intra-op thread is faster than two fighting over tiny matmuls.
    torch.set_num_threads(1)
    module = scenario_module(args.scenario)
    exp = module.experiment(quick=args.quick)
    changes: dict[str, Any] = {"seed": args.seed}
    if args.clients is not None:
        changes["n_clients"] = args.clients
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if args.heterogeneity is not None:
        changes["heterogeneity"] = args.heterogeneity
    if args.strategy is not None:
        changes["strategies"] = tuple(s.strip() for s in args.strategy.split(",") if s.strip())
    if args.device_heterogeneity is not None:
        changes["device_heterogeneity"] = args.device_heterogeneity
    if args.round_policy is not None:
        changes["round_policy"], changes["round_policy_params"] = _spec(args.round_policy)
    if args.compression is not None:
        changes["compression"], changes["compression_params"] = _spec(args.compression)
    exp = dataclasses.replace(exp, **changes)
    (module.validate if hasattr(module, "validate") else Experiment.validate)(exp)
    out = args.out or Path("runs") / exp.scenario / time.strftime("%Y%m%d-%H%M%S")
    out = prepare_out_dir(out)

    from tqdm.auto import tqdm

    total = module.progress_total(exp) if hasattr(module, "progress_total") else exp.rounds * len(exp.strategies)
    bar = tqdm(total=total, unit="round", disable=args.no_progress,
               desc=exp.scenario, file=sys.stderr)

    def progress(method: str, rnd: int, rounds: int) -> None:
        bar.set_postfix_str(method)
        bar.update(1)

    runner = getattr(module, "run", run_experiment)
    result = runner(exp, progress)
    bar.close()
    write_results(out, result)
    print((out / "summary.md").read_text())
    print(f"results: {out}")
    return 0


def _user_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean bad user input (each names the bad value and the allowed ones)."""
    from agents.base import AgentError
    from envs.registry import EnvConfigError
    from federation.types import FederationError
    from scenarios.experiment import ScenarioError

    return (AgentError, EnvConfigError, FederationError, ScenarioError)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from scenarios.results import prepare_out_dir, write_results
    from scenarios.train import train

    torch.set_num_threads(1)
    out = prepare_out_dir(args.out or Path("runs") / f"train-{args.agent}" / time.strftime("%Y%m%d-%H%M%S"))
    from tqdm.auto import tqdm

    bar = tqdm(total=10, unit="eval", disable=args.no_progress, desc=f"{args.agent} on {args.env_id}",
               file=sys.stderr)
    result, agent = train(args.agent, args.env_id, steps=args.steps, seed=args.seed, parallel=args.parallel,
                          on_progress=lambda m, r, n: bar.update(1))
    bar.close()
    write_results(out, result)
    if args.save is not None:
        agent.save(args.save)
    m = result.methods[args.agent]
    form = " (PettingZoo form, shared parameters)" if args.parallel else ""
    print(f"{args.agent} on {args.env_id}{form}: final evaluation return {m['mean_return']:.2f} after {args.steps} "
          f"steps ({m['train_time_s']:.1f} s)")
    others = [f"{k} {v['mean_return']:.2f}" for k, v in result.methods.items() if k != args.agent]
    if others:
        print("heuristics on the same episodes: " + ", ".join(others))
    print(f"results: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"list": cmd_list, "run": cmd_run, "train": cmd_train}[args.command](args)
    except UsageError as e:
        print(f"frl: error: {e}", file=sys.stderr)
        return 2
    except _user_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"frl: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("frl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
