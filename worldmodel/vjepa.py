"""`VJEPAModel`: the seed's V-JEPA 2 self-supervised video model.

    from worldmodel import VJEPAModel
    model = VJEPAModel(config)          # VJEPAConfig, a dict of its keys, or a preset name
    loss, metrics = model(video)        # video: float (B, C, T, H, W)
    model.update_target(step, total)    # EMA of the online encoder, after optimizer.step()

A context encoder sees the unmasked tubes of the earliest frames; a narrower predictor
fills the masked positions with mask tokens and predicts the target encoder's
layer-normalised features there (L1 as V-JEPA 2, or MSE as the seed). The target encoder
is an EMA of the context encoder with a cosine momentum schedule from `ema_momentum` to
1.0, and gets no gradients.

Collapse comes in two kinds, and the metrics watch both: every token the same vector
(`target_std` -> 0), and *dimensional* collapse, where tokens still differ by position but
what varies with the clip's content lies in one or two directions (`target_rank`, the
effective rank of the content). `spread_weight` > 0 adds a variance-covariance term
(VICReg's, as PLDM uses; LeWM's Gaussianity regulariser plays the same part) on the
context tokens' content against the second kind.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.config import PRESETS, VJEPAConfig
from worldmodel.encoder import VideoEncoder
from worldmodel.masks import Masks, future_masks, multiblock_masks
from worldmodel.predictor import MaskedPredictor

COLLAPSE_STD = 0.05  # per-dimension feature std under which a run is reported collapsed
COLLAPSE_RANK = 4.0  # effective dimensions of the content under which it is rank-collapsed
SPREAD_STD = 0.3  # the variance term's floor on each content dimension's std
# the seed's multi-scale temporal loss: (frames ahead, weight)
MULTISCALE = ((1, 1.0), (4, 0.5), (8, 0.25))


def ema_momentum(step: int, total_steps: int, start: float) -> float:
    """Cosine schedule from `start` at step 0 to 1.0 at `total_steps` (V-JEPA)."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def feature_std(x: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the std across tokens: ~1 for healthy layer-normed
    features, -> 0 when every token maps to the same vector (collapse)."""
    flat = x.detach().float().reshape(-1, x.shape[-1])
    return flat.std(dim=0).mean()


def content(tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """What varies with the clip: tokens (B, T, K, D) at patches `keep` (B, K) (None: all
    patches in order) with each (time step, patch) position's batch mean removed ->
    float (B * T * K, D). Positional encodings alone explain most of a token, so spread
    measured without this removal says little about content."""
    B, T, K, D = tokens.shape
    x = tokens.float().reshape(-1, D)
    if keep is None:
        keep = torch.arange(K, device=tokens.device).expand(B, K)
    P = int(keep.max()) + 1
    ids = (torch.arange(T, device=keep.device)[None, :, None] * P + keep[:, None, :]).reshape(-1)
    sums = x.new_zeros(T * P, D).index_add_(0, ids, x)
    counts = x.new_zeros(T * P).index_add_(0, ids, x.new_ones(len(ids)))
    return x - (sums / counts.clamp_min(1.0)[:, None])[ids]


def covariance(x: torch.Tensor) -> torch.Tensor:
    """(N, D) centred rows -> (D, D) covariance, in fp32 whatever the autocast."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        return x.T @ x / max(len(x) - 1, 1)


