"""Train the action-conditioned predictor on the frozen encoder's features:
`python -m worldmodel.train_ac [model.conditioning=adaln|tokens] [overrides]`.

    python -m worldmodel.train_ac data_dir=data/play out_dir=runs/ac steps=4000 \\
        export_dir=worldmodel/pretrained report=reports/ac_prediction.json

Play data of all four tasks together, no rewards and no task labels. The encoder's features
of every frame are computed once and cached beside the data (`worldmodel.features`).
Loss (V-JEPA 2-AC's, L2 by default: see `ac_loss`): teacher forcing on every step of a
T-frame window, plus a rollout loss: the window is run again with the predicted frames fed
back in place of the observed ones (`rollout_passes - 1` times), so the model learns to
continue its own predictions.

`object_state=true` (a separately reported variant) appends the task's contact point,
from the recorded object state, to every frame's proprio: the predictor then imagines where
the object goes, trained with a squared error in cm (`object_weight`).

Resumable like pretraining: atomic checkpoints every `checkpoint_every` steps, and the
batch of step k depends only on `seed` and k. At the end, prediction error against
horizon on held-out episodes is measured next to the copy-last-frame baseline.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from envs.dataset import EpisodeDataset
from worldmodel.ac_predictor import (
    BLOCKED_RATIO,
    MIN_COMMANDED,
    ROBOT_PROPRIO_DIM,
    ACConfig,
    ACPredictor,
)
from worldmodel.checkpoint import load_checkpoint, resume, save_training
from worldmodel.features import FeatureWindows, cache_features
from worldmodel.hardware import autocast_dtype, matmul_peak, pick_device
from worldmodel.pretrain import git_revision, learning_rate
from worldmodel.report import gripper_summary, object_state_summary, save_json
from worldmodel.weights import (
    PREDICTOR,
    PRETRAINED_DIR,
    check_encoder,
    encoder_id,
    load_predictor,
    load_pretrained,
    read_card,
    save_weights,
)

LOSSES = ("l2", "l1", "l1+l2")


@dataclass
class TrainACConfig:
    model: ACConfig = field(default_factory=ACConfig)  # the predictor (model.*)
    data_dir: str = "data/play"  # a collection from `python -m envs.collect`
    encoder_dir: str = str(PRETRAINED_DIR)  # where the frozen encoder is read from
    out_dir: str = "runs/train_ac"  # checkpoints
    export_dir: str | None = None  # if set, write the final predictor + model card there
    export_only: bool = False  # export the last checkpoint to export_dir, no training
    report: str | None = None  # if set, write the horizon report (JSON) there
    steps: int = 4000  # optimizer steps
    batch_size: int = 32  # windows per step
    num_frames: int = 5  # T, frames per training window (model steps + 1)
    rollout_passes: int = 2  # 1: teacher forcing only; k: k - 1 passes on own predictions
    # token loss: "l2" (mean squared), "l1" (V-JEPA 2-AC) or "l1+l2" (their sum); see ac_loss
    loss: str = "l2"
    proprio_weight: float = 0.5  # weight of the proprio L1 (standardised units)
    # true: the proprio of every frame is followed by the task's contact point (xyz, m,
    # envs.task.Task.contact_point), which the predictor then also imagines. Its labels are
    # the recorded object state (simulator state): a separately reported variant
    object_state: bool = False
    # weight of the object state's squared error in cm (mean over windows and xyz). Squared,
    # not L1 as the proprio: an object moves in few windows, and L1's optimum, the median,
    # is then "it stays" (measured: with L1 the imagined contact point tracked copy-last,
    # 2.58 vs 2.59 cm where the object moved, after 1200 steps)
    object_weight: float = 0.05
    blocked_weight: float = 1.0  # sampling weight of windows in which something blocks the
    # gripper (see blocked_steps); 1 samples windows uniformly
    # with object_state: sampling weight of windows in which the contact point rises at least
    # RISE (m) above where it starts (a cube lifted, a puck tipped onto its edge: rare in play
    # data, and the predictor barely imagined a tip; README, "Foreseeing a tip")
    rise_weight: float = 1.0
    # a directory with a predictor (`predictor.safetensors` + card) to start from instead of
    # a fresh one (fine-tuning); its architecture and state size must match `model` and
    # `object_state`. A checkpoint in out_dir still takes precedence (resume)
    init_from: str | None = None
    lr: float = 5e-4  # peak learning rate (AdamW)
    min_lr: float = 1e-5  # final learning rate of the cosine schedule
    warmup_steps: int = 100  # linear warm-up
    weight_decay: float = 0.04
    grad_clip: float = 1.0  # max gradient norm
    val_fraction: float = 0.1  # held-out episodes; the same split as pretraining
    split_seed: int = 0
    eval_windows: int = 512  # held-out windows for the horizon report
    precision: str = "auto"  # auto | bf16 | fp32 (auto: the faster, measured at start-up)
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every: int = 200  # steps
    log_every: int = 25  # steps
    seed: int = 0

    def __post_init__(self):
        if self.num_frames < 2 or self.num_frames > self.model.max_frames:
            raise ValueError(f"{self.num_frames=} must be in [2, model.max_frames="
                             f"{self.model.max_frames}]")
        if not 1 <= self.rollout_passes <= self.num_frames - 1:
            raise ValueError(f"{self.rollout_passes=} must be in [1, num_frames - 1]")
        if self.loss not in LOSSES:
            raise ValueError(f"{self.loss=} must be one of {LOSSES}")
        if self.export_only and not self.export_dir:
            raise ValueError("export_only=true needs export_dir=...")
        for name in ("blocked_weight", "rise_weight"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.rise_weight != 1 and not self.object_state:
            raise ValueError("rise_weight needs object_state=true (the rise is the object's)")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"{self.steps=} and {self.batch_size=} must be >= 1")


cs = ConfigStore.instance()
cs.store(name="train_ac_schema", node=TrainACConfig)


def ac_loss(model: ACPredictor, z: torch.Tensor, actions: torch.Tensor,
            proprio: torch.Tensor, *, rollout_passes: int, proprio_weight: float,
            loss: str = "l2", object_weight: float = 0.0):
    """Teacher forcing + rollout loss on a window. z: (B, T, P, D) features of frames
    0..T-1; actions: (B, T - 1, A); proprio: (B, T, S). Returns (loss, metrics).

    Why L2 by default: between frames only the few patches showing the arm or an object
    change; L1's gradient has the same size on every element, so the many static patches'
    tiny errors drown the moving ones, and a predictor trained with L1 for 250 steps had
    learned nothing beyond copying the last frame (measured: error on the 10 % most
    changing patches 0.4025 vs copy-last 0.4028). L2 weights errors by their size. "l1+l2"
    adds both. Fine-tuning an L2-trained predictor with L1 (l1+l2, then l1) pulls the static
    patches' small predicted changes to zero and keeps the motion (README, "Fine-tuned with
    L1")."""
    inputs_z, inputs_s = z[:, :-1], proprio[:, :-1]
    metrics, total = {}, 0.0
    for k in range(rollout_passes):
        pred_z, pred_s = model(inputs_z, actions, inputs_s)  # frames 1..T-1
        error = pred_z - z[:, 1:]
        token_loss = sum((error.square() if name == "l2" else error.abs()).mean()
                         for name in loss.split("+"))
        robot = slice(0, ROBOT_PROPRIO_DIM)  # the robot's proprio; the object state after it
        proprio_loss = ((pred_s - proprio[:, 1:]).abs() / model.proprio_std)[..., robot].mean()
        total = total + token_loss + proprio_weight * proprio_loss
        name = "tf" if k == 0 else f"rollout{k}"
        if model.object_state:
            object_cm = 100 * (pred_s - proprio[:, 1:])[..., ROBOT_PROPRIO_DIM:]
            object_loss = object_cm.square().sum(-1).mean()
            total = total + object_weight * object_loss
            metrics[f"{name}_object"] = object_loss.detach()
        metrics[f"{name}_loss"] = token_loss.detach()
        metrics[f"{name}_proprio"] = proprio_loss.detach()
        # feed the predictions back in place of the observed frames 1..T-2
        inputs_z = torch.cat([z[:, :1], pred_z[:, :-1]], dim=1)
        inputs_s = torch.cat([proprio[:, :1], pred_s[:, :-1]], dim=1)
    return total / rollout_passes, metrics


