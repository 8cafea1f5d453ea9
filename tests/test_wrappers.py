"""The Gymnasium wrappers, checked by Gymnasium's and stable-baselines3's env checkers and
by short SB3 runs (PPO, SAC + HER), on the tiny world model."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from worldmodel.features import token_distance
from worldmodel.weights import load_pretrained
from worldmodel.wrappers import (
    GoalImageReward,
    ImaginationEnv,
    ImaginationVectorEnv,
    LatentObservation,
    VectorLatentObservation,
)

# the checkers warn that wrapped envs are not the raw env, and about unbounded latent Boxes
pytestmark = pytest.mark.filterwarnings("ignore:.*(unwrapped version|infinity).*:UserWarning")


@pytest.fixture(scope="module")
def model(tiny_world_model):
    return load_pretrained(tiny_world_model, predictor=True)


def wrapped_envs(model):
    return {
        "latent pooled": LatentObservation(envs.make("button"), model),
        "latent patches + pixels": LatentObservation(envs.make("push"), model,
                                                     features="patches", keep_pixels=True),
        "goal reward": GoalImageReward(envs.make("button"), model),
        "goal-conditioned": GoalImageReward(envs.make("push"), model, goal_conditioned=True,
                                            features="pooled"),
        "imagination": ImaginationEnv("button", model, horizon=4),
    }


def test_gymnasium_and_sb3_env_checkers_pass(model):
    for env in wrapped_envs(model).values():
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)
        env.close()


def test_vector_latents_are_the_single_env_latents(model):
    make = [lambda: envs.make("push") for _ in range(3)]
    vector = VectorLatentObservation(gym.vector.SyncVectorEnv(make), model)
    obs, _ = vector.reset(seed=5)
    assert obs["latent"].shape == (3, model.config.encoder_dim) and "pixels" not in obs
    assert vector.observation_space.contains(obs)
    single = LatentObservation(envs.make("push"), model)
    for i in range(3):
        alone, _ = single.reset(seed=5 + i)
        np.testing.assert_allclose(obs["latent"][i], alone["latent"], atol=1e-4)
    obs, *_ = vector.step(vector.action_space.sample())
    assert obs["latent"].shape == (3, model.config.encoder_dim)


def test_goal_reward_matches_compute_reward_and_is_zero_at_the_goal(model):
    env = GoalImageReward(envs.make("push"), model, goal_conditioned=True)
    obs, info = env.reset(seed=0)
    assert obs["desired_goal"].shape == (64 * model.config.encoder_dim,)
    rewards = []
    for _ in range(3):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(env.compute_reward(obs["achieved_goal"],
                                                          obs["desired_goal"], info))
        assert "success" in info and reward < 0
        rewards.append(reward)
    batch = np.stack([obs["achieved_goal"], obs["desired_goal"]])
    relabelled = env.compute_reward(batch, np.stack([obs["desired_goal"]] * 2), [info] * 2)
    assert relabelled.shape == (2,) and relabelled[1] == 0.0
    assert relabelled[0] == pytest.approx(rewards[-1])


def test_imagination_env_rolls_out_the_predictor(model):
    vector = ImaginationVectorEnv("push", 3, model, horizon=3)
    assert vector.real.unwrapped.cameras == (model.camera,)  # the predictor's own camera
    obs, info = vector.reset(seed=11)
    assert obs["latent"].shape == (3, model.config.encoder_dim)
    single = ImaginationEnv("push", model, horizon=3)
    alone, _ = single.reset(seed=11)
    np.testing.assert_allclose(obs["latent"][0], alone["latent"], atol=1e-5)
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 3, 4)).astype(np.float32)
    for t in range(3):
        obs, reward, terminated, truncated, info = vector.step(actions[t])
        alone, alone_reward, _, alone_truncated, _ = single.step(actions[t, 0])
        assert reward[0] == pytest.approx(alone_reward, abs=1e-5)
        assert list(truncated) == [t == 2] * 3 and alone_truncated == (t == 2)
        assert not terminated.any() and (reward < 0).all()
    # the reward is the planner's energy of the imagined frame
    distance = token_distance(vector._z[:, -1], vector._goal, "l2").numpy()
    np.testing.assert_allclose(-reward, distance, rtol=1e-5)
    obs, reward, _, truncated, _ = vector.step(actions[0])  # next-step autoreset
    assert (reward == 0).all() and not truncated.any() and vector._t == 0
    with pytest.raises(RuntimeError, match="reset"):
        single.step(actions[0, 0])


def test_sb3_ppo_and_her_train_on_wrapped_tasks(model):
    torch.manual_seed(0)
    env = GoalImageReward(LatentObservation(envs.make("button"), model, keep_pixels=True), model)
    env = gym.wrappers.FilterObservation(env, ["latent", "proprio"])
    PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0,
        device="cpu").learn(256)
    her_env = gym.wrappers.TimeLimit(
        GoalImageReward(envs.make("push"), model, goal_conditioned=True, features="pooled"), 8)
    SAC("MultiInputPolicy", her_env, replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 2, "goal_selection_strategy": "future"},
        buffer_size=200, learning_starts=16, batch_size=16, seed=0,
        device="cpu").learn(40)


@pytest.mark.parametrize("make, message", [
    (lambda m: LatentObservation(envs.make("push"), m, features="cls"), "features"),
    (lambda m: GoalImageReward(envs.make("push"), m, distance="cos"), "distance"),
    (lambda m: ImaginationVectorEnv("push", 0, m), "num_envs"),
    (lambda m: ImaginationEnv("push", m, context=99), "context"),
])
def test_bad_arguments_are_answered_clearly(model, make, message):
    with pytest.raises(ValueError, match=message):
        make(model)
