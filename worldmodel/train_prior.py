"""Train the policy prior (`worldmodel.prior`) on play data:
`python -m worldmodel.train_prior data_dir=data/prior_play export_dir=runs/prior`.

Every frame of the training episodes collected by `policies` (default: the noisy expert's;
the random-motion episodes teach nothing a goal explains, measured: README "A policy prior
from play data"), labelled with the `chunk` actions that followed it (past the episode's end:
masked) and, as its goal, the state the episode ended in (hindsight relabelling). Inputs are
the recorded proprio and contact point, with Gaussian noise of the contact reader's size on
the contact points, since the planner feeds it read ones. Squared-error loss: the noisy
expert's mean action. Resumable like the other trainers; at the end it reports the held-out
action error (mean squared, per task) against proposing no motion.

Collect its data away from the evaluation seeds: episode k of a collection runs env seed
`seed + k`, and the suite evaluates seeds 0-49 and 1000-1049, which a collection with
`seed=0` replays, goal included (`python -m envs.collect seed=100000 ...`). Training refuses
episodes whose env seed falls in `exclude_seeds`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from tqdm import tqdm

from envs.dataset import EpisodeDataset
from worldmodel.checkpoint import load_checkpoint, resume, save_training
from worldmodel.pretrain import git_revision, learning_rate
from worldmodel.prior import ACTION_DIM, PolicyPrior, PriorConfig
from worldmodel.report import save_json
from worldmodel.weights import PRIOR, save_weights


@dataclass
class TrainPriorConfig:
    model: PriorConfig = field(default_factory=PriorConfig)  # the prior (model.*)
    data_dir: str = "data/prior_play"  # a collection from `python -m envs.collect`
    policies: list[str] = field(default_factory=lambda: ["expert"])  # episodes trained on
    # env seeds whose episodes are left out: the evaluation suite's ranges ([first, last])
    exclude_seeds: list[list[int]] = field(default_factory=lambda: [[0, 49], [1000, 1049]])
    contact_noise: float = 0.004  # m, std of the noise on the state's contact point
    goal_noise: float = 0.004  # m, std of the noise on the goal's gripper and contact point
    out_dir: str = "runs/train_prior"  # checkpoints
    export_dir: str | None = None  # if set, write the prior + model card there
    report: str | None = None  # if set, write the held-out error report (JSON) there
    steps: int = 20000  # optimizer steps
    batch_size: int = 512
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-5
    warmup_steps: int = 500
    weight_decay: float = 1e-4
    val_fraction: float = 0.05  # held-out episodes
    split_seed: int = 0
    checkpoint_every: int = 2000
    log_every: int = 500
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"{self.steps=} and {self.batch_size=} must be >= 1")
        if not self.policies:
            raise ValueError("policies must name at least one play policy (expert, random, "
                             "reach)")
        if self.contact_noise < 0 or self.goal_noise < 0:
            raise ValueError(f"{self.contact_noise=} and {self.goal_noise=} must be >= 0")


ConfigStore.instance().store(name="train_prior_schema", node=TrainPriorConfig)


def load_examples(data: EpisodeDataset, chunk: int) -> dict[str, np.ndarray]:
    """Every frame of the episodes of `data` but the last: its state (N, 7), its episode's
    final state as the goal (N, 7), the next `chunk` actions (N, chunk, 4) with a mask of
    those inside the episode (N, chunk), and its task (N,)."""
    out: dict[str, list] = {"state": [], "goal": [], "actions": [], "mask": [], "task": []}
    for ref in tqdm(data.refs, desc="loading episodes", unit="episode", leave=False):
        arrays = data.arrays(ref.shard)
        rows = slice(ref.start, ref.start + ref.frames)
        state = np.concatenate([np.asarray(arrays["proprio"][rows], np.float32),
                                data.contact_points(ref, rows)], -1)
        taken = np.asarray(arrays["actions"][rows], np.float32)[:-1]  # (T - 1, 4)
        steps = len(taken)
        padded = np.concatenate([taken, np.zeros((chunk, ACTION_DIM), np.float32)])
        index = np.arange(steps)[:, None] + np.arange(chunk)  # (T - 1, chunk)
        out["state"].append(state[:-1])
        out["goal"].append(np.repeat(state[-1:], steps, 0))
        out["actions"].append(padded[index])
        out["mask"].append((index < steps).astype(np.float32))
        out["task"].append(np.full(steps, ref.meta["task"]))
    return {k: np.concatenate(v) for k, v in out.items()}


def select(data: EpisodeDataset, cfg: TrainPriorConfig) -> tuple[EpisodeDataset, int]:
    """The episodes of `data` by `policies`, without those of `exclude_seeds`; and how many
    were excluded for their seed."""
    keep = [(i, ref.meta["seed"]) for i, ref in zip(data.indices, data.refs)
            if ref.meta["policy"] in cfg.policies]
    clean = [i for i, seed in keep if not any(lo <= seed <= hi for lo, hi in cfg.exclude_seeds)]
    if not clean:
        raise ValueError(f"no episode of {cfg.data_dir} was collected by {cfg.policies} "
                         f"outside the seeds {cfg.exclude_seeds}")
    return EpisodeDataset(data.root, episodes=clean), len(keep) - len(clean)


def masked_error(predicted: torch.Tensor, actions: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per action dimension over the actions inside the episode."""
    per_step = (predicted - actions).square().mean(-1)
    return (per_step * mask).sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def evaluate(prior: PolicyPrior, examples: dict[str, np.ndarray]) -> dict:
    """Held-out mean squared action error of the prior and of proposing no motion (zeros),
    overall and per task."""
    prior.eval()

    def errors(index: np.ndarray) -> dict:
        state, goal, actions, mask = (torch.from_numpy(examples[k][index])
                                      for k in ("state", "goal", "actions", "mask"))
        return {"examples": int(len(index)),
                "prior_mse": masked_error(prior(state, goal), actions, mask).item(),
                "no_motion_mse": masked_error(torch.zeros_like(actions), actions, mask).item()}

    tasks = examples["task"]
    return {"all": errors(np.arange(len(tasks))),
            "per_task": {t: errors(np.flatnonzero(tasks == t)) for t in sorted(set(tasks))}}


