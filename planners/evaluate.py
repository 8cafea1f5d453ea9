"""The zero-shot evaluation suite: `python -m planners.evaluate`.

    python -m planners.evaluate                                  # 4 tasks x seeds 0-49, all methods
    python -m planners.evaluate seed=1000                        # seeds 1000-1049
    python -m planners.evaluate tasks=[push] methods=[world_model,oracle] episodes=10

The protocol (DESIGN.md): one world model for all four tasks, the goal given only as an
image, each task's fixed step budget, success = the env's flag at the final step (any-step
success reported too). Methods, all run in the same invocation by default:

- `world_model`: the shipped encoder + action-conditioned predictor with the planner;
- `scratch`: the same pipeline on a random-init frozen encoder with its own predictor,
  trained the same way (`worldmodel/pretrained/scratch/`, the seed's "Baseline (Scratch)");
- `oracle`: the same planner and budget with the true simulator as its model and the
  distance to the goal state (task variable + gripper) as its energy: the planner's
  ceiling, so a gap to it is the world model's fault (`oracle_contact_weight=w` adds
  w x |gripper - task contact point| to its energy, a diagnostic contact-first energy);
- `random`: uniform random actions;
- `prior` (not run by default): the policy prior alone (`worldmodel.prior`, in `weights_dir`),
  one control action per read image, no planning: what the planner adds to its proposals;
- `sim_latent` (a diagnostic, not run by default): the oracle's true simulator as the model
  but the world model's goal-image energy on rendered frames. Against `world_model` it
  measures what the predictor loses; against `oracle`, what the encoder's energy loses.

Episodes run in parallel worker processes (one torch thread each by default), are appended
to `out_dir/episodes.jsonl` as they finish and are never rerun: an interrupted suite
continues where it stopped (episodes of another config are ignored); `report_only=true`
reports what is on record without running more. The report merges this
seed range into `reports/zero_shot.json` and rewrites `reports/zero_shot.md` and
`reports/zero_shot.html` (table, plots, videos of a few successes and failures).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from einops import repeat
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

import envs
from envs.video import write_video
from planners.agent import ENV_ACTION_DIM, check_prior, prepare_image, read_image
from planners.mpc import MPCConfig, build_agent, check_camera, needs_contact_reader, run_episode
from planners.sampling import SamplingPlanner, make_planner
from worldmodel.features import token_distance
from worldmodel.pretrain import git_revision
from worldmodel.report import save_json, wilson_interval, zero_shot_table
from worldmodel.weights import (
    CONTACT_READER,
    PREDICTOR,
    PRETRAINED_DIR,
    PRIOR,
    READER,
    PretrainedWorldModel,
    load_pretrained,
)

METHODS = ("world_model", "scratch", "oracle", "random", "sim_latent", "prior")
DEFAULT_METHODS = METHODS[:4]  # sim_latent is a diagnostic, run on request
MODEL_METHODS = ("world_model", "scratch")  # planned through a learned world model


@dataclass
class EvaluateConfig(MPCConfig):
    """The planning fields (planner, objective, history, execute, action_repeat, max_steps)
    are `planners.mpc`'s and apply to every planning method; `env` sets the image size and
    cameras, `tasks` which tasks run. `seed`/`episodes`: env seeds seed .. seed+episodes-1."""

    tasks: list[str] = field(default_factory=lambda: list(envs.TASK_NAMES))
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    episodes: int = 50
    scratch_dir: str = str(PRETRAINED_DIR / "scratch")  # the scratch baseline's weights
    workers: int = 2  # parallel episode processes; 1 runs in this process
    threads: int | None = None  # torch threads per worker; None: cores // workers
    out_dir: str = "runs/zero_shot"  # episodes.jsonl (the resume state) and every video
    report: str | None = "reports/zero_shot"  # .json, .md and .html; null: no report
    videos_per_task: int = 2  # HTML videos per task and planning method: successes, failures
    verbose: bool = False  # a line per planning step (only with workers=1)
    video_scale: int = 2
    report_only: bool = False  # write the report from the episodes on record, run none
    # oracle only, a diagnostic: add this x |gripper - task contact point| (m) to its energy,
    # a contact-first energy (does the planner solve the tasks when contact is rewarded?)
    oracle_contact_weight: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        envs.check_tasks(self.tasks)
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods={list(self.methods)}: choose distinct methods from "
                             f"{', '.join(METHODS)}")
        if self.subgoals and not set(self.methods) <= set(MODEL_METHODS):
            raise ValueError(f"subgoals={self.subgoals} is a world-model variant: run it with "
                             f"methods among {', '.join(MODEL_METHODS)}")
        if "sim_latent" in self.methods and self.objective.proprio_weight > 0:
            raise ValueError("sim_latent diagnoses the goal-image latent energy alone: run it "
                             "with objective.proprio_weight=0")
        if self.oracle_contact_weight < 0:
            raise ValueError(f"{self.oracle_contact_weight=} must be >= 0")
        if self.workers < 1 or (self.threads is not None and self.threads < 1):
            raise ValueError(f"{self.workers=} and {self.threads=} must be >= 1")

    def threads_per_worker(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def weights(self, method: str) -> str:
        return self.scratch_dir if method == "scratch" else self.weights_dir

    def for_task(self, task: str) -> EvaluateConfig:
        return dataclasses.replace(self, env=dataclasses.replace(self.env, name=task))


cs = ConfigStore.instance()
cs.store(name="evaluate_schema", node=EvaluateConfig)


# -- the baselines' agents (the same reset/act interface as planners.agent.LatentMPCAgent) --
class RandomAgent:
    """Uniform random control actions, `steps` per call."""

    def __init__(self, steps: int):
        self.steps = steps

    def reset(self, goal_image: np.ndarray) -> None:
        pass

    def act(self, obs: dict, generator: torch.Generator) -> tuple[np.ndarray, dict]:
        controls = torch.rand(self.steps, ENV_ACTION_DIM, generator=generator) * 2 - 1
        return controls.numpy(), {"plan_ms": 0.0, "energy": float("nan")}


class PriorAgent:
    """The policy prior alone: each control step, the state read from the image, the first
    of the actions it proposes towards the goal read from the goal image."""

    def __init__(self, model: PretrainedWorldModel):
        check_prior(model, 1)
        self.model = model

    def reset(self, goal_image: np.ndarray) -> None:
        self.goal = torch.cat([read_image(self.model.reader, goal_image),
                               read_image(self.model.contact_reader, goal_image)])

    def act(self, obs: dict, generator: torch.Generator) -> tuple[np.ndarray, dict]:
        start = time.perf_counter()
        state = torch.cat([torch.as_tensor(obs["proprio"], dtype=torch.float32),
                           read_image(self.model.contact_reader, obs["pixels"])])
        controls = self.model.prior.propose(state, self.goal)[:1].numpy()
        return controls, {"plan_ms": 1e3 * (time.perf_counter() - start),
                          "energy": float("nan")}


@dataclass
class LatentEnergy:
    """The goal-image energy of `sim_latent`: the encoder, the goal's tokens, the distance."""

    model: PretrainedWorldModel
    goal: torch.Tensor | None
    distance: str
    scales: tuple[int, ...] = (1,)


