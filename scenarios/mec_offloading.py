"""Federated double DQN for MEC task offloading, in the spirit of In-Edge AI.

Reference: X. Wang, Y. Han, C. Wang, Q. Zhao, X. Chen, M. Chen, "In-Edge AI: Intelligentizing Mobile Edge
Computing, Caching and Communication by Federated Learning", IEEE Network 33(5), 2019. There, each edge
node trains a double DQN offloading policy on its own users and FedAvg merges them; the paper reports that
the federated agent approaches centralized DDQN and beats local-only and heuristic offloading.

What is reproduced: 8 heterogeneous edge cells (heterogeneity 0.5 on ``frl/MecOffloading-v0``: device CPU,
arrival rate, task sizes, distances, edge speeds and background load differ per cell); FedAvg-DQN (double
DQN, FedAvg every round) vs the same DQN trained independently with the same samples per client vs every
heuristic of the env (all-local, offload-nearest, least-loaded, random, greedy). Metrics per client: mean
normalized cost, delay, energy, drop rate. Scale: the default is the real experiment (minutes on 2 cores);
``--quick`` is a smoke-sized run (seconds).
"""

from __future__ import annotations

from dataclasses import replace

from scenarios.experiment import Experiment

NAME = "mec-offloading"
SUMMARY = "FedAvg double DQN vs independent DQN vs heuristics for MEC task offloading (Wang et al. 2019)"

# Double DQN. γ = 0.9: an offloading decision's consequences (queues it builds) fade within a few seconds
# of tasks, and a short horizon keeps the Q-targets well conditioned; 128×128 MLP as in In-Edge AI's DDQN.
_AGENT = {"double_q": True, "gamma": 0.9, "lr": 1e-3, "hidden_sizes": (128, 128), "exploration_steps": 10_000}

FULL = Experiment(
    scenario=NAME, env_id="frl/MecOffloading-v0", n_clients=8, heterogeneity=0.5,
    rounds=30, steps_per_round=1000, eval_every=5, eval_episodes=2, final_eval_episodes=10,
    agent="dqn", agent_config=_AGENT, strategies=("fedavg", "local"),
)
QUICK = replace(FULL, n_clients=4, rounds=4, steps_per_round=500, eval_every=2, eval_episodes=1,
                final_eval_episodes=3, agent_config={**_AGENT, "learning_starts": 200})
