"""Collect task-agnostic play data: `python -m envs.collect [overrides]`.

    python -m envs.collect                                  # 2,000 episodes, all tasks
    python -m envs.collect episodes=200 tasks=[push,drawer] out_dir=data/small
    python -m envs.collect cameras=[front,side] workers=2

Episode k (0-based) of a collection is fully determined by the config: task
`tasks[k % len(tasks)]`, env seed `seed + k`, and its policy (noisy expert or smooth random
motion, and the noise level) drawn from a generator seeded with `seed + k`. Shards hold
consecutive episodes and are written atomically, so an interrupted collection rerun with
the same config only collects the shards that are missing; raising `episodes` extends it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

from envs import TASK_NAMES as _TASKS
from envs import dataset
from envs.scene import CAMERAS

log = logging.getLogger(__name__)


@dataclass
class CollectConfig:
    tasks: list[str] = field(default_factory=lambda: list(_TASKS))  # round-robin over these
    episodes: int = 2000  # total episodes over all tasks
    episodes_per_shard: int = 20  # episodes per shard (the unit of resume)
    expert_fraction: float = 0.75  # share of noisy-expert episodes
    reach_fraction: float = 0.0  # share of contact-seeking episodes (envs.reach, noisy as the
    # expert); the rest is smooth random motion
    noise_min: float = 0.05  # expert action noise std (action units), drawn uniformly per
    noise_max: float = 0.6  # episode from [noise_min, noise_max]
    image_size: int = 64  # pixels, square
    cameras: list[str] = field(default_factory=lambda: ["front"])  # first one is `pixels`
    out_dir: str = "data/play"  # collection directory (relative to where you run it)
    workers: int = 2  # processes; one per core
    seed: int = 0  # episode k uses env seed `seed + k`

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in _TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"{self.tasks=} must be a non-empty list of {list(_TASKS)}")
        bad_cameras = [c for c in self.cameras if c not in CAMERAS]
        if not self.cameras or bad_cameras:
            raise ValueError(f"{self.cameras=} must be a non-empty list of {list(CAMERAS)}")
        if self.episodes < 1 or self.episodes_per_shard < 1 or self.workers < 1:
            raise ValueError(f"{self.episodes=}, {self.episodes_per_shard=} and "
                             f"{self.workers=} must be >= 1")
        if not (0.0 <= self.expert_fraction and 0.0 <= self.reach_fraction
                and self.expert_fraction + self.reach_fraction <= 1.0):
            raise ValueError(f"{self.expert_fraction=} and {self.reach_fraction=} must be "
                             ">= 0 with a sum <= 1")
        if not 0.0 <= self.noise_min <= self.noise_max:
            raise ValueError(f"need 0 <= {self.noise_min=} <= {self.noise_max=}")


ConfigStore.instance().store(name="collect_schema", node=CollectConfig)


def episode_plan(cfg: CollectConfig, k: int) -> dict:
    """Task, seed and policy of episode `k`: a pure function of the config."""
    rng = np.random.default_rng([cfg.seed, k])
    draw = rng.random()
    policy = ("expert" if draw < cfg.expert_fraction else
              "reach" if draw < cfg.expert_fraction + cfg.reach_fraction else "random")
    return {"index": k, "task": cfg.tasks[k % len(cfg.tasks)], "seed": cfg.seed + k,
            "policy": policy, "noise": None if policy == "random" else float(
                rng.uniform(cfg.noise_min, cfg.noise_max))}


def _collect_shard(args: tuple[dict, int]) -> tuple[int, dict]:
    """Worker: collect and write one shard. Returns (shard index, manifest entry)."""
    import envs
    from envs.rollout import rollout, smooth_random_policy

    cfg_dict, index = args
    cfg = CollectConfig(**cfg_dict)
    first = index * cfg.episodes_per_shard
    last = min(first + cfg.episodes_per_shard, cfg.episodes)
    episodes, meta = [], []
    made = {}
    for k in range(first, last):
        plan = episode_plan(cfg, k)
        env = made.get(plan["task"])
        if env is None:
            env = made[plan["task"]] = envs.make(plan["task"], image_size=cfg.image_size,
                                                 cameras=tuple(cfg.cameras))
        if plan["policy"] in ("expert", "reach"):
            make_policy = envs.expert if plan["policy"] == "expert" else envs.reach
            policy = make_policy(env, noise=plan["noise"], seed=plan["seed"])
        else:
            policy = smooth_random_policy(env, seed=plan["seed"])
        episodes.append(rollout(env, policy, plan["seed"]))
        meta.append(plan)
    for env in made.values():
        env.close()
    return index, dataset.write_shard(Path(cfg.out_dir), index, episodes, meta)


def collect(cfg: CollectConfig) -> Path:
    """Collect the shards of `cfg` that are not on disk yet; returns the directory."""
    root = Path(cfg.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / dataset.MANIFEST
    identity = {k: v for k, v in asdict(cfg).items() if k not in ("episodes", "workers",
                                                                  "out_dir")}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        manifest["config"].setdefault("reach_fraction", 0.0)  # collected before it existed
        if manifest["config"] != identity:
            raise ValueError(
                f"{root} holds a collection made with another config:\n"
                f"  on disk: {manifest['config']}\n  asked:   {identity}\n"
                "choose another out_dir, or delete that directory to start over")
    else:
        manifest = {"version": 1, "config": identity, "shards": {}}
    for stale in root.glob(".shard_*.tmp-*"):  # left by a killed worker
        shutil.rmtree(stale, ignore_errors=True)
    n_shards = -(-cfg.episodes // cfg.episodes_per_shard)
    todo = []
    for i in range(n_shards):
        expected = min(cfg.episodes_per_shard, cfg.episodes - i * cfg.episodes_per_shard)
        done = manifest["shards"].get(dataset.shard_name(i))
        if done is None or done["episodes"] != expected:
            todo.append(i)
    # a shard that now holds fewer episodes than asked (episodes was raised) is redone
    for i in todo:
        manifest["shards"].pop(dataset.shard_name(i), None)
    manifest["episodes"] = cfg.episodes
    dataset.write_json_atomic(manifest_path, manifest)
    if not todo:
        log.info("all %d shards of %s are already collected", n_shards, root)
        return root

    cfg_dict = asdict(cfg)
    episodes_todo = sum(min(cfg.episodes_per_shard, cfg.episodes - i * cfg.episodes_per_shard)
                        for i in todo)
    start, frames = time.perf_counter(), 0
    bar = tqdm(total=episodes_todo, unit="ep", desc=f"collect -> {root}")
    context = mp.get_context("spawn")  # fresh processes: no GL context crosses a fork
    with context.Pool(min(cfg.workers, len(todo))) as pool:
        for index, entry in pool.imap_unordered(_collect_shard, [(cfg_dict, i) for i in todo]):
            manifest["shards"][dataset.shard_name(index)] = entry
            dataset.write_json_atomic(manifest_path, manifest)
            frames += entry["frames"]
            elapsed = time.perf_counter() - start
            bar.update(entry["episodes"])
            bar.set_postfix_str(f"{bar.n / elapsed:6.1f} ep/s {frames / elapsed:7.0f} frames/s")
    bar.close()
    elapsed = time.perf_counter() - start
    print(f"collected {episodes_todo} episodes ({frames} frames) in {elapsed:.1f} s: "
          f"{episodes_todo / elapsed:.1f} episodes/s, {frames / elapsed:.0f} frames/s "
          f"with {cfg.workers} workers -> {root}")
    return root


@hydra.main(config_path="../configs", config_name="collect", version_base="1.3")
def main(cfg) -> None:
    collect(OmegaConf.to_object(cfg))  # the CollectConfig, validated


if __name__ == "__main__":
    main()
