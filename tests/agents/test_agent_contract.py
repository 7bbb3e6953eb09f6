"""The Agent contract (agents/base.py), checked once for every registered agent: seeding, named weights,
set_weights refusals, checkpoints, load refusals, pickling and the proximal-term hooks.

Each agent has one small case below (an env and tiny hyperparameters, from its own test file); every test is
parametrised over ``sorted(AGENTS)``, so a newly registered agent must bring a case. Algorithm-specific
behaviour (target networks, temperatures, noise processes, buffers, personal heads, ...) stays in the
per-agent files.

"Changes nothing" is checked against a twin, an agent built and trained identically that never saw the
refused calls: after each refusal every tensor of the two agents' modules (online and target networks) must
be equal, and after all of them both must keep learning to bitwise the same weights, which also catches a
touched optimiser, generator, counter or FedProx anchor.
"""

from __future__ import annotations

import copy
import os
import pickle
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import AGENTS, Agent, AgentError
from agents.tabular import PRESETS as TABULAR_PRESETS
from tests.agents.common import assert_weights_equal

# The first torch optimiser of a process imports torch._dynamo (about 1.5 s); pay that at collection so
# that --durations shows what the tests themselves cost.
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


# ----- one case per agent ------------------------------------------------------------------------------
def _carry_replay(src: Agent, dst: Agent) -> None:
    """Off-policy agents: a checkpoint leaves the replay buffer out (documented), so a loaded agent gets a
    copy of the original's to continue from; it samples with the agent's own generator."""
    dst.buffer = copy.deepcopy(src.buffer)
    dst.buffer.rng = dst._rng


def _at_rollout_boundary(src: Agent, dst: Agent) -> None:
    """On-policy agents: a checkpoint leaves the pending rollout out (documented), so the case saves on a
    rollout boundary, where nothing is pending."""
    if src.buffer.pos != 0:
        pytest.fail(f"the {src.name} case must save on a rollout boundary; {src.buffer.pos} steps are pending")


def _carry_model_data(src: Agent, dst: Agent) -> None:
    """FEMRL: a checkpoint leaves the real-transition and imagined buffers and the pending model rollout out
    (documented, as the other off-policy agents' replay), so a loaded agent gets copies to continue from."""
    for name in ("data", "imagined"):
        buf = copy.deepcopy(getattr(src, name))
        buf.rng = dst._rng
        setattr(dst, name, buf)
    dst._rollout_obs = None if src._rollout_obs is None else src._rollout_obs.clone()
    dst._rollout_age = src._rollout_age.copy()


def _nothing_left_out(src: Agent, dst: Agent) -> None:
    """Tabular agents: a checkpoint holds everything but the running episode."""