def batch_tensors(windows: FeatureWindows, index, device) -> tuple[torch.Tensor, ...]:
    """Stack windows -> z (B, T, P, D) float, actions (B, T - 1, A), proprio (B, T, S)."""
    items = [windows[int(i)] for i in index]
    z = torch.from_numpy(np.stack([it["features"] for it in items])).float()
    actions = torch.from_numpy(np.stack([it["actions"] for it in items]))
    proprio = torch.from_numpy(np.stack([it["proprio"] for it in items]))
    return z.to(device), actions.to(device), proprio.to(device)


RISE = 0.01  # m, a window whose contact point rises this much is weighted by rise_weight
FREE_RATIO = 0.7  # free: the gripper moved at least this share of its free motion


def commanded_motion(actions: np.ndarray, proprio: np.ndarray, frameskip: int):
    """Per model step: the xyz actions summed over its control steps (..., T - 1, 3) and the
    gripper's observed displacement (m, same shape)."""
    summed = actions.reshape(*actions.shape[:-1], frameskip, 4)[..., :3].sum(-2)
    return summed, proprio[..., 1:, :3] - proprio[..., :-1, :3]


def free_motion_gain(actions: np.ndarray, proprio: np.ndarray, frameskip: int) -> float:
    """Metres of gripper motion per unit of summed xyz action: least squares over the steps."""
    summed, moved = commanded_motion(actions, proprio, frameskip)
    return float((moved * summed).sum() / max((summed * summed).sum(), 1e-12))