class SimulatorObjective:
    """Energies of action sequences rolled out in the true simulation from `start`: the
    distance (m) of the state [task goal variable, gripper proprio] after the last model
    step (or the mean over model steps) to the goal state, plus `contact_weight` x the
    gripper's distance to the task's contact point (`Task.contact_point`; a contact-first
    energy; 0: none)."""

    def __init__(self, env, start, goal: np.ndarray, *, action_repeat: int, frameskip: int,
                 weighting: str, latent: LatentEnergy | None = None,
                 contact_weight: float = 0.0):
        self.env, self.start, self.goal, self.latent = env, start, goal, latent
        self.action_repeat, self.frameskip, self.weighting = action_repeat, frameskip, weighting
        self.contact_weight = contact_weight

    def controls(self, actions: torch.Tensor) -> np.ndarray:
        """(N, H, A) planned actions -> (N, H, frameskip, 4) control actions."""
        actions = repeat(actions, "n h a -> n h (r a)", r=self.action_repeat)
        return actions.reshape(*actions.shape[:2], self.frameskip, ENV_ACTION_DIM).numpy()

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        if self.latent is not None:
            return self.latent_energies(actions)
        energies, contact = [], self.contact_weight > 0
        for sequence in self.controls(actions):
            states = self.env.simulate(self.start, sequence.reshape(-1, ENV_ACTION_DIM),
                                       every=self.frameskip, object_position=contact)
            distances = np.linalg.norm(states[:, :len(self.goal)] - self.goal, axis=-1)
            if contact:  # proprio (gripper xyz, gap) ends the state, the object's xyz after it
                gripper = states[:, len(self.goal) - 4:len(self.goal) - 1]
                distances += self.contact_weight * np.linalg.norm(gripper - states[:, -3:],
                                                                  axis=-1)
            energies.append(distances[-1] if self.weighting == "last" else distances.mean())
        return torch.tensor(energies, dtype=torch.float32)

    def latent_energies(self, actions: torch.Tensor) -> torch.Tensor:
        """The world model's energy on the simulator's rendered frames."""
        frames = np.stack([self.env.simulate(self.start, sequence.reshape(-1, ENV_ACTION_DIM),
                                             every=self.frameskip, pixels=True)[1]
                           for sequence in self.controls(actions)])  # (N, H, h, w, 3)
        if self.weighting == "last":
            frames = frames[:, -1:]
        tokens = self.latent.model.encode(torch.from_numpy(frames))  # (N, H', P, D)
        return token_distance(tokens, self.latent.goal, self.latent.distance,
                              self.latent.scales).mean(dim=1)


