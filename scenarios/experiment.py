"""The Experiment config and the generic runner every scenario uses.

A scenario (one paper-style experiment) declares an ``Experiment`` (``FULL``, and ``QUICK`` as a replacement
of a few fields); ``run_experiment``
turns it into results: it builds N heterogeneous clients from the env's client-config generator, runs each
federated strategy with identical seeds and sample budgets, and evaluates every heuristic baseline on the
same client envs with the same episode seeds (paired comparison).

Seeds flow one way: ``Experiment.seed`` → ``np.random.SeedSequence(seed).spawn(…)`` → client configs,
device profiles, the federation, evaluation episodes and per-client env, agent and rng seeds. No global RNG
state is touched and no seed is a constant.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers frl/* envs)
from agents import agent_class
from agents.base import Weights, is_int, is_number
from envs.knobs import apply_overrides
from envs.registry import EnvEntry, env_entry
from federation import Client, evaluate_policy, run_federation
from federation.attacks import choose_malicious, make_attack, with_attack
from federation.checkpoint import Checkpointer
from federation.compression import make_compressor
from federation.devices import DeviceProfile, make_device_profiles, make_round_policy
from federation.differential_privacy import apply_dp, dp_markdown, dp_summary
from federation.evaluation import evaluate_parallel
from federation.faults import FaultInjector
from federation.pool import ClientPool, InProcessPool
from federation.process_pool import ProcessPool, check_strategy
from federation.secure_aggregation import secure_strategy
from federation.server import SystemConfig, summarize_system
from federation.strategies import STRATEGIES, Strategy, make_strategy, parse_spec


class ScenarioError(ValueError):
    """A bad experiment knob: names the value and what is allowed."""


ENV_FORMS = ("single", "parallel")
BACKENDS = ("inprocess", "processes", "flower", "batched")
#: backends whose clients cannot be checkpointed here, and why (``frl run --checkpoint-every`` / ``--resume``)
UNCHECKPOINTED_BACKENDS = {
    "flower": "each client's state lives in its SuperNode's Context.state, out of the server's reach",
    "batched": "its stacked learners and batched envs are not walked by federation.checkpoint yet",
}


def baselines_of(entry: EnvEntry, env_form: str) -> Mapping[str, Any]:
    """The heuristics of an env's form: ``(env, seed) -> policy`` (joint ``obs dict -> action dict`` policies
    for the PettingZoo form)."""
    return entry.parallel_baselines if env_form == "parallel" else entry.baselines


def cli(help: str, *, flag: str | None = None) -> dict[str, Any]:
    """Field metadata that makes an experiment field a ``frl run`` flag (``--<field-name>`` unless ``flag``)."""
    return {"help": help, "flag": flag}


def parse_component_spec(spec: str, what: str) -> tuple[str, dict[str, float | int]]:
    """``"deadline:deadline_s=30"`` → ``("deadline", {"deadline_s": 30})``; every value must be a number."""
    name, params = parse_spec(spec)
    for key, val in params.items():
        if isinstance(val, str):
            raise ScenarioError(f"{what} parameter {key}={val!r} in {spec!r} is not a number")
    return name, params


def require(ok: bool, msg: str) -> None:
    """A scenario config's check: a one-line ScenarioError (the bad value and what is allowed) unless ``ok``."""
    if not ok:
        raise ScenarioError(msg)



def check_domain_list(domains: Any, allowed: Mapping[str, Any]) -> None:
    """A multi-domain scenario's ``domains``: a non-empty tuple of distinct known names."""
    require(isinstance(domains, tuple) and bool(domains), f"no domain given; allowed: {', '.join(allowed)}")
    bad = [d for d in domains if d not in allowed]
    require(not bad, f"unknown domain {bad[0] if bad else ''!r}; allowed: {', '.join(allowed)}")
    require(len(set(domains)) == len(domains), f"domain listed twice in {','.join(domains)}")


def _is_num(v: Any) -> bool:
    """A real number that is not NaN (``agents.base.is_number`` admits NaN)."""
    return is_number(v) and v == v


