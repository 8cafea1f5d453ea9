"""Transformer blocks and positional encodings shared by the encoder and predictors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, L, D); mask: optional bool (L, L), True where attention is allowed."""
        q, k, v = rearrange(self.qkv(x), "n l (three h e) -> three n h l e", three=3,
                            h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(rearrange(out, "n h l e -> n l (h e)"))


class Block(nn.Module):
    """Pre-norm transformer block (attention + MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


def run_block(block: Block, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """Apply `block`, recomputing its activations in backward when `checkpointed`."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(block, x, use_reentrant=False)
    return block(x)


def space_time_blocks(x: torch.Tensor, blocks: nn.ModuleList, kinds: list[str],
                      checkpointed: bool = False) -> torch.Tensor:
    """Run blocks over a (B, T, P, D) grid; each block attends by its kind:
    "space" within a time step, "time" across time per patch, "joint" over all tokens."""
    B, T, P, D = x.shape
    for block, kind in zip(blocks, kinds):
        if kind == "space":
            x = rearrange(x, "b t p d -> (b t) p d")
            x = rearrange(run_block(block, x, checkpointed), "(b t) p d -> b t p d", b=B)
        elif kind == "time":
            x = rearrange(x, "b t p d -> (b p) t d")
            x = rearrange(run_block(block, x, checkpointed), "(b p) t d -> b t p d", b=B)
        else:
            x = rearrange(x, "b t p d -> b (t p) d")
            x = rearrange(run_block(block, x, checkpointed), "b (t p) d -> b t p d", t=T)
    return x


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """Fixed sine-cosine encoding of positions 0..length-1: (length, dim)."""
    assert dim % 2 == 0, f"{dim=} must be even"
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine encoding of a grid x grid patch layout: (grid * grid, dim)."""
    assert dim % 4 == 0, f"{dim=} must be divisible by 4"
    rows = sincos_1d(grid, dim // 2)
    return torch.cat([rows.repeat_interleave(grid, 0), rows.repeat(grid, 1)], dim=1)


def block_kinds(factorized: bool, num_spatial: int, num_temporal: int) -> list[str]:
    """Encoder layout: factorized = all spatial blocks, then all temporal ones (the seed)."""
    if factorized:
        return ["space"] * num_spatial + ["time"] * num_temporal
    return ["joint"] * (num_spatial + num_temporal)