def blocked_steps(actions: np.ndarray, proprio: np.ndarray, frameskip: int, gain: float):
    """Which model steps the gripper moved freely and which something blocked (contact with
    an object or the scene, or a workspace limit): among steps whose actions command at least
    `MIN_COMMANDED` of free motion, those where it moved at least `FREE_RATIO`, and less than
    `BLOCKED_RATIO`, of it. Returns two boolean arrays (..., T - 1). Play data hold proprio
    and actions only, so this needs no labels."""
    summed, moved = commanded_motion(actions, proprio, frameskip)
    commanded = gain * np.linalg.norm(summed, axis=-1)
    ratio = np.linalg.norm(moved, axis=-1) / np.maximum(commanded, 1e-9)
    moving = commanded >= MIN_COMMANDED
    return moving & (ratio >= FREE_RATIO), moving & (ratio < BLOCKED_RATIO)


def window_weights(windows, blocked_weight: float, rise_weight: float = 1.0) -> torch.Tensor:
    """Sampling weights of training windows: `blocked_weight` where any step is blocked,
    times `rise_weight` where the contact point (with the object state) rises at least RISE
    above its first frame's; else 1."""
    motion = [windows.motion(i) for i in tqdm(range(len(windows)), desc="window weights",
                                              mininterval=2, leave=False)]
    actions = np.stack([m["actions"] for m in motion])
    proprio = np.stack([m["proprio"] for m in motion])
    gain = free_motion_gain(actions, proprio, windows.frameskip)
    _, blocked = blocked_steps(actions, proprio, windows.frameskip, gain)
    blocked = blocked.any(-1)
    weights = np.where(blocked, blocked_weight, 1.0)
    print(f"{blocked.mean():.1%} of the training windows hold a blocked step; sampling them "
          f"with weight {blocked_weight:g}")
    if rise_weight != 1:
        height = proprio[..., ROBOT_PROPRIO_DIM + 2]  # the contact point's z (N, T)
        risen = (height - height[:, :1]).max(-1) >= RISE
        weights = weights * np.where(risen, rise_weight, 1.0)
        print(f"{risen.mean():.1%} of the training windows hold an object rising "
              f"{100 * RISE:g} cm or more; sampling them with weight x{rise_weight:g}")
    return torch.from_numpy(weights)


