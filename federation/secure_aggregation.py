"""Secure aggregation: the server learns only the (weighted) sum of the clients' uploads, never one upload.

Protocol: Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal, Seth 2017, "Practical Secure
Aggregation for Privacy-Preserving Machine Learning", ACM CCS: the protocol in its honest-but-curious form,
with double masking. Per round, for the sampled clients U1:

0. AdvertiseKeys: client u makes two fresh X25519 key pairs, (c_u^PK, c_u^SK) for the encrypted channel
   to every other client and (s_u^PK, s_u^SK) for mask agreement, and sends both public keys.
1. ShareKeys: u draws a self-mask seed b_u (32 random bytes), splits s_u^SK and b_u with Shamir t-of-n
   secret sharing over GF(p), p = 2^521 − 1 (a Mersenne prime above every 256-bit secret), at the points
   x = v + 1 of every v ∈ U1, and sends v its two shares encrypted and authenticated with
   ChaCha20-Poly1305 under HKDF(X25519(c_u^SK, c_v^PK)). The server only routes the ciphertexts. U2 = the
   clients that sent shares.
2. MaskedInputCollection: u uploads y_u = x_u + PRG(b_u) + Σ_{v∈U2, v≠u} ±PRG(s_{u,v})  (mod 2^64), where
   s_{u,v} = X25519(s_u^SK, s_v^PK) = X25519(s_v^SK, s_u^PK), the sign is + for u < v and − for u > v so
   each pair's masks cancel in the sum, and x_u is u's fixed-point encoded input (below). U3 = uploaders.
3. Unmasking: every survivor v ∈ U3 (the server needs ≥ t of them) returns, for each u ∈ U2, its share of
   b_u if u ∈ U3 and its share of s_u^SK if u dropped, never both for one u (the client refuses a request
   that asks for both). The server rebuilds b_u (removes PRG(b_u) of each survivor) and s_u^SK of each
   dropped u (recomputes and removes the masks s_{u,v} it left on each survivor's upload), leaving
   Σ_{u∈U3} x_u exactly (every operation is exact mod 2^64).

Choices, stated:
- PRG: the ChaCha20 keystream (``cryptography``), keyed by HKDF-SHA256 (RFC 5869) of the agreed secret with
  the round number and a purpose label in ``info``, read as little-endian uint64 words mod 2^64.
- Shamir variant: SecAgg's own — t-of-|U1| sharing of each client's mask-agreement secret key s_u^SK (and of
  its self-mask seed b_u), not of the masks themselves, so recovering a dropped client costs one secret per
  dropped client regardless of the model size. Default t = max(2, ⌊θ·|U1|⌋ + 1) with θ = 0.5 (a strict
  majority of the round's clients). Fewer than t survivors → the round cannot be unmasked and is skipped
  (the global model is kept; the abort is recorded in :attr:`SecureAggregation.ledger`).
- Double masking is kept (the self-mask b_u). Without it a server that wrongly declares u dropped, gets
  s_u^SK rebuilt and then receives u's late upload could unmask u's single update (the paper's argument
  for double masking). The cost: the server rebuilds one b_u per survivor and expands it once more.
- Threat model: honest-but-curious server and clients; the server colluding with fewer than t clients
  learns nothing beyond the sum. The paper's active-adversary additions (signed public keys under a PKI,
  the ConsistencyCheck round, a larger t) are left out: a server that forges public keys or tells clients
  different survivor sets is not defended against. Keys are
  fresh per round and come from the OS CSPRNG, never from the experiment seed (a seed the server knows would
  let it recompute every mask); results stay reproducible because the masks cancel exactly.

Fixed-point encoding (integers mod 2^k, k = 64, numpy's wrapping uint64 arithmetic): client u uploads
x_u = [round(w_u · n_u · 2^f), n_u], i.e. its flattened shared weights pre-multiplied by its weight n_u (its
sample count; 1 for uniform-weight strategies) with f = ``frac_bits`` (default 32) fractional bits, and n_u
itself as the last integer — the "[w, w·params]" layout of Flower's ``SecAggPlusWorkflow``, here without
clipping and with a 2^64 modulus so no tuning of a clipping range is needed. The server learns Σ n_u w_u
and Σ n_u only: the per-client sample counts are protected inside the masked vector (though the round loop
still sends the plain ``FitResult.num_samples`` and training metrics beside it; see below). Limits:
- overflow: each client refuses (one-line error) an input with any |n_u w_u| · 2^f ≥ (2^63 − 1) / |U2|, so the
  signed sum of |U2| inputs never wraps; with f = 32 and 10 clients that is |n_u w_u| < 2.1·10^8;
- precision: rounding is ≤ 2^−(f+1) per entry of n_u w_u, so the aggregate Σ n_u w_u / Σ n_u is within
  |U3| · 2^−(f+1) / Σ n_u ≤ 2^−(f+1) ≈ 1.2·10^−10 (f = 32; 24 bits missed 10^−6 relative on updates of
  scale 10^−3 from clients with few samples) of the float64 plain one — below float32 resolution;
- cost: 8 bytes per entry instead of float32's 4, so the upload doubles, plus about 230 bytes per peer in
  each direction per client and round (public keys, two encrypted 66-byte Shamir shares, one share back in
  unmasking) and one PRG expansion per peer.

Integration: :class:`SecureAggregation` (or :func:`wrap_secure`) wraps any sum-based strategy (its
aggregate is a function of Σ n_u w_u and Σ n_u): the wrapper runs AdvertiseKeys/ShareKeys in
``configure_train``, its client half masks the upload, and ``aggregate_train`` unmasks the sum and hands the
inner strategy ONE synthetic result carrying the weighted mean — for FedAvg-family and server-optimiser
strategies exactly what they compute from the individual results. FedBuff runs in synchronous rounds only
(every staleness weight is 1, so its mean is unweighted: clients use weight 1). EnvEmbedding's network is
FedAvg and runs; its table of client embeddings (for initialising newcomers) is fed from the individual
results and stays empty under secure aggregation. Strategies that need individual updates (median, trimmed
mean, Krum, similarity, IFCA, central, local) are refused with one line; :func:`secure_strategy` is what a
run uses (``local`` passes through: nothing leaves its clients). Lossy upload compression cannot be combined
(it would compress masked words); such an upload is refused at aggregation.
The in-process round loop has no channel for the extra protocol messages, so the server half calls methods
on the client halves that stand for them; their bytes are reported by each client as ``secagg/bytes_up`` and
``secagg/bytes_down`` (the masked upload itself — 8 bytes per entry plus 8 — is what the loop counts in
``comm/bytes_up``). Not modelled: the protocol's extra round trips in the simulated round time. Not
protected: the round loop's plain ``num_samples`` and training metrics, which travel next to the masked
upload (hiding them needs a change in the round loop).
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agents.base import Agent, Weights
from federation.client import Client, ClientHook
from federation.strategies.apfl import APFL
from federation.strategies.base import Strategy, check_number
from federation.strategies.cfrl import CFRL
from federation.strategies.ditto import Ditto
from federation.strategies.env_embedding import EnvEmbedding
from federation.strategies.fedavg import FedAvg
from federation.strategies.fedbuff import FedBuff
from federation.strategies.fedopt import FedAdagrad, FedAdam, FedAvgM, FedYogi
from federation.strategies.fedper import FedPer, FedRep
from federation.strategies.fedprox import FedProx
from federation.strategies.finetune import Finetune
from federation.strategies.ftrl import FTRL
from federation.strategies.local import Local
from federation.types import FederationError, FitIns, FitResult

#: the upload's single key: the flattened, fixed-point encoded, masked vector (uint64)
MASKED_KEY = "secagg/masked"
MOD_BITS = 64
PRIME = 2**521 - 1  # Mersenne prime M521: the Shamir field, above every 256-bit secret
SHARE_BYTES = 66  # one GF(PRIME) element
_ID_BYTES = 4
_KEY_BYTES = 32
_INT63 = 2**63 - 1

# ----- building blocks -------------------------------------------------------------------------------------


def kdf(secret: bytes, rnd: int, label: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``secret`` bound to the round and a purpose label → a 32-byte key."""
    info = b"frl-secagg/" + label.encode() + b"/" + int(rnd).to_bytes(8, "big")
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=info).derive(secret)


