"""Masks for V-JEPA pretraining, on the (time step, patch) grid of a clip.

Every mask hides *tubes*: the same patches in every context time step, as V-JEPA's tube
masks do, so that a motionless shortcut (copy the patch from another frame) is not
available. Each sample keeps the same number of patches, so the context is a regular
(B, T_ctx, K, D) grid and factorized attention runs on it without padding.

- `future_masks` (the seed's future-biased masking): the earliest time steps are context,
  the latest `temporal_mask_ratio` of them are targets, and `mask_ratio` of the context
  patches are hidden too (and predicted).
- `multiblock_masks` (V-JEPA's multi-block): every time step is context; random
  rectangles, as tubes through all frames, are hidden until `mask_ratio` of the frame is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Masks:
    context_steps: int  # the first `context_steps` time steps are seen by the context encoder
    keep: torch.Tensor  # (B, K) long: visible patch indices, the same in every context step
    target: torch.Tensor  # (B, T, P) bool: positions the predictor predicts

    def __post_init__(self):
        B, K = self.keep.shape
        B2, T, P = self.target.shape
        assert B == B2, f"keep has batch {B}, target has {B2}"
        assert 0 < self.context_steps <= T, f"{self.context_steps=} not in 1..{T}"
        assert 0 < K <= P, f"keep {K} patches of {P}"

    @property
    def num_targets(self) -> int:
        """Targets per sample (the same for every sample)."""
        return int(self.target[0].sum())


def _target_from(keep: torch.Tensor, time_steps: int, num_patches: int,
                 context_steps: int) -> torch.Tensor:
    B = keep.shape[0]
    visible = torch.zeros(B, time_steps, num_patches, dtype=torch.bool, device=keep.device)
    visible[:, :context_steps].scatter_(
        2, keep[:, None, :].expand(B, context_steps, keep.shape[1]), True)
    return ~visible


def future_masks(batch: int, time_steps: int, grid: int, *, temporal_mask_ratio: float,
                 mask_ratio: float, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu") -> Masks:
    """Future-biased masks: context = earlier time steps, targets = later ones plus the
    hidden context patches."""
    if time_steps < 2:
        raise ValueError(f"future-biased masking needs >= 2 time steps, got {time_steps}")
    context_steps = min(max(round(time_steps * (1 - temporal_mask_ratio)), 1), time_steps - 1)
    P = grid * grid
    K = P - round(mask_ratio * P)
    scores = torch.rand(batch, P, generator=generator)
    keep = scores.argsort(dim=1)[:, :K].sort(dim=1).values.to(device)
    return Masks(context_steps, keep, _target_from(keep, time_steps, P, context_steps))


def multiblock_masks(batch: int, time_steps: int, grid: int, *, mask_ratio: float,
                     num_blocks: int = 4, generator: torch.Generator | None = None,
                     device: str | torch.device = "cpu") -> Masks:
    """V-JEPA-style multi-block tube masks: up to `num_blocks` random rectangles (1/4 to 1/2
    of the frame side each, repeated if needed) hide about `mask_ratio` of every frame."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"multi-block masking needs 0 < {mask_ratio=} < 1")
    P = grid * grid
    hidden = torch.zeros(batch, grid, grid, dtype=torch.bool)
    low, high = max(1, grid // 4), max(1, grid // 2)
    for b in range(batch):
        blocks = 0
        while hidden[b].float().mean() < mask_ratio and blocks < 8 * num_blocks:
            h, w = (int(torch.randint(low, high + 1, (1,), generator=generator)) for _ in "hw")
            top = int(torch.randint(0, grid - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, grid - w + 1, (1,), generator=generator))
            hidden[b, top:top + h, left:left + w] = True
            blocks += 1
    hidden = hidden.view(batch, P)
    # equal counts across the batch: hide random extra patches where more are visible
    K = int((~hidden).sum(dim=1).min())
    scores = torch.rand(batch, P, generator=generator) + hidden.float() * 2.0
    keep = scores.argsort(dim=1)[:, :K].sort(dim=1).values.to(device)
    return Masks(time_steps, keep, _target_from(keep, time_steps, P, time_steps))