@dataclass(frozen=True)
class Case:
    """How to build a small, fast agent of one algorithm and an env it learns on."""

    name: str
    env_id: str
    hyper: dict[str, Any]
    #: one ``learn`` call: a few updates (for on-policy agents whole rollouts, so it ends on a boundary)
    steps: int
    #: another registered agent whose checkpoint this one must refuse
    sibling: str
    #: what ``load`` deliberately does not restore, handed from the original to the loaded agent
    carry: Callable[[Agent, Agent], None]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: (env id, env kwargs, overrides) of an agent of this algorithm with other weight shapes (None: smaller
    #: hidden layers on the same env)
    reshaped: tuple[str, dict[str, Any], dict[str, Any]] | None = None

    def env(self) -> gym.Env:
        return gym.make(self.env_id, **self.env_kwargs)

    def make(self, seed: int = 0, *, env: gym.Env | None = None, **overrides: Any) -> Agent:
        env = self.env() if env is None else env
        return AGENTS[self.name](env.observation_space, env.action_space, seed=seed, **{**self.hyper, **overrides})

    def make_reshaped(self) -> Agent:
        if self.reshaped is None:
            return self.make(hidden_sizes=(8,))
        env_id, env_kwargs, overrides = self.reshaped
        return self.make(env=gym.make(env_id, **env_kwargs), **overrides)


# Each agent file's TINY settings, plus a FedProx term so that anchors take part in checkpoints and copies.
NETWORK = dict(hidden_sizes=(32,), prox_mu=0.1)
# Off-policy agents learn from step 32 on, every 4th step, in calls of 48 steps: the many short runs below
# stay fast
OFF_POLICY = dict(batch_size=16, learning_starts=32, train_freq=4, **NETWORK)
DQN = dict(batch_size=16, learning_starts=32, train_freq=4, exploration_steps=200, **NETWORK)
# Tabular: the CliffWalking preset, where every step costs −1 so the table changes from the first step on
# (FrozenLake's only reward is the goal, rarely reached in a few dozen random steps); FrozenLake has 16
# states instead of 48, so its tables have another shape.
CLIFF = {k: v for k, v in TABULAR_PRESETS["CliffWalking-v1"].items() if k not in ("env_kwargs", "total_steps")}
TABULAR = dict(
    env_kwargs=TABULAR_PRESETS["CliffWalking-v1"]["env_kwargs"],
    reshaped=("FrozenLake-v1", TABULAR_PRESETS["FrozenLake-v1"]["env_kwargs"], {}),
)

CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("a2c", "CartPole-v1", dict(n_steps=8, **NETWORK), 32, "ppo", _at_rollout_boundary),
        Case("ddpg", "Pendulum-v1", dict(noise_type="ou", **OFF_POLICY), 48, "td3", _carry_replay),
        Case("dqn", "CartPole-v1", DQN, 48, "q-learning", _carry_replay),
        Case("masked-dqn", "CartPole-v1",
             dict(exploration_schedule="exponential", mask_in_obs=False, exploration_spread=0.5, **DQN), 48,
             "dqn", _carry_replay),
        Case("femrl", "CartPole-v1",
             dict(ensemble_size=2, model_hidden=(16,), model_updates=4, kd_samples=8, distill_steps=4,
                  rollout_batch=8, policy_updates=6, batch_size=8, updates_per_model_step=2, **NETWORK),
             24, "dqn", _carry_model_data),
        Case(
            "ppo",
            "CartPole-v1",
            dict(n_steps=64, batch_size=32, n_epochs=2, **NETWORK),
            128,
            "a2c",
            _at_rollout_boundary,
        ),
        # Pendulum: its 200-step episodes are longer than REINFORCE's longest carried tail (n_steps / 2), so
        # every batch ends on a rollout boundary with nothing carried over
        Case("reinforce", "Pendulum-v1", dict(n_steps=32, **NETWORK), 64, "a2c", _at_rollout_boundary),
        Case("sac", "Pendulum-v1", OFF_POLICY, 48, "td3", _carry_replay),
        # 48 steps = 5 updates (at steps 32, 36, ..., 48): an odd count, so the phase of TD3's delayed actor
        # updates must survive a checkpoint
        Case("td3", "Pendulum-v1", OFF_POLICY, 48, "ddpg", _carry_replay),
        Case("q-learning", "CliffWalking-v1", dict(prox_mu=0.1, **CLIFF), 64, "sarsa", _nothing_left_out, **TABULAR),
        Case("sarsa", "CliffWalking-v1", dict(prox_mu=0.1, **CLIFF), 64, "q-learning", _nothing_left_out, **TABULAR),
    ]
}


AGENT_NAMES = sorted(AGENTS)


# ----- helpers -----------------------------------------------------------------------------------------
def learned(case: Case, seed: int = 0) -> tuple[Agent, gym.Env]:
    """An agent given a broadcast model (its FedProx anchor) that then learned ``case.steps`` steps."""
    agent, env = case.make(seed), case.env()
    agent.set_weights(case.make(seed + 100).get_weights())
    agent.learn(env, case.steps)
    return agent, env


def observations(case: Case, n: int = 5) -> list:
    space = case.env().observation_space
    space.seed(0)
    return [space.sample() for _ in range(n)]


def greedy_actions(agent: Agent, obs: list) -> list[np.ndarray]:
    return [np.asarray(agent.act(o, explore=False)) for o in obs]


