"""Factorized vs joint space-time attention, the seed's ablation reproduced in one run:
`python -m worldmodel.benchmark`.

For each shape (the CPU preset at its training batch, and the seed's base preset on
16-frame 224 px clips at batch 1) and each attention layout, one fresh process trains
V-JEPA for a few steps (forward, backward, AdamW step, EMA update) and reports training
iterations/s and peak memory (the process's peak resident set, and its growth over the
resident set before the first step). The seed reports 8.7 vs 1.2 it/s and 12.1 vs 38.4 GB
(factorized vs joint) on its GPU.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass, field

import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from worldmodel.config import preset
from worldmodel.hardware import autocast_dtype, pick_device
from worldmodel.report import attention_table, save_json
from worldmodel.vjepa import VJEPAModel


@dataclass
class BenchmarkConfig:
    shapes: list[str] = field(default_factory=lambda: ["tiny", "base"])  # presets to time
    tiny_batch: int = 16  # clips per step for the CPU presets
    base_batch: int = 1  # clips per step for the seed-scale presets
    iterations: int = 3  # timed steps (after one warm-up step)
    precision: str = "auto"  # auto | bf16 | fp32
    device: str = "auto"
    report: str | None = None  # also write the results here (reports/attention.json: README)


ConfigStore.instance().store(name="worldmodel_benchmark_schema", node=BenchmarkConfig)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _case(args: tuple[str, bool, int, int, str, str]) -> dict:
    """Runs in a fresh process: train a few steps, return it/s and memory."""
    name, factorized, batch, iterations, precision, device_name = args
    torch.manual_seed(0)
    device = pick_device(device_name)
    cfg = preset(name, factorized=factorized)
    model = VJEPAModel(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = autocast_dtype(device, precision)
    video = torch.randn(batch, 3, cfg.num_frames, cfg.image_size, cfg.image_size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mb()

    def step(i: int) -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, _ = model(video)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_target(i, 100)

    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(iterations):
        step(i + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = iterations / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    tokens = cfg.time_steps * cfg.num_patches
    return {"shape": name, "attention": "factorized" if factorized else "joint",
            "batch": batch, "tokens": tokens, "it_per_s": rate, "clips_per_s": rate * batch,
            "peak_rss_mb": peak, "training_mb": peak - before, "gpu_peak_mb": gpu,
            "precision": "bf16" if amp else "fp32", "device": str(device)}


def run(cfg: BenchmarkConfig) -> list[dict]:
    """Time every case, print a table, and write `cfg.report` if set."""
    context = mp.get_context("spawn")  # one fresh process per case: clean peak memory
    results = []
    for name in cfg.shapes:
        batch = cfg.tiny_batch if name in ("tiny", "small") else cfg.base_batch
        for factorized in (True, False):
            with context.Pool(1) as pool:
                results.append(pool.apply(_case, ((name, factorized, batch, cfg.iterations,
                                                   cfg.precision, cfg.device),)))
            r = results[-1]
            print(f"{r['shape']:6s} {r['attention']:10s} batch {r['batch']:3d} "
                  f"tokens {r['tokens']:5d}  {r['it_per_s']:7.3f} it/s "
                  f"({r['clips_per_s']:6.2f} clips/s)  peak RSS {r['peak_rss_mb']:8.0f} MB "
                  f"(+{r['training_mb']:.0f} MB training) {r['precision']} {r['device']}",
                  flush=True)
    report = {"config": asdict(cfg), "results": results}
    print("\n" + attention_table(report))
    if cfg.report:
        save_json(cfg.report, report)
        print(f"wrote {cfg.report}")
    return results


@hydra.main(config_path="../configs", config_name="worldmodel_benchmark", version_base="1.3")
def main(cfg) -> None:
    run(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
