"""The Experiment config and the generic runner every scenario uses.

A scenario (one paper-style experiment) is a function returning an ``Experiment``; ``run_experiment``
turns it into results: it builds N heterogeneous clients from the env's client-config generator, runs each
federated strategy with identical seeds and sample budgets, and evaluates every heuristic baseline on the
same client envs with the same episode seeds (paired comparison).

Seeds flow one way: ``Experiment.seed`` → ``np.random.SeedSequence(seed).spawn(n)`` → per-client env,
agent and evaluation seeds. No global RNG state is touched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers frl/* envs)
from agents import agent_class
from envs.registry import EnvEntry, env_entry
from federation import Client, evaluate_policy, run_federation
from federation.compression import make_compressor
from federation.devices import make_device_profiles, make_round_policy
from federation.evaluation import evaluate_parallel
from federation.server import SystemConfig, evaluate_clients, summarize_system
from federation.strategies import STRATEGIES, make_strategy, parse_strategy_spec


class ScenarioError(ValueError):
    """A bad experiment knob: names the value and what is allowed."""


ENV_FORMS = ("single", "parallel")


def baselines_of(entry: EnvEntry, env_form: str) -> Mapping[str, Any]:
    """The heuristics of an env's form: ``(env, seed) -> policy`` (joint ``obs dict -> action dict`` policies
    for the PettingZoo form, from ``entry.parallel_baselines``)."""
    return entry.parallel_baselines if env_form == "parallel" else entry.baselines


@dataclass(frozen=True)
class Experiment:
    scenario: str
    env_id: str
    n_clients: int = 8
    heterogeneity: float = 0.5
    rounds: int = 30
    steps_per_round: int = 1000
    fraction: float = 1.0
    eval_every: int = 5
    eval_episodes: int = 2
    final_eval_episodes: int = 10
    agent: str = "dqn"
    agent_config: Mapping[str, Any] = field(default_factory=dict)
    strategies: tuple[str, ...] = ("fedavg", "local")  # specs: "name" or "name:key=value:..."
    baselines: tuple[str, ...] | None = None  # None = every baseline of the env
    seed: int = 0
    env_overrides: Mapping[str, Any] = field(default_factory=dict)  # applied to every client config
    device_heterogeneity: float = 0.0  # spread of compute speed / bandwidth / availability, [0, 1]
    round_policy: str = "synchronous"  # synchronous · deadline · buffered-async
    round_policy_params: Mapping[str, float | int] = field(default_factory=dict)
    compression: str = "none"  # none · int8 · topk
    compression_params: Mapping[str, float | int | bool] = field(default_factory=dict)
    # "single": each client's env is the gymnasium form; "parallel": its PettingZoo form, where the client's
    # agent acts for every agent id with shared parameters (a multi-agent client) and is scored per agent
    env_form: str = "single"

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ScenarioError(msg)

        need(isinstance(self.n_clients, int) and 1 <= self.n_clients <= 1000,
             f"clients={self.n_clients!r} is out of range; allowed: integer in [1, 1000]")
        need(isinstance(self.heterogeneity, (int, float)) and 0.0 <= self.heterogeneity <= 1.0,
             f"heterogeneity={self.heterogeneity!r} is out of range; allowed: [0, 1]")
        need(isinstance(self.rounds, int) and 1 <= self.rounds <= 100_000,
             f"rounds={self.rounds!r} is out of range; allowed: integer in [1, 100000]")
        need(isinstance(self.steps_per_round, int) and self.steps_per_round >= 1,
             f"steps_per_round={self.steps_per_round!r} must be an integer >= 1")
        need(0.0 < self.fraction <= 1.0, f"fraction={self.fraction!r} is out of range; allowed: (0, 1]")
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**32,
             f"seed={self.seed!r} is out of range; allowed: integer in [0, 2**32)")
        need(self.eval_every >= 1 and self.eval_episodes >= 1 and self.final_eval_episodes >= 1,
             "eval_every, eval_episodes and final_eval_episodes must be >= 1")
        need(bool(self.strategies), f"no strategy given; allowed: {', '.join(STRATEGIES)}")
        for spec in self.strategies:
            parse_strategy_spec(spec)
        need(len(set(self.strategies)) == len(self.strategies),
             f"strategy listed twice in {','.join(self.strategies)}")
        need(0.0 <= self.device_heterogeneity <= 1.0,
             f"device_heterogeneity={self.device_heterogeneity!r} is out of range; allowed: [0, 1]")
        make_round_policy(self.round_policy, **dict(self.round_policy_params))
        make_compressor(self.compression, **dict(self.compression_params))
        need(self.env_form in ENV_FORMS, f"env_form={self.env_form!r} is not known; allowed: {', '.join(ENV_FORMS)}")
        entry = env_entry(self.env_id)
        if self.env_form == "parallel":
            entry.parallel_factory()  # refuses envs without a PettingZoo form, naming those with one
        known = baselines_of(entry, self.env_form)
        if self.baselines is not None:
            bad = [b for b in self.baselines if b not in known]
            need(not bad, f"unknown baseline {','.join(bad)} for {entry.env_id}; allowed: {', '.join(known)}")
        agent_class(self.agent)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("agent_config", "env_overrides", "round_policy_params", "compression_params"):
            d[k] = {kk: (list(v) if isinstance(v, tuple) else v) for kk, v in dict(getattr(self, k)).items()}
        d["strategies"] = list(self.strategies)
        d["baselines"] = None if self.baselines is None else list(self.baselines)
        return d


@dataclass
class ExperimentResult:
    """Long-format rows (method, round, client, metric, value) plus per-method summaries."""

    experiment: Experiment
    rows: list[tuple[str, int, int, str, float]]
    methods: dict[str, dict[str, Any]]
    client_configs: list[dict[str, Any]]
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # scenario-specific results (e.g. a sweep)


ProgressCallback = Callable[[str, int, int], None]  # (method, round done, rounds)


def _client_seeds(seed: int, n: int) -> list[tuple[int, int, list[int]]]:
    """Per client: (env seed, agent seed, base of the evaluation episode seeds)."""
    out = []
    for child in np.random.SeedSequence(seed).spawn(n):
        s = child.generate_state(3, dtype=np.uint32)
        out.append((int(s[0]), int(s[1]), int(s[2])))
    return out


def _eval_seeds(base: int, k: int) -> list[int]:
    return [(base + 7919 * i) % 2**31 for i in range(k)]


def run_experiment(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    exp.validate()
    start = time.perf_counter()
    entry = env_entry(exp.env_id)
    configs = entry.client_configs(exp.n_clients, float(exp.heterogeneity), exp.seed)
    if exp.env_overrides:
        configs = [dataclasses.replace(c, **dict(exp.env_overrides)) for c in configs]
    seeds = _client_seeds(exp.seed, exp.n_clients)
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    final_round = exp.rounds + 1  # final evaluation is recorded as round R+1 with more episodes
    system = SystemConfig(
        devices=tuple(make_device_profiles(exp.n_clients, exp.device_heterogeneity, exp.seed)),
        round_policy=exp.round_policy, round_policy_params=dict(exp.round_policy_params),
        compression=exp.compression, compression_params=dict(exp.compression_params),
    )

    parallel = exp.env_form == "parallel"
    factory = entry.parallel_factory() if parallel else None

    def make_env(cfg: Any) -> Any:
        return factory(config=cfg) if factory is not None else gym.make(entry.env_id, config=cfg)

    def spaces(env: Any) -> tuple[gym.Space, gym.Space]:
        if parallel:  # one agent acts for every agent id: all share the first agent's spaces
            return env.observation_space(env.possible_agents[0]), env.action_space(env.possible_agents[0])
        return env.observation_space, env.action_space

    for spec in exp.strategies:
        sname, sparams = parse_strategy_spec(spec)
        strategy = make_strategy(sname, **sparams)
        agent_kw = {**dict(exp.agent_config), **dict(strategy.agent_overrides)}
        cls = agent_class(exp.agent)
        clients = []
        for cid, cfg in enumerate(configs):
            env_seed, agent_seed, _ = seeds[cid]
            env = make_env(cfg)
            env.reset(seed=env_seed)
            if not parallel:
                env.action_space.seed(env_seed)
            clients.append(Client(
                cid, env, make_env(cfg),
                lambda env=env, s=agent_seed, cls=cls, kw=agent_kw: cls(*spaces(env), seed=s, **kw),
                steps_per_round=exp.steps_per_round, kpis=entry.kpis, kpi_weight=entry.kpi_weight,
                make_env=lambda cfg=cfg: make_env(cfg),
            ))
        t0 = time.perf_counter()
        history = run_federation(
            clients, strategy, rounds=exp.rounds, seed=exp.seed, fraction=exp.fraction,
            eval_every=exp.eval_every, eval_seeds=_eval_seeds(12345, exp.eval_episodes), system=system,
            on_round=(lambda r, h, s=spec: on_progress(s, r, exp.rounds)) if on_progress else None,
        )
        train_time = time.perf_counter() - t0
        rows.extend((spec, r, c, m, v) for r, c, m, v in history.rows)
        per_client: list[dict[str, float]] = []
        extra: dict[str, list[float]] = {}
        for c in clients:
            final_seeds = _eval_seeds(seeds[c.client_id][2], exp.final_eval_episodes)
            evals = evaluate_clients([c], strategy, history.global_weights, final_seeds)[c.client_id]
            primary = "personal" if "personal" in evals else ("global" if "global" in evals else "own")
            per_client.append(evals[primary])
            for kind, ev in evals.items():
                rows.extend((spec, final_round, c.client_id, f"final/{kind}/{k}", v) for k, v in ev.items())
                if kind != primary:
                    extra.setdefault(f"{kind}_model_return", []).append(ev["return"])
        summary_extra: dict[str, Any] = {
            "evaluated_model": primary,
            "samples_per_client": exp.rounds * exp.steps_per_round,
            "train_time_s": train_time,
            "strategy_params": strategy.params(),
            **summarize_system(history),
        }
        for key, vals in extra.items():
            summary_extra[f"mean_{key}"] = float(np.mean(vals))
            summary_extra[f"worst_client_{key}"] = float(np.min(vals))
        methods[spec] = _summarize(per_client, entry, kind="federated" if strategy.federated else "local",
                                   extra=summary_extra)
    heuristics = baselines_of(entry, exp.env_form)
    for bname in (exp.baselines if exp.baselines is not None else tuple(heuristics)):
        per_client = []
        for cid, cfg in enumerate(configs):
            env = make_env(cfg)
            policy = heuristics[bname](env, seeds[cid][1])
            eval_seeds = _eval_seeds(seeds[cid][2], exp.final_eval_episodes)
            if parallel:
                ev = evaluate_parallel(env, policy, eval_seeds, entry.kpis, joint=True)
            else:
                ev = evaluate_policy(env, policy, eval_seeds, entry.kpis, entry.kpi_weight)
            per_client.append(ev)
            rows.extend((bname, final_round, cid, f"final/{k}", v) for k, v in ev.items())
        methods[bname] = _summarize(per_client, entry, kind="heuristic", extra={})
    return ExperimentResult(
        experiment=exp, rows=rows, methods=methods,
        client_configs=[_config_dict(c) for c in configs],
        wall_time_s=time.perf_counter() - start,
    )


def _config_dict(cfg: Any) -> dict[str, Any]:
    try:
        d = asdict(cfg)
    except TypeError:
        return {"repr": repr(cfg)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _summarize(per_client: list[dict[str, float]], entry: EnvEntry, *, kind: str,
               extra: dict[str, Any]) -> dict[str, Any]:
    returns = np.array([p["return"] for p in per_client])
    out: dict[str, Any] = {
        "kind": kind,
        "mean_return": float(returns.mean()),
        "worst_client_return": float(returns.min()),
        "per_client_return": [float(x) for x in returns],
    }
    for k in entry.kpis:
        vals = np.array([p[k] for p in per_client])
        out[k] = float(vals.mean())
        out[f"worst_client_{k}"] = float(vals.max() if k in entry.lower_is_better else vals.min())
    out.update(extra)
    return out