def weights_differ(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return any(not np.array_equal(a[k], b[k]) for k in a)


def module_tensors(agent: Agent) -> dict[str, np.ndarray]:
    """The weights and every tensor of every torch module the agent holds (online and target networks)."""
    out = {f"weights/{k}": v for k, v in agent.get_weights().items()}
    for attr, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            out.update({f"{attr}/{k}": v.detach().cpu().numpy().copy() for k, v in value.state_dict().items()})
    return out


def assert_same_tensors(agent: Agent, twin: Agent, after: str) -> None:
    """Every tensor of ``agent``'s modules equals ``twin``'s (``after``: what ``agent`` went through)."""
    mine, theirs = module_tensors(agent), module_tensors(twin)
    assert mine.keys() == theirs.keys(), after
    for k in mine:
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=f"after {after}: {k}")


def assert_learns_like_twin(case: Case, agent: Agent, env: gym.Env, twin: Agent, twin_env: gym.Env) -> None:
    """``agent`` (which refused some calls) keeps learning exactly like ``twin`` (which never saw them)."""
    before = agent.get_weights()
    agent.learn(env, case.steps)
    twin.learn(twin_env, case.steps)
    assert weights_differ(agent.get_weights(), before)  # the comparison below is not of idle agents
    assert_weights_equal(agent.get_weights(), twin.get_weights())


def bad_weights(weights: Mapping[str, np.ndarray], kind: str) -> tuple[Any, str, str]:
    """An argument ``set_weights`` must refuse, the key it must name and a regex of the full reason. Valid,
    changed values for the other keys come first, so a partial application would show."""
    keys = list(weights)
    key = keys[-1]
    value, shape = weights[key].copy(), weights[key].shape
    valid = {k: weights[k] + 1.0 for k in keys[:-1]}
    quoted = re.escape(repr(key))
    if kind == "unknown-key":
        bad = {**valid, key: value + 1.0, "nope.weight": np.zeros(2)}
        return bad, "'nope.weight'", r"unknown weight 'nope\.weight'"
    if kind == "wrong-shape":
        return (
            {**valid, key: np.zeros((*shape, 2))},
            repr(key),
            rf"{quoted} has shape .*expected {re.escape(str(shape))}",
        )
    if kind == "non-finite":
        value.flat[0], value.flat[-1] = np.inf, np.nan
        return {**valid, key: value}, repr(key), rf"{quoted} contains non-finite values"
    if kind == "non-numeric":
        return {**valid, key: np.full(shape, "x")}, repr(key), rf"{quoted} is not a numeric array"
    assert kind == "not-a-mapping"
    return list(weights.values()), "mapping", "must be a mapping name -> array, got list"


# ----- coverage ----------------------------------------------------------------------------------------
def test_every_registered_agent_has_a_case():
    assert sorted(CASES) == sorted(AGENTS)
    for name, case in CASES.items():
        assert type(case.make()) is AGENTS[name]
        assert case.sibling in AGENTS and case.sibling != name


# ----- seeds -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AGENT_NAMES)
def test_same_seed_is_bitwise_reproducible_other_seed_differs_global_rngs_untouched(name):
    case = CASES[name]
    global_states = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    runs = []
    for seed in (3, 3, 4):
        agent, env = learned(case, seed)
        agent.learn(env, case.steps)  # the episode continues across calls
        runs.append((agent.get_weights(), [np.asarray(agent.act(o)) for o in observations(case)]))
    assert torch.equal(global_states[0], torch.random.get_rng_state())
    np.testing.assert_array_equal(global_states[1], np.random.get_state()[1])  # noqa: NPY002
    assert global_states[2] == random.getstate()
    assert_weights_equal(runs[0][0], runs[1][0])
    for x, y in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(x, y)
    assert weights_differ(runs[0][0], runs[2][0])


# ----- weights -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AGENT_NAMES)
def test_weights_round_trip_exactly_and_are_independent_copies(name):
    case = CASES[name]
    a, _ = learned(case)
    w = a.get_weights()
    assert w and all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in w.values())
    b = case.make(seed=1)
    assert weights_differ(b.get_weights(), w)  # the round trip has something to do
    b.set_weights(w)
    assert_weights_equal(b.get_weights(), w)
    obs = observations(case)
    for x, y in zip(greedy_actions(b, obs), greedy_actions(a, obs), strict=True):
        np.testing.assert_array_equal(x, y)

    # what get_weights returns and what set_weights was given are copies: writing into them changes nothing
    wa, wb = a.get_weights(), b.get_weights()
    for v in w.values():
        v[...] = 7.0
    assert_weights_equal(a.get_weights(), wa)
    assert_weights_equal(b.get_weights(), wb)

    # a subset (float64 accepted) changes that key only; an empty mapping changes nothing
    key = next(iter(wb))
    b.set_weights({key: np.full(wb[key].shape, 0.5)})
    np.testing.assert_array_equal(b.get_weights()[key], np.float32(0.5))
    rest = b.get_weights()
    del rest[key], wb[key]
    assert_weights_equal(rest, wb)
    after = b.get_weights()
    b.set_weights({})
    assert_weights_equal(b.get_weights(), after)

    # without personal parameters everything is shared, and the class keeps no personal prefixes
    assert a.get_shared_weights().keys() == w.keys()
    assert type(a).personal_prefixes == ()


