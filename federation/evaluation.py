"""Episode evaluation shared by agents and heuristic baselines.

Every policy — a global model, a client's own model, a heuristic — is evaluated on the same client env
with the same episode seeds, so per-client comparisons are paired (differences are due to the policy, not
to luck of the draw).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


def evaluate_policy(
    env: gym.Env,
    policy: Callable[[np.ndarray], Any],
    seeds: Sequence[int],
    kpis: Sequence[str] = (),
    kpi_weight: str | None = None,
) -> dict[str, float]:
    """Run one episode per seed; return the mean episode return and the means of the ``kpis`` info keys.

    KPIs are averaged over steps, each step weighted by ``info[kpi_weight]`` when given — for envs whose
    steps cover different amounts of traffic (e.g. the requests served between two caching decisions), so
    a ratio like the hit ratio is per request, not per decision.
    """
    returns = np.empty(len(seeds), dtype=np.float64)
    kpi_sum = dict.fromkeys(kpis, 0.0)
    steps = 0
    total_weight = 0.0
    for i, s in enumerate(seeds):
        obs, _ = env.reset(seed=int(s))
        total = 0.0
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total += float(reward)
            steps += 1
            w = float(info[kpi_weight]) if kpi_weight else 1.0
            total_weight += w
            for k in kpis:
                kpi_sum[k] += w * float(info[k])
            done = terminated or truncated
        returns[i] = total
    out = {"return": float(returns.mean()), "return_std": float(returns.std())}
    for k in kpis:
        out[k] = kpi_sum[k] / total_weight if total_weight > 0 else 0.0
    out["episode_length"] = steps / max(len(seeds), 1)
    return out