def effective_rank(x: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the covariance spectrum of centred rows (N, D): D for isotropic
    features, 1 when all the variance lies in one direction."""
    eigenvalues = torch.linalg.eigvalsh(covariance(x.detach())).clamp_min(0.0)
    p = eigenvalues / eigenvalues.sum().clamp_min(1e-12)
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())


def spread_loss(x: torch.Tensor) -> torch.Tensor:
    """VICReg's variance (hinge on each dimension's std at SPREAD_STD) plus covariance (the
    off-diagonal entries squared, per dimension) terms on centred rows (N, D)."""
    cov = covariance(x)
    variance = F.relu(SPREAD_STD - (torch.diagonal(cov) + 1e-4).sqrt()).mean()
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return variance + off_diagonal.pow(2).sum() / len(cov)


class VJEPAModel(nn.Module):
    def __init__(self, config: VJEPAConfig | dict | str):
        super().__init__()
        if isinstance(config, str):
            if config not in PRESETS:
                raise ValueError(f"unknown preset {config!r}; valid: {', '.join(PRESETS)}")
            config = PRESETS[config]
        elif isinstance(config, dict):
            config = VJEPAConfig.from_dict(config)
        self.config = config
        self.encoder = VideoEncoder(config)
        self.predictor = MaskedPredictor(config)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)
        self.apply(init_weights)
        self.target_encoder.load_state_dict(self.encoder.state_dict())

    def check_video(self, video: torch.Tensor) -> None:
        """Fail before any compute on input the model cannot take."""
        cfg = self.config
        if not isinstance(video, torch.Tensor) or video.dim() != 5:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video)
            raise ValueError(f"video must be a (B, C, T, H, W) tensor, got {shape}")
        B, C, T, H, W = video.shape
        if C != cfg.in_channels:
            raise ValueError(f"video has {C} channels, the model takes {cfg.in_channels}")
        if H != cfg.image_size or W != cfg.image_size:
            raise ValueError(f"video frames are {H}x{W}, the model takes "
                             f"{cfg.image_size}x{cfg.image_size} (patch {cfg.patch_size})")
        if T % cfg.tubelet_size or not 0 < T <= cfg.num_frames:
            raise ValueError(f"video has {T} frames: must be a multiple of tubelet_size="
                             f"{cfg.tubelet_size}, at most num_frames={cfg.num_frames}")
        if not video.is_floating_point():
            raise ValueError(f"video must be float (see worldmodel.encoder.frames_to_input), "
                             f"got {video.dtype}")
        if not torch.isfinite(video).all():
            raise ValueError("video contains NaN or inf values")

    def sample_masks(self, batch: int, time_steps: int,
                     generator: torch.Generator | None = None) -> Masks:
        cfg = self.config
        device = self.encoder.spatial_pos.device
        if cfg.mask_strategy == "future":
            return future_masks(batch, time_steps, cfg.grid, generator=generator, device=device,
                                temporal_mask_ratio=cfg.temporal_mask_ratio,
                                mask_ratio=cfg.mask_ratio)
        return multiblock_masks(batch, time_steps, cfg.grid, mask_ratio=cfg.mask_ratio,
                                num_blocks=cfg.num_mask_blocks, generator=generator,
                                device=device)

    def target_weights(self, masks: Masks) -> torch.Tensor:
        """(N,) loss weight per target position (the same for every sample)."""
        T = masks.target.shape[1]
        steps = torch.arange(T, device=masks.target.device)[:, None].expand_as(masks.target[0])
        steps = steps[masks.target[0]]
        if not self.config.multiscale_loss:
            return torch.ones(len(steps), device=steps.device)
        # frames between the last context frame and a target tubelet's first frame
        ahead = (steps - masks.context_steps) * self.config.tubelet_size + 1
        weights = torch.full(ahead.shape, MULTISCALE[-1][1], device=steps.device)
        for frames, weight in reversed(MULTISCALE):
            weights[ahead <= frames] = weight
        weights[ahead <= 0] = 1.0  # hidden patches of the context frames
        return weights

    def forward(self, video: torch.Tensor, masks: Masks | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """video: float (B, C, T, H, W) -> (loss, metrics)."""
        self.check_video(video)
        B, _, T, _, _ = video.shape
        time_steps = T // self.config.tubelet_size
        if masks is None:
            masks = self.sample_masks(B, time_steps, generator)
        with torch.no_grad():
            full_target = self.target_encoder(video)  # (B, T', P, D)
            full_target = F.layer_norm(full_target, full_target.shape[-1:])
            target = full_target[masks.target].view(B, masks.num_targets, -1)  # (B, N, D)
        context = self.encoder(video, context_steps=masks.context_steps, keep=masks.keep)
        prediction = self.predictor(context, masks, time_steps)  # (B, N, D)
        error = prediction.float() - target.float()
        per_token = error.abs().mean(-1) if self.config.loss == "l1" else error.pow(2).mean(-1)
        weights = self.target_weights(masks)
        loss = (per_token * weights).sum(-1).div(weights.sum()).mean()
        target_std, pred_std = feature_std(target), feature_std(prediction)
        target_rank = effective_rank(content(full_target)) if B > 1 else torch.tensor(float("nan"))
        # "loss" is the prediction loss alone, comparable across runs with and without spread
        metrics = {"loss": loss.detach(), "target_std": target_std, "pred_std": pred_std,
                   "context_std": feature_std(context), "target_rank": target_rank,
                   # collapse is the target encoder's: every token the same vector. (The
                   # predictor starts with near-zero outputs by its init; that is not it.)
                   "collapsed": bool(target_std < COLLAPSE_STD),
                   "rank_collapsed": bool(target_rank < COLLAPSE_RANK)}
        if self.config.spread_weight > 0:
            spread = spread_loss(content(context, masks.keep))
            metrics["spread"] = spread.detach()
            loss = loss + self.config.spread_weight * spread
        return loss, metrics

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        """EMA update of the target encoder; returns the momentum used."""
        m = ema_momentum(step, total_steps, self.config.ema_momentum)
        for online, target in zip(self.encoder.parameters(), self.target_encoder.parameters()):
            target.lerp_(online.detach(), 1.0 - m)
        return m

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame layer-normalised patch tokens from the target encoder (the weights
        V-JEPA 2 releases): frames float (B, T, C, H, W) -> (B, T, P, D)."""
        return self.target_encoder.encode_frames(frames)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights, zero biases, unit LayerNorms (ViT/V-JEPA)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
