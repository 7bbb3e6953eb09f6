"""``frl``: the command line, a thin layer over the scenario, env, agent and strategy registries.

Bad input (unknown names, out-of-range knobs, malformed numbers) exits with status 2 and one line naming
the bad value and what is allowed — never a traceback. Only this module prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="frl", description="Federated reinforcement learning in real application domains.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="{list,run,train,bench,check}")
    sub.required = True
    ls = sub.add_parser("list", help="list envs (with baselines), agents, strategies and scenarios")
    ls.add_argument("--json", action="store_true", help="print the same as JSON (env knobs included)")
    ls.add_argument("--knobs", action="store_true",
                    help="print every env's knob table (Markdown, generated from the config declarations)")
    run = sub.add_parser("run", help="run a paper-style scenario and write results", add_help=False,
                         description="Run a scenario. Its knobs (e.g. --clients, --rounds, --strategy) depend on the "
                                     "scenario: `frl run SCENARIO --help` lists them.")
    run.add_argument("scenario", nargs="?", default=None, help="scenario name (see `frl list`)")
    run.add_argument("--quick", action="store_true", help="smoke-sized run (seconds)")
    run.add_argument("--out", type=Path, default=None, help="results directory (default runs/<scenario>/<time>)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--checkpoint-every", type=_bounded_int("checkpoint-every", 1, 100_000), default=None,
                     help="write the complete federated state into the run directory every N rounds (and after the "
                          "last), so `frl run --resume DIR` can continue a killed run")
    run.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                     help="continue the killed run in RUN_DIR from its checkpoints (same flags, same results)")
    run.add_argument("-h", "--help", action="store_true", help="show the scenario's knobs and exit")
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
    ck = sub.add_parser("check", help="run the suite's env checks (the public envs.check) on a registered env")
    ck.add_argument("env_id", help="env id or name (see `frl list`), e.g. a plugin domain's")
    ck.add_argument("--checks", default=None, help="comma-separated checks (default: all)")
    add_bench_parser(sub)
    return p


def _floats01(text: str) -> tuple[float, ...]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number; allowed: numbers in [0, 1]") from None
        if not 0.0 <= v <= 1.0:
            raise argparse.ArgumentTypeError(f"{v} is out of range; allowed: numbers in [0, 1]")
        out.append(v)
    return tuple(out)


def add_bench_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="aggregator leaderboard: strategies x seeds x heterogeneity per domain")
    where = b.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", default=None, help="env id(s), comma-separated (see `frl list`)")
    where.add_argument("--domains", default=None, help="'all' (every registered env) or comma-separated env ids")
    b.add_argument("--strategies", required=True, help="comma-separated strategies, each 'name' or 'name:key=value'")
    b.add_argument("--agent", default=None, help="agent for every domain (default: each domain's scenario's)")
    b.add_argument("--seeds", type=_bounded_int("seeds", 1, 1000), default=3, help="paired seeds 0..K-1")
    b.add_argument("--clients", type=_bounded_int("clients", 1, 1000), default=None)
    b.add_argument("--heterogeneity", type=_floats01, default=None, help="level(s) H[,H2] in [0, 1]")
    b.add_argument("--rounds", type=_bounded_int("rounds", 1, 100_000), default=None)
    b.add_argument("--quick", action="store_true", help="each domain's smoke size")
    b.add_argument("--jobs", type=_bounded_int("jobs", 1, 256), default=None,
                   help="worker processes (default: the number of cores)")
    b.add_argument("--out", type=Path, default=None, help="results directory (default runs/bench/<grid hash>)")
    b.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_bench(args: argparse.Namespace) -> int:
    import envs
    from scenarios.bench import BenchGrid, default_jobs, run_bench

    if args.domains is not None:
        env_ids = tuple(envs.ENV_ENTRIES) if args.domains.strip() == "all" else tuple(
            e.strip() for e in args.domains.split(","))
    else:
        env_ids = tuple(e.strip() for e in args.env.split(","))
    grid = BenchGrid(env_ids=tuple(envs.env_entry(e).env_id for e in env_ids),
                     strategies=tuple(s.strip() for s in args.strategies.split(",")), seeds=args.seeds,
                     heterogeneity=args.heterogeneity, agent=args.agent, clients=args.clients, rounds=args.rounds,
                     quick=args.quick)
    out = args.out or Path("runs") / "bench" / grid.key()
    from tqdm.auto import tqdm

    bars: list[Any] = []  # made at the first cell, so a refused --out prints its one line alone

    def progress(cell: Any, cached: bool) -> None:
        if not bars:
            bars.append(tqdm(total=len(grid.cells()), unit="cell", desc="bench", disable=args.no_progress,
                             file=sys.stderr))
        bar = bars[0]
        bar.set_postfix_str(f"{cell['env_id']} {cell['method']} s{cell['seed']}" + (" (stored)" if cached else ""))
        bar.update(1)

    result = run_bench(grid, out, jobs=args.jobs or default_jobs(), on_cell=progress)
    for bar in bars:
        bar.close()
    if len(grid.env_ids) > 1:
        print((out / "leaderboard.md").read_text())
    else:
        print((Path(result["domains"][grid.env_ids[0]]["dir"]) / "leaderboard.md").read_text())
    print(f"results: {out}")
    return 0


def catalog() -> dict[str, Any]:
    """Everything `frl list` shows, as plain data."""
    import envs
    from agents import AGENTS
    from envs.knobs import knob_records
    from envs.plugins import PLUGIN_ENTRIES, PLUGIN_ERRORS
    from federation.strategies import DESCRIPTIONS, STRATEGIES
    from scenarios import SCENARIOS

    return {
        "envs": [
            {"id": e.env_id, "name": e.name, "summary": e.summary, "baselines": list(e.baselines),
             "kpis": list(e.kpis), "parallel_env": e.parallel_entry_point,
             "entry_point": e.entry_point, "plugin": PLUGIN_ENTRIES.get(e.env_id),
             "knobs": knob_records(e.config_cls)}
            for e in envs.ENV_ENTRIES.values()
        ],
        "plugin_errors": dict(PLUGIN_ERRORS),
        "agents": [{"name": n, "summary": " ".join((c.__doc__ or "").strip().split("\n\n")[0].split())}
                   for n, c in AGENTS.items()],
        "strategies": [{"name": n, "summary": DESCRIPTIONS.get(n, "")} for n in STRATEGIES],
        "scenarios": [{"name": n, "summary": m.SUMMARY} for n, m in SCENARIOS.items()],
    }


def knob_tables() -> str:
    """Every env config's knob table (Markdown), one section per config class: the README's reference,
    generated from the declarations (``frl list --knobs``)."""
    import envs
    from envs.knobs import knob_table

    by_config: dict[type, list[str]] = {}
    for e in (envs.ENV_ENTRIES[i] for i in envs.BUILTIN_ENV_IDS):  # plugins document their own knobs
        by_config.setdefault(e.config_cls, []).append(e.env_id)
    parts = [f"#### {', '.join(f'`{i}`' for i in ids)} (`{cls.__name__}`)\n\n{knob_table(cls).rstrip()}\n"
             for cls, ids in by_config.items()]
    return "\n".join(parts)


def cmd_list(args: argparse.Namespace) -> int:
    if args.knobs:
        print(knob_tables(), end="")
        return 0
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
        if e["plugin"]:
            print(f"  {'':<28} plugin: {e['plugin']}")
    print("Agents:")
    for a in cat["agents"]:
        print(f"  {a['name']:<28} {a['summary']}")
    print("Strategies:")
    for s in cat["strategies"]:
        print(f"  {s['name']:<28} {s['summary']}")
    print("Scenarios:")
    for s in cat["scenarios"]:
        print(f"  {s['name']:<28} {s['summary']}")
    for name, err in cat["plugin_errors"].items():
        print(f"Plugin {name!r} failed to load: {err}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from envs.check import EnvCheckError, check_env_entry
    from envs.plugins import PLUGIN_ERRORS
    from envs.registry import env_entry

    if args.env_id in PLUGIN_ERRORS:
        raise UsageError(f"plugin {args.env_id!r} failed to load: {PLUGIN_ERRORS[args.env_id]}")
    entry = env_entry(args.env_id)
    checks = tuple(c.strip() for c in args.checks.split(",")) if args.checks else None
    try:
        passed = check_env_entry(entry, checks)
    except EnvCheckError as e:
        print(f"frl: check failed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{entry.env_id}: passed {len(passed)} checks ({', '.join(passed)})")
    return 0


def _flag_type(hint: Any) -> Callable[[str], Any]:
    """A flag's parser from its field's type: numbers parse here (ranges are the config's to check);
    tuples are comma-separated lists whose empty items are kept, so the config refuses them by name."""
    if hint in (int, float):
        def parse_number(v: str) -> int | float:
            try:
                return int(v, 10) if hint is int else float(v)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{v!r} is not {'an integer' if hint is int else 'a number'}") \
                    from None
        return parse_number
    if "tuple" in str(hint):
        return lambda v: tuple(s.strip() for s in v.split(","))
    return str


def config_flags(config_cls: type) -> dict[str, dataclasses.Field]:
    """``--flag`` → field, for every field of a scenario's config with ``cli`` metadata: the one declaration
    of what ``frl run SCENARIO`` accepts."""
    return {"--" + (f.metadata.get("flag") or f.name).replace("_", "-"): f
            for f in dataclasses.fields(config_cls) if "help" in f.metadata}


def scenario_parser(name: str, base: Any) -> _Parser:
    """The parser of ``frl run NAME``'s knobs, generated from its config; each help shows ``base``'s value."""
    hints = typing.get_type_hints(type(base))
    p = _Parser(prog=f"frl run {name}", add_help=True)
    for flag, f in config_flags(type(base)).items():
        value = getattr(base, f.name)
        shown = ",".join(value) if isinstance(value, tuple) else str(value)
        if hints[f.name] is bool:  # a switch: present = on
            p.add_argument(flag, dest=f.name, action="store_const", const=True, default=None,
                           help=f"{f.metadata['help']} (default: {'on' if value else 'off'})")
            continue
        p.add_argument(flag, dest=f.name, type=_flag_type(hints[f.name]), default=None,
                       help=f"{f.metadata['help']} (default: {shown})")
    return p


def apply_flags(name: str, base: Any, argv: Sequence[str]) -> Any:
    """``base`` (the scenario's FULL or QUICK config) with the given flags applied; a flag the scenario does
    not have is refused, naming the ones it has."""
    flags = config_flags(type(base))
    for arg in argv:
        if arg.startswith("--") and arg.split("=", 1)[0] not in flags:
            raise UsageError(f"{arg.split('=', 1)[0]} is not a knob of scenario {name!r}; allowed: "
                             f"{', '.join(flags)}, --quick, --out, --no-progress")
    args = scenario_parser(name, base).parse_args(list(argv))
    changes = {k: v for k, v in vars(args).items() if v is not None}
    return dataclasses.replace(base, **changes)


RUN_FILE = "run.json"  # how the run was started: what `frl run --resume` rebuilds it from


def _experiment_digest(exp: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(exp.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _resume_target(run_dir: Path) -> dict[str, Any]:
    """The ``run.json`` of a run that can be resumed, or one line saying why it cannot."""
    from scenarios.results import STATUS_FILE

    if not run_dir.is_dir():
        raise UsageError(f"--resume {str(run_dir)!r} is not a directory")
    try:
        started = json.loads((run_dir / RUN_FILE).read_text())
        assert isinstance(started, dict) and isinstance(started["scenario"], str) and isinstance(started["argv"], list)
    except (OSError, ValueError, KeyError, AssertionError):
        raise UsageError(f"--resume {str(run_dir)!r} holds no readable {RUN_FILE}; allowed: a directory written by "
                         "`frl run`") from None
    try:
        state = json.loads((run_dir / STATUS_FILE).read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        state = None
    if state == "complete":
        raise UsageError(f"--resume {str(run_dir)!r}: the run is already complete; nothing to resume")
    return started


def _lock_run(out: Path) -> Any:
    """Hold an exclusive lock on the run directory while this process runs it (released when it dies), so a
    run cannot be resumed while it is still running."""
    import fcntl

    f = open(out / ".lock", "w")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UsageError(f"{str(out)!r} is being run by another process; wait for it or kill it first") from None
    return f


def cmd_run(args: argparse.Namespace, rest: Sequence[str] = ()) -> int:
    import torch

    from scenarios import scenario_module
    from scenarios.experiment import CHECKPOINTS, METHOD_SINK, UNCHECKPOINTED_BACKENDS, RunCheckpoints, run_experiment
    from scenarios.results import (
        STATUS_FILE,
        atomic_write_text,
        partial_writer,
        prepare_out_dir,
        unique_run_dir,
        write_results,
    )

    started: dict[str, Any] | None = None
    if args.resume is not None:
        if args.scenario is not None or rest or args.quick or args.out is not None:
            raise UsageError("--resume RUN_DIR takes the run's own flags from RUN_DIR/run.json; allowed with it: "
                             "--checkpoint-every, --no-progress")
        started = _resume_target(args.resume)
        args.scenario, args.quick, rest = started["scenario"], bool(started.get("quick")), list(started["argv"])
        if args.checkpoint_every is None:
            args.checkpoint_every = started.get("checkpoint_every")
    if args.scenario is None:
        raise UsageError("missing the scenario; allowed: a scenario name (see `frl list`) or --resume RUN_DIR")
    module = scenario_module(args.scenario)
    if args.help:
        print(scenario_parser(args.scenario, module.FULL).format_help().replace(
            "options:", "options (besides --quick, --out DIR, --no-progress, --checkpoint-every N, --resume DIR; "
                        "defaults: the full size):"))
        return 0
    exp = apply_flags(args.scenario, module.QUICK if args.quick else module.FULL, rest)
    backend = getattr(exp, "backend", "inprocess")
    if (args.checkpoint_every is not None or started is not None) and backend in UNCHECKPOINTED_BACKENDS:
        raise UsageError(f"--checkpoint-every and --resume are not supported with --backend {backend} "
                         f"({UNCHECKPOINTED_BACKENDS[backend]}); allowed backends for them: inprocess, processes")
    if args.checkpoint_every is not None and not getattr(module, "CHECKPOINTABLE", True):
        raise UsageError(f"scenario {args.scenario!r} cannot be checkpointed ({module.CHECKPOINT_WHY}); "
                         "run it without --checkpoint-every")
    # The agents' networks are small: one intra-op thread is faster than two fighting over tiny matmuls.
    torch.set_num_threads(1)
    digest = _experiment_digest(exp)
    if started is not None:
        out = args.resume
        if started.get("experiment_sha256") != digest:
            raise UsageError(f"--resume {str(out)!r}: the scenario's configuration differs from the one the run "
                             "started with (the code changed?); start a new run")
        lock = _lock_run(out)
        atomic_write_text(out / STATUS_FILE, json.dumps({"state": "running", "pid": os.getpid(),
                                                         "resumed": True}) + "\n")
    else:
        out = args.out or unique_run_dir(Path("runs") / exp.scenario)
        created = not out.exists()
        out = prepare_out_dir(out)
        lock = _lock_run(out)
        atomic_write_text(out / RUN_FILE, json.dumps({
            "scenario": args.scenario, "quick": bool(args.quick), "argv": list(rest),
            "checkpoint_every": args.checkpoint_every, "experiment_sha256": digest}, indent=2) + "\n")

    from tqdm.auto import tqdm

    total = module.progress_total(exp) if hasattr(module, "progress_total") else exp.rounds * len(exp.strategies)
    bar = tqdm(total=total, unit="round", disable=args.no_progress,
               desc=exp.scenario, file=sys.stderr)

    def progress(method: str, rnd: int, rounds: int) -> None:
        bar.set_postfix_str(method)
        bar.update(1)

    runner = getattr(module, "run", run_experiment)
    token = METHOD_SINK.set(partial_writer(out))
    checkpoints = None
    if args.checkpoint_every is not None or started is not None:
        checkpoints = RunCheckpoints(out / "checkpoints", args.checkpoint_every or 10**9,
                                     {"experiment_sha256": digest})
    ck_token = CHECKPOINTS.set(checkpoints)
    try:
        result = runner(exp, progress)
    except BaseException:
        if started is None:
            lock.close()
            _release_if_empty(out, created)
        raise
    finally:
        CHECKPOINTS.reset(ck_token)
        METHOD_SINK.reset(token)
        bar.close()
    try:
        write_results(out, result, plot=getattr(module, "plot", None))
    except OSError as e:  # a full disk, a deleted or read-only out dir: one line, what was written stays
        from scenarios.experiment import ScenarioError

        kept = " (finished methods are in its partial/)" if (out / "partial").is_dir() else ""
        raise ScenarioError(f"could not write the results into {str(out)!r}: {e.strerror or e}{kept}") from None
    if (out / "checkpoints").is_dir():  # they only serve resuming an unfinished run
        import shutil

        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    lock.close()
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


def _release_if_empty(out: Path, created: bool) -> None:
    """A new run (``frl run``, ``frl train``) that failed before any method finished or any checkpoint was
    written (a method refusing the env, a missing optional extra) gives its output directory back: its claim
    files go, and the directory too if this run created it, so the same ``--out`` works again. Anything a method
    wrote stays."""
    from scenarios.results import STATUS_FILE

    partial, checkpoints = out / "partial", out / "checkpoints"
    if any(partial.glob("*")) or any(checkpoints.glob("*")):
        return
    for name in (STATUS_FILE, RUN_FILE, ".lock"):
        (out / name).unlink(missing_ok=True)
    for d in (partial, checkpoints, *((out,) if created else ())):
        try:
            d.rmdir()
        except OSError:  # absent, or holds something this run did not write
            pass


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from scenarios.results import prepare_out_dir, unique_run_dir, write_results
    from scenarios.train import train

    torch.set_num_threads(1)
    if args.save is not None:  # checked before any training: a bad path must not cost the run
        save_dir = args.save.parent if str(args.save.parent) else Path(".")
        if args.save.exists() and args.save.is_dir():
            raise UsageError(f"--save {str(args.save)!r} is a directory; allowed: a file path")
        if not save_dir.is_dir():
            raise UsageError(f"--save {str(args.save)!r}: directory {str(save_dir)!r} does not exist")
        if not os.access(save_dir, os.W_OK):
            raise UsageError(f"--save {str(args.save)!r}: directory {str(save_dir)!r} is not writable")
    out = args.out or unique_run_dir(Path("runs") / f"train-{args.agent}")
    created = not out.exists()
    out = prepare_out_dir(out)
    from tqdm.auto import tqdm

    bar = tqdm(total=10, unit="eval", disable=args.no_progress, desc=f"{args.agent} on {args.env_id}",
               file=sys.stderr)
    try:
        result, agent = train(args.agent, args.env_id, steps=args.steps, seed=args.seed, parallel=args.parallel,
                              on_progress=lambda m, r, n: bar.update(1))
    except BaseException:  # a bad agent or env, a missing extra: nothing was written, the directory goes back
        _release_if_empty(out, created)
        raise
    finally:
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
        args, rest = build_parser().parse_known_args(argv)
        if args.command == "run":
            return cmd_run(args, rest)
        if rest:
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}")
        return {"list": cmd_list, "train": cmd_train, "check": cmd_check, "bench": cmd_bench}[args.command](args)
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
