"""The policy prior: a goal-conditioned action proposal learned from play data, which seeds
the planner's sampling (as TD-MPC2 seeds its MPPI samples with a learned policy).

    prior = load_prior(directory)                     # None if the directory has none
    actions = prior(state, goal)                      # (B, 7), (B, 7) -> (B, chunk, 4)

`state` is what the planner has at each step: the robot's proprio (gripper xyz, finger gap)
and the task's contact point read from the camera image by the contact reader; `goal` the
same two read from the goal image (proprio reader, contact reader). The output is the next
`chunk` control actions, in [-1, 1].

It is trained by `python -m worldmodel.train_prior` on the noisy-expert episodes of a play
collection, each frame labelled with the actions that followed it and, as its goal, the
state its episode ended in (hindsight relabelling: no rewards, no task labels; the object
state of the play data is a training label, as for the contact reader, so planning with it
is a separately reported variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodel.config import DictConfig

STATE_DIM = 7  # proprio (gripper xyz, finger gap) + contact point (xyz), m
ACTION_DIM = 4  # control action: dx, dy, dz, grip


@dataclass
class PriorConfig(DictConfig):
    hidden: int = 512  # MLP width
    layers: int = 3  # hidden layers
    chunk: int = 12  # control actions proposed per call (the planner's horizon x frameskip)

    def __post_init__(self):
        for name in ("hidden", "layers", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


class PolicyPrior(nn.Module):
    """(state (B, 7), goal (B, 7)) -> the next `chunk` control actions (B, chunk, 4)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        # inputs: state and goal standardised, goal - state and contact - gripper (x10: dm)
        width = 2 * STATE_DIM + STATE_DIM + 3
        layers: list[nn.Module] = []
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU()]
            width = cfg.hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, cfg.chunk * ACTION_DIM))
        # standardisation of [state, goal] with the training data's statistics (train_prior)
        self.register_buffer("input_mean", torch.zeros(2 * STATE_DIM))
        self.register_buffer("input_std", torch.ones(2 * STATE_DIM))

    def forward(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if state.shape[-1] != STATE_DIM or goal.shape[-1] != STATE_DIM:
            raise ValueError(f"state and goal must be (B, {STATE_DIM}): proprio (4) + contact "
                             f"point (3); got {tuple(state.shape)} and {tuple(goal.shape)}")
        x = torch.cat([state, goal], -1)
        features = torch.cat([(x - self.input_mean) / self.input_std, 10 * (goal - state),
                              10 * (state[:, 4:7] - state[:, :3])], -1)
        return self.net(features).view(-1, self.cfg.chunk, ACTION_DIM)

    @torch.no_grad()
    def propose(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """One state (7,) and goal (7,) -> the proposed control actions (chunk, 4) in
        [-1, 1]."""
        return self(state[None].float(), goal[None].float())[0].clamp(-1, 1)
