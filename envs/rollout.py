"""Run one episode of a policy and record it: the one loop that collection, benchmarks and
demos share."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

Policy = Callable[[dict], np.ndarray]


def random_policy(env: gym.Env, seed: int | None = None) -> Policy:
    """Uniform random actions in the action space, from a seeded generator."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    return lambda obs: rng.uniform(low, high).astype(np.float32)


def smooth_random_policy(env: gym.Env, seed: int | None = None,
                         correlation: float = 0.8) -> Policy:
    """Exploratory motion: random actions low-pass filtered over time (an AR(1) process),
    so the gripper sweeps across the workspace instead of jittering in place."""
    rng = np.random.default_rng(seed)
    state = np.zeros(env.action_space.shape, np.float32)

    def policy(obs: dict) -> np.ndarray:
        nonlocal state
        noise = rng.uniform(-1.0, 1.0, size=state.shape)
        state = correlation * state + np.sqrt(1 - correlation**2) * noise
        return np.clip(state * 1.5, -1.0, 1.0).astype(np.float32)

    return policy


def rollout(env: gym.Env, policy: Policy, seed: int, *,
            record: bool = True) -> dict[str, np.ndarray]:
    """One episode from `env.reset(seed=seed)` until termination or truncation.

    Returns `success` (bool, final step), `any_success`, `final_distance`, `steps` and, with
    `record`, per-frame arrays: every observation key (T + 1 frames, the reset included),
    `actions` (T, 4), `object_pose` (T + 1, 7), `distance` and `success_flags` (T + 1), plus
    the reset's `goal_*` entries.
    """
    obs, info = env.reset(seed=seed)
    goal = {k: v for k, v in info.items() if k.startswith("goal_")}
    frames = {k: [v] for k, v in obs.items()}
    actions, poses, distances, flags = [], [info["object_pose"]], [info["distance"]], [
        info["success"]]
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs)
        obs, _, terminated, truncated, info = env.step(action)
        if record:
            for k, v in obs.items():
                frames[k].append(v)
            actions.append(action)
            poses.append(info["object_pose"])
        distances.append(info["distance"])
        flags.append(info["success"])
    result = {"success": bool(flags[-1]), "any_success": bool(any(flags)),
              "final_distance": float(distances[-1]), "steps": len(flags) - 1,
              "unstable": bool(info.get("sim_unstable", False))}
    if record:
        result.update({k: np.stack(v) for k, v in frames.items()})
        result.update(goal)
        result["actions"] = np.stack(actions).astype(np.float32)
        result["object_pose"] = np.stack(poses).astype(np.float32)
        result["distance"] = np.array(distances, np.float32)
        result["success_flags"] = np.array(flags, bool)
    return result
