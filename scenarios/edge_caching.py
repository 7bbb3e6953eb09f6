"""Federated dueling DQN for cooperative edge caching, in the spirit of Zhang et al. (ICC Workshops 2021).

Reference: M. Zhang, Y. Jiang, F.-C. Zheng, M. Bennis, X. You, "Cooperative edge caching via federated deep
reinforcement learning in Fog-RANs", IEEE ICC Workshops 2021 (a FADE-style scheme: X. Wang et al., "Federated
deep reinforcement learning for Internet of Things with decentralized cooperative edge caching", IEEE IoT-J
2020). There, every fog access point (base station, BS) trains a dueling DQN that decides which content to
cache from its own requests, a server averages the models (FedAvg), and neighbouring BSs serve each other's
misses. CLAIM: the federated DRL caching policy reaches a higher hit ratio and a lower content-request delay
than LRU, LFU and FIFO, approaches the centralised/oracle performance while keeping request data local, and
federating beats BSs learning independently.

What is reproduced: 6 heterogeneous BSs on ``frl/EdgeCaching-v0`` at heterogeneity 0.5 (per-BS Zipf exponent,
overlap of the local and global popularity rankings, i.e. non-IID popularity, drift rate, cache size and
number of cooperating neighbours differ; popularity drifts during every episode); FedAvg of a dueling double
DQN (``fedavg``) vs the same agent trained independently with the same samples per BS (``local``) vs every
heuristic of the env (``lru``, ``lfu``, ``fifo``, ``random``, ``popularity-top-c``) and the clairvoyant
``belady`` reference (Belady's MIN restricted to the env's actions). KPIs per BS: local hit ratio, neighbour
hit ratio, mean request delay (ms). ``summary.json`` also holds ``belady_hit_bound``: per BS, the mean over
the final evaluation episodes (the same episode seeds every method is scored on) of the hit ratio of
unrestricted Belady MIN with bypass, an upper bound on the hit KPI of any policy.

Scaled down: the paper's centralised DRL baseline is replaced by the clairvoyant references (``belady``,
the bound); the agent chooses among the env's 10 LRU/LFU/FIFO/random eviction candidates or not caching,
not among all cached contents; training is 50 k decisions per BS (about 17 episodes of 5000 requests),
minutes on 2 cores. ``--quick`` is a smoke-sized run (seconds).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np

from envs.registry import env_entry
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback, client_setup, run_experiment

NAME = "edge-caching"
SUMMARY = ("FedAvg dueling DQN vs independent DQN vs LRU/LFU/FIFO/Belady for cooperative edge caching "
           "(Zhang et al. 2021)")

# Dueling double DQN (dueling head as in the paper) with 3-step returns. A decision's reward is the delay
# saved over the requests until the next miss. γ from short single-BS trials (45 k decisions, one seed, so
# only indicative): γ = 0.99 and 0.95 were unstable (delay above LRU's), γ = 0.9 / 0.8 beat LRU on hits and
# γ = 0.8 also on delay; a short horizon keeps the bootstrapped targets well conditioned at this budget.
_AGENT = {"dueling": True, "double_q": True, "gamma": 0.8, "lr": 5e-4, "hidden_sizes": (128, 128),
          "n_step": 3, "learning_starts": 1000, "target_update_interval": 1000, "exploration_steps": 15_000,
          "exploration_final_eps": 0.02}

FULL = Experiment(
    scenario=NAME, env_id="frl/EdgeCaching-v0", n_clients=6, heterogeneity=0.5,
    rounds=25, steps_per_round=2000, eval_every=5, eval_episodes=1, final_eval_episodes=5,
    agent="dqn", agent_config=_AGENT, strategies=("fedavg", "local"),
)
QUICK = replace(FULL, n_clients=3, rounds=3, steps_per_round=400, eval_every=3, eval_episodes=1,
                final_eval_episodes=1, agent_config={**_AGENT, "learning_starts": 200, "exploration_steps": 800},
                env_overrides={"episode_requests": 2000, "warmup_requests": 3000})


def final_eval_setup(exp: Experiment) -> tuple[list[Any], list[list[int]]]:
    """The client configs and final-evaluation episode seeds every method is scored on."""
    setup = client_setup(exp)
    return setup.configs, setup.final_seeds


def belady_hit_bounds(exp: Experiment) -> list[float]:
    """Per client, the mean Belady MIN hit bound over its final evaluation episodes (right after each reset)."""
    entry = env_entry(exp.env_id)
    configs, final = final_eval_setup(exp)
    out = []
    for cfg, ep_seeds in zip(configs, final, strict=True):
        env = gym.make(entry.env_id, config=cfg)
        vals = []
        for s in ep_seeds:
            env.reset(seed=s)
            vals.append(env.unwrapped.belady_hit_bound())
        env.close()
        out.append(float(np.mean(vals)))
    return out


def progress_total(exp: Experiment) -> int:
    return exp.rounds * len(exp.strategies)


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """The generic comparison, plus the per-BS Belady hit bound on the same final evaluation episodes and
    each method's share of it."""
    res = run_experiment(exp, on_progress)
    t0 = time.perf_counter()
    bounds = belady_hit_bounds(exp)
    mean_bound = float(np.mean(bounds))
    share = {name: float(m["hit"]) / mean_bound if mean_bound > 0 else None for name, m in res.methods.items()}
    res.extra["belady_hit_bound"] = {"per_client": bounds, "mean": mean_bound,
                                     "hit_share_of_bound": share}
    res.wall_time_s += time.perf_counter() - t0
    return res
