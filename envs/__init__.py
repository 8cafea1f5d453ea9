"""Four MuJoCo manipulation tasks as Gymnasium environments, with scripted experts, goal
images and play-data collection.

    import envs
    env = envs.make("push")                      # == gymnasium.make("WorldModel/Push-v0")
    obs, info = env.reset(seed=0)                # info["goal_pixels"]: the goal image
    policy = envs.expert(env, noise=0.1, seed=0)
    obs, reward, terminated, truncated, info = env.step(policy(obs))
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless, fast CPU rendering
# Mesa's software rasteriser renders 64x64 frames ~25 % faster on the calling thread
# than with its worker threads (measured); collection uses one process per core anyway.
os.environ.setdefault("LP_NUM_THREADS", "0")

import gymnasium as gym  # noqa: E402

from envs.experts import expert, reach  # noqa: E402

# name -> (gymnasium id, "module:Task class")
TASKS = {
    "push": ("WorldModel/Push-v0", "envs.push:Push"),
    "pick_place": ("WorldModel/PickPlace-v0", "envs.pick_place:PickPlace"),
    "drawer": ("WorldModel/Drawer-v0", "envs.drawer:Drawer"),
    "button": ("WorldModel/Button-v0", "envs.button:Button"),
}
TASK_NAMES = tuple(TASKS)


def task_class(name: str):
    """The task's class (envs.task.Task) by short name."""
    module, cls = TASKS[name][1].split(":")
    return getattr(__import__(module, fromlist=[cls]), cls)


def _entry_point(name: str):
    def make_env(**kwargs):
        from envs.manipulation import ManipulationEnv

        return ManipulationEnv(task_class(name)(), **kwargs)

    return make_env


def make(name: str, **kwargs) -> gym.Env:
    """The same environment as `gymnasium.make` of the task's id, by short name."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    return gym.make(TASKS[name][0], **kwargs)


def check_tasks(names) -> None:
    """A ValueError naming the valid tasks unless `names` is a non-empty list of them."""
    unknown = [n for n in names if n not in TASKS]
    if not names or unknown:
        raise ValueError(f"tasks={list(names)}: valid tasks are {', '.join(TASK_NAMES)}")


def step_budget(name: str) -> int:
    """The task's fixed number of control steps per episode."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    return task_class(name).step_budget


for _name, (_id, _) in TASKS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_entry_point(_name),
                     max_episode_steps=task_class(_name).step_budget)

__all__ = ["TASKS", "TASK_NAMES", "check_tasks", "expert", "make", "reach", "step_budget",
           "task_class"]