@torch.no_grad()
def gripper_error(model: ACPredictor, windows: FeatureWindows, count: int = 4000,
                  seed: int = 0, batch: int = 200) -> dict:
    """The imagined gripper's error (cm) one model step ahead of an observed frame, apart for
    steps where the gripper moved freely and steps where something blocked it
    (`blocked_steps`): a predictor that imagines the arm passing through the button's housing
    errs on the second. Per group: windows, median and mean error, mean true and imagined
    displacement."""
    model.eval()
    device = model.spatial_pos.device
    index = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)),
                                               replace=False)
    actions, proprio, imagined = [], [], []
    for start in range(0, len(index), batch):
        z, a, s = batch_tensors(windows, index[start:start + batch], device)
        imagined.append(model(z[:, :1], a[:, :1], s[:, :1])[1][:, 0, :3].float().cpu().numpy())
        actions.append(a[:, :1].cpu().numpy())
        proprio.append(s[:, :2].cpu().numpy())
    actions, proprio, imagined = (np.concatenate(x) for x in (actions, proprio, imagined))
    gain = free_motion_gain(actions, proprio, windows.frameskip)
    free, blocked = (m[:, 0] for m in blocked_steps(actions, proprio, windows.frameskip, gain))
    true_move = proprio[:, 1, :3] - proprio[:, 0, :3]
    imagined_move = imagined - proprio[:, 0, :3]
    error = 100 * np.linalg.norm(imagined_move - true_move, axis=1)
    true_cm, imagined_cm = (100 * np.linalg.norm(m, axis=1) for m in (true_move, imagined_move))
    out = {"windows": len(index), "gain_cm_per_unit_action": round(100 * gain, 3),
           "blocked_below": BLOCKED_RATIO}
    for name, mask in (("free", free), ("blocked", blocked)):
        out[name] = {"windows": int(mask.sum()),
                     **({} if not mask.any() else {
                         "median_cm": float(np.median(error[mask])),
                         "mean_cm": float(error[mask].mean()),
                         "true_move_cm": float(true_cm[mask].mean()),
                         "imagined_move_cm": float(imagined_cm[mask].mean())})}
    return out


@torch.no_grad()
def prediction_error(model: ACPredictor, windows: FeatureWindows, count: int,
                     seed: int = 0, batch: int = 64) -> dict:
    """Open-loop prediction error against horizon from one observed frame.

    For `count` held-out windows: imagine frames 1..T-1 from frame 0 and the true actions,
    and compare each with the observed frame (mean |error| and mean squared error over
    patches and channels), next to the trivial "the frame stays as it is" prediction
    (copy frame 0)."""
    model.eval()
    device = model.spatial_pos.device
    rng = np.random.default_rng(seed)
    index = rng.choice(len(windows), size=min(count, len(windows)), replace=False)
    sums = {"predictor_l1": 0.0, "predictor_l2": 0.0, "copy_last_l1": 0.0, "copy_last_l2": 0.0}
    objects = []  # with the object state: true, imagined and copy-last contact points
    for start in range(0, len(index), batch):
        z, actions, proprio = batch_tensors(windows, index[start:start + batch], device)
        imagined, imagined_s = (torch.cat(x) for x in zip(*[  # one context per window
            model.imagine(model.context(z[b:b + 1, :0], actions[b:b + 1, :0],
                                        proprio[b:b + 1, :0]),
                          z[b:b + 1, 0], proprio[b:b + 1, 0], actions[b:b + 1])
            for b in range(len(z))]))  # (B, T-1, P, D), (B, T-1, S)
        for name, prediction in (("predictor", imagined), ("copy_last", z[:, :1])):
            error = prediction - z[:, 1:]
            sums[f"{name}_l1"] = sums[f"{name}_l1"] + error.abs().mean(dim=(2, 3)).sum(0)
            sums[f"{name}_l2"] = sums[f"{name}_l2"] + error.square().mean(dim=(2, 3)).sum(0)
        if model.object_state:
            objects.append(torch.stack([proprio[:, 1:, 4:], imagined_s[..., 4:],
                                        proprio[:, :1, 4:].expand_as(imagined_s[..., 4:])]))
    n = len(index)
    out = {"horizon": list(range(1, windows.num_frames)), "frameskip": windows.frameskip,
           "windows": n, **{k: (v / n).tolist() for k, v in sums.items()}}
    if objects:
        out["object_state"] = object_summary(torch.cat(objects, dim=1).float().cpu().numpy())
    return out


