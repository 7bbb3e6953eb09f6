"""Client-level differential privacy for the federated round loop: DP-FedAvg as a wrapper around any strategy
whose aggregate is a (weighted) mean of client models.

Method: McMahan, Ramage, Talwar, Zhang 2018, "Learning Differentially Private Recurrent Language Models"
(ICLR), Alg. 1 (DP-FedAvg) and §2:

- each sampled client k's update is its change from the global model, Δ_k = w_k − w (shared parameters only:
  personal parameters never leave the client, so they are neither uploaded nor privatised);
- **flat clipping** (§2, "ClipFn"): π(Δ, C) = Δ · min(1, C / ‖Δ‖₂), the L2 norm over all shared parameters at
  once, so every client moves the sum by at most C;
- **fixed-denominator estimator** f̃_f (§2): Δ̃ = (Σ_{k∈sample} w_k π(Δ_k, C) + N(0, (σC)² I)) / (qW). We use
  uniform weights w_k = 1 (the paper's capped weights w_k = min(n_k/ŵ, 1) with every cap reached), so W = N
  clients and qW = m, the number of clients *sampled* this round — fixed in advance by the sampling fraction,
  never the number that answered (a dropped client contributes zero; the denominator does not shrink). The
  paper's other estimator f̃_c (denominator max(qW_min, Σ_{k∈sample} w_k)) is not used: its sensitivity bound
  is 2C/(qW_min) against C/(qW) for f̃_f. Sample counts are ignored on purpose: they are self-reported and
  data-dependent, and the sensitivity bound needs weights fixed in advance.
  In this suite every client trains ``steps_per_round`` steps, so the unweighted and weighted means coincide;
- the noise N(0, (σC)²) per coordinate is added to the *sum* (σ = ``noise_multiplier``, the paper's z), i.e.
  std σC/m on the mean update; the global model becomes w + Δ̃ (the inner strategy then does with this
  privatised mean what it does with a mean: FedAvg takes it, FedAvgM/FedAdam treat Δ̃ as their pseudo-gradient
  — post-processing, which costs no privacy).

Accounting: the (ε, δ) spent is computed by opacus's RDP accountant (``opacus.accountants.RDPAccountant``:
Rényi DP of the sampled Gaussian mechanism, Mironov 2017 "Rényi Differential Privacy", and Mironov, Talwar,
Zhang 2019 "Rényi Differential Privacy of the Sampled Gaussian Mechanism"), one ``step`` per released global
model with noise multiplier σ and sample rate q = m / N. Chosen over Google's ``dp-accounting`` because it is
the lighter install here: opacus adds itself and ``opt-einsum`` (torch, numpy and scipy it needs are present),
while dp-accounting adds absl-py, the compiled dm-tree and pins attrs<24 (a downgrade of the installed attrs).
Caveats, stated rather than hidden: the RDP bound assumes Poisson sampling (each client independently with
probability q, as in McMahan et al.'s Alg. 1), while the round loop samples exactly m = round(q·N) clients
without replacement; ε is the Poisson-sampling value at q = m/N, the usual approximation. With
``fraction = 1`` (q = 1) no amplification by sampling is claimed and the bound is that of the plain Gaussian
mechanism composed over rounds. σ = 0 gives ε = ∞ (no privacy).

Trust model: clipping and noising happen on the server (Flower's "server-side fixed clipping"), so the
guarantee protects clients against whoever sees the released global models (other clients, the public, a
later reader of the checkpoint), not against the aggregating server, which sees the raw updates. With
``clip_on_client=True`` each client also clips its own upload (Alg. 1 clips inside UserUpdate), which a
composition with secure aggregation needs, since a server that sees only the sum cannot clip. Client
training statistics that the round loop records (``train/*``) are simulation bookkeeping and not privatised;
``dp/clipped_fraction`` is a diagnostic for tuning C computed from raw updates (not covered either).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.base import Agent, Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, validate_results
from federation.strategies.fedavg import FedAvg
from federation.strategies.fedopt import _ServerOptimizer
from federation.strategies.local import Local
from federation.types import FederationError, FitIns, FitResult

ACCOUNTANT = "opacus.accountants.RDPAccountant"

#: Strategy.aggregate_train implementations that are a function of the (sample-weighted) mean client model:
#: FedAvg and its subclasses that keep its server half (fedprox, fedper, fedrep, ditto, finetune, apfl) and the
#: server optimisers (fedavgm, fedadam, fedyogi, fedadagrad), which step on mean − w.
_MEAN_AGGREGATES = (FedAvg.aggregate_train, _ServerOptimizer.aggregate_train)

#: why the other registered strategies cannot run under DP-FedAvg (one line each)
_REFUSALS = {
    "median": "a robust rule, not a mean: the noise is calibrated to the sensitivity of a sum",
    "trimmed-mean": "a robust rule, not a mean: the noise is calibrated to the sensitivity of a sum",
    "krum": "it selects one client's update unaveraged, so no noise on a sum can hide that client",
    "multi-krum": "a data-dependent selection before the mean: the noise is calibrated to a plain sum",
    "local": "it shares nothing, so there is nothing to privatise",
    "central": "it passes one client's model on unaveraged, so there is no sum to noise",
    "ifca": "its per-cluster means follow a cluster id each client reports in plaintext",
    "similarity": "it releases per-client similarity-weighted mixtures, not one noised mean",
    "env-embedding": "clients report their environment embedding in plaintext metrics",
    "fedbuff": "its staleness-weighted asynchronous buffer does not fit the per-round accountant",
}


# --- parameters -----------------------------------------------------------------------------------------


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FederationError(f"dp: {name}={value!r} is not a number")
    return float(value)  # type: ignore[arg-type]


def check_dp_params(clip: object, noise_multiplier: object, delta: object) -> tuple[float, float, float]:
    """(C, σ, δ) as floats, else a one-line FederationError naming the bad value and the allowed range."""
    c = _number("clip", clip)
    if not (math.isfinite(c) and c > 0):
        raise FederationError(f"dp: clip={clip!r} is out of range; allowed: finite number > 0 (L2 norm bound C)")
    s = _number("noise_multiplier", noise_multiplier)
    if not (math.isfinite(s) and s >= 0):
        raise FederationError(f"dp: noise_multiplier={noise_multiplier!r} is out of range; allowed: finite "
                              "number >= 0 (sigma; 0 means no privacy)")
    d = _number("delta", delta)
    if not 0.0 < d < 1.0:
        raise FederationError(f"dp: delta={delta!r} is out of range; allowed: (0, 1), typically < 1/clients")
    return c, s, d


# --- pure math ------------------------------------------------------------------------------------------


def l2_norm(update: Mapping[str, np.ndarray]) -> float:
    """‖Δ‖₂ over all keys at once (flat clipping, McMahan et al. 2018 §2), accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(np.asarray(v, dtype=np.float64)))) for v in update.values()))


