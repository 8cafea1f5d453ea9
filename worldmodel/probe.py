"""Probes on frozen features: `python -m worldmodel.probe`.

Does the pretrained encoder know where things are? Probes map frozen per-frame patch
tokens to the end-effector position and the task's key object position (R^2 pooled over
x, y, z, and mean error in cm) and to the task, fitted on training episodes and measured
on the held-out episodes that pretraining never saw (the same split as
`worldmodel.pretrain`). Two probes:

- linear: ridge regression / classification on patch tokens average-pooled to a
  `pool` x `pool` grid and flattened;
- attentive (V-JEPA's evaluation): a learned query cross-attends over all patch tokens
  (plus a learned position embedding), then a linear head; trained with AdamW.

Each row also gives the effective rank of the tokens' content (each patch's mean over
frames removed): how many directions what the frames show spreads over; a dimensionally
collapsed encoder has a rank of 2-4 out of its 192.

Rows: the shipped encoder, a random-init encoder of the same architecture (the seed's
"Random Init vs V-JEPA"), and raw pixels as a reference (16x16 downsampled for the linear
probe; 8x8 pixel patches as tokens for the attentive one).

A probe's figures move with luck: the random-init encoder's seed and the attentive probe's
own seed (0.2-0.3 cm of object error). `random_init_seeds=[0,1,2] attentive_seeds=[0,1,2]`
gives each row the mean over every run (9 for random init, 3 for the others) and keeps the
runs in the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
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
from worldmodel.vjepa import content, effective_rank, init_weights
from worldmodel.weights import ENCODER, PRETRAINED_DIR, load_encoder, read_card


@dataclass
class ProbeConfig:
    data_dir: str = "data/play"  # the collection the encoder was pretrained on
    weights: str = str(PRETRAINED_DIR)  # directory holding encoder.safetensors + card
    also: list[str] = field(default_factory=list)  # more encoder directories to probe beside it
    val_fraction: float = 0.1  # held-out episodes: must match pretraining's split
    split_seed: int = 0
    train_episodes: int = 1200  # training episodes used to fit the probes (subsample)
    frame_stride: int = 4  # every n-th frame of an episode
    pool: int = 4  # patch tokens are average-pooled to pool x pool cells
    batch_size: int = 256  # frames per encoder forward
    random_init_seeds: list[int] = field(default_factory=lambda: [0])  # random-init encoders
    attentive_steps: int = 3000  # AdamW steps of the attentive probe (1000 x 128 underfits)
    attentive_batch: int = 256  # frames per attentive-probe step
    attentive_seeds: list[int] = field(default_factory=lambda: [0])  # the probe's own luck
    report: str | None = None  # also write the results here (reports/probe.json feeds the README)

    def __post_init__(self):
        if not self.random_init_seeds or not self.attentive_seeds:
            raise ValueError("random_init_seeds and attentive_seeds need at least one seed each")


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
def encoder_tokens(encoder: VideoEncoder, pixels: np.ndarray, batch_size: int) -> torch.Tensor:
    """uint8 (N, H, W, C) -> per-frame patch tokens (N, P, D)."""
    out = []
    for start in tqdm(range(0, len(pixels), batch_size), desc="features", leave=False):
        frames = frames_to_input(torch.from_numpy(pixels[start:start + batch_size]))
        out.append(encoder.encode_frames(frames[:, None])[:, 0])
    return torch.cat(out)


def pixel_tokens(pixels: np.ndarray, patch: int = 8) -> torch.Tensor:
    """The reference: raw pixel patches as tokens, uint8 (N, H, W, C) -> (N, P, patch^2 C)."""
    x = frames_to_input(torch.from_numpy(pixels))
    return rearrange(x, "n c (h p) (w q) -> n (h w) (p q c)", p=patch, q=patch)


def pooled(tokens: torch.Tensor, pool: int) -> torch.Tensor:
    """(N, P, D) tokens on a square grid -> (N, pool * pool * D), the linear probe's input."""
    grid = int(round(tokens.shape[1] ** 0.5))
    x = rearrange(tokens, "n (h w) d -> n d h w", h=grid)
    return F.adaptive_avg_pool2d(x, pool).flatten(1)


def with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