def object_summary(points: np.ndarray, moved: float = 0.01) -> dict:
    """points (3, B, H, 3): true, imagined and copy-last contact points (m) of B windows at
    horizons 1..H -> the imagined and copy-last errors (cm) per horizon, median over all
    windows and over those where the object moved more than `moved` (m) by then."""
    true, imagined, copy = points
    error, copy_error = (100 * np.linalg.norm(p - true, axis=-1) for p in (imagined, copy))
    out = {"moved_above_cm": 100 * moved}
    for name, mask in (("all", np.ones_like(copy_error, bool)),
                       ("moved", copy_error > 100 * moved)):
        out[name] = {"windows": mask.sum(0).tolist(),
                     "predictor_median_cm": [float(np.median(e[m])) if m.any() else None
                                             for e, m in zip(error.T, mask.T)],
                     "copy_last_median_cm": [float(np.median(e[m])) if m.any() else None
                                             for e, m in zip(copy_error.T, mask.T)]}
    return out


def lineage(init_from: str, depth: int = 8) -> list[dict]:
    """The runs a fine-tuned predictor descends from, nearest first: each one's directory,
    command, steps, wall time and git revision, read from its card (a card that carries its
    own chain ends the walk), so a shipped card says how to reproduce every stage."""
    chain: list[dict] = []
    directory: str | None = init_from
    while directory and len(chain) < depth:
        card = read_card(directory, PREDICTOR, trainer="worldmodel.train_ac")
        chain.append({"dir": directory} | {k: card.get(k) for k in (
            "command", "steps", "wall_time_s", "git_revision")})
        if "fine_tuned_from" in card:
            return chain + card["fine_tuned_from"]
        directory = card.get("training", {}).get("init_from")
    return chain


def export(cfg: TrainACConfig, model: ACPredictor, card_extra: dict) -> Path:
    card = {"name": PREDICTOR, "what": "action-conditioned predictor over the frozen "
            "encoder's per-frame patch tokens (frame-causal), trained on play data of the "
            "four tasks without rewards or task labels" + (
                "; it also imagines the task's contact point (proprio[4:7]), trained on the "
                "recorded object state (simulator state): a separate variant"
                if cfg.object_state else ""),
            "command": "python -m worldmodel.train_ac " + " ".join(
                a for a in sys.argv[1:] if not a.startswith("export_only")),
            "config": cfg.model.to_dict(),
            "dims": {"num_patches": model.num_patches, "feature_dim": model.feature_dim,
                     "action_dim": model.action_dim // cfg.model.frameskip,
                     "proprio_dim": model.proprio_dim},
            "training": asdict(cfg) | {"model": None}, "git_revision": git_revision(),
            **card_extra}
    if cfg.init_from:
        card["fine_tuned_from"] = lineage(cfg.init_from)
    path = save_weights(cfg.export_dir, PREDICTOR, model, card)
    print(f"exported the predictor to {path}")
    return path


