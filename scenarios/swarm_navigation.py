"""FLDDPG: a DDPG swarm that averages models under a communication budget, vs shared experience and independence.

Reference: S. Na, T. Roucek, J. Ulrich, J. Pikman, T. Krajnik, B. Lennox, F. Arvin, "Federated Reinforcement
Learning for Collective Navigation of Robotic Swarms", IEEE Trans. Cognitive and Developmental Systems 15(4),
2122-2131, 2023 (arXiv:2202.01141). Every robot of a swarm trains its own DDPG controller (Lillicrap et al.
2016) from its own experience and a server periodically averages the robots' networks (FedAvg, McMahan et al.
2017) - FLDDPG; it is compared with shared-experience DDPG (SEDDPG: the robots send their transitions to a
server that trains one network for all of them) and independent DDPG (IDDPG: no communication), under a
limited communication bandwidth. CLAIM (abstract): "through the comparison with baseline strategies under a
limited communication bandwidth scenario, it is shown that the FLDDPG method resulted in higher robustness
and generalisation ability ..., while the baseline strategies suffer from the limitation of communication
bandwidth". Checked here on the KPIs of collective navigation: the success rate (goal reached) and the
collision rate (robot-robot or wall) per robot episode, and the bytes each method moves.

What is reproduced, on ``frl/RobotNavigation-v0``'s swarm form (``parallel_env``: ``N_ROBOTS`` TurtleBot3
Burgers with LDS-01 lidars share one walled arena, each with its own goal, each seeing the others as moving
discs; a robot that collides or arrives leaves the arena):

* **A client is one robot's learner.** The framework gives a learner its own env, so robot ``i`` trains in
  its own copy of the swarm arena (its own world: arena size, sensor and actuator noise and speed limits
  differ at ``heterogeneity`` 0.5) in which its current controller drives all ``N_ROBOTS`` robots (it meets
  copies of itself, as the robots of an FLDDPG swarm all run nearly the same averaged controller). Steps
  are robot-steps (``N_ROBOTS`` per arena step), the same count for every method.
* **FLDDPG** = ``fedavg`` of the DDPG actor and critic every ``steps_per_round`` robot-steps: ``rounds``
  averaging rounds are the communication budget (bytes up and down as counted by the federation layer).
* **IDDPG** = ``local``: the same learners, nothing communicated.
* **SEDDPG** (``run`` below): ONE DDPG learner fed by every client's arena (one replay buffer, the clients'
  robots all acting with its network), the same robot-steps and the same total gradient steps as the
  clients' learners together. Its upload is the experience: one transition is ``2 obs + action + reward +
  done`` float32 values; its download is the actor, broadcast to every robot once per round (the robots
  act with the live network here, which favours SEDDPG). ``seddpg`` is held to FLDDPG's byte budget: in
  each round every live robot-step's transition reaches the server with the probability that spends, in
  expectation, what is left of the budget after the broadcasts over the live robot-steps still to come
  (estimated from the fraction of robot slots live so far; robots that arrived or collided send nothing);
  the others are lost, the limited bandwidth of the paper. ``seddpg-unlimited``
  uploads every transition (the bandwidth the budget denies it, for reference).
* The swarm heuristics of the env for reference: ``go-to-goal``, ``potential-field`` (Khatib 1986) and
  ``random`` on every robot (``bug2`` needs one robot's odometry and has no swarm form in the env).

Scaled down: 4 robots (the env's default swarm) in a 4 m open arena (``map_family="open"``: the obstacles
are the other robots and the walls), 12 k robot-steps per robot, 6 averaging rounds; small DDPG networks
(64, 64) with actor/critic learning rate 1e-3 and an update every 2 robot-steps (at the DDPG default
actor rate 1e-4 and the default cluttered map no learner left the stand-still policy in 40 k robot-steps in
a trial). The aggregation period, the bandwidth figure, the reward constants and the robot model of the
paper could not be checked (only the abstract was available): the period and budget here are ours, the
reward is the env's (Tai et al. 2017 shape). The paper's transfer to another environment and to real
robots is not run. ``--quick`` is a smoke run.

``claim`` in ``summary.json`` is a point comparison on one seed: at full size each method is scored on
4 clients x 6 episodes x 4 robots = 96 robot-episodes, so one episode moves a rate by about 0.01 and
differences of a few hundredths are within the noise of the draw.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from agents import agent_class
from agents.parallel_adapter import AGENT_MASK, ParallelToVector
from envs.registry import env_entry
from federation.evaluation import evaluate_parallel
from federation.types import weights_nbytes
from scenarios.experiment import (
    Experiment,
    ExperimentResult,
    ProgressCallback,
    client_setup,
    run_experiment,
    summarize_clients,
)

NAME = "swarm-navigation"
SUMMARY = ("FLDDPG (FedAvg of per-robot DDPG under a communication budget) vs shared-experience and "
           "independent DDPG in a robot swarm; success and collision rates (Na et al., IEEE TCDS 2023)")

N_ROBOTS = 4  # robots per arena: the swarm env's default
PAPER_NAMES = {"fedavg": "FLDDPG", "local": "IDDPG", "seddpg": "SEDDPG (FLDDPG's byte budget)",
               "seddpg-unlimited": "SEDDPG (unlimited bandwidth)"}
SHARED_EXPERIENCE = ("seddpg", "seddpg-unlimited")
TRANSITION_FLOATS_EXTRA = 4  # besides 2 observations: reward, done and the 2-D action

_AGENT = {"hidden_sizes": (64, 64), "batch_size": 128, "actor_lr": 1e-3, "critic_lr": 1e-3, "gamma": 0.99,
          "learning_starts": 1000, "train_freq": 2, "exploration_noise": 0.1}

FULL = Experiment(
    scenario=NAME, env_id="frl/RobotNavigation-v0", n_clients=4, heterogeneity=0.5, rounds=6,
    steps_per_round=2000, eval_every=2, eval_episodes=2, final_eval_episodes=6, agent="ddpg",
    agent_config=_AGENT, strategies=("fedavg", "local"), env_form="parallel",
    env_overrides={"map_family": "open"},
)
QUICK = replace(FULL, n_clients=2, rounds=2, steps_per_round=400, eval_every=2, eval_episodes=1,
                final_eval_episodes=2, agent_config={**_AGENT, "learning_starts": 200},
                env_overrides={"map_family": "open", "max_steps": 150})


class PooledArenas(VectorEnv):
    """Several swarm arenas as one vector env of all their robots (SEDDPG's server sees every robot).

    Each arena is a :class:`agents.parallel_adapter.ParallelToVector` (SAME_STEP autoreset, dead robots are
    padding); rows are arena-major. ``upload_prob`` < 1 models the bandwidth: each live robot's next
    transition reaches the server with that probability, the others are masked as padding (``agent_mask``)
    and so never stored. ``stepped`` / ``offered`` / ``uploaded`` count robot slots stepped, live robot-steps
    and delivered transitions.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, envs: Sequence[Any], upload_prob: float, rng: np.random.Generator) -> None:
        self.parts = [ParallelToVector(e) for e in envs]
        self._cuts = np.cumsum([p.num_envs for p in self.parts])[:-1]
        self.num_envs = int(sum(p.num_envs for p in self.parts))
        self.single_observation_space = self.parts[0].single_observation_space
        self.single_action_space = self.parts[0].single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.upload_prob = float(upload_prob)
        self._rng = rng
        self._sent = np.zeros(self.num_envs, dtype=bool)
        self.offered = 0
        self.uploaded = 0
        self.stepped = 0

    def _mask(self, alive: np.ndarray) -> np.ndarray:
        sent = alive & (self._rng.random(self.num_envs) < self.upload_prob) if self.upload_prob < 1.0 else alive
        self._alive, self._sent = alive, sent
        return sent

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = ([int(s) for s in np.random.SeedSequence(seed).generate_state(len(self.parts))]
                 if seed is not None else [None] * len(self.parts))
        outs = [p.reset(seed=s, options=options) for p, s in zip(self.parts, seeds, strict=True)]
        alive = np.concatenate([info[AGENT_MASK] for _, info in outs])
        return np.concatenate([o for o, _ in outs]), {AGENT_MASK: self._mask(alive)}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.stepped += self.num_envs
        self.offered += int(self._alive.sum())
        self.uploaded += int(self._sent.sum())
        outs = [p.step(a) for p, a in zip(self.parts, np.split(np.asarray(actions), self._cuts), strict=True)]
        obs = np.concatenate([o[0] for o in outs])
        final = np.zeros_like(obs)
        ended = np.zeros(self.num_envs, dtype=bool)
        start = 0
        for o in outs:
            n = len(o[0])
            if "_final_obs" in o[4]:
                final[start:start + n] = o[4]["final_obs"]
                ended[start:start + n] = o[4]["_final_obs"]
            start += n
        infos: dict[str, Any] = {AGENT_MASK: self._mask(np.concatenate([o[4][AGENT_MASK] for o in outs]))}
        if ended.any():
            infos["final_obs"], infos["_final_obs"] = final, ended
        return (obs, np.concatenate([o[1] for o in outs]), np.concatenate([o[2] for o in outs]),
                np.concatenate([o[3] for o in outs]), infos)

    def close_extras(self, **kwargs: Any) -> None:
        for p in self.parts:
            p.close()


