"""Grouped federation by environment type: a grouping policy, a learning policy and a federation policy.

Reference: C. Nadiger, A. Kumar, S. Abdelhak, "Federated Reinforcement Learning for Fast Personalization",
IEEE AIKE 2019: an architecture for federated RL made of a *grouping policy* (which users federate together,
by the type of their environment), a *learning policy* (a personalised DQN per user/group) and a *federation
policy* (how the group's models are merged); on a non-player character of Atari Pong, scaled across 3-5 users,
federation cut the median personalisation time by ~17 %. Only the abstract was reachable here; the three
policies are built as follows and the paper's exact variant is not claimed:

* **Grouping policy** (server, from what clients observe, never from the hidden env parameters). In a probe
  round (the first, then every ``regroup_every`` rounds if > 0) each client spends ``probe_steps`` env steps
  (on top of the round's budget, counted in its samples) on a copy of its env with uniformly random actions
  and reports a *dynamics signature*: the least-squares one-step model [s' − s, r] ≈ [s, onehot(a)]·W (Box
  actions: [s, a, 1]) with the standard deviations of its inputs and outputs — model-based system
  identification (Ljung, "System Identification: Theory for the User", 1999, ch. 7, the linear least-squares
  predictor). The server scales each coefficient by the clients' mean input and output standard deviations
  (standardised regression coefficients with pooled scales: units drop out, genuine differences in dynamics
  stay) and clusters the clients with k-means (Lloyd 1982; k-means++ seeding, Arthur & Vassilvitskii 2007;
  10 restarts from the strategy's seeded rng) into ``num_groups`` groups.
* **Learning policy**: a model per group (a DQN in the paper; any agent whose parameters have a ``head``):
  the network body is one, the head (DQN's Q head, an actor-critic's actor and critic heads; ``head="auto"``:
  every parameter with a path component ``head``) is the group's own.
* **Federation policy**: the body is averaged across all clients (federation across groups, the shared
  layers), each head only within its group (sample-weighted FedAvg, McMahan et al. 2017). Before the first
  grouping every client trains the global model (plain FedAvg). On regrouping, a group's head restarts from
  the mean of its new members' uploads.

How this differs from IFCA (``federation/strategies/ifca.py``, Ghosh et al. 2020): (1) IFCA re-chooses every
round, on every client, the cluster model with the best objective on the client's data (here the greedy
return), so the assignment follows the models' current performance; grouping assigns once (or every
``regroup_every`` rounds) from environment signatures, independent of any model. Where one cluster model is
better on every client (e.g. early in training), IFCA sends everyone to it while grouping still separates
the env types. (2) IFCA's K models share nothing; grouping shares the body across groups. (3) IFCA broadcasts
all K models to each client and spends evaluation episodes choosing; grouping sends one model and spends
``probe_steps`` extra env steps per probe round (counted in the client's samples).

Records: ``grouping/group/<client>`` (client −1) after each grouping; clients report ``grouping/sig/<i>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitIns, FitResult

MAX_EPISODE_PROBE = 100_000  # hard cap on a probe's steps whatever probe_steps says


# ----- the grouping policy: signatures and k-means ------------------------------------------------------------
def dynamics_signature(env: gym.Env, steps: int, rng: np.random.Generator) -> np.ndarray:
    """The dynamics signature (module docstring) of ``env`` from ``steps`` uniformly random actions, episodes
    reset with seeds from ``rng``: ``[p, q, W (p×q), sd(φ) (p), sd(y) (q)]`` for the least-squares fit y ≈ φ W of
    y = [s' − s, r] on φ = [s, onehot(a)] (Discrete actions) or [s, a, 1] (Box actions). Needs a Box
    observation space and a Discrete or Box action space."""
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise FederationError(f"grouping needs a Box observation space for its dynamics signature; got {obs_space}")
    if not isinstance(act_space, gym.spaces.Discrete | gym.spaces.Box):
        raise FederationError(f"grouping needs a Discrete or Box action space; got {act_space}")
    steps = int(min(max(steps, 2), MAX_EPISODE_PROBE))
    obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    phi, y = [], []
    for _ in range(steps):
        o = np.asarray(obs, np.float64).ravel()
        if isinstance(act_space, gym.spaces.Discrete):
            j = int(rng.integers(act_space.n))
            act: Any = int(act_space.start + j)
            enc = np.eye(int(act_space.n))[j]
        else:
            act = rng.uniform(act_space.low, act_space.high).astype(act_space.dtype)
            enc = np.append(np.asarray(act, np.float64).ravel(), 1.0)
        nxt, rew, term, trunc, _ = env.step(act)
        phi.append(np.concatenate([o, enc]))
        y.append(np.append(np.asarray(nxt, np.float64).ravel() - o, float(rew)))
        obs = nxt
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    X, Y = np.array(phi), np.array(y)
    W, *_ = np.linalg.lstsq(X, Y, rcond=None)
    p, q = W.shape
    return np.concatenate([[p, q], W.ravel(), X.std(axis=0), Y.std(axis=0)])


def signature_features(signatures: np.ndarray) -> np.ndarray:
    """Rows of raw signatures → comparable features: each coefficient W_jk scaled by the clients' mean sd of its
    input φ_j over their mean sd of its output y_k (standardised regression coefficients with pooled scales, so
    a genuine difference in dynamics is kept while units drop out; a constant input or output gives 0)."""
    p, q = int(signatures[0, 0]), int(signatures[0, 1])
    if signatures.shape[1] != 2 + p * q + p + q:
        raise FederationError(f"grouping: a signature of length {signatures.shape[1]} does not match p={p}, q={q}")
    W = signatures[:, 2:2 + p * q].reshape(-1, p, q)
    sd_in = signatures[:, 2 + p * q:2 + p * q + p].mean(axis=0)
    sd_out = signatures[:, 2 + p * q + p:].mean(axis=0)
    scale = np.divide(sd_in[:, None], sd_out[None, :], out=np.zeros((p, q)), where=sd_out[None, :] > 1e-12)
    return (W * scale[None]).reshape(len(signatures), -1)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, *, n_init: int = 10, iters: int = 100) -> np.ndarray:
    """Labels of k-means on the rows of ``x`` (Lloyd's algorithm from k-means++ seeds, best of ``n_init`` by
    inertia). Labels are renumbered in order of first appearance, so equal partitions get equal labels."""
    n = len(x)
    k = min(k, n)
    best, best_inertia = np.zeros(n, dtype=int), np.inf
    for _ in range(n_init):
        centers = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.array(centers)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centers.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
        c = np.array(centers)
        labels = np.zeros(n, dtype=int)
        for _ in range(iters):
            labels_new = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
            c = np.array([x[labels_new == j].mean(axis=0) if np.any(labels_new == j) else c[j] for j in range(k)])
            if np.array_equal(labels_new, labels):
                break
            labels = labels_new
        labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels, inertia
    order = {int(g): i for i, g in enumerate(dict.fromkeys(best.tolist()))}
    return np.array([order[int(g)] for g in best])


# ----- the client half ---------------------------------------------------------------------------------------
class ProbeHook(ClientHook):
    """Client half: in a probe round, spend ``probe_steps`` extra env steps on the dynamics signature (a fresh
    copy of the env, so training's episode is untouched), train the round's budget, and report the signature."""

    def __init__(self, probe_steps: int, head: tuple[str, ...]) -> None:  # head = () : "auto"
        self.probe_steps = probe_steps
        self.head = head
        self.probe = False
        self.signature: np.ndarray | None = None

    def attach(self, client: Client) -> None:
        keys = client.agent.get_shared_weights()
        if not any(is_head(k, self.head) for k in keys):
            name = ",".join(self.head) or "auto"
            raise FederationError(f"grouping: no shared parameter is a head for head={name!r}; "
                                  f"allowed: this agent's head prefixes "
                                  f"{','.join(getattr(client.agent, 'head_prefixes', ())) or '(none)'}")

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        self.probe = bool(ins.config.get("probe", 0))
        return dict(ins.weights), {}

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        if not self.probe:
            return super().learn(client, steps)
        n = self.probe_steps
        env = client.new_env()
        try:
            self.signature = dynamics_signature(env, n, client.rng)
        finally:
            env.close()
        used, stats = super().learn(client, steps)  # the probe's steps come on top, counted in the samples
        return used + n, {**stats, "grouping/probe_steps": float(n)}

    def report(self, client: Client) -> dict[str, float]:
        if not self.probe or self.signature is None:
            return {}
        return {f"grouping/sig/{i}": float(v) for i, v in enumerate(self.signature)}


# ----- the server half ---------------------------------------------------------------------------------------
def is_head(key: str, prefixes: tuple[str, ...]) -> bool:
    """A head parameter: named by one of ``prefixes``, or (``()``, "auto") with a path component ``head``
    (DQN's ``head.weight``, ``head.value.weight``; actor-critic ``actor.head.weight``, ``critic.head.bias``)."""
    return key.startswith(prefixes) if prefixes else "head" in key.split(".")


def signature_of(metrics: dict[str, float] | object) -> np.ndarray | None:
    """The signature a client reported with its upload (``grouping/sig/<i>``), or None."""
    vals = {int(k.rsplit("/", 1)[1]): float(v) for k, v in dict(metrics).items()  # type: ignore[call-overload]
            if k.startswith("grouping/sig/")}
    return np.array([vals[i] for i in range(len(vals))]) if vals else None


class Grouping(Strategy):
    name = "grouping"
    summary = ("groups clients by env type from dynamics signatures; body federated across groups, head within "
               "(Nadiger et al. 2019)")

    def __init__(self, *, num_groups: int = 2, regroup_every: int = 0, probe_steps: int = 200,
                 head: str = "auto") -> None:
        self.num_groups = int(check_number("num_groups", num_groups, 1, 1000, integer=True))
        self.regroup_every = int(check_number("regroup_every", regroup_every, 0, 100_000, integer=True))
        self.probe_steps = int(check_number("probe_steps", probe_steps, 2, MAX_EPISODE_PROBE, integer=True))
        prefixes = tuple(p for p in str(head).split(",") if p)
        if not prefixes:
            raise FederationError(f"head={head!r} must be 'auto' or the head's parameter prefix(es), e.g. 'head.'")
        self.head = () if prefixes == ("auto",) else prefixes
        self.groups: dict[int, int] = {}
        self.signatures: dict[int, np.ndarray] = {}
        self.heads: dict[int, Weights] = {}
        self._grouped_at: int | None = None

    def check_federation(self, n_clients: int, per_round: int) -> None:
        if self.num_groups > n_clients:
            raise FederationError(f"grouping: num_groups={self.num_groups} is more than the {n_clients} clients; "
                                  f"allowed: num_groups in [1, {n_clients}]")

    def client_hook(self) -> ClientHook:
        return ProbeHook(self.probe_steps, self.head)

    def is_head(self, key: str) -> bool:
        return is_head(key, self.head)

    def probe_round(self, rnd: int) -> bool:
        return rnd == 1 or (self.regroup_every > 0 and (rnd - 1) % self.regroup_every == 0)

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        models = self.configure_evaluate(rnd, weights, clients)
        probe = int(self.probe_round(rnd))
        return [FitIns(c, models[c], {"round": rnd, "probe": probe}) for c in clients]

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        """The global body with the client's group head (the global model before the first grouping)."""
        out = {}
        for c in clients:
            head = self.heads.get(self.groups.get(c, -1))
            out[c] = {**weights, **head} if head is not None else weights
        return out

    def regroup(self) -> None:
        """k-means on the z-scored signatures of every client that reported one."""
        if self.rng is None:
            raise FederationError("grouping: call reseed(SeedSequence) before the first round")
        ids = sorted(self.signatures)
        sizes = {len(self.signatures[c]) for c in ids}
        if len(sizes) != 1:
            raise FederationError(f"grouping: clients reported signatures of different sizes {sorted(sizes)}; "
                                  f"allowed: one env family (same spaces) per federation")
        labels = kmeans(signature_features(np.stack([self.signatures[c] for c in ids])), self.num_groups, self.rng)
        self.groups = {c: int(g) for c, g in zip(ids, labels, strict=True)}

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        fresh = False
        for r in results:
            sig = signature_of(r.metrics)
            if sig is not None:
                self.signatures[r.client_id] = sig
                fresh = True
        new = weighted_average([r.weights for r in results], [r.num_samples for r in results])
        if fresh:
            self.regroup()
            self.heads = {}
            self._grouped_at = rnd
        heads_new: dict[int, Weights] = {}
        for g in sorted(set(self.groups.values())):
            members = [r for r in results if self.groups.get(r.client_id) == g]
            if members:  # federated within the group
                heads_new[g] = weighted_average([{k: v for k, v in r.weights.items() if self.is_head(k)}
                                                 for r in members], [r.num_samples for r in members])
            elif g in self.heads:
                heads_new[g] = self.heads[g]
            else:  # a new group none of whose members trained this round: the global head
                heads_new[g] = {k: v for k, v in new.items() if self.is_head(k)}
        self.heads = heads_new
        # the run's "global" model: the body federated across every client, the mean head (for newcomers)
        return {k: new.get(k, v) for k, v in weights.items()}

    def round_metrics(self, rnd: int) -> dict[str, float]:
        if self._grouped_at != rnd:
            return {}
        return {f"grouping/group/{c}": float(g) for c, g in sorted(self.groups.items())}

    def params(self) -> dict[str, float | int | str]:
        return {"num_groups": self.num_groups, "regroup_every": self.regroup_every, "probe_steps": self.probe_steps,
                "head": ",".join(self.head) or "auto"}
