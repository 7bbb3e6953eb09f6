"""Byzantine clients: attacks as client-side behaviours that wrap any method's client half.

An attack changes what a malicious client *does*, never the server: it either poisons the update it
uploads (``sign-flip``, ``gaussian``, ``scale``, ``zero``) or the experience it learns from
(``random-action``, ``reward-flip``), so every strategy meets it unchanged. The attacks follow the
Byzantine-FRL literature:

- ``sign-flip:k=K``   uploads w + (−K)·Δ instead of w + Δ (Δ = the honest change of the received model w).
  K = 2.5 by default, the magnitude of FedPG-BR's sign-flipping agents (Fan et al., "Fault-Tolerant
  Federated Reinforcement Learning with Theoretical Guarantee", NeurIPS 2021, §6); with 30 % attackers the
  mean update then points the wrong way (0.7 − 0.3·2.5 < 0).
- ``gaussian:std=S``  uploads w + ε, ε ~ N(0, S²) per coordinate, ignoring its training (FedPG-BR's
  random-noise agents; the "Gaussian" Byzantine vector of Blanchard et al. 2017, §6). S = 1 by default:
  large next to a policy network's per-round change.
- ``scale:k=K``       uploads w + K·Δ, a boosted honest update (model-replacement boosting, Bagdasaryan
  et al. 2020, "How To Backdoor Federated Learning", §4.2); K = 10 by default.
- ``zero``            uploads w unchanged (no update: a free-rider or a silently stalled client).
- ``random-action``   acts uniformly at random while learning but trains as usual on what it saw, so its
  honest-looking update carries no information about good actions (FedPG-BR's random-action agents, §6).
- ``reward-flip:k=K`` learns from rewards × (−K) (poisoned rewards, K = 1 by default): an env wrapper, so
  the agent optimises the opposite objective with its ordinary algorithm.

Evaluation is never poisoned: a client's evaluation env is left alone, so returns are the true ones.

API: :data:`ATTACKS` (name → class), :func:`make_attack` (``"name:key=value"`` specs, parsed with
:func:`federation.strategies.parse_spec`), :func:`choose_malicious` (seeded choice of the malicious
clients), :func:`make_malicious` (turn one :class:`~federation.client.Client` malicious, whatever method
the round loop installs later) and :class:`ByzantineStrategy` / :func:`with_attack` (a strategy wrapper that
makes the chosen clients malicious through the hooks it hands out — how a scenario attacks every method
without touching the round loop).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agents.base import Agent, Weights, is_int, is_number
from federation.client import Client, ClientHook
from federation.strategies import parse_spec
from federation.strategies.base import Strategy, check_number
from federation.types import FederationError, FitIns, FitResult

# --- the attacks -------------------------------------------------------------------------------------------


class Attack:
    """One Byzantine behaviour. Update attacks override :meth:`poison` (the uploaded change Δ → what the
    server receives); behavioural attacks override :meth:`wrap_env` (the env the client learns on)."""

    name: ClassVar[str] = "attack"
    summary: ClassVar[str] = ""
    behavioural: ClassVar[bool] = False

    def params(self) -> dict[str, float]:
        return {}

    def spec(self) -> str:
        return ":".join([self.name, *(f"{k}={v:g}" for k, v in self.params().items())])

    def poison(self, delta: Weights, rng: np.random.Generator) -> Weights:
        """The change the malicious client reports instead of its honest change ``delta``."""
        return delta

    def wrap_env(self, env: gym.Env, rng: np.random.Generator) -> gym.Env:
        """The env the malicious client learns on instead of ``env``."""
        return env

    def __repr__(self) -> str:
        return f"<attack {self.spec()}>"


class SignFlip(Attack):
    name = "sign-flip"
    summary = "upload the honest update times -k (FedPG-BR's sign flipping, k=2.5)"

    def __init__(self, *, k: float = 2.5) -> None:
        self.k = check_number("sign-flip: k", k, 0.0, 1e6, lo_open=True)

    def params(self) -> dict[str, float]:
        return {"k": self.k}

    def poison(self, delta: Weights, rng: np.random.Generator) -> Weights:
        return {key: -self.k * d for key, d in delta.items()}


class Gaussian(Attack):
    name = "gaussian"
    summary = "upload Gaussian noise of std S per coordinate instead of an update (S=1)"

    def __init__(self, *, std: float = 1.0) -> None:
        self.std = check_number("gaussian: std", std, 0.0, 1e6, lo_open=True)

    def params(self) -> dict[str, float]:
        return {"std": self.std}

    def poison(self, delta: Weights, rng: np.random.Generator) -> Weights:
        return {key: rng.normal(0.0, self.std, size=np.shape(d)) for key, d in delta.items()}


class Scale(Attack):
    name = "scale"
    summary = "upload the honest update boosted k times (k=10)"

    def __init__(self, *, k: float = 10.0) -> None:
        self.k = check_number("scale: k", k, 0.0, 1e6, lo_open=True)

    def params(self) -> dict[str, float]:
        return {"k": self.k}

    def poison(self, delta: Weights, rng: np.random.Generator) -> Weights:
        return {key: self.k * d for key, d in delta.items()}


class Zero(Attack):
    name = "zero"
    summary = "upload no change (the received model back)"

    def poison(self, delta: Weights, rng: np.random.Generator) -> Weights:
        return {key: np.zeros_like(d) for key, d in delta.items()}


class RandomAction(Attack):
    name = "random-action"
    summary = "act uniformly at random while learning, train as usual (FedPG-BR's random action)"
    behavioural = True

    def wrap_env(self, env: gym.Env, rng: np.random.Generator) -> gym.Env:
        return _RandomActionWrapper(env, int(rng.integers(2**31 - 1)))


class RewardFlip(Attack):
    name = "reward-flip"
    summary = "learn from rewards times -k (poisoned rewards, k=1)"
    behavioural = True

    def __init__(self, *, k: float = 1.0) -> None:
        self.k = check_number("reward-flip: k", k, 0.0, 1e6, lo_open=True)

    def params(self) -> dict[str, float]:
        return {"k": self.k}

    def wrap_env(self, env: gym.Env, rng: np.random.Generator) -> gym.Env:
        return _RewardFlipWrapper(env, self.k)


def _gym_env(env: Any, attack: str) -> gym.Env:
    if not isinstance(env, gym.Env):
        raise FederationError(f"attack {attack!r} wraps a Gymnasium env; got {type(env).__name__} "
                              "(PettingZoo and vector envs are not supported)")
    return env


class _RandomActionWrapper(gym.ActionWrapper):
    """Executes a uniformly random action (its own seeded copy of the action space) whatever the agent chose;
    the agent still records its own choice, so its policy gradient correlates actions with unrelated returns."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(_gym_env(env, "random-action"))
        self._space = copy.deepcopy(env.action_space)
        self._space.seed(seed)

    def action(self, action: Any) -> Any:
        return self._space.sample()


