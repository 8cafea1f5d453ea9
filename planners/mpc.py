"""Plan to a goal image with the shipped world model: `python -m planners.mpc env=push`.

    python -m planners.mpc env=drawer planner=mppi episodes=5 seed=10
    python -m planners.mpc env=push planner.num_samples=256 planner.iterations=6

Each episode: the env's goal image is encoded once; at every planning step the agent
encodes the camera frame, the planner (CEM or MPPI) rolls out candidate action sequences
through the action-conditioned predictor, and the first model step of the best plan is
executed (receding horizon). Prints per-step progress, then success, final task distance
and median planning time per step; writes into the Hydra run directory a video (camera |
goal | per-patch distance of the imagined final frame to the goal) and plots of the energy
over planner iterations and over the episode.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, OmegaConf

import envs
from envs.config import EnvConfig
from envs.video import side_by_side, write_video
from planners.agent import ENV_ACTION_DIM, LatentMPCAgent
from planners.objective import ObjectiveConfig
from planners.plots import heatmap, plot_energies
from planners.sampling import PLANNERS, make_planner
from worldmodel.ac_predictor import ROBOT_PROPRIO_DIM
from worldmodel.hardware import keep_freed_memory
from worldmodel.report import describe_energy, save_json
from worldmodel.weights import PREDICTOR, PRETRAINED_DIR, load_pretrained, read_card


@dataclass
class MPCConfig:
    env: EnvConfig = field(default_factory=EnvConfig)  # the task (config group env/)
    planner: Any = MISSING  # SamplingConfig, from config group planner/: cem | mppi
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    weights_dir: str = str(PRETRAINED_DIR)  # encoder + predictor (safetensors + cards)
    episodes: int = 1  # episodes with env seeds seed, seed + 1, ...
    seed: int = 0  # first env seed (the planner's generator is seeded with it too)
    # added to the env seed to seed the planner's generator: other values draw other
    # planner samples on the same episodes (how much of a success rate is sampling luck)
    planner_seed: int = 0
    history: int = 1  # observed frames in the predictor's context (1: the current one)
    execute: int = 1  # model steps executed per plan before replanning
    action_repeat: bool = True  # plan one 4-D action per model step, held for frameskip
    max_steps: int | None = None  # control steps per episode; None: the task's budget
    # sub-goal images of the expert's way to the goal, planned to first (a separately
    # reported variant; planners/agent.py): how many, and how near (m) the gripper must get
    # to one, as the proprio reader reads it, to move on early
    subgoals: int = 0
    subgoal_reach: float = 0.02
    # seed each plan's sampling with the policy prior's proposal (worldmodel.prior, in
    # weights_dir; a separately reported variant, README "A policy prior from play data")
    prior: bool = False
    # with the prior: + this x the mean |plan's actions - the proposal's| in the energy
    prior_weight: float = 0.0
    # with the prior: let it act (one control action per image) unless the planner's best plan
    # imagines an energy below the proposal's x (1 - prior_margin); null: the plan always acts
    prior_margin: float | None = None
    # with prior_margin: the world model plans only after a model step in which the gripper
    # moved less than prior_stall (m) while the read object was farther than stall_distance (m)
    # from the goal's; elsewhere the prior acts without a plan. null: plan every model step
    prior_stall: float | None = None
    stall_distance: float = 0.04
    stall_plans: int = 1  # model steps the world model plans from a stall on (the stall's own)
    video: bool = True  # write a video per episode
    video_scale: int = 4  # video pixels per observation pixel
    device: str = "cpu"  # the planner's device: cpu | cuda
    # keep freed memory in malloc's heap (worldmodel.hardware.keep_freed_memory): faster
    # planning on a CPU, process-wide
    keep_freed_memory: bool = True
    verbose: bool = True  # a line per planning step
    report: str | None = None  # if set, add this run's summary to that JSON (keyed by env)

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"{self.episodes=} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"{self.max_steps=} must be >= 1 or null")
        if self.subgoals < 0 or self.subgoal_reach <= 0:
            raise ValueError(f"{self.subgoals=} must be >= 0 and {self.subgoal_reach=} > 0")


cs = ConfigStore.instance()
cs.store(name="mpc_schema", node=MPCConfig)
# ${pretrained:NAME} in a config: the shipped weights folder worldmodel/pretrained/NAME
OmegaConf.register_new_resolver("pretrained", lambda name: str(PRETRAINED_DIR / name),
                                replace=True)
for _name, (_config, _) in PLANNERS.items():
    cs.store(group="planner", name=f"{_name}_schema", node=_config)


def needs_contact_reader(objective: ObjectiveConfig, weights_dir: str) -> bool:
    """Whether planning needs the world model's contact reader: for the energy's terms that
    read contact points, or for a predictor that imagines the object state (read from each
    image)."""
    card = read_card(weights_dir, PREDICTOR)
    return objective.reads_contact or card["dims"]["proprio_dim"] > ROBOT_PROPRIO_DIM


def build_agent(cfg: MPCConfig, model=None, weights_dir: str | None = None) -> LatentMPCAgent:
    """The MPC agent `cfg` describes, on the given world model or the one in `weights_dir`
    (default `cfg.weights_dir`)."""
    if cfg.keep_freed_memory:
        keep_freed_memory()
    if model is None:
        weights_dir = weights_dir or cfg.weights_dir
        model = load_pretrained(weights_dir, predictor=True,
                                reader=cfg.objective.reads_goal_gripper or cfg.prior,
                                contact_reader=cfg.prior or needs_contact_reader(
                                    cfg.objective, weights_dir), prior=cfg.prior)
    model = model.to(cfg.device)
    frameskip = model.predictor.cfg.frameskip
    dims = ENV_ACTION_DIM if cfg.action_repeat else ENV_ACTION_DIM * frameskip
    planner = make_planner(cfg.planner, low=-torch.ones(dims), high=torch.ones(dims))
    return LatentMPCAgent(model, planner, cfg.objective, history=cfg.history,
                          execute=cfg.execute, subgoal_reach=cfg.subgoal_reach,
                          prior_weight=cfg.prior_weight, prior_margin=cfg.prior_margin,
                          prior_stall=cfg.prior_stall, stall_distance=cfg.stall_distance,
                          stall_plans=cfg.stall_plans)


def check_camera(model, cameras) -> None:
    """A world model only understands frames from the camera its predictor was trained on."""
    if model.camera is not None and tuple(cameras)[0] != model.camera:
        raise ValueError(f"this world model was trained on the {model.camera!r} camera, but the "
                         f"env renders {tuple(cameras)[0]!r}: add env.cameras=[{model.camera}]")


def make_env(cfg: MPCConfig, model, task: str | None = None):
    """The task's env (`cfg.env.name` by default) as `model` sees it: its image size and
    `cfg`'s camera, checked against the one its predictor was trained on."""
    check_camera(model, cfg.env.cameras)
    return envs.make(task or cfg.env.name, image_size=model.config.image_size,
                     cameras=tuple(cfg.env.cameras))


