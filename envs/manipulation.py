"""`ManipulationEnv`: one Gymnasium environment class for every task.

Action: `Box(-1, 1, (4,), float32)`. `a[:3]` moves the gripper's TCP by
`a[:3] * ACTION_SCALE` (3 cm) from where it is, clipped to the workspace; `a[3]` sets the
finger opening, -1 fully open (7 cm gap) to +1 closed. In-range actions are used as given;
out-of-range finite actions are clipped to [-1, 1]; NaN/inf or wrong-shaped actions raise
`ValueError`. One control step is 0.08 s of simulation.

Observation: a dict with `pixels` (uint8 (H, W, 3), from the first of `cameras`, 64x64 by
default), `pixels_<camera>` for each further camera, and `proprio` (float32 (4,): TCP x,
y, z in metres and the gripper gap in metres).

Reset: samples the initial state and a target goal, lets the scripted expert reach the
target in a copy of the simulation, and returns in `info` what the expert reached:
`goal_pixels` (same size and camera as `pixels`, plus `goal_pixels_<camera>`), and, for
evaluation only, `goal_proprio` and `goal_state` (the task's goal variable). Every goal is
therefore reachable and shows the gripper where the expert leaves it. With
`reset(options={"subgoals": k})`, `info["subgoal_pixels"]` (k, H, W, 3) adds k images of
the expert's way to the goal, evenly spaced in time (from the first camera): sub-goal
images as V-JEPA 2-AC gave its planner, a separately reported variant.

Every step's `info` has `success` (task distance <= the task's threshold), `distance` (m)
and `object_pose` (7,). Episodes last the task's fixed step budget (truncation by
Gymnasium's `TimeLimit`); an unstable simulation ends the episode (`terminated`) with
`info["sim_unstable"] = True` and the last finite state as the observation.
"""

from __future__ import annotations

import atexit
import os
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless and fast
os.environ.setdefault("LP_NUM_THREADS", "0")  # see envs/__init__.py

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from envs import scene  # noqa: E402
from envs.task import Task  # noqa: E402

_DIVERGENCE = [int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQVEL),
               int(mujoco.mjtWarning.mjWARN_BADQACC)]
_SETTLE_STEPS = 3  # the expert must stay within tolerance this many steps to set a goal
_MAX_GOAL_TRIES = 20


class ManipulationEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": round(
        1 / (scene.TIMESTEP * scene.N_SUBSTEPS), 2)}

    def __init__(self, task: Task, *, render_mode: str | None = None, image_size: int = 64,
                 cameras: tuple[str, ...] | list[str] = ("front",), render_size: int = 256):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"{render_mode=} must be one of {self.metadata['render_modes']}")
        if not 16 <= image_size <= 512:
            raise ValueError(f"{image_size=} must be between 16 and 512 pixels")
        cameras = tuple(cameras)
        unknown = [c for c in cameras if c not in scene.CAMERAS]
        if not cameras or unknown:
            raise ValueError(f"{cameras=} must be a non-empty subset of {scene.CAMERAS}")
        self.task = task
        self.render_mode = render_mode
        self.image_size = image_size
        self.cameras = cameras
        self.render_size = render_size

        arena = scene.build_arena()
        task.build(arena)
        self.model = mujoco.MjModel.from_xml_string(arena.to_xml_string(), arena.get_assets())
        self.data = mujoco.MjData(self.model)
        self._goal_data = mujoco.MjData(self.model)
        self._backup = mujoco.MjData(self.model)
        self._scratch: mujoco.MjData | None = None  # for `simulate`
        self._hand_qpos = [self.model.joint(f"hand_{a}").qposadr[0] for a in "xyz"]
        self._hand_ctrl = [self.model.actuator(f"hand_{a}").id for a in "xyz"]
        self._finger_ctrl = [self.model.actuator(f"finger_{s}").id for s in ("left", "right")]
        self._finger_qpos = [self.model.joint(f"finger_{s}").qposadr[0]
                             for s in ("left", "right")]
        self._low = np.array(scene.WORKSPACE_LOW)
        self._high = np.array(scene.WORKSPACE_HIGH)
        self._renderers = _Renderers()
        self.goal: np.ndarray | None = None  # the task's goal variable (evaluation only)
        self.goal_proprio: np.ndarray | None = None  # the gripper where the goal shows it

        pixels = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        spaces = {"pixels": pixels}
        spaces.update({f"pixels_{c}": pixels for c in cameras[1:]})
        # TCP within the workspace, gap within the fingers' travel; 1 cm for soft limits
        margin = 0.01
        spaces["proprio"] = gym.spaces.Box(
            np.array([*scene.WORKSPACE_LOW, 0.0], np.float32) - margin,
            np.array([*scene.WORKSPACE_HIGH, 2 * scene.MAX_FINGER], np.float32) + margin,
            dtype=np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    # -- simulation ---------------------------------------------------------------------
    def apply_action(self, data: mujoco.MjData, action: np.ndarray) -> None:
        """Advance `data` by one control step under `action` (already validated)."""
        hand = data.qpos[self._hand_qpos]
        data.ctrl[self._hand_ctrl] = np.clip(hand + action[:3] * scene.ACTION_SCALE,
                                             self._low, self._high)
        data.ctrl[self._finger_ctrl] = 0.5 * (1.0 - action[3]) * scene.MAX_FINGER
        mujoco.mj_step(self.model, data, nstep=scene.N_SUBSTEPS)

    def copy_state(self) -> mujoco.MjData:
        """A copy of the current simulation state, for planning in the true simulator."""
        copy = mujoco.MjData(self.model)
        mujoco.mj_copyData(copy, self.model, self.data)
        return copy

    def simulate(self, start: mujoco.MjData, controls: np.ndarray, every: int = 1,
                 pixels: bool = False, object_position: bool = False):
        """Run control actions (T, 4) in [-1, 1] from `start` (left unchanged); returns the
        state [task goal variable, proprio] after every `every`-th step, (T // every, G + 4),
        comparable with `[goal, goal_proprio]` (with `object_position`, the task's contact
        point appended: G + 7, `Task.contact_point`); with `pixels`, also the camera frames
        of those steps, uint8 (T // every, H, W, 3)."""
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        mujoco.mj_copyData(self._scratch, self.model, start)
        states, frames = [], []
        for t, action in enumerate(controls, start=1):
            self.apply_action(self._scratch, action)
            if t % every == 0:
                states.append(np.concatenate([
                    self.task.goal_state(self._scratch), self.proprio(self._scratch),
                    self.task.contact_point(self.task.object_pose(self._scratch))
                    if object_position else []]))
                if pixels:
                    frames.append(self.render_pixels(self._scratch, self.cameras[0],
                                                     self.image_size))
        return (np.array(states), np.array(frames)) if pixels else np.array(states)

    def proprio(self, data: mujoco.MjData) -> np.ndarray:
        """(4,) TCP position (m) and gripper gap (m)."""
        gap = data.qpos[self._finger_qpos].sum()
        return np.append(data.qpos[self._hand_qpos], gap).astype(np.float32)

    def _reach_goal(self, target: np.ndarray) -> bool:
        """Run the noise-free expert in `_goal_data` toward `target`; True once it holds
        within the task's tolerance for a few steps inside the step budget. The positions
        it passes through are kept in `_expert_path`."""
        settled = 0
        self._expert_path = []
        for _ in range(self.task.step_budget):
            action = self.task.expert_action(self._goal_data, target)
            self.apply_action(self._goal_data, action)
            self._expert_path.append(self._goal_data.qpos.copy())
            if self.task.distance(self._goal_data, target) <= self.task.expert_tolerance:
                settled += 1
                if settled >= _SETTLE_STEPS:
                    return True
            else:
                settled = 0
        return False

    # -- rendering ------------------------------------------------------------------------
    def render_pixels(self, data: mujoco.MjData, camera: str, size: int) -> np.ndarray:
        """uint8 (size, size, 3) image of `data` from `camera`."""
        renderer = self._renderers.get(size)
        if renderer is None:
            try:
                renderer = self._renderers[size] = mujoco.Renderer(self.model, size, size)
            except mujoco.FatalError as error:
                raise RuntimeError(
                    f"MuJoCo could not open an OpenGL context ({error}). Headless machines "
                    "need MUJOCO_GL=egl (or osmesa) set before mujoco is first imported: "
                    "import envs first, or export MUJOCO_GL=egl.") from error
            # registered after mujoco's own EGL exit handler, so it runs before it (LIFO)
            atexit.register(_close_renderers, weakref.ref(self._renderers))
        self.task.update_visuals(self.model, data)
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    def _observe(self, data: mujoco.MjData, prefix: str = "") -> dict[str, np.ndarray]:
        obs = {f"{prefix}pixels": self.render_pixels(data, self.cameras[0], self.image_size)}
        for camera in self.cameras[1:]:
            obs[f"{prefix}pixels_{camera}"] = self.render_pixels(data, camera, self.image_size)
        return obs

    def _info(self) -> dict:
        distance = self.task.distance(self.data, self.goal)
        return {"success": distance <= self.task.success_threshold, "distance": distance,
                "object_pose": self.task.object_pose(self.data)}

    # -- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        for _ in range(_MAX_GOAL_TRIES):
            mujoco.mj_resetData(self.model, self.data)
            target = self.task.initialize_episode(self.model, self.data, self.np_random)
            mujoco.mj_forward(self.model, self.data)
            mujoco.mj_copyData(self._goal_data, self.model, self.data)
            if self._reach_goal(target):
                break
        else:
            raise RuntimeError(f"the {self.task.name} expert reached no sampled goal in "
                               f"{_MAX_GOAL_TRIES} tries; the task or its expert is broken")
        self.goal = self.task.goal_state(self._goal_data)
        self.goal_proprio = self.proprio(self._goal_data)
        obs = self._observe(self.data)
        obs["proprio"] = self.proprio(self.data)
        info = self._info()
        info.update(self._observe(self._goal_data, prefix="goal_"))
        info["goal_proprio"] = self.goal_proprio.copy()
        info["goal_state"] = self.goal.copy()
        subgoals = (options or {}).get("subgoals", 0)
        if subgoals:
            info["subgoal_pixels"] = self._subgoal_pixels(subgoals)
        return obs, info

    def _subgoal_pixels(self, k: int) -> np.ndarray:
        """(k, H, W, 3) images of the expert's way to the goal, evenly spaced in time."""
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"subgoals={k!r} must be an int >= 0")
        path = self._expert_path[:len(self._expert_path) - _SETTLE_STEPS + 1]  # to the goal
        data = mujoco.MjData(self.model)
        images = []
        for i in range(1, k + 1):
            data.qpos[:] = path[max(1, round(i * len(path) / (k + 1))) - 1]
            mujoco.mj_forward(self.model, data)
            images.append(self.render_pixels(data, self.cameras[0], self.image_size))
        return np.stack(images)

    def step(self, action):
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (4,):
            raise ValueError(f"action must have shape (4,), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        action = np.clip(action, -1.0, 1.0)

        mujoco.mj_copyData(self._backup, self.model, self.data)
        warnings_before = self._divergence_warnings()
        self.apply_action(self.data, action)
        unstable = (self._divergence_warnings() > warnings_before
                    or not np.all(np.isfinite(self.data.qpos))
                    or not np.all(np.isfinite(self.data.qvel)))
        if unstable:  # MuJoCo resets diverged data silently; keep the last finite state
            mujoco.mj_copyData(self.data, self.model, self._backup)
        obs = self._observe(self.data)
        obs["proprio"] = self.proprio(self.data)
        info = self._info()
        info["sim_unstable"] = unstable
        return obs, 0.0, unstable, False, info

    def _divergence_warnings(self) -> int:
        """How often MuJoCo has found NaN or huge qpos/qvel/qacc (and reset the data)."""
        return int(self.data.warning.number[_DIVERGENCE].sum())

    def render(self):
        if self.render_mode == "rgb_array":
            return self.render_pixels(self.data, self.cameras[0], self.render_size)
        return None

    def close(self):
        _close_renderers(lambda: self._renderers)


class _Renderers(dict):
    """Renderers by image size (a dict subclass, so that it can be weakly referenced)."""


def _close_renderers(renderers_ref) -> None:
    renderers = renderers_ref()
    if renderers:
        for renderer in renderers.values():
            renderer.close()
        renderers.clear()
