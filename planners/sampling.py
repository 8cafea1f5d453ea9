"""Sampling-based trajectory optimisers over a box of actions: CEM and MPPI.

Both have one interface. A planner optimises an action sequence (H, A) inside per-dimension
bounds against an objective that maps a batch of sequences (N, H, A) to energies (N,);
every sample of an iteration goes to the objective in one call (one batched forward of the
world model). Between calls of `plan`, the planner keeps its last mean and warm-starts
from it shifted by the number of steps executed, as receding-horizon MPC does, unless the
call gives another first mean (`init`: a proposal, such as the policy prior's).

    planner = CEM(CEMConfig(), low=-torch.ones(4), high=torch.ones(4))
    result = planner.plan(objective, generator)      # result.actions: (H, A)
    planner.shift(1)                                 # after executing one step
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Objective = Callable[[torch.Tensor], torch.Tensor]  # actions (N, H, A) -> energies (N,)


@dataclass
class SamplingConfig:
    """Fields every sampling planner has."""

    horizon: int = 3  # H, model steps planned ahead
    num_samples: int = 64  # N, action sequences per iteration
    iterations: int = 3  # refinements per plan
    init_std: float = 0.6  # initial sampling std, in action units
    min_std: float = 0.05  # floor of the std, keeps some exploration
    warm_start: bool = True  # start from the previous plan shifted by the executed steps

    def __post_init__(self):
        for name in ("horizon", "num_samples", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.min_std <= self.init_std:
            raise ValueError(f"need 0 < {self.min_std=} <= {self.init_std=}")


@dataclass
class CEMConfig(SamplingConfig):
    name: str = "cem"
    num_elites: int = 8  # K, best samples the distribution is refitted to
    momentum: float = 0.15  # weight of the old mean/std in each update (V-JEPA 2 planner)

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.num_elites <= self.num_samples:
            raise ValueError(f"{self.num_elites=} must be in [1, {self.num_samples=}]")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"{self.momentum=} must be in [0, 1)")


@dataclass
class MPPIConfig(SamplingConfig):
    name: str = "mppi"
    temperature: float = 0.05  # lambda: weights are softmax(-energy / (lambda * spread))
    momentum: float = 0.1  # weight of the old mean/std in each update

    def __post_init__(self):
        super().__post_init__()
        if self.temperature <= 0.0:
            raise ValueError(f"{self.temperature=} must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"{self.momentum=} must be in [0, 1)")


@dataclass
class PlanResult:
    actions: torch.Tensor  # (H, A), the plan (the final mean)
    energy: float  # the objective at `actions`
    best_energy_per_iteration: list[float] = field(default_factory=list)
    mean_energy_per_iteration: list[float] = field(default_factory=list)


class SamplingPlanner:
    """Gaussian sampling inside bounds, refitting mean and std each iteration; subclasses
    say how (`_refit`)."""

    def __init__(self, cfg: SamplingConfig, *, low: torch.Tensor, high: torch.Tensor):
        low, high = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(
            high, dtype=torch.float32)
        if low.shape != high.shape or low.dim() != 1 or not bool((low < high).all()):
            raise ValueError(f"bounds must be 1-D of equal shape with low < high, got "
                             f"{low.tolist()} and {high.tolist()}")
        self.cfg, self.low, self.high = cfg, low, high
        self.action_dim = low.shape[0]  # A
        self._previous: torch.Tensor | None = None  # last plan's mean (H, A)

    def reset(self) -> None:
        """Forget the previous plan (a new episode)."""
        self._previous = None

    def shift(self, steps: int) -> None:
        """The first `steps` actions of the last plan were executed: drop them and repeat
        the last action at the end (the warm start of the next plan)."""
        if self._previous is not None and steps > 0:
            prev = self._previous
            tail = prev[-1:].expand(min(steps, len(prev)), -1)
            self._previous = torch.cat([prev[steps:], tail])[:len(prev)]

    def _initial(self, init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        H, A = self.cfg.horizon, self.action_dim
        centre = (self.low + self.high) / 2
        if init is not None:
            if init.shape != (H, A):
                raise ValueError(f"init must be ({H}, {A}), got {tuple(init.shape)}")
            mean = init.float().clone()
        elif self.cfg.warm_start and self._previous is not None:
            mean = self._previous.clone()
        else:
            mean = centre.expand(H, A).clone()
        std = torch.full((H, A), self.cfg.init_std) * (self.high - self.low) / 2
        return mean, std

    @torch.no_grad()
    def plan(self, objective: Objective, generator: torch.Generator,
             init: torch.Tensor | None = None) -> PlanResult:
        """Optimise an action sequence (H, A) against `objective`; deterministic given
        the generator's state. `init` (H, A), if given, is the first sampling mean in place
        of the warm start (a proposal, e.g. the policy prior's)."""
        mean, std = self._initial(init)
        floor = self.cfg.min_std * (self.high - self.low) / 2
        result = PlanResult(actions=mean, energy=float("inf"))
        best_actions, best_energy = mean, float("inf")
        for _ in range(self.cfg.iterations):
            noise = torch.randn((self.cfg.num_samples, *mean.shape), generator=generator)
            samples = mean + std * noise  # (N, H, A)
            samples[0] = mean  # the current mean is always evaluated
            samples = torch.maximum(torch.minimum(samples, self.high), self.low)
            energies = objective(samples).float().cpu()  # (N,)
            assert energies.shape == (len(samples),), (
                f"the objective returned {tuple(energies.shape)}, expected ({len(samples)},)")
            i = int(torch.argmin(energies))
            if float(energies[i]) < best_energy:
                best_energy, best_actions = float(energies[i]), samples[i].clone()
            result.best_energy_per_iteration.append(float(energies[i]))
            result.mean_energy_per_iteration.append(float(energies.mean()))
            mean, std = self._refit(samples, energies, mean, std)
            std = torch.maximum(std, floor)
        # the plan is the best sequence evaluated (the mean itself is one of the samples)
        result.actions, result.energy = best_actions, best_energy
        self._previous = mean
        return result

    def _refit(self, samples, energies, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class CEM(SamplingPlanner):
    """Cross-entropy method: refit the Gaussian to the K best samples, with momentum on
    mean and std (as in the V-JEPA 2 planner)."""

    cfg: CEMConfig

    def _refit(self, samples, energies, mean, std):
        elites = samples[torch.topk(energies, self.cfg.num_elites, largest=False).indices]
        m = self.cfg.momentum
        new_std = elites.std(dim=0, unbiased=False) if len(elites) > 1 else std
        return m * mean + (1 - m) * elites.mean(dim=0), m * std + (1 - m) * new_std


class MPPI(SamplingPlanner):
    """Model-predictive path integral: every sample weighted by exp(-energy / lambda),
    energies normalised by their spread so `temperature` is scale-free."""

    cfg: MPPIConfig

    def _refit(self, samples, energies, mean, std):
        spread = (energies.max() - energies.min()).clamp_min(1e-8)
        weights = torch.softmax(-(energies - energies.min()) / (self.cfg.temperature * spread),
                                dim=0)[:, None, None]  # (N, 1, 1)
        new_mean = (weights * samples).sum(0)
        new_std = (weights * (samples - new_mean) ** 2).sum(0).sqrt()
        m = self.cfg.momentum
        return m * mean + (1 - m) * new_mean, m * std + (1 - m) * new_std


PLANNERS = {"cem": (CEMConfig, CEM), "mppi": (MPPIConfig, MPPI)}


def make_planner(cfg: SamplingConfig, *, low, high) -> SamplingPlanner:
    """The planner `cfg.name` names."""
    if cfg.name not in PLANNERS:
        raise ValueError(f"unknown planner {cfg.name!r}; valid: {', '.join(PLANNERS)}")
    return PLANNERS[cfg.name][1](cfg, low=low, high=high)
