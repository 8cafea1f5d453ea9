"""Scripted experts as policies: `envs.expert(env, noise=..., seed=...)`.

Each task's expert (`Task.expert_action`) reads the full simulator state and the episode's
goal, so it is privileged: it produces demonstrations and play data and sets goal images,
never an evaluated agent. `noise` adds Gaussian noise of that standard deviation to every
action dimension (then clips to [-1, 1]), which turns the expert into a play-data policy.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


def expert(env: gym.Env, *, noise: float = 0.0,
           seed: int | None = None) -> Callable[[dict], np.ndarray]:
    """The scripted expert for `env` (any wrapper of a task env): `policy(obs) -> action`."""
    if noise < 0:
        raise ValueError(f"{noise=} must be >= 0")
    base = env.unwrapped
    if not hasattr(base, "task"):
        raise TypeError(f"{type(base).__name__} is not one of the envs package's tasks")
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
