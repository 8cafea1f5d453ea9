"""An SB3 agent learning a task from goal images alone, next to the same agent trained on the
env's true success signal: `python -m worldmodel.rl_example [task=button] [steps=20000]`.

Both agents see the same observations: the gripper's proprio and the pooled V-JEPA features
of the current frame and of the goal image (`GoalImageReward(goal_conditioned=True)`). One is
rewarded with -latent distance to the goal image (no task reward at all), the other with the
env's success flag (1 on success steps, else 0). Every `eval_every` steps both are evaluated
on the same held-out seeds (deterministic policy, success at the final step); the table of
success over training is printed and, with `report=...`, written as JSON.

Needs stable-baselines3 (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import envs
from worldmodel.report import save_json
from worldmodel.weights import PRETRAINED_DIR, load_pretrained
from worldmodel.wrappers import GoalImageReward


@dataclass
class RLExampleConfig:
    task: str = "button"  # push | pick_place | drawer | button
    algo: str = "ppo"  # ppo | sac
    steps: int = 20000  # env steps per agent
    eval_every: int = 4000  # env steps between evaluations
    eval_episodes: int = 10  # held-out episodes per evaluation (seeds 10000, 10001, ...)
    weights_dir: str = str(PRETRAINED_DIR)
    seed: int = 0
    report: str | None = None  # if set, write the curves there (JSON)

    def __post_init__(self):
        if self.task not in envs.TASK_NAMES:
            raise ValueError(f"{self.task=}: valid tasks are {', '.join(envs.TASK_NAMES)}")
        if self.algo not in ("ppo", "sac"):
            raise ValueError(f"{self.algo=} must be 'ppo' or 'sac'")
        if min(self.steps, self.eval_every, self.eval_episodes) < 1:
            raise ValueError("steps, eval_every and eval_episodes must be >= 1")


ConfigStore.instance().store(name="rl_example_schema", node=RLExampleConfig)


class SuccessReward(gym.Wrapper):
    """Reward = the env's true success flag (for comparison only: no goal image needed)."""

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, float(info["success"]), terminated, truncated, info


def make_env(cfg: RLExampleConfig, model, reward: str) -> gym.Env:
    env = GoalImageReward(envs.make(cfg.task), model, goal_conditioned=True, features="pooled")
    return SuccessReward(env) if reward == "success" else env


def evaluate(agent, env: gym.Env, cfg: RLExampleConfig) -> float:
    """Final-step success rate of the deterministic policy on the held-out seeds."""
    wins = 0
    for i in range(cfg.eval_episodes):
        obs, _ = env.reset(seed=10000 + i)
        done, info = False, {}
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        wins += bool(info["success"])
    return wins / cfg.eval_episodes


def train(cfg: RLExampleConfig) -> dict:
    try:
        from stable_baselines3 import PPO, SAC
    except ImportError as error:
        raise ImportError("the RL example needs stable-baselines3: pip install -e '.[dev]'") \
            from error
    model = load_pretrained(cfg.weights_dir)
    curves = {}
    for reward in ("goal image", "success"):
        torch.manual_seed(cfg.seed)
        env = make_env(cfg, model, reward)
        eval_env = make_env(cfg, model, reward)
        algo = PPO if cfg.algo == "ppo" else SAC
        kwargs = {"n_steps": min(2048, cfg.eval_every)} if cfg.algo == "ppo" else {}
        agent = algo("MultiInputPolicy", env, seed=cfg.seed, device="cpu", verbose=0, **kwargs)
        curve, start = [], time.perf_counter()
        for done in range(cfg.eval_every, cfg.steps + 1, cfg.eval_every):
            agent.learn(cfg.eval_every, reset_num_timesteps=False)
            rate = evaluate(agent, eval_env, cfg)
            curve.append({"steps": done, "success": rate,
                          "wall_s": round(time.perf_counter() - start, 1)})
            print(f"{reward:>10s} reward  {done:7d} steps  success {100 * rate:5.1f} %  "
                  f"({curve[-1]['wall_s']:.0f} s)", flush=True)
        curves[reward] = curve
    print(f"\n{cfg.algo.upper()} on {cfg.task}: final-step success on {cfg.eval_episodes} "
          "held-out episodes")
    print(f"{'steps':>7s} {'goal-image reward':>18s} {'true success reward':>20s}")
    for a, b in zip(curves["goal image"], curves["success"]):
        print(f"{a['steps']:7d} {100 * a['success']:17.0f}% {100 * b['success']:19.0f}%")
    result = {"config": asdict(cfg), "curves": curves}
    if cfg.report:
        save_json(cfg.report, result)
    return result


@hydra.main(config_path="../configs", config_name="rl_example", version_base="1.3")
def main(cfg) -> None:
    train(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
