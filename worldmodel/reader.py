"""The proprio reader: a small CNN that reads the robot's own proprio (gripper position and
opening) from one camera image, so a planner can tell where the goal image wants the
gripper.

Why it exists (measured, README "A goal-proprio energy term"): the predictor's imagined
proprio follows the actions closely, but the goal is given only as an image; the frozen
encoder's tokens localise the gripper poorly (ridge 5.7 cm, attentive probe 7.8 cm), while a
CNN trained on the play data's own frames and proprio reads it to about a centimetre.
It is trained on play data only (`python -m worldmodel.train_reader`): the labels are the
robot's proprioception, recorded with every frame; no rewards, no task labels, no object
state.

The trunk keeps a spatial map and ends in a spatial softmax (one expected image
coordinate per channel, as in deep spatial autoencoders for visuomotor learning), which
localises far better than flattening a coarse map.

    reader = load_reader(directory)          # None if the directory has no reader
    proprio = reader.read(pixels)            # uint8 (B, H, W, 3) -> (B, 4) in metres
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.config import DictConfig


@dataclass
class ReaderConfig(DictConfig):
    image_size: int = 64  # square input images
    channels: int = 32  # width of the conv trunk (the last layer has `keypoints` maps)
    keypoints: int = 32  # spatial-softmax channels, each gives an expected (x, y)
    hidden: int = 256  # MLP width after the keypoints

    def __post_init__(self):
        for name in ("image_size", "channels", "keypoints", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.image_size % 4:
            raise ValueError(f"{self.image_size=} must be divisible by 4 (the trunk "
                             "halves it twice)")


class ProprioReader(nn.Module):
    """uint8 image (B, H, W, 3) -> proprio (B, S) in the data's units."""

    def __init__(self, cfg: ReaderConfig, proprio_dim: int = 4):
        super().__init__()
        self.cfg, self.proprio_dim = cfg, proprio_dim
        C = cfg.channels

        def conv(cin, cout, stride=1):
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8 if cout % 8 == 0
                                                                      else 1, cout), nn.GELU()]

        # 5 input channels: RGB and the pixel's (x, y), so the trunk knows where it looks
        self.trunk = nn.Sequential(*conv(5, C, 2), *conv(C, C), *conv(C, 2 * C, 2),
                                   *conv(2 * C, 2 * C), nn.Conv2d(2 * C, cfg.keypoints, 1))
        self.temperature = nn.Parameter(torch.zeros(()))  # log of the softmax sharpness
        self.head = nn.Sequential(nn.Linear(2 * cfg.keypoints, cfg.hidden), nn.GELU(),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                  nn.Linear(cfg.hidden, proprio_dim))
        size = cfg.image_size
        grid = torch.linspace(-1, 1, size)
        self.register_buffer("coords", torch.stack(torch.meshgrid(grid, grid, indexing="xy")),
                             persistent=False)  # (2, H, W): x, y
        quarter = torch.linspace(-1, 1, size // 4)  # the keypoint maps' grid
        self.register_buffer("map_coords", torch.stack(
            torch.meshgrid(quarter, quarter, indexing="xy")).flatten(1), persistent=False)
        # outputs are standardised with the training data's statistics (set by train_reader)
        self.register_buffer("proprio_mean", torch.zeros(proprio_dim))
        self.register_buffer("proprio_std", torch.ones(proprio_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> standardised proprio (B, S)."""
        size = self.cfg.image_size
        if pixels.dim() != 4 or pixels.shape[1:] != (size, size, 3):
            raise ValueError(f"the reader takes uint8 images (B, {size}, {size}, 3), got "
                             f"{tuple(pixels.shape)}")
        x = pixels.permute(0, 3, 1, 2).float() / 255 - 0.5
        x = torch.cat([x, self.coords.expand(len(x), -1, -1, -1)], dim=1)
        maps = self.trunk(x).flatten(2)  # (B, K, H/4 * W/4)
        attention = F.softmax(maps * self.temperature.exp() * 10, dim=-1)
        points = torch.einsum("bkn,cn->bkc", attention, self.map_coords)  # (B, K, 2)
        return self.head(points.flatten(1))

    @torch.no_grad()
    def read(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> proprio (B, S) in the data's units."""
        device = self.proprio_mean.device
        return self(torch.as_tensor(pixels).to(device)) * self.proprio_std + self.proprio_mean