def prg(key: bytes, n: int) -> np.ndarray:
    """``n`` pseudo-random uint64 words: the ChaCha20 keystream under a 32-byte key (zero nonce; every key
    expands one stream only, since it is derived per secret, round and purpose)."""
    enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return np.frombuffer(enc.update(bytes(8 * n)), dtype="<u8").astype(np.uint64, copy=False)


def agree(private_raw: bytes, public_raw: bytes) -> bytes:
    """X25519 key agreement (RFC 7748) from raw 32-byte keys."""
    return X25519PrivateKey.from_private_bytes(private_raw).exchange(X25519PublicKey.from_public_bytes(public_raw))


def shamir_split(secret: bytes, points: Sequence[int], threshold: int) -> dict[int, int]:
    """Shamir (1979) t-of-n sharing of a ≤ 64-byte secret over GF(PRIME): f(0) = secret, t − 1 random
    coefficients; the share for point x (≥ 1) is f(x)."""
    if not 1 <= threshold <= len(points) or len(set(points)) != len(points) or min(points) < 1:
        raise FederationError(f"shamir: threshold {threshold} needs that many distinct points >= 1; "
                              f"got {list(points)}")
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    out = {}
    for x in points:
        y = 0
        for c in reversed(coeffs):  # Horner
            y = (y * x + c) % PRIME
        out[x] = y
    return out


