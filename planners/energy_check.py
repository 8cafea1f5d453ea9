"""Does the world model rank plans as the simulator does? `python -m planners.energy_check`.

    python -m planners.energy_check                                    # shipped weights
    python -m planners.energy_check weights_dir=runs/wide_pre env.cameras=[wide] \\
        objective.scales=[1,2,4,8] report=reports/energy_check_wide.json

A planner only needs its energy to order candidate action sequences as the task would.
This measures that order directly, without closed-loop episodes. For each task, at states
along noisy expert trajectories (seeds 0..states-1, a seeded number of steps into the
episode), it draws `samples` action sequences as the planner's first iteration would
(Gaussian around zero with the planner's initial std, clipped; a quarter of them around
the expert's own actions instead, so that some make progress) and scores each three ways:

- `true`: the oracle's energy, the distance of the simulated state to the goal state;
- `sim_latent`: the goal-image energy on frames rendered from the true simulator (and,
  with `objective.proprio_weight` > 0, on the simulated gripper);
- `world_model`: the same energy on the predictor's imagined tokens (and proprio).

Per state it reports Spearman rank correlations between the three, the true rank of the
sequences each energy would keep as CEM's elites (0 = the truly best, 0.5 = chance; the
control `stay_still` ranks sequences by how little they move the gripper), and
how well the predictor's imagined gripper position follows the actions (R² across the
sequences of the final step's proprio against the simulated one: near 0 or below, the
predictor ignores the actions).
`world_model` against `sim_latent` is what the predictor loses; `sim_latent` against
`true`, what the encoder's goal-image energy loses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

import envs
from planners.agent import ENV_ACTION_DIM, prepare_image, read_image
from planners.mpc import MPCConfig, make_env, needs_contact_reader
from planners.objective import LatentObjective
from worldmodel.pretrain import git_revision
from worldmodel.report import energy_check_table, save_json
from worldmodel.weights import load_pretrained

ENERGIES = ("true", "sim_latent", "world_model")
PAIRS = (("world_model", "sim_latent"), ("sim_latent", "true"), ("world_model", "true"))


@dataclass
class EnergyCheckConfig(MPCConfig):
    """`env` sets the camera and image size, `planner` the horizon, initial std and elites,
    `objective` the energy, `weights_dir` the world model; `tasks` which tasks run."""

    tasks: list[str] = field(default_factory=lambda: list(envs.TASK_NAMES))
    states: int = 20  # states per task (env seeds seed .. seed + states - 1)
    samples: int = 64  # action sequences scored at each state
    expert_fraction: float = 0.25  # of the samples, drawn around the expert's actions
    expert_noise: float = 0.3  # play noise of the trajectory the states are taken from
    report: str | None = None  # if set, write the results (JSON) there

    def __post_init__(self):
        super().__post_init__()
        envs.check_tasks(self.tasks)
        if self.states < 1 or self.samples < 4:
            raise ValueError(f"need {self.states=} >= 1 and {self.samples=} >= 4")
        if self.history != 1:
            raise ValueError(f"{self.history=}: the check plans from the current frame alone")
        if not 0.0 <= self.expert_fraction <= 1.0:
            raise ValueError(f"{self.expert_fraction=} must be in [0, 1]")


cs = ConfigStore.instance()
cs.store(name="energy_check_schema", node=EnergyCheckConfig)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two (N,) tensors (ties broken by order)."""
    ra, rb = (x.argsort().argsort().double() for x in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def elite_rank(energy: torch.Tensor, true: torch.Tensor, elites: int) -> float:
    """Mean true rank, as a fraction of N - 1, of the `elites` lowest-energy samples."""
    true_rank = true.argsort().argsort().double() / (len(true) - 1)
    return float(true_rank[energy.argsort()[:elites]].mean())


def sample_actions(cfg: EnergyCheckConfig, env, generator: torch.Generator,
                   frameskip: int) -> torch.Tensor:
    """(N, H, 4) planned actions, each held for `frameskip` control steps: Gaussian around
    zero like the planner's first iteration, and a fraction around the expert's actions."""
    N, H = cfg.samples, cfg.planner.horizon
    std = cfg.planner.init_std
    actions = torch.randn(N, H, ENV_ACTION_DIM, generator=generator) * std
    n_expert = round(cfg.expert_fraction * N)
    if n_expert:
        base = env.unwrapped
        data = base.copy_state()
        expert = []
        for _ in range(H):  # the expert's action at each model step, held like the plan's
            action = np.clip(base.task.expert_action(data, base.goal), -1, 1)
            for _ in range(frameskip):
                base.apply_action(data, action)
            expert.append(action)
        expert = torch.as_tensor(np.array(expert), dtype=torch.float32)
        actions[:n_expert] = expert + torch.randn(n_expert, H, ENV_ACTION_DIM,
                                                  generator=generator) * (std / 2)
    return actions.clamp(-1, 1)


@torch.no_grad()
def check_state(cfg: EnergyCheckConfig, model, env, obs: dict, goal: torch.Tensor,
                generator: torch.Generator, goal_proprio: torch.Tensor | None = None,
                goal_contact: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three energies (N,) of one batch of action sequences from env's current state,
    whose observation is `obs`, towards the goal image's tokens `goal` (P, D) (and, for
    the world model's gripper and contact terms, the goal proprio and contact point read
    from the goal image); also the stay-still control's (N,) and the imagined gripper R²
    (a scalar). A predictor that imagines the object starts from the contact point read
    from the current image, as the agent does; the simulator's is its true one."""
    base = env.unwrapped
    frameskip = model.predictor.cfg.frameskip
    object_state = model.predictor.object_state
    actions = sample_actions(cfg, env, generator, frameskip)
    controls = actions.repeat_interleave(frameskip, dim=1).numpy()  # (N, H * frameskip, 4)
    start, goal_state = base.copy_state(), np.concatenate([base.goal, base.goal_proprio])
    states, frames = zip(*(base.simulate(start, c, every=frameskip, pixels=True,
                                         object_position=object_state) for c in controls))
    states, frames = np.stack(states), np.stack(frames)  # (N, H, G + 4 (+ 3)), (N, H, h, w, 3)
    G = len(base.goal)
    true = torch.as_tensor(np.linalg.norm(states[..., :G + 4] - goal_state, axis=-1))  # (N, H)
    z = model.encode(prepare_image(obs["pixels"], model.config.image_size)[None, None])[0, 0]
    proprio = torch.as_tensor(obs["proprio"])
    contact = read_image(model.contact_reader, obs["pixels"])
    objective = LatentObjective(cfg.objective, model.predictor, z=z,
                                proprio=torch.cat([proprio, contact]) if object_state else proprio,
                                goal=goal, action_repeat=frameskip, goal_proprio=goal_proprio,
                                contact=contact, goal_contact=goal_contact)
    # the same energy on the simulator's frames and proprio (+ its true contact point)
    sim = objective.distances(model.encode(torch.from_numpy(frames)),
                              torch.as_tensor(states[..., G:], dtype=torch.float32))
    z_hat, proprio_hat = objective.rollout(actions)
    imagined = objective.distances(z_hat, proprio_hat)
    pick = (lambda e: e[:, -1]) if cfg.objective.weighting == "last" else (lambda e: e.mean(1))
    gripper = torch.as_tensor(states[:, -1, G:G + 3])  # simulated final gripper position
    start_gripper = torch.as_tensor(base.proprio(start)[:3], dtype=torch.float64)
    residual = (proprio_hat[:, -1, :3].double() - gripper).square().sum()
    return {"true": pick(true), "sim_latent": pick(sim), "world_model": pick(imagined),
            "stay_still": (gripper - start_gripper).norm(dim=1),
            "gripper_r2": 1 - residual / (gripper - gripper.mean(0)).square().sum()}


def check_task(cfg: EnergyCheckConfig, model, task: str) -> dict:
    """Per-state correlations and elite ranks of one task, and their means."""
    env = make_env(cfg, model, task)
    budget = envs.step_budget(task)
    rows = []
    for seed in tqdm(range(cfg.seed, cfg.seed + cfg.states), desc=task, leave=False):
        obs, info = env.reset(seed=seed)
        goal = model.encode(prepare_image(info["goal_pixels"],
                                          model.config.image_size)[None, None])[0, 0]
        goal_proprio = read_image(model.reader, info["goal_pixels"])
        rng = np.random.default_rng(seed)
        policy = envs.expert(env, noise=cfg.expert_noise, seed=seed)
        for _ in range(int(rng.integers(0, budget // 2))):  # a state along the task
            obs, *_ = env.step(policy(obs))
        generator = torch.Generator().manual_seed(seed)
        goal_contact = read_image(model.contact_reader, info["goal_pixels"])
        energies = check_state(cfg, model, env, obs, goal, generator, goal_proprio,
                               goal_contact)
        row = {"seed": seed, "task_distance": float(env.unwrapped.task.distance(
            env.unwrapped.data, env.unwrapped.goal))}
        if goal_proprio is not None:  # how far the reader misplaces the goal gripper
            row["goal_read_cm"] = 100 * float(np.linalg.norm(
                goal_proprio[:3].numpy() - env.unwrapped.goal_proprio[:3]))
        for a, b in PAIRS:
            row[f"rho_{a}_{b}"] = spearman(energies[a], energies[b])
        for name in (*ENERGIES[1:], "stay_still"):
            row[f"elite_rank_{name}"] = elite_rank(energies[name], energies["true"],
                                                   cfg.planner.num_elites)
        row["gripper_r2"] = float(energies["gripper_r2"])
        rows.append(row)
    env.close()
    keys = [k for k in rows[0] if k.startswith(("rho_", "elite_", "gripper_", "goal_read"))]
    return {"mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}, "states": rows}


def run(cfg: EnergyCheckConfig) -> dict:
    model = load_pretrained(cfg.weights_dir, predictor=True,
                            reader=cfg.objective.reads_goal_gripper,
                            contact_reader=needs_contact_reader(cfg.objective, cfg.weights_dir))
    results = {task: check_task(cfg, model, task) for task in cfg.tasks}
    report = {"config": OmegaConf.to_container(OmegaConf.structured(cfg)),
              "git_revision": git_revision(), "tasks": results}
    print(energy_check_table({"": report}))
    if cfg.report:
        save_json(Path(cfg.report), report)
    return report


@hydra.main(config_path="../configs", config_name="energy_check", version_base="1.3")
def main(cfg) -> None:
    run(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
