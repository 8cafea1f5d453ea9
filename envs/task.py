"""The shape every task has, as dm_control's `Task`: build, initialise an episode, observe
its objects, measure its distance to a goal, and solve it with a scripted expert.

A task's *goal* is a small vector in state space (an object position, a drawer opening, a
button depth). The environment samples a target goal with `initialize_episode`, lets the
scripted expert reach it in a copy of the simulation, and from then on uses the goal the
expert actually reached: that is the state the goal image shows.
"""

from __future__ import annotations

import abc

import mujoco
import numpy as np
from dm_control import mjcf

from envs import scene

# Where the gripper starts (TCP, m): a box above the front of the table.
HAND_START_LOW = np.array([-0.1, -0.24, 0.12])
HAND_START_HIGH = np.array([0.1, -0.16, 0.2])


class Task(abc.ABC):
    """One manipulation task on the shared scene."""

    name: str  # short name, as `envs.make(name)` takes it
    step_budget: int  # control steps per episode, used by everything that evaluates the task
    success_threshold: float  # the task distance (m) under which the episode is a success
    expert_tolerance: float  # the expert refines its goal until within this distance (m)
    object_body: str  # the body whose pose `object_pose` reports
    # where the gripper engages the task object, as an offset (m, world frame) from the
    # object body's position: the objects that rotate (puck, cube) are engaged at their centre
    contact_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @abc.abstractmethod
    def build(self, arena: mjcf.RootElement) -> None:
        """Add the task's objects to the shared scene."""

    @abc.abstractmethod
    def initialize_episode(self, model: mujoco.MjModel, data: mujoco.MjData,
                           rng: np.random.Generator) -> np.ndarray:
        """Randomise the objects in `model`/`data` and return a target goal to reach."""

    @abc.abstractmethod
    def goal_state(self, data: mujoco.MjData) -> np.ndarray:
        """The task's goal variable read off a state (what a reached goal is)."""

    @abc.abstractmethod
    def expert_action(self, data: mujoco.MjData, goal: np.ndarray) -> np.ndarray:
        """The noise-free scripted expert: a (4,) action in [-1, 1] from the full state."""

    def distance(self, data: mujoco.MjData, goal: np.ndarray) -> float:
        """Task distance (m) between the state and a goal; success is `<= success_threshold`."""
        return float(np.linalg.norm(self.goal_state(data) - goal))

    def object_pose(self, data: mujoco.MjData) -> np.ndarray:
        """(7,) position and quaternion of the task's key object, for probes and evaluation."""
        body = data.body(self.object_body)
        return np.concatenate([body.xpos, body.xquat])

    def contact_point(self, object_pose: np.ndarray) -> np.ndarray:
        """(..., 3) where the gripper engages the object, from `object_pose` (..., 7) (a
        live `object_pose(data)` or one recorded in play data)."""
        return object_pose[..., :3] + np.asarray(self.contact_offset, dtype=object_pose.dtype)

    def update_visuals(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:  # noqa: B027
        """Set state-dependent colours before rendering `data` (default: none)."""


def place_hand(model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
    """Put the gripper, open, at a random start position with its servos at rest there."""
    start = rng.uniform(HAND_START_LOW, HAND_START_HIGH)
    for axis, value in zip("xyz", start):
        data.joint(f"hand_{axis}").qpos = value
        data.actuator(f"hand_{axis}").ctrl = value
    for side in ("left", "right"):
        data.joint(f"finger_{side}").qpos = scene.MAX_FINGER
        data.actuator(f"finger_{side}").ctrl = scene.MAX_FINGER


def tcp(data: mujoco.MjData) -> np.ndarray:
    """(3,) tool-centre-point position."""
    return data.site("tcp").xpos.copy()


def gripper_gap(data: mujoco.MjData) -> float:
    """Distance (m) between the finger pads."""
    return float(data.joint("finger_left").qpos[0] + data.joint("finger_right").qpos[0])


def move_toward(position: np.ndarray, target: np.ndarray, grip: float) -> np.ndarray:
    """The action that moves the TCP from `position` toward `target` (saturating at one
    control step's reach) with gripper command `grip` (-1 open, +1 closed)."""
    delta = (np.asarray(target) - position) / scene.ACTION_SCALE
    return np.append(np.clip(delta, -1.0, 1.0), grip).astype(np.float32)


def sample_apart(rng: np.random.Generator, low, high, min_distance: float,
                 anchor: np.ndarray) -> np.ndarray:
    """A uniform sample in [low, high] at least `min_distance` from `anchor` (rejection)."""
    for _ in range(1000):
        sample = rng.uniform(low, high)
        if np.linalg.norm(sample - anchor) >= min_distance:
            return sample
    raise RuntimeError(f"no point in {low}..{high} is {min_distance} m from {anchor}")