class OracleAgent:
    """The same planner with the true simulator as its model and the state distance to the
    goal as its energy. It reads the simulation and the goal state (never the goal image)."""

    def __init__(self, env, planner: SamplingPlanner, cfg: EvaluateConfig, frameskip: int,
                 latent: LatentEnergy | None = None):
        self.env, self.planner, self.cfg, self.frameskip = env.unwrapped, planner, cfg, frameskip
        self.action_repeat = frameskip if planner.action_dim == ENV_ACTION_DIM else 1
        self.latent = latent

    def reset(self, goal_image: np.ndarray) -> None:
        self.goal = np.concatenate([self.env.goal, self.env.goal_proprio])
        if self.latent is not None:  # sim_latent: the goal is the image, as for the world model
            self.latent.goal = self.latent.model.encode(
                prepare_image(goal_image, self.latent.model.config.image_size)[None, None])[0, 0]
        self.planner.reset()

    def act(self, obs: dict, generator: torch.Generator) -> tuple[np.ndarray, dict]:
        start_time = time.perf_counter()
        objective = SimulatorObjective(self.env, self.env.copy_state(), self.goal,
                                       action_repeat=self.action_repeat,
                                       frameskip=self.frameskip,
                                       weighting=self.cfg.objective.weighting,
                                       latent=self.latent,
                                       contact_weight=self.cfg.oracle_contact_weight)
        result = self.planner.plan(objective, generator)
        self.planner.shift(self.cfg.execute)
        controls = objective.controls(result.actions[None])[0, :self.cfg.execute]
        return controls.reshape(-1, ENV_ACTION_DIM), {
            "plan_ms": 1e3 * (time.perf_counter() - start_time), "energy": result.energy}


# -- one episode, in a worker ----------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(cfg: EvaluateConfig, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER["cfg"] = cfg


def _agent(method: str, task: str, env):
    """The agent of `method` (world models are shared by every task: one world model)."""
    cfg = _WORKER["cfg"]
    key = (method, task if method in ("oracle", "sim_latent") else None)
    if key not in _WORKER:
        if method in MODEL_METHODS:
            agent = build_agent(cfg, weights_dir=cfg.weights(method))
            check_camera(agent.model, cfg.env.cameras)
        else:
            frameskip = _frameskip(cfg)
            if method == "random":
                agent = RandomAgent(frameskip)
            elif method == "prior":
                agent = PriorAgent(load_pretrained(cfg.weights_dir, reader=True,
                                                   contact_reader=True, prior=True))
            else:
                dims = ENV_ACTION_DIM * (1 if cfg.action_repeat else frameskip)
                planner = make_planner(cfg.planner, low=-torch.ones(dims), high=torch.ones(dims))
                latent = None if method == "oracle" else LatentEnergy(
                    load_pretrained(cfg.weights_dir), None, cfg.objective.distance,
                    tuple(cfg.objective.scales))
                agent = OracleAgent(env, planner, cfg, frameskip, latent)
        _WORKER[key] = agent
    return _WORKER[key]


def _frameskip(cfg: EvaluateConfig) -> int:
    """The control steps per model step: the shipped predictor's (the oracle plans on the same
    time grid and the random agent draws that many actions per call)."""
    if "frameskip" not in _WORKER:
        card = json.loads((Path(cfg.weights_dir) / f"{PREDICTOR}.json").read_text())
        _WORKER["frameskip"] = card["config"]["frameskip"]
    return _WORKER["frameskip"]