def transition_nbytes(obs_dim: int, act_dim: int) -> int:
    """Bytes of one uploaded transition ``(s, a, r, s', done)`` as float32."""
    return 4 * (2 * obs_dim + act_dim + 2)


def rates(ev: dict[str, float]) -> dict[str, float]:
    """Per-episode success and collision rates from per-step means (see the env's KPI notes)."""
    end = ev.get("episode_end", 0.0)
    return {"success_rate": ev["success"] / end if end > 0 else 0.0,
            "collision_rate": ev["collision"] / end if end > 0 else 0.0}


def _shared_experience(exp: Experiment, name: str, budget_bytes: float | None,
                       on_progress: ProgressCallback | None) -> tuple[dict[str, Any], list[tuple]]:
    """SEDDPG: one learner on all clients' arenas (same robot-steps and total gradient steps as the clients'
    learners); ``budget_bytes`` None uploads every transition."""
    entry = env_entry(exp.env_id)
    setup = client_setup(exp)
    factory = entry.parallel_factory()
    envs = [factory(config=cfg, n_robots=N_ROBOTS) for cfg in setup.configs]
    eval_envs = [factory(config=cfg, n_robots=N_ROBOTS) for cfg in setup.configs]
    obs_space = envs[0].observation_space(envs[0].possible_agents[0])
    act_space = envs[0].action_space(envs[0].possible_agents[0])
    agent = agent_class(exp.agent)(obs_space, act_space, seed=setup.seeds[0][1], **dict(exp.agent_config))
    C, R, S = exp.n_clients, exp.rounds, exp.steps_per_round
    obs_dim, act_dim = int(obs_space.shape[0]), int(act_space.shape[0])
    tbytes = transition_nbytes(obs_dim, act_dim)
    actor = {k: v for k, v in agent.get_shared_weights().items() if k.startswith("actor.")}
    down = C * R * weights_nbytes(actor)
    total = C * R * S
    up_budget = None if budget_bytes is None else max(budget_bytes - down, 0.0)
    rng = np.random.default_rng(setup.federation_seed.spawn(1)[0])
    pooled = PooledArenas(envs, 1.0, rng)
    probs: list[float] = []
    pooled.reset(seed=setup.seeds[0][0])
    rows: list[tuple] = []

    def policy(o: np.ndarray) -> np.ndarray:
        return agent.act(o, explore=False)

    t0 = time.perf_counter()
    for rnd in range(1, R + 1):
        if up_budget is not None:  # spend what is left of the budget over the live robot-steps still to come
            live = pooled.offered / pooled.stepped if pooled.stepped else 1.0
            ahead = max(total - pooled.stepped, 1) * max(live, 1e-3) * tbytes
            pooled.upload_prob = float(np.clip((up_budget - pooled.uploaded * tbytes) / ahead, 0.0, 1.0))
        probs.append(pooled.upload_prob)
        agent.learn(pooled, C * S)
        if rnd % exp.eval_every == 0 or rnd == R:
            for cid, env in enumerate(eval_envs):
                ev = evaluate_parallel(env, policy, setup.eval_seeds, entry.kpis)
                rows.extend((name, rnd, cid, f"global/{k}", v) for k, v in ev.items())
        if on_progress:
            on_progress(name, rnd, R)
    train_time = time.perf_counter() - t0
    per_client = []
    for cid, env in enumerate(eval_envs):
        ev = evaluate_parallel(env, policy, setup.final_seeds[cid], entry.kpis)
        per_client.append(ev)
        rows.extend((name, R + 1, cid, f"final/global/{k}", v) for k, v in ev.items())
    up = pooled.uploaded * tbytes
    extra = {"evaluated_model": "global", "samples_per_client": R * S, "train_time_s": train_time,
             "upload_probability": float(np.mean(probs)), "upload_probability_per_round": probs,
             "transitions_offered": pooled.offered,
             "transitions_uploaded": pooled.uploaded, "bytes_up": float(up), "bytes_down": float(down),
             "bytes_communicated": float(up + down), "budget_bytes": budget_bytes}
    return summarize_clients(per_client, entry, kind="federated", extra=extra), rows


