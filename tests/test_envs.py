"""Contract tests over every registered task (as dm_control's suite_test does)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.rollout import random_policy, rollout
from envs.scene import ACTION_SCALE

ALL = list(envs.TASK_NAMES)
EXPERT_SEEDS = range(5)


@pytest.fixture(scope="module", params=ALL)
def env(request):
    env = envs.make(request.param)
    yield env
    env.close()


def test_ids_are_registered():
    ids = {"WorldModel/Push-v0", "WorldModel/PickPlace-v0", "WorldModel/Drawer-v0",
           "WorldModel/Button-v0"}
    assert ids <= set(gym.registry)
    for name, (env_id, _) in envs.TASKS.items():
        assert gym.spec(env_id).max_episode_steps == envs.step_budget(name)


@pytest.mark.parametrize("name", ALL)
def test_check_env(name):
    env = envs.make(name, render_mode="rgb_array").unwrapped
    check_env(env, skip_render_check=False)
    env.close()


def test_spaces_and_observation(env):
    assert env.action_space == gym.spaces.Box(-1, 1, (4,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["proprio"].shape == (4,) and obs["proprio"].dtype == np.float32
    assert info["goal_pixels"].shape == (64, 64, 3)
    assert info["goal_proprio"].shape == (4,)
    assert set(info) >= {"success", "distance", "object_pose", "goal_state"}
    assert obs["pixels"].std() > 10, "the camera sees a blank image"
    # the goal image shows a different scene than the first frame
    assert np.abs(obs["pixels"].astype(int) - info["goal_pixels"]).mean() > 1.0
    assert not info["success"]


def test_same_seed_same_trajectory_and_goal(env):
    def run():
        episode = rollout(env, random_policy(env, seed=3), seed=7)
        return episode["pixels"], episode["proprio"], episode["goal_pixels"]

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = rollout(env, random_policy(env, seed=3), seed=8)
    assert not np.array_equal(first[2], other["goal_pixels"])


def test_subgoal_images_show_the_way_without_changing_the_episode(env):
    obs, info = env.reset(seed=4)
    sub_obs, sub_info = env.reset(seed=4, options={"subgoals": 2})
    assert "subgoal_pixels" not in info
    np.testing.assert_array_equal(obs["pixels"], sub_obs["pixels"])
    np.testing.assert_array_equal(info["goal_pixels"], sub_info["goal_pixels"])
    first, second = sub_info["subgoal_pixels"].astype(int)
    assert sub_info["subgoal_pixels"].shape == (2, 64, 64, 3)
    for a, b in ((obs["pixels"], first), (first, second), (second, info["goal_pixels"])):
        assert np.abs(a.astype(int) - b).mean() > 0.2  # each step of the way shows progress


def test_expert_succeeds(env):
    results = [rollout(env, envs.expert(env), seed, record=False) for seed in EXPERT_SEEDS]
    assert all(r["success"] for r in results), [r["final_distance"] for r in results]


def test_random_policy_fails(env):
    results = [rollout(env, random_policy(env, seed=s), s, record=False) for s in range(5)]
    assert not any(r["success"] for r in results)


def test_noisy_expert_still_moves_the_object(env):
    episode = rollout(env, envs.expert(env, noise=0.3, seed=0), seed=0)
    assert episode["distance"][-1] < episode["distance"][0]


def _side_contacts(episode) -> int:
    """Control steps in which the gripper, low beside the button's base, pushed toward it
    and moved less than 40 % of what it was told."""
    proprio, actions, cap = episode["proprio"], episode["actions"], episode["object_pose"]
    count = 0
    for t, action in enumerate(actions):
        away = proprio[t, :2] - cap[t, :2]
        side = 0.045 < np.abs(away).max() < 0.08 and proprio[t, 2] < 0.06
        inward = -np.dot(action[:2] * ACTION_SCALE, away) / np.linalg.norm(away)
        moved = -np.dot(proprio[t + 1, :2] - proprio[t, :2], away) / np.linalg.norm(away)
        count += bool(side and inward > 0.01 and moved < 0.4 * inward)
    return count


def test_reach_policy_runs_into_what_the_expert_avoids():
    """Contact-seeking play pushes the gripper against the button's base from the side; the
    expert, which approaches from above, never does."""
    env = envs.make("button")
    reach = sum(_side_contacts(rollout(env, envs.reach(env, noise=0.1, seed=s), s))
                for s in range(12))  # heavy-tailed: a few episodes push for many steps
    expert = sum(_side_contacts(rollout(env, envs.expert(env), s)) for s in range(4))
    env.close()
    assert reach >= 20 and expert == 0, (reach, expert)
    with pytest.raises(ValueError, match="noise"):
        envs.reach(env, noise=-0.1)


def test_contact_point_is_where_the_expert_engages_the_object():
    """The contact point (what the contact-first terms measure the gripper to) is where the
    scripted expert's gripper goes: the cube's centre, the drawer's hook point, the top of
    the button's cap; the puck, pushed from its side, is engaged at its centre."""
    for name in ("pick_place", "drawer", "button"):
        env = envs.make(name)
        episode = rollout(env, envs.expert(env), 0)
        points = env.unwrapped.task.contact_point(episode["object_pose"])
        env.close()
        assert points.shape == (len(episode["object_pose"]), 3)
        reach = np.linalg.norm(episode["proprio"][:, :3] - points, axis=1).min()
        assert reach < 0.01, (name, reach)
    pose = envs.task_class("push")().contact_point(np.arange(7.0))
    np.testing.assert_array_equal(pose, [0.0, 1.0, 2.0])


