"""How fast the RL wrappers step: `python -m worldmodel.rl_benchmark [task=push] [steps=200]`.

Measures environment steps per second (random actions, resets included) of the raw task env
and of each wrapper, alone and as a vector env of `num_envs` (a `SyncVectorEnv`, whose frames
the vector wrapper encodes in one batch), and of the imagination env against the real env.
Prints a table and, with `report=...`, writes it as JSON (the README's table reads
`reports/rl_wrappers.json`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import envs
from worldmodel.report import save_json
from worldmodel.weights import PRETRAINED_DIR, load_pretrained
from worldmodel.wrappers import (
    GoalImageReward,
    ImaginationEnv,
    ImaginationVectorEnv,
    LatentObservation,
    VectorLatentObservation,
)


@dataclass
class RLBenchmarkConfig:
    task: str = "push"  # push | pick_place | drawer | button
    steps: int = 200  # timed steps per env (a vector step counts num_envs steps)
    num_envs: int = 8
    weights_dir: str = str(PRETRAINED_DIR)
    seed: int = 0
    report: str | None = None  # if set, write the results there (JSON)

    def __post_init__(self):
        if self.task not in envs.TASK_NAMES:
            raise ValueError(f"{self.task=}: valid tasks are {', '.join(envs.TASK_NAMES)}")
        if self.steps < 1 or self.num_envs < 1:
            raise ValueError(f"{self.steps=} and {self.num_envs=} must be >= 1")


ConfigStore.instance().store(name="rl_benchmark_schema", node=RLBenchmarkConfig)


def steps_per_second(env, steps: int, seed: int, vector: bool) -> float:
    """Random-action env steps per second, resets included (vector: sub-env steps)."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    calls = max(1, steps // env.num_envs) if vector else steps
    start = time.perf_counter()
    for _ in range(calls):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if not vector and (terminated or truncated):
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return calls * (env.num_envs if vector else 1) / elapsed


@torch.no_grad()
def benchmark(cfg: RLBenchmarkConfig) -> dict:
    model = load_pretrained(cfg.weights_dir, predictor=True)
    task, n = cfg.task, cfg.num_envs

    def vec(wrap=None):
        def make():
            return envs.make(task)
        env = gym.vector.SyncVectorEnv([make] * n)
        return wrap(env) if wrap else env

    cases = {
        "raw env": (lambda: envs.make(task), False),
        "LatentObservation": (lambda: LatentObservation(envs.make(task), model), False),
        "GoalImageReward": (lambda: GoalImageReward(envs.make(task), model), False),
        "ImaginationEnv": (lambda: ImaginationEnv(task, model), False),
        f"raw SyncVectorEnv x{n}": (lambda: vec(), True),
        f"VectorLatentObservation x{n}": (
            lambda: vec(lambda e: VectorLatentObservation(e, model)), True),
        f"ImaginationVectorEnv x{n}": (lambda: ImaginationVectorEnv(task, n, model), True),
    }
    rows = []
    print(f"{'env':32s} {'steps/s':>9s}  ({task}, {cfg.steps} steps each, "
          f"{torch.get_num_threads()} threads)")
    for name, (make, vector) in cases.items():
        rate = steps_per_second(make(), cfg.steps, cfg.seed, vector)
        rows.append({"env": name, "steps_per_s": rate})
        print(f"{name:32s} {rate:9.1f}")
    report = {"config": asdict(cfg), "threads": torch.get_num_threads(), "results": rows}
    if cfg.report:
        save_json(cfg.report, report)
    return report


@hydra.main(config_path="../configs", config_name="rl_benchmark", version_base="1.3")
def main(cfg) -> None:
    benchmark(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
