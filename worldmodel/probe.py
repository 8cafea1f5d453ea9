"""Linear probes on frozen features: `python -m worldmodel.probe`.

Does the pretrained encoder know where things are? Ridge regression from frozen per-frame
features to the end-effector position and the task's key object position (R^2 and mean
error in cm), and a linear task classifier, fitted on training episodes and measured on
the held-out episodes that pretraining never saw (the same split as `worldmodel.pretrain`).
Rows: the shipped encoder, a random-init encoder of the same architecture (the seed's
"Random Init vs V-JEPA"), and raw pixels downsampled to 16x16 as a reference.

Features are patch tokens average-pooled to a `pool` x `pool` grid (spatial layout kept,
as planning needs), flattened.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from tqdm import tqdm

from envs import TASK_NAMES
from envs.dataset import EpisodeDataset
from worldmodel.encoder import VideoEncoder, frames_to_input
from worldmodel.weights import ENCODER, PRETRAINED_DIR, load_encoder, read_card


@dataclass
class ProbeConfig:
    data_dir: str = "data/play"  # the collection the encoder was pretrained on
    weights: str = str(PRETRAINED_DIR)  # directory holding encoder.safetensors + card
    val_fraction: float = 0.1  # held-out episodes: must match pretraining's split
    split_seed: int = 0
    train_episodes: int = 1200  # training episodes used to fit the probes (subsample)
    frame_stride: int = 4  # every n-th frame of an episode
    pool: int = 4  # patch tokens are average-pooled to pool x pool cells
    batch_size: int = 256  # frames per encoder forward
    random_init_seed: int = 0  # the random-init encoder's seed
    report: str | None = None  # also write the results here (reports/probe.json feeds the README)


ConfigStore.instance().store(name="probe_schema", node=ProbeConfig)
RIDGE = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # regularisation per sample, chosen on a split


def gather(dataset: EpisodeDataset, stride: int) -> dict[str, np.ndarray]:
    """Frames, end-effector and object positions, and task ids of every `stride`-th frame."""
    parts: dict[str, list] = {"pixels": [], "ee": [], "object": [], "task": [], "episode": []}
    for i, ref in enumerate(dataset.refs):
        episode = dataset.episode(i)
        rows = slice(0, None, stride)
        parts["pixels"].append(episode["pixels"][rows])
        parts["ee"].append(episode["proprio"][rows, :3])
        parts["object"].append(episode["object_pose"][rows, :3])
        n = len(parts["ee"][-1])
        parts["task"].append(np.full(n, TASK_NAMES.index(ref.meta["task"])))
        parts["episode"].append(np.full(n, i))
    return {k: np.concatenate(v) for k, v in parts.items()}


@torch.no_grad()
def encoder_features(encoder: VideoEncoder, pixels: np.ndarray, pool: int,
                     batch_size: int) -> torch.Tensor:
    """uint8 (N, H, W, C) -> (N, pool * pool * D) pooled per-frame patch tokens."""
    grid = encoder.cfg.grid
    out = []
    for start in tqdm(range(0, len(pixels), batch_size), desc="features", leave=False):
        frames = frames_to_input(torch.from_numpy(pixels[start:start + batch_size]))
        tokens = encoder.encode_frames(frames[:, None])[:, 0]  # (B, P, D)
        tokens = rearrange(tokens, "b (h w) d -> b d h w", h=grid)
        out.append(F.adaptive_avg_pool2d(tokens, pool).flatten(1))
    return torch.cat(out)


def pixel_features(pixels: np.ndarray) -> torch.Tensor:
    """The reference row: frames downsampled to 16x16, flattened."""
    x = frames_to_input(torch.from_numpy(pixels))
    return F.adaptive_avg_pool2d(x, 16).flatten(1)


def with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


def ridge_weights(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """(F + 1, K) minimising |[x 1] w - y|^2 + lam * N * |w|^2, all K targets in one
    Cholesky solve."""
    xb = with_bias(x)
    gram = xb.T @ xb
    gram.diagonal().add_(lam * len(x))
    return torch.cholesky_solve(xb.T @ y, torch.linalg.cholesky(gram))


def probe(features_train, features_val, train, val) -> dict[str, float]:
    """Fit ridge probes on `train` (strength picked per target on a held-out fifth of its
    episodes) and measure them on `val`."""
    mean, std = features_train.mean(0), features_train.std(0) + 1e-6
    xt = ((features_train - mean) / std).double()
    xv = ((features_val - mean) / std).double()
    targets = {"ee": torch.from_numpy(train["ee"]).double(),
               "object": torch.from_numpy(train["object"]).double(),
               "task": F.one_hot(torch.from_numpy(train["task"]), len(TASK_NAMES)).double()}
    y = torch.cat(list(targets.values()), dim=1)
    columns, start = {}, 0
    for key, value in targets.items():
        columns[key] = slice(start, start + value.shape[1])
        start += value.shape[1]
    fold = torch.from_numpy(train["episode"] % 5 == 0)
    errors = {}
    for lam in RIDGE:
        squared = (with_bias(xt[fold]) @ ridge_weights(xt[~fold], y[~fold], lam)
                   - y[fold]).pow(2).mean(0)
        errors[lam] = {key: float(squared[c].mean()) for key, c in columns.items()}
    predictions = {}
    for key, c in columns.items():
        lam = min(RIDGE, key=lambda value: errors[value][key])
        predictions[key] = with_bias(xv) @ ridge_weights(xt, y[:, c], lam)

    result = {}
    for key in ("ee", "object"):
        truth = torch.from_numpy(val[key]).double()
        pred = predictions[key]
        residual = (pred - truth).pow(2).sum(0)
        total = (truth - truth.mean(0)).pow(2).sum(0)
        result[f"{key}_r2"] = float((1 - residual / total).mean())
        result[f"{key}_cm"] = float(100 * (pred - truth).norm(dim=1).mean())
    result["task_acc"] = float((predictions["task"].argmax(1).numpy() == val["task"]).mean())
    return result


def run(cfg: ProbeConfig) -> dict[str, dict[str, float]]:
    data = EpisodeDataset(cfg.data_dir)
    train_set, val_set = data.split(cfg.val_fraction, seed=cfg.split_seed)
    if len(train_set) > cfg.train_episodes:
        keep = np.random.default_rng(0).choice(len(train_set), cfg.train_episodes, replace=False)
        train_set = EpisodeDataset(cfg.data_dir, episodes=sorted(
            train_set.indices[i] for i in keep))
    train, val = gather(train_set, cfg.frame_stride), gather(val_set, cfg.frame_stride)
    print(f"probing on {len(train['ee'])} frames of {len(train_set)} training episodes, "
          f"measured on {len(val['ee'])} frames of {len(val_set)} held-out episodes")

    pretrained = load_encoder(cfg.weights)
    torch.manual_seed(cfg.random_init_seed)
    random_init = VideoEncoder(pretrained.cfg).eval()
    random_init.apply(_init_like_training)
    rows = {}
    for name, make in (("V-JEPA (pretrained)", lambda x: encoder_features(
            pretrained, x, cfg.pool, cfg.batch_size)),
                       ("random init", lambda x: encoder_features(
            random_init, x, cfg.pool, cfg.batch_size)),
                       ("pixels 16x16", pixel_features)):
        start = time.perf_counter()
        rows[name] = probe(make(train["pixels"]), make(val["pixels"]), train, val)
        rows[name]["seconds"] = time.perf_counter() - start

    print(f"\n{'features':22s} {'EE R2':>6s} {'EE cm':>6s} {'obj R2':>7s} {'obj cm':>7s} "
          f"{'task acc':>9s}")
    for name, r in rows.items():
        print(f"{name:22s} {r['ee_r2']:6.3f} {r['ee_cm']:6.2f} {r['object_r2']:7.3f} "
              f"{r['object_cm']:7.2f} {100 * r['task_acc']:8.1f}%")
    return rows


def _init_like_training(module: torch.nn.Module) -> None:
    """The initialisation VJEPAModel gives a fresh encoder."""
    from worldmodel.vjepa import _init_weights

    _init_weights(module)


@hydra.main(config_path="../configs", config_name="probe", version_base="1.3")
def main(cfg) -> None:
    cfg = OmegaConf.to_object(cfg)
    rows = run(cfg)
    payload = json.dumps({"config": asdict(cfg), "encoder_card": read_card(cfg.weights, ENCODER),
                          "results": rows}, indent=1) + "\n"
    for out in filter(None, (Path(HydraConfig.get().runtime.output_dir) / "probe.json",
                             cfg.report and Path(cfg.report))):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(payload)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
