"""A stacked update of N clients equals N separate updates of the suite's agent on the same batches.

This pins the batched-parameter layout (agents/batched.py): names, (out, in) weight layout, per-client
loss reduction, per-client gradient clipping, the FedProx term and elementwise Adam."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.base import AgentError
from agents.batched import BatchedDQN, BatchedPPO
from agents.dqn import DQNAgent
from agents.ppo import PPOAgent
from agents.rollout import RolloutBuffer

OBS = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
ACT = gym.spaces.Discrete(3)
N = 3


def _close(stacked: BatchedDQN | BatchedPPO, agents: list, atol: float = 2e-6) -> None:
    for i, agent in enumerate(agents):
        mine = stacked.client_weights(i)
        theirs = agent.get_weights()
        assert set(mine) == set(theirs)
        for k in theirs:
            np.testing.assert_allclose(mine[k], theirs[k], rtol=1e-5, atol=atol, err_msg=f"client {i} {k}")


# relu and tanh take the written-out backward (agents.batched.stacked_backward), elu autograd
@pytest.mark.parametrize("double_q,loss,activation", [(True, "huber", "relu"), (False, "mse", "tanh"),
                                                      (True, "mse", "relu"), (True, "huber", "elu")])
def test_stacked_dqn_update_equals_separate_updates(double_q: bool, loss: str, activation: str) -> None:
    kw = dict(hidden_sizes=(16, 16), batch_size=8, lr=1e-2, double_q=double_q, loss=loss, max_grad_norm=0.5,
              activation=activation)
    agents = [DQNAgent(OBS, ACT, seed=s, **kw) for s in (11, 12, 13)]  # three different initial models
    stacked = BatchedDQN(N, OBS, ACT, agents[0].config, agents[0].get_weights(), np.random.default_rng(0))
    assert stacked._manual_grad == (activation != "elu")
    per_client = [a.get_weights() for a in agents]
    stacked.set_weights({k: np.stack([w[k] for w in per_client]) for k in per_client[0]})
    for a, w in zip(agents, per_client, strict=True):
        a.set_weights(w)  # target and proximal anchor as in the stacked learner
        a.set_proximal(0.3)
    stacked.set_proximal(0.3)
    g = torch.Generator().manual_seed(5)
    for _ in range(4):  # several steps: Adam moments, the proximal pull and clipping all take part
        batch = (torch.randn(N, 8, 5, generator=g), torch.randint(0, 3, (N, 8), generator=g),
                 torch.randn(N, 8, generator=g), torch.randn(N, 8, 5, generator=g),
                 (torch.rand(N, 8, generator=g) > 0.3).float() * 0.99)
        losses = stacked.update(batch)
        for i, a in enumerate(agents):
            a._sample = lambda i=i, b=batch: tuple(x[i] for x in b)
            ref = a._update()["loss/td"]
            assert losses[i].item() == pytest.approx(ref, rel=1e-5, abs=1e-6)
    _close(stacked, agents)
    # the clients really differ (the test would not notice a layout that mixes them otherwise)
    assert not np.allclose(stacked.client_weights(0)["head.weight"], stacked.client_weights(1)["head.weight"])


def _ppo_rollout(T: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    dones = rng.random((T, N)) < 0.1
    boot = dones & (rng.random((T, N)) < 0.5)
    return dict(obs=rng.uniform(-1, 1, (T, N, 5)).astype(np.float32),
                final_obs=rng.uniform(-1, 1, (T, N, 5)).astype(np.float32) * boot[..., None],
                actions=rng.integers(0, 3, (T, N)), rewards=rng.normal(size=(T, N)).astype(np.float32),
                dones=dones, bootstrap=boot, last=rng.uniform(-1, 1, (N, 5)).astype(np.float32))


class _FixedPermutations:
    def __init__(self, perms: list[np.ndarray]) -> None:
        self.perms = list(perms)

    def permutation(self, n: int) -> np.ndarray:
        return self.perms.pop(0)


def test_stacked_ppo_update_equals_separate_updates() -> None:
    kw = dict(hidden_sizes=(16, 16), n_steps=12, batch_size=5, n_epochs=2, lr=3e-3, ent_coef=0.01,
              clip_range_vf=0.2, max_grad_norm=0.3)
    agents = [PPOAgent(OBS, ACT, seed=s, **kw) for s in (21, 22, 23)]
    stacked = BatchedPPO(N, OBS, ACT, agents[0].config, agents[0].get_weights(), np.random.default_rng(0))
    per_client = [a.get_weights() for a in agents]
    stacked.set_weights({k: np.stack([w[k] for w in per_client]) for k in per_client[0]})
    for a, w in zip(agents, per_client, strict=True):
        a.set_weights(w)
        a.set_proximal(0.2)
    stacked.set_proximal(0.2)
    rng = np.random.default_rng(3)
    T = 12
    ro = _ppo_rollout(T, rng)
    perms = np.stack([np.stack([rng.permutation(T) for _ in range(N)]) for _ in range(2)])  # (epochs, N, T)
    for name in ("obs", "final_obs", "actions", "rewards", "dones", "bootstrap"):
        getattr(stacked, f"buf_{name}")[:] = ro[name]
    stacked.pos, stacked.evaluated = T, 0
    stacked._stepper = SimpleNamespace(obs=ro["last"])
    out = stacked.process_rollout(perms)
    for i, a in enumerate(agents):
        buf = RolloutBuffer(T, 1, (5,), np.float32, (), np.int64)
        for name in ("obs", "final_obs", "actions", "rewards", "dones", "bootstrap"):
            getattr(buf, name)[:] = ro[name][:, i : i + 1]
        buf.pos = T
        a.buffer = buf
        a._stepper = SimpleNamespace(obs=ro["last"][i : i + 1])
        a._rng = _FixedPermutations([perms[e, i] for e in range(2)])
        ref = a._process_rollout()
        for k in ("loss/policy", "loss/value", "loss/entropy"):
            assert out[k][i] == pytest.approx(ref[k], rel=1e-4, abs=1e-6), k
    _close(stacked, agents)


def test_batched_learners_refuse_what_they_do_not_implement() -> None:
    ref = DQNAgent(OBS, ACT, seed=0, dueling=True)
    with pytest.raises(AgentError, match="dueling"):
        BatchedDQN(2, OBS, ACT, ref.config, ref.get_weights(), np.random.default_rng(0))
    ppo = PPOAgent(OBS, ACT, seed=0, target_kl=0.01)
    with pytest.raises(AgentError, match="target_kl"):
        BatchedPPO(2, OBS, ACT, ppo.config, ppo.get_weights(), np.random.default_rng(0))
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    cont = PPOAgent(OBS, box, seed=0)
    with pytest.raises(AgentError, match="Discrete"):
        BatchedPPO(2, OBS, box, cont.config, cont.get_weights(), np.random.default_rng(0))


def test_broadcast_sets_target_and_anchor_but_not_personal_heads() -> None:
    ref = DQNAgent(OBS, ACT, seed=0, hidden_sizes=(8,), personal="head")
    stacked = BatchedDQN(2, OBS, ACT, ref.config, ref.get_weights(), np.random.default_rng(0))
    assert "head.weight" not in stacked.shared_names and "body.0.weight" in stacked.shared_names
    zeros = {k: np.zeros_like(v) for k, v in ref.get_weights().items() if k.startswith("body.")}
    head_before = stacked.params["head.weight"].detach().clone()
    stacked.set_weights(zeros)
    assert torch.equal(stacked.params["head.weight"], head_before)
    assert float(stacked.params["body.0.weight"].abs().sum()) == 0.0
    assert float(stacked.target["body.0.weight"].abs().sum()) == 0.0
    assert set(stacked._anchor) == set(zeros)
