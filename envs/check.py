"""The checks every domain env must pass — public, so a plugin's authors run the same ones the suite runs.

``check_env_entry(entry)`` runs each check below on one ``EnvEntry`` and raises ``EnvCheckError`` whose first
line names the env and every failed check (one line at the CLI: ``frl check ENV_ID``). The suite's own
tests call the individual checks (``CHECKS``) parametrised over its registry, so a domain from another
package is held to exactly the suite's standard:

* ``gymnasium-checker``: Gymnasium's ``utils.env_checker.check_env`` on the default env.
* ``spaces-and-kpis``: 300 random steps: observations inside the space, finite rewards, every KPI in ``info``.
* ``determinism``: the same seed gives the same trajectory, another seed a different one.
* ``heterogeneity``: ``client_configs`` at heterogeneity 0 gives identical clients, at 1 different ones, the
  same seed the same configs, out-of-range heterogeneity is refused, and every client env has the same spaces
  (one model must federate across them).
* ``knobs``: an unknown override and an out-of-range value of every declared knob are refused by name.
* ``discrete-actions``: a ``Discrete`` env refuses 1.5, ``'1'`` and out-of-range integers.
* ``baselines``: every heuristic acts legally for 150 steps.
* ``pettingzoo-api`` / ``pettingzoo-seed`` / ``parallel-baselines``: the PettingZoo form (if any) passes
  PettingZoo's ``parallel_api_test`` and ``parallel_seed_test`` and its joint heuristics (random among
  them) act legally for every live agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from envs.registry import EnvConfigError, EnvEntry


class EnvCheckError(AssertionError):
    """An env failed one or more of the suite's checks; the first line names the env and the checks."""


def _fail(msg: str) -> None:
    raise EnvCheckError(msg)


def _rollout(env: gym.Env, seed: int, steps: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [np.asarray(obs).copy()]
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        trace.append(np.asarray(obs).copy())
        trace.append(np.array([r, term, trunc], dtype=np.float64))
        if term or trunc:
            obs, _ = env.reset()
    return trace


def _legal(space: gym.Space, action: Any) -> bool:
    if isinstance(space, gym.spaces.Box):
        return bool(space.contains(np.asarray(action, dtype=space.dtype)))
    return bool(space.contains(action))


def check_gymnasium(entry: EnvEntry) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(entry.env_id).unwrapped, skip_render_check=True)


def check_spaces_and_kpis(entry: EnvEntry, steps: int = 300) -> None:
    env = gym.make(entry.env_id)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for t in range(steps):
        if not env.observation_space.contains(obs):
            _fail(f"step {t}: observation outside the observation space")
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        if not np.isfinite(reward):
            _fail(f"step {t}: reward {reward!r} is not finite")
        for k in entry.kpis:
            if k not in info or not np.isfinite(float(info[k])):
                _fail(f"step {t}: KPI {k!r} missing from info or not finite (info keys: {', '.join(info)})")
        if term or trunc:
            obs, _ = env.reset()


def check_determinism(entry: EnvEntry, steps: int = 200) -> None:
    a = _rollout(gym.make(entry.env_id), 11, steps)
    b = _rollout(gym.make(entry.env_id), 11, steps)
    c = _rollout(gym.make(entry.env_id), 12, steps)
    if not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)):
        _fail("the same seed gave two different trajectories (seed every random draw from reset(seed=...))")
    if all(np.array_equal(x, y) for x, y in zip(a, c, strict=True)):
        _fail("seeds 11 and 12 gave the same trajectory (reset ignores its seed)")


def check_heterogeneity(entry: EnvEntry) -> None:
    same = entry.client_configs(4, 0.0, 3)
    if len(same) != 4 or any(c != same[0] for c in same):
        _fail("client_configs(4, heterogeneity=0.0, seed) must give 4 identical configs")
    diverse = entry.client_configs(4, 1.0, 3)
    if len({repr(c) for c in diverse}) <= 1:
        _fail("client_configs(4, heterogeneity=1.0, seed) gave identical clients")
    if entry.client_configs(4, 0.7, 5) != entry.client_configs(4, 0.7, 5):
        _fail("client_configs is not deterministic in its seed")
    for bad in (-0.1, 1.5):
        try:
            entry.client_configs(4, bad, 0)
        except EnvConfigError as e:
            if "heterogeneity" not in str(e):
                _fail(f"heterogeneity={bad} was refused without naming 'heterogeneity': {e}")
        else:
            _fail(f"client_configs accepted heterogeneity={bad} (allowed: [0, 1]; raise EnvConfigError)")
    spaces = set()
    for c in diverse:
        env = gym.make(entry.env_id, config=c)
        spaces.add((repr(env.observation_space), repr(env.action_space)))
    if len(spaces) != 1:
        _fail("client envs have different spaces; one model cannot be federated across them")


def _out_of_range(spec: Any) -> Any:
    if spec.kind in ("float", "int") and spec.high is not None:
        return spec.high + abs(spec.high) + 1
    if spec.kind in ("float", "int") and spec.low is not None:
        return spec.low - abs(spec.low) - 1
    if spec.kind == "choice":
        return "no-such-choice"
    return None


