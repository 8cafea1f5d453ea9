"""Pictures of a planning episode: per-patch distance heatmaps and energy plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def heatmap(per_patch: torch.Tensor, size: int) -> np.ndarray:
    """Per-patch distances (P,) -> uint8 (size, size, 3) image, brighter = farther,
    scaled to the frame's own maximum."""
    from matplotlib import colormaps

    values = per_patch.float().cpu().numpy()
    grid = int(round(len(values) ** 0.5))
    values = values.reshape(grid, grid) / max(float(values.max()), 1e-8)
    rgb = (colormaps["magma"](values)[..., :3] * 255).astype(np.uint8)  # (g, g, 3)
    return np.kron(rgb, np.ones((size // grid, size // grid, 1), np.uint8))


def plot_energies(episode: dict, path: str | Path) -> Path:
    """Two panels: the best energy over planner iterations (one line per planning step),
    and over the episode the plan's energy, the observed frame's distance to the goal and
    the true task distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = len(episode["iterations"])
    colours = plt.cm.viridis(np.linspace(0, 1, max(steps, 2)))
    for i, energies in enumerate(episode["iterations"]):
        left.plot(range(1, len(energies) + 1), energies, color=colours[i], lw=1)
    left.set(xlabel="planner iteration", ylabel="best energy",
             title="energy over iterations (dark: early steps)")
    right.plot(episode["energy"], label="plan energy (imagined)")
    right.plot(episode["observed_to_goal"], label="observed frame to goal")
    right.set(xlabel="planning step", ylabel="latent distance", title="energy over episode")
    task = right.twinx()
    n = len(episode["task_distance"])
    task.plot(np.linspace(0, steps, n), 100 * np.asarray(episode["task_distance"]),
              color="grey", ls="--", label="task distance")
    task.set_ylabel("task distance (cm)")
    right.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
