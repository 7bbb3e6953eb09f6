"""The scenarios as a Flower app: ``frl run NAME --backend flower`` and a SuperLink + SuperNodes deployment.

* ``client_app`` (a ``flwr.clientapp.ClientApp``): ``@client_app.train()`` runs one client fit,
  ``@client_app.evaluate()`` one evaluation, ``@client_app.query()`` hands out the initial model. Each message
  names the experiment (its fields as JSON) and the method; the handler builds that client exactly as
  in-process (:func:`scenarios.experiment.build_clients`, then ``strategy.client_hook()``), restores its
  state from ``Context.state`` and stores it back (:mod:`federation.flower_backend`).
* ``server_app`` (a ``flwr.serverapp.ServerApp``): its ``@server_app.main()`` runs ``frl run`` — the very
  same round loop, summaries and results files — with the ServerApp's Grid as the clients' pool. Its run
  config (``flwr run ... --run-config``): ``scenario`` (name), ``flags`` (the ``frl run`` flags as one string,
  e.g. ``"--quick --rounds 2"``), ``out`` (results directory on the SuperLink machine), ``min-nodes``
  (wait for this many SuperNodes, default 1) and ``node-wait-s`` (how long, default 120).
* :func:`make_flower_pool`: what ``make_pool`` returns for ``backend="flower"``: a pool on the ServerApp's
  Grid when called inside ``server_app``, otherwise a pool on Flower's simulation engine started for it
  (one virtual SuperNode per client, ``exp.workers`` Ray actors).

Refused (one line each): checkpoints (a client's state lives on its SuperNode, out of the server's reach),
secure aggregation (its client halves register their key-agreement party with the server half in the same
process) and methods whose client halves share one object (``central``: the model travels from client to
client inside the hook).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from agents.base import Weights
from federation.client import Client
from federation.flower_backend import (
    GRID,
    FlowerPool,
    connected_nodes,
    handle_evaluate,
    handle_query,
    handle_train,
    simulation,
)
from federation.pool import ClientPool
from scenarios.experiment import CHECKPOINTS, ClientSetup, Experiment, ScenarioError, build_clients, client_setup

#: deployment settings of the running ServerApp (min-nodes, node-wait-s)
_DEPLOYMENT: ContextVar[Mapping[str, Any] | None] = ContextVar("FLOWER_DEPLOYMENT", default=None)


# ----- the experiment on the wire ----------------------------------------------------------------------------------
def _tag(x: Any) -> Any:
    if isinstance(x, tuple):
        return {"__tuple__": [_tag(v) for v in x]}
    if isinstance(x, list):
        return [_tag(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _tag(v) for k, v in x.items()}
    return x


def _untag(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__tuple__"}:
            return tuple(_untag(v) for v in x["__tuple__"])
        return {k: _untag(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_untag(v) for v in x]
    return x


def experiment_json(exp: Experiment) -> str:
    """``exp``'s fields as JSON (tuples kept as tuples): the same Experiment is built again on a SuperNode."""
    return json.dumps(_tag({f.name: getattr(exp, f.name) for f in fields(exp) if f.init}), sort_keys=True)


@lru_cache(maxsize=4)
def experiment_from_json(text: str) -> Experiment:
    return Experiment(**_untag(json.loads(text)))


@lru_cache(maxsize=4)
def _setup(text: str) -> ClientSetup:
    """The experiment's client setup (seeded, identical everywhere); cached per process: it is configuration."""
    return client_setup(experiment_from_json(text))


def _build(header: Mapping[str, Any], cid: int) -> Client:
    text = str(header["experiment"])
    exp = experiment_from_json(text)
    spec = str(header["method"])
    client = build_clients(exp, spec, [cid], _setup(text))[0]
    client.use(exp.strategy(spec).client_hook())
    return client


# ----- the ClientApp -----------------------------------------------------------------------------------------------
client_app = ClientApp()


@client_app.train()
def _train(message: Message, context: Context) -> Message:
    return handle_train(message, context, _build)


@client_app.evaluate()
def _evaluate(message: Message, context: Context) -> Message:
    return handle_evaluate(message, context, _build)


@client_app.query()
def _query(message: Message, context: Context) -> Message:
    return handle_query(message, context, _build)


# ----- the pool make_pool returns -----------------------------------------------------------------------------------
def check_flower(exp: Experiment, spec: str) -> None:
    """Refuse, with one line, what cannot run with its clients on Flower."""
    if CHECKPOINTS.get() is not None:
        raise ScenarioError("--checkpoint-every is not supported with --backend flower: each client's state lives "
                            "in its SuperNode's Context.state, out of the server's reach; allowed: --backend inprocess")
    if exp.secure_aggregation:
        raise ScenarioError("--secure-aggregation is not supported with --backend flower: its client halves "
                            "register their key-agreement party with the server half in one process; allowed: "
                            "--backend inprocess")
    strategy = exp.strategy(spec)
    if strategy.client_hook() is strategy.client_hook():
        raise ScenarioError(f"strategy {spec!r} cannot run with --backend flower: all its clients share one client "
                            "half (state passed from client to client in-process); allowed: methods with a client "
                            "half per client")


