"""A goal-image MPC agent: encode the observation, plan in latent space, act.

    agent = LatentMPCAgent(model, planner, ObjectiveConfig(), history=1, execute=1)
    agent.reset(goal_pixels)                         # uint8 (H, W, 3)
    agent.reset(goal_pixels, subgoals=images, subgoal_steps=4)  # reach sub-goal images first
    actions, info = agent.act(obs, generator)        # (execute * frameskip, 4) control actions

Receding horizon: each plan covers H model steps (each `frameskip` control steps); the first
`execute` model steps are executed, then the agent replans from the new observation,
warm-starting from the rest of the plan. The last `history - 1` observed frames (with the
actions taken after them) are the predictor's context.

With a policy prior in the world model (`worldmodel.prior`, a separately reported variant),
each plan's sampling starts from the prior's proposal for the state and goal the readers read,
in place of the previous plan shifted; `prior_weight` > 0 adds to the energy that weight x the
mean absolute difference of a plan's actions from the proposal. With `prior_margin` set, the
prior acts (one control action per image, as it acts alone) and the world model vetoes it: each
plan, the CEM's best plan is executed instead only when its imagined energy is below the
proposal's x (1 - prior_margin). With `prior_stall` set as well, the world model plans only
where the prior has stalled: after a model step in which the gripper moved less than
`prior_stall` (m) while the object, as the contact reader reads it, was still farther than
`stall_distance` from where it reads the goal's, and for `stall_plans` - 1 model steps after
that; elsewhere the prior acts without a plan.

Sub-goals (a separately reported variant, as V-JEPA 2-AC planned pick-and-place): the agent
plans to each sub-goal image in turn and moves on after `subgoal_steps` plans, or earlier
once its gripper is within `subgoal_reach` of where the proprio reader reads the sub-goal's
(only with a reader); the goal image comes last and keeps the rest of the episode.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from planners.objective import LatentObjective, ObjectiveConfig, holds_object, stuck
from planners.sampling import SamplingPlanner
from worldmodel.features import token_distance
from worldmodel.reader import ProprioReader
from worldmodel.weights import PretrainedWorldModel

log = logging.getLogger(__name__)
ENV_ACTION_DIM = 4  # control action: dx, dy, dz, gripper


def prepare_image(image: np.ndarray, size: int) -> torch.Tensor:
    """A goal/observation image as the encoder takes it: uint8 (size, size, 3). Images of
    another size are resized (with a warning); anything else is rejected."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image))
    if image.shape[:2] != (size, size):
        log.warning("image of %s resized to the encoder's %dx%d", image.shape[:2], size, size)
        x = tensor.permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(size, size), mode="area" if image.shape[0] > size
                          else "bilinear", align_corners=None)
        tensor = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
    return tensor


def read_image(reader: ProprioReader | None, image: np.ndarray) -> torch.Tensor | None:
    """What `reader` reads off one image: the proprio (S,) for the proprio reader, the
    contact point (3,) for the contact reader; None without a reader."""
    if reader is None:
        return None
    return reader.read(prepare_image(image, reader.cfg.image_size)[None])[0]


def check_prior(model: PretrainedWorldModel, steps: int) -> None:
    """A policy prior reads its state and goal with both readers and must propose at least
    `steps` control actions."""
    if model.reader is None or model.contact_reader is None:
        raise ValueError("the policy prior reads the state and goal from images: load the "
                         "world model with load_pretrained(..., reader=True, "
                         "contact_reader=True, prior=True)")
    if model.prior.cfg.chunk < steps:
        raise ValueError(f"the policy prior proposes {model.prior.cfg.chunk} control actions, "
                         f"the planner needs {steps} (horizon x frameskip)")