def shamir_combine(shares: Mapping[int, int], nbytes: int = _KEY_BYTES) -> bytes:
    """Lagrange interpolation at 0 from ``{x: f(x)}`` (exactly t shares or more; all are used)."""
    xs = list(shares)
    secret = 0
    for i in xs:
        num, den = 1, 1
        for j in xs:
            if j != i:
                num = num * j % PRIME
                den = den * (j - i) % PRIME
        secret = (secret + shares[i] * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * nbytes):
        raise FederationError("shamir: the shares do not reconstruct a secret of the expected size")
    return secret.to_bytes(nbytes, "big")


def encode_fixed(values: np.ndarray, weight: int, frac_bits: int, bound: float) -> np.ndarray:
    """[round(values · weight · 2^f) mod 2^64 …, weight] as uint64 (two's complement); refuses non-finite
    input and any entry with |values · weight · 2^f| ≥ ``bound`` (the per-client overflow limit)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise FederationError("secure aggregation: the update contains NaN or inf; it cannot be encoded")
    scaled = x * (float(weight) * 2.0 ** frac_bits)
    peak = float(np.max(np.abs(scaled))) if scaled.size else 0.0
    if peak >= bound:
        raise FederationError(f"secure aggregation: |weight·update| = {peak / 2.0 ** frac_bits:.3g} overflows "
                              f"the fixed-point range; allowed: < {bound / 2.0 ** frac_bits:.3g} "
                              f"(lower frac_bits)")
    out = np.empty(x.size + 1, dtype=np.uint64)
    out[:-1] = np.rint(scaled).astype(np.int64).view(np.uint64)
    out[-1] = np.uint64(weight)
    return out


def decode_fixed(total: np.ndarray, frac_bits: int) -> tuple[np.ndarray, int]:
    """The inverse for a sum: (Σ n_u w_u as float64, Σ n_u)."""
    return total[:-1].view(np.int64).astype(np.float64) / 2.0 ** frac_bits, int(total[-1])


def threshold_for(n: int, theta: float) -> int:
    """t = max(2, ⌊θ·n⌋ + 1): with θ = 0.5 a strict majority of the round's clients."""
    return max(2, math.floor(theta * n) + 1)


def _share_plain(u: int, v: int, s_share: int, b_share: int) -> bytes:
    return (u.to_bytes(_ID_BYTES, "big") + v.to_bytes(_ID_BYTES, "big")
            + s_share.to_bytes(SHARE_BYTES, "big") + b_share.to_bytes(SHARE_BYTES, "big"))


def _nonce(u: int, v: int) -> bytes:
    """Sender and receiver: the one channel key of a pair encrypts one message per direction."""
    return u.to_bytes(6, "big") + v.to_bytes(6, "big")