def build(cfg: TrainACConfig, device: torch.device):
    """The encoder, the cached features, train/val windows and the predictor: fresh, or
    `init_from`'s weights."""
    encoder = load_pretrained(cfg.encoder_dir)
    encoder.encoder.to(device)  # the feature cache is encoded on the training device
    features = cache_features(cfg.data_dir, encoder)
    data = EpisodeDataset(cfg.data_dir)
    train_set, val_set = data.split(cfg.val_fraction, seed=cfg.split_seed)
    fs, state = cfg.model.frameskip, cfg.object_state
    train_windows = FeatureWindows(train_set, features, cfg.num_frames, frameskip=fs,
                                   object_state=state)
    val_windows = FeatureWindows(val_set, features, cfg.num_frames, frameskip=fs,
                                 object_state=state)
    enc = encoder.config
    model = ACPredictor(cfg.model, num_patches=enc.num_patches, feature_dim=enc.encoder_dim,
                        action_dim=4,
                        proprio_dim=ROBOT_PROPRIO_DIM + 3 * state).to(device)
    proprio = np.concatenate([train_set.arrays(s)["proprio"]
                              for s in sorted({r.shard for r in train_set.refs})])
    mean, std = proprio.mean(0), proprio.std(0)
    if state:  # the object state's statistics, over the training episodes
        contact = np.concatenate([train_set.contact_points(r, slice(r.start, r.start + r.frames))
                                  for r in train_set.refs])
        mean, std = (np.concatenate([a, b]) for a, b in ((mean, contact.mean(0)),
                                                         (std, contact.std(0))))
    model.proprio_mean.copy_(torch.from_numpy(mean))
    model.proprio_std.copy_(torch.from_numpy(std + 1e-3))
    if cfg.init_from:  # fine-tuning: its weights and proprio statistics replace the above
        check_encoder(read_card(cfg.init_from, PREDICTOR, trainer="worldmodel.train_ac"),
                      encoder.encoder, cfg.init_from)
        start = load_predictor(cfg.init_from)
        if (start.cfg.to_dict(), start.proprio_dim) != (cfg.model.to_dict(), model.proprio_dim):
            raise ValueError(f"init_from={cfg.init_from}: its predictor ({start.cfg.to_dict()}, "
                             f"state size {start.proprio_dim}) does not match model="
                             f"{cfg.model.to_dict()} with state size {model.proprio_dim}")
        model.load_state_dict(start.state_dict())
    return encoder, train_windows, val_windows, model


