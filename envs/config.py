"""The `env` config group's schema, shared by every entry point that runs a task."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from envs import TASK_NAMES
from envs.scene import CAMERAS


@dataclass
class EnvConfig:
    name: str = "push"  # push | pick_place | drawer | button
    image_size: int = 64  # pixels, square observations
    cameras: list[str] = field(default_factory=lambda: ["front"])  # first one is `pixels`

    def __post_init__(self):
        if self.name not in TASK_NAMES:
            raise ValueError(f"{self.name=} is not a task; valid: {', '.join(TASK_NAMES)}")
        if not self.cameras or any(c not in CAMERAS for c in self.cameras):
            raise ValueError(f"{self.cameras=} must be a non-empty list of {list(CAMERAS)}")


ConfigStore.instance().store(group="env", name="env_schema", node=EnvConfig)