def check_common(exp: Any) -> None:
    """The knobs every experiment type shares: sizes of the run, evaluation and the seed."""
    require(is_int(exp.rounds) and 1 <= exp.rounds <= 100_000,
          f"rounds={exp.rounds!r} is out of range; allowed: integer in [1, 100000]")
    require(is_int(exp.steps_per_round) and 1 <= exp.steps_per_round <= 10**9,
          f"steps_per_round={exp.steps_per_round!r} is out of range; allowed: integer in [1, 1e9]")
    require(is_int(exp.seed) and 0 <= exp.seed < 2**32,
          f"seed={exp.seed!r} is out of range; allowed: integer in [0, 2**32)")
    for name in ("eval_every", "eval_episodes", "final_eval_episodes"):
        v = getattr(exp, name)
        require(is_int(v) and 1 <= v <= 100_000, f"{name}={v!r} is out of range; allowed: integer in [1, 100000]")


@dataclass(frozen=True)
class Experiment:
    """One horizontal-FRL experiment: N heterogeneous clients of one env, several methods, the env's heuristics.

    Validates itself when built (one error naming the bad value and what is allowed); the strategies, the
    round policy and the compressor are built once here and copied for each run. Fields with ``cli``
    metadata are the ``frl run`` flags.
    """

    scenario: str
    env_id: str
    n_clients: int = field(default=8, metadata=cli("number of federated clients", flag="clients"))
    heterogeneity: float = field(default=0.5, metadata=cli("environment heterogeneity across clients, [0, 1]"))
    rounds: int = field(default=30, metadata=cli("federated rounds"))
    steps_per_round: int = field(default=1000, metadata=cli("env steps each client trains per round"))
    fraction: float = field(default=1.0, metadata=cli("fraction of clients sampled per round, (0, 1]"))
    eval_every: int = field(default=5, metadata=cli("evaluate every N rounds"))
    eval_episodes: int = field(default=2, metadata=cli("episodes per client in round evaluations"))
    final_eval_episodes: int = field(default=10, metadata=cli("episodes per client in the final evaluation"))
    agent: str = "dqn"
    agent_config: Mapping[str, Any] = field(default_factory=dict)
    strategies: tuple[str, ...] = field(default=("fedavg", "local"), metadata=cli(
        "comma-separated strategies, each 'name' or 'name:key=value' (see `frl list`)", flag="strategy"))
    baselines: tuple[str, ...] | None = field(default=None, metadata=cli(
        "comma-separated heuristics to score (default: every heuristic of the env)"))
    seed: int = field(default=0, metadata=cli("the one seed every random choice derives from"))
    env_overrides: Mapping[str, Any] = field(default_factory=dict)  # applied to every client config
    device_heterogeneity: float = field(default=0.0, metadata=cli(
        "spread of client compute speed, bandwidth and availability, [0, 1]"))
    round_policy: str = field(default="synchronous", metadata=cli(
        "synchronous | deadline:deadline_s=S | buffered-async:k=K (with --strategy fedbuff)"))
    compression: str = field(default="none", metadata=cli("upload compression: none | int8 | topk:ratio=R"))
    faults: float = field(default=0.0, metadata=cli(
        "probability that a client's fit fails (raises, times out, NaN or wrongly shaped update), seeded, [0, 1]"))
    secure_aggregation: bool = field(default=False, metadata=cli(
        "pairwise-masked secure aggregation (Bonawitz et al. 2017): the server sees only the sum; sum-based "
        "strategies only"))
    dp_clip: float = field(default=0.0, metadata=cli(
        "client-level DP-FedAvg (McMahan et al. 2018): clip each client's update to this L2 norm C (0: no DP)"))
    dp_noise: float = field(default=0.0, metadata=cli(
        "DP-FedAvg noise multiplier sigma: N(0, (sigma*C)^2) is added to the sum of clipped updates"))
    dp_delta: float = field(default=1e-5, metadata=cli("DP delta at which epsilon is reported, (0, 1)"))
    malicious: float = field(default=0.0, metadata=cli(
        "fraction of Byzantine clients (chosen from the seed) running --attack, [0, 0.5)"))
    attack: str = field(default="sign-flip", metadata=cli(
        "the Byzantine clients' attack: sign-flip[:k=K] | gaussian[:std=S] | scale[:k=K] | zero | random-action | "
        "reward-flip[:k=K]"))
    min_clients: int = field(default=1, metadata=cli(
        "a round aggregates only when at least this many clients' results pass screening, else it is skipped"))
    backend: str = field(default="inprocess", metadata=cli(
        "where clients run: inprocess | processes (worker processes, bitwise equal) | flower | batched"))
    workers: int = field(default=2, metadata=cli(
        "worker processes of --backend processes (Ray actors of --backend flower's simulation), [1, 256]"))
    # "single": each client's env is the gymnasium form; "parallel": its PettingZoo form, where the client's
    # agent acts for every agent id with shared parameters (a multi-agent client) and is scored per agent
    env_form: str = "single"

    def __post_init__(self) -> None:
        check_common(self)
        require(is_int(self.n_clients) and 1 <= self.n_clients <= 1000,
              f"clients={self.n_clients!r} is out of range; allowed: integer in [1, 1000]")
        require(_is_num(self.heterogeneity) and 0.0 <= self.heterogeneity <= 1.0,
              f"heterogeneity={self.heterogeneity!r} is out of range; allowed: [0, 1]")
        require(_is_num(self.fraction) and 0.0 < self.fraction <= 1.0,
              f"fraction={self.fraction!r} is out of range; allowed: (0, 1]")
        require(_is_num(self.device_heterogeneity) and 0.0 <= self.device_heterogeneity <= 1.0,
              f"device_heterogeneity={self.device_heterogeneity!r} is out of range; allowed: [0, 1]")
        require(isinstance(self.strategies, tuple) and bool(self.strategies),
              f"no strategy given; allowed: {', '.join(STRATEGIES)}")
        require(len(set(self.strategies)) == len(self.strategies),
              f"strategy listed twice in {','.join(self.strategies)}")
        require(_is_num(self.malicious) and 0.0 <= self.malicious < 0.5,
              f"malicious={self.malicious!r} is out of range; allowed: a fraction in [0, 0.5)")
        if self.attack != "none":
            make_attack(self.attack)  # one line naming a bad attack or parameter
        require(isinstance(self.secure_aggregation, bool),
              f"secure_aggregation={self.secure_aggregation!r}; allowed: true or false")
        require(_is_num(self.dp_clip) and self.dp_clip >= 0,
              f"dp_clip={self.dp_clip!r} is out of range; allowed: number >= 0 (0: no DP)")
        require(self.dp_clip > 0 or (self.dp_noise == 0 and self.dp_delta == 1e-5),
              f"dp_noise={self.dp_noise!r} / dp_delta={self.dp_delta!r} need dp_clip > 0; allowed: set --dp-clip C")
        require(not (self.secure_aggregation and self.dp_clip > 0),
              "secure_aggregation with dp_clip is not supported: DP-FedAvg clips each update on the server, which "
              "secure aggregation hides; allowed: one of them")
        strategies = {}
        for spec in self.strategies:
            name, params = parse_spec(spec)
            strategies[spec] = make_strategy(name, **params)
            if self.dp_clip > 0:
                strategies[spec] = apply_dp(strategies[spec], self.dp_clip, self.dp_noise, self.dp_delta,
                                            num_clients=self.n_clients)
            if self.secure_aggregation:
                strategies[spec] = secure_strategy(strategies[spec])
        require(_is_num(self.faults) and 0.0 <= self.faults <= 1.0,
              f"faults={self.faults!r} is out of range; allowed: probability in [0, 1]")
        require(is_int(self.min_clients) and 1 <= self.min_clients <= self.n_clients,
              f"min_clients={self.min_clients!r} is out of range; allowed: integer in [1, clients={self.n_clients}]")
        per_round = max(1, int(round(self.fraction * self.n_clients)))
        for obj in strategies.values():  # what can be refused before any training is refused here
            obj.check_federation(self.n_clients, per_round)
        policy = _build(make_round_policy, self.round_policy, "round policy")
        compressor = _build(make_compressor, self.compression, "compression")
        require(not self.secure_aggregation or (compressor.lossless and not policy.asynchronous),
              f"secure_aggregation needs lossless synchronous uploads; got compression={self.compression!r}, "
              f"round_policy={self.round_policy!r}; allowed: compression none, a synchronous or deadline policy")
        k = getattr(policy, "k", None)
        require(not policy.asynchronous or k is None or k <= self.n_clients,
              f"buffered-async:k={k!r} is more than the {self.n_clients} clients; allowed: k in [1, {self.n_clients}]")
        if policy.asynchronous:
            bad = [s for s, obj in strategies.items() if not obj.accepts_stale]
            require(not bad, f"round policy 'buffered-async' cannot drive strategy {bad[0] if bad else ''!r}; "
                           "allowed with it: fedbuff")
        require(self.env_form in ENV_FORMS, f"env_form={self.env_form!r} is not known; allowed: {', '.join(ENV_FORMS)}")
        entry = env_entry(self.env_id)
        if self.env_form == "parallel":
            entry.parallel_factory()  # refuses envs without a PettingZoo form, naming those with one
        known = baselines_of(entry, self.env_form)
        if self.baselines is not None:
            bad = [b for b in self.baselines if b not in known]
            require(not bad, f"unknown baseline {','.join(bad)} for {entry.env_id}; allowed: {', '.join(known)}")
        agent_class(self.agent)
        require(self.backend in BACKENDS, f"backend={self.backend!r} is not known; allowed: {', '.join(BACKENDS)}")
        require(is_int(self.workers) and 1 <= self.workers <= 256,
              f"workers={self.workers!r} is out of range; allowed: integer in [1, 256]")
        if self.backend == "flower":
            import importlib.util

            require(importlib.util.find_spec("flwr") is not None,
                  "backend='flower' needs the optional Flower extra, which is not installed; allowed: "
                  "pip install torch==2.13.0 -e \".[flower]\", or --backend inprocess | processes")
        if self.backend == "batched":  # refuse before any training what the batched backend cannot run
            from scenarios.batched_backend import check_batched

            check_batched(self)
        object.__setattr__(self, "_built", (strategies, policy, compressor))
        if self.backend == "processes":  # a method whose client half cannot live in a worker, before training
            for spec in self.strategies:
                check_strategy(Experiment.strategy(self, spec))

    def strategy(self, spec: str) -> Strategy:
        """A fresh copy of the strategy built (and so validated) for ``spec``; with ``malicious`` > 0, its
        client halves run ``attack`` on the Byzantine clients (``federation.attacks.with_attack``)."""
        strategy = copy.deepcopy(self._built[0][spec])  # type: ignore[attr-defined]
        if self.malicious > 0:
            strategy = with_attack(strategy, self.attack, self.malicious_clients(), self._seed_child(6))
        return strategy

    def _seed_child(self, i: int) -> np.random.SeedSequence:
        # children 0-4 of SeedSequence(seed) are client_setup's; 5: who is Byzantine, 6: attack randomness
        return np.random.SeedSequence(self.seed).spawn(7)[i]

    def malicious_clients(self) -> tuple[int, ...]:
        return choose_malicious(self.n_clients, self.malicious, self._seed_child(5)) if self.malicious > 0 else ()

    def system(self, devices: tuple[DeviceProfile, ...]) -> SystemConfig:
        """The run's system: these devices, fresh copies of the validated round policy and compressor."""
        _, policy, compressor = self._built  # type: ignore[attr-defined]
        return SystemConfig(devices=devices, round_policy=copy.deepcopy(policy),
                            compressor=copy.deepcopy(compressor), min_clients=int(self.min_clients),
                            faults=FaultInjector(float(self.faults)) if self.faults > 0 else None)

    def describe(self) -> str:
        return (f"{self.n_clients} clients, heterogeneity {self.heterogeneity}, {self.rounds} rounds × "
                f"{self.steps_per_round} steps, agent `{self.agent}`, seed {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _build(make: Callable[..., Any], spec: str, what: str) -> Any:
    require(isinstance(spec, str), f"{what}={spec!r} must be a string 'name' or 'name:key=value'")
    name, params = parse_component_spec(spec, what)
    return make(name, **params)


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


@dataclass
class ExperimentResult:
    """Long-format rows (method, round, client, metric, value) plus per-method summaries."""

    experiment: Any  # Experiment, or a scenario's own config type (e.g. VerticalExperiment)
    rows: list[tuple[str, int, int, str, float]]
    methods: dict[str, dict[str, Any]]
    client_configs: list[dict[str, Any]]
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # scenario-specific results (e.g. a sweep)


ProgressCallback = Callable[[str, int, int], None]  # (method, round done, rounds)
#: where run_experiment hands each method's summary and rows as soon as that method finishes
#: (scenario, method, summary, rows); set by the CLI so a failure in a later method keeps the earlier ones
METHOD_SINK: ContextVar[Callable[[str, str, dict[str, Any], list[tuple[Any, ...]]], None] | None] = ContextVar(
    "METHOD_SINK", default=None)


def _ints(seq: np.random.SeedSequence, n: int) -> list[int]:
    return [int(v) for v in seq.generate_state(n, dtype=np.uint32)]


@dataclass(frozen=True)
class ClientSetup:
    """Everything about the clients that ``exp.seed`` decides, identical for every method of a run."""

    configs: list[Any]               # per-client env configs
    seeds: list[list[int]]           # per client: env, agent, final-evaluation base, client rng
    final_seeds: list[list[int]]     # per client: the final evaluation's episode seeds
    eval_seeds: list[int]            # the round evaluations' episode seeds
    devices: tuple[DeviceProfile, ...]
    federation_seed: np.random.SeedSequence  # sampling, availability, strategy randomness


def client_setup(exp: Experiment) -> ClientSetup:
    """``SeedSequence(exp.seed)`` spawns the client configs, the device profiles, the federation, the
    round-evaluation episodes and one child per client (env, agent, final evaluation episodes, own rng).
    Public so a scenario can score extra references (e.g. a clairvoyant bound) on the same episodes."""
    entry = env_entry(exp.env_id)
    cfg_seq, dev_seq, fed_seq, eval_seq, client_root = np.random.SeedSequence(exp.seed).spawn(5)
    configs = entry.client_configs(exp.n_clients, float(exp.heterogeneity), _ints(cfg_seq, 1)[0])
    if exp.env_overrides:
        configs = [apply_overrides(c, dict(exp.env_overrides)) for c in configs]
    seeds = [_ints(s, 4) for s in client_root.spawn(exp.n_clients)]
    final_seeds = [[int(v) for v in np.random.SeedSequence(s[2]).generate_state(exp.final_eval_episodes)]
                   for s in seeds]
    devices = tuple(make_device_profiles(exp.n_clients, exp.device_heterogeneity, _ints(dev_seq, 1)[0]))
    return ClientSetup(configs, seeds, final_seeds, _ints(eval_seq, exp.eval_episodes), devices, fed_seq)


def env_maker(exp: Experiment) -> Callable[[Any], Any]:
    """``config -> env`` in the experiment's form (the Gymnasium env, or the PettingZoo ``parallel_env``)."""
    entry = env_entry(exp.env_id)
    if exp.env_form == "parallel":
        factory = entry.parallel_factory()
        return lambda cfg: factory(config=cfg)
    return lambda cfg: gym.make(entry.env_id, config=cfg)


def score_heuristics(exp: Experiment, setup: ClientSetup | None = None,
                     ) -> tuple[list[tuple[str, int, int, str, float]], dict[str, dict[str, Any]]]:
    """Every heuristic of ``exp.baselines`` (default: all of the env's form) on the clients and final
    evaluation episodes every method of ``exp`` is scored on: (metric rows, per-heuristic summary)."""
    entry = env_entry(exp.env_id)
    setup = setup or client_setup(exp)
    make_env = env_maker(exp)
    heuristics = baselines_of(entry, exp.env_form)
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    for bname in (exp.baselines if exp.baselines is not None else tuple(heuristics)):
        per_client = []
        for cid, cfg in enumerate(setup.configs):
            env = make_env(cfg)
            policy = heuristics[bname](env, setup.seeds[cid][1])
            if exp.env_form == "parallel":
                ev = evaluate_parallel(env, policy, setup.final_seeds[cid], entry.kpis, joint=True)
            else:
                ev = evaluate_policy(env, policy, setup.final_seeds[cid], entry.kpis, entry.kpi_weight)
            per_client.append(ev)
            rows.extend((bname, exp.rounds + 1, cid, f"final/{k}", v) for k, v in ev.items())
        methods[bname] = summarize_clients(per_client, entry, kind="heuristic", extra={})
    return rows, methods


def build_clients(exp: Experiment, spec: str, ids: Sequence[int], setup: ClientSetup | None = None) -> list[Client]:
    """The clients ``ids`` of ``exp`` for method ``spec``: env (seeded), evaluation env and agent from
    :func:`client_setup`, the same wherever they are built (this process or a backend's worker)."""
    entry = env_entry(exp.env_id)
    setup = setup or client_setup(exp)
    parallel = exp.env_form == "parallel"
    make_env = env_maker(exp)
    cls = agent_class(exp.agent)
    built = exp._built[0][spec]  # type: ignore[attr-defined]  # wrappers pass agent_overrides through
    agent_kw = {**dict(exp.agent_config), **dict(built.agent_overrides)}

    def spaces(env: Any) -> tuple[gym.Space, gym.Space]:
        if parallel:  # one agent acts for every agent id: all share the first agent's spaces
            return env.observation_space(env.possible_agents[0]), env.action_space(env.possible_agents[0])
        return env.observation_space, env.action_space

    clients = []
    for cid in ids:
        cfg = setup.configs[cid]
        env_seed, agent_seed, _, rng_seed = setup.seeds[cid]
        env = make_env(cfg)
        env.reset(seed=env_seed)
        if not parallel:
            env.action_space.seed(env_seed)
        clients.append(Client(
            cid, env, make_env(cfg),
            lambda env=env, s=agent_seed, kw=agent_kw: cls(*spaces(env), seed=s, **kw),
            steps_per_round=exp.steps_per_round, kpis=entry.kpis, kpi_weight=entry.kpi_weight,
            make_env=lambda cfg=cfg: make_env(cfg), rng=np.random.default_rng(rng_seed),
        ))
    return clients


def make_pool(exp: Experiment, spec: str, setup: ClientSetup | None = None) -> ClientPool:
    """The clients of ``exp`` for method ``spec`` where ``exp.backend`` runs them."""
    if exp.backend == "inprocess":
        return InProcessPool(build_clients(exp, spec, range(exp.n_clients), setup))
    if exp.backend == "flower":  # the optional extra: imported only here
        from scenarios.flower_app import make_flower_pool

        return make_flower_pool(exp, spec, setup)
    if exp.backend == "processes":  # Experiment.__post_init__ refused client halves that cannot live in a worker
        return ProcessPool(functools.partial(build_clients, exp, spec, setup=setup or client_setup(exp)),
                           range(exp.n_clients), exp.workers)
    raise ScenarioError(f"backend={exp.backend!r} has no client pool; allowed: inprocess, processes, flower "
                        "(batched runs through run_experiment)")


#: where run_experiment gets each federation's checkpoint file (set by ``frl run --checkpoint-every``)
CHECKPOINTS: ContextVar[RunCheckpoints | None] = ContextVar("CHECKPOINTS", default=None)


class RunCheckpoints:
    """The checkpoints of one run: the k-th federation the run starts saves into ``dir/federation-<k>.pt``.

    A run is deterministic, so on resume its k-th federation is the same one: a finished federation is
    restored from its last checkpoint instead of trained again, an unfinished one continues from it."""

    def __init__(self, directory: Path, every: int, identity: Mapping[str, Any]) -> None:
        self.dir = Path(directory)
        self.every = every
        self.identity = dict(identity)
        self.count = 0

    def next_federation(self) -> Checkpointer:
        k = self.count
        self.count += 1
        return Checkpointer(self.dir / f"federation-{k:03d}.pt", self.every, {**self.identity, "federation": k})


def run_experiment(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """Every method on the same clients (configs, devices, seeds: :func:`client_setup`), then every heuristic
    on the same episodes. The federation's seed is the same for every method, so runs are paired.
    ``exp.backend == "batched"`` simulates all clients together (:mod:`scenarios.batched_backend`)."""
    if exp.backend == "batched":
        from scenarios.batched_backend import run_experiment_batched

        return run_experiment_batched(exp, on_progress)
    start = time.perf_counter()
    entry = env_entry(exp.env_id)
    setup = client_setup(exp)
    configs, final_seeds, eval_seeds, devices = setup.configs, setup.final_seeds, setup.eval_seeds, setup.devices
    fed_seq = setup.federation_seed
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    final_round = exp.rounds + 1  # final evaluation is recorded as round R+1 with more episodes

    for spec in exp.strategies:
        strategy = exp.strategy(spec)
        checkpoint = CHECKPOINTS.get()
        t0 = time.perf_counter()
        with make_pool(exp, spec, setup) as pool:
            history = run_federation(
                pool, strategy, rounds=exp.rounds, seed=np.random.SeedSequence(fed_seq.entropy,
                                                                               spawn_key=fed_seq.spawn_key),
                fraction=exp.fraction, eval_every=exp.eval_every, eval_seeds=eval_seeds,
                system=exp.system(devices),
                on_round=(lambda r, h, s=spec: on_progress(s, r, exp.rounds)) if on_progress else None,
                checkpoint=checkpoint.next_federation() if checkpoint is not None else None,
            )
            models: dict[int, Weights] = {}  # each client's model named as if it were evaluated alone
            for cid in pool.ids:
                models.update(strategy.configure_evaluate(final_round, history.global_weights, [cid]))
            finals = pool.evaluate(models, {cid: final_seeds[cid] for cid in pool.ids})  # one call: workers in parallel
        train_time = time.perf_counter() - t0
        rows.extend((spec, r, c, m, v) for r, c, m, v in history.rows)
        extra_summary: dict[str, Any] = dict(dp_summary(strategy)) if exp.dp_clip > 0 else {}
        if exp.secure_aggregation:
            extra_summary["secagg_aborted_rounds"] = sum(bool(e["aborted"]) for e in getattr(strategy, "ledger", []))
        final_rows, methods[spec] = method_summary(spec, final_round, finals, history, strategy, train_time, entry,
                                                   exp.n_clients, extra_summary)
        rows.extend(final_rows)
        sink = METHOD_SINK.get()
        if sink is not None:  # e.g. the CLI stores each finished method, so a later failure loses nothing
            sink(exp.scenario, spec, methods[spec], [r for r in rows if r[0] == spec])
    h_rows, h_methods = score_heuristics(exp, setup)
    rows.extend(h_rows)
    methods.update(h_methods)
    return ExperimentResult(
        experiment=exp, rows=rows, methods=methods,
        client_configs=[_config_dict(c) for c in configs],
        wall_time_s=time.perf_counter() - start,
        extra={"dp_markdown": dp_markdown(methods)} if exp.dp_clip > 0 else {},
    )


def method_summary(spec: str, final_round: int, finals: Mapping[int, Mapping[str, Mapping[str, float]]],
                   history: Any, strategy: Strategy, train_time: float, entry: EnvEntry, n_clients: int,
                   extra_summary: Mapping[str, Any] | None = None,
                   ) -> tuple[list[tuple[str, int, int, str, float]], dict[str, Any]]:
    """One federated method's final rows and summary, from each client's final evaluation (kind → metrics):
    the model each client is scored with is ``personal`` where the method has one, else ``global``, else
    ``own``; the other kinds' returns are reported beside it. Shared by every backend."""
    rows: list[tuple[str, int, int, str, float]] = []
    per_client: list[dict[str, float]] = []
    extra: dict[str, list[float]] = {}
    primary = "own"
    for cid, evals in finals.items():
        primary = "personal" if "personal" in evals else ("global" if "global" in evals else "own")
        per_client.append(dict(evals[primary]))
        for kind, ev in evals.items():
            rows.extend((spec, final_round, cid, f"final/{kind}/{k}", v) for k, v in ev.items())
            if kind != primary:
                extra.setdefault(f"{kind}_model_return", []).append(ev["return"])
    system = summarize_system(history)
    summary: dict[str, Any] = {
        "evaluated_model": primary,
        "samples_per_client": system["samples_trained"] / n_clients,
        "train_time_s": train_time,
        "strategy_params": strategy.params(),
        **system,
        **dict(extra_summary or {}),
    }
    for key, vals in extra.items():
        summary[f"mean_{key}"] = float(np.mean(vals))
        summary[f"worst_client_{key}"] = float(np.min(vals))
    return rows, summarize_clients(per_client, entry, kind="local" if primary == "own" else "federated",
                                   extra=summary)


def _config_dict(cfg: Any) -> dict[str, Any]:
    try:
        d = asdict(cfg)
    except TypeError:
        return {"repr": repr(cfg)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def summarize_clients(per_client: list[dict[str, float]], entry: EnvEntry, *, kind: str,
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
        out[f"per_client_{k}"] = [float(x) for x in vals]
    out.update(extra)
    return out

