"""Measure the task suite: `python -m envs.benchmark [seeds=100]`.

Prints, per task: scripted-expert and random-policy success over `seeds` seeded episodes;
rendered control steps/s (64x64, one process) against the raw `mj_step` rate of the same
model. Then collection throughput with `workers` processes, and dataset read throughput
(random windows of `window` frames) from the memory-mapped shards against compressed
`.npz`. Takes about 3 minutes with the defaults on 2 cores.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import mujoco
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

import envs
from envs import scene
from envs.collect import CollectConfig, collect
from envs.dataset import EpisodeDataset, VideoClips
from envs.rollout import random_policy, rollout


@dataclass
class BenchmarkConfig:
    seeds: int = 100  # episodes per task and policy for the success rates
    steps: int = 2000  # control steps timed per task for throughput
    collect_episodes: int = 200  # episodes collected to time collection
    workers: int = 2  # collection processes
    window: int = 8  # frames per random window read from the dataset
    reads: int = 5000  # random windows read from the memory-mapped shards


ConfigStore.instance().store(name="benchmark_schema", node=BenchmarkConfig)


def success_rates(name: str, seeds: int) -> dict[str, float]:
    env = envs.make(name)
    rates = {}
    for kind in ("expert", "random"):
        wins = 0
        for seed in tqdm(range(seeds), desc=f"{name} {kind}", leave=False):
            policy = envs.expert(env) if kind == "expert" else random_policy(env, seed)
            wins += rollout(env, policy, seed, record=False)["success"]
        rates[kind] = wins / seeds
    env.close()
    return rates


def step_rates(name: str, steps: int) -> dict[str, float]:
    """Rendered control steps/s through `gymnasium.make` (64x64, noisy expert actions),
    the time of a reset (which runs the expert to make the goal image), and the raw
    `mj_step` rate of the same model."""
    env = envs.make(name)
    obs, _ = env.reset(seed=0)
    policy = envs.expert(env, noise=0.3, seed=0)
    step_time = reset_time = 0.0
    resets = 0
    for i in range(steps):
        action = policy(obs)
        start = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        step_time += time.perf_counter() - start
        if terminated or truncated:
            start = time.perf_counter()
            obs, _ = env.reset(seed=i)
            reset_time += time.perf_counter() - start
            resets += 1
    base = env.unwrapped
    start = time.perf_counter()
    for _ in range(steps * 5):
        mujoco.mj_step(base.model, base.data)
    raw = steps * 5 / (time.perf_counter() - start)
    env.close()
    return {"steps_per_s": steps / step_time, "reset_ms": 1000 * reset_time / max(resets, 1),
            "with_resets": steps / (step_time + reset_time), "mj_step_per_s": raw}


def read_rates(root: Path, window: int, reads: int) -> tuple[float, float]:
    """Random windows/s from the mmap shards, and from the same frames as `.npz`."""
    clips = VideoClips(EpisodeDataset(root), num_frames=window)
    rng = np.random.default_rng(0)
    order = rng.integers(len(clips), size=reads)
    start = time.perf_counter()
    for i in order:
        clips[i].sum(dtype=np.int64)  # touch the bytes, as a training step would
    mmap_rate = reads / (time.perf_counter() - start)
    shard = root / "shard_00000"
    pixels = np.load(shard / "pixels.npy")
    np.savez_compressed(shard.parent / "pixels.npz", pixels=pixels)
    trials = 20
    start = time.perf_counter()
    for _ in range(trials):
        s = int(rng.integers(len(pixels) - window))
        np.load(shard.parent / "pixels.npz")["pixels"][s:s + window].sum(dtype=np.int64)
    return mmap_rate, trials / (time.perf_counter() - start)


def run(cfg: BenchmarkConfig) -> None:
    header = (f"{'task':10s} {'expert':>7s} {'random':>7s} {'steps/s':>8s} {'reset ms':>9s} "
              f"{'w/ resets':>10s} {'mj_step/s':>10s} {'raw ctrl/s':>11s}")
    rows = []
    for name in envs.TASK_NAMES:
        rates = success_rates(name, cfg.seeds)
        r = step_rates(name, cfg.steps)
        rows.append(f"{name:10s} {rates['expert']:7.0%} {rates['random']:7.0%} "
                    f"{r['steps_per_s']:8.0f} {r['reset_ms']:9.1f} {r['with_resets']:10.0f} "
                    f"{r['mj_step_per_s']:10.0f} "
                    f"{r['mj_step_per_s'] / scene.N_SUBSTEPS:11.0f}")
    print(f"\nsuccess over {cfg.seeds} seeds per task. steps/s: rendered 64x64 control steps "
          f"through gymnasium.make, one process; 'raw ctrl/s' is the mj_step rate over the "
          f"{scene.N_SUBSTEPS} physics steps of a control step, without rendering")
    print(header)
    print("\n".join(rows))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "play"
        start = time.perf_counter()
        collect(CollectConfig(episodes=cfg.collect_episodes, workers=cfg.workers,
                              out_dir=str(root)))
        elapsed = time.perf_counter() - start
        frames = sum(ref.frames for ref in EpisodeDataset(root).refs)
        mmap_rate, npz_rate = read_rates(root, cfg.window, cfg.reads)
    print(f"\ncollection: {cfg.collect_episodes} episodes, {frames} frames in {elapsed:.1f} s "
          f"with {cfg.workers} workers = {cfg.collect_episodes / elapsed:.1f} episodes/s, "
          f"{frames / elapsed:.0f} frames/s (process start-up included)")
    print(f"dataset read, random {cfg.window}-frame windows, one process: "
          f"mmap .npy {mmap_rate:.0f} windows/s ({mmap_rate * cfg.window:.0f} frames/s); "
          f"compressed .npz {npz_rate:.1f} windows/s ({npz_rate * cfg.window:.0f} frames/s)")


@hydra.main(config_path="../configs", config_name="benchmark", version_base="1.3")
def main(cfg) -> None:
    run(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
