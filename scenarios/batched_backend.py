"""``--backend batched``: :func:`scenarios.experiment.run_experiment`'s contract on the batched federation.

The clients are the same as in-process — configs, env seeds, agent seeds, final-evaluation episode seeds
and device profiles all come from :func:`scenarios.experiment.client_setup` — but they are simulated together
(:mod:`federation.batched`, :mod:`agents.batched`): their envs as one vector env, their networks stacked. The
initial model is the suite's agent built from client 0's agent seed (as ``run_federation`` starts every
client from client 0's model); the behaviour/sampling randomness of all clients is one generator seeded with
``SeedSequence([agent seeds of all clients])`` (see :mod:`agents.batched` for why one). Heuristics are
scored by :func:`scenarios.experiment.score_heuristics` and summaries built by ``summarize_clients``, so the
result (rows, per-method summaries, client configs) has the same shape as the in-process one.

Supported: agents ``dqn`` and ``ppo`` (Discrete actions, 1-D Box observations), strategies fedavg, fedprox,
local and fedper, synchronous rounds with every client sampled and no device heterogeneity, compression,
faults, DP, secure aggregation or attacks; the single-agent env form. Anything else is refused in one line.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from agents import agent_class
from agents.batched import BatchedDQN, BatchedPPO, retain_freed_memory
from envs.registry import env_entry
from federation.batched import (
    BATCHED_STRATEGIES,
    check_batched_strategy,
    episode_cap_of,
    evaluate_learner,
    make_client_vector_env,
    run_batched_federation,
)
from federation.strategies import parse_spec
from scenarios.experiment import (
    METHOD_SINK,
    Experiment,
    ExperimentResult,
    ProgressCallback,
    ScenarioError,
    _config_dict,
    client_setup,
    method_summary,
    score_heuristics,
)

BATCHED_AGENTS = {"dqn": BatchedDQN, "ppo": BatchedPPO}


def check_batched(exp: Experiment) -> None:
    """Refuse, in one line naming the bad value and what is allowed, what the batched backend cannot run."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ScenarioError(msg)

    need(exp.agent in BATCHED_AGENTS,
         f"agent={exp.agent!r} is not available on the batched backend; allowed: {', '.join(BATCHED_AGENTS)}")
    for spec in exp.strategies:
        name = parse_spec(spec)[0]
        need(name in BATCHED_STRATEGIES, f"strategy {name!r} is not available on the batched backend; "
                                         f"allowed: {', '.join(BATCHED_STRATEGIES)}")
    need(exp.env_form == "single", f"env_form={exp.env_form!r} on the batched backend; allowed: single")
    need(exp.fraction == 1.0, f"fraction={exp.fraction!r} on the batched backend; allowed: 1 (every client "
                              "trains every round)")
    need(exp.device_heterogeneity == 0.0, f"device_heterogeneity={exp.device_heterogeneity!r} on the batched "
                                          "backend; allowed: 0 (no dropouts)")
    need(exp.round_policy == "synchronous",
         f"round_policy={exp.round_policy!r} on the batched backend; allowed: synchronous")
    for knob, value, off in (("compression", exp.compression, "none"), ("faults", exp.faults, 0.0),
                             ("secure_aggregation", exp.secure_aggregation, False), ("dp_clip", exp.dp_clip, 0.0),
                             ("malicious", exp.malicious, 0.0)):
        need(value == off, f"{knob}={value!r} on the batched backend; allowed: {off!r}")


def build_learner(exp: Experiment, strategy: Any, setup: Any, n: int | None = None) -> Any:
    """The stacked learner for ``exp``'s clients: the suite's agent built from client 0's agent seed gives
    the initial weights and the resolved config; one generator from all clients' agent seeds."""
    n = exp.n_clients if n is None else n
    env = gym.make(exp.env_id, config=setup.configs[0])
    agent_kw = {**dict(exp.agent_config), **dict(strategy.agent_overrides)}
    ref = agent_class(exp.agent)(env.observation_space, env.action_space, seed=setup.seeds[0][1], **agent_kw)
    rng = np.random.default_rng(np.random.SeedSequence([s[1] for s in setup.seeds[:n]]))
    return BATCHED_AGENTS[exp.agent](n, env.observation_space, env.action_space, ref.config, ref.get_weights(), rng)


def run_experiment_batched(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """Every method of ``exp`` on the batched backend, then every heuristic on the same episodes; the same
    result contract as :func:`scenarios.experiment.run_experiment` (``summary["backend"] = "batched"``)."""
    check_batched(exp)
    retain_freed_memory()
    start = time.perf_counter()
    entry = env_entry(exp.env_id)
    setup = client_setup(exp)
    fed_seq = setup.federation_seed
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    final_round = exp.rounds + 1
    cap = episode_cap_of(exp.env_id)
    final_seeds = np.asarray(setup.final_seeds, dtype=np.int64)
    for spec in exp.strategies:
        strategy = exp.strategy(spec)
        name = check_batched_strategy(strategy)
        learner = build_learner(exp, strategy, setup)
        env = make_client_vector_env(exp.env_id, setup.configs)
        eval_env = make_client_vector_env(exp.env_id, setup.configs)
        t0 = time.perf_counter()
        history = run_batched_federation(
            learner, env, eval_env, strategy, rounds=exp.rounds, steps_per_round=exp.steps_per_round,
            seed=np.random.SeedSequence(fed_seq.entropy, spawn_key=fed_seq.spawn_key),
            env_seeds=[s[0] for s in setup.seeds], eval_every=exp.eval_every, eval_seeds=setup.eval_seeds,
            kpis=entry.kpis, kpi_weight=entry.kpi_weight, eval_cap=cap, devices=setup.devices,
            on_round=(lambda r, h, s=spec: on_progress(s, r, exp.rounds)) if on_progress else None,
        )
        train_time = time.perf_counter() - t0
        rows.extend((spec, r, c, m, v) for r, c, m, v in history.rows)
        evals = evaluate_learner(learner, eval_env, history.global_weights if name != "local" else None,
                                 final_seeds, entry.kpis, entry.kpi_weight, cap)
        env.close()
        eval_env.close()
        finals = {cid: {kind: ev[cid] for kind, ev in evals.items()} for cid in range(exp.n_clients)}
        final_rows, methods[spec] = method_summary(spec, final_round, finals, history, strategy, train_time, entry,
                                                   exp.n_clients, {"backend": "batched"})
        rows.extend(final_rows)
        sink = METHOD_SINK.get()
        if sink is not None:
            sink(exp.scenario, spec, methods[spec], [r for r in rows if r[0] == spec])
    h_rows, h_methods = score_heuristics(exp, setup)
    rows.extend(h_rows)
    methods.update(h_methods)
    return ExperimentResult(experiment=exp, rows=rows, methods=methods,
                            client_configs=[_config_dict(c) for c in setup.configs],
                            wall_time_s=time.perf_counter() - start, extra={})