WEIGHT_FAULTS = ("unknown-key", "wrong-shape", "non-finite", "non-numeric", "not-a-mapping")


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_set_weights_refuses_bad_weights_naming_them_and_changes_nothing(name):
    case = CASES[name]
    (agent, env), (twin, twin_env) = learned(case), learned(case)
    for kind in WEIGHT_FAULTS:
        bad, _, reason = bad_weights(agent.get_weights(), kind)
        with pytest.raises(AgentError, match=reason):
            agent.set_weights(bad)
        assert_same_tensors(agent, twin, after=kind)
    assert_learns_like_twin(case, agent, env, twin, twin_env)


@pytest.mark.parametrize("faults", [("unknown-key", "wrong-shape"), ("non-finite", "not-a-mapping")],
                         ids=["names-shapes", "values-types"])
@pytest.mark.parametrize("name", AGENT_NAMES)
def test_set_anchor_refuses_bad_weights_naming_them_and_changes_nothing(name, faults):
    case = CASES[name]
    anchor = case.make(seed=7).get_weights()
    agent, env = learned(case)
    agent.set_anchor(anchor)  # Ditto: a new anchor, the parameters stay
    twin, twin_env = learned(case)
    twin.set_anchor(anchor)
    for kind in faults:
        bad, named, _ = bad_weights(agent.get_weights(), kind)
        with pytest.raises(AgentError, match=re.escape(named)):
            agent.set_anchor(bad)
        assert_same_tensors(agent, twin, after=kind)
    assert_learns_like_twin(case, agent, env, twin, twin_env)  # the anchor is unchanged too


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_set_proximal_takes_a_finite_non_negative_mu_and_names_a_bad_one(name):
    agent = CASES[name].make()
    agent.set_proximal(0.0)
    agent.set_proximal(0.5)
    for mu in (-1.0, float("nan"), float("inf")):
        with pytest.raises(AgentError, match=re.escape(f"prox_mu={mu!r}")):
            agent.set_proximal(mu)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_set_trainable_trains_only_parameters_with_the_given_prefixes(name):
    case = CASES[name]
    agent, env = learned(case)
    before = agent.get_weights()
    agent.set_trainable(())  # nothing trainable (FedRep without personal parameters): it acts, nothing changes
    agent.learn(env, case.steps)
    assert_weights_equal(agent.get_weights(), before)
    key = next(iter(before))
    agent.set_trainable((key,))
    agent.learn(env, case.steps)
    after = agent.get_weights()
    assert {k for k in before if not np.array_equal(before[k], after[k])} == {k for k in before if k.startswith(key)}
    agent.set_trainable(None)
    agent.learn(env, case.steps)
    assert all(not np.array_equal(after[k], v) for k, v in agent.get_weights().items())