def progress_total(exp: Experiment) -> int:
    return exp.rounds * (len(exp.strategies) + len(SHARED_EXPERIENCE))


def _fedavg_bytes(exp: Experiment) -> float:
    """FLDDPG's bytes: every round each client downloads and uploads the shared weights (actor + critic)."""
    entry = env_entry(exp.env_id)
    env = entry.parallel_factory()(config=client_setup(exp).configs[0], n_robots=N_ROBOTS)
    a = env.possible_agents[0]
    agent = agent_class(exp.agent)(env.observation_space(a), env.action_space(a), seed=0, **dict(exp.agent_config))
    return float(2 * exp.n_clients * exp.rounds * weights_nbytes(agent.get_shared_weights()))


def run(exp: Experiment, on_progress: ProgressCallback | None = None) -> ExperimentResult:
    """FLDDPG (fedavg) and IDDPG (local) through the federation, SEDDPG (budgeted and unlimited) with one
    pooled learner, the heuristics; then success/collision rates per client and the bytes moved."""
    if exp.env_form != "parallel":
        raise ValueError(f"env_form={exp.env_form!r}; allowed for {NAME}: 'parallel' (the swarm form)")
    res = run_experiment(exp, on_progress)
    t0 = time.perf_counter()
    budget = (float(res.methods["fedavg"]["bytes_communicated"]) if "fedavg" in res.methods
              else _fedavg_bytes(exp))
    for name in SHARED_EXPERIENCE:
        summary, rows = _shared_experience(exp, name, budget if name == "seddpg" else None, on_progress)
        res.methods[name] = summary
        res.rows.extend(rows)
    res.wall_time_s += time.perf_counter() - t0
    table = kpi_table(exp, res)
    res.extra["swarm_kpis"] = table
    res.extra["paper_names"] = {m: PAPER_NAMES[m] for m in res.methods if m in PAPER_NAMES}
    res.extra["fedavg_byte_budget"] = budget
    res.extra["claim"] = claim_check(table)
    res.extra["swarm_kpis_markdown"] = kpi_markdown(table, res.extra["claim"])
    return res


