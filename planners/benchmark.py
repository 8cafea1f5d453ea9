"""How fast the planner plans: `python -m planners.benchmark [env=push] [planner=cem] ...`.

Takes the same config as `planners.mpc`. Plans `repeats` times from a real observation of
the task towards its goal image (warm-started, as in MPC) and prints the median
milliseconds per planning step, the imagined samples x steps per second, the model FLOP
per plan (counted by PyTorch) and the FLOP/s as a fraction of the machine's matmul peak,
measured in the same run; then a profile of where the time goes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from planners.mpc import MPCConfig, build_agent, make_env
from worldmodel.hardware import matmul_peak
from worldmodel.report import save_json


@dataclass
class PlannerBenchmarkConfig(MPCConfig):
    repeats: int = 10  # timed planning steps
    profile: bool = True  # print the operators that take the time
    report: str | None = None  # if set, add the result to that JSON (one row per planner)

    def __post_init__(self):
        super().__post_init__()
        if self.repeats < 1:
            raise ValueError(f"{self.repeats=} must be >= 1")


ConfigStore.instance().store(name="planner_benchmark_schema", node=PlannerBenchmarkConfig)


@torch.no_grad()
def benchmark(cfg: PlannerBenchmarkConfig) -> dict:
    agent = build_agent(cfg)
    env = make_env(cfg, agent.model)
    obs, info = env.reset(seed=cfg.seed)
    env.close()
    agent.reset(info["goal_pixels"])
    generator = torch.Generator().manual_seed(cfg.seed)
    agent.act(obs, generator)  # warm-up (allocations, first-call overheads)
    counter = FlopCounterMode(display=False)
    with counter:
        agent.act(obs, generator)
    flops = counter.get_total_flops()
    times = []
    for _ in range(cfg.repeats):
        start = time.perf_counter()
        agent.act(obs, generator)
        times.append(time.perf_counter() - start)
    p = cfg.planner
    median = float(np.median(times))
    rollouts = p.num_samples * p.horizon * p.iterations / median
    peak = matmul_peak(cfg.device, torch.float32)
    result = {"env": cfg.env.name, "planner": p.name, "num_samples": p.num_samples,
              "iterations": p.iterations, "horizon": p.horizon, "threads": torch.get_num_threads(),
              "median_ms_per_plan": 1e3 * median, "samples_x_steps_per_s": rollouts,
              "gflop_per_plan": flops / 1e9, "model_gflop_per_s": flops / median / 1e9,
              "matmul_peak_gflop_per_s": peak / 1e9, "peak_fraction": flops / median / peak,
              "config": OmegaConf.to_container(OmegaConf.structured(cfg))}
    print(f"{p.name} {p.num_samples} samples x {p.iterations} iterations x horizon "
          f"{p.horizon} on {cfg.device} ({torch.get_num_threads()} threads):")
    print(f"  median {result['median_ms_per_plan']:.0f} ms per planning step "
          f"(min {1e3 * min(times):.0f}, max {1e3 * max(times):.0f}, {cfg.repeats} plans)")
    print(f"  {rollouts:,.0f} imagined samples x steps per second")
    print(f"  {result['gflop_per_plan']:.1f} GFLOP per plan -> {result['model_gflop_per_s']:.0f} "
          f"GFLOP/s = {100 * result['peak_fraction']:.0f} % of the measured matmul peak "
          f"({result['matmul_peak_gflop_per_s']:.0f} GFLOP/s)")
    if cfg.report:
        path = Path(cfg.report)
        report = json.loads(path.read_text()) if path.exists() else {"results": []}
        report["results"] = [r for r in report["results"] if r["planner"] != p.name] + [result]
        save_json(path, report)
    if cfg.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            agent.act(obs, generator)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    return result


@hydra.main(config_path="../configs", config_name="planner_benchmark", version_base="1.3")
def main(cfg) -> None:
    benchmark(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