class LatentMPCAgent:
    def __init__(self, model: PretrainedWorldModel, planner: SamplingPlanner,
                 objective: ObjectiveConfig, *, history: int = 1, execute: int = 1,
                 subgoal_reach: float = 0.02, prior_weight: float = 0.0,
                 prior_margin: float | None = None, prior_stall: float | None = None,
                 stall_distance: float = 0.04, stall_plans: int = 1):
        if model.predictor is None:
            raise ValueError("the world model has no action-conditioned predictor: load it "
                             "with worldmodel.load_pretrained(predictor=True)")
        self.model, self.planner, self.objective_cfg = model, planner, objective
        self.predictor = model.predictor
        self.frameskip = self.predictor.cfg.frameskip
        if planner.action_dim not in (ENV_ACTION_DIM, ENV_ACTION_DIM * self.frameskip):
            raise ValueError(f"the planner's action dim {planner.action_dim} must be "
                             f"{ENV_ACTION_DIM} (held for frameskip={self.frameskip} control "
                             f"steps) or {ENV_ACTION_DIM * self.frameskip}")
        self.action_repeat = self.frameskip if planner.action_dim == ENV_ACTION_DIM else 1
        if not 1 <= execute <= planner.cfg.horizon:
            raise ValueError(f"{execute=} must be in [1, horizon={planner.cfg.horizon}]")
        if history < 1 or history + planner.cfg.horizon > self.predictor.cfg.max_frames + 1:
            raise ValueError(f"{history=} + horizon={planner.cfg.horizon} must be <= the "
                             f"predictor's max_frames + 1 = {self.predictor.cfg.max_frames + 1}")
        if history > 1 and execute != 1:
            raise ValueError(f"{history=} > 1 needs execute=1: the context holds the frames "
                             "observed one model step apart")
        if objective.reads_goal_gripper and model.reader is None:
            raise ValueError("objective.proprio_weight, hold_proprio_weight, open_radius or "
                             "push_offset > 0 needs a proprio reader: load the world model "
                             "with load_pretrained(..., reader=True) from a directory with "
                             "reader.safetensors (python -m worldmodel.train_reader "
                             "export_dir=...)")
        if self.predictor.object_state and model.contact_reader is None:
            raise ValueError("this predictor imagines the object state (its contact point), "
                             "which the agent reads from each image with a contact reader: "
                             "load the world model with load_pretrained(..., "
                             "contact_reader=True)")
        if objective.reads_contact and model.contact_reader is None:
            raise ValueError("objective.contact_weight, object_weight, hold_radius, open_radius "
                             "or push_offset > 0 needs a contact reader: load the world model "
                             "with load_pretrained(..., contact_reader=True) from a directory "
                             "with contact_reader.safetensors (python -m worldmodel.train_reader "
                             "target=contact export_dir=...)")
        if model.prior is not None:
            check_prior(model, self.frameskip * planner.cfg.horizon)
        if subgoal_reach <= 0:
            raise ValueError(f"{subgoal_reach=} must be > 0 (metres)")
        if prior_weight < 0 or (prior_weight > 0 and model.prior is None):
            raise ValueError(f"{prior_weight=} must be >= 0, and > 0 only with a policy prior")
        if prior_margin is not None and (model.prior is None or not 0 <= prior_margin < 1):
            raise ValueError(f"{prior_margin=} must be in [0, 1), and set only with a policy "
                             "prior")
        if prior_stall is not None and (prior_margin is None or prior_stall <= 0
                                        or stall_distance < 0 or stall_plans < 1):
            raise ValueError(f"{prior_stall=} must be > 0 (m) and set only with prior_margin, "
                             f"{stall_distance=} >= 0 and {stall_plans=} >= 1")
        self.history, self.execute, self.subgoal_reach = history, execute, subgoal_reach
        self.prior_weight, self.prior_margin = prior_weight, prior_margin
        self.prior_stall, self.stall_distance = prior_stall, stall_distance
        self.stall_plans = stall_plans
        self.goal: torch.Tensor | None = None
        self.goal_proprio: torch.Tensor | None = None
        self.goal_contact: torch.Tensor | None = None
        self.goal_index = 0  # which of the episode's goals (sub-goals first) is planned to

    def encode(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> tokens (P, D)."""
        size = self.model.config.image_size
        return self.model.encode(prepare_image(image, size)[None, None])[0, 0]

    def reset(self, goal_image: np.ndarray, subgoals=(), subgoal_steps: int = 1) -> None:
        """A new episode towards `goal_image`, through the sub-goal images first (each for
        at most `subgoal_steps` plans)."""
        if len(subgoals) and subgoal_steps < 1:
            raise ValueError(f"{subgoal_steps=} must be >= 1")
        self._goals, self._subgoal_steps = [*subgoals, goal_image], subgoal_steps
        self._set_goal(0)
        self._past: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._held: list[torch.Tensor] = []  # read contact - gripper, each plan since the grasp
        self._expected = None  # the gripper before the executed steps and where it was imagined
        self._following: list[np.ndarray] = []  # control actions the prior took since the plan
        self._last_gripper: torch.Tensor | None = None  # the gripper at the last plan
        self._stall_left = 0  # model steps the world model still plans since a stall

    def _set_goal(self, index: int) -> None:
        self.goal_index, self._plans_on_goal = index, 0
        self._reached = False  # the last plan's goal looked reached (objective.hold_release)
        self.goal = self.encode(self._goals[index])
        self.goal_proprio = read_image(self.model.reader, self._goals[index])
        self.goal_contact = read_image(self.model.contact_reader, self._goals[index])
        self.planner.reset()

    def _next_goal_due(self, proprio: torch.Tensor) -> bool:
        """On a sub-goal: whether its plans are used up or the gripper has reached it."""
        if self.goal_index == len(self._goals) - 1:
            return False
        if self._plans_on_goal >= self._subgoal_steps:
            return True
        return self.goal_proprio is not None and float(
            (proprio[:3] - self.goal_proprio[:3]).norm()) < self.subgoal_reach

    def _proposal(self, actions: torch.Tensor) -> torch.Tensor:
        """The policy prior's control actions (chunk, 4) as the planner's actions (H, A):
        each model step's `frameskip` actions averaged when one action is held for the step,
        else side by side."""
        H, A = self.planner.cfg.horizon, self.planner.action_dim
        steps = actions[:H * self.frameskip].view(H, self.frameskip, ENV_ACTION_DIM)
        return steps.mean(1) if self.action_repeat > 1 else steps.reshape(H, A)

    def _prior_controls(self, proprio: torch.Tensor, contact: torch.Tensor) -> torch.Tensor:
        """The policy prior's next control actions (chunk, 4) for this state and goal."""
        return self.model.prior.propose(torch.cat([proprio, contact]), torch.cat(
            [self.goal_proprio, self.goal_contact]))

    def _stalled(self, proprio: torch.Tensor, contact: torch.Tensor) -> bool | None:
        """With `prior_stall`: whether the gripper moved less than it since the last plan while
        the read object is still away from the goal's, or did so within the last `stall_plans`
        model steps (None without `prior_stall`); updates the gripper to measure the next model
        step from."""
        if self.prior_stall is None:
            return None
        last, self._last_gripper = self._last_gripper, proprio[:3].clone()
        if (last is not None and float((proprio[:3] - last).norm()) < self.prior_stall
                and float((contact - self.goal_contact).norm()) > self.stall_distance):
            self._stall_left = self.stall_plans
        self._stall_left -= 1
        return self._stall_left >= 0

    def act(self, obs: dict, generator: torch.Generator) -> tuple[np.ndarray, dict]:
        """Plan from `obs` (with `pixels` and `proprio`); returns the control actions to
        execute, (execute * frameskip, 4), and what the plan looked like. While the prior
        acts (`prior_margin`), one control action per call, planning every execute x
        frameskip control steps."""
        if self.goal is None:
            raise RuntimeError("call reset(goal_image) before act()")
        start = time.perf_counter()
        due = self.execute * self.frameskip
        if 0 < len(self._following) < due:  # the prior acts until the next plan is due
            controls = self._prior_controls(torch.as_tensor(obs["proprio"], dtype=torch.float32),
                                            read_image(self.model.contact_reader, obs["pixels"])
                                            )[:1].numpy()
            self._following.append(controls[0])
            return controls, {"prior_step": True, "goal_index": self.goal_index,
                              "plan_ms": 1e3 * (time.perf_counter() - start)}
        if self._following:  # the context gets the model step's control actions taken
            z_past, proprio_past, _ = self._past[-1]
            self._past[-1] = (z_past, proprio_past, torch.as_tensor(
                np.stack(self._following[:self.frameskip]), dtype=torch.float32).reshape(-1))
        self._following = []
        z = self.encode(obs["pixels"])
        proprio = torch.as_tensor(obs["proprio"], dtype=torch.float32)
        contact = read_image(self.model.contact_reader, obs["pixels"])
        # where a held object sits from the gripper: the mean over the plans since the grasp,
        # from the second on (closing fingers pass through a holding gap for one plan)
        self._held = [*self._held, contact - proprio[:3]] if (
            contact is not None and holds_object(proprio)) else []
        proposed = None if self.model.prior is None else self._prior_controls(proprio, contact)
        stalled = self._stalled(proprio, contact)
        init = None if proposed is None else self._proposal(proposed)
        held_offset = torch.stack(self._held).mean(0) if len(self._held) > 1 else None
        if self.predictor.object_state:  # the state the predictor imagines: proprio + object
            proprio = torch.cat([proprio, contact])
        if self._next_goal_due(proprio):
            self._set_goal(self.goal_index + 1)
        self._plans_on_goal += 1
        context = self._past[-(self.history - 1):] if self.history > 1 else []
        history = None if not context else {
            key: torch.stack([item[i] for item in context])
            for i, key in enumerate(("z", "proprio", "actions"))}
        blocked = self._expected is not None and stuck(
            *self._expected, proprio[:3], dims=2 if self.objective_cfg.unstick_horizontal else 3)
        objective = LatentObjective(self.objective_cfg, self.predictor, z=z, proprio=proprio,
                                    goal=self.goal, history=history,
                                    action_repeat=self.action_repeat,
                                    goal_proprio=self.goal_proprio, contact=contact,
                                    goal_contact=self.goal_contact, held_offset=held_offset,
                                    was_reached=self._reached, blocked=blocked)
        self._reached = objective.reached
        energy = objective
        if self.prior_weight > 0:  # + how far (mean |action difference|) a plan strays from it
            def energy(actions):
                return objective(actions) + self.prior_weight * (actions - init).abs().mean((1, 2))
        if stalled is False:  # the prior moves on: it acts without a plan
            result, actions, executed_energy = None, init, float(objective(init[None])[0])
        else:
            result = self.planner.plan(energy, generator, init=init)
            actions, executed_energy = result.actions, result.energy
        if result is not None and self.prior_margin is not None:  # the prior acts unless the
            # plan's imagined outcome is clearly better than its proposal's
            plan_energy, prior_energy = objective(torch.stack([result.actions, init])).tolist()
            if plan_energy >= (1 - self.prior_margin) * prior_energy:
                actions, executed_energy = init, prior_energy
        plan = objective.model_actions(actions[None])[0]  # (H, A_model)
        imagined, imagined_proprio = (x[0] for x in objective.rollout(actions[None]))
        self._expected = proprio[:3], imagined_proprio[self.execute - 1, :3]
        self.planner.shift(self.execute)
        self._past = [*self._past, (z, proprio, plan[0])][-max(self.history - 1, 1):]
        controls = plan[:self.execute].reshape(-1, ENV_ACTION_DIM).cpu().numpy()
        if actions is init:  # the prior acts, one control action per image
            controls = proposed[:1].numpy()
            self._following = [controls[0]]
        info = {"energy": executed_energy, "plan_ms": 1e3 * (time.perf_counter() - start),
                "prior_acts": actions is init, "stalled": bool(stalled),
                "goal_index": self.goal_index, "blocked": blocked,
                "best_per_iteration": [] if result is None else result.best_energy_per_iteration,
                "mean_per_iteration": [] if result is None else result.mean_energy_per_iteration,
                "imagined_to_goal": (imagined[-1] - self.goal).square().mean(-1),  # (P,)
                "observed_to_goal": float(token_distance(
                    z, self.goal, self.objective_cfg.distance, self.objective_cfg.scales))}
        return controls, info
