"""Agent zoo benchmark: learning targets per agent, and training speed beside Stable-Baselines3.

Usage: ``python bench/agents.py [--quick] [--only dqn,ppo,...] [--seeds 0[,1,2]] [--no-speed | --speed-only]
[--speed-repeats 3]``

Learning: each agent trains on its benchmark env with the preset of its module's ``PRESETS`` (DQN falls back
to ``DQN_PRESETS`` below if ``agents.dqn`` has none). Preset keys that are not hyperparameters are popped
first: ``n_envs`` (1: a plain env, else ``gym.make_vec(env_id, n_envs, vectorization_mode="sync")``),
``total_steps`` (the module's own budget; the budget here is the target's) and ``env_kwargs`` (passed to
``gymnasium.make``). Every ``eval_every`` steps the greedy policy is evaluated on 20 episodes with fixed
seeds; training stops at the first evaluation ≥ target or at the step budget. Targets:

  PPO ≥ 475 CartPole-v1 in 100k · DQN ≥ 400 CartPole-v1 in 100k · A2C, REINFORCE ≥ 200 CartPole-v1 in 200k
  TD3, SAC ≥ −250 Pendulum-v1 in 20k · DDPG ≥ −400 Pendulum-v1 in 20k
  Q-learning, SARSA solve FrozenLake-v1 (non-slippery: 1.0) and CliffWalking-v1 (Q-learning −13, the
  optimal path; SARSA ≥ −17, the safe path)

Speed: env steps/s of training for DQN and PPO on CartPole-v1 and TD3 on Pendulum-v1 beside SB3's same
algorithm with the same hyperparameters (SB3 is optional: ``pip install stable-baselines3``), one torch
thread each, the two libraries' runs alternated so they see the same machine load, best of
``--speed-repeats``; the ratio ours/SB3 is compared with the 1.5× floor. Both sides are warmed up past
``learning_starts`` first, so every timed step includes its share of gradient updates. DQN runs without
double Q-learning on our side (SB3's DQN has none).

``--quick`` shrinks the deep-RL budgets (a smoke run of the whole pipeline; targets are then not expected)
and the speed runs; the tabular rows keep their full (small) budgets. Agents whose module is missing or not
importable yet are skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# This file is named agents.py: keep its own folder off sys.path so that ``import agents`` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import parse_only  # noqa: E402

torch.set_num_threads(1)

RUN_KEYS = ("n_envs", "total_steps", "env_kwargs")
EVAL_SEED = 10_000
SPEED_FLOOR = 1.5

#: DQN on CartPole-v1 if ``agents.dqn`` has no PRESETS: rl-zoo's tuned CartPole DQN (lr 2.3e-3, batch 64,
#: target sync every 10 steps, 128 gradient steps every 256 env steps, 256-unit nets, ε 1 → 0.04 over 16k).
DQN_PRESETS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(
        lr=2.3e-3,
        gamma=0.99,
        buffer_size=100_000,
        batch_size=64,
        learning_starts=1_000,
        train_freq=256,
        gradient_steps=128,
        target_update_interval=10,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.04,
        exploration_steps=16_000,
        hidden_sizes=(256, 256),
    ),
}


@dataclass(frozen=True)
class Row:
    agent: str  # CLI name
    module: str  # agents.<module>
    env_id: str
    target: float
    budget: int  # env steps
    eval_every: int
    quick_budget: int
    quick_eval_every: int


ROWS: tuple[Row, ...] = (
    Row("ppo", "ppo", "CartPole-v1", 475.0, 100_000, 10_000, 4_096, 2_048),
    Row("dqn", "dqn", "CartPole-v1", 400.0, 100_000, 10_000, 4_000, 2_000),
    Row("a2c", "a2c", "CartPole-v1", 200.0, 200_000, 10_000, 4_000, 2_000),
    Row("reinforce", "reinforce", "CartPole-v1", 200.0, 200_000, 10_000, 4_096, 2_048),
    Row("td3", "td3", "Pendulum-v1", -250.0, 20_000, 2_000, 2_000, 1_000),
    Row("sac", "sac", "Pendulum-v1", -250.0, 20_000, 2_000, 2_000, 1_000),
    Row("ddpg", "ddpg", "Pendulum-v1", -400.0, 20_000, 2_000, 2_000, 1_000),
    Row("q-learning", "tabular", "FrozenLake-v1", 1.0, 4_000, 250, 4_000, 250),
    Row("q-learning", "tabular", "CliffWalking-v1", -13.0, 6_000, 250, 6_000, 250),
    Row("sarsa", "tabular", "FrozenLake-v1", 1.0, 4_000, 250, 4_000, 250),
    Row("sarsa", "tabular", "CliffWalking-v1", -17.0, 6_000, 250, 6_000, 250),
)


# ----- helpers ---------------------------------------------------------------------------------------------
def load_agent(row: Row) -> tuple[type | None, dict[str, Any] | None, str]:
    """(agent class, preset, note): class None with a note when the agent is not available yet."""
    try:
        module = importlib.import_module(f"agents.{row.module}")  # importing registers the agent
        from agents import AGENTS
    except Exception as exc:  # a colleague's module mid-edit: skip, do not fail the whole bench
        return None, None, f"agents.{row.module} not importable ({type(exc).__name__}: {exc})"
    cls = AGENTS.get(row.agent)
    if cls is None:
        return None, None, f"agent {row.agent!r} not registered by agents.{row.module}"
    presets = getattr(module, "PRESETS", None) or (DQN_PRESETS if row.agent == "dqn" else {})
    if row.env_id not in presets:
        return None, None, f"agents.{row.module}.PRESETS has no {row.env_id!r}"
    return cls, dict(presets[row.env_id]), ""


def make_env(env_id: str, n_envs: int, env_kwargs: dict[str, Any]) -> Any:
    if n_envs == 1:
        return gym.make(env_id, **env_kwargs)
    return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync", **env_kwargs)


def evaluate(agent: Any, env: gym.Env, episodes: int) -> float:
    """Mean greedy return over ``episodes`` episodes with seeds EVAL_SEED, EVAL_SEED + 1, …"""
    returns = np.empty(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(agent.act(obs, explore=False))
            ret += float(r)
            done = term or trunc
        returns[i] = ret
    return float(returns.mean())


def run_row(row: Row, seed: int, quick: bool, episodes: int) -> dict[str, Any]:
    cls, preset, note = load_agent(row)
    out: dict[str, Any] = {"agent": row.agent, "env": row.env_id, "target": row.target, "seed": seed}
    if cls is None:
        return {**out, "skipped": note}
    n_envs = int(preset.pop("n_envs", 1))
    preset.pop("total_steps", None)
    env_kwargs = dict(preset.pop("env_kwargs", {}))
    budget, every = (row.quick_budget, row.quick_eval_every) if quick else (row.budget, row.eval_every)
    env = make_env(row.env_id, n_envs, env_kwargs)
    eval_env = gym.make(row.env_id, **env_kwargs)
    agent = cls(eval_env.observation_space, eval_env.action_space, seed=seed, **preset)
    start = time.perf_counter()
    train_time, score, reached = 0.0, float("nan"), False
    while agent.total_steps < budget:
        t = time.perf_counter()
        agent.learn(env, min(every, budget - agent.total_steps))
        train_time += time.perf_counter() - t
        score = evaluate(agent, eval_env, episodes)
        if score >= row.target:
            reached = True
            break
    return {**out, "reached": reached, "steps": int(agent.total_steps), "budget": budget, "final": score,
            "wall_s": time.perf_counter() - start, "train_steps_per_s": agent.total_steps / max(train_time, 1e-9)}


def print_learning_table(results: list[dict[str, Any]]) -> None:
    head = f"{'agent':<11} {'env':<16} {'seed':>4} {'target':>8} {'reached':>7} {'steps':>15} {'final':>8} " \
           f"{'wall s':>7} {'train st/s':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        if "skipped" in r:
            print(f"{r['agent']:<11} {r['env']:<16} {r['seed']:>4} {r['target']:>8g}  skipped: {r['skipped']}")
            continue
        steps = f"{r['steps']}/{r['budget']}"
        print(f"{r['agent']:<11} {r['env']:<16} {r['seed']:>4} {r['target']:>8g} "
              f"{'yes' if r['reached'] else 'no':>7} {steps:>15} {r['final']:>8.1f} {r['wall_s']:>7.1f} "
              f"{r['train_steps_per_s']:>10.0f}")


# ----- speed beside SB3 --------------------------------------------------------------------------------------
def _speed_dqn(steps: int) -> tuple[Any, Any, int]:
    from stable_baselines3 import DQN

    from agents.dqn import DQNAgent

    hp = dict(DQN_PRESETS["CartPole-v1"])
    dqn_mod = importlib.import_module("agents.dqn")
    hp.update(getattr(dqn_mod, "PRESETS", {}).get("CartPole-v1", {}))
    for k in RUN_KEYS:
        hp.pop(k, None)
    hp["double_q"] = False  # SB3's DQN is the Mnih et al. one
    env = gym.make("CartPole-v1")
    ours = DQNAgent(env.observation_space, env.action_space, seed=0, **hp)
    sb3 = DQN(
        "MlpPolicy", gym.make("CartPole-v1"), learning_rate=hp["lr"], buffer_size=hp["buffer_size"],
        learning_starts=hp["learning_starts"], batch_size=hp["batch_size"], tau=hp.get("tau", 1.0),
        gamma=hp["gamma"], train_freq=hp["train_freq"], gradient_steps=hp["gradient_steps"],
        target_update_interval=hp["target_update_interval"],
        exploration_fraction=min(1.0, hp["exploration_steps"] / (3 * steps + hp["learning_starts"])),
        exploration_initial_eps=hp["exploration_initial_eps"], exploration_final_eps=hp["exploration_final_eps"],
        max_grad_norm=hp.get("max_grad_norm", 10.0), policy_kwargs=dict(net_arch=list(hp["hidden_sizes"])),
        seed=0, device="cpu", verbose=0,
    )
    return (lambda n: ours.learn(env, n)), (lambda n: sb3.learn(n, reset_num_timesteps=False)), \
        hp["learning_starts"] + hp["train_freq"]


def _speed_ppo(steps: int) -> tuple[Any, Any, int]:
    from stable_baselines3 import PPO

    from agents.ppo import PRESETS, PPOAgent

    hp = dict(PRESETS["CartPole-v1"])
    for k in RUN_KEYS:
        hp.pop(k, None)
    hp["anneal_lr_steps"] = 0  # constant lr on both sides
    env = gym.make("CartPole-v1")
    ours = PPOAgent(env.observation_space, env.action_space, seed=0, **hp)
    sb3 = PPO(
        "MlpPolicy", gym.make("CartPole-v1"), n_steps=hp["n_steps"], batch_size=hp["batch_size"],
        n_epochs=hp["n_epochs"], learning_rate=hp["lr"], gamma=hp["gamma"], gae_lambda=hp["gae_lambda"],
        ent_coef=hp.get("ent_coef", 0.0), clip_range=hp.get("clip_range", 0.2),
        seed=0, device="cpu", verbose=0,
    )
    return (lambda n: ours.learn(env, n)), (lambda n: sb3.learn(n, reset_num_timesteps=False)), hp["n_steps"]


def _speed_td3(steps: int) -> tuple[Any, Any, int]:
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    from agents.td3 import PRESETS, TD3Agent

    hp = dict(PRESETS["Pendulum-v1"])
    for k in RUN_KEYS:
        hp.pop(k, None)
    env = gym.make("Pendulum-v1")
    ours = TD3Agent(env.observation_space, env.action_space, seed=0, **hp)
    n = env.action_space.shape[0]
    sb3 = TD3(
        "MlpPolicy", gym.make("Pendulum-v1"), learning_rate=hp["actor_lr"], buffer_size=hp["buffer_size"],
        learning_starts=hp["learning_starts"], batch_size=hp["batch_size"], tau=hp.get("tau", 0.005),
        gamma=hp["gamma"], train_freq=hp.get("train_freq", 1), gradient_steps=hp.get("gradient_steps", 1),
        action_noise=NormalActionNoise(np.zeros(n), hp["exploration_noise"] * np.ones(n)),
        policy_delay=hp.get("policy_delay", 2), target_policy_noise=hp.get("policy_noise", 0.2),
        target_noise_clip=hp.get("noise_clip", 0.5), policy_kwargs=dict(net_arch=list(hp["hidden_sizes"])),
        seed=0, device="cpu", verbose=0,
    )
    return (lambda n_: ours.learn(env, n_)), (lambda n_: sb3.learn(n_, reset_num_timesteps=False)), \
        hp["learning_starts"] + 1


SPEED = {  # agent -> (env, builder, full steps per timed run, quick steps)
    "dqn": ("CartPole-v1", _speed_dqn, 20_000, 2_000),
    "ppo": ("CartPole-v1", _speed_ppo, 10_240, 2_048),
    "td3": ("Pendulum-v1", _speed_td3, 5_000, 500),
}


def run_speed(names: list[str], quick: bool, repeats: int) -> None:
    print("\nTraining speed, env steps/s (1 torch thread, best of", repeats, "alternated runs)")
    try:
        import stable_baselines3  # noqa: F401

        have_sb3 = True
    except ImportError:
        have_sb3 = False
        print("SB3 not installed: ours only, no ratio (pip install stable-baselines3)")
    head = f"{'agent':<6} {'env':<12} {'steps':>6} {'ours':>8} {'SB3':>8} {'ratio':>6}  floor {SPEED_FLOOR}x"
    print(head)
    print("-" * len(head))
    for name in names:
        env_id, build, full, small = SPEED[name]
        steps = small if quick else full
        try:
            if have_sb3:
                ours, sb3, warm = build(steps)
            else:
                ours, sb3, warm = _ours_only(name, build, steps)
        except Exception as exc:
            print(f"{name:<6} {env_id:<12} skipped: {type(exc).__name__}: {exc}")
            continue
        ours(warm)  # warm-up past learning_starts (and torch's lazy initialisation)
        if sb3 is not None:
            sb3(warm)
        best_ours = best_sb3 = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            ours(steps)
            best_ours = max(best_ours, steps / (time.perf_counter() - t))
            if sb3 is not None:
                t = time.perf_counter()
                sb3(steps)
                best_sb3 = max(best_sb3, steps / (time.perf_counter() - t))
        if sb3 is None:
            print(f"{name:<6} {env_id:<12} {steps:>6} {best_ours:>8.0f} {'-':>8} {'-':>6}  SB3 not installed")
            continue
        ratio = best_ours / best_sb3
        verdict = "ok" if ratio >= SPEED_FLOOR else "BELOW floor"
        print(f"{name:<6} {env_id:<12} {steps:>6} {best_ours:>8.0f} {best_sb3:>8.0f} {ratio:>6.2f}  {verdict}")


def _ours_only(name: str, build: Any, steps: int) -> tuple[Any, None, int]:
    """Without SB3 the builders cannot import it: build our side alone from the same presets."""
    env_id = SPEED[name][0]
    module = importlib.import_module(f"agents.{name}")
    from agents import AGENTS

    presets = getattr(module, "PRESETS", None) or DQN_PRESETS
    hp = {k: v for k, v in presets[env_id].items() if k not in RUN_KEYS}
    if name == "ppo":
        hp["anneal_lr_steps"] = 0
    if name == "dqn":
        hp["double_q"] = False
    env = gym.make(env_id)
    agent = AGENTS[name](env.observation_space, env.action_space, seed=0, **hp)
    warm = hp.get("learning_starts", hp.get("n_steps", 0)) + 1
    return (lambda n: agent.learn(env, n)), None, warm


# ----- main --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small budgets: a smoke run of the pipeline")
    p.add_argument("--only", default="", help="comma-separated agents, e.g. dqn,ppo,q-learning")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes (fixed seeds)")
    p.add_argument("--speed-repeats", type=int, default=3)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-speed", action="store_true")
    g.add_argument("--speed-only", action="store_true")
    args = p.parse_args(argv)
    only = parse_only(p, args.only, (r.agent for r in ROWS))
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.exit(2, f"agents.py: error: --seeds={args.seeds!r} must be comma-separated ints\n")
    selected = [r for r in ROWS if not only or r.agent in only]

    if not args.speed_only:
        mode = "quick (smoke budgets)" if args.quick else "full"
        print(f"Learning targets, {mode}; greedy evaluation on {args.episodes} fixed-seed episodes")
        results = []
        for row in selected:
            for seed in seeds:
                results.append(run_row(row, seed, args.quick, args.episodes))
                r = results[-1]
                status = r.get("skipped") or f"reached={r['reached']} steps={r['steps']} final={r['final']:.1f}"
                print(f"  {row.agent} {row.env_id} seed {seed}: {status}", flush=True)
        print()
        print_learning_table(results)
    if not args.no_speed:
        names = [n for n in SPEED if not only or n in only]
        if names:
            run_speed(names, args.quick, args.speed_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
