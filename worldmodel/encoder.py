"""The V-JEPA video encoder: tubelet tokens, separate spatial and temporal positional
encodings, factorized (space then time) or joint space-time attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldmodel.config import VJEPAConfig
from worldmodel.transformer import Block, block_kinds, sincos_1d, sincos_2d, space_time_blocks

# uint8 frames are scaled to [0, 1] and standardised with these (per channel)
PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.25, 0.25, 0.25)


def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, C) -> float (..., C, H, W), standardised."""
    x = frames.float().div(255.0)
    mean = x.new_tensor(PIXEL_MEAN)
    std = x.new_tensor(PIXEL_STD)
    return rearrange((x - mean) / std, "... h w c -> ... c h w")


class TubeletEmbed(nn.Module):
    """Conv3d with kernel = stride = (tubelet, patch, patch): (B, C, T, H, W) -> (B, T', P, D)."""

    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        size = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_channels, cfg.encoder_dim, kernel_size=size, stride=size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(video), "b d t h w -> b t (h w) d")


class VideoEncoder(nn.Module):
    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = TubeletEmbed(cfg)
        # separate, fixed encodings: 2D sine-cosine over patches, 1D over time steps
        self.register_buffer("spatial_pos", sincos_2d(cfg.grid, cfg.encoder_dim),
                             persistent=False)
        self.register_buffer("temporal_pos", sincos_1d(cfg.time_steps, cfg.encoder_dim),
                             persistent=False)
        self.kinds = block_kinds(cfg.factorized, cfg.num_spatial_layers,
                                 cfg.num_temporal_layers)
        self.blocks = nn.ModuleList(Block(cfg.encoder_dim, cfg.num_heads, cfg.mlp_ratio)
                                    for _ in self.kinds)
        self.norm = nn.LayerNorm(cfg.encoder_dim)

    def forward(self, video: torch.Tensor, *, context_steps: int | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """video: (B, C, T, H, W) -> tokens (B, T', P, D), T' = T / tubelet_size.

        With masks: only the first `context_steps` time steps and, in each, the patches
        `keep` (B, K) are encoded -> (B, context_steps, K, D)."""
        x = self.embed(video)  # (B, T', P, D)
        B, T, P, D = x.shape
        assert T <= self.temporal_pos.shape[0], (
            f"clip has {T} time steps, the encoder knows {self.temporal_pos.shape[0]}")
        x = x + self.spatial_pos[None, None] + self.temporal_pos[None, :T, None]
        if context_steps is not None:
            x = x[:, :context_steps]
        if keep is not None:
            index = keep[:, None, :, None].expand(B, x.shape[1], keep.shape[1], D)
            x = torch.gather(x, 2, index)  # (B, T_ctx, K, D)
        x = space_time_blocks(x, self.blocks, self.kinds, self.cfg.grad_checkpointing)
        return self.norm(x)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features, as V-JEPA 2-AC uses them: frames (B, T, C, H, W) float ->
        layer-normalised patch tokens (B, T, P, D), each frame encoded alone (repeated to
        fill one tubelet)."""
        B, T, C, H, W = frames.shape
        clips = rearrange(frames, "b t c h w -> (b t) c h w")[:, :, None]
        clips = clips.expand(-1, -1, self.cfg.tubelet_size, -1, -1)  # (B*T, C, ts, H, W)
        tokens = self(clips)[:, 0]  # (B*T, P, D)
        tokens = F.layer_norm(tokens, tokens.shape[-1:])
        return rearrange(tokens, "(b t) p d -> b t p d", b=B)
