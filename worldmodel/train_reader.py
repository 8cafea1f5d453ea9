"""Train the proprio reader (`worldmodel.reader`) on play data:
`python -m worldmodel.train_reader data_dir=data/play_wide export_dir=runs/wide_pre`.

Every `frame_stride`-th frame of the training episodes, labelled with the proprio recorded
with it (no rewards, no task labels, no object state). Resumable like the other trainers
(atomic checkpoints; the batch of step k depends only on `seed` and k). At the end it
measures the reading error on held-out episodes, on their frames and on their goal images
(what the planner reads), per task, and writes it into the report and the model card.

`target=contact` trains the same network as a *contact reader* instead: image -> the point
(xyz) where the gripper engages the scene's task object (`envs.task.Task.contact_point`),
labelled with the object state the play data recorded. That is simulator state used as a
training label (never at planning time, where the reader sees only the camera image), so
planning with it (`objective.contact_weight`) is reported as a separate variant.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

from envs.dataset import EpisodeDataset
from worldmodel.checkpoint import load_checkpoint, resume, save_training
from worldmodel.hardware import pick_device
from worldmodel.pretrain import git_revision, learning_rate
from worldmodel.reader import ProprioReader, ReaderConfig
from worldmodel.report import save_json
from worldmodel.weights import CONTACT_READER, READER, save_weights

# target -> (weights file stem, what the model card says it reads)
TARGETS = {
    "proprio": (READER, "proprio reader: camera image -> the robot's proprio (gripper "
                "position, opening), trained on play data frames labelled with their own "
                "proprio; no rewards, task labels or object state"),
    "contact": (CONTACT_READER, "contact reader: camera image -> the point (xyz, m) where "
                "the gripper engages the task object (envs.task.Task.contact_point), trained "
                "on play data frames labelled with the recorded object state (simulator "
                "state as a training label; never read at planning time); no rewards"),
}


@dataclass
class TrainReaderConfig:
    model: ReaderConfig = field(default_factory=ReaderConfig)  # the reader (model.*)
    target: str = "proprio"  # proprio: the robot's proprio | contact: the task contact point
    data_dir: str = "data/play_wide"  # a collection from `python -m envs.collect`
    out_dir: str = "runs/train_reader"  # checkpoints
    export_dir: str | None = None  # if set, write the reader + model card there
    report: str | None = None  # if set, write the held-out error report (JSON) there
    steps: int = 3000  # optimizer steps
    batch_size: int = 128  # images per step
    frame_stride: int = 2  # every k-th frame of each training episode
    lr: float = 2e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.01
    val_fraction: float = 0.1  # held-out episodes; the same split as the other trainers
    split_seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every: int = 250
    log_every: int = 100
    seed: int = 0

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"{self.target=} must be one of {', '.join(TARGETS)}")
        if self.steps < 1 or self.batch_size < 1 or self.frame_stride < 1:
            raise ValueError(f"{self.steps=}, {self.batch_size=} and {self.frame_stride=} "
                             "must be >= 1")


ConfigStore.instance().store(name="train_reader_schema", node=TrainReaderConfig)


def load_frames(data: EpisodeDataset, stride: int, target: str = "proprio"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every `stride`-th frame of each episode of `data`, its label and its task:
    uint8 (N, H, W, 3), float32 (N, S) (the proprio, or with `target="contact"` the task's
    contact point (N, 3)) and str (N,)."""
    pixels, labels, tasks = [], [], []
    for ref in tqdm(data.refs, desc="loading frames", unit="episode", leave=False):
        arrays = data.arrays(ref.shard)
        rows = slice(ref.start, ref.start + ref.frames, stride)
        pixels.append(np.asarray(arrays["pixels"][rows]))
        if target == "contact":
            labels.append(data.contact_points(ref, rows))
        else:
            labels.append(np.asarray(arrays["proprio"][rows], dtype=np.float32))
        tasks.append(np.full(len(pixels[-1]), ref.meta["task"]))
    return np.concatenate(pixels), np.concatenate(labels), np.concatenate(tasks)


def load_goals(data: EpisodeDataset) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each episode's goal image, goal proprio and task."""
    pixels, proprio, tasks = [], [], []
    for ref in data.refs:
        arrays, k = data.arrays(ref.shard), ref.meta["index_in_shard"]
        pixels.append(np.asarray(arrays["goal_pixels"][k]))
        proprio.append(np.asarray(arrays["goal_proprio"][k], dtype=np.float32))
        tasks.append(ref.meta["task"])
    return np.stack(pixels), np.stack(proprio), tasks


@torch.no_grad()
def reading_error(reader: ProprioReader, pixels: np.ndarray, proprio: np.ndarray,
                  batch: int = 512) -> dict:
    """Position error (cm: median, mean, p90) and, for proprio, the gripper opening's error
    (data units, median) of the reader on images with known labels."""
    reader.eval()
    read = torch.cat([reader.read(torch.from_numpy(pixels[i:i + batch])).cpu()
                      for i in range(0, len(pixels), batch)])
    truth = torch.from_numpy(proprio)
    position = 100 * (read[:, :3] - truth[:, :3]).norm(dim=1)
    return {"images": len(pixels), "position_cm_median": position.median().item(),
            "position_cm_mean": position.mean().item(),
            "position_cm_p90": position.quantile(0.9).item()} | ({
            "opening_median": (read[:, 3:] - truth[:, 3:]).abs().median().item()}
        if truth.shape[1] > 3 else {})