# ----- the client's side ----------------------------------------------------------------------------------


@dataclass
class _ClientRound:
    rnd: int
    c_sk: bytes
    s_sk: bytes
    b: bytes = b""
    roster: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)  # v → (c_pk, s_pk)
    inbox: dict[int, bytes] = field(default_factory=dict)  # u → ciphertext of u's shares for me
    own: tuple[int, int] = (0, 0)  # my shares of my own s_sk and b
    threshold: int = 2
    members: tuple[int, ...] = ()  # U2
    uploaded: bool = False


class SecAggParty:
    """One client's half of the protocol; its secrets never leave it except as encrypted Shamir shares.
    Keys are stored as raw bytes so the object deep-copies and pickles."""

    def __init__(self, party_id: int) -> None:
        if not isinstance(party_id, (int, np.integer)) or party_id < 0:
            raise FederationError(f"secure aggregation: party id {party_id!r} must be an integer >= 0")
        self.id = int(party_id)
        self.state: _ClientRound | None = None
        self.bytes_up = 0
        self.bytes_down = 0

    def _round(self, rnd: int) -> _ClientRound:
        if self.state is None or self.state.rnd != rnd:
            raise FederationError(f"secure aggregation: client {self.id} has no key agreement for round {rnd}")
        return self.state

    def advertise(self, rnd: int) -> tuple[bytes, bytes]:
        """Round 0: fresh key pairs; returns (c_pk, s_pk)."""
        c, s = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self.state = _ClientRound(rnd, c.private_bytes_raw(), s.private_bytes_raw())
        self.bytes_up, self.bytes_down = 2 * _KEY_BYTES, 0
        return c.public_key().public_bytes_raw(), s.public_key().public_bytes_raw()

    def share_keys(self, rnd: int, roster: Mapping[int, tuple[bytes, bytes]], threshold: int) -> dict[int, bytes]:
        """Round 1: given every client's public keys, Shamir-share s_sk and a fresh b; one ciphertext per peer."""
        st = self._round(rnd)
        if self.id not in roster or not 2 <= threshold <= len(roster):
            raise FederationError(f"secure aggregation: client {self.id} refuses roster {sorted(roster)} "
                                  f"with threshold {threshold}; allowed: 2 <= t <= clients, itself included")
        st.roster, st.threshold = dict(roster), int(threshold)
        self.bytes_down += len(roster) * (_ID_BYTES + 2 * _KEY_BYTES)
        st.b = os.urandom(_KEY_BYTES)
        points = [v + 1 for v in sorted(roster)]
        s_sh = shamir_split(st.s_sk, points, threshold)
        b_sh = shamir_split(st.b, points, threshold)
        st.own = (s_sh[self.id + 1], b_sh[self.id + 1])
        out = {}
        for v, (c_pk, _) in roster.items():
            if v == self.id:
                continue
            aead = ChaCha20Poly1305(kdf(agree(st.c_sk, c_pk), rnd, "share"))
            out[v] = aead.encrypt(_nonce(self.id, v), _share_plain(self.id, v, s_sh[v + 1], b_sh[v + 1]),
                                  int(rnd).to_bytes(8, "big"))
        self.bytes_up += sum(_ID_BYTES + len(ct) for ct in out.values())
        return out

    def receive_shares(self, rnd: int, inbox: Mapping[int, bytes]) -> None:
        """The ciphertexts addressed to this client; their senders plus itself are U2."""
        st = self._round(rnd)
        st.inbox = dict(inbox)
        st.members = tuple(sorted({*inbox, self.id}))
        self.bytes_down += sum(_ID_BYTES + len(ct) for ct in inbox.values())

    def mask(self, rnd: int, encoded: np.ndarray) -> np.ndarray:
        """Round 2: y = x + PRG(b) + Σ_{v<…} ±PRG(s_{u,v}) mod 2^64 over U2."""
        st = self._round(rnd)
        if len(st.members) < st.threshold:
            raise FederationError(f"secure aggregation: client {self.id} sees {len(st.members)} clients in "
                                  f"round {rnd}, fewer than the threshold {st.threshold}")
        y = np.array(encoded, dtype=np.uint64, copy=True)
        n = y.size
        y += prg(kdf(st.b, rnd, "self"), n)
        for v in st.members:
            if v == self.id:
                continue
            p = prg(kdf(agree(st.s_sk, st.roster[v][1]), rnd, "mask"), n)
            if self.id < v:
                y += p
            else:
                y -= p
        st.uploaded = True
        return y

    def unmask_size(self) -> tuple[int, int]:
        """(bytes up, bytes down) of the unmasking round: one share per member of U2, the survivor list."""
        st = self.state
        m = len(st.members) if st else 0
        return m * (_ID_BYTES + SHARE_BYTES), m * _ID_BYTES

    def unmask(self, rnd: int, survivors: Sequence[int], dropped: Sequence[int]) -> dict[int, int]:
        """Round 3: my share of b_u for each survivor u and of s_u^SK for each dropped u; never both for one u.
        The round's secrets are erased afterwards."""
        st = self._round(rnd)
        surv, drop = set(survivors), set(dropped)
        if surv & drop or not (surv | drop) <= set(st.members) or self.id not in surv or not st.uploaded:
            raise FederationError(f"secure aggregation: client {self.id} refuses to unmask round {rnd}: "
                                  f"survivors {sorted(surv)} and dropped {sorted(drop)} must split the round's "
                                  f"clients {list(st.members)} and include itself after its upload")
        out: dict[int, int] = {}
        for u in sorted(surv | drop):
            if u == self.id:
                s_share, b_share = st.own
            else:
                aead = ChaCha20Poly1305(kdf(agree(st.c_sk, st.roster[u][0]), rnd, "share"))
                try:
                    plain = aead.decrypt(_nonce(u, self.id), st.inbox[u], int(rnd).to_bytes(8, "big"))
                except InvalidTag:
                    raise FederationError(f"secure aggregation: client {self.id} got a forged share from "
                                          f"client {u}") from None
                if plain[:2 * _ID_BYTES] != u.to_bytes(_ID_BYTES, "big") + self.id.to_bytes(_ID_BYTES, "big"):
                    raise FederationError(f"secure aggregation: client {self.id} got a misaddressed share")
                body = plain[2 * _ID_BYTES:]
                s_share = int.from_bytes(body[:SHARE_BYTES], "big")
                b_share = int.from_bytes(body[SHARE_BYTES:], "big")
            out[u] = b_share if u in surv else s_share
        self.state = None
        return out