def make_flower_pool(exp: Experiment, spec: str, setup: ClientSetup | None = None) -> ClientPool:
    """The clients of ``exp`` for ``spec`` as Flower ClientApps: on the running ServerApp's SuperNodes, or on
    a simulation engine started for this pool (stopped when the pool is closed)."""
    check_flower(exp, spec)
    app = {"experiment": experiment_json(exp), "method": spec}
    ids = list(range(exp.n_clients))
    steps = dict.fromkeys(ids, exp.steps_per_round)

    def initial() -> tuple[Weights, Weights]:
        """Client 0's weights as built (the same build as on its SuperNode: seeded by the experiment)."""
        first = build_clients(exp, spec, [0], setup)[0]
        first.use(exp.strategy(spec).client_hook())
        return first.agent.get_weights(), first.agent.get_shared_weights()

    grid = GRID.get()
    if grid is not None:
        cfg = _DEPLOYMENT.get() or {}
        nodes = connected_nodes(grid, int(cfg.get("min-nodes", 1)), float(cfg.get("node-wait-s", 120.0)))
        return FlowerPool(grid, ids, steps, app, nodes, initial=initial)
    return _SimulatedPool(exp, ids, steps, app, initial)


class _SimulatedPool(FlowerPool):
    """A :class:`FlowerPool` on its own simulation engine (one virtual SuperNode per client)."""

    def __init__(self, exp: Experiment, ids: list[int], steps: dict[int, int], app: dict[str, str],
                 initial: Any) -> None:
        self._engine = simulation(client_app, num_nodes=len(ids), workers=int(exp.workers))
        grid = self._engine.__enter__()
        try:
            nodes = connected_nodes(grid, len(ids), 60.0)
            super().__init__(grid, ids, steps, app, nodes, initial=initial)
        except BaseException:
            self._engine.__exit__(None, None, None)
            raise

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.__exit__(None, None, None)


# ----- the ServerApp -----------------------------------------------------------------------------------------------
server_app = ServerApp()


@contextmanager
def serving(grid: Any, settings: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Within: ``make_pool(backend="flower")`` puts the clients on ``grid``'s SuperNodes."""
    t1, t2 = GRID.set(grid), _DEPLOYMENT.set(dict(settings or {}))
    try:
        yield
    finally:
        GRID.reset(t1)
        _DEPLOYMENT.reset(t2)


@server_app.main()
def _server_main(grid: Any, context: Context) -> None:
    from scenarios.cli import main as frl_main

    cfg = dict(context.run_config)
    if "scenario" not in cfg:
        raise ScenarioError("the ServerApp needs run config 'scenario'; allowed: a scenario name "
                            "(python -m scenarios.flower_app writes it)")
    argv = ["run", str(cfg["scenario"]), *shlex.split(str(cfg.get("flags", ""))), "--backend", "flower",
            "--no-progress"]
    if cfg.get("out"):
        argv += ["--out", str(cfg["out"])]
    with serving(grid, {k: cfg[k] for k in ("min-nodes", "node-wait-s") if k in cfg}):
        code = frl_main(argv)
    if code != 0:
        raise RuntimeError(f"frl {' '.join(argv)} exited with status {code}")


# ----- the Flower App directory `flwr run` submits --------------------------------------------------------------------
def app_pyproject(scenario: str, flags: str = "", out: str = "", min_nodes: int = 1, node_wait_s: float = 120.0) -> str:
    """The ``pyproject.toml`` of a Flower App that runs ``frl run SCENARIO FLAGS`` on a SuperLink's SuperNodes.

    The App holds no code: ``serverapp``/``clientapp`` name this module, which every SuperLink and SuperNode
    machine imports from its own install of this package (``pip install -e ".[flower]"``)."""
    cfg = {"scenario": scenario, "flags": flags, "out": out, "min-nodes": int(min_nodes),
           "node-wait-s": float(node_wait_s)}
    lines = [
        "[project]", 'name = "frl-suite-app"', 'version = "1.0.0"',
        'description = "FRL Suite scenarios as a Flower App (the code is the installed frl-suite package)"',
        'license = "Apache-2.0"', "dependencies = []", "",
        "[tool.flwr.app]", 'publisher = "frl-suite"', "",
        "[tool.flwr.app.components]", 'serverapp = "scenarios.flower_app:server_app"',
        'clientapp = "scenarios.flower_app:client_app"', "",
        "[tool.flwr.app.config]", *(f"{k} = {json.dumps(v)}" for k, v in cfg.items()), "",
    ]
    return "\n".join(lines)


def write_app(directory: Path, scenario: str, **config: Any) -> Path:
    """Write the Flower App directory (its ``pyproject.toml``) for :func:`app_pyproject`; returns it."""
    from scenarios import scenario_module

    scenario_module(scenario)  # one line naming an unknown scenario
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(app_pyproject(scenario, **config), encoding="utf-8")
    return directory


def main(argv: list[str] | None = None) -> int:
    """``python -m scenarios.flower_app DIR --scenario NAME [--flags "..."] [--out DIR] [--min-nodes N]``."""
    p = argparse.ArgumentParser(prog="python -m scenarios.flower_app",
                                description="write the Flower App directory that `flwr run DIR` submits")
    p.add_argument("directory", type=Path)
    p.add_argument("--scenario", required=True)
    p.add_argument("--flags", default="", help='frl run flags as one string, e.g. "--quick --rounds 2"')
    p.add_argument("--out", default="", help="results directory on the SuperLink machine (default runs/<scenario>/…)")
    p.add_argument("--min-nodes", type=int, default=1, help="wait for this many SuperNodes before the first round")
    p.add_argument("--node-wait-s", type=float, default=120.0, help="how long to wait for them")
    a = p.parse_args(argv)
    try:
        path = write_app(a.directory, a.scenario, flags=a.flags, out=a.out, min_nodes=a.min_nodes,
                         node_wait_s=a.node_wait_s)
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path / "pyproject.toml")
    return 0


__all__ = ["check_flower", "client_app", "experiment_from_json", "experiment_json", "make_flower_pool",
           "server_app", "serving", "write_app"]


if __name__ == "__main__":
    sys.exit(main())