def run_job(job: tuple[str, str, int]) -> dict:
    """One episode (method, task, seed) -> its record; writes its video if asked."""
    method, task, seed = job
    cfg = _WORKER["cfg"].for_task(task)
    env_key = ("env", task)
    if env_key not in _WORKER:
        _WORKER[env_key] = envs.make(task, image_size=cfg.env.image_size,
                                     cameras=tuple(cfg.env.cameras))
    env = _WORKER[env_key]
    start = time.perf_counter()
    with torch.no_grad():
        episode = run_episode(cfg, _agent(method, task, env), env, seed)
    frames = episode.pop("frames")
    if cfg.video:
        write_video(video_path(cfg, method, task, seed), frames,
                    fps=env.metadata["render_fps"], scale=cfg.video_scale)
    plan_ms = episode["plan_ms"]
    return {"method": method, "task": task, "seed": seed, "success": episode["success"],
            "any_success": episode["any_success"],
            "final_distance": episode["final_distance"], "steps": episode["steps"],
            "gripper_distance": round(episode["gripper_distance"], 5),
            "gripper_offset": [round(x, 5) for x in episode["gripper_offset"]],
            "closest_contact": round(episode["closest_contact"], 5),
            "object_rise": round(episode["object_rise"], 5),
            "blocked": episode["blocked"], "prior_acts": episode["prior_acts"],
            "plan_ms": [round(ms, 2) for ms in plan_ms],
            "task_distance": [round(d, 5) for d in episode["task_distance"]],
            "wall_s": round(time.perf_counter() - start, 2)}


def video_path(cfg: EvaluateConfig, method: str, task: str, seed: int) -> Path:
    return Path(cfg.out_dir) / "videos" / method / f"{task}_seed{seed}.mp4"


# -- the suite ---------------------------------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:10] if path.exists() else "missing"


def _prior_digests(directory: Path) -> list[str]:
    """The weights the policy prior acts with: itself and the two readers of its inputs."""
    return [_digest(directory / f"{name}.safetensors") for name in (PRIOR, READER,
                                                                     CONTACT_READER)]


def fingerprints(cfg: EvaluateConfig) -> dict[str, str]:
    """Per method, a hash of everything its episodes depend on: an episode recorded under
    another fingerprint is not reused."""
    planning = {"planner": OmegaConf.to_container(OmegaConf.structured(cfg.planner)),
                "execute": cfg.execute, "action_repeat": cfg.action_repeat,
                "max_steps": cfg.max_steps, "image": [cfg.env.image_size, list(cfg.env.cameras)]}
    result = {}
    for method in cfg.methods:
        parts = {"method": method, "max_steps": cfg.max_steps}
        if method not in ("random", "prior"):
            parts |= planning | {"weighting": cfg.objective.weighting}
        if method in MODEL_METHODS:
            weights = Path(cfg.weights(method))
            objective = dataclasses.asdict(cfg.objective)
            # fields at their defaults are left out, so records from before they existed match
            for key, default in (("scales", [1]), ("latent_weight", 1.0),
                                 ("proprio_weight", 0.0), ("contact_weight", 0.0),
                                 ("object_weight", 0.0), ("open_radius", 0.0),
                                 ("keep_held", False), ("carry", False),
                                 ("push_offset", 0.0), ("touch_radius", 0.0),
                                 ("touch_path", False), ("push_clear", 0.0),
                                 ("clear_weight", 0.0), ("hold_release", 0.0),
                                 ("hold_scale", 1.0), ("push_scale", 1.0),
                                 ("push_near", 0.06), ("unstick_lift", 0.0),
                                 ("home_lift", 0.0),
                                 ("unstick_horizontal", False)):
                if list(np.atleast_1d(objective[key])) == list(np.atleast_1d(default)):
                    del objective[key]
            # (the reader read for hold_proprio_weight is left out: records from before)
            reader = max(cfg.objective.proprio_weight, cfg.objective.open_radius) > 0
            names = ("encoder", PREDICTOR, *[READER] * reader,
                     *[CONTACT_READER] * needs_contact_reader(cfg.objective, weights))
            parts |= {"objective": objective, "history": cfg.history,
                      "weights": [_digest(weights / f"{name}.safetensors") for name in names]}
            if cfg.subgoals:
                parts |= {"subgoals": cfg.subgoals, "subgoal_reach": cfg.subgoal_reach}
            if cfg.prior:  # left out without, so records from before it existed match
                parts["prior"] = _prior_digests(weights)
                if cfg.prior_weight:
                    parts["prior_weight"] = cfg.prior_weight
                if cfg.prior_margin is not None:
                    parts["prior_margin"] = cfg.prior_margin
                if cfg.prior_stall is not None:
                    parts["prior_stall"] = [cfg.prior_stall, cfg.stall_distance]
                    if cfg.stall_plans > 1:  # left out at 1, so earlier records match
                        parts["stall_plans"] = cfg.stall_plans
        if method == "prior":
            parts["weights"] = _prior_digests(Path(cfg.weights_dir))
        if cfg.planner_seed:  # left out at 0, so records from before it existed match
            parts["planner_seed"] = cfg.planner_seed
        if method in ("random", "oracle", "sim_latent"):
            parts["frameskip"] = _frameskip(cfg)
        if method == "oracle" and cfg.oracle_contact_weight:
            parts["contact_weight"] = cfg.oracle_contact_weight
        if method == "sim_latent":
            parts |= {"distance": cfg.objective.distance, "scales": list(cfg.objective.scales),
                      "encoder": _digest(Path(cfg.weights_dir) / "encoder.safetensors")}
        text = json.dumps(parts, sort_keys=True)
        result[method] = hashlib.sha1(text.encode()).hexdigest()[:12]
    return result


