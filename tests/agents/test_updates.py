"""Algorithm updates on fixed batches against targets computed by hand from the papers' formulas.

Each test fails if the formula is silently changed: DQN's double-Q selection (van Hasselt et al. 2016), the
bootstrap of a truncated (not terminated) transition (Pardo et al. 2018), and the signs of SAC's entropy
term and temperature step (Haarnoja et al. 2018, eqs. 5, 7, 18).
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.dqn import DQNAgent
from agents.sac import SACAgent

OBS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
GAMMA, REWARD = 0.5, 1.0


def linear_dqn(**kw) -> DQNAgent:
    """A DQN whose Q-network is one linear layer, online Q ≡ [0, 1] and target Q ≡ [5, 2] for every state:
    the online net picks action 1, the target net's max is action 0's."""
    agent = DQNAgent(OBS, gym.spaces.Discrete(2), seed=0, hidden_sizes=(), gamma=GAMMA, batch_size=1,
                     learning_starts=0, loss="mse", lr=1e-3, **kw)
    agent.set_weights({"head.weight": np.zeros((2, 2)), "head.bias": np.array([0.0, 1.0])})
    agent.target.load_state_dict({"head.weight": torch.zeros(2, 2), "head.bias": torch.tensor([5.0, 2.0])})
    return agent


def td_loss(agent: DQNAgent, *, terminated: bool, truncated: bool) -> float:
    """The update's loss on the one stored transition (s, a = 0, r, s') with the given flags."""
    s, s2 = np.array([0.1, -0.2], np.float32), np.array([0.3, 0.4], np.float32)
    agent.buffer.add(s, 0, REWARD, s2, terminated, truncated)
    return agent._update()["loss/td"]


@pytest.mark.parametrize("double_q, next_value", [(True, 2.0), (False, 5.0)])
def test_dqn_target_is_double_q_when_on_and_max_target_when_off(double_q, next_value):
    # y = r + γ Q_target(s', argmax_a Q_online(s', a)) = 1 + 0.5·2 (double); 1 + 0.5·max(5, 2) (Mnih et al.)
    y = REWARD + GAMMA * next_value
    assert td_loss(linear_dqn(double_q=double_q), terminated=False, truncated=False) == pytest.approx((0.0 - y) ** 2)


@pytest.mark.parametrize("terminated, truncated, bootstraps", [(False, True, True), (True, False, False),
                                                               (True, True, False)])
def test_only_termination_cuts_the_one_step_bootstrap(terminated, truncated, bootstraps):
    y = REWARD + (GAMMA * 2.0 if bootstraps else 0.0)
    loss = td_loss(linear_dqn(), terminated=terminated, truncated=truncated)
    assert loss == pytest.approx(y**2)


@pytest.mark.parametrize("name", ["dqn", "sac", "q-learning"])
def test_a_time_limit_stores_a_truncated_transition_to_the_final_observation(name):
    """Through ``learn`` (a single env is the N = 1 case of the vector stepper): an episode cut by a time
    limit is stored as truncated, not terminated, with s' the last observation before the reset, and the
    target of that step bootstraps."""
    from agents import AGENTS

    env_id, kw = {"dqn": ("CartPole-v1", dict(learning_starts=10**6)),
                  "sac": ("Pendulum-v1", dict(learning_starts=10**6)),
                  "q-learning": ("CliffWalking-v1", dict(alpha=1.0, gamma=0.9, initial_q=50.0))}[name]
    env = gym.wrappers.TimeLimit(gym.make(env_id).unwrapped, max_episode_steps=3)
    seen = []
    step = env.step

    def recording_step(action):
        seen.append((action, step(action)))
        return seen[-1][1]

    env.step = recording_step
    agent = AGENTS[name](env.observation_space, env.action_space, seed=0, **kw)
    agent.learn(env, 3)
    action, (last_obs, reward, term, trunc, _) = seen[2]
    assert trunc and not term
    if name == "q-learning":  # α = 1: Q(s, a) ← r + γ max_a' Q(s', a') = r + 0.9 · 50 (an untouched entry)
        state = int(seen[1][1][0])
        assert agent.q[state, int(action)] == pytest.approx(reward + 45.0)
        return
    b = agent.buffer
    assert not b.terminated[2] and b.truncated[2]
    np.testing.assert_array_equal(b.next_obs[2], np.asarray(last_obs, dtype=b.next_obs.dtype))
    assert b.sample(64).discounts.min() > 0.0  # nothing terminated: every sampled target bootstraps


# ----- SAC ---------------------------------------------------------------------------------------------
def sac_with_batch(target_entropy: float) -> tuple[SACAgent, tuple[torch.Tensor, ...]]:
    agent = SACAgent(OBS, gym.spaces.Box(-1.0, 1.0, (1,), np.float32), seed=0, hidden_sizes=(8,),
                     init_alpha=0.7, target_entropy=target_entropy)
    g = torch.Generator().manual_seed(1)
    B = 32
    batch = (torch.rand(B, 2, generator=g) * 2 - 1, torch.rand(B, 1, generator=g) * 2 - 1,
             torch.randn(B, generator=g), torch.rand(B, 2, generator=g) * 2 - 1,
             torch.where(torch.arange(B) % 4 == 0, 0.0, 0.9))
    agent._sample = lambda: batch  # the update's fixed batch
    return agent, batch


@pytest.mark.parametrize("target_entropy", [-10.0, 10.0])
def test_sac_critic_actor_and_temperature_steps_follow_the_paper(target_entropy):
    agent, (obs, actions, rewards, next_obs, discounts) = sac_with_batch(target_entropy)
    gen = torch.Generator()
    gen.set_state(agent._gen.get_state())
    actor, critic, critic_target = (copy.deepcopy(m) for m in (agent.actor, agent.critic, agent.critic_target))
    log_alpha = float(agent.log_alpha)
    alpha = np.exp(log_alpha)
    stats = agent._update()

    with torch.no_grad():
        # critic target, eq. 3/5: y = r + γ(1 − d)(min_i Q'_i(s', a') − α log π(a'|s')), a' ~ π(·|s')
        a2, logp2 = actor(next_obs, gen)
        y = rewards + discounts * (critic_target(next_obs, a2).amin(0) - alpha * logp2)
        critic_loss = ((critic(obs, actions) - y) ** 2).mean()
        # policy, eq. 7: E[α log π(ã|s) − min_i Q_i(s, ã)] with the critics after their step
        a_new, logp = actor(obs, gen)
        actor_loss = (alpha * logp - agent.critic(obs, a_new).amin(0)).mean()
    assert stats["loss/critic"] == pytest.approx(float(critic_loss), rel=1e-5)
    assert stats["loss/actor"] == pytest.approx(float(actor_loss), rel=1e-5)
    # temperature, eq. 18: J(α) = E[−α (log π + H̄)]: α grows while the entropy −log π is below H̄
    gap = float((logp + target_entropy).mean())
    assert stats["loss/alpha"] == pytest.approx(-log_alpha * gap, rel=1e-5)
    assert np.sign(float(agent.log_alpha) - log_alpha) == np.sign(gap) != 0
