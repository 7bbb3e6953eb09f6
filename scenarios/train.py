"""``frl train AGENT ENV_ID``: one agent alone (no federation) on any registered env, Gymnasium's own included.

Why: before federating an algorithm on a domain, one wants to know what it does alone on that env (and on
the textbook envs its hyperparameters were tuned for). The results use the same files as ``frl run``.

``parallel=True`` trains on the env's PettingZoo form instead: one agent acts for every agent id with shared
parameters (batched; how a multi-agent client trains) and is evaluated by
:func:`federation.evaluation.evaluate_parallel` (mean per-agent episode return), beside the env's parallel
heuristics when it has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers frl/* envs)
from agents import agent_class
from envs.registry import ENV_ENTRIES, env_entry
from federation.evaluation import evaluate_parallel, evaluate_policy
from scenarios.experiment import ExperimentResult, ScenarioError


@dataclass(frozen=True)
class TrainRun:
    """What ``frl train`` ran, for config.json and summary.md."""

    scenario: str
    env_id: str
    agent: str
    agent_config: dict[str, Any]
    steps: int
    rounds: int
    eval_episodes: int
    final_eval_episodes: int
    seed: int
    parallel: bool

    def describe(self) -> str:
        form = " (PettingZoo form)" if self.parallel else ""
        return f"`{self.agent}` alone on {self.env_id}{form}, {self.steps} steps, seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_env_checked(env_id: str) -> gym.Env:
    if env_id not in gym.registry:
        frl = ", ".join(sorted(ENV_ENTRIES))
        raise ScenarioError(f"unknown env {env_id!r}; allowed: {frl}, or any Gymnasium id such as CartPole-v1")
    return gym.make(env_id)


def train(agent: str, env_id: str, *, steps: int, seed: int = 0, evals: int = 10, eval_episodes: int = 5,
          agent_config: dict[str, Any] | None = None, parallel: bool = False,
          on_progress: Callable[[str, int, int], None] | None = None) -> tuple[ExperimentResult, Any]:
    """Train ``agent`` for ``steps`` env steps, evaluating greedily ``evals`` times; returns results and agent.

    With ``parallel`` the env's PettingZoo form is used (``steps`` summed over agents)."""
    if steps < 1:
        raise ScenarioError(f"steps={steps} is out of range; allowed: integer >= 1")
    cls = agent_class(agent)
    if parallel:
        factory = env_entry(env_id).parallel_factory()  # unknown id or no PettingZoo form: one-line error
        env, eval_env = factory(), factory()
        agent0 = env.possible_agents[0]
        obs_space, act_space = env.observation_space(agent0), env.action_space(agent0)
    else:
        env, eval_env = make_env_checked(env_id), make_env_checked(env_id)
        obs_space, act_space = env.observation_space, env.action_space
        env.reset(seed=seed)
    entry = ENV_ENTRIES.get(env_id)
    kpis = entry.kpis if entry else ()
    learner = cls(obs_space, act_space, seed=seed, **(agent_config or {}))
    chunk = max(1, steps // evals)
    rounds = (steps + chunk - 1) // chunk
    seeds = [int(s) for s in np.random.SeedSequence(seed).spawn(1)[0].generate_state(eval_episodes)]
    rows: list[tuple[str, int, int, str, float]] = []
    start = time.perf_counter()
    done = 0
    for rnd in range(1, rounds + 1):
        n = min(chunk, steps - done)
        t0 = time.perf_counter()
        stats = learner.learn(env, n)
        done += n
        rows.extend((agent, rnd, 0, k, v) for k, v in stats.items())
        rows.append((agent, rnd, 0, "train/steps_per_s", n / max(time.perf_counter() - t0, 1e-9)))
        greedy = lambda o: learner.act(o, explore=False)  # noqa: E731
        if parallel:
            ev = evaluate_parallel(eval_env, greedy, seeds, kpis)
        else:
            ev = evaluate_policy(eval_env, greedy, seeds, kpis, entry.kpi_weight if entry else None)
        rows.extend((agent, rnd, 0, f"own/{k}", v) for k, v in ev.items())
        if on_progress:
            on_progress(agent, rnd, rounds)
    final = {k: v for _, r, _, k, v in rows if r == rounds and k.startswith("own/")}
    methods: dict[str, dict[str, Any]] = {}
    method = {"kind": "local", "evaluated_model": "own", "mean_return": final["own/return"],
              "worst_client_return": final["own/return"], "per_client_return": [final["own/return"]],
              "samples_per_client": steps, "train_time_s": time.perf_counter() - start,
              **{k: final[f"own/{k}"] for k in kpis}}
    if parallel:  # the env's joint heuristics on the same episodes, for reference
        for name, make_policy in (entry.parallel_baselines if entry else {}).items():
            ev = evaluate_parallel(eval_env, make_policy(eval_env, seed), seeds, kpis, joint=True)
            methods[name] = {"kind": "baseline", "evaluated_model": "heuristic", "mean_return": ev["return"],
                             "worst_client_return": ev["return"], "per_client_return": [ev["return"]],
                             **{k: ev[k] for k in kpis}}
    exp = TrainRun(scenario=f"train-{agent}", env_id=env_id, agent=agent, agent_config=dict(agent_config or {}),
                   steps=steps, rounds=rounds, eval_episodes=eval_episodes, final_eval_episodes=eval_episodes,
                   seed=seed, parallel=parallel)
    result = ExperimentResult(experiment=exp, rows=rows, methods={agent: method, **methods}, client_configs=[],
                              wall_time_s=time.perf_counter() - start)
    return result, learner
