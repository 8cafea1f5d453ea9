"""V-JEPA self-supervised pretraining on the suite's videos:
`python -m worldmodel.pretrain [model=tiny] [overrides]`.

    python -m worldmodel.pretrain data_dir=data/play out_dir=runs/pretrain steps=6000
    torchrun --nproc_per_node=2 -m worldmodel.pretrain ...      # DDP: gloo on CPU, nccl on GPU

Resumable: a checkpoint is written atomically every `checkpoint_every` steps, and a rerun
with the same `out_dir` continues from it at the same schedule position (the batch of step
k depends only on `seed`, k and the rank). With `export_dir` set, the final target encoder
is written there as safetensors with its model card.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.distributed as dist
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from envs.dataset import EpisodeDataset, VideoClips
from worldmodel.augment import augment_clips
from worldmodel.checkpoint import load_checkpoint, resume, save_training
from worldmodel.config import PRESETS, VJEPAConfig
from worldmodel.encoder import frames_to_input
from worldmodel.hardware import autocast_dtype, matmul_peak, pick_device
from worldmodel.vjepa import VJEPAModel
from worldmodel.weights import ENCODER, save_weights


@dataclass
class PretrainConfig:
    model: VJEPAConfig = field(default_factory=VJEPAConfig)  # config group model/ (presets)
    data_dir: str = "data/play"  # a collection from `python -m envs.collect`
    out_dir: str = "runs/pretrain"  # checkpoints and the log
    export_dir: str | None = None  # if set, write the final encoder + model card there
    export_only: bool = False  # export the last checkpoint's encoder to export_dir, no training
    steps: int = 4000  # optimizer steps
    batch_size: int = 32  # clips per optimizer step (over all ranks and accumulation)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-5  # final learning rate of the cosine schedule
    warmup_steps: int = 200  # linear warm-up
    weight_decay: float = 0.04
    grad_clip: float = 1.0  # max gradient norm
    frameskip: int = 2  # control steps between consecutive clip frames
    # clip-length curriculum (the seed's: short clips first): from fraction
    # curriculum_starts[i] of training on, clips have curriculum_frames[i] frames
    curriculum_starts: list[float] = field(default_factory=lambda: [0.0, 0.3])
    curriculum_frames: list[int] = field(default_factory=lambda: [4, 8])
    crop_scale: list[float] = field(default_factory=lambda: [0.7, 1.0])  # crop area range
    color_jitter: float = 0.2  # brightness/contrast/saturation amplitude
    val_fraction: float = 0.1  # held-out episodes (never trained on; used by the probes)
    split_seed: int = 0  # the train/val split
    precision: str = "auto"  # auto | bf16 | fp32 (auto: the faster, measured at start-up)
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every: int = 200  # steps
    log_every: int = 25  # steps
    seed: int = 0

    def __post_init__(self):
        if self.batch_size % self.grad_accum:
            raise ValueError(f"{self.batch_size=} must be divisible by {self.grad_accum=}")
        lengths, starts = self.curriculum_frames, self.curriculum_starts
        if len(lengths) != len(starts) or not lengths or starts[0] != 0.0 or any(
                b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"{self.curriculum_starts=} must start at 0.0, increase, and "
                             f"pair with {self.curriculum_frames=}")
        if max(lengths) > self.model.num_frames or any(
                length % self.model.tubelet_size or length < 2 * self.model.tubelet_size
                for length in lengths):
            raise ValueError(f"{self.curriculum_frames=} must be multiples of tubelet_size="
                             f"{self.model.tubelet_size}, >= two tubelets, <= num_frames="
                             f"{self.model.num_frames}")
        if self.export_only and not self.export_dir:
            raise ValueError("export_only=true needs export_dir=...")
        if self.steps < 0 or self.warmup_steps < 0:
            raise ValueError(f"{self.steps=} and {self.warmup_steps=} must be >= 0 (steps=0 "
                             "exports the random-init encoder: the scratch baseline)")


cs = ConfigStore.instance()
cs.store(name="pretrain_schema", node=PretrainConfig)
for _name, _preset in PRESETS.items():
    cs.store(group="model", name=_name, node=_preset)


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up to `lr`, then cosine decay to `min_lr`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    # a Python float: the optimizer state must load with torch.load(weights_only=True)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def clip_length(cfg: PretrainConfig, step: int) -> int:
    """Frames per clip at `step` under the curriculum."""
    length = cfg.curriculum_frames[0]
    for start, frames in zip(cfg.curriculum_starts, cfg.curriculum_frames):
        if step >= start * cfg.steps:
            length = frames
    return length


def make_batch(cfg: PretrainConfig, clips: VideoClips, step: int, micro: int, rank: int,
               batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Generator]:
    """The micro-batch `micro` of optimizer step `step` on `rank`: a pure function of
    those and `cfg.seed`, so a resumed run sees the same data and masks.
    -> (float video (B, C, T, H, W), the generator to draw its masks from)."""
    seed = np.random.SeedSequence([cfg.seed, step, micro, rank]).generate_state(1)[0]
    generator = torch.Generator().manual_seed(int(seed))
    index = torch.randint(len(clips), (batch,), generator=generator)
    frames = torch.from_numpy(np.stack([clips[int(i)] for i in index]))  # (B, Tmax, H, W, C)
    # temporal jitter: a random window of the curriculum's length inside each clip
    length = clip_length(cfg, step)
    offsets = torch.randint(0, frames.shape[1] - length + 1, (batch,), generator=generator)
    frames = torch.stack([f[o:o + length] for f, o in zip(frames, offsets.tolist())])
    video = frames_to_input(frames).permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
    video = augment_clips(video, crop_scale=tuple(cfg.crop_scale), color=cfg.color_jitter,
                          generator=generator)
    return video.to(device), generator


def git_revision() -> str:
    """The checkout's short commit, with "+changes" when its code (envs, planners,
    worldmodel, configs) differs from that commit: a result then ran on uncommitted code."""
    root = Path(__file__).parents[1]
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, cwd=root, check=True).stdout.strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "envs", "planners",
                                  "worldmodel", "configs"], cwd=root).returncode == 1
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + ("+changes" if changed else "")


def export(cfg: PretrainConfig, model: VJEPAModel, data: EpisodeDataset, train_episodes: int,
           elapsed: float, steps: int, final: dict) -> Path:
    """Write the target encoder and its model card to `cfg.export_dir`."""
    what = ("V-JEPA target encoder (EMA), self-supervised on play videos of the four tasks; "
            "frames are encoded alone (per-frame features)") if steps else (
            f"random-init V-JEPA encoder (seed {cfg.seed}, no training): the scratch baseline")
    card = {"name": ENCODER, "what": what,
            "command": "python -m worldmodel.pretrain " + " ".join(
                a for a in sys.argv[1:] if not a.startswith("export_only")),
            "config": cfg.model.to_dict(), "training": asdict(cfg) | {"model": None},
            "data": {"dir": cfg.data_dir, "train_episodes": train_episodes,
                     "collection": data.manifest["config"]},
            "steps": steps, "wall_time_s": round(elapsed, 1), "final_metrics": final,
            "git_revision": git_revision()}
    path = save_weights(cfg.export_dir, ENCODER, model.target_encoder, card)
    print(f"exported the encoder ({steps} steps) to {path}")
    return path


def export_checkpoint(cfg: PretrainConfig) -> Path:
    """Export the last checkpoint of `cfg.out_dir` without training."""
    state = load_checkpoint(cfg.out_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out_dir} to export")
    model = VJEPAModel(cfg.model)
    model.load_state_dict(state["model"])
    data = EpisodeDataset(cfg.data_dir)
    train_set, _ = data.split(cfg.val_fraction, seed=cfg.split_seed)
    history = json.loads(state["history"])
    return export(cfg, model, data, len(train_set), state["elapsed"], state["step"],
                  history[-1] if history else {})


def train(cfg: PretrainConfig) -> dict:
    """Pretrain (or resume) and return the final metrics."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = pick_device(cfg.device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    main = rank == 0
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"{cfg.batch_size=} must be divisible by world size {world} x "
                         f"{cfg.grad_accum=}")
    micro_batch = cfg.batch_size // (world * cfg.grad_accum)
    torch.manual_seed(cfg.seed)

    data = EpisodeDataset(cfg.data_dir)
    train_set, _ = data.split(cfg.val_fraction, seed=cfg.split_seed)
    clips = VideoClips(train_set, cfg.model.num_frames, frameskip=cfg.frameskip)
    model = VJEPAModel(cfg.model).to(device)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    out = Path(cfg.out_dir)
    start_step, elapsed_before, history = resume(out, model, optimizer)
    amp = autocast_dtype(device, cfg.precision)
    peak = matmul_peak(device.type, amp or torch.float32)
    engine = DistributedDataParallel(model) if distributed else model
    if main:
        params = sum(p.numel() for p in model.encoder.parameters())
        print(f"V-JEPA pretraining: encoder {params / 1e6:.1f}M params, {len(train_set)} train "
              f"episodes ({len(clips)} clips), {world} process(es) on {device}, "
              f"{'bf16' if amp else 'fp32'} (matmul peak {peak / 1e9:.0f} GFLOP/s)")
        print(f"{'step':>6s} {'loss':>7s} {'tgt_std':>7s} {'pred_std':>8s} {'rank':>5s} {'lr':>8s} "
              f"{'ema':>7s} {'T':>3s} {'clips/s':>8s} {'%peak':>6s}")

    flops_per_clip: dict[int, float] = {}
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not main, unit="step",
               desc="pretrain")
    tick, clips_seen, metrics = time.perf_counter(), 0, {}
    run_start = time.perf_counter()
    for step in range(start_step, cfg.steps):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        length = clip_length(cfg, step)
        for micro in range(cfg.grad_accum):
            video, generator = make_batch(cfg, clips, step, micro, rank, micro_batch, device)
            count = length not in flops_per_clip and main
            counter = FlopCounterMode(display=False) if count else None
            with counter or contextlib.nullcontext():
                with torch.autocast(device.type, dtype=amp or torch.float32,
                                    enabled=amp is not None):
                    loss, metrics = engine(video, generator=generator)
                (loss / cfg.grad_accum).backward()
            if count:
                flops_per_clip[length] = counter.get_total_flops() / micro_batch
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        momentum = model.update_target(step, cfg.steps)
        clips_seen += cfg.batch_size
        bar.update(1)

        done = step + 1
        if main and (done % cfg.log_every == 0 or done == cfg.steps):
            now = time.perf_counter()
            rate = clips_seen / (now - tick)
            fraction = rate * flops_per_clip.get(length, 0.0) / world / peak
            row = {"step": done, "loss": float(metrics["loss"]),
                   "target_std": float(metrics["target_std"]),
                   "pred_std": float(metrics["pred_std"]),
                   "target_rank": float(metrics["target_rank"]), "lr": learning_rate(cfg, step),
                   "ema": momentum, "frames": length, "clips_per_s": rate,
                   "peak_fraction": fraction}
            if "spread" in metrics:
                row["spread"] = float(metrics["spread"])
            history.append(row)
            bar.write(f"{done:6d} {row['loss']:7.4f} {row['target_std']:7.3f} "
                      f"{row['pred_std']:8.3f} {row['target_rank']:5.1f} {row['lr']:8.2e} "
                      f"{momentum:7.5f} {length:3d} {rate:8.1f} {100 * fraction:5.1f}%"
                      + ("  COLLAPSED: features have no spread" if metrics["collapsed"] else
                         "  RANK-COLLAPSED: content varies in too few directions"
                         if metrics["rank_collapsed"] else ""))
            tick, clips_seen = now, 0
        if main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_training(out, model, optimizer, step=done,
                          elapsed=elapsed_before + time.perf_counter() - run_start,
                          history=history, config=asdict(cfg))
    bar.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    final = history[-1] if history else {}
    if main and cfg.export_dir:
        export(cfg, model, data, len(train_set), elapsed_before + time.perf_counter() - run_start,
               cfg.steps, final)
    return final


@hydra.main(config_path="../configs", config_name="pretrain", version_base="1.3")
def main(cfg) -> None:
    cfg = OmegaConf.to_object(cfg)
    export_checkpoint(cfg) if cfg.export_only else train(cfg)


if __name__ == "__main__":
    main()