def kpi_table(exp: Experiment, res: ExperimentResult) -> dict[str, dict[str, Any]]:
    """Per method: per-client and mean success / collision rates of the final evaluation, and MB moved."""
    final = exp.rounds + 1
    out: dict[str, dict[str, Any]] = {}
    for name, m in res.methods.items():
        prefix = "final/" if m["kind"] == "heuristic" else f"final/{m.get('evaluated_model', 'own')}/"
        per: dict[int, dict[str, float]] = {}
        for method, rnd, cid, metric, value in res.rows:
            if method == name and rnd == final and metric.startswith(prefix):
                per.setdefault(cid, {})[metric[len(prefix):]] = value
        r = [rates(per[c]) for c in sorted(per)]
        out[name] = {
            "per_client_success_rate": [x["success_rate"] for x in r],
            "per_client_collision_rate": [x["collision_rate"] for x in r],
            "success_rate": float(np.mean([x["success_rate"] for x in r])),
            "collision_rate": float(np.mean([x["collision_rate"] for x in r])),
            "worst_client_success_rate": float(min(x["success_rate"] for x in r)),
            "bytes_communicated": float(m.get("bytes_communicated", 0.0)),
        }
        m["success_rate"], m["collision_rate"] = out[name]["success_rate"], out[name]["collision_rate"]
    return out