class _RewardFlipWrapper(gym.RewardWrapper):
    def __init__(self, env: gym.Env, k: float) -> None:
        super().__init__(_gym_env(env, "reward-flip"))
        self.k = k

    def reward(self, reward: Any) -> Any:
        return -self.k * reward


ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (SignFlip, Gaussian, Scale, Zero, RandomAction,
                                                               RewardFlip)}


def make_attack(spec: str | Attack) -> Attack:
    """``"sign-flip:k=4"`` → the attack; a bad name or parameter raises one line naming it and the allowed ones."""
    if isinstance(spec, Attack):
        return spec
    if not isinstance(spec, str):
        raise FederationError(f"attack {spec!r} must be a string 'name' or 'name:key=value'")
    name, params = parse_spec(spec)
    if name not in ATTACKS:
        raise FederationError(f"unknown attack {name!r}; allowed: {', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    allowed = list(cls().params())
    bad = [k for k in params if k not in allowed]
    if bad:
        raise FederationError(f"attack {name!r} has no parameter {bad[0]!r}; allowed: {', '.join(allowed) or '(none)'}")
    return cls(**params)


def choose_malicious(n_clients: int, fraction: float, seed: int | np.random.SeedSequence) -> tuple[int, ...]:
    """``round(fraction · n)`` distinct client ids drawn uniformly with ``seed``, sorted."""
    if not is_int(n_clients) or n_clients < 1:
        raise FederationError(f"n_clients={n_clients!r} must be an integer >= 1")
    if not (is_number(fraction) and 0.0 <= fraction <= 1.0):
        raise FederationError(f"malicious fraction={fraction!r} is out of range; allowed: [0, 1]")
    m = int(round(float(fraction) * n_clients))
    rng = np.random.default_rng(seed)
    return tuple(sorted(int(i) for i in rng.choice(n_clients, size=m, replace=False)))


# --- the client half ---------------------------------------------------------------------------------------


class AttackHook(ClientHook):
    """Wraps a method's client half: everything is the method's own, except that the behavioural attack
    changes the env the client learns on (once, at ``attach``) and the update attack changes what leaves
    the client (``upload``: Δ = honest upload − received weights is replaced by ``attack.poison(Δ)``)."""

    def __init__(self, inner: ClientHook, attack: Attack, rng: np.random.Generator | None) -> None:
        self.inner = inner
        self.attack = attack
        self.rng = rng

    def attach(self, client: Client) -> None:
        self.inner.attach(client)
        if self.attack.behavioural and getattr(client, "_attacked_env", None) is not self.attack:
            client.env = self.attack.wrap_env(client.env, self.rng)
            make_env = client._make_env
            if make_env is not None:  # a method's extra env copies (Ditto's) learn on the poisoned env too
                client._make_env = lambda: self.attack.wrap_env(make_env(), self.rng)
            client._attacked_env = self.attack  # once per client, however often the round loop installs hooks

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        return self.inner.receive(client, ins)

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        return self.inner.learn(client, steps)

    def report(self, client: Client) -> dict[str, float]:
        return {**self.inner.report(client), "byzantine/malicious": 1.0}

    def upload(self, client: Client) -> Weights:
        honest = self.inner.upload(client)
        if not honest or type(self.attack).poison is Attack.poison:
            return honest
        base = client.received
        delta = {k: np.asarray(v, np.float64) - (np.asarray(base[k], np.float64) if k in base else 0.0)
                 for k, v in honest.items()}
        bad = self.attack.poison(delta, self.rng)
        return {k: ((np.asarray(base[k], np.float64) if k in base else 0.0) + bad[k]).astype(np.asarray(v).dtype)
                for k, v in honest.items()}

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        return self.inner.personal_model(client, weights)

    def materialize(self, client: Client) -> None:
        self.inner.materialize(client)


class MaliciousClient(Client):
    """A client whose every installed method hook is wrapped by its attack (see :func:`make_malicious`)."""

    attack: Attack
    attack_rng: np.random.Generator

    def use(self, hook: ClientHook) -> None:
        if not isinstance(hook, AttackHook):
            hook = AttackHook(hook, self.attack, self.attack_rng)
        super().use(hook)


def make_malicious(client: Client, attack: str | Attack, rng: np.random.Generator | None = None) -> Client:
    """Make ``client`` malicious in place (and return it): the hook the round loop installs for any method is
    wrapped by ``attack`` (the client becomes a :class:`MaliciousClient`). ``rng`` drives the attack's
    randomness; by default a generator seeded from one draw of the client's own ``rng``."""
    attack = make_attack(attack)
    if not isinstance(client, Client):
        raise FederationError(f"make_malicious needs a federation Client; got {type(client).__name__}")
    client.__class__ = MaliciousClient
    client.attack = attack
    client.attack_rng = rng if rng is not None else np.random.default_rng(int(client.rng.integers(2**63 - 1)))
    client.use(client.hook)
    return client


# --- the strategy wrapper ----------------------------------------------------------------------------------


class ByzantineStrategy(Strategy):
    """Any strategy, with the clients in ``malicious`` running ``attack``: the server half is the inner
    strategy's (delegated), the hooks it hands out wrap the inner hooks and turn malicious exactly the
    clients whose id is in ``malicious`` (decided at ``attach``, where the hook meets its client). The
    attack randomness of client ``c`` is ``SeedSequence(seed)``'s child ``c``: identical for every method."""

    def __init__(self, inner: Strategy, attack: str | Attack, malicious: Sequence[int],
                 seed: int | np.random.SeedSequence) -> None:
        self.inner = inner
        self.attack = make_attack(attack)
        self.malicious = tuple(sorted({int(c) for c in malicious}))
        self._seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.name = inner.name
        self.summary = inner.summary
        self.accepts_stale = inner.accepts_stale

    @property
    def agent_overrides(self) -> Mapping[str, object]:  # type: ignore[override]
        return self.inner.agent_overrides

    def __getattr__(self, item: str) -> Any:  # a method's own attributes (e.g. fedpg-br's filter record)
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    def reseed(self, seed: np.random.SeedSequence) -> None:
        self.inner.reseed(seed)

    def client_hook(self) -> ClientHook:
        return _SelectiveAttackHook(self.inner.client_hook(), self)

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        return self.inner.configure_train(rnd, weights, clients)

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        return self.inner.aggregate_train(rnd, weights, results)

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        return self.inner.configure_evaluate(rnd, weights, clients)

    def params(self) -> dict[str, float | int | str]:
        return {**self.inner.params(), "attack": self.attack.spec(),
                "malicious_clients": ",".join(map(str, self.malicious))}

    def attack_rng(self, client_id: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._seed.entropy,
                                                            spawn_key=(*self._seed.spawn_key, int(client_id))))