def evaluate(reader: ProprioReader, val: EpisodeDataset, stride: int,
             target: str = "proprio") -> dict:
    """Held-out reading error on frames, overall and per task, and for proprio on the goal
    images too (what the planner reads)."""
    pixels, labels, frame_tasks = load_frames(val, stride, target)
    result = {"frames": reading_error(reader, pixels, labels),
              "frames_per_task": {task: reading_error(reader, pixels[frame_tasks == task],
                                                      labels[frame_tasks == task])
                                  for task in sorted(set(frame_tasks))}}
    if target == "contact":  # the goal images' object state is not recorded
        return result
    goal_pixels, goal_proprio, tasks = load_goals(val)
    tasks = np.array(tasks)
    return result | {"goal_images": reading_error(reader, goal_pixels, goal_proprio),
            "goal_images_per_task": {
                task: reading_error(reader, goal_pixels[tasks == task],
                                    goal_proprio[tasks == task])
                for task in sorted(set(tasks))}}


def train(cfg: TrainReaderConfig) -> dict:
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = EpisodeDataset(cfg.data_dir)
    size = data.manifest["config"]["image_size"]
    if size != cfg.model.image_size:
        raise ValueError(f"{cfg.data_dir} has {size}px images; set model.image_size={size}")
    train_set, val_set = data.split(cfg.val_fraction, seed=cfg.split_seed)
    pixels, labels, _ = load_frames(train_set, cfg.frame_stride, cfg.target)
    reader = ProprioReader(cfg.model, proprio_dim=labels.shape[1]).to(device)
    reader.proprio_mean.copy_(torch.from_numpy(labels.mean(0)))
    reader.proprio_std.copy_(torch.from_numpy(labels.std(0) + 1e-3))
    targets = (torch.from_numpy(labels) - reader.proprio_mean.cpu()) / reader.proprio_std.cpu()
    optimizer = torch.optim.AdamW(reader.parameters(), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    out = Path(cfg.out_dir)
    start_step, elapsed_before, history = resume(out, reader, optimizer)
    params = sum(p.numel() for p in reader.parameters())
    print(f"{cfg.target} reader: {params / 1e6:.2f}M params, {len(pixels)} training frames from "
          f"{len(train_set)} episodes, {device}")
    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", desc="train_reader")
    tick, run_start, running = time.perf_counter(), time.perf_counter(), []
    for step in range(start_step, cfg.steps):
        reader.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        index = torch.randint(len(pixels), (cfg.batch_size,), generator=generator)
        images = torch.from_numpy(pixels[index.numpy()]).to(device)
        loss = F.smooth_l1_loss(reader(images), targets[index].to(device), beta=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            row = {"step": done, "loss": float(np.mean(running)),
                   "lr": learning_rate(cfg, step),
                   "images_per_s": len(running) * cfg.batch_size / (now - tick)}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
            tick, running = now, []
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_training(out, reader, optimizer, step=done,
                          elapsed=elapsed_before + time.perf_counter() - run_start,
                          history=history, config=asdict(cfg))
    bar.close()
    if start_step >= cfg.steps:  # already trained: evaluate the last checkpoint
        reader.load_state_dict(load_checkpoint(out)["model"])
    elapsed = elapsed_before + time.perf_counter() - run_start
    evaluation = evaluate(reader, val_set, cfg.frame_stride, cfg.target)
    evaluation.update(steps=cfg.steps, train_frames=len(pixels), val_episodes=len(val_set),
                      wall_time_s=round(elapsed, 1))
    what = "gripper position" if cfg.target == "proprio" else "contact point"
    print(f"held-out reading error, {what} (cm)".ljust(47) + "median   mean    p90")
    rows = [("frames", evaluation["frames"]),
            *((f"  frames, {t}", e) for t, e in evaluation["frames_per_task"].items()),
            *([("goal images", evaluation["goal_images"])] if "goal_images" in evaluation
              else []),
            *((f"  goal images, {t}", e)
              for t, e in evaluation.get("goal_images_per_task", {}).items())]
    for name, e in rows:
        print(f"  {name:44s} {e['position_cm_median']:6.2f} {e['position_cm_mean']:6.2f} "
              f"{e['position_cm_p90']:6.2f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(evaluation, indent=1))
    if cfg.report:
        save_json(cfg.report, evaluation)
    if cfg.export_dir:
        name, what = TARGETS[cfg.target]
        card = {"name": name, "what": what,
                "command": "python -m worldmodel.train_reader " + " ".join(sys.argv[1:]),
                "config": cfg.model.to_dict(), "out_dim": reader.proprio_dim,
                "data": {"dir": cfg.data_dir, "train_episodes": len(train_set),
                         "collection": data.manifest["config"]},
                "training": asdict(cfg) | {"model": None}, "git_revision": git_revision(),
                "evaluation": evaluation}
        path = save_weights(cfg.export_dir, name, reader, card)
        print(f"exported the reader to {path}")
    return evaluation


@hydra.main(config_path="../configs", config_name="train_reader", version_base="1.3")
def main(cfg) -> None:
    train(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
