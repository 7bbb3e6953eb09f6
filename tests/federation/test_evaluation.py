"""Episode evaluation of single-agent policies and of PettingZoo parallel envs (per-agent returns)."""

import gymnasium as gym
import numpy as np
import pytest

from envs.cv2x import PARALLEL_BASELINES
from envs.cv2x import parallel_env as cv2x_parallel
from envs.registry import EnvConfigError, env_entry
from federation.evaluation import evaluate_parallel, evaluate_policy
from tests.agents.common import BitMatch


def test_evaluate_policy_counts_returns_on_fixed_seeds():
    env = gym.make("CartPole-v1")
    out = evaluate_policy(env, lambda o: int(o[2] > 0), [1, 2, 3])
    assert out == evaluate_policy(env, lambda o: int(o[2] > 0), [1, 2, 3])  # paired: same seeds, same result
    assert out["return"] == out["episode_length"] > 20  # reward 1 per step; the angle rule balances a while


def test_evaluate_parallel_runs_every_agent_to_its_own_end():
    env = BitMatch()  # agents live 3, 5 and 7 steps; reward 1 per correct bit
    perfect = evaluate_parallel(env, lambda o: int(np.argmax(o)), [0, 1])
    assert perfect["return"] == pytest.approx((3 + 5 + 7) / 3)  # mean over agents of each agent's return
    assert perfect["team_return"] == pytest.approx(7.0) and perfect["episode_length"] == 7
    wrong = evaluate_parallel(env, lambda o: int(np.argmin(o)), [0, 1])
    assert wrong["return"] == 0.0


def test_evaluate_parallel_joint_policies_and_kpis():
    env = cv2x_parallel()
    seeds = [5, 6]
    greedy = evaluate_parallel(env, PARALLEL_BASELINES["greedy"](env, 0), seeds, ["v2v_delivery_prob"], joint=True)
    space = env.action_space("link_0")
    space.seed(0)
    rand = evaluate_parallel(env, lambda _: space.sample(), seeds, ["v2v_delivery_prob"])
    assert greedy["episode_length"] == rand["episode_length"] == 100
    assert greedy["return"] > rand["return"]  # the heuristic beats random actions on the same episodes
    assert 0.0 <= rand["v2v_delivery_prob"] < greedy["v2v_delivery_prob"] <= 1.0  # a fraction of links


def test_parallel_factory_names_the_envs_that_have_one():
    assert env_entry("frl/CV2X-v0").parallel_factory() is cv2x_parallel
    with pytest.raises(EnvConfigError, match=r"MecOffloading-v0.*no PettingZoo.*frl/CV2X-v0"):
        env_entry("frl/MecOffloading-v0").parallel_factory()


def test_an_endless_episode_is_capped_and_reported():
    """CliffWalking has no time limit: a greedy policy walking into the wall forever must still return."""
    from federation.evaluation import DEFAULT_MAX_EPISODE_STEPS

    env = gym.make("CliffWalking-v1")
    assert env.spec.max_episode_steps is None
    out = evaluate_policy(env, lambda o: 0, [0, 1])  # "up" from the start: never reaches the goal
    assert out["truncated_episodes"] == 1.0
    assert out["episode_length"] == DEFAULT_MAX_EPISODE_STEPS
    capped = evaluate_policy(env, lambda o: 0, [0], max_steps=7)
    assert capped["episode_length"] == 7 and capped["return"] == -7.0
    finished = evaluate_policy(gym.make("CartPole-v1"), lambda o: int(o[2] > 0), [0])
    assert finished["truncated_episodes"] == 0.0