class _SelectiveAttackHook(AttackHook):
    """An :class:`AttackHook` that becomes the plain inner hook for an honest client."""

    def __init__(self, inner: ClientHook, owner: ByzantineStrategy) -> None:
        super().__init__(inner, owner.attack, None)  # the client's generator is set at attach
        self.owner = owner
        self.active = False

    def attach(self, client: Client) -> None:
        self.active = client.client_id in self.owner.malicious
        if not self.active:
            self.inner.attach(client)
            return
        self.rng = self.owner.attack_rng(client.client_id)
        super().attach(client)

    def report(self, client: Client) -> dict[str, float]:
        return super().report(client) if self.active else self.inner.report(client)

    def upload(self, client: Client) -> Weights:
        return super().upload(client) if self.active else self.inner.upload(client)


def with_attack(strategy: Strategy, attack: str | Attack | None, malicious: Sequence[int],
                seed: int | np.random.SeedSequence) -> Strategy:
    """``strategy`` with ``malicious`` clients running ``attack`` (unchanged for no attack or no attackers)."""
    if attack is None or attack == "none" or not malicious:
        return strategy
    return ByzantineStrategy(strategy, attack, malicious, seed)


__all__ = ["ATTACKS", "Attack", "AttackHook", "ByzantineStrategy", "MaliciousClient", "choose_malicious",
           "make_attack", "make_malicious", "with_attack"]