def train(cfg: TrainPriorConfig) -> dict:
    torch.manual_seed(cfg.seed)
    data, excluded = select(EpisodeDataset(cfg.data_dir), cfg)
    train_set, val_set = data.split(cfg.val_fraction, seed=cfg.split_seed)
    examples = load_examples(train_set, cfg.model.chunk)
    prior = PolicyPrior(cfg.model)
    inputs = np.concatenate([examples["state"], examples["goal"]], -1)
    prior.input_mean.copy_(torch.from_numpy(inputs.mean(0)))
    prior.input_std.copy_(torch.from_numpy(inputs.std(0) + 1e-3))
    state, goal, actions, mask = (torch.from_numpy(examples[k])
                                  for k in ("state", "goal", "actions", "mask"))
    optimizer = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = Path(cfg.out_dir)
    start_step, elapsed_before, history = resume(out, prior, optimizer)
    print(f"policy prior: {sum(p.numel() for p in prior.parameters()) / 1e6:.2f}M params, "
          f"{len(state)} frames of {len(train_set)} episodes ({', '.join(cfg.policies)}; "
          f"{excluded} left out for their evaluation seeds)")
    bar = tqdm(total=cfg.steps, initial=start_step, unit="step", desc="train_prior")
    run_start, running = time.perf_counter(), []
    for step in range(start_step, cfg.steps):
        prior.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        index = torch.randint(len(state), (cfg.batch_size,), generator=generator)
        s, g = state[index].clone(), goal[index].clone()
        s[:, 4:] += cfg.contact_noise * torch.randn(len(s), 3, generator=generator)
        g[:, :3] += cfg.goal_noise * torch.randn(len(g), 3, generator=generator)
        g[:, 4:] += cfg.goal_noise * torch.randn(len(g), 3, generator=generator)
        loss = masked_error(prior(s, g), actions[index], mask[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            history.append({"step": done, "loss": float(np.mean(running)),
                            "lr": learning_rate(cfg, step)})
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
            running = []
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_training(out, prior, optimizer, step=done,
                          elapsed=elapsed_before + time.perf_counter() - run_start,
                          history=history, config=asdict(cfg))
    bar.close()
    if start_step >= cfg.steps:  # already trained: evaluate the last checkpoint
        prior.load_state_dict(load_checkpoint(out)["model"])
    evaluation = evaluate(prior, load_examples(val_set, cfg.model.chunk))
    evaluation.update(steps=cfg.steps, train_frames=len(state), val_episodes=len(val_set),
                      excluded_for_seed=excluded,
                      wall_time_s=round(elapsed_before + time.perf_counter() - run_start, 1))
    print("held-out action error (mean squared)      prior   no motion")
    for name, e in [("all", evaluation["all"]), *evaluation["per_task"].items()]:
        print(f"  {name:38s} {e['prior_mse']:7.4f} {e['no_motion_mse']:9.4f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(evaluation, indent=1))
    if cfg.report:
        save_json(cfg.report, evaluation)
    if cfg.export_dir:
        card = {"name": PRIOR,
                "what": "policy prior: (proprio + contact point, goal proprio + goal contact "
                        "point) -> the next control actions, trained on play data with "
                        "hindsight goals (no rewards, no task labels; recorded object state "
                        "as a training label)",
                "command": "python -m worldmodel.train_prior " + " ".join(sys.argv[1:]),
                "config": cfg.model.to_dict(),
                "data": {"dir": cfg.data_dir, "train_episodes": len(train_set),
                         "collection": train_set.manifest["config"]},
                "training": asdict(cfg) | {"model": None}, "git_revision": git_revision(),
                "evaluation": evaluation}
        print(f"exported the prior to {save_weights(cfg.export_dir, PRIOR, prior, card)}")
    return evaluation


@hydra.main(config_path="../configs", config_name="train_prior", version_base="1.3")
def main(cfg) -> None:
    train(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
