"""Write videos and contact sheets of uint8 frames."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_video(path: str | Path, frames: np.ndarray | list[np.ndarray], fps: float,
                scale: int = 1) -> Path:
    """Write uint8 (T, H, W, 3) frames as an H.264 mp4 (ffmpeg from imageio-ffmpeg), each
    pixel shown as a `scale` x `scale` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        block = np.ones((scale, scale, 1), np.uint8)
        frames = [np.kron(frame, block) for frame in frames]
    imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=1, quality=8)
    return path


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Images of equal height (H, W_i, 3) joined left to right with white gaps."""
    height = images[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    parts = []
    for image in images:
        parts += [image, spacer]
    return np.concatenate(parts[:-1], axis=1)
