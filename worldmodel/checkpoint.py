"""Training checkpoints: written atomically (temp file + rename), loaded without
unpickling arbitrary objects (`torch.load(weights_only=True)`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(directory: str | Path, state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, dicts, lists) as `directory/checkpoint.pt`;
    a kill mid-write leaves the previous checkpoint intact."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / CHECKPOINT
    tmp = directory / f".{CHECKPOINT}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, final)
    return final


def load_checkpoint(directory: str | Path) -> dict | None:
    """The last checkpoint in `directory`, or None if there is none."""
    path = Path(directory) / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
