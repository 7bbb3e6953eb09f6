"""PPO agent and the shared on-policy machinery (rollout buffer + GAE, normalisation, actor-critic nets,
ParallelEnv adapter): runs, learning, personal parameters, what its checkpoint keeps, validation. (Seeds,
weights, checkpoints and pickling of every agent: test_agent_contract.py.)"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from pettingzoo.test import parallel_api_test

from agents import AgentError, agent_class
from agents.normalization import RewardScaler, RunningMeanStd
from agents.parallel_adapter import AGENT_MASK, ParallelToVector
from agents.policies import ActorCritic
from agents.ppo import PRESETS, PPOAgent, PPOConfig
from agents.rollout import RolloutBuffer, gae
from tests.agents.common import BitMatch, ResetCounter, assert_weights_equal, eval_return

torch.set_num_threads(1)

TINY = dict(hidden_sizes=(32,), n_steps=64, batch_size=32, n_epochs=2)


def make_agent(env_id: str = "CartPole-v1", seed: int = 0, **kw) -> tuple[PPOAgent, gym.Env]:
    env = gym.make(env_id)
    return PPOAgent(env.observation_space, env.action_space, seed=seed, **{**TINY, **kw}), env


class TargetEnv(gym.Env):
    """1-D "move to the target": obs (position, target), action a ∈ [−1, 1] moves by 0.25·a, reward
    −|position − target|, 16 steps per episode (truncated)."""

    observation_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.target, self.t = 0.0, float(self.np_random.uniform(-1, 1)), 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.pos, self.target], dtype=np.float32)

    def step(self, action):
        a = float(np.clip(action[0], -1, 1))
        self.pos = float(np.clip(self.pos + 0.25 * a, -2, 2))
        self.t += 1
        return self._obs(), -abs(self.pos - self.target), False, self.t >= 16, {}


# ----- registration / presets ----------------------------------------------------------------------------
def test_registered_and_presets_are_valid():
    assert agent_class("ppo") is PPOAgent
    for env_id, preset in PRESETS.items():
        gym.spec(env_id)
        PPOConfig(**{k: v for k, v in preset.items() if k not in ("n_envs", "total_steps")})


# ----- GAE and the rollout buffer ------------------------------------------------------------------------
def _gae_reference(r, v, done, boot, last, gamma, lam):
    T, N = r.shape
    adv = np.zeros((T, N))
    for i in range(N):
        acc = 0.0
        for t in reversed(range(T)):
            nxt = boot[t, i] if done[t, i] else (v[t + 1, i] if t + 1 < T else last[i])
            delta = r[t, i] + gamma * nxt - v[t, i]
            acc = delta + (0.0 if done[t, i] else gamma * lam * acc)
            adv[t, i] = acc
    return adv


def test_gae_hand_computed_single_env():
    # rewards 1,1 | terminated ; 1 | truncated with V(final) = 10 ; 1 then the rollout ends with V(s_T) = 4
    r = np.ones((4, 1), np.float32)
    v = np.array([[1.0], [2.0], [3.0], [5.0]], np.float32)
    done = np.array([[0], [1], [1], [0]], bool)
    boot = np.array([[0], [0], [10.0], [0]], np.float32)
    adv, ret = gae(r, v, done, boot, np.array([4.0], np.float32), gamma=0.5, lam=0.5)
    d3 = 1 + 0.5 * 4 - 5  # -2
    d2 = 1 + 0.5 * 10 - 3  # 3 (truncation bootstraps)
    d1 = 1 - 2  # -1 (termination does not)
    d0 = 1 + 0.5 * 2 - 1  # 1
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.25 * d1, d1, d2, d3])
    np.testing.assert_allclose(ret, adv + v)


def test_gae_matches_reference_vectorised():
    rng = np.random.default_rng(0)
    T, N = 37, 5
    r = rng.normal(size=(T, N)).astype(np.float32)
    v = rng.normal(size=(T, N)).astype(np.float32)
    done = rng.random((T, N)) < 0.15
    boot = np.where(done & (rng.random((T, N)) < 0.5), rng.normal(size=(T, N)), 0).astype(np.float32)
    last = rng.normal(size=N).astype(np.float32)
    for lam in (0.0, 0.9, 1.0):
        adv, _ = gae(r, v, done, boot, last, 0.97, lam)
        np.testing.assert_allclose(adv, _gae_reference(r, v, done, boot, last, 0.97, lam), rtol=1e-4, atol=1e-4)
        one, _ = gae(r[:, 2:3], v[:, 2:3], done[:, 2:3], boot[:, 2:3], last[2:3], 0.97, lam)  # Python path
        np.testing.assert_allclose(one, adv[:, 2:3], rtol=1e-5, atol=1e-5)


def test_buffer_carry_tails_right_aligns_unfinished_episodes():
    buf = RolloutBuffer(6, 3, (1,), np.float32, (), np.int64)
    buf.pos = 6
    buf.obs[:, :, 0] = np.arange(6)[:, None] + 10 * np.arange(3)[None, :]
    buf.dones[:] = False
    buf.dones[3, 0] = True  # env 0: tail = rows 4, 5
    buf.dones[5, 1] = True  # env 1: finished at the end, no tail
    buf.dones[1, 2] = True  # env 2: tail = rows 3, 4, 5 (row 2 is padding after its episode end)
    buf.valid[2, 2] = False
    np.testing.assert_array_equal(buf.tail_starts(), [4, 6, 3])
    tails = buf.carry_tails(max_len=3)
    np.testing.assert_array_equal(tails, [2, 0, 3])
    assert buf.pos == buf.new_start == 3
    np.testing.assert_array_equal(buf.obs[1:3, 0, 0], [4, 5])
    np.testing.assert_array_equal(buf.obs[0:3, 2, 0], [23, 24, 25])
    np.testing.assert_array_equal(buf.valid[:3], [[False, False, True], [True, False, True], [True, False, True]])
    assert buf.dones[0, 0] and buf.dones[:3, 1].all() and not buf.dones[:3, 2].any()
    with pytest.raises(ValueError, match="exceeds max_len"):
        buf.pos = 6
        buf.dones[:] = False
        buf.valid[:] = True
        buf.carry_tails(max_len=5)


# ----- normalisation -------------------------------------------------------------------------------------
def test_running_mean_std_parallel_update_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    rms = RunningMeanStd((3,), epsilon=0.0 + 1e-12)
    for chunk in np.array_split(data, [1, 2, 10, 400, 401]):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-9)
    other = RunningMeanStd((3,))
    other.load_state_dict(rms.state_dict())
    np.testing.assert_array_equal(other.mean, rms.mean)
    with pytest.raises(ValueError, match="shape"):
        RunningMeanStd((2,)).load_state_dict(rms.state_dict())
    x = rms.normalize(data[:5])
    assert x.dtype == np.float32 and np.all(np.abs(x) <= 10)


def test_reward_scaler_divides_by_return_std():
    sc = RewardScaler(2, gamma=0.9)
    r = np.ones((50, 2), np.float32)
    dones = np.zeros((50, 2), bool)
    dones[24, 0] = True
    out = sc.scale_block(r, dones, np.ones((50, 2), bool))
    assert out.dtype == np.float32 and np.allclose(out, out[0, 0])  # one scale for the whole block
    assert 0.1 < out[0, 0] < 1.0  # returns grow to ~10, their std is a few units
    assert sc.returns[0] < sc.returns[1]  # env 0 restarted its discounted return at its episode end


# ----- actor-critic nets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize(
    "shared_body, embedding_dim, activation", [(False, 0, "tanh"), (True, 3, "relu"), (False, 2, "elu")]
)
def test_actor_critic_numpy_path_and_log_probs(continuous, shared_body, embedding_dim, activation):
    torch.manual_seed(0)
    net = ActorCritic(
        5,
        3,
        continuous=continuous,
        hidden_sizes=(16, 8),
        activation=activation,
        shared_body=shared_body,
        embedding_dim=embedding_dim,
        log_std_init=-0.3,
    )
    if embedding_dim:
        with torch.no_grad():
            net.embedding.normal_()
    x = torch.randn(20, 5)
    with torch.no_grad():
        out, v = net(x)
        np.testing.assert_allclose(net.np_actor(x.numpy()), out.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(net.np_actor(x[3].numpy()), out[3].numpy(), rtol=1e-5, atol=1e-5)
        assert v.shape == (20,)
        if continuous:
            a = torch.randn(20, 3)
            dist = torch.distributions.Normal(out, net.actor.log_std.exp())
            lp, ent = net.log_prob_entropy(out, a)
            np.testing.assert_allclose(lp, dist.log_prob(a).sum(-1), rtol=1e-5)
            np.testing.assert_allclose(ent, dist.entropy().sum(-1)[0], rtol=1e-5)
        else:
            a = torch.randint(3, (20,))
            dist = torch.distributions.Categorical(logits=out)
            lp, ent = net.log_prob_entropy(out, a)
            np.testing.assert_allclose(lp, dist.log_prob(a), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ent, dist.entropy(), rtol=1e-5, atol=1e-6)
    names = set(net.state_dict())
    assert {"actor.head.weight", "critic.head.weight"} <= names
    assert any(k.startswith("body.0") for k in names) == shared_body
    assert ("actor.log_std" in names) == continuous and ("embedding" in names) == bool(embedding_dim)


def test_numpy_path_follows_in_place_updates_and_copies():
    net = ActorCritic(4, 2, continuous=False)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    net.np_actor(x)  # builds the cached views
    clone = copy.deepcopy(net)
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(0.5)
        clone_out = clone.actor_out(torch.from_numpy(x)).numpy()
        net_out = net.actor_out(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(clone.np_actor(x), clone_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.np_actor(x), net_out, rtol=1e-5, atol=1e-6)


# ----- the ParallelEnv adapter ---------------------------------------------------------------------------
def test_bitmatch_passes_pettingzoo_api_test():
    parallel_api_test(BitMatch(), num_cycles=30)


def test_parallel_to_vector_pads_masks_and_autoresets():
    venv = ParallelToVector(BitMatch())
    assert venv.num_envs == 3 and venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = venv.reset(seed=0)
    assert obs.shape == (3, 2) and info[AGENT_MASK].all()
    masks, finals = [], []
    for _ in range(7):
        obs, rew, term, trunc, info = venv.step(np.zeros(3, dtype=np.int64))
        masks.append(info[AGENT_MASK].copy())
        finals.append(info.get("_final_obs", np.zeros(3, bool)).copy())
        assert not (term & trunc).any()
        dead = ~masks[-1]
        assert np.all(obs[dead] == 0)
    masks, finals = np.array(masks), np.array(finals)
    # a0 ends at step 3, a1 at step 5, a2 at step 7 (truncated) -> whole-env reset at step 7
    np.testing.assert_array_equal(masks[:, 0], [1, 1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(masks[:, 1], [1, 1, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(masks[:, 2], [1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(np.flatnonzero(finals.any(1)), [2, 4, 6])
    assert trunc[2] and not term[2] and info["final_obs"][2].sum() == 1  # one-hot final observation


def test_parallel_to_vector_refuses_heterogeneous_agents():
    env = BitMatch()
    env.action_space = lambda a: gym.spaces.Discrete(3 if a == "a1" else 2)
    with pytest.raises(ValueError, match="share one observation and one action space"):
        ParallelToVector(env)


def test_ppo_learns_parallel_env_with_shared_parameters():
    env = BitMatch()
    agent = PPOAgent(
        env.observation_space("a0"),
        env.action_space("a0"),
        seed=0,
        hidden_sizes=(16,),
        n_steps=32,
        batch_size=96,
        n_epochs=4,
        lr=1e-2,
    )
    first = agent.learn(env, 21)  # a ParallelEnv is wrapped automatically: 3 sub-envs, 7 vector steps
    assert agent.buffer.num_envs == 3 and first["train/steps"] == 21 and first["train/episodes"] == 3
    # one episode: a0 acts in rows 0-2, a1 in rows 0-4, a2 in rows 0-6; dead agents are padding
    np.testing.assert_array_equal(agent.buffer.valid[:7].sum(0), [3, 5, 7])
    np.testing.assert_array_equal(np.flatnonzero(agent.buffer.dones[:7, 2]), [6])
    assert agent.buffer.bootstrap[6, 2] and not agent.buffer.bootstrap[2, 0]  # a2 truncated, a0 terminated
    stats = agent.learn(env, 1179)
    # reward per agent-episode: 3 / 5 / 7 steps of reward ≤ 1, so the optimum averages 5, random 2.5
    assert stats["train/episode_return"] > 4.0, stats
    for bit in (0, 1):
        assert agent.act(np.eye(2, dtype=np.float32)[bit], explore=False) == bit


# ----- basic runs ----------------------------------------------------------------------------------------
def test_cartpole_runs_and_continues_episode_and_rollout_across_calls():
    agent, env = make_agent()
    env = ResetCounter(env)
    s1 = agent.learn(env, 100)  # one update at step 64, 36 steps pending
    assert s1["train/steps"] == 100 and s1["train/updates"] == 1 and np.isfinite(s1["loss/value"])
    assert agent.buffer.pos == 36
    resets_before = len(env.reset_seeds)
    s2 = agent.learn(env, 28)  # completes the rollout
    assert s2["train/updates"] == 1 and agent.buffer.pos == 0 and s2["train/steps"] == 128
    s3 = agent.learn(env, 10)
    assert s3["train/updates"] == 0 and "loss/policy" not in s3
    assert env.reset_seeds[0] is not None and all(s is None for s in env.reset_seeds[1:])
    assert len(env.reset_seeds) - resets_before == s2["train/episodes"] + s3["train/episodes"]
    assert agent.act(env.observation_space.sample()) in (0, 1)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "FrozenLake-v1", "MountainCarContinuous-v0"])
def test_other_spaces_run(env_id):
    agent, env = make_agent(env_id)
    stats = agent.learn(env, 200)
    assert np.isfinite(stats["loss/value"]) and stats["train/updates"] == 3
    a = agent.act(env.observation_space.sample())
    assert env.action_space.contains(a if isinstance(a, int) else a.astype(env.action_space.dtype))
    if env_id == "FrozenLake-v1":
        assert agent.get_weights()["actor.body.0.weight"].shape == (32, 16)  # one-hot input
        with pytest.raises(AgentError, match="outside Discrete"):
            agent.act(16)
    else:
        assert "actor.log_std" in agent.get_weights()


def test_gaussian_actions_clipped_for_env_but_stored_unclipped():
    agent, env = make_agent("Pendulum-v1", log_std_init=1.5)  # σ ≈ 4.5, bounds ±2
    seen = []
    env = gym.wrappers.TransformAction(env, lambda a: (seen.append(a.copy()), a)[1], env.action_space)
    agent.learn(env, 50)
    assert np.all(np.abs(np.array(seen)) <= 2.0)
    assert np.abs(agent.buffer.actions[:50]).max() > 2.0


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_vector_env_autoreset_modes(mode):
    agent, _ = make_agent(n_steps=16)
    venv = gym.make_vec(
        "CartPole-v1", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode(mode)}
    )
    stats = agent.learn(venv, 300)  # 100 vector steps, rounded up to 102 -> 6 updates of 16 x 3
    assert stats["train/steps"] == 300 and stats["train/updates"] == 6 and stats["train/episodes"] >= 3
    assert 5 < stats["train/episode_return"] < 100
    buf = agent.buffer
    if mode == "NextStep":  # the reset step after an episode end is padding
        assert stats["train/episodes"] > 0 and agent.num_updates == 6
    else:
        assert buf.valid.all()


def test_next_step_padding_follows_episode_ends():
    agent, _ = make_agent(n_steps=200)
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")  # NEXT_STEP by default
    agent.learn(venv, 300)
    buf, T = agent.buffer, agent.buffer.pos
    pad = ~buf.valid[:T]
    assert pad.any()
    t, i = np.nonzero(pad)
    assert np.all(buf.dones[t - 1, i])  # every padding slot follows an episode end
    assert buf.dones[:T][buf.valid[:T]].sum() >= pad.sum()


def test_new_env_object_closes_pending_rollout_as_truncation():
    agent, env = make_agent(n_steps=64)
    agent.learn(env, 10)
    t = agent.buffer.pos - 1
    if not agent.buffer.dones[t, 0]:
        env2 = ResetCounter(gym.make("CartPole-v1"))
        agent.learn(env2, 5)
        assert env2.reset_seeds[0] is not None
        assert agent.buffer.dones[t, 0] and agent.buffer.bootstrap[t, 0]
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    updates = agent.num_updates
    agent.learn(venv, 4)  # other layout: the pending rollout is used for an update right away
    assert agent.num_updates == updates + 1 and agent.buffer.num_envs == 2 and agent.buffer.pos == 2


def test_obs_normalisation_and_reward_scaling():
    agent, env = make_agent("Pendulum-v1", normalize_obs=True, scale_reward=True, n_steps=50)
    agent.learn(env, 120)
    assert agent.obs_rms.count > 99  # two rollouts folded in, the pending one not yet
    assert np.all(agent.obs_rms.var > 0) and agent.reward_scaler.rms.count > 99
    # stored observations are normalised with the statistics of their rollout (clipped to ±obs_clip)
    assert np.abs(agent.buffer.obs[: agent.buffer.pos]).max() <= agent.config.obs_clip
    with pytest.raises(AgentError, match="normalize_obs=True needs a Box"):
        make_agent("FrozenLake-v1", normalize_obs=True)


def test_lr_annealing():
    agent, env = make_agent(anneal_lr_steps=256, n_steps=64)
    agent.learn(env, 192)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(agent.config.lr * (1 - 192 / 256))  # SB3-style
    agent.learn(env, 320)
    assert agent.optimizer.param_groups[0]["lr"] == 0.0


def test_value_clipping_and_target_kl_run():
    agent, env = make_agent(clip_range_vf=0.2, target_kl=1e-4, lr=1e-2, n_epochs=10)
    stats = agent.learn(env, 128)
    assert np.isfinite(stats["loss/value"]) and stats["train/approx_kl"] >= 0


# ----- learning ------------------------------------------------------------------------------------------
def test_ppo_beats_random_on_cartpole():
    agent, env = make_agent(
        hidden_sizes=(64, 64), n_steps=256, batch_size=256, n_epochs=4, lr=3e-3, gamma=0.98, gae_lambda=0.8
    )
    agent.learn(env, 12_000)
    rng = np.random.default_rng(0)
    random_return = eval_return(gym.make("CartPole-v1"), lambda _: int(rng.integers(2)))
    ppo_return = eval_return(gym.make("CartPole-v1"), lambda o: agent.act(o, explore=False))
    assert random_return < 40
    assert ppo_return >= 3 * random_return, (ppo_return, random_return)


def test_ppo_beats_random_on_continuous_target_task():
    env = TargetEnv()
    agent = PPOAgent(
        env.observation_space,
        env.action_space,
        seed=0,
        hidden_sizes=(32,),
        n_steps=256,
        batch_size=128,
        n_epochs=4,
        lr=3e-3,
        gamma=0.9,
        log_std_init=-0.5,
    )
    agent.learn(env, 6_000)
    rng = np.random.default_rng(0)
    random_return = eval_return(TargetEnv(), lambda _: rng.uniform(-1, 1, size=1).astype(np.float32))
    ppo_return = eval_return(TargetEnv(), lambda o: agent.act(o, explore=False))
    assert ppo_return > 0.5 * random_return, (ppo_return, random_return)  # returns are negative


# ----- weights -------------------------------------------------------------------------------------------
def test_personal_heads_and_embedding_stay_local():
    agent, _ = make_agent(personal="head")
    assert agent.personal_prefixes == ("actor.head.", "critic.head.")
    shared = agent.get_shared_weights()
    assert shared and not any(".head." in k for k in shared) and "actor.body.0.weight" in shared
    cont, _ = make_agent("Pendulum-v1", personal="head", embedding_dim=3)
    assert set(cont.get_weights()) - set(cont.get_shared_weights()) == {
        "actor.head.weight",
        "actor.head.bias",
        "critic.head.weight",
        "critic.head.bias",
        "actor.log_std",
        "embedding",
    }
    plain, _ = make_agent()
    assert plain.get_shared_weights().keys() == plain.get_weights().keys()
    assert PPOAgent.personal_prefixes == ()


def test_embedding_is_learned():
    agent, env = make_agent(embedding_dim=2, lr=1e-2)
    agent.learn(env, 128)
    assert np.any(agent.get_weights()["embedding"] != 0)
    assert agent.get_weights()["actor.body.0.weight"].shape == (32, 4 + 2)


def test_prox_term_pulls_toward_anchor():
    def drift(mu: float, via_setter: bool = False) -> float:
        agent, env = make_agent(seed=5, prox_mu=0.0 if via_setter else mu, lr=3e-3, n_epochs=4)
        anchor = agent.get_weights()
        agent.set_weights(anchor)
        if via_setter:
            agent.set_proximal(mu)
        agent.learn(env, 256)
        w = agent.get_weights()
        return float(np.sqrt(sum(np.sum((w[k] - anchor[k]) ** 2) for k in w)))

    free, proximal = drift(0.0), drift(50.0)
    assert proximal < 0.5 * free, (proximal, free)
    assert drift(50.0, via_setter=True) == pytest.approx(proximal)
    agent, _ = make_agent()
    with pytest.raises(AgentError, match="prox_mu"):
        agent.set_proximal(-1.0)


def test_set_trainable_freezes_the_rest():
    agent, env = make_agent()
    before = agent.get_weights()
    agent.set_trainable(("actor.head.", "critic.head."))
    agent.learn(env, 64)
    after = agent.get_weights()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all(".head." in k for k in changed)
    agent.set_trainable(None)
    assert all(p.requires_grad for p in agent.policy.parameters())
    agent.set_trainable(("nothing.",))  # everything frozen: learning still runs, nothing changes
    frozen = agent.get_weights()
    assert agent.learn(env, 64)["train/updates"] == 1
    assert_weights_equal(agent.get_weights(), frozen)


def test_behaviour_log_probs_recorded_before_weights_change():
    agent, env = make_agent(n_steps=64)
    agent.learn(env, 20)
    buf = agent.buffer
    obs = torch.from_numpy(buf.obs[:20, 0].copy())
    with torch.no_grad():
        expected = agent.policy.log_prob_entropy(
            agent.policy.actor_out(obs), torch.from_numpy(buf.actions[:20, 0].copy())
        )[0]
    other, _ = make_agent(seed=9)
    agent.set_weights(other.get_weights())
    assert buf.evaluated == 20
    np.testing.assert_allclose(buf.log_probs[:20, 0], expected.numpy(), rtol=1e-6)
    agent.learn(env, 44)  # the update uses the recorded behaviour log-probs for rows 0..19
    assert agent.num_updates == 1


# ----- checkpoints ---------------------------------------------------------------------------------------
def test_checkpoint_keeps_optimiser_generator_anchor_and_normalisation(tmp_path):
    a, env = make_agent("Pendulum-v1", seed=0, prox_mu=0.1, normalize_obs=True, scale_reward=True)
    a.set_weights(a.get_weights())
    a.learn(env, 150)
    a.save(tmp_path / "ppo.pt")
    b, _ = make_agent("Pendulum-v1", seed=9, prox_mu=0.1, normalize_obs=True, scale_reward=True)
    b.load(tmp_path / "ppo.pt")
    assert b.num_updates == a.num_updates == 2
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert a._rng.random() == b._rng.random()
    assert b._anchor.keys() == a._anchor.keys() != set()
    np.testing.assert_array_equal(b.obs_rms.var, a.obs_rms.var)
    assert b.reward_scaler.rms.count == a.reward_scaler.rms.count
    x = env.observation_space.sample()  # greedy actions use the restored observation statistics
    np.testing.assert_array_equal(a.act(x, explore=False), b.act(x, explore=False))


# ----- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lrr=1e-3), "unknown PPO hyperparameter.*lrr.*allowed: lr, gamma"),
        (dict(lr=0.0), r"lr=0\.0 out of range.*\(0\.0, inf\)"),
        (dict(gamma=1.5), r"gamma=1\.5 out of range.*\[0\.0, 1\.0\]"),
        (dict(gae_lambda=-0.1), "gae_lambda"),
        (dict(batch_size=0), "batch_size=0 out of range"),
        (dict(n_steps=0), "n_steps=0 out of range"),
        (dict(n_epochs=1.5), "n_epochs=1.5 out of range"),
        (dict(clip_range=0.0), "clip_range=0.0 out of range"),
        (dict(clip_range_vf=-1.0), "clip_range_vf"),
        (dict(target_kl=0.0), "target_kl"),
        (dict(max_grad_norm=0.0), "max_grad_norm"),
        (dict(hidden_sizes=(64, 0)), "hidden_sizes"),
        (dict(personal="tail"), "personal='tail' not supported; allowed: none, head"),
        (dict(activation="sigmoidx"), "activation"),
        (dict(prox_mu=float("nan")), "prox_mu"),
        (dict(normalize_obs="yes"), "normalize_obs"),
        (dict(embedding_dim=-1), "embedding_dim"),
    ],
)
def test_config_validation(kw, msg):
    with pytest.raises(AgentError, match=msg):
        make_agent(**kw)


def test_config_coerces_and_is_frozen():
    cfg = PPOConfig(hidden_sizes=[8, 8], batch_size=np.int64(8), n_steps=16.0, clip_range_vf=np.float32(0.5))
    assert cfg.hidden_sizes == (8, 8) and type(cfg.batch_size) is int and cfg.n_steps == 16
    assert type(cfg.clip_range_vf) is float
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
    env = gym.make("CartPole-v1")
    agent = PPOAgent(env.observation_space, env.action_space, config=cfg, gamma=0.5)
    assert agent.config.gamma == 0.5 and agent.config.hidden_sizes == (8, 8)
    with pytest.raises(AgentError, match="config must be a PPOConfig"):
        PPOAgent(env.observation_space, env.action_space, config=object())


@pytest.mark.parametrize(
    "obs_space, act_space, msg",
    [
        (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (2, 2)), "Discrete or 1-D Box action spaces"),
        (gym.spaces.Box(-1, 1, (4,)), gym.spaces.MultiDiscrete([2, 2]), "Discrete or 1-D Box action spaces"),
        (gym.spaces.Box(0, 1, (3, 3)), gym.spaces.Discrete(2), "Box with a 1-D shape or Discrete"),
        (gym.spaces.MultiBinary(3), gym.spaces.Discrete(2), "Box with a 1-D shape or Discrete"),
    ],
)
def test_unsupported_spaces(obs_space, act_space, msg):
    with pytest.raises(AgentError, match=msg):
        PPOAgent(obs_space, act_space)


def test_env_with_mismatched_spaces_refused():
    agent, _ = make_agent()
    with pytest.raises(AgentError, match="action space"):
        agent.learn(gym.make("Acrobot-v1"), 10)
    wide = gym.wrappers.TransformObservation(
        gym.make("CartPole-v1"), lambda o: np.append(o, 0.0), gym.spaces.Box(-np.inf, np.inf, (5,))
    )
    with pytest.raises(AgentError, match="observation space"):
        agent.learn(wide, 10)
    with pytest.raises(AgentError, match="gymnasium Env, a gymnasium VectorEnv or a PettingZoo ParallelEnv"):
        agent.learn(object(), 10)
    with pytest.raises(AgentError, match="num_steps"):
        agent.learn(gym.make("CartPole-v1"), -1)
