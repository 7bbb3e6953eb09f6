"""Vertical FRL on C-V2X: parties that see different parts of one road share messages, not data.

Reference: H. H. Zhuo, W. Feng, Y. Lin, Q. Xu, Q. Yang, "Federated Deep Reinforcement Learning", 2019
(FedRL). There, agents observing different features of one environment keep local networks and send only
their (Gaussian-noised) outputs to a Q-network agent that learns the joint Q-function; FedRL is compared
with agents learning alone. Here the shared environment is the C-V2X sidelink of Liang, Ye & Li (2019)
(``envs.cv2x.parallel_env``): each V2V link is a party that sees only its own channels and interference.

What is reproduced: ``vertical-fedrl`` (party encoders → messages → joint VDN Q-network → gradients back)
vs ``independent`` (the same networks with no messages: independent Q-learners), same hyperparameters,
same env steps, greedy team return (mean link reward summed over the 100 ms episode) plus the env's
parallel heuristics for reference. Scale: default a few minutes on 2 cores; ``--quick`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from envs.cv2x import PARALLEL_BASELINES, parallel_env
from scenarios.experiment import Experiment, ExperimentResult, ProgressCallback

NAME = "vertical"
SUMMARY = "Vertical FRL (FedRL, Zhuo et al. 2019) vs independent learners on the C-V2X sidelink"


def experiment(quick: bool = False) -> Experiment:
    if quick:
        return Experiment(scenario=NAME, env_id="frl/CV2X-v0", n_clients=1, heterogeneity=0.0, rounds=2,
                          steps_per_round=300, eval_every=1, eval_episodes=1, final_eval_episodes=2,
                          agent="vertical-fedrl", strategies=("vertical-fedrl", "independent"),
                          agent_config={"learning_starts": 100, "exploration_steps": 300})
    return Experiment(scenario=NAME, env_id="frl/CV2X-v0", n_clients=1, heterogeneity=0.0, rounds=10,
                      steps_per_round=1500, eval_every=2, eval_episodes=3, final_eval_episodes=10,
                      agent="vertical-fedrl", strategies=("vertical-fedrl", "independent"),
                      agent_config={"noise_std": 0.1})


def validate(exp: Experiment) -> None:
    from scenarios.experiment import ScenarioError

    bad = [s for s in exp.strategies if s not in ("vertical-fedrl", "independent")]
    if bad:
        raise ScenarioError(f"unknown method {bad[0]!r} for the vertical scenario; allowed: vertical-fedrl, "
                            "independent")


def _team_seeds(base: int, k: int) -> list[int]:
    return [base + 101 * i for i in range(k)]


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    from federation.vertical import VerticalFRL, evaluate_team

    validate(exp)
    start = time.perf_counter()
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    eval_seeds, final_seeds = _team_seeds(777, exp.eval_episodes), _team_seeds(9001, exp.final_eval_episodes)
    for method in exp.strategies:
        env, eval_env = parallel_env(), parallel_env()
        learner = VerticalFRL(env, seed=exp.seed, share=method == "vertical-fedrl", **dict(exp.agent_config))
        t0 = time.perf_counter()
        for rnd in range(1, exp.rounds + 1):
            stats = learner.learn(env, exp.steps_per_round)
            rows.extend((method, rnd, -1, k, v) for k, v in stats.items())
            if rnd % exp.eval_every == 0 or rnd == exp.rounds:
                rows.append((method, rnd, 0, "global/return", evaluate_team(eval_env, learner, eval_seeds)["return"]))
            if on_progress:
                on_progress(method, rnd, exp.rounds)
        final = evaluate_team(eval_env, learner, final_seeds)
        rows.append((method, exp.rounds + 1, 0, "final/return", final["return"]))
        methods[method] = {"kind": "federated" if learner.share else "local", "mean_return": final["return"],
                           "worst_client_return": final["return"], "per_client_return": [final["return"]],
                           "return_std": final["return_std"], "train_time_s": time.perf_counter() - t0,
                           "bytes_communicated": learner.bytes_messages + learner.bytes_gradients,
                           "samples": exp.rounds * exp.steps_per_round}
    for name, factory in PARALLEL_BASELINES.items():
        if name == "exhaustive":
            continue
        env = parallel_env()
        ret = evaluate_team(env, factory(env, exp.seed), final_seeds)["return"]
        methods[name] = {"kind": "heuristic", "mean_return": ret, "worst_client_return": ret,
                         "per_client_return": [ret]}
    return ExperimentResult(experiment=exp, rows=rows, methods=methods, client_configs=[],
                            wall_time_s=time.perf_counter() - start)
