"""Over-the-air ADMM: consensus ADMM whose uploads are summed by the wireless channel (A-RLADMM).

Reference: M. Krouka, A. Elgabli, C. B. Issaid, M. Bennis, "Communication-Efficient and Federated Multi-Agent
Reinforcement Learning", IEEE Trans. Cogn. Commun. Netw. 8(1), 311-320, 2022 (A-RLADMM). Their abstract: a
distributed RL algorithm "based on the alternating direction method of multipliers (ADMM) and over air
aggregation using analog transmission", in which the agents transmit every element of their updated models
over the same channel; it outperforms its digital counterpart (D-RLADMM) and the analog / digital versions of
vanilla federated RL (A-FRL, D-FRL). Only the abstract was reachable here, so the pieces are built from their
standard forms and the paper's exact variant is not claimed:

**ADMM (client and server halves).** Global consensus ADMM (Boyd, Parikh, Chu, Peleato, Eckstein 2011,
"Distributed Optimization and Statistical Learning via the ADMM", Found. Trends ML 3(1), §7.1, eq. 7.6) for
min Σ_i f_i(θ_i) s.t. θ_i = Θ, with f_i client i's RL loss, dual λ_i and penalty ρ::

    θ_i^{k+1} = argmin_θ f_i(θ) + λ_i^kᵀ(θ − Θ^k) + (ρ/2)||θ − Θ^k||²          (client, local training)
    Θ^{k+1}   = mean_i (θ_i^{k+1} + λ_i^k / ρ)                                      (server, over the air)
    λ_i^{k+1} = λ_i^k + ρ (θ_i^{k+1} − Θ^{k+1})                                     (client, on receiving Θ^{k+1})

The local objective equals f_i(θ) + (ρ/2)||θ − (Θ^k − λ_i^k/ρ)||² − ||λ_i^k||²/(2ρ), so the client trains with
the agent's proximal term (FedProx's machinery) at weight ρ, anchored at Θ^k − λ_i^k/ρ, warm-started from Θ^k
(the argmin is solved inexactly by the round's RL updates). The server's mean runs over the clients it heard
this round (truncated clients are silent, like clients not sampled). ``admm=0`` is vanilla federated RL over
the same channel: clients train plainly and send θ_i, weighted by their sample counts (FedAvg, A-FRL / D-FRL).

**What is transmitted.** Client i sends x_i − Θ^k with x_i = θ_i + λ_i/ρ (ADMM) or θ_i (FedAvg); the server
adds Θ^k back. Noise-free this is identical to sending x_i; on a noisy channel it spends the power budget on
the update instead of the weights (Zhu et al. 2023, "Over-the-Air Federated Learning and Optimization",
arXiv:2310.10089, find that transmitting the local model itself can make AirFedAvg diverge).

**The analog channel** (``channel="analog"``), per round, block fading, one real amplitude per channel use,
``uses`` channel uses per model entry (each entry repeated and the repeats averaged). Truncated channel
inversion as in broadband analog aggregation (G. Zhu, Y. Wang, K. Huang, "Broadband Analog Aggregation for
Low-Latency Federated Edge Learning", IEEE TWC 19(1), 2020, eq. 7): client i's gain g_i = |h_i|² ~ Exp(1)
(Rayleigh), drawn from the strategy's seeded rng; a client with g_i < ``threshold`` stays silent; an active
client sends s_i = √η·w_i·u_i / h_i (u_i its vector, w_i its weight) so the channel delivers √η·w_i·u_i, phase
aligned. The common scaling η is the largest that keeps every active client within its energy budget
P·d·uses (power ``power`` per channel use): η = min_i P·d·g_i / (w_i²||u_i||²). The receiver sees
y = √η Σ_active w_i u_i + z, z ~ N(0, N0), N0 = P / 10^(snr_db/10), and estimates the sum as y / √η (noise
variance N0/(uses·η) per entry). The count of active clients and their weights are side information (a few
numbers on a control channel, like η).

**The digital baseline** (``channel="digital"``) at equal bandwidth and energy: the same d·uses channel uses
are split among the K clients of the round by TDMA (L = ⌊d·uses/K⌋ uses each), each client spends the same
energy budget P·d·uses in its slot (power P·d·uses/L ≈ K·P per use) and is decoded without error at the AWGN
capacity of its fading state, B_i = ⌊L·½·log2(1 + (P·d·uses/L)·g_i/N0)⌋ bits (Shannon; an upper bound for any
real code, so the baseline is favoured). With b = ⌊(B_i − 128)/d⌋ ≥ 8 bits per entry it sends every entry
with a b-bit affine quantiser (b ≤ 32; b = 8 is ``federation.compression``'s int8 scheme: zero point and scale
as two float64 = 128 bits); below that, k = ⌊(B_i − 128)/8⌋ entries chosen by a seed shared with the server
(random-mask sketched updates, Konečný et al. 2016, "Federated Learning: Strategies for Improving
Communication Efficiency", §3; no index bits) at 8 bits, the rest read as "no change"; k < 1 is an outage.
``channel="ideal"`` is the exact, noise-free sum (the reference both approach as SNR → ∞).

Each round's channel records (client −1): ``ota/active`` (clients heard), ``ota/mse`` (mean squared error of
the estimated update mean against the noise-free mean over every client that trained), ``ota/channel_mse``
(against the mean over the clients heard: channel noise or quantisation only), ``ota/energy_ratio`` (the
largest client energy / its budget, ≤ 1) and, for digital, ``ota/bits_per_entry`` (mean over clients).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agents.base import Weights
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, check_number, validate_results
from federation.types import FederationError, FitIns, FitResult

CHANNELS = ("analog", "digital", "ideal")
#: bits of side information per digital upload: the quantiser's zero point and scale as two float64
SIDE_BITS = 128


# ----- the client half: ADMM -------------------------------------------------------------------------------
def _floats(w: Weights) -> list[str]:
    return [k for k, v in w.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]


class ADMMHook(ClientHook):
    """Client half: keep the dual λ_i; on receiving Θ^{k+1} update it (λ ← λ + ρ(θ_i − Θ)), train with the
    proximal term ρ anchored at Θ − λ/ρ, send θ_i + λ/ρ. With ``admm`` off: plain local training."""

    def __init__(self, rho: float, admm: bool) -> None:
        self.rho = rho
        self.admm = admm
        self.lam: Weights = {}      # λ_i per float key (float64), empty before the first round
        self.theta: Weights = {}    # θ_i: the model this client last trained

    def attach(self, client: Client) -> None:
        if self.admm and not (hasattr(client.agent, "set_anchor") and hasattr(client.agent, "set_proximal")):
            raise FederationError(f"over-the-air with admm=1 needs an agent with a proximal term (set_anchor, "
                                  f"set_proximal); {type(client.agent).__name__} has none; allowed: admm=0")

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        glob = dict(ins.weights)
        if not self.admm:
            return glob, {}
        for k in _floats(glob):
            if k in self.theta:
                self.lam[k] = dual_update(self.lam.get(k, 0.0), self.theta[k], glob[k], self.rho)
        norm = math.sqrt(sum(float(np.sum(v ** 2)) for v in self.lam.values()))
        return glob, {"admm/dual_norm": norm}

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        if self.admm:
            anchor = {k: (np.asarray(v, np.float64) - self.lam[k] / self.rho).astype(np.float32)
                      for k, v in client.received.items() if k in self.lam}
            if anchor:
                client.agent.set_anchor(anchor)  # set_weights anchored the rest at Θ (λ = 0 there)
            client.agent.set_proximal(self.rho)
        return super().learn(client, steps)

    def upload(self, client: Client) -> Weights:
        theta = client.agent.get_shared_weights()
        self.theta = {k: np.asarray(theta[k], np.float64).copy() for k in _floats(theta)}
        if not self.admm:
            return theta
        return {k: (np.asarray(v, np.float64) + self.lam[k] / self.rho).astype(np.asarray(v).dtype)
                if k in self.lam else v for k, v in theta.items()}


def dual_update(lam: np.ndarray | float, theta: np.ndarray, consensus: np.ndarray, rho: float) -> np.ndarray:
    """λ + ρ(θ − Θ) (Boyd et al. 2011, eq. 7.6, third line), in float64."""
    return np.asarray(lam, np.float64) + rho * (np.asarray(theta, np.float64) - np.asarray(consensus, np.float64))


# ----- the channel -------------------------------------------------------------------------------------------
def snr_noise(power: float, snr_db: float) -> float:
    """N0 = P / 10^(snr_db/10)."""
    return power / 10.0 ** (snr_db / 10.0)


def analog_sum(u: np.ndarray, w: np.ndarray, gains: np.ndarray, rng: np.random.Generator, *, snr_db: float,
               power: float, threshold: float, uses: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over-the-air estimate of Σ_active w_i·u_i (module docstring): ``u`` (K, d), weights ``w`` (K,), channel
    gains |h_i|² ``gains`` (K,). Returns (estimated sum (d,), active mask (K,), each client's transmit energy
    (K,)). With no active client the estimate is zero (and the mask empty)."""
    k, d = u.shape
    active = gains >= threshold
    energy = np.zeros(k)
    if not active.any():
        return np.zeros(d), active, energy
    norms2 = (w ** 2) * np.einsum("ij,ij->i", u, u)
    budget = power * d                       # per repeat: P per channel use × d uses
    limits = [budget * gains[i] / norms2[i] for i in np.flatnonzero(active) if norms2[i] > 0]
    clean = (w[active, None] * u[active]).sum(axis=0)
    if not limits:                           # every active client sends zeros: nothing to scale, exact zero
        return clean, active, energy
    eta = min(limits)
    energy[active] = uses * eta * norms2[active] / gains[active]
    n0 = snr_noise(power, snr_db)
    noise = rng.standard_normal(d) * math.sqrt(n0 / uses)   # the average of `uses` repeats' noise
    return clean + noise / math.sqrt(eta), active, energy


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """b-bit affine quantisation and reconstruction, x̂ = lo + round((x − lo)/s)·s with s = (hi − lo)/(2^b − 1)
    (``federation.compression``'s int8 scheme for b = 8)."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return x.copy()
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / (2.0 ** bits - 1.0)
    if scale <= 0:
        return np.full_like(x, lo)
    return lo + np.clip(np.rint((x - lo) / scale), 0, 2.0 ** bits - 1.0) * scale


def digital_budget(d: int, k: int, gains: np.ndarray, *, snr_db: float, power: float, uses: int) -> np.ndarray:
    """Bits each of ``k`` TDMA clients delivers at capacity with the analog scheme's bandwidth (d·uses channel
    uses per round) and energy (P·d·uses per client) — module docstring."""
    slot = (d * uses) // k
    if slot < 1:
        return np.zeros(len(gains), dtype=np.int64)
    p_slot = power * d * uses / slot
    cap = 0.5 * np.log2(1.0 + p_slot * gains / snr_noise(power, snr_db))
    return np.floor(slot * cap).astype(np.int64)


def digital_decode(u: np.ndarray, bits: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray,
                                                                                             np.ndarray]:
    """What the server reconstructs of each row of ``u`` from ``bits`` bits: (estimates (K, d), decoded mask (K,),
    bits per entry actually used (K,)) — b-bit quantisation of every entry, or random-k at 8 bits, or outage."""
    k, d = u.shape
    out = np.zeros_like(u, dtype=np.float64)
    ok = np.zeros(k, dtype=bool)
    per_entry = np.zeros(k)
    for i in range(k):
        payload = int(bits[i]) - SIDE_BITS
        b = payload // d if d else 0
        if b >= 8:
            b = min(b, 32)
            out[i] = quantize(u[i], b)
            ok[i], per_entry[i] = True, b
        elif payload >= 8:
            keep = min(d, payload // 8)
            idx = rng.choice(d, size=keep, replace=False)   # the seed both ends share
            out[i, idx] = quantize(u[i, idx], 8)
            ok[i], per_entry[i] = True, 8.0 * keep / d
    return out, ok, per_entry


# ----- the server half -----------------------------------------------------------------------------------------
class OverTheAir(Strategy):
    """A-RLADMM (analog over-the-air consensus ADMM), its digital and noise-free versions, and FedAvg over the
    same channels (``admm=0``)."""

    name = "over-the-air"
    summary = ("ADMM with analog over-the-air aggregation over a fading noisy channel, or digital TDMA at equal "
               "resources (A-RLADMM, Krouka et al. 2022)")

    def __init__(self, *, channel: str = "analog", admm: int = 1, rho: float = 0.1, snr_db: float = 10.0,
                 power: float = 1.0, threshold: float = 0.1, uses: int = 1) -> None:
        if channel not in CHANNELS:
            raise FederationError(f"channel={channel!r} is not known; allowed: {', '.join(CHANNELS)}")
        self.channel = channel
        if admm not in (0, 1) or isinstance(admm, bool):
            raise FederationError(f"admm={admm!r} is not allowed; allowed: 0 (FedAvg) or 1 (ADMM)")
        self.admm = int(admm)
        self.rho = check_number("rho", rho, 0.0, 1e6, lo_open=True)
        self.snr_db = check_number("snr_db", snr_db, -60.0, 200.0)
        self.power = check_number("power", power, 0.0, 1e12, lo_open=True)
        self.threshold = check_number("threshold", threshold, 0.0, 100.0)
        self.uses = int(check_number("uses", uses, 1, 1000, integer=True))
        self._metrics: dict[int, dict[str, float]] = {}

    def client_hook(self) -> ClientHook:
        return ADMMHook(self.rho, bool(self.admm))

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        if self.rng is None:
            raise FederationError("over-the-air: call reseed(SeedSequence) before the first round")
        results = sorted(results, key=lambda r: r.client_id)  # channel draws in a fixed order
        keys = _floats(weights)
        base = np.concatenate([np.asarray(weights[k], np.float64).ravel() for k in keys]) if keys else np.zeros(0)
        u = np.stack([np.concatenate([np.asarray(r.weights[k], np.float64).ravel() for k in keys]) - base
                      if keys else np.zeros(0) for r in results])
        n = np.array([float(r.num_samples) for r in results])
        w = np.ones(len(results)) if self.admm else n / n.mean()   # ADMM's plain mean; FedAvg's n_k weights
        mean, heard, stats = self.transmit(u, w)
        exact_all = (w[:, None] * u).sum(axis=0) / w.sum()
        stats["ota/mse"] = float(np.mean((mean - exact_all) ** 2)) if heard.any() else float(np.mean(exact_all ** 2))
        self._metrics[rnd] = stats
        out = dict(weights)
        if not heard.any():          # nobody heard: the model stays
            return out
        new = base + mean
        i = 0
        for k in keys:
            ref = np.asarray(weights[k])
            out[k] = new[i:i + ref.size].reshape(ref.shape).astype(ref.dtype)
            i += ref.size
        for k in weights:            # non-float entries (counters): the exact weighted mean of those heard
            if k not in keys:
                heard_w = [(wi, r.weights[k]) for wi, r, h in zip(w, results, heard, strict=True) if h]
                acc = sum(wi * np.asarray(v, np.float64) for wi, v in heard_w) / sum(wi for wi, _ in heard_w)
                out[k] = np.asarray(acc).astype(np.asarray(weights[k]).dtype)
        return out

    def transmit(self, u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """One round of the channel: the server's estimate of the weighted mean of the rows of ``u`` over the
        clients it heard, which ones, and the round's channel records."""
        k, d = u.shape
        assert self.rng is not None
        gains = self.rng.exponential(1.0, size=k)           # |h_i|², Rayleigh fading
        stats: dict[str, float] = {}
        if self.channel == "ideal":
            heard = np.ones(k, dtype=bool)
            total = (w[:, None] * u).sum(axis=0)
            stats["ota/energy_ratio"] = 0.0
        elif self.channel == "analog":
            total, heard, energy = analog_sum(u, w, gains, self.rng, snr_db=self.snr_db, power=self.power,
                                              threshold=self.threshold, uses=self.uses)
            stats["ota/energy_ratio"] = float(energy.max() / (self.power * d * self.uses)) if d else 0.0
        else:
            bits = digital_budget(d, k, gains, snr_db=self.snr_db, power=self.power, uses=self.uses)
            decoded, heard, per_entry = digital_decode(u, bits, self.rng)
            total = (w[heard, None] * decoded[heard]).sum(axis=0)
            stats["ota/bits_per_entry"] = float(per_entry.mean())
            stats["ota/energy_ratio"] = 1.0  # every client spends its whole budget in its slot
        stats["ota/active"] = float(heard.sum())
        if not heard.any():
            stats["ota/channel_mse"] = 0.0
            return np.zeros(d), heard, stats
        mean = total / w[heard].sum()
        exact = (w[heard, None] * u[heard]).sum(axis=0) / w[heard].sum()
        stats["ota/channel_mse"] = float(np.mean((mean - exact) ** 2))
        return mean, heard, stats

    def round_metrics(self, rnd: int) -> dict[str, float]:
        return self._metrics.pop(rnd, {})

    def params(self) -> dict[str, float | int | str]:
        return {"channel": self.channel, "admm": self.admm, "rho": self.rho, "snr_db": self.snr_db,
                "power": self.power, "threshold": self.threshold, "uses": self.uses}
