"""Gymnasium wrappers that put the shipped world model under any RL agent.

    import envs
    from worldmodel.wrappers import GoalImageReward, ImaginationEnv, LatentObservation

    env = LatentObservation(envs.make("push"))                  # obs["latent"]: V-JEPA features
    env = GoalImageReward(envs.make("push"), goal_conditioned=True)  # reward from the goal image
    env = ImaginationEnv("push")                                # steps in the predictor, not MuJoCo

- `LatentObservation` (and `VectorLatentObservation` for vector envs, which encodes all
  sub-envs' frames in one batch) replaces or adds to `pixels` the frozen encoder's features
  of the current frame: the mean-pooled vector (D,) or the patch tokens (P, D).
- `GoalImageReward`: reward = -latent distance between the current frame and the goal image
  (the planner's energy), so agents learn from goal images with no task reward. With
  `goal_conditioned=True` the observation is gymnasium-robotics' dict (`observation`,
  `achieved_goal`, `desired_goal`; goals in latent space) and `compute_reward` gives the step
  reward for any goal, so hindsight relabelling (SB3's `HerReplayBuffer`) works.
- `ImaginationVectorEnv` / `ImaginationEnv`: episodes start from a real frame and goal image
  of the task and then run in the action-conditioned predictor, all sub-envs in one batched
  forward per step; reward as above; fixed horizon (model steps).

The task's true `success` stays in `info` of the real-env wrappers (for evaluation only).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from einops import repeat
from gymnasium.vector.utils import batch_space

import envs
from worldmodel.features import token_distance
from worldmodel.weights import PretrainedWorldModel, load_pretrained

FEATURES = ("pooled", "patches")


def _check(features: str, distance: str = "l2") -> None:
    if features not in FEATURES:
        raise ValueError(f"{features=} must be one of {FEATURES}")
    if distance not in ("l1", "l2"):
        raise ValueError(f"{distance=} must be 'l1' or 'l2'")


def _encode(model: PretrainedWorldModel, pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> patch tokens (N, P, D), one batched forward."""
    return model.encode(torch.from_numpy(np.ascontiguousarray(pixels))[:, None])[:, 0]


def _features(tokens: torch.Tensor, features: str) -> np.ndarray:
    """(N, P, D) tokens -> float32 (N, D) pooled or (N, P, D) patches."""
    out = tokens.mean(dim=-2) if features == "pooled" else tokens
    return out.float().cpu().numpy()


def _latent_space(model: PretrainedWorldModel, features: str) -> gym.spaces.Box:
    cfg = model.config
    patches = (cfg.image_size // cfg.patch_size) ** 2
    shape = (cfg.encoder_dim,) if features == "pooled" else (patches, cfg.encoder_dim)
    return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)


def _with_latent(space: gym.spaces.Dict, latent: gym.spaces.Box, key: str,
                 keep_pixels: bool) -> gym.spaces.Dict:
    if not isinstance(space, gym.spaces.Dict) or "pixels" not in space.spaces:
        raise ValueError(f"the env's observation space must be a Dict with 'pixels', got "
                         f"{space}")
    spaces = dict(space.spaces)
    if not keep_pixels:
        del spaces["pixels"]
    spaces[key] = latent
    return gym.spaces.Dict(spaces)


