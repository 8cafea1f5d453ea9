"""Watch the scripted expert solve a task: `python -m envs.demo env=push`.

Writes `expert_<env>_seed<N>.mp4` into the Hydra run directory: the camera view (left)
beside the episode's goal image (right), and prints success and final task distance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import envs
from envs.config import EnvConfig
from envs.rollout import rollout
from envs.video import side_by_side, write_video


@dataclass
class DemoConfig:
    env: EnvConfig = field(default_factory=EnvConfig)  # the task (config group env/)
    episodes: int = 1  # episodes, seeds `seed`, `seed + 1`, ...
    seed: int = 0  # first env seed
    noise: float = 0.0  # expert action noise std (0: the clean expert)
    video_size: int = 256  # pixels, square, for the video

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"{self.episodes=} must be >= 1")


ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


def run(cfg: DemoConfig, out_dir: Path) -> list[dict]:
    name = cfg.env.name
    env = envs.make(name, image_size=cfg.video_size, cameras=tuple(cfg.env.cameras))
    results = []
    for seed in range(cfg.seed, cfg.seed + cfg.episodes):
        start = time.perf_counter()
        episode = rollout(env, envs.expert(env, noise=cfg.noise, seed=seed), seed)
        frames = [side_by_side(frame, episode["goal_pixels"]) for frame in episode["pixels"]]
        path = write_video(out_dir / f"expert_{name}_seed{seed}.mp4", frames,
                           fps=env.metadata["render_fps"])
        print(f"{name:10s} seed {seed:4d}  success {episode['success']!s:5s}  "
              f"final distance {100 * episode['final_distance']:5.1f} cm  "
              f"steps {episode['steps']:3d}  {time.perf_counter() - start:5.2f} s  -> {path}")
        results.append(episode)
    env.close()
    return results


@hydra.main(config_path="../configs", config_name="demo", version_base="1.3")
def main(cfg) -> None:
    run(OmegaConf.to_object(cfg), Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
