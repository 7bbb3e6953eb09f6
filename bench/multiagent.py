"""Shared-parameter agents on the PettingZoo forms: training speed of batched acting, and learning.

Usage: ``python bench/multiagent.py [--quick] [--only dqn,td3] [--seed 0]``

One agent acts for every agent id of a domain's PettingZoo ``parallel_env`` with shared parameters
(Gupta et al. 2017; Terry et al. 2020) — how a multi-agent client trains.

Speed: agent-steps per second of ``learn`` on the parallel form (one batched forward pass per joint step)
beside the same agent on the env's single-agent gymnasium form for the same number of agent steps, one
torch thread, both warmed up past ``learning_starts`` so every timed step carries its share of updates.

Learning: ``scenarios.train.train(parallel=True)`` (what ``frl train AGENT ENV --parallel`` runs): the greedy
learner's mean per-agent episode return on fixed-seed episodes, beside uniformly random actions and the
env's own parallel heuristics on the same episodes. Writes ``bench_multiagent.json`` to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402,F401  (registers frl/* envs)
from agents import agent_class  # noqa: E402
from bench.common import parse_only  # noqa: E402
from envs.registry import env_entry  # noqa: E402
from federation.evaluation import evaluate_parallel  # noqa: E402
from scenarios.train import train  # noqa: E402

torch.set_num_threads(1)


@dataclass(frozen=True)
class Row:
    agent: str
    env_id: str
    steps: int  # learning budget, agent-steps summed over agents
    config: dict[str, Any] = field(default_factory=dict)
    speed_steps: int = 4_000


#: DQN on CV2X uses a dueling head and γ = 0.9: with the default γ = 0.99 the Q-values (≈ 55 for a reward of
#: ≈ 0.9 per slot) dwarf the action differences and the greedy shared policy stays at random's level.
ROWS = [
    Row("dqn", "frl/CV2X-v0", 400_000, dict(dueling=True, gamma=0.9)),
    Row("ppo", "frl/CV2X-v0", 400_000),
    Row("dqn", "frl/OranAccess-v0", 150_000),
    Row("td3", "frl/RobotNavigation-v0", 100_000, dict(hidden_sizes=(64, 64), batch_size=128), 2_000),
]


def speed(row: Row, seed: int, quick: bool) -> dict[str, float]:
    """Agent-steps/s of learn() on the parallel and on the single-agent form (see the module docstring)."""
    entry = env_entry(row.env_id)
    n = row.speed_steps // (4 if quick else 1)
    out = {}
    for form in ("parallel", "single"):
        env = entry.parallel_factory()() if form == "parallel" else gym.make(row.env_id)
        if form == "parallel":
            a0 = env.possible_agents[0]
            spaces = env.observation_space(a0), env.action_space(a0)
        else:
            spaces = env.observation_space, env.action_space
        learner = agent_class(row.agent)(*spaces, seed=seed, **row.config)
        warm = int(getattr(learner.config, "learning_starts", 0)) + 64
        learner.learn(env, warm)
        t0 = time.perf_counter()
        learner.learn(env, n)
        out[form] = n / (time.perf_counter() - t0)
    return out


def learning(row: Row, seed: int, quick: bool, episodes: int) -> dict[str, Any]:
    steps = row.steps // (20 if quick else 1)
    t0 = time.perf_counter()
    result, _ = train(row.agent, row.env_id, steps=steps, seed=seed, evals=5, eval_episodes=episodes,
                      agent_config=row.config, parallel=True)
    wall = time.perf_counter() - t0
    methods = {k: v["mean_return"] for k, v in result.methods.items()}
    env = env_entry(row.env_id).parallel_factory()()
    space = env.action_space(env.possible_agents[0])
    space.seed(seed)
    seeds = [int(s) for s in np.random.SeedSequence([seed, 77]).generate_state(episodes)]  # train()'s seeds
    methods["random"] = evaluate_parallel(env, lambda _: space.sample(), seeds)["return"]
    return {"steps": steps, "wall_s": wall, "learner": methods.pop(row.agent), "baselines": methods}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small budgets: a smoke run of the pipeline")
    p.add_argument("--only", default="", help="comma-separated agents, e.g. dqn,td3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (fixed seeds)")
    p.add_argument("--no-learning", action="store_true", help="speed only")
    p.add_argument("--out", type=Path, default=None, help="directory for bench_multiagent.json")
    args = p.parse_args(argv)
    only = parse_only(p, args.only, (r.agent for r in ROWS))
    rows = [r for r in ROWS if not only or r.agent in only]
    results = []
    print("| agent | env (PettingZoo form) | agents | agent-steps/s parallel | single | ratio |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        s = speed(row, args.seed, args.quick)
        n_agents = len(env_entry(row.env_id).parallel_factory()().possible_agents)
        print(f"| {row.agent} | {row.env_id} | {n_agents} | {s['parallel']:,.0f} | {s['single']:,.0f} "
              f"| {s['parallel'] / s['single']:.2f}× |", flush=True)
        results.append({"agent": row.agent, "env": row.env_id, "agents": n_agents, "speed": s})
    if not args.no_learning:
        print()
        print("| agent | env | steps | wall (s) | learner return | random | heuristics |")
        print("|---|---|---|---|---|---|---|")
        for row, res in zip(rows, results, strict=True):
            learn = learning(row, args.seed, args.quick, args.episodes)
            res["learning"] = learn
            others = ", ".join(f"{k} {v:.1f}" for k, v in learn["baselines"].items() if k != "random")
            print(f"| {row.agent} | {row.env_id} | {learn['steps']:,} | {learn['wall_s']:.0f} | "
                  f"{learn['learner']:.1f} | {learn['baselines']['random']:.1f} | {others or '-'} |", flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_multiagent.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
