"""Scripted play policies: `envs.expert(env, noise=..., seed=...)` and `envs.reach(...)`.

Each task's expert (`Task.expert_action`) reads the full simulator state and the episode's
goal, so it is privileged: it produces demonstrations and play data and sets goal images,
never an evaluated agent. `noise` adds Gaussian noise of that standard deviation to every
action dimension (then clips to [-1, 1]), which turns the expert into a play-data policy.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from envs import task as T


def expert(env: gym.Env, *, noise: float = 0.0,
           seed: int | None = None) -> Callable[[dict], np.ndarray]:
    """The scripted expert for `env` (any wrapper of a task env): `policy(obs) -> action`."""
    base = _task_env(env, noise)
    rng = np.random.default_rng(seed)

    def policy(obs: dict) -> np.ndarray:
        del obs  # the expert reads the simulator state, not the observation
        if base.goal is None:
            raise RuntimeError("reset the environment before asking the expert for an action")
        action = base.task.expert_action(base.data, base.goal)
        if noise > 0:
            action = action + rng.normal(0.0, noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return policy


def reach(env: gym.Env, *, noise: float = 0.0, seed: int | None = None,
          leg_steps: tuple[int, int] = (6, 15)) -> Callable[[dict], np.ndarray]:
    """Contact-seeking play: the gripper heads straight for a random point on or around the
    task's object (within 4 cm of it sideways, from the table up to 6 cm above it) and keeps
    pushing for `leg_steps` control steps before it picks another point, with a random
    gripper command per leg. Straight lines from anywhere run into the object and its base
    from the side, contacts the expert (which approaches from above) never makes. Reads the
    simulator state, like `expert`."""
    base = _task_env(env, noise)
    rng = np.random.default_rng(seed)
    leg = {"left": 0, "target": None, "grip": 0.0}

    def policy(obs: dict) -> np.ndarray:
        del obs
        if leg["left"] <= 0:
            centre = base.data.body(base.task.object_body).xpos
            offset = np.append(rng.uniform(-0.04, 0.04, 2), rng.uniform(-centre[2], 0.06))
            leg.update(left=int(rng.integers(leg_steps[0], leg_steps[1] + 1)),
                       target=centre + offset, grip=float(rng.choice([-1.0, 1.0])))
        leg["left"] -= 1
        action = T.move_toward(T.tcp(base.data), leg["target"], leg["grip"])
        if noise > 0:
            action = action + rng.normal(0.0, noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return policy


def _task_env(env: gym.Env, noise: float):
    """The task env under `env`'s wrappers, once `noise` is checked."""
    if noise < 0:
        raise ValueError(f"{noise=} must be >= 0")
    base = env.unwrapped
    if not hasattr(base, "task"):
        raise TypeError(f"{type(base).__name__} is not one of the envs package's tasks")
    return base