# ----- the server's side ----------------------------------------------------------------------------------


@dataclass
class _ServerRound:
    rnd: int
    threshold: int
    roster: dict[int, tuple[bytes, bytes]]
    members: tuple[int, ...]  # U2


class SecAggServer:
    """The server's half: routes keys and shares, sums masked vectors, removes what is left of the masks."""

    def __init__(self, theta: float = 0.5) -> None:
        self.theta = check_number("secagg threshold", theta, 0.0, 1.0, lo_open=True)
        self.state: _ServerRound | None = None

    def setup(self, rnd: int, parties: Mapping[int, SecAggParty]) -> _ServerRound:
        """AdvertiseKeys and ShareKeys for this round's clients (U1 = U2: nobody drops before uploading
        in the simulation's key agreement)."""
        if len(parties) < 2:
            raise FederationError(f"secure aggregation needs at least 2 clients per round; got {len(parties)} "
                                  f"(raise the client fraction or the number of clients)")
        roster = {u: p.advertise(rnd) for u, p in parties.items()}
        t = threshold_for(len(roster), self.theta)
        outbox = {u: p.share_keys(rnd, roster, t) for u, p in parties.items()}
        for v, p in parties.items():
            p.receive_shares(rnd, {u: cts[v] for u, cts in outbox.items() if u != v})
        self.state = _ServerRound(rnd, t, roster, tuple(sorted(outbox)))
        return self.state

    def aggregate(self, rnd: int, masked: Mapping[int, np.ndarray],
                  parties: Mapping[int, SecAggParty]) -> np.ndarray | None:
        """Σ of the survivors' encoded inputs (uint64), or None when fewer than t survived (round aborted)."""
        st = self.state
        if st is None or st.rnd != rnd:
            raise FederationError(f"secure aggregation: no key agreement for round {rnd}")
        self.state = None
        survivors = sorted(masked)
        if not set(survivors) <= set(st.members):
            raise FederationError(f"secure aggregation: uploads from {sorted(set(survivors) - set(st.members))} "
                                  f"who took no part in round {rnd}'s key agreement")
        if len(survivors) < st.threshold:
            return None
        dropped = [u for u in st.members if u not in masked]
        n = next(iter(masked.values())).size
        total = np.zeros(n, dtype=np.uint64)
        for u in survivors:
            total += masked[u]
        replies = {v: parties[v].unmask(rnd, survivors, dropped) for v in survivors}
        helpers = survivors[:st.threshold]  # any t of them suffice
        for u in survivors:  # remove every survivor's self-mask
            b = shamir_combine({v + 1: replies[v][u] for v in helpers})
            total -= prg(kdf(b, rnd, "self"), n)
        for u in dropped:  # remove the pairwise masks survivors share with each dropped client
            s_sk = shamir_combine({v + 1: replies[v][u] for v in helpers})
            for v in survivors:
                p = prg(kdf(agree(s_sk, st.roster[v][1]), rnd, "mask"), n)
                if v < u:  # v added +PRG(s_{v,u})
                    total -= p
                else:
                    total += p
        return total