def claim_check(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """FLDDPG vs each baseline: success-rate and collision-rate differences, and the verdict: FLDDPG reaches
    some goals, and is at least as successful and no more colliding than SEDDPG at the same byte budget and
    than IDDPG."""
    if "fedavg" not in table:
        return {"held": None, "reason": "fedavg not run"}
    fl = table["fedavg"]
    out: dict[str, Any] = {}
    held = fl["success_rate"] > 0.0
    for base in ("seddpg", "local", "seddpg-unlimited"):
        if base in table:
            ds = fl["success_rate"] - table[base]["success_rate"]
            dc = fl["collision_rate"] - table[base]["collision_rate"]
            out[f"success_minus_{base}"], out[f"collision_minus_{base}"] = ds, dc
            if base != "seddpg-unlimited":
                held = held and ds >= 0.0 and dc <= 0.0
    if "seddpg-unlimited" in table and table["seddpg-unlimited"]["bytes_communicated"] > 0:
        out["bytes_ratio_fedavg_over_unlimited_seddpg"] = (fl["bytes_communicated"]
                                                           / table["seddpg-unlimited"]["bytes_communicated"])
    out["held"] = held
    return out


def kpi_markdown(table: dict[str, dict[str, Any]], claim: dict[str, Any]) -> str:
    n = max(len(v["per_client_success_rate"]) for v in table.values())
    lines = ["## Swarm KPIs (final evaluation): success rate / collision rate per robot episode", "",
             "| method | paper | " + " | ".join(f"client {c}" for c in range(n)) + " | mean | MB moved |",
             "|" + "---|" * (n + 4)]
    for name, v in sorted(table.items(), key=lambda kv: -kv[1]["success_rate"]):
        cells = [f"{s:.2f} / {c:.2f}" for s, c in zip(v["per_client_success_rate"], v["per_client_collision_rate"],
                                                       strict=True)]
        lines.append(f"| {name} | {PAPER_NAMES.get(name, 'heuristic')} | " + " | ".join(cells) +
                     f" | {v['success_rate']:.3f} / {v['collision_rate']:.3f} | {v['bytes_communicated'] / 1e6:.2f} |")
    verdict = {True: "held", False: "did not hold", None: "not checked"}[claim.get("held")]
    lines += ["", f"Claim (FLDDPG reaches goals and is at least as successful and no more colliding than SEDDPG "
                  f"at its byte budget and than IDDPG): **{verdict}**."]
    return "\n".join(lines)
