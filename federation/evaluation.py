"""Episode evaluation shared by agents and heuristic baselines.

Every policy — a global model, a client's own model, a heuristic — is evaluated on the same client env
with the same episode seeds, so per-client comparisons are paired (differences are due to the policy, not
to luck of the draw).

Every episode loop is capped: at the env's own limit (``env.spec.max_episode_steps``) when it has one, else
at :data:`DEFAULT_MAX_EPISODE_STEPS`. A greedy policy that walks in a loop on an env with no time limit
(CliffWalking) would otherwise never return. Episodes cut by the cap are counted in ``truncated_episodes``
(the fraction of evaluated episodes), so a capped score is never mistaken for a finished one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

DEFAULT_MAX_EPISODE_STEPS = 10_000
"""The evaluation cap for envs that declare no episode limit of their own."""


def episode_cap(env: Any, max_steps: int | None = None) -> int:
    """The step cap of one evaluation episode: ``max_steps`` if given, else the env's registered limit,
    else :data:`DEFAULT_MAX_EPISODE_STEPS`."""
    if max_steps is not None:
        if int(max_steps) < 1:
            raise ValueError(f"max_steps={max_steps!r} must be >= 1")
        return int(max_steps)
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None) if spec is not None else None
    return int(limit) if limit else DEFAULT_MAX_EPISODE_STEPS


def evaluate_policy(
    env: gym.Env,
    policy: Callable[[np.ndarray], Any],
    seeds: Sequence[int],
    kpis: Sequence[str] = (),
    kpi_weight: str | Mapping[str, str] | None = None,
    *,
    max_steps: int | None = None,
) -> dict[str, float]:
    """Run one episode per seed; return the mean episode return and the means of the ``kpis`` info keys.

    KPIs are averaged over steps, each step weighted by ``info[kpi_weight]`` when given — for envs whose
    steps cover different amounts of traffic (e.g. the requests served between two caching decisions), so
    a ratio like the hit ratio is per request, not per decision. A mapping weights each named KPI by its own
    info key (the others by 1): e.g. ``{"delay": "completed"}`` makes a delay KPI the exact mean over the
    tasks that completed. Each episode stops after :func:`episode_cap` steps at the latest.
    """
    weight_of = dict(kpi_weight) if isinstance(kpi_weight, Mapping) else dict.fromkeys(kpis, kpi_weight)
    cap = episode_cap(env, max_steps)
    cut = 0
    returns = np.empty(len(seeds), dtype=np.float64)
    kpi_sum = dict.fromkeys(kpis, 0.0)
    kpi_weight_sum = dict.fromkeys(kpis, 0.0)
    steps = 0
    for i, s in enumerate(seeds):
        obs, _ = env.reset(seed=int(s))
        total = 0.0
        done = False
        for _ in range(cap):
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total += float(reward)
            steps += 1
            for k in kpis:
                w = float(info[weight_of[k]]) if weight_of.get(k) else 1.0
                kpi_weight_sum[k] += w
                kpi_sum[k] += w * float(info[k])
            done = terminated or truncated
            if done:
                break
        cut += not done
        returns[i] = total
    out = {"return": float(returns.mean()), "return_std": float(returns.std())}
    for k in kpis:
        out[k] = kpi_sum[k] / kpi_weight_sum[k] if kpi_weight_sum[k] > 0 else 0.0
    out["episode_length"] = steps / max(len(seeds), 1)
    out["truncated_episodes"] = cut / max(len(seeds), 1)
    return out


def evaluate_parallel(
    env: Any,
    policy: Callable[[np.ndarray], Any] | Callable[[dict[str, Any]], dict[str, Any]],
    seeds: Sequence[int],
    kpis: Sequence[str] = (),
    *,
    joint: bool = False,
    max_steps: int | None = None,
) -> dict[str, float]:
    """One episode per seed of a PettingZoo ``ParallelEnv``, run until every agent is done.

    ``policy`` maps one agent's observation to its action (a shared-parameter learner acting for every
    agent id), or with ``joint=True`` an observation dict to an action dict (the env's parallel heuristics).
    ``return`` is the mean over agents of each agent's episode return (``return_std`` its spread over
    episodes); ``team_return`` (spread ``team_return_std``) sums the mean live-agent reward over steps. KPIs
    are averaged over the agent-steps whose info carries them. Each episode stops after
    :func:`episode_cap` steps at the latest (the env's ``max_cycles`` / spec limit when declared).
    """
    cap = episode_cap(env, max_steps if max_steps is not None else getattr(env, "max_cycles", None))
    cut = 0
    per_episode, team = np.empty(len(seeds)), np.empty(len(seeds))
    kpi_sum, kpi_n = dict.fromkeys(kpis, 0.0), dict.fromkeys(kpis, 0)
    steps = 0
    for i, s in enumerate(seeds):
        obs, _ = env.reset(seed=int(s))
        totals = dict.fromkeys(env.possible_agents, 0.0)
        team_total = 0.0
        for _ in range(cap):
            if not env.agents:
                break
            live = list(env.agents)
            actions = policy(obs) if joint else {a: policy(obs[a]) for a in live}
            obs, rewards, _, _, infos = env.step(actions)
            for a, r in rewards.items():
                totals[a] += float(r)
            team_total += float(np.mean([float(r) for r in rewards.values()])) if rewards else 0.0
            for info in infos.values():
                for k in kpis:
                    if k in info:
                        kpi_sum[k] += float(info[k])
                        kpi_n[k] += 1
            steps += 1
        cut += bool(env.agents)
        per_episode[i] = float(np.mean(list(totals.values())))
        team[i] = team_total
    out = {"return": float(per_episode.mean()), "return_std": float(per_episode.std()),
           "team_return": float(team.mean()), "team_return_std": float(team.std()),
           "episode_length": steps / max(len(seeds), 1), "truncated_episodes": cut / max(len(seeds), 1)}
    for k in kpis:
        out[k] = kpi_sum[k] / kpi_n[k] if kpi_n[k] else 0.0
    return out