# ----- the strategy wrapper -------------------------------------------------------------------------------

#: exact classes whose aggregate is a function of Σ n_u w_u and Σ n_u, and the weight each client applies
SUM_BASED: dict[type[Strategy], str] = {
    FedAvg: "samples", FedProx: "samples", FedAvgM: "samples", FedAdam: "samples", FedYogi: "samples",
    FedAdagrad: "samples", FedPer: "samples", FedRep: "samples", Ditto: "samples", APFL: "samples",
    Finetune: "samples", EnvEmbedding: "samples", CFRL: "samples", FTRL: "samples",
    FedBuff: "uniform",  # synchronous rounds only: all staleness weights are 1, the mean is unweighted
}
#: why the others cannot run on a masked sum
NEEDS_INDIVIDUAL = {
    "median": "takes a coordinate-wise median of the individual updates",
    "trimmed-mean": "sorts each coordinate's individual values to trim the extremes",
    "krum": "scores each individual update by its distances to the others",
    "multi-krum": "scores each individual update by its distances to the others",
    "similarity": "weighs every client's upload by its similarity to each other upload",
    "ifca": "averages each cluster's uploads separately, by the cluster each client picked",
    "central": "passes one client's model on instead of summing",
    "local": "shares nothing, so there is nothing to aggregate",
    "fedpg-br": "filters the individual updates by their distances to each other",
    "femrl": "distils each client's own dynamics ensemble into the global one, so it needs every ensemble",
    "over-the-air": "passes each individual update through its own fading channel before the air sums them",
    "grouping": "averages each group's uploads separately, by the environment type each client shows",
    "ucb": "lets only the clients it selects by their reported returns upload, so unselected clients' masks "
           "would not cancel",
}


def weighting_of(strategy: Strategy) -> str:
    """'samples' or 'uniform' for a sum-based strategy; a FederationError (one line, the reason) otherwise.
    A strategy outside this module may opt in with a ``secure_aggregation_weighting`` attribute."""
    declared = getattr(strategy, "secure_aggregation_weighting", None)
    if declared in ("samples", "uniform"):
        return str(declared)
    if type(strategy) in SUM_BASED:
        return SUM_BASED[type(strategy)]
    allowed = ", ".join(sorted(c.name for c in SUM_BASED))
    why = NEEDS_INDIVIDUAL.get(strategy.name, "is not known to aggregate by a weighted sum of the uploads")
    raise FederationError(f"secure aggregation cannot wrap strategy {strategy.name!r}: it {why}, but the server "
                          f"sees only the masked sum; allowed: {allowed}")