def load_episodes(path: Path) -> list[dict]:
    """The records in an episodes.jsonl (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def check_weights(cfg: EvaluateConfig) -> None:
    for method in cfg.methods:
        if method == "prior" or (cfg.prior and method in MODEL_METHODS):
            path = Path(cfg.weights(method)) / f"{PRIOR}.safetensors"
            if not path.exists():
                raise FileNotFoundError(
                    f"method {method!r} needs the policy prior {path}: train it with `python -m "
                    "worldmodel.train_prior export_dir=...` (see the README)")
        if method in MODEL_METHODS:
            directory = Path(cfg.weights(method))
            for name, trainer in (("encoder", "worldmodel.pretrain"),
                                  (PREDICTOR, "worldmodel.train_ac")):
                if not (directory / f"{name}.safetensors").exists():
                    raise FileNotFoundError(
                        f"method {method!r} needs {directory / (name + '.safetensors')}: train "
                        f"it with `python -m {trainer} ...` (see the README) or leave "
                        f"{method} out of methods=")
            if (needs_contact_reader(cfg.objective, str(directory))
                    and not (directory / f"{CONTACT_READER}.safetensors").exists()):
                hint = (" (the object variant's scratch baseline is "
                        f"scratch_dir={PRETRAINED_DIR / 'scratch' / 'object'})"
                        if method == "scratch" else "")
                raise FileNotFoundError(
                    f"method {method!r}: this objective reads contact points, and "
                    f"{directory} has no {CONTACT_READER}.safetensors{hint}")


def evaluate(cfg: EvaluateConfig) -> dict:
    """Run every episode of the suite not yet on record, then write the report."""
    check_weights(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "episodes.jsonl"
    keys = fingerprints(cfg)
    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))
    wanted = {(m, t, s) for t in cfg.tasks for m in cfg.methods for s in seeds}
    if store.exists() and not store.read_bytes().endswith(b"\n") and store.stat().st_size:
        with store.open("a") as f:  # a line cut short by a kill stays alone on its line
            f.write("\n")
    done = {}
    for r in load_episodes(store):
        job = (r["method"], r["task"], r["seed"])
        if job in wanted and r.get("fingerprint") == keys[r["method"]]:
            done[job] = r
    jobs = [(m, t, s) for s in seeds for t in cfg.tasks for m in cfg.methods
            if (m, t, s) not in done]
    threads = cfg.threads_per_worker()
    print(f"zero-shot suite: {len(cfg.tasks)} tasks x {len(seeds)} seeds ({seeds[0]}-"
          f"{seeds[-1]}) x methods {', '.join(cfg.methods)}; {len(done)} episodes on record "
          f"in {store}, {len(jobs)} to run on {cfg.workers} worker(s) x {threads} thread(s)")
    start = time.perf_counter()
    if jobs and not cfg.report_only:
        _run_jobs(cfg, jobs, threads, store, keys, done)
    elapsed = time.perf_counter() - start
    wall = _add_wall_time(out, f"{seeds[0]}-{seeds[-1]}", elapsed)
    report = summarize(cfg, [done[j] for j in sorted(done)], wall)
    print(zero_shot_table({"ranges": {report["range"]: report}}, source=str(store)))
    if cfg.report:
        write_report(cfg, report)
    return report


def _run_jobs(cfg, jobs, threads, store, keys, done) -> None:
    bar = tqdm(total=len(jobs), unit="episode", desc="zero-shot", smoothing=0.05)
    tally = {m: [0, 0] for m in cfg.methods}
    for r in done.values():
        tally[r["method"]][0] += r["success"]
        tally[r["method"]][1] += 1

    def record(result: dict) -> None:
        result["fingerprint"] = keys[result["method"]]
        with store.open("a") as f:
            f.write(json.dumps(result) + "\n")
        done[(result["method"], result["task"], result["seed"])] = result
        tally[result["method"]][0] += result["success"]
        tally[result["method"]][1] += 1
        bar.set_postfix_str(" ".join(f"{m} {s}/{n}" for m, (s, n) in tally.items()))
        bar.update(1)

    if cfg.workers == 1:
        _init_worker(cfg, threads)
        for job in jobs:
            record(run_job(job))
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(cfg.workers, initializer=_init_worker,
                          initargs=(cfg, threads)) as pool:
            for result in pool.imap_unordered(run_job, jobs):
                record(result)
    bar.close()


def _add_wall_time(out: Path, key: str, seconds: float) -> float:
    """Wall time of a seed range summed over the invocations that ran it."""
    path = out / "wall_time.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[key] = times.get(key, 0.0) + seconds
    path.write_text(json.dumps(times, indent=1))
    return times[key]


def summarize(cfg: EvaluateConfig, records: list[dict], wall_time: float) -> dict:
    """Per task and method: success with its Wilson interval, any-step success, final task
    and gripper distances, planning time per step; plus the episodes."""
    results: dict = {}
    for task in cfg.tasks:
        for method in cfg.methods:
            rs = [r for r in records if r["task"] == task and r["method"] == method]
            if not rs:
                continue
            wins = sum(r["success"] for r in rs)
            ms = [m for r in rs for m in r["plan_ms"]]
            # the gripper's final distance to where the goal image shows it (not in records
            # from before it was logged)
            gripper = [r["gripper_distance"] for r in rs if "gripper_distance" in r]
            contact = [r["closest_contact"] for r in rs if "closest_contact" in r]
            results.setdefault(task, {})[method] = {
                "episodes": len(rs), "successes": wins, "success_rate": wins / len(rs),
                "wilson_95": list(wilson_interval(wins, len(rs))),
                "any_success_rate": float(np.mean([r["any_success"] for r in rs])),
                "mean_final_distance": float(np.mean([r["final_distance"] for r in rs])),
                "mean_gripper_distance": float(np.mean(gripper)) if gripper else None,
                # the closest the gripper came to the task's contact point, episode mean
                "mean_closest_contact": float(np.mean(contact)) if contact else None,
                "median_plan_ms": float(np.median(ms)) if ms else 0.0,
                "p90_plan_ms": float(np.percentile(ms, 90)) if ms else 0.0}
            if cfg.prior_margin is not None and method in MODEL_METHODS and ms:
                # of the plans, those on which the policy prior acted (the world model's
                # veto not used)
                results[task][method]["prior_acts_fraction"] = sum(
                    r.get("prior_acts", 0) for r in rs) / len(ms)
    seeds = [cfg.seed, cfg.seed + cfg.episodes - 1]
    return {"range": f"{seeds[0]}-{seeds[1]}", "seeds": seeds, "results": results,
            "wall_time_s": round(wall_time, 1), "workers": cfg.workers,
            "threads_per_worker": cfg.threads_per_worker(),
            "git_revision": git_revision(),
            "config": OmegaConf.to_container(OmegaConf.structured(cfg)),
            "episodes": [{k: v for k, v in r.items() if k not in ("plan_ms", "task_distance")}
                         for r in records]}


# -- the report --------------------------------------------------------------------------------
def write_report(cfg: EvaluateConfig, report: dict) -> None:
    """Merge this seed range into `<report>.json`; rewrite `.md` and `.html` from it."""
    base = Path(cfg.report)
    base.parent.mkdir(parents=True, exist_ok=True)
    path = base.with_suffix(".json")
    full = json.loads(path.read_text()) if path.exists() else {}
    full["protocol"] = ("zero-shot: one world model for all tasks, goal given as an image, "
                        "the task's step budget, success = the env's flag at the final step")
    full.setdefault("ranges", {})[report["range"]] = report
    save_json(path, full)
    base.with_suffix(".md").write_text(
        "# Zero-shot evaluation (`python -m planners.evaluate`)\n\n"
        + zero_shot_table(full, detail=True, source=str(path)) + "\n")
    base.with_suffix(".html").write_text(html_page(cfg, full))
    print(f"report: {path}, {base.with_suffix('.md')}, {base.with_suffix('.html')}")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(report: dict) -> list[str]:
    """Base64 PNGs: success (Wilson bars) and final task distance per task and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    tasks = list(results)
    methods = list(dict.fromkeys(m for t in tasks for m in results[t]))
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, method in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(tasks))]
        rows = [results[t].get(method) for t in tasks]
        rate = [100 * r["success_rate"] if r else np.nan for r in rows]
        low = [max(0, 100 * (r["success_rate"] - r["wilson_95"][0])) if r else 0 for r in rows]
        high = [max(0, 100 * (r["wilson_95"][1] - r["success_rate"])) if r else 0 for r in rows]
        axes[0].bar(xs, rate, width, yerr=[low, high], capsize=3, label=method)
        axes[1].bar(xs, [100 * r["mean_final_distance"] if r else np.nan for r in rows],
                    width, label=method)
    for ax, label in zip(axes, ("success (%), Wilson 95 %", "mean final task distance (cm)")):
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_ylabel(label)
    axes[0].set_ylim(0, 100)
    axes[1].legend(fontsize=8)
    return [_png(fig)]