def clip_update(update: Mapping[str, np.ndarray], clip: float) -> tuple[dict[str, np.ndarray], float]:
    """π(Δ, C) = Δ · min(1, C/‖Δ‖₂) in float64, and the original norm ‖Δ‖₂."""
    norm = l2_norm(update)
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    return {k: np.asarray(v, dtype=np.float64) * factor for k, v in update.items()}, norm


def noised_mean(deltas: Sequence[Mapping[str, np.ndarray]], template: Mapping[str, np.ndarray], *, clip: float,
                noise_multiplier: float, denominator: int, rng: np.random.Generator
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """f̃_f with unit weights: (Σ_k π(Δ_k, C) + N(0, (σC)² I)) / m, per key of ``template`` (float64).

    Returns the privatised mean update and statistics (the fraction of clients whose update was clipped)."""
    if denominator < max(1, len(deltas)):
        raise FederationError(f"dp: denominator {denominator} is smaller than the {len(deltas)} updates; "
                              "it must be the number of clients sampled this round")
    total = {k: np.zeros(np.shape(v), dtype=np.float64) for k, v in template.items()}
    clipped = 0
    for d in deltas:
        c, norm = clip_update(d, clip)
        clipped += norm > clip
        for k in total:
            total[k] += c[k]
    std = noise_multiplier * clip
    out = {}
    for k, t in total.items():  # keys in the template's order, so the noise stream is reproducible
        if std > 0:
            t = t + rng.normal(0.0, std, size=t.shape)
        out[k] = t / denominator
    return out, {"dp/clipped_fraction": clipped / len(deltas) if deltas else 0.0}


# --- accounting (opacus) --------------------------------------------------------------------------------


def _rdp_accountant() -> Any:
    """A fresh opacus RDP accountant; opacus is imported only when DP is used (it loads torch.distributed)."""
    from opacus.accountants import RDPAccountant

    return RDPAccountant()


def epsilon(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """ε after ``rounds`` releases of the sampled Gaussian mechanism (σ, q) at δ, by opacus's RDP accountant."""
    acc = _rdp_accountant()
    for _ in range(rounds):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    return float(acc.get_epsilon(delta=delta))


# --- the strategy wrapper -------------------------------------------------------------------------------


def refusal(inner: Strategy) -> str | None:
    """Why ``inner`` cannot run under DP-FedAvg (one line), or None when its aggregate is a mean."""
    if isinstance(inner, DPFedAvg):
        return "it is already wrapped in DP-FedAvg"
    if getattr(type(inner), "aggregate_train", None) in _MEAN_AGGREGATES:
        return None
    return _REFUSALS.get(inner.name, "its aggregate is not a (weighted) mean of client models")


def dp_compatible() -> list[str]:
    """Names of the registered strategies DP-FedAvg can wrap."""
    from federation.strategies import STRATEGIES

    return [n for n, cls in STRATEGIES.items() if getattr(cls, "aggregate_train", None) in _MEAN_AGGREGATES]


class ClippingHook(ClientHook):
    """The inner method's client half, with its upload clipped on the client: w' = w₀ + π(w − w₀, C), where w₀
    is what the client loaded this round (McMahan et al. 2018, Alg. 1 clips inside UserUpdate). Needed when
    the server cannot see single updates (secure aggregation); the server clips again regardless, which
    leaves an honest client's clipped update unchanged and bounds one that skipped clipping."""

    def __init__(self, inner: ClientHook, clip: float) -> None:
        self.inner = inner
        self.clip = clip

    def attach(self, client: Client) -> None:
        self.inner.attach(client)

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        return self.inner.receive(client, ins)

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        return self.inner.learn(client, steps)

    def report(self, client: Client) -> dict[str, float]:
        return self.inner.report(client)

    def upload(self, client: Client) -> Weights:
        w = self.inner.upload(client)
        base = client.received
        if not base or set(base) != set(w):
            return w
        delta = {k: np.asarray(w[k], dtype=np.float64) - np.asarray(base[k], dtype=np.float64) for k in w}
        clipped, _ = clip_update(delta, self.clip)
        return {k: (np.asarray(base[k], dtype=np.float64) + clipped[k]).astype(np.asarray(w[k]).dtype) for k in w}

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        return self.inner.personal_model(client, weights)

    def materialize(self, client: Client) -> None:
        self.inner.materialize(client)


class DPFedAvg(Strategy):
    """Wrap a mean-aggregating strategy in client-level DP (McMahan et al. 2018, Alg. 1, estimator f̃_f).

    Everything but the aggregate is the inner strategy's (client half, agent overrides, evaluation models,
    randomness); ``aggregate_train`` clips each result's change from the global model to L2 norm ``clip``,
    sums, adds N(0, (σ·clip)²) per coordinate, divides by the number of clients sampled this round and hands
    the inner strategy that one privatised model. ``num_clients`` (N, for the sample rate q = m/N) defaults to
    the number of client hooks the round loop asks for before the first round (one per client).
    ``clip_on_client`` also clips each upload on the client (:class:`ClippingHook`), as Alg. 1 does; the
    server clips in any case, so the guarantee never rests on the clients.
    """

    accepts_stale = False  # the accountant composes synchronous rounds of uniform sampling

    def __init__(self, inner: Strategy, *, clip: float, noise_multiplier: float, delta: float = 1e-5,
                 num_clients: int | None = None, clip_on_client: bool = False) -> None:
        self.clip, self.noise_multiplier, self.delta = check_dp_params(clip, noise_multiplier, delta)
        self.clip_on_client = bool(clip_on_client)
        if not isinstance(inner, Strategy):
            raise FederationError(f"dp: inner={inner!r} is not a Strategy")
        why = refusal(inner)
        if why is not None:
            raise FederationError(f"strategy {inner.name!r} cannot run under differential privacy: {why}; "
                                  f"allowed: {', '.join(dp_compatible())}")
        if num_clients is not None and (isinstance(num_clients, bool) or not isinstance(num_clients, int)
                                        or num_clients < 1):
            raise FederationError(f"dp: num_clients={num_clients!r} is out of range; allowed: integer >= 1")
        self.inner = inner
        self.num_clients = num_clients
        self.name = f"dp-{inner.name}"
        self.summary = f"{inner.summary}, under client-level DP (McMahan et al. 2018)"
        self._reset()

    def _reset(self) -> None:
        self._hooks = 0
        self._sampled: dict[int, int] = {}
        self._metrics: dict[int, dict[str, float]] = {}
        self._accountant: Any = None
        self.releases = 0
        self.sample_rates: list[float] = []

    # --- delegation -------------------------------------------------------------------------------------
    @property
    def agent_overrides(self) -> Mapping[str, object]:  # type: ignore[override]
        return self.inner.agent_overrides

    def reseed(self, seed: np.random.SeedSequence) -> None:
        """The inner strategy gets this seed as if unwrapped; the noise draws from a child spawned from it."""
        self._reset()
        self._accountant = _rdp_accountant()  # made at the run's start, so a checkpoint can be restored into it
        self.inner.reseed(seed)
        self.rng = np.random.default_rng(seed.spawn(1)[0])

    def client_hook(self) -> ClientHook:
        self._hooks += 1
        hook = self.inner.client_hook()
        return ClippingHook(hook, self.clip) if self.clip_on_client else hook

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        self._sampled[rnd] = len(clients)
        return self.inner.configure_train(rnd, weights, clients)

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        return self.inner.configure_evaluate(rnd, weights, clients)

    def params(self) -> dict[str, float | int | str]:
        return {**self.inner.params(), "dp_clip": self.clip, "dp_noise_multiplier": self.noise_multiplier,
                "dp_delta": self.delta, "dp_clip_on_client": int(self.clip_on_client)}

    # --- the private aggregate --------------------------------------------------------------------------
    def population(self) -> int:
        """N: ``num_clients`` if given, else the number of client hooks handed out since the last reseed."""
        n = self.num_clients or self._hooks
        if n < 1:
            raise FederationError("dp: the population size is unknown; pass num_clients= to DPFedAvg")
        return n

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        bad = [k for k, v in weights.items() if not np.issubdtype(np.asarray(v).dtype, np.floating)]
        if bad:
            raise FederationError(f"dp: parameter {bad[0]!r} has dtype {np.asarray(weights[bad[0]]).dtype}; "
                                  "allowed: floating-point parameters only")
        n, m = self.population(), self._sampled.get(rnd, len(results))
        if not len(results) <= m <= n:
            raise FederationError(f"dp: {len(results)} results from {m} sampled of {n} clients; "
                                  "num_clients must be the federation's size")
        if self.rng is None:
            raise FederationError("dp: reseed() was not called before the first round")
        base = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        deltas = [{k: np.asarray(r.weights[k], dtype=np.float64) - base[k] for k in base} for r in results]
        mean, stats = noised_mean(deltas, base, clip=self.clip, noise_multiplier=self.noise_multiplier,
                                  denominator=m, rng=self.rng)
        private = {k: (base[k] + mean[k]).astype(np.asarray(weights[k]).dtype) for k in base}
        new = self.inner.aggregate_train(rnd, weights, [FitResult(client_id=results[0].client_id,
                                                                  weights=private, num_samples=1)])
        q = m / n
        if self._accountant is None:
            self._accountant = _rdp_accountant()
        self._accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=q)
        self.releases += 1
        self.sample_rates.append(q)
        eps = self.epsilon()
        self._metrics[rnd] = {"dp/epsilon": eps, "dp/delta": self.delta, "dp/sample_rate": q,
                              "dp/noise_std": self.noise_multiplier * self.clip / m, **stats}
        return new

    # --- what was spent ---------------------------------------------------------------------------------
    def epsilon(self) -> float:
        """ε spent so far at this wrapper's δ (opacus RDP accountant; 0 before any release, ∞ if σ = 0)."""
        if self._accountant is None or not self.releases:
            return 0.0
        return float(self._accountant.get_epsilon(delta=self.delta))

    def round_metrics(self, rnd: int) -> dict[str, float]:
        """Per-round records (client −1): ``dp/epsilon`` and ``dp/delta`` spent after round ``rnd`` (unchanged
        in a round that released no model), plus ``dp/sample_rate``, ``dp/noise_std`` (on the mean update)
        and ``dp/clipped_fraction`` in rounds that released one."""
        return self._metrics.get(rnd, {"dp/epsilon": self.epsilon(), "dp/delta": self.delta})

    def privacy_summary(self) -> dict[str, Any]:
        """Keys for summary.json: the final (ε, δ), the mechanism's parameters and the accountant."""
        rates = sorted(set(self.sample_rates))
        return {"dp_epsilon": self.epsilon(), "dp_delta": self.delta, "dp_clip": self.clip,
                "dp_noise_multiplier": self.noise_multiplier,
                "dp_sample_rate": rates[0] if len(rates) == 1 else (rates or None),
                "dp_rounds": self.releases, "dp_accountant": ACCOUNTANT}


def wrap_dp(strategy: Strategy, clip: float, noise_multiplier: float, delta: float = 1e-5,
            num_clients: int | None = None, clip_on_client: bool = False) -> DPFedAvg:
    """``DPFedAvg(strategy, ...)`` with positional DP parameters."""
    return DPFedAvg(strategy, clip=clip, noise_multiplier=noise_multiplier, delta=delta, num_clients=num_clients,
                    clip_on_client=clip_on_client)


def apply_dp(strategy: Strategy, clip: float, noise_multiplier: float, delta: float = 1e-5,
             num_clients: int | None = None) -> Strategy:
    """What an experiment runs when DP is on: ``strategy`` wrapped in DP-FedAvg, except ``local``, which
    releases no model (nothing leaves a client), so it runs unchanged and spends ε = 0. Every other strategy
    that cannot be wrapped is refused with one line (see :func:`refusal`)."""
    check_dp_params(clip, noise_multiplier, delta)
    if isinstance(strategy, Local):
        return strategy
    return wrap_dp(strategy, clip, noise_multiplier, delta, num_clients)


def dp_summary(strategy: Strategy) -> dict[str, Any]:
    """summary.json keys for a strategy run by :func:`apply_dp`: the wrapper's :meth:`DPFedAvg.privacy_summary`,
    or ε = 0 for a strategy that released nothing (``local``)."""
    if isinstance(strategy, DPFedAvg):
        return strategy.privacy_summary()
    return {"dp_epsilon": 0.0, "dp_rounds": 0, "dp_accountant": "none (no model released)"}


def dp_markdown(methods: Mapping[str, Mapping[str, Any]]) -> str:
    """A summary.md table of the privacy spent by every method whose summary has :func:`dp_summary` keys."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "∞" if math.isinf(v) else f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["### Differential privacy (client-level DP-FedAvg, McMahan et al. 2018)", "",
             "| method | ε | δ | σ (noise multiplier) | C (clip) | q (sample rate) | rounds released |",
             "|---|---|---|---|---|---|---|"]
    for name, m in methods.items():
        if "dp_epsilon" in m:
            lines.append("| " + " | ".join([name] + [fmt(m.get(k)) for k in (
                "dp_epsilon", "dp_delta", "dp_noise_multiplier", "dp_clip", "dp_sample_rate", "dp_rounds")]) + " |")
    lines += ["", f"ε by `{ACCOUNTANT}` (RDP of the sampled Gaussian mechanism; ∞: σ = 0, no privacy; local "
              "releases no model). The server clips and noises, so it sees raw updates: the guarantee covers the "
              "released global models."]
    return "\n".join(lines)


__all__ = ["ACCOUNTANT", "DPFedAvg", "apply_dp", "check_dp_params", "clip_update", "dp_compatible", "dp_markdown",
           "dp_summary", "epsilon", "l2_norm", "noised_mean", "refusal", "wrap_dp"]