def run_episode(cfg: MPCConfig, agent: LatentMPCAgent, env, seed: int) -> dict:
    """One closed-loop episode; returns its metrics and, for the video, its frames."""
    budget = cfg.max_steps or envs.step_budget(cfg.env.name)
    if cfg.subgoals:
        obs, info = env.reset(seed=seed, options={"subgoals": cfg.subgoals})
        goals = [*info["subgoal_pixels"], info["goal_pixels"]]
        per_plan = cfg.execute * agent.frameskip  # control steps
        agent.reset(goals[-1], subgoals=goals[:-1],
                    subgoal_steps=max(1, budget // (per_plan * len(goals))))
    else:
        obs, info = env.reset(seed=seed)
        goals = [info["goal_pixels"]]
        agent.reset(goals[-1])
    goal, goal_gripper = goals[-1], info["goal_proprio"][:3]
    task = env.unwrapped.task

    def to_contact(obs, info) -> float:  # gripper to the task's contact point (evaluation)
        point = task.contact_point(np.asarray(info["object_pose"]))
        return float(np.linalg.norm(obs["proprio"][:3] - point))

    contact = [to_contact(obs, info)]
    heights = [float(info["object_pose"][2])]  # the object's centre, m
    generator = torch.Generator().manual_seed(seed + cfg.planner_seed)
    frames, plans, flags, distances, step = [], [], [info["success"]], [info["distance"]], 0
    heat = ()  # the imagined final frame's per-patch distance, for agents that imagine
    while step < budget:
        controls, plan = agent.act(obs, generator)
        if not plan.get("prior_step"):  # the prior's own steps between plans (prior_margin)
            plans.append(plan)
        goal = goals[plan.get("goal_index", -1)]  # the (sub-)goal planned to
        if "imagined_to_goal" in plan:
            heat = (heatmap(plan["imagined_to_goal"], obs["pixels"].shape[0]),)
        for action in controls:
            frames.append(side_by_side(obs["pixels"], goal, *heat))
            obs, _, terminated, truncated, info = env.step(action)
            step += 1
            flags.append(info["success"])
            distances.append(info["distance"])
            contact.append(to_contact(obs, info))
            heights.append(float(info["object_pose"][2]))
            if terminated or truncated or step >= budget:
                break
        if cfg.verbose and not plan.get("prior_step"):
            who = "  (the prior acts)" if plan.get("prior_acts") else ""
            if plan.get("stalled"):  # prior_stall: the world model planned
                who = ("  (after the prior's stall: the world model's plan "
                       + ("vetoed)" if plan.get("prior_acts") else "acts)"))
            print(f"  step {step:3d}/{budget}  energy {plan['energy']:.4f}  "
                  f"task distance {100 * info['distance']:5.1f} cm  "
                  f"plan {plan['plan_ms']:6.0f} ms"
                  + ("  (after a blocked step)" if plan.get("blocked") else "") + who, flush=True)
        if terminated:  # the simulation became unstable
            break
    frames.append(side_by_side(obs["pixels"], goal, *heat))
    offset = obs["proprio"][:3] - goal_gripper  # final gripper - the goal's, xyz (m)
    return {"seed": seed, "success": bool(flags[-1]), "any_success": bool(any(flags)),
            "final_distance": float(distances[-1]), "steps": step,
            "gripper_distance": float(np.linalg.norm(offset)),
            "gripper_offset": [float(x) for x in offset],
            "closest_contact": min(contact),  # m, closest the gripper came to the object
            # m, how far the object's centre rose above its start (lifted, or tipped on edge)
            "object_rise": max(heights) - heights[0],
            "blocked": sum(bool(p.get("blocked")) for p in plans),  # plans after a blocked step
            # plans whose proposal the policy prior executed (prior_margin)
            "prior_acts": sum(bool(p.get("prior_acts")) for p in plans),
            "plan_ms": [p["plan_ms"] for p in plans],
            "energy": [p.get("energy", float("nan")) for p in plans],
            "observed_to_goal": [p.get("observed_to_goal", float("nan")) for p in plans],
            "task_distance": [float(d) for d in distances],
            "iterations": [p.get("best_per_iteration", []) for p in plans], "frames": frames,
            **({"goal_index": [p["goal_index"] for p in plans]} if cfg.subgoals else {})}


@torch.no_grad()
def run(cfg: MPCConfig, out_dir: Path) -> dict:
    agent = build_agent(cfg)
    env = make_env(cfg, agent.model)
    fps = env.metadata["render_fps"]
    print(f"planning {cfg.env.name} with {cfg.planner.name}: {cfg.planner.num_samples} samples "
          f"x {cfg.planner.iterations} iterations, horizon {cfg.planner.horizon} model steps "
          f"of {agent.frameskip} control steps; {describe_energy(dataclasses.asdict(cfg))}, "
          f"{cfg.env.cameras[0]} camera")
    episodes = []
    for seed in range(cfg.seed, cfg.seed + cfg.episodes):
        print(f"episode seed {seed}")
        episode = run_episode(cfg, agent, env, seed)
        frames = episode.pop("frames")
        if cfg.video:
            path = write_video(out_dir / f"mpc_{cfg.env.name}_seed{seed}.mp4", frames,
                               fps=fps, scale=cfg.video_scale)
            plot_energies(episode, out_dir / f"energy_{cfg.env.name}_seed{seed}.png")
            print(f"  video {path}")
        print(f"  success {episode['success']}  final distance "
              f"{100 * episode['final_distance']:.1f} cm  gripper "
              f"{100 * episode['gripper_distance']:.1f} cm from the goal's  median plan "
              f"{np.median(episode['plan_ms']):.0f} ms/step")
        episodes.append(episode)
    env.close()
    summary = {"env": cfg.env.name, "planner": cfg.planner.name, "episodes": len(episodes),
               "success_rate": float(np.mean([e["success"] for e in episodes])),
               "any_success_rate": float(np.mean([e["any_success"] for e in episodes])),
               "mean_final_distance": float(np.mean([e["final_distance"] for e in episodes])),
               "median_plan_ms": float(np.median([ms for e in episodes
                                                  for ms in e["plan_ms"]]))}
    print(f"{cfg.env.name}: success {100 * summary['success_rate']:.0f} % "
          f"({sum(e['success'] for e in episodes)}/{len(episodes)}), final distance "
          f"{100 * summary['mean_final_distance']:.1f} cm, median planning time "
          f"{summary['median_plan_ms']:.0f} ms per step")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mpc.json").write_text(json.dumps({"summary": summary, "episodes": episodes},
                                                 indent=1))
    if cfg.report:
        add_to_report(Path(cfg.report), cfg, summary, episodes)
    return summary


def add_to_report(path: Path, cfg: MPCConfig, summary: dict, episodes: list[dict]) -> None:
    """Merge one task's results into a JSON report of several (`python -m worldmodel.report`
    renders it into the README)."""
    report = json.loads(path.read_text()) if path.exists() else {"tasks": {}}
    card = read_card(cfg.weights_dir, PREDICTOR)
    report["tasks"][cfg.env.name] = summary | {
        "seeds": [e["seed"] for e in episodes],
        "successes": [e["success"] for e in episodes],
        "final_distances": [e["final_distance"] for e in episodes],
        "config": {"planner": OmegaConf.to_container(OmegaConf.structured(cfg.planner)),
                   "objective": OmegaConf.to_container(OmegaConf.structured(cfg.objective)),
                   "history": cfg.history, "execute": cfg.execute,
                   "env": OmegaConf.to_container(OmegaConf.structured(cfg.env)),
                   "action_repeat": cfg.action_repeat},
        "predictor_steps": card.get("steps"), "threads": torch.get_num_threads()}
    save_json(path, report)


@hydra.main(config_path="../configs", config_name="mpc", version_base="1.3")
def main(cfg) -> None:
    run(OmegaConf.to_object(cfg), Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
