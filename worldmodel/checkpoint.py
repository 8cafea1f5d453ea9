"""Training checkpoints: written atomically (temp file + rename), loaded without
unpickling arbitrary objects (`torch.load(weights_only=True)`)."""

from __future__ import annotations

import json
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


def resume(directory: str | Path, model: torch.nn.Module,
           optimizer: torch.optim.Optimizer) -> tuple[int, float, list[dict]]:
    """Load the last training checkpoint of `directory` into `model` and `optimizer`, if
    there is one. Returns (steps done, seconds trained, logged history)."""
    state = load_checkpoint(directory)
    if state is None:
        return 0, 0.0, []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resuming {directory} from step {state['step']}")
    return state["step"], state["elapsed"], json.loads(state["history"])


def save_training(directory: str | Path, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer, *, step: int, elapsed: float,
                  history: list[dict], config: dict) -> Path:
    """The training checkpoint `resume` reads."""
    return save_checkpoint(directory, {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
        "elapsed": elapsed, "history": json.dumps(history), "config": json.dumps(config)})
