"""``--backend processes``: bitwise equal to in-process (per strategy and with faults, attacks, DP, secure
aggregation), refusals before training, a dead or hung worker ends the run with one line, no orphan processes,
and checkpoints captured and restored over the workers."""

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from federation import run_federation
from federation.checkpoint import Checkpointer
from federation.client import ClientHook
from federation.pool import FitJob, InProcessPool
from federation.process_pool import ProcessPool, check_strategy, tree_index
from federation.strategies import FedAvg
from federation.types import FederationError, FitIns
from scenarios.experiment import build_clients, client_setup, run_experiment
from scenarios.mec_offloading import QUICK

TIMING = {"train_time_s", "wall_time_s"}  # wall-clock fields: the only ones allowed to differ


def _tiny(**kw):
    base = dict(n_clients=4, rounds=2, steps_per_round=40, eval_every=1, eval_episodes=1, final_eval_episodes=1,
                baselines=("random",), env_overrides={"episode_tasks": 30},
                agent_config={**QUICK.agent_config, "learning_starts": 16, "batch_size": 8, "hidden_sizes": (16, 16)})
    base.update(kw)
    return dataclasses.replace(QUICK, **base)


def _same(a, b):
    assert a.rows == b.rows
    assert list(a.methods) == list(b.methods)
    for m in a.methods:
        assert {k: v for k, v in a.methods[m].items() if k not in TIMING} == \
            {k: v for k, v in b.methods[m].items() if k not in TIMING}, m


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too (reaped by its parent later)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone(pids, wait=10.0):
    end = time.monotonic() + wait
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


STRATEGIES = ("fedavg", "fedprox", "ditto", "fedper", "fedrep", "ifca", "local", "fedadam", "apfl", "finetune",
              "median", "env-embedding", "similarity", "ucb")


def test_every_strategy_is_bitwise_equal_on_two_workers():
    exp = _tiny(strategies=STRATEGIES, seed=5)
    _same(run_experiment(exp), run_experiment(dataclasses.replace(exp, backend="processes", workers=2)))


@pytest.mark.parametrize("features", [
    {"faults": 0.3, "strategies": ("fedavg", "ditto")},
    {"malicious": 0.3, "attack": "sign-flip", "strategies": ("fedavg", "median")},
    {"malicious": 0.3, "attack": "reward-flip", "strategies": ("fedprox",)},
    {"dp_clip": 1.0, "dp_noise": 1.0, "strategies": ("fedavg",)},
    {"secure_aggregation": True, "strategies": ("fedavg", "ditto")},
    {"secure_aggregation": True, "malicious": 0.3, "faults": 0.3, "strategies": ("fedavg",)},
    {"round_policy": "buffered-async:k=2", "strategies": ("fedbuff",), "rounds": 3},
    {"agent": "reinforce", "agent_config": {"hidden_sizes": (16, 16)}, "strategies": ("fedpg-br", "fedavg")},
    {"fraction": 0.5, "device_heterogeneity": 0.5, "round_policy": "deadline:deadline_s=0.05",
     "strategies": ("fedavg",)},
])
def test_features_are_bitwise_equal_with_uneven_workers(features):
    exp = _tiny(seed=2, **features)  # 4 clients on 3 workers: one worker holds two
    a = run_experiment(exp)
    b = run_experiment(dataclasses.replace(exp, backend="processes", workers=3))
    _same(a, b)
    if features.get("faults"):
        assert any(k.startswith("fault/") for _, _, _, k, _ in a.rows)  # faults were injected, and the same


def test_central_is_refused_before_any_training():
    with pytest.raises(FederationError, match=r"strategy 'central' cannot run on --backend processes.*one client "
                                              r"half \(TravellingModelHook\)") as e:
        _tiny(strategies=("fedavg", "central"), backend="processes")  # refused when the experiment is built
    assert "\n" not in str(e.value)
    with pytest.raises(FederationError, match=r"strategy 'central' cannot run on --backend processes"):
        _tiny(strategies=("fedavg", "central"), backend="processes", malicious=0.3)  # wrapped by each attack hook


def _pool(n=4, workers=2, **kw):
    exp = _tiny(n_clients=n)
    setup = client_setup(exp)
    return exp, setup, ProcessPool(functools.partial(build_clients, exp, "fedavg", setup=setup), range(n), workers,
                                   **kw)


def test_a_killed_worker_ends_the_run_with_one_line_and_no_orphans():
    exp, _, pool = _pool()
    pids = pool.pids
    with pytest.raises(FederationError) as e, pool:
        pool.install(exp.strategy("fedavg"))
        w = pool.initial_weights()
        os.kill(pids[1], signal.SIGKILL)
        pool.fit([FitJob(FitIns(c, w)) for c in range(4)])
    msg = str(e.value)
    assert "\n" not in msg and f"worker 1 (pid {pids[1]}, clients 1,3) died" in msg, msg
    assert _gone(pids)