def check_knobs(entry: EnvEntry) -> None:
    try:
        gym.make(entry.env_id, no_such_knob=1)
    except EnvConfigError as e:
        if "no_such_knob" not in str(e):
            _fail(f"an unknown override was refused without naming it: {e}")
    else:
        _fail("gym.make(..., no_such_knob=1) was accepted (unknown overrides must raise EnvConfigError)")
    from envs.knobs import METADATA_KEY

    if not dataclasses.is_dataclass(entry.config_cls):
        return
    for f in dataclasses.fields(entry.config_cls):
        spec = f.metadata.get(METADATA_KEY)
        bad = _out_of_range(spec) if spec is not None else None
        if bad is None:
            continue
        try:
            gym.make(entry.env_id, **{f.name: bad})
        except (EnvConfigError, ValueError) as e:
            if f.name not in str(e):
                _fail(f"knob {f.name}={bad!r} was refused without naming the knob: {e}")
        else:
            _fail(f"knob {f.name}={bad!r} is outside its declared range and was accepted")


def check_discrete_actions(entry: EnvEntry) -> None:
    """A ``Discrete`` env takes integers in range only (as Gymnasium's own envs), never 1.5 or ``'1'``."""
    env = gym.make(entry.env_id)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        return
    n = int(env.action_space.n)
    for bad in (1.5, "1", n, -1):
        env.reset(seed=0)
        try:
            env.unwrapped.step(bad)
        except (gym.error.InvalidAction, ValueError, AssertionError, TypeError):
            continue
        _fail(f"step({bad!r}) was accepted; a Discrete({n}) env must refuse anything but an integer in 0..{n - 1}")


def check_baselines(entry: EnvEntry, steps: int = 150) -> None:
    for name, factory in entry.baselines.items():
        env = gym.make(entry.env_id)
        policy = factory(env, 0)
        obs, _ = env.reset(seed=1)
        for t in range(steps):
            action = policy(obs)
            if not _legal(env.action_space, action):
                _fail(f"baseline {name!r} step {t}: action {action!r} outside the action space")
            obs, _, term, trunc, _ = env.step(action)
            if term or trunc:
                obs, _ = env.reset()


def check_pettingzoo_api(entry: EnvEntry) -> None:
    if entry.parallel_entry_point:
        from pettingzoo.test import parallel_api_test

        parallel_api_test(entry.parallel_factory()(), num_cycles=200)


def check_pettingzoo_seed(entry: EnvEntry) -> None:
    if entry.parallel_entry_point:
        from pettingzoo.test import parallel_seed_test

        parallel_seed_test(entry.parallel_factory())


def check_parallel_baselines(entry: EnvEntry, steps: int = 60) -> None:
    if not entry.parallel_entry_point:
        return
    if "random" not in entry.parallel_baselines or len(entry.parallel_baselines) < 2:
        _fail("a PettingZoo form needs joint heuristics, 'random' and at least one more (parallel_baselines)")
    for name, factory in entry.parallel_baselines.items():
        env = entry.parallel_factory()()
        policy = factory(env, 0)
        obs, _ = env.reset(seed=1)
        for t in range(steps):
            if not env.agents:
                obs, _ = env.reset()
            actions = policy(obs)
            missing = set(env.agents) - set(actions)
            if missing:
                _fail(f"parallel baseline {name!r} step {t}: no action for live agents {sorted(missing)}")
            for agent in env.agents:
                if not _legal(env.action_space(agent), actions[agent]):
                    _fail(f"parallel baseline {name!r} step {t}: illegal action {actions[agent]!r} for {agent}")
            obs, *_ = env.step({a: actions[a] for a in env.agents})


CHECKS: dict[str, Callable[[EnvEntry], None]] = {
    "gymnasium-checker": check_gymnasium,
    "spaces-and-kpis": check_spaces_and_kpis,
    "determinism": check_determinism,
    "heterogeneity": check_heterogeneity,
    "knobs": check_knobs,
    "discrete-actions": check_discrete_actions,
    "baselines": check_baselines,
    "pettingzoo-api": check_pettingzoo_api,
    "pettingzoo-seed": check_pettingzoo_seed,
    "parallel-baselines": check_parallel_baselines,
}


def check_env_entry(entry: EnvEntry, checks: tuple[str, ...] | None = None) -> list[str]:
    """Run the named checks (default: all) on ``entry``; return the names of those that passed, or raise
    ``EnvCheckError`` whose first line lists every failure as ``check: reason``."""
    names = tuple(CHECKS) if checks is None else checks
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise EnvConfigError(f"unknown env check {unknown[0]!r}; allowed: {', '.join(CHECKS)}")
    failures: dict[str, list[str]] = {}  # reason -> the checks that failed with it (a missing extra fails them all)
    for name in names:
        try:
            CHECKS[name](entry)
        except Exception as e:  # noqa: BLE001 - every failure is reported, by check
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            failures.setdefault(reason if isinstance(e, EnvCheckError) else f"{type(e).__name__}: {reason}",
                                []).append(name)
    if failures:
        n = sum(len(v) for v in failures.values())
        raise EnvCheckError(f"{entry.env_id} failed {n} of {len(names)} checks: "
                            + "; ".join(f"{', '.join(v)}: {reason}" for reason, v in failures.items()))
    return list(names)