def _videos(cfg: EvaluateConfig, report: dict) -> list[tuple[str, str]]:
    """(caption, base64 mp4) of the first successes and failures per task and method."""
    chosen = []
    for method in (m for m in cfg.methods if m != "random"):
        for task in report["results"]:
            rs = [r for r in report["episodes"] if r["method"] == method and r["task"] == task]
            picks = ([r for r in rs if r["success"]][:max(1, cfg.videos_per_task // 2)]
                     + [r for r in rs if not r["success"]])[:cfg.videos_per_task]
            for r in picks:
                path = video_path(cfg, method, task, r["seed"])
                if path.exists():
                    caption = (f"{method} / {task} / seed {r['seed']}: "
                               f"{'success' if r['success'] else 'failure'}, final distance "
                               f"{100 * r['final_distance']:.1f} cm")
                    chosen.append((caption, base64.b64encode(path.read_bytes()).decode()))
    return chosen


def html_page(cfg: EvaluateConfig, full: dict) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Zero-shot evaluation"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
             "figure{display:inline-block;margin:6px;font-size:12px;width:260px}</style></head>"
             "<body><h1>Zero-shot evaluation</h1>", f"<p>{full['protocol']}.</p>"]
    for name, report in full["ranges"].items():
        parts.append(f"<h2>Seeds {name}</h2>")
        parts.append(_markdown_to_html(zero_shot_table({"ranges": {name: report}},
                                                       detail=True)))
        parts += [f"<p><img src='data:image/png;base64,{png}'></p>" for png in plots(report)]
        if name == f"{cfg.seed}-{cfg.seed + cfg.episodes - 1}":
            parts.append("<h3>Episodes: camera | goal image | imagined distance to the goal"
                         "</h3>")
            for caption, data in _videos(cfg, report):
                parts.append(f"<figure><video controls loop muted width='250' "
                             f"src='data:video/mp4;base64,{data}'></video>"
                             f"<figcaption>{caption}</figcaption></figure>")
    return "\n".join(parts) + "</body></html>\n"


def _markdown_to_html(text: str) -> str:
    """The tables and paragraphs of zero_shot_table's markdown as HTML."""
    html, rows = [], []

    def flush():
        if rows:
            head, *body = rows
            html.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                                  for r in body) + "</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                rows.append(cells)
        else:
            flush()
            if line.strip():
                html.append(f"<p>{line.replace('`', '')}</p>")
    flush()
    return "\n".join(html)


@hydra.main(config_path="../configs", config_name="evaluate", version_base="1.3")
def main(cfg) -> None:
    evaluate(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