def test_a_hung_worker_times_out_with_one_line_and_no_orphans():
    exp, _, pool = _pool(timeout_s=2.0)
    pids = pool.pids
    os.kill(pids[0], signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(FederationError, match=r"worker 0 \(pid \d+, clients 0,2\) did not answer install within 2 s"):
        pool.install(exp.strategy("fedavg"))
    assert time.monotonic() - t0 < 10
    assert _gone(pids)


def test_close_and_exceptions_leave_no_worker_behind():
    _, _, pool = _pool(n=3, workers=3)
    pids = pool.pids
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    with pytest.raises(RuntimeError), pool:
        raise RuntimeError("boom")
    assert _gone(pids)
    pool.close()  # twice is fine
    with pytest.raises(FederationError, match="closed"):
        pool.evaluate({}, {0: [1]})


def test_a_killed_parent_leaves_no_worker_behind(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import dataclasses, functools, sys, time\n"
        "from scenarios.experiment import build_clients, client_setup\n"
        "from scenarios.mec_offloading import QUICK\n"
        "from federation.process_pool import ProcessPool\n"
        "if __name__ == '__main__':\n"
        "    exp = dataclasses.replace(QUICK, n_clients=2)\n"
        "    pool = ProcessPool(functools.partial(build_clients, exp, 'fedavg', setup=client_setup(exp)), [0, 1], 2)\n"
        "    print(*pool.pids, flush=True)\n"
        "    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()
        proc.wait(10)
        assert _gone(pids)
    finally:
        proc.kill()


class _Owned(FedAvg):
    """A strategy whose client half keeps its server half: refused on worker processes."""

    def client_hook(self):
        hook = ClientHook()
        hook.server = self
        return hook


def test_a_client_half_holding_its_server_half_is_refused():
    with pytest.raises(FederationError, match=r"strategy 'fedavg' cannot run on --backend processes: its client "
                                              r"half holds its server half \(ClientHook.server\)"):
        check_strategy(_Owned())
    check_strategy(FedAvg())  # a plain one passes


def test_refusals_name_the_value():
    exp = _tiny()
    builder = functools.partial(build_clients, exp, "fedavg")
    with pytest.raises(FederationError, match=r"workers=0 is out of range"):
        ProcessPool(builder, range(2), 0)
    with pytest.raises(FederationError, match=r"timeout_s=-1 is out of range"):
        ProcessPool(builder, range(2), 1, timeout_s=-1)
    with pytest.raises(FederationError, match=r"client builder cannot be sent to a worker process"):
        ProcessPool(lambda ids: [], range(2), 1)


def _tree_equal(a, b):
    """Two checkpoint trees hold the same values (a reference on one side may be the node itself on the other:
    an immutable object in-process clients share is stored once per worker)."""
    ia, ib = tree_index(a), tree_index(b)
    seen = set()

    def deref(node, index):
        while isinstance(node, dict) and node.get("__t__") == "ref":
            node = index[node["path"]]
        return node

    def eq(x, y, path):
        x, y = deref(x, ia), deref(y, ib)
        if (id(x), id(y)) in seen:
            return
        seen.add((id(x), id(y)))
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), path
        elif isinstance(x, dict):
            assert isinstance(y, dict) and set(x) == set(y), path  # (a restore may set attributes in another order)
            for k in x:
                eq(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list | tuple):
            assert isinstance(y, list | tuple) and len(x) == len(y), path
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                eq(u, v, f"{path}[{i}]")
        else:
            assert x == y or (x != x and y != y), path

    eq(a, b, "state")


def _federate(exp, pool, strategy, rounds, **kw):
    setup = client_setup(exp)
    return run_federation(pool, strategy, rounds=rounds, seed=np.random.SeedSequence(setup.federation_seed.entropy,
                                                                                    spawn_key=setup.federation_seed.spawn_key),
                          eval_seeds=setup.eval_seeds, system=exp.system(setup.devices), **kw)


@pytest.mark.parametrize("spec", ["ditto", "ifca"])
def test_checkpoint_capture_equals_in_process_and_resume_is_bitwise(tmp_path, spec):
    exp = _tiny(strategies=(spec,), n_clients=3, rounds=3)
    setup = client_setup(exp)
    trees = {}
    inproc = InProcessPool(build_clients(exp, spec, range(3), setup))
    full = _federate(exp, inproc, exp.strategy(spec), 3,
                     on_round=lambda r, h: trees.setdefault(("in", r), inproc.capture_state()))
    with ProcessPool(functools.partial(build_clients, exp, spec, setup=setup), range(3), 2) as pool:
        _federate(exp, pool, exp.strategy(spec), 2,
                  on_round=lambda r, h: trees.setdefault(("pr", r), pool.capture_state()))
    _tree_equal(trees[("in", 2)], trees[("pr", 2)])

    class Killed(Exception):
        pass

    def kill_after_2(r, h):
        if r == 2:
            raise Killed

    ck = Checkpointer(tmp_path / "fed.pt", 1, {"run": spec})
    with pytest.raises(Killed), ProcessPool(functools.partial(build_clients, exp, spec, setup=setup), range(3), 2) as p:
        _federate(exp, p, exp.strategy(spec), 3, checkpoint=ck, on_round=kill_after_2)
    with ProcessPool(functools.partial(build_clients, exp, spec, setup=setup), range(3), 3) as pool:
        resumed = _federate(exp, pool, exp.strategy(spec), 3, checkpoint=ck)
        final = pool.capture_state()
    assert set(resumed.global_weights) == set(full.global_weights)
    for k in full.global_weights:
        assert np.array_equal(resumed.global_weights[k], full.global_weights[k]), k
    assert [r for r in resumed.rows if r[0] == 3] == [r for r in full.rows if r[0] == 3]
    _tree_equal(inproc.capture_state(), final)


@pytest.mark.slow
def test_cli_quick_run_on_two_workers_matches_in_process(tmp_path):
    import json

    from scenarios.cli import main

    for backend in ("inprocess", "processes"):
        main(["run", "mec-offloading", "--quick", "--backend", backend, "--workers", "2", "--no-progress",
              "--out", str(tmp_path / backend)])
    got = [json.loads(next((tmp_path / b).rglob("summary.json")).read_text())["methods"]
           for b in ("inprocess", "processes")]
    assert [{m: {k: v for k, v in s.items() if k not in TIMING} for m, s in g.items()} for g in got] == \
        [{m: {k: v for k, v in s.items() if k not in TIMING} for m, s in got[0].items()}] * 2