# ----- checkpoints -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AGENT_NAMES)
def test_save_load_round_trip_into_a_fresh_agent(name, tmp_path):
    case = CASES[name]
    a, _ = learned(case)
    path = tmp_path / f"{name}.pt"
    a.save(path)
    assert os.listdir(tmp_path) == [path.name]  # written atomically: no temp file left behind
    b = case.make(seed=1)
    assert weights_differ(b.get_weights(), a.get_weights())
    b.load(path)
    assert_weights_equal(b.get_weights(), a.get_weights())
    for counter in ("total_steps", "num_updates"):
        assert getattr(b, counter, None) == getattr(a, counter, None), counter
    obs = observations(case)
    for x, y in zip(greedy_actions(b, obs), greedy_actions(a, obs), strict=True):
        np.testing.assert_array_equal(x, y)
    assert b.learn(case.env(), case.steps)["train/steps"] == 2 * case.steps


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_loaded_agent_continues_bitwise_like_the_original(name, tmp_path):
    case = CASES[name]
    a, _ = learned(case)
    a.save(tmp_path / "a.pt")
    b = case.make(seed=1)
    b.load(tmp_path / "a.pt")
    case.carry(a, b)
    saved = a.get_weights()
    for _ in range(2):  # both adopt new env objects (reset with seeds from their generators)
        a.learn(case.env(), case.steps)
        b.learn(case.env(), case.steps)
    assert weights_differ(a.get_weights(), saved)
    assert_weights_equal(b.get_weights(), a.get_weights())


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_load_refuses_wrong_files_naming_them_and_changes_nothing(name, tmp_path):
    case = CASES[name]
    CASES[case.sibling].make().save(tmp_path / "other-agent.pt")
    case.make_reshaped().save(tmp_path / "other-shapes.pt")
    case.make().save(tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    torch.save({"a": torch.zeros(1)}, tmp_path / "foreign.pt")
    (agent, env), (twin, twin_env) = learned(case), learned(case)
    for kind, reason in [
        ("other-agent", f"is for agent '{case.sibling}', not '{name}'"),
        ("other-shapes", "shapes? .*this agent expects"),
        ("truncated", "is not a readable agent checkpoint"),
        ("foreign", "is not an FRL agent checkpoint"),
        ("missing", "does not exist"),
    ]:
        with pytest.raises(AgentError, match=f"{kind}\\.pt.*{reason}"):
            agent.load(tmp_path / f"{kind}.pt")
        assert_same_tensors(agent, twin, after=f"loading {kind}.pt")
    assert_learns_like_twin(case, agent, env, twin, twin_env)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_load_refuses_non_finite_weights_and_changes_nothing(name, tmp_path):
    """Every way in is validated: a checkpoint whose weights (online, target or anchor) hold NaN/inf is
    refused like ``set_weights`` refuses them."""
    case = CASES[name]
    learned(case)[0].save(tmp_path / "ok.pt")
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    for part, state in [*((f"modules.{k}", m) for k, m in payload["modules"].items()), ("anchor", payload["anchor"])]:
        bad = copy.deepcopy(payload)
        target = bad["anchor"] if part == "anchor" else bad["modules"][part.split(".", 1)[1]]
        key = sorted(state)[-1]
        target[key] = target[key].clone()
        target[key].view(-1)[0] = float("nan") if part != "anchor" else float("inf")
        torch.save(bad, tmp_path / f"{part}.pt")
    (agent, env), (twin, twin_env) = learned(case), learned(case)
    for path in sorted(tmp_path.glob("[am]*.pt")):
        with pytest.raises(AgentError, match="non-finite"):
            agent.load(path)
        assert_same_tensors(agent, twin, after=f"loading {path.name}")
    assert_learns_like_twin(case, agent, env, twin, twin_env)


# ----- pickling (worker processes) ---------------------------------------------------------------------
class Unpicklable(gym.Wrapper):
    """An env that cannot be pickled or deep-copied (it holds a lock), as many simulators cannot."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lock = threading.Lock()


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_copies_leave_the_env_behind_keep_weights_and_learn_like_the_original(name):
    case = CASES[name]
    env = Unpicklable(case.env())
    with pytest.raises(TypeError):
        pickle.dumps(env)
    a = case.make()
    a.set_weights(case.make(seed=100).get_weights())
    a.learn(env, case.steps)
    copies = {"pickle": pickle.loads(pickle.dumps(a)), "deepcopy": copy.deepcopy(a)}
    for how, b in copies.items():
        assert_same_tensors(b, a, after=how)
    saved = a.get_weights()
    for _ in range(2):  # acting and updating after updates: a copy's optimiser and fast paths are its own
        a.learn(case.env(), case.steps)
        steps = {how: b.learn(case.env(), case.steps)["train/steps"] for how, b in copies.items()}
    assert steps == dict.fromkeys(copies, 3 * case.steps)
    assert weights_differ(a.get_weights(), saved)
    for how, b in copies.items():
        assert_same_tensors(b, a, after=f"learning on from a {how}")