def train(cfg: TrainACConfig) -> dict:
    """Train (or resume), evaluate on held-out episodes, and return the evaluation."""
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    encoder, train_windows, val_windows, model = build(cfg, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    out = Path(cfg.out_dir)
    start_step, elapsed_before, history = resume(out, model, optimizer)
    weights = (window_weights(train_windows, cfg.blocked_weight, cfg.rise_weight)
               if (cfg.blocked_weight, cfg.rise_weight) != (1, 1) else None)
    amp = autocast_dtype(device, cfg.precision)
    peak = matmul_peak(device.type, amp or torch.float32)
    params = sum(p.numel() for p in model.parameters())
    print(f"AC predictor ({cfg.model.conditioning}): {params / 1e6:.2f}M params, "
          f"{len(train_windows)} train windows of {cfg.num_frames} frames (frameskip "
          f"{cfg.model.frameskip}), {device}, {'bf16' if amp else 'fp32'} (matmul peak "
          f"{peak / 1e9:.0f} GFLOP/s)")
    print(f"{'step':>6s} {'loss':>7s} {'tf':>7s} {'rollout':>7s} {'proprio':>7s} "
          f"{'lr':>8s} {'win/s':>7s} {'%peak':>6s}" + (" object cm²" if cfg.object_state else ""))
    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", desc="train_ac")
    flops_per_window, tick, seen, run_start = None, time.perf_counter(), 0, time.perf_counter()
    for step in range(start_step, cfg.steps):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        index = (torch.randint(len(train_windows), (cfg.batch_size,), generator=generator)
                 if weights is None else
                 torch.multinomial(weights, cfg.batch_size, replacement=True,
                                   generator=generator))
        z, actions, proprio = batch_tensors(train_windows, index, device)
        counter = FlopCounterMode(display=False) if flops_per_window is None else None
        with counter or contextlib.nullcontext():
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss, metrics = ac_loss(model, z, actions, proprio,
                                        rollout_passes=cfg.rollout_passes,
                                        proprio_weight=cfg.proprio_weight, loss=cfg.loss,
                                        object_weight=cfg.object_weight)
            loss.backward()
        if counter is not None:
            flops_per_window = counter.get_total_flops() / cfg.batch_size
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen += cfg.batch_size
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            rate = seen / (now - tick)
            last = f"rollout{cfg.rollout_passes - 1}" if cfg.rollout_passes > 1 else "tf"
            row = {"step": done, "loss": loss.item(), "tf": float(metrics["tf_loss"]),
                   "rollout": float(metrics[f"{last}_loss"]),
                   "proprio_l1": float(metrics["tf_proprio"]), "lr": learning_rate(cfg, step),
                   "windows_per_s": rate, "peak_fraction": rate * flops_per_window / peak,
                   **({"object_cm2": float(metrics["tf_object"])} if cfg.object_state else {})}
            history.append(row)
            bar.write(f"{done:6d} {row['loss']:7.4f} {row['tf']:7.4f} "
                      f"{row['rollout']:7.4f} {row['proprio_l1']:7.4f} {row['lr']:8.2e} "
                      f"{rate:7.1f} {100 * row['peak_fraction']:5.1f}%"
                      + (f" {row['object_cm2']:10.3f}" if cfg.object_state else ""))
            tick, seen = now, 0
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_training(out, model, optimizer, step=done,
                          elapsed=elapsed_before + time.perf_counter() - run_start,
                          history=history, config=asdict(cfg))
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - run_start
    return finish(cfg, model, encoder, train_windows, val_windows, history, elapsed)


def finish(cfg, model, encoder, train_windows, val_windows, history, elapsed) -> dict:
    """Measure prediction error against horizon; write the report and export."""
    evaluation = prediction_error(model, val_windows, cfg.eval_windows, seed=cfg.seed)
    evaluation["gripper_one_step"] = gripper_error(model, val_windows, seed=cfg.seed)
    evaluation.update(conditioning=cfg.model.conditioning, steps=cfg.steps,
                      val_episodes=len(val_windows.dataset), wall_time_s=round(elapsed, 1),
                      final_train=history[-1] if history else {})
    print(f"{'horizon':>8s} {'L1 pred':>9s} {'L1 copy':>9s} {'L2 pred':>9s} {'L2 copy':>9s}"
          f"   (per token channel, {evaluation['windows']} held-out windows)")
    for i, h in enumerate(evaluation["horizon"]):
        print(f"{h:8d}" + "".join(f" {evaluation[k][i]:9.4f}" for k in (
            "predictor_l1", "copy_last_l1", "predictor_l2", "copy_last_l2")))
    print(gripper_summary(evaluation["gripper_one_step"]))
    if "object_state" in evaluation:
        print(object_state_summary(evaluation["object_state"]))
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out_dir) / "eval.json").write_text(json.dumps(evaluation, indent=1))
    if cfg.report:
        save_json(cfg.report, evaluation)
    if cfg.export_dir:
        export(cfg, model, {"encoder": encoder.card["name"],
                            "encoder_id": encoder_id(encoder.encoder), "data": {
            "dir": cfg.data_dir, "train_episodes": len(train_windows.dataset),
            "collection": train_windows.dataset.manifest["config"]},
            "steps": cfg.steps, "wall_time_s": round(elapsed, 1),
            "final_metrics": history[-1] if history else {}, "evaluation": evaluation})
    return evaluation


def export_checkpoint(cfg: TrainACConfig) -> dict:
    """Evaluate and export the last checkpoint of `cfg.out_dir` without training."""
    device = pick_device(cfg.device)
    encoder, train_windows, val_windows, model = build(cfg, device)
    state = load_checkpoint(cfg.out_dir)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.out_dir} to export")
    model.load_state_dict(state["model"])
    cfg.steps = state["step"]
    return finish(cfg, model, encoder, train_windows, val_windows,
                  json.loads(state["history"]), state["elapsed"])


@hydra.main(config_path="../configs", config_name="train_ac", version_base="1.3")
def main(cfg) -> None:
    cfg = OmegaConf.to_object(cfg)
    export_checkpoint(cfg) if cfg.export_only else train(cfg)


if __name__ == "__main__":
    main()
