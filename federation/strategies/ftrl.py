"""FTRL, federated transfer RL (Liang, Liu, Chen, Liu, Yang, "Federated Transfer Reinforcement Learning for
Autonomous Driving", arXiv 1910.06001, 2019): agents driving in *different* environments (their simulated and
real RC cars) share one federated model, and each agent first maps its own observations into a common,
aligned space, so the knowledge the model holds means the same thing to every agent; the model weights are
averaged across agents (federated averaging) and every agent acts with the model learned by all
("online federated transfer").

Here (our reading, scaled to a generic method): the alignment is a personal, per-client affine map of the
observation, a ← clip((o − μ_k) / √(σ²_k + ε), −c, c), with μ_k, σ²_k the per-feature mean and variance of
client k's *own* first ``align_steps`` training observations (Chan et al. 1979 parallel moments,
``agents.normalization.RunningMeanStd``), then frozen, so the replay buffer sees one stable map. The paper's
alignment is hand-specified for its sensors (sim vs real distance ranges); a fitted first/second-moment
match is its data-driven stand-in (as personalised observation normalisation for federated RL, IJCNN 2025). The map
lives in the client's half (it wraps the client's training and evaluation envs); it is not a parameter of the
agent, so it never leaves the client. The policy network is shared whole and averaged by FedAvg
(McMahan et al. 2017, Alg. 1). A vehicle joining on an unseen road fits its own map the same way, from its
own observations while it drives with the federated model (no reward, no gradient step):
:func:`fit_alignment`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from agents.normalization import RunningMeanStd
from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg
from federation.types import FederationError


class ObservationAlignment:
    """Client k's personal alignment: per-feature moments of its first ``fit_steps`` observations, then frozen."""

    def __init__(self, shape: tuple[int, ...], fit_steps: int, clip: float = 5.0, eps: float = 1e-4) -> None:
        self.stats = RunningMeanStd(shape)
        self.fit_steps = int(fit_steps)
        self.clip = float(clip)
        self.eps = float(eps)
        self.seen = 0

    @property
    def frozen(self) -> bool:
        return self.seen >= self.fit_steps

    def observe(self, obs: np.ndarray) -> None:
        """Fold one observation into the moments while the alignment is still being fitted."""
        if not self.frozen:
            self.stats.update(np.asarray(obs, dtype=np.float64)[None])
            self.seen += 1

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.stats.normalize(obs, clip=self.clip, eps=self.eps)


class AlignedObservation(gym.ObservationWrapper):
    """An env seen through a client's alignment; ``fit`` envs (the training env) also fit it."""

    def __init__(self, env: gym.Env, alignment: ObservationAlignment, *, fit: bool) -> None:
        super().__init__(env)
        self.alignment = alignment
        self.fit = fit
        c = alignment.clip
        self.observation_space = gym.spaces.Box(-c, c, env.observation_space.shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.fit:
            self.alignment.observe(observation)
        return self.alignment(observation)


def _box_shape(env: Any) -> tuple[int, ...]:
    space = getattr(env, "observation_space", None)
    if callable(space):  # a PettingZoo env: observation_space(agent) is a method
        name = getattr(env, "metadata", {}).get("name", type(env).__name__)
        raise FederationError(f"ftrl aligns a single-agent env's observations; {name!r} is a multi-agent "
                              "(PettingZoo) env; allowed: a Gymnasium env with a 1-D Box observation space")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise FederationError(f"ftrl aligns 1-D Box observations; got observation space {space!r}")
    return tuple(space.shape)


class AlignmentHook(ClientHook):
    """Client half: the client's envs are seen through its own alignment (fitted on its training env); the
    shared network is trained and uploaded as in FedAvg. Nothing of the alignment is uploaded."""

    def __init__(self, align_steps: int, clip: float) -> None:
        self.align_steps = align_steps
        self.clip = clip
        self.alignment: ObservationAlignment | None = None

    def attach(self, client: Client) -> None:
        if self.alignment is not None:
            return
        self.alignment = ObservationAlignment(_box_shape(client.env), self.align_steps, self.clip)
        client.env = AlignedObservation(client.env, self.alignment, fit=True)
        client.eval_env = AlignedObservation(client.eval_env, self.alignment, fit=False)

    def report(self, client: Client) -> dict[str, float]:
        return {"ftrl/alignment_fitted": float(self.alignment is not None and self.alignment.frozen)}


def fit_alignment(env: gym.Env, policy: Callable[[np.ndarray], Any], steps: int, seed: int,
                  clip: float = 5.0) -> ObservationAlignment:
    """A new vehicle's alignment, fitted on ``steps`` of its own observations while it drives ``env`` with
    ``policy`` (which acts on aligned observations: the federated model) - online, no reward, no learning.
    Episodes are seeded from ``seed``; each is capped at the env's limit or 10 000 steps."""
    if steps < 1:
        raise FederationError(f"steps={steps!r} is out of range; allowed: integer >= 1")
    alignment = ObservationAlignment(_box_shape(env), steps, clip)
    aligned = AlignedObservation(env, alignment, fit=True)
    seeds = np.random.SeedSequence(seed)
    while not alignment.frozen:
        obs, _ = aligned.reset(seed=int(seeds.spawn(1)[0].generate_state(1)[0]))
        for _ in range(10_000):
            obs, _, term, trunc, _ = aligned.step(policy(obs))
            if term or trunc or alignment.frozen:
                break
    return alignment


class FTRL(FedAvg):
    """Server half: FedAvg of the shared network (the alignments stay on the clients)."""

    name = "ftrl"
    summary = "federated transfer RL: personal observation alignment + FedAvg'd shared model (Liang et al. 2019)"

    def __init__(self, *, align_steps: int = 500, clip: float = 5.0) -> None:
        self.align_steps = int(check_number("align_steps", align_steps, 1, 10**9, integer=True))
        self.clip = check_number("clip", clip, 0.0, 1e6, lo_open=True)

    def client_hook(self) -> ClientHook:
        return AlignmentHook(self.align_steps, self.clip)

    def params(self) -> dict[str, float | int | str]:
        return {"align_steps": self.align_steps, "clip": self.clip}
