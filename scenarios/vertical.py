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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from envs.cv2x import PARALLEL_BASELINES, parallel_env
from scenarios.experiment import ExperimentResult, ProgressCallback, ScenarioError, check_common, cli

NAME = "vertical"
SUMMARY = "Vertical FRL (FedRL, Zhuo et al. 2019) vs independent learners on the C-V2X sidelink"
METHODS = ("vertical-fedrl", "independent")


@dataclass(frozen=True)
class VerticalExperiment:
    """One shared env, one learner per method: there are no clients to count, no heterogeneity across them
    and nothing uploaded to compress, so those knobs do not exist here (``frl run vertical`` refuses them)."""

    scenario: str = NAME
    env_id: str = "frl/CV2X-v0"
    rounds: int = field(default=10, metadata=cli("training rounds (each followed by a team evaluation)"))
    steps_per_round: int = field(default=1500, metadata=cli("env steps per round"))
    eval_every: int = field(default=2, metadata=cli("evaluate every N rounds"))
    eval_episodes: int = field(default=3, metadata=cli("episodes in round evaluations"))
    final_eval_episodes: int = field(default=10, metadata=cli("episodes in the final evaluation"))
    methods: tuple[str, ...] = field(default=METHODS, metadata=cli(
        f"comma-separated methods; allowed: {', '.join(METHODS)}"))
    learner_config: Mapping[str, Any] = field(default_factory=lambda: {"noise_std": 0.1})
    seed: int = field(default=0, metadata=cli("the one seed every random choice derives from"))

    def __post_init__(self) -> None:
        check_common(self)
        if not self.methods:
            raise ScenarioError(f"no method given; allowed: {', '.join(METHODS)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ScenarioError(f"unknown method {bad[0]!r} for the vertical scenario; allowed: {', '.join(METHODS)}")
        from federation.vertical import VerticalConfig

        known = {f.name for f in fields(VerticalConfig)}
        unknown = sorted(set(self.learner_config) - known)
        if unknown:
            raise ScenarioError(f"unknown vertical FRL option {unknown[0]!r}; allowed: {', '.join(sorted(known))}")

    def describe(self) -> str:
        return (f"one shared C-V2X road, {self.rounds} rounds × {self.steps_per_round} steps, "
                f"methods {', '.join(self.methods)}, seed {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["learner_config"] = dict(self.learner_config)
        return d


FULL = VerticalExperiment()
QUICK = replace(FULL, rounds=2, steps_per_round=300, eval_every=1, eval_episodes=1, final_eval_episodes=2,
                learner_config={"learning_starts": 100, "exploration_steps": 300})


def progress_total(exp: VerticalExperiment) -> int:
    return exp.rounds * len(exp.methods)


def run(exp: VerticalExperiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    from federation.vertical import VerticalFRL, evaluate_team

    start = time.perf_counter()
    learner_seq, eval_seq, final_seq, heuristic_seq = np.random.SeedSequence(exp.seed).spawn(4)
    eval_seeds = [int(s) for s in eval_seq.generate_state(exp.eval_episodes)]
    final_seeds = [int(s) for s in final_seq.generate_state(exp.final_eval_episodes)]
    learner_seed = int(learner_seq.generate_state(1)[0])
    rows: list[tuple[str, int, int, str, float]] = []
    methods: dict[str, dict[str, Any]] = {}
    for method in exp.methods:
        env, eval_env = parallel_env(), parallel_env()
        learner = VerticalFRL(env, seed=learner_seed, share=method == "vertical-fedrl", **dict(exp.learner_config))
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
    heuristic_seed = int(heuristic_seq.generate_state(1)[0])
    for name, factory in PARALLEL_BASELINES.items():
        if name == "exhaustive":
            continue
        env = parallel_env()
        ret = evaluate_team(env, factory(env, heuristic_seed), final_seeds)["return"]
        methods[name] = {"kind": "heuristic", "mean_return": ret, "worst_client_return": ret,
                         "per_client_return": [ret]}
    return ExperimentResult(experiment=exp, rows=rows, methods=methods, client_configs=[],
                            wall_time_s=time.perf_counter() - start)