def _latent_distance(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """Mean L1 or squared L2 over the last axis of flattened latents (..., size) -> (...):
    for flattened patch tokens this equals `token_distance` at its default scales (patches
    only), the planner's default energy."""
    diff = a - b
    return (np.abs(diff) if distance == "l1" else np.square(diff)).mean(axis=-1)


class LatentObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds the frozen V-JEPA features of the current frame as `obs[key]` (a `Box`), and
    drops `pixels` unless `keep_pixels`; `proprio` is kept."""

    def __init__(self, env: gym.Env, model: PretrainedWorldModel | None = None, *,
                 features: str = "pooled", keep_pixels: bool = False, key: str = "latent"):
        gym.utils.RecordConstructorArgs.__init__(self, model=model, features=features,
                                                 keep_pixels=keep_pixels, key=key)
        super().__init__(env)
        _check(features)
        self.model = model if model is not None else load_pretrained()
        self.features, self.keep_pixels, self.key = features, keep_pixels, key
        self.observation_space = _with_latent(env.observation_space,
                                              _latent_space(self.model, features), key,
                                              keep_pixels)

    def observation(self, observation: dict) -> dict:
        obs = dict(observation)
        pixels = obs["pixels"] if self.keep_pixels else obs.pop("pixels")
        obs[self.key] = _features(_encode(self.model, pixels[None]), self.features)[0]
        return obs


class VectorLatentObservation(gym.vector.VectorObservationWrapper):
    """`LatentObservation` for a vector env (`SyncVectorEnv`/`AsyncVectorEnv` of task envs):
    the frames of all sub-envs are encoded in one batched forward."""

    def __init__(self, env: gym.vector.VectorEnv, model: PretrainedWorldModel | None = None,
                 *, features: str = "pooled", keep_pixels: bool = False, key: str = "latent"):
        super().__init__(env)
        _check(features)
        self.model = model if model is not None else load_pretrained()
        self.features, self.keep_pixels, self.key = features, keep_pixels, key
        self.single_observation_space = _with_latent(
            env.single_observation_space, _latent_space(self.model, features), key,
            keep_pixels)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations: dict) -> dict:
        obs = dict(observations)
        pixels = obs["pixels"] if self.keep_pixels else obs.pop("pixels")
        obs[self.key] = _features(_encode(self.model, pixels), self.features)
        return obs


class GoalImageReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reward = -latent distance of the current frame to the episode's goal image.

    Plain form: observations unchanged, `info["latent_distance"]` added. Goal-conditioned
    form (`goal_conditioned=True`): observation = {"observation": proprio, "achieved_goal":
    features of the current frame, "desired_goal": features of the goal image}, flattened
    (patches: P * D values), and `compute_reward(achieved_goal, desired_goal, info)` is the
    step reward for any (batch of) goals. `features="patches"` is the planner's energy;
    "pooled" is 64x smaller, for replay buffers."""

    def __init__(self, env: gym.Env, model: PretrainedWorldModel | None = None, *,
                 distance: str = "l2", features: str = "patches",
                 goal_conditioned: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, model=model, distance=distance,
                                                 features=features,
                                                 goal_conditioned=goal_conditioned)
        super().__init__(env)
        _check(features, distance)
        if not isinstance(env.observation_space, gym.spaces.Dict) or not {
                "pixels", "proprio"} <= set(env.observation_space.spaces):
            raise ValueError("GoalImageReward needs a task env with 'pixels' and 'proprio' "
                             f"observations (envs.make(...)), got {env.observation_space}")
        self.model = model if model is not None else load_pretrained()
        self.distance, self.features, self.goal_conditioned = distance, features, goal_conditioned
        size = int(np.prod(_latent_space(self.model, features).shape))
        if goal_conditioned:
            goal = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
            self.observation_space = gym.spaces.Dict({
                "observation": env.observation_space["proprio"], "achieved_goal": goal,
                "desired_goal": goal})
        self._goal: np.ndarray | None = None

    def _latent(self, pixels: np.ndarray) -> np.ndarray:
        return _features(_encode(self.model, pixels[None]), self.features)[0].reshape(-1)

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray | float:
        """-distance between latent goals, (..., size) -> (...); the step reward."""
        reward = -_latent_distance(np.asarray(achieved_goal, np.float32),
                                   np.asarray(desired_goal, np.float32), self.distance)
        return float(reward) if np.ndim(reward) == 0 else reward

    def _observe(self, obs: dict, info: dict) -> tuple[dict, float]:
        achieved = self._latent(obs["pixels"])
        reward = self.compute_reward(achieved, self._goal)
        info["latent_distance"] = -reward
        if self.goal_conditioned:
            obs = {"observation": obs["proprio"], "achieved_goal": achieved,
                   "desired_goal": self._goal.copy()}
        return obs, reward

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        if "goal_pixels" not in info:
            raise ValueError("the env's reset info has no 'goal_pixels' (a WorldModel task "
                             "env gives one)")
        self._goal = self._latent(info["goal_pixels"])
        obs, _ = self._observe(obs, info)
        return obs, info

    def step(self, action):
        if self._goal is None:
            raise RuntimeError("call reset() before step()")
        obs, _, terminated, truncated, info = self.env.step(action)
        obs, reward = self._observe(obs, info)
        return obs, reward, terminated, truncated, info


class ImaginationVectorEnv(gym.vector.VectorEnv):
    """`num_envs` episodes in the world model's imagination, stepped in one batched forward.

    Each reset takes a real start frame and goal image of `task` (seeded), encodes them, and
    from then on every step runs the action-conditioned predictor: the action (4,) is held
    for the predictor's `frameskip` control steps (one model step); the next frame's latent
    and proprio are predicted from the last `context` frames (real, then imagined). Reward =
    -latent distance (patch tokens, the planner's energy) of the imagined frame to the goal.
    Episodes truncate after `horizon` model steps (default: the task's step budget); reset
    is automatic on the step after (gymnasium's next-step autoreset)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, task: str = "push", num_envs: int = 8,
                 model: PretrainedWorldModel | None = None, *, horizon: int | None = None,
                 context: int | None = None, features: str = "pooled", distance: str = "l2",
                 device: str = "cpu"):
        _check(features, distance)
        if num_envs < 1:
            raise ValueError(f"{num_envs=} must be >= 1")
        self.model = (model if model is not None else load_pretrained(predictor=True)).to(device)
        if self.model.predictor is None:
            raise ValueError("the world model has no action-conditioned predictor: load it "
                             "with worldmodel.load_pretrained(predictor=True)")
        self.predictor = self.model.predictor
        # real frames from the camera the predictor was trained on
        self.real = envs.make(task, image_size=self.model.config.image_size,
                              cameras=(self.model.camera or "front",))
        self.task, self.num_envs, self.features, self.distance = task, num_envs, features, distance
        self.frameskip = self.predictor.cfg.frameskip
        self.horizon = horizon or math.ceil(envs.step_budget(task) / self.frameskip)
        # by default the window the predictor was trained on (its card), the longest it knows
        longest = self.predictor.cfg.max_frames
        trained = self.model.predictor_card.get("training", {}).get("num_frames", longest)
        self.context = context or trained
        if not 1 <= self.context <= longest or self.horizon < 1:
            raise ValueError(f"need 1 <= context={self.context} <= max_frames={longest} and "
                             f"horizon={self.horizon} >= 1")
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.single_observation_space = gym.spaces.Dict({
            "latent": _latent_space(self.model, features),
            "proprio": self.real.observation_space["proprio"]})
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._needs_reset = True

    def _obs(self) -> dict:
        return {"latent": _features(self._z[:, -1], self.features),
                "proprio": self._proprio[:, -1].cpu().numpy().astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        seeds = (seed + np.arange(self.num_envs) if seed is not None
                 else self.np_random.integers(0, 2**31 - 1, self.num_envs))
        frames, goals, proprio = [], [], []
        for s in seeds:
            obs, info = self.real.reset(seed=int(s))
            frames.append(obs["pixels"])
            goals.append(info["goal_pixels"])
            proprio.append(obs["proprio"])
        device = self.model.encoder.spatial_pos.device
        tokens = _encode(self.model, np.stack(frames + goals))
        self._z = tokens[:self.num_envs, None]  # (N, T, P, D), T frames so far
        self._goal = tokens[self.num_envs:]
        self._proprio = torch.as_tensor(np.stack(proprio), device=device)[:, None]
        self._actions = self._z.new_zeros((self.num_envs, 0, self.predictor.action_dim))
        self._t, self._needs_reset = 0, False
        return self._obs(), {"seeds": np.asarray(seeds), "goal_latent": _features(
            self._goal, self.features)}

    @torch.no_grad()
    def step(self, actions):
        if self._needs_reset:
            obs, info = self.reset()
            zeros = np.zeros(self.num_envs)
            return obs, zeros, zeros.astype(bool), zeros.astype(bool), info
        actions = np.asarray(actions, np.float32).reshape(self.num_envs, -1)
        if actions.shape[1] != 4 or not np.all(np.isfinite(actions)):
            raise ValueError(f"actions must be finite with shape ({self.num_envs}, 4)")
        a = torch.from_numpy(np.clip(actions, -1, 1)).to(self._z.device)
        model_action = repeat(a, "n a -> n 1 (r a)", r=self.frameskip)
        self._actions = torch.cat([self._actions, model_action], dim=1)
        window = slice(-self.context, None)
        z, proprio = self.predictor(self._z[:, window], self._actions[:, window],
                                    self._proprio[:, window])
        self._z = torch.cat([self._z, z[:, -1:]], dim=1)[:, -self.context:]
        self._proprio = torch.cat([self._proprio, proprio[:, -1:]], dim=1)[:, -self.context:]
        self._actions = self._actions[:, -(self.context - 1):] if self.context > 1 else \
            self._actions[:, :0]
        self._t += 1
        distance = token_distance(self._z[:, -1], self._goal, self.distance)
        truncated = np.full(self.num_envs, self._t >= self.horizon)
        self._needs_reset = bool(truncated[0])
        return (self._obs(), -distance.cpu().numpy().astype(np.float64),
                np.zeros(self.num_envs, bool), truncated, {"latent_distance":
                                                           distance.cpu().numpy()})


class ImaginationEnv(gym.Env):
    """One imagined episode at a time: `ImaginationVectorEnv` with a single sub-env, as a
    plain `gym.Env` (its spaces unbatched); the same arguments."""

    metadata = {"render_modes": []}

    def __init__(self, task: str = "push", model: PretrainedWorldModel | None = None,
                 **kwargs):
        self.vector = ImaginationVectorEnv(task, 1, model, **kwargs)
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        obs, info = self.vector.reset(seed=seed)
        return {k: v[0] for k, v in obs.items()}, {"goal_latent": info["goal_latent"][0]}

    def step(self, action):
        if self.vector._needs_reset:
            raise RuntimeError("the episode is over (or was never started): call reset()")
        obs, reward, terminated, truncated, info = self.vector.step(np.asarray(action)[None])
        return ({k: v[0] for k, v in obs.items()}, float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), {"latent_distance": float(info["latent_distance"][0])})