class Normal:
    """The normal equations of ridge with a bias column, built once and solved for any
    strength (the Gram matrix is the expensive part)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        xb = with_bias(x)
        self.gram, self.moment, self.n = xb.T @ xb, xb.T @ y, len(x)

    def __add__(self, other: Normal) -> Normal:
        out = object.__new__(Normal)
        out.gram, out.moment = self.gram + other.gram, self.moment + other.moment
        out.n = self.n + other.n
        return out

    def solve(self, lam: float, columns: slice = slice(None)) -> torch.Tensor:
        """(F + 1, K) minimising |[x 1] w - y|^2 + lam * N * |w|^2."""
        gram = self.gram.clone()
        gram.diagonal().add_(lam * self.n)
        return torch.cholesky_solve(self.moment[:, columns], torch.linalg.cholesky(gram))


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
    fit_part, held_part = Normal(xt[~fold], y[~fold]), Normal(xt[fold], y[fold])
    errors = {}
    for lam in RIDGE:
        squared = (with_bias(xt[fold]) @ fit_part.solve(lam) - y[fold]).pow(2).mean(0)
        errors[lam] = {key: float(squared[c].mean()) for key, c in columns.items()}
    full = fit_part + held_part
    predictions = {key: with_bias(xv) @ full.solve(
        min(RIDGE, key=lambda value, k=key: errors[value][k]), c) for key, c in columns.items()}

    result = {}
    for key in ("ee", "object"):
        truth = torch.from_numpy(val[key]).double()
        result.update(position_scores(key, predictions[key], truth))
    result["task_acc"] = float((predictions["task"].argmax(1).numpy() == val["task"]).mean())
    return result


def position_scores(key: str, pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """R^2 pooled over x, y, z (each axis weighted by its variance: a pushed puck never
    moves in z, so a per-axis mean would mostly measure noise) and mean error in cm."""
    pred, truth = pred.double(), truth.double()
    residual = (pred - truth).pow(2).sum()
    total = (truth - truth.mean(0)).pow(2).sum()
    return {f"{key}_r2": float(1 - residual / total),
            f"{key}_cm": float(100 * (pred - truth).norm(dim=1).mean())}


class AttentiveProbe(torch.nn.Module):
    """A learned query cross-attends over patch tokens; a linear head reads it out."""

    def __init__(self, tokens: int, dim: int, outputs: int, width: int = 128, heads: int = 4):
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.embed = torch.nn.Linear(dim, width)
        self.position = torch.nn.Parameter(torch.zeros(1, tokens, width))
        self.query = torch.nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.attention = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.norm(tokens)) + self.position  # (N, P, width)
        pooled_query, _ = self.attention(self.query.expand(len(x), -1, -1), x, x)
        return self.head(pooled_query[:, 0])


def attentive_probe(train_tokens: torch.Tensor, val_tokens: torch.Tensor, train: dict,
                    val: dict, steps: int, batch: int, seed: int = 0) -> dict[str, float]:
    """Train one attentive probe for all targets (positions standardised, MSE; task,
    cross-entropy) and measure it on `val`."""
    torch.manual_seed(seed)
    positions = torch.from_numpy(np.concatenate([train["ee"], train["object"]], 1)).float()
    mean, std = positions.mean(0), positions.std(0) + 1e-6
    targets = (positions - mean) / std
    tasks = torch.from_numpy(train["task"]).long()
    probe_net = AttentiveProbe(train_tokens.shape[1], train_tokens.shape[2], 6 + len(TASK_NAMES))
    optimizer = torch.optim.AdamW(probe_net.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc="attentive probe", leave=False):
        index = torch.randint(len(train_tokens), (batch,), generator=generator)
        out = probe_net(train_tokens[index].float())
        loss = F.mse_loss(out[:, :6], targets[index]) + F.cross_entropy(out[:, 6:], tasks[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        out = torch.cat([probe_net(chunk.float()) for chunk in val_tokens.split(1024)])
    pred = out[:, :6] * std + mean
    result = {}
    result.update(position_scores("ee", pred[:, :3], torch.from_numpy(val["ee"])))
    result.update(position_scores("object", pred[:, 3:6], torch.from_numpy(val["object"])))
    result["task_acc"] = float((out[:, 6:].argmax(1).numpy() == val["task"]).mean())
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
    encoders = {"V-JEPA (pretrained)": pretrained} | {
        f"V-JEPA ({weights})": load_encoder(weights) for weights in cfg.also}
    for name, encoder in encoders.items():
        if encoder.cfg.architecture != pretrained.cfg.architecture:
            raise ValueError(f"{name} has another architecture than {cfg.weights}: the "
                             "random-init row would not be its baseline")
    random_inits = {}
    for seed in cfg.random_init_seeds:
        torch.manual_seed(seed)
        random_inits[seed] = VideoEncoder(pretrained.cfg).eval()
        random_inits[seed].apply(init_weights)  # as VJEPAModel initialises a fresh encoder

    def tokens(encoder: VideoEncoder):
        return lambda x: encoder_tokens(encoder, x, cfg.batch_size)

    sources = {name: [({}, tokens(encoder))] for name, encoder in encoders.items()}
    sources["random init"] = [({"init_seed": seed}, tokens(encoder))
                              for seed, encoder in random_inits.items()]
    sources["pixels"] = [({}, pixel_tokens)]
    rows = {}
    for name, variants in sources.items():
        start = time.perf_counter()
        linear, attentive = [], []
        for tag, tokens_of in variants:
            train_tokens, val_tokens = tokens_of(train["pixels"]), tokens_of(val["pixels"])
            if name == "pixels":  # the classic reference: 16x16 downsampled frames
                linear_train, linear_val = pixel_grid(train["pixels"]), pixel_grid(val["pixels"])
            else:
                linear_train = pooled(train_tokens, cfg.pool)
                linear_val = pooled(val_tokens, cfg.pool)
            # how many directions the tokens' content spans (each patch's mean over frames removed)
            rank = {"content_rank": float(effective_rank(content(val_tokens[:, None])))}
            linear.append(tag | probe(linear_train, linear_val, train, val) | rank)
            attentive += [tag | {"probe_seed": seed} | attentive_probe(
                train_tokens, val_tokens, train, val, cfg.attentive_steps, cfg.attentive_batch,
                seed) | rank for seed in cfg.attentive_seeds]
        seconds = {"seconds": time.perf_counter() - start}
        rows[f"{name}, linear"] = summarise(linear) | seconds
        rows[f"{name}, attentive"] = summarise(attentive) | seconds

    print(f"\n{'features, probe':32s} {'EE R2':>6s} {'EE cm':>6s} {'obj R2':>7s} "
          f"{'obj cm':>7s} {'task acc':>9s} {'rank':>6s}  obj cm of each run")
    for name, r in rows.items():
        each = " ".join(f"{run['object_cm']:.2f}" for run in r.get("runs", []))
        print(f"{name:32s} {r['ee_r2']:6.3f} {r['ee_cm']:6.2f} {r['object_r2']:7.3f} "
              f"{r['object_cm']:7.2f} {100 * r['task_acc']:8.1f}% {r['content_rank']:6.1f}  {each}")
    return rows


def summarise(runs: list[dict]) -> dict:
    """One row: each figure's mean over the runs (random-init seeds x probe seeds), and
    the runs themselves where there are several."""
    row = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]
           if key not in ("init_seed", "probe_seed")}
    return row | ({"runs": runs} if len(runs) > 1 else {})


def pixel_grid(pixels: np.ndarray) -> torch.Tensor:
    """Frames downsampled to 16x16, flattened: the linear probe's pixel reference."""
    return F.adaptive_avg_pool2d(frames_to_input(torch.from_numpy(pixels)), 16).flatten(1)


@hydra.main(config_path="../configs", config_name="probe", version_base="1.3")
def main(cfg) -> None:
    cfg = OmegaConf.to_object(cfg)
    rows = run(cfg)
    payload = json.dumps({"config": asdict(cfg), "encoder_card": read_card(cfg.weights, ENCODER),
                          "also_cards": [read_card(weights, ENCODER) for weights in cfg.also],
                          "results": rows}, indent=1) + "\n"
    for out in filter(None, (Path(HydraConfig.get().runtime.output_dir) / "probe.json",
                             cfg.report and Path(cfg.report))):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(payload)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
