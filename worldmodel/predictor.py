"""The V-JEPA pretraining predictor: narrower than the encoder; fills the masked positions
of the (time step, patch) grid with a learned mask token and predicts their features."""

from __future__ import annotations

import torch
from torch import nn

from worldmodel.config import VJEPAConfig
from worldmodel.masks import Masks
from worldmodel.transformer import Block, sincos_1d, sincos_2d, space_time_blocks


class MaskedPredictor(nn.Module):
    def __init__(self, cfg: VJEPAConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.predictor_dim
        self.in_proj = nn.Linear(cfg.encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.register_buffer("spatial_pos", sincos_2d(cfg.grid, dim), persistent=False)
        self.register_buffer("temporal_pos", sincos_1d(cfg.time_steps, dim), persistent=False)
        # factorized: alternate space and time blocks, so every depth mixes both
        self.kinds = (["space", "time"] * cfg.num_predictor_layers)[:cfg.num_predictor_layers] \
            if cfg.factorized else ["joint"] * cfg.num_predictor_layers
        self.blocks = nn.ModuleList(Block(dim, cfg.predictor_heads, cfg.mlp_ratio)
                                    for _ in self.kinds)
        self.norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, cfg.encoder_dim)

    def forward(self, context: torch.Tensor, masks: Masks, time_steps: int) -> torch.Tensor:
        """context: (B, T_ctx, K, D) encoder tokens -> predictions (B, N, D) at the
        positions `masks.target`, in (time, patch) order."""
        B, T_ctx, K, _ = context.shape
        P, dim = self.cfg.num_patches, self.cfg.predictor_dim
        grid = self.mask_token.to(context.dtype).expand(B, time_steps, P, dim).clone()
        index = masks.keep[:, None, :, None].expand(B, T_ctx, K, dim)
        grid[:, :T_ctx] = grid[:, :T_ctx].scatter(2, index, self.in_proj(context).to(grid.dtype))
        grid = grid + self.spatial_pos[None, None] + self.temporal_pos[None, :time_steps, None]
        grid = space_time_blocks(grid, self.blocks, self.kinds, self.cfg.grad_checkpointing)
        out = self.out_proj(self.norm(grid))  # (B, T, P, D)
        return out[masks.target].view(B, masks.num_targets, -1)
