"""Frozen-encoder features of a play collection, computed once and cached on disk.

The action-conditioned predictor trains on the frozen encoder's per-frame patch tokens
(as V-JEPA 2-AC does); encoding every frame once instead of once per epoch makes that
training several times faster. The cache sits beside the collection:

    <data_dir>/features_<encoder id>/shard_00000.npy   float16 (N, P, D), one row per frame
    <data_dir>/features_<encoder id>/card.json         the encoder's model card

It is keyed by a hash of the encoder's weights, so a new encoder never reads stale
features, and written shard by shard (temp file + rename), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from envs.dataset import ActionWindows, EpisodeDataset, shard_name
from worldmodel.weights import PretrainedWorldModel, encoder_id

log = logging.getLogger(__name__)


def token_distance(z: torch.Tensor, goal: torch.Tensor, distance: str = "l2",
                   scales: tuple[int, ...] | list[int] = (1,)) -> torch.Tensor:
    """The latent distance the planner minimises and the goal-image reward is made of:
    z (..., P, D) against goal (P, D) or broadcastable -> (...), the mean absolute ("l1") or
    squared ("l2") difference over patches and channels.

    With `scales` other than (1,), the sum of that distance over a pyramid of the square
    patch grid average-pooled in s x s cells, one term per s (1: the patches themselves).
    Patch-wise distances are flat wherever the gripper's patches do not overlap its goal
    patches (any wrong place costs the same, and leaving the camera's view costs least);
    the pooled terms still shrink as it approaches the goal, which widens the basin."""
    if tuple(scales) == (1,):
        diff = z - goal
        return (diff.abs() if distance == "l1" else diff.square()).mean(dim=(-2, -1))
    return sum(token_distance(pool_tokens(z, s), pool_tokens(goal, s), distance)
               for s in scales)


def pool_tokens(z: torch.Tensor, scale: int) -> torch.Tensor:
    """Patch tokens (..., P, D) of a square g x g grid -> (..., P / scale^2, D), averaged
    over scale x scale cells."""
    if scale == 1:
        return z
    *lead, P, D = z.shape
    grid = math.isqrt(P)
    if grid * grid != P or grid % scale:
        raise ValueError(f"cannot pool {P} patches ({grid}x{grid}?) in {scale}x{scale} cells")
    x = z.reshape(-1, grid, grid, D).permute(0, 3, 1, 2)
    x = torch.nn.functional.avg_pool2d(x, scale)
    return x.flatten(2).transpose(1, 2).reshape(*lead, -1, D)


def cache_dir(data_dir: str | Path, model: PretrainedWorldModel) -> Path:
    return Path(data_dir) / f"features_{encoder_id(model.encoder)}"


@torch.no_grad()
def cache_features(data_dir: str | Path, model: PretrainedWorldModel, *,
                   batch_size: int = 256, progress: bool = True) -> Path:
    """Encode every frame of every finished shard of `data_dir`; returns the cache dir.

    Shards already cached are skipped, so a rerun after more collection (or a kill)
    only encodes what is missing."""
    dataset = EpisodeDataset(data_dir)
    out = cache_dir(data_dir, model)
    out.mkdir(exist_ok=True)
    (out / "card.json").write_text(json.dumps(model.card, indent=1))
    shards = sorted({ref.shard for ref in dataset.refs})
    todo = [s for s in shards if not (out / f"{shard_name(s)}.npy").exists()]
    frames_todo = sum(len(dataset.arrays(s)["pixels"]) for s in todo)
    bar = tqdm(total=frames_todo, unit="frame", disable=not progress or not todo,
               desc=f"encoding {data_dir}")
    for shard in todo:
        pixels = dataset.arrays(shard)["pixels"]  # (N, H, W, 3) uint8
        parts = []
        for start in range(0, len(pixels), batch_size):
            frames = torch.from_numpy(np.array(pixels[start:start + batch_size]))
            tokens = model.encode(frames[:, None])[:, 0]  # (b, P, D)
            parts.append(tokens.to(torch.float16).cpu().numpy())
            bar.update(len(frames))
        final = out / f"{shard_name(shard)}.npy"
        tmp = out / f".{final.name}.tmp-{os.getpid()}.npy"
        np.save(tmp, np.concatenate(parts))
        os.replace(tmp, final)
    bar.close()
    log.info("features of %d shards in %s", len(shards), out)
    return out


def load_features(directory: str | Path, shard: int) -> np.ndarray:
    """The cached features of one shard, memory-mapped: float16 (N, P, D)."""
    path = Path(directory) / f"{shard_name(shard)}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m worldmodel.train_ac`, "
                                "which caches features before training")
    return np.load(path, mmap_mode="r")


class FeatureWindows(ActionWindows):
    """`ActionWindows` over cached features: item -> dict with `features` float16
    (T, P, D), `proprio` float32 (T, S) and `actions` float32 (T - 1, frameskip * 4)."""

    frames_key = "features"

    def __init__(self, dataset: EpisodeDataset, features_dir: str | Path, num_frames: int,
                 *, frameskip: int = 1, stride: int = 1, object_state: bool = False):
        super().__init__(dataset, num_frames, frameskip=frameskip, stride=stride,
                         object_state=object_state)
        self.features_dir = Path(features_dir)
        self._features: dict[int, np.ndarray] = {}

    def _frames(self, ref, first: int, last: int) -> np.ndarray:
        if ref.shard not in self._features:
            self._features[ref.shard] = load_features(self.features_dir, ref.shard)
        return np.asarray(self._features[ref.shard][first:last + 1:self.frameskip])
