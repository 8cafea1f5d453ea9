"""Video-consistent augmentation: one random crop and one colour change per clip, applied
to every frame of it (V-JEPA), so that motion between frames is left intact."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def augment_clips(video: torch.Tensor, *, crop_scale: tuple[float, float] = (0.7, 1.0),
                  color: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """video: float (B, C, T, H, W) -> the same shape, each clip cropped (area fraction in
    `crop_scale`, resized back) and colour-jittered (brightness, contrast, saturation by up
    to +-`color`) the same way in all of its frames."""
    B, C, T, H, W = video.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(B, generator=generator)

    scale = uniform(*crop_scale).sqrt()  # side fraction
    centre_x = (1 - scale) * (2 * torch.rand(B, generator=generator) - 1)
    centre_y = (1 - scale) * (2 * torch.rand(B, generator=generator) - 1)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = centre_x, centre_y
    theta = theta.to(video).repeat_interleave(T, dim=0)  # the same crop for every frame
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    grid = F.affine_grid(theta, frames.shape, align_corners=False)
    frames = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    video = rearrange(frames, "(b t) c h w -> b c t h w", b=B)
    if color > 0:
        shape = (B, 1, 1, 1, 1)
        brightness = uniform(-color, color).view(shape).to(video)
        contrast = uniform(1 - color, 1 + color).view(shape).to(video)
        saturation = uniform(1 - color, 1 + color).view(shape).to(video)
        grey = video.mean(dim=1, keepdim=True)
        video = grey + (video - grey) * saturation
        mean = video.mean(dim=(1, 2, 3, 4), keepdim=True)
        video = mean + (video - mean) * contrast + brightness
    return video