@pytest.mark.parametrize("action, message", [
    (np.zeros(3), "shape"), (np.zeros((1, 4)), "shape"),
    (np.array([0, np.nan, 0, 0]), "finite"), (np.array([np.inf, 0, 0, 0]), "finite"),
])
def test_bad_actions_raise(env, action, message):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_range_actions_are_clipped(env):
    env.reset(seed=0)
    big = env.unwrapped
    before = big.proprio(big.data)
    env.step(np.array([100.0, 0, 0, 0], np.float32))
    moved = big.proprio(big.data)[0] - before[0]
    assert 0 < moved <= 0.031  # at most one full step of 3 cm


def test_unstable_simulation_ends_the_episode(env):
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    base.data.qvel[:] = 1e12  # MuJoCo would silently reset this state
    obs, _, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert terminated and info["sim_unstable"]
    assert np.all(np.isfinite(obs["proprio"]))


def test_step_before_reset_raises():
    env = envs.make("push").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, np.float32))


def test_cameras_and_image_size():
    env = envs.make("drawer", image_size=32, cameras=("front", "side"))
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (32, 32, 3) and obs["pixels_side"].shape == (32, 32, 3)
    assert info["goal_pixels_side"].shape == (32, 32, 3)
    assert not np.array_equal(obs["pixels"], obs["pixels_side"])
    with pytest.raises(ValueError, match="cameras"):
        envs.make("drawer", cameras=("nope",))


def _palm_pixels(env, camera: str, tcp) -> int:
    """Pixels of the gripper's orange palm in a 64x64 frame with the TCP at `tcp`."""
    import mujoco

    data = env.copy_state()
    data.qpos[env._hand_qpos] = tcp
    mujoco.mj_forward(env.model, data)
    image = env.render_pixels(data, camera, 64).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return int(((r > 180) & (g > 90) & (g < 170) & (b < 80)).sum())


def test_wide_camera_keeps_the_gripper_in_view():
    """`wide` sees the palm at every corner of the objects' region up to 25 cm high;
    `front` loses it above the far side (why `wide` exists)."""
    env = envs.make("push").unwrapped
    env.reset(seed=0)
    corners = [(x, y, z) for x in (-0.2, 0.2) for y in (-0.2, 0.15) for z in (0.02, 0.25)]
    assert min(_palm_pixels(env, "wide", c) for c in corners) >= 4
    assert _palm_pixels(env, "front", (0.2, 0.15, 0.25)) == 0


def test_make_lists_valid_tasks():
    with pytest.raises(ValueError, match="push, pick_place, drawer, button"):
        envs.make("pushh")