def flatten(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """The shared weights in sorted key order as one float64 vector (server and clients agree on it)."""
    keys = sorted(weights)
    if not keys:
        return np.zeros(0)
    return np.concatenate([np.asarray(weights[k], dtype=np.float64).ravel() for k in keys])


def unflatten(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> Weights:
    """The inverse of :func:`flatten`, each key in the dtype and shape of ``like``."""
    out: Weights = {}
    i = 0
    for k in sorted(like):
        ref = np.asarray(like[k])
        out[k] = vector[i:i + ref.size].reshape(ref.shape).astype(ref.dtype)
        i += ref.size
    return out


class SecureUploadHook(ClientHook):
    """The client half: the inner method's hook does everything; the upload is encoded and masked."""

    def __init__(self, inner: ClientHook, owner: SecureAggregation) -> None:
        self.inner = inner
        self.owner = owner
        self.party: SecAggParty | None = None
        self._used = 0

    def __getattr__(self, name: str) -> Any:  # the inner hook's state (Ditto's personal agent, APFL's alpha)
        if name in ("inner", "owner", "party", "_used") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def attach(self, client: Client) -> None:
        self.inner.attach(client)
        self.party = SecAggParty(client.client_id)
        self.owner._register(client.client_id, self)

    def receive(self, client: Client, ins: FitIns) -> tuple[Weights, dict[str, float]]:
        return self.inner.receive(client, ins)

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        used, stats = self.inner.learn(client, steps)
        self._used = int(used)
        return used, stats

    def report(self, client: Client) -> dict[str, float]:
        out = dict(self.inner.report(client))
        assert self.party is not None
        up, down = self.party.unmask_size()
        out["secagg/bytes_up"] = float(self.party.bytes_up + up)
        out["secagg/bytes_down"] = float(self.party.bytes_down + down)
        return out

    def upload(self, client: Client) -> Weights:
        plain = self.inner.upload(client)
        assert self.party is not None and self.party.state is not None, "no key agreement this round"
        weight = self._used if self.owner.weighting == "samples" else 1
        if weight < 1:
            raise FederationError(f"secure aggregation: client {client.client_id} used {weight} samples; "
                                  f"must be >= 1")
        bound = _INT63 / max(2, len(self.party.state.members))
        try:
            encoded = encode_fixed(flatten(plain), weight, self.owner.frac_bits, bound)
        except FederationError as e:
            raise FederationError(f"client {client.client_id}: {e}") from None
        return {MASKED_KEY: self.party.mask(self.party.state.rnd, encoded)}

    def personal_model(self, client: Client, weights: Weights | None) -> Agent | None:
        return self.inner.personal_model(client, weights)

    def materialize(self, client: Client) -> None:
        self.inner.materialize(client)


class SecureAggregation(Strategy):
    """Any sum-based strategy, aggregated under secure aggregation (see the module docstring).

    ``frac_bits``: fixed-point fractional bits f in [1, 48] (precision 2^−(f+1), range 2^(63−f) / clients);
    ``threshold``: θ in (0, 1], Shamir threshold t = max(2, ⌊θ·clients⌋ + 1) per round."""

    summary = "pairwise-masked secure aggregation (Bonawitz et al. 2017) around a sum-based strategy"
    accepts_stale = False  # a masked sum cannot mix versions (FedBuff runs in synchronous rounds only)
    screen_uploads = False  # uploads are masked uint64 vectors; aggregate_train checks their form itself

    def __init__(self, inner: Strategy, *, frac_bits: int = 32, threshold: float = 0.5) -> None:
        if isinstance(inner, SecureAggregation):
            raise FederationError(f"strategy {inner.name!r} is already under secure aggregation")
        self.weighting = weighting_of(inner)
        self.inner = inner
        self.name = inner.name
        self.frac_bits = int(check_number("frac_bits", frac_bits, 1, 48, integer=True))
        self.server = SecAggServer(threshold)
        self.hooks: dict[int, SecureUploadHook] = {}
        #: per round: clients, threshold, survivors, dropped, aborted (for the run's record)
        self.ledger: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:  # method state others read (EnvEmbedding's embeddings, …)
        if name in ("inner", "server", "hooks", "weighting", "ledger", "frac_bits") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def agent_overrides(self) -> Mapping[str, object]:  # type: ignore[override]
        return self.inner.agent_overrides

    def reseed(self, seed: np.random.SeedSequence) -> None:
        self.inner.reseed(seed)
        self.rng = self.inner.rng

    def _register(self, client_id: int, hook: SecureUploadHook) -> None:
        self.hooks[client_id] = hook

    def client_hook(self) -> ClientHook:
        return SecureUploadHook(self.inner.client_hook(), self)

    def configure_evaluate(self, rnd: int, weights: Weights, clients: Sequence[int]) -> dict[int, Weights]:
        return self.inner.configure_evaluate(rnd, weights, clients)

    def configure_train(self, rnd: int, weights: Weights, clients: Sequence[int]) -> list[FitIns]:
        out = self.inner.configure_train(rnd, weights, clients)
        missing = [c for c in clients if c not in self.hooks or self.hooks[c].party is None]
        if missing:
            raise FederationError(f"secure aggregation: clients {missing} have no secure client half; run the "
                                  f"wrapped strategy through run_federation, which installs client_hook()")
        self.server.setup(rnd, {c: self.hooks[c].party for c in clients})  # type: ignore[misc]
        return out

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        if not results:
            raise FederationError("no client results to aggregate (every sampled client dropped out)")
        size = sum(np.asarray(v).size for v in weights.values()) + 1
        masked: dict[int, np.ndarray] = {}
        for r in results:
            y = r.weights.get(MASKED_KEY)
            if set(r.weights) != {MASKED_KEY} or y is None or y.dtype != np.uint64 or y.shape != (size,):
                raise FederationError(f"client {r.client_id} upload is not a masked vector of {size} uint64 "
                                      f"(secure aggregation needs lossless uploads: compression 'none')")
            if r.client_id in masked:
                raise FederationError(f"client {r.client_id} uploaded twice in round {rnd}")
            masked[r.client_id] = y
        st = self.server.state
        members = list(st.members) if st is not None and st.rnd == rnd else []
        parties = {c: h.party for c, h in self.hooks.items() if h.party is not None}
        total = self.server.aggregate(rnd, masked, parties)
        entry = {"round": rnd, "clients": len(members), "threshold": st.threshold if st else 0,
                 "survivors": len(masked), "dropped": len(members) - len(masked), "aborted": total is None}
        self.ledger.append(entry)
        if total is None:  # fewer than t survivors: nothing can be unmasked, keep the model
            return weights
        weighted_sum, count = decode_fixed(total, self.frac_bits)
        mean = unflatten(weighted_sum / count, weights)
        synthetic = FitResult(client_id=min(masked), weights=mean, num_samples=count, metrics={})
        return self.inner.aggregate_train(rnd, weights, [synthetic])

    def round_metrics(self, rnd: int) -> dict[str, float]:
        out = dict(self.inner.round_metrics(rnd))
        for e in self.ledger:
            if e["round"] == rnd:
                out.update({"secagg/survivors": float(e["survivors"]), "secagg/aborted": float(e["aborted"])})
        return out

    def params(self) -> dict[str, float | int | str]:
        return {**self.inner.params(), "secure_aggregation": 1, "secagg_frac_bits": self.frac_bits,
                "secagg_threshold": self.server.theta}


def wrap_secure(strategy: Strategy, **kw: Any) -> SecureAggregation:
    """``SecureAggregation(strategy, **kw)``: refuses (one line) a strategy that needs individual updates."""
    return SecureAggregation(strategy, **kw)


def secure_strategy(strategy: Strategy, **kw: Any) -> Strategy:
    """What a run under ``--secure-aggregation`` uses for each method: ``local`` as it is (nothing leaves a
    client, so there is nothing to protect and it stays the reference), every sum-based strategy wrapped,
    the rest refused with one line (call it for every method before any training)."""
    if type(strategy) is Local:
        return strategy
    return SecureAggregation(strategy, **kw)


__all__ = ["MASKED_KEY", "NEEDS_INDIVIDUAL", "SUM_BASED", "SecAggParty", "SecAggServer", "SecureAggregation",
           "SecureUploadHook", "decode_fixed", "encode_fixed", "secure_strategy", "shamir_combine", "shamir_split",
           "weighting_of", "wrap_secure"]
