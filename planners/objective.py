"""The planning energy: how far the world model's imagined future is from the goal image,
measured on patch tokens (DINO-WM found patch tokens far better than a pooled vector).

    energy(a_1..H) = sum_h w_h * dist(z_hat_h(a), z_goal)

with z_hat from the action-conditioned predictor rolled out from the current observation,
`dist` the mean L1 or squared L2 over patches and channels (V-JEPA 2 uses L1, JEPA-WMs
found L2 better), and w either only the last step or uniform over the horizon.

An optional second term (`proprio_weight` > 0) adds the distance in metres from the
predictor's imagined gripper position to the goal's gripper position, read from the goal
image by the proprio reader (`worldmodel.reader`): the energy still sees only the goal
image and the robot's own observations.

A contact-first term (`contact_weight` > 0) adds the distance in metres from the imagined
gripper to the point where it engages the task object, read from the *current* camera image
by a contact reader (`worldmodel.train_reader target=contact`). That reader was trained
with the play data's recorded object state as labels, so planning with it is a separately
reported variant (README, "A contact-first term from images"). With a predictor that also
imagines the contact point (`train_ac object_state=true`, the same kind of labels), the term
uses the imagined contact point of each step instead, and an object term (`object_weight` >
0) adds the distance from the imagined contact point to the goal's, read from the goal image
by the contact reader: the object is asked to go where the goal image shows it.
`approach_slope` > 0 lifts the contact term's target above the contact point while the
gripper is beside it (a cone: min(slope x horizontal distance, approach_height)), so the
gripper comes down onto the point instead of running into the object's side (a drawer's
handle bar blocked a straight approach at 5 cm from the hook in most drawer failures).
`hold_radius` > 0 switches a 'last' energy to 'uniform' once the contact point read from the
current image is within that radius of the goal's: reach with the last step, then hold;
while holding, the goal-gripper term takes the weight `hold_proprio_weight`.
`open_radius` > 0 keeps the fingers open (the grip action at -1, imagined and executed)
while the gripper is farther than that from the contact point read from the current image,
when the goal image shows the fingers around something (their gap read by the proprio
reader wider than `OPEN_GAP`): closed fingers cannot come around a cube, they land on its top
(3.5 cm above the centre in most pick-and-place failures); near the point the planner
chooses the grip; with `keep_held`, fingers that hold something (their own gap) stay closed,
and with `carry` the held object is taken to move with the gripper (`held_offset`) and is
carried as held: every imagined step is scored, not only the last.
Goals with closed fingers (pushing, pulling, pressing) are left alone by those; with
`push_offset` > 0 an object resting low on the table that the goal image shows elsewhere is
pushed: the contact term's target stands `push_offset` behind it on the line from its goal
through it (near the goal, that far or `push_clear` from it on the gripper's side, clear of
it, and held). `touch_radius` > 0 lets the imagined object move only at steps where the
imagined gripper is within that distance of it (`touch_path`: where the gripper's path
passes that near, and no farther than the gripper moves): the planner otherwise finds plans
in which the predictor carries a puck towards its goal with the gripper 9-28 cm away.
`clear_weight` > 0 adds how far the imagined gripper's path runs low near a pushed object at
its goal (a plan drove the gripper through a puck held there), and `hold_release` keeps a
reached goal held until it is that far off (a drawer pushed 2 cm shut by one plan left the
hold, and the plans after it lifted the gripper off the handle). `hold_scale` < 1 scales the
planned moves while a reached goal is held (a drawer held at its goal opening was pulled
past it and pushed back by plan after plan, and was off when the episode ended).
`push_scale` < 1 scales them while a pushed object is within `push_near` of its goal (a
model step at full speed pushed a puck through its goal and out again).
`unstick_lift` > 0 lifts the gripper for one model step after a step in which it moved less
than `BLOCKED_RATIO` of what the predictor imagined: pressed against a handle bar or onto a
cabinet's top, the gripper stood still for 30 control steps under plans that imagined it
passing through. `home_lift` > 0 lifts it for one model step when a pushed object is read at
its goal with the gripper low over it: a gripper pressing on a puck's top dragged it back off
its goal as it backed away.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import repeat

from envs.scene import MAX_FINGER
from worldmodel.ac_predictor import BLOCKED_RATIO, MIN_COMMANDED, ACPredictor
from worldmodel.features import token_distance

OPEN_GAP = 0.02  # m, a goal gripper's finger gap above this holds something between them
HELD_GAP = 0.06  # m, and below this (wide open: 7 cm; around a 4 cm cube: 4 cm)
FULL_GAP = 2 * MAX_FINGER  # m, the finger gap the grip action -1 opens to (+1 closes them)
PUSH_HEIGHT = 0.035  # m, contact points below this rest on the table (puck 1.5 cm, others 6 cm+)
PUSHED = 0.04  # m, an object this near its goal is left where it is (push success: 5 cm)
CLEAR_RADIUS = 0.055  # m, a gripper path this near a pushed object's centre passes over it
CLEAR_HEIGHT = 0.06  # m, above the 3 cm puck with the fingers' length below the gripper


def stuck(start: torch.Tensor, imagined: torch.Tensor, observed: torch.Tensor,
          dims: int = 3) -> bool:
    """Whether the gripper, imagined to move from `start` to `imagined` (3,) over a model
    step, moved less than BLOCKED_RATIO of that (to `observed`): something blocked it.
    Measured in the first `dims` coordinates (2: horizontal motion only)."""
    expected = float((imagined - start)[:dims].norm())
    moved = float((observed - start)[:dims].norm())
    return expected >= MIN_COMMANDED and moved < BLOCKED_RATIO * expected


def nearest_on_path(start: torch.Tensor, end: torch.Tensor, point: torch.Tensor,
                    dims: int = 3) -> torch.Tensor:
    """The point (..., 3) of the segment from `start` to `end` (..., 3) nearest `point`,
    measured in the first `dims` coordinates."""
    path = end - start
    flat, rel = path[..., :dims], (point - start)[..., :dims]
    along = (rel * flat).sum(-1) / (flat * flat).sum(-1).clamp(min=1e-9)
    return start + along.clamp(0, 1)[..., None] * path


def holds_object(proprio: torch.Tensor) -> bool:
    """Whether the robot's own finger gap (proprio[3]) says the fingers hold something."""
    return OPEN_GAP < float(proprio[3]) < HELD_GAP


@dataclass
class ObjectiveConfig:
    distance: str = "l2"  # "l1" | "l2" (mean squared) between patch tokens
    weighting: str = "last"  # "last": the final imagined frame; "uniform": every step
    # sum the distance over the patch grid average-pooled in s x s cells, one term per s
    # ((1,): patches only); coarse terms widen the energy's basin (features.token_distance)
    scales: tuple[int, ...] = (1,)
    latent_weight: float = 1.0  # weight of the token distance above
    # weight of |imagined gripper position - goal gripper position read from the goal
    # image| (metres); 0: off. > 0 needs a proprio reader beside the predictor
    proprio_weight: float = 0.0
    # weight of |imagined gripper position - the task's contact point read from the current
    # image| (metres); 0: off. > 0 needs a contact reader beside the predictor
    contact_weight: float = 0.0
    # weight of |imagined contact point - the goal's contact point read from the goal image|
    # (metres); 0: off. > 0 needs a predictor with the object state and a contact reader
    object_weight: float = 0.0
    # approach from above: the contact term's target is lifted by min(approach_slope x the
    # horizontal distance to the contact point, approach_height) (a cone standing on the
    # contact point), so the gripper comes down onto it rather than into the object's side;
    # 0: off (the contact point itself)
    approach_slope: float = 0.0
    approach_height: float = 0.06  # m, the lift's cap
    # score the contact term at every imagined step (its mean over the horizon) even where
    # `weighting` scores only the last step: the gripper's way there, not only its end, is
    # asked to keep to the approach (the predictor does not foresee collisions, so a plan
    # that ends at the point may pass through the object on its way)
    contact_every_step: bool = False
    # hold: once the contact point read from the current image is within hold_radius (m)
    # of the goal's, score every imagined step ('uniform') whatever `weighting` says, so a
    # reached goal is kept rather than passed through; 0: off. > 0 needs a contact reader
    hold_radius: float = 0.0
    # the goal-gripper term's weight while holding (instead of proprio_weight): the gripper
    # is asked to stay where the goal image shows it only once the object is there
    hold_proprio_weight: float = 0.0
    # once the goal looked reached at the last plan, keep holding while the read contact
    # point is within hold_release (m) of the goal's (0: hold_radius): a drawer held at
    # 0.9 cm was pushed 2 cm shut by one plan, left the hold, and 'last'-weighted plans
    # lifted the gripper off the handle
    hold_release: float = 0.0
    # (0, 1]: while a reached goal is held, the planned moves (not the grip) are scaled by
    # this, for the imagined steps and the executed ones: a drawer held at its goal opening
    # was pulled 2-4 cm past it and pushed back by each plan (a control step moves it up to
    # 1.6 cm) and ended 3.8-4.7 cm off, outside the 3 cm success threshold
    hold_scale: float = 1.0
    # (0, 1]: while a pushed object (push_offset) is read within push_near (m) of its goal,
    # the planned moves (not the grip) are scaled by this, imagined and executed: a model
    # step of 4 control steps at full speed pushed a puck through its goal and out again
    push_scale: float = 1.0
    push_near: float = 0.06
    # > 0: when the gripper moved less than BLOCKED_RATIO of what the predictor imagined over
    # the last executed model step (something it did not foresee held it: a drawer's handle
    # bar, a cabinet's top), the next plan's first model step is a lift straight up, dz at
    # this (action units; the grip the planner's), unless a reached goal is held
    unstick_lift: float = 0.0
    # with unstick_lift: a step counts as blocked from its horizontal (xy) motion only: a
    # gripper pulling a drawer by pressing down on its front panel does not move down as
    # imagined, and a lift took it off the drawer
    unstick_horizontal: bool = False
    # > 0: when a pushed object (push_offset) is read within PUSHED of its goal with the
    # gripper lower than CLEAR_HEIGHT and within CLEAR_RADIUS of it seen from above, the
    # plan's first model step is a lift straight up, dz at this (action units), the fingers
    # kept at their gap: pushes end with the gripper pressing on the puck's top, and backing
    # away dragged it off its goal
    home_lift: float = 0.0
    # the grip action is held open (-1) while the gripper is farther than open_radius (m)
    # from the contact point read from the current image, if the goal image shows the
    # fingers apart; 0: off (the planner chooses the grip). > 0 needs a contact reader and
    # a proprio reader
    open_radius: float = 0.0
    # with open_radius: fingers whose own gap says they hold something (between OPEN_GAP
    # and HELD_GAP) are kept closed, never opened (the goal shows the object held): a cube
    # held in the air was read more than 2 cm from the gripper and forced open, or let go
    # by the planner next to its goal
    keep_held: bool = False
    # with keep_held: an object held between the fingers moves with the gripper, so its
    # contact point is taken as the imagined gripper + the offset it is held at (the mean
    # of the read contact point - the gripper over the plans since the grasp, kept by the
    # agent) instead of the imagined one, and it is carried as held (every imagined step
    # scored, the goal-gripper term at hold_proprio_weight) wherever it is: scored on the
    # last step only, held cubes were swung past their goal and lost
    carry: bool = False
    # > 0: where the goal image shows closed fingers and the object resting low (read
    # contact point below PUSH_HEIGHT) more than PUSHED from where it is, the contact term's
    # target stands this far behind the read object on the line from its goal through it
    # (the play data's pushing expert stands 4.8 cm behind the puck's centre), and within
    # PUSHED of the goal this far from it on the gripper's side, holding (every imagined
    # step scored); without it the gripper came down on the puck's centre and pushed it
    # wherever it slid off
    push_offset: float = 0.0
    # with push_offset: near its goal, the contact term's target stands this far from the
    # pushed object on the gripper's side (0: push_offset); at 5 cm the gripper hovered
    # against the puck and nudged it off its goal in the episode's last steps
    push_clear: float = 0.0
    # > 0: the imagined object moves only at steps that start or end with the imagined
    # gripper within this distance of it (m); CEM found plans in which the predictor moved
    # the puck towards its goal with the gripper 9-28 cm away
    touch_radius: float = 0.0
    # with touch_radius: the imagined object moves only at steps whose imagined gripper path
    # (the segment between the step's start and end) passes within touch_radius of it, and
    # at most as far as the gripper moved; with the end points alone the planner still chose
    # plans in which the predictor moved a puck 13 cm in one step as the gripper swept by
    touch_path: bool = False
    # > 0: the weight of how far (m, summed over the imagined steps) the imagined gripper's
    # path runs lower than CLEAR_HEIGHT within CLEAR_RADIUS of a pushed object near its goal
    # (PUSHED): a plan drove the gripper through a puck held at 1.6 cm from its goal
    clear_weight: float = 0.0

    def __post_init__(self):
        if self.distance not in ("l1", "l2"):
            raise ValueError(f"{self.distance=} must be 'l1' or 'l2'")
        if self.weighting not in ("last", "uniform"):
            raise ValueError(f"{self.weighting=} must be 'last' or 'uniform'")
        if not self.scales or any(s < 1 for s in self.scales):
            raise ValueError(f"{self.scales=} must be a non-empty list of positive integers")
        weights = (self.latent_weight, self.proprio_weight, self.contact_weight,
                   self.object_weight, self.approach_slope, self.approach_height,
                   self.hold_radius, self.hold_proprio_weight, self.hold_release,
                   self.open_radius, self.push_offset, self.push_clear, self.touch_radius,
                   self.clear_weight)
        if min(weights) < 0:
            raise ValueError(f"{self.latent_weight=}, {self.proprio_weight=}, "
                             f"{self.contact_weight=}, {self.object_weight=}, "
                             f"{self.approach_slope=}, {self.approach_height=}, "
                             f"{self.hold_radius=}, {self.hold_proprio_weight=}, "
                             f"{self.hold_release=}, "
                             f"{self.open_radius=}, {self.push_offset=}, "
                             f"{self.push_clear=}, {self.touch_radius=} and "
                             f"{self.clear_weight=} must be >= 0")
        if self.touch_path and self.touch_radius <= 0:
            raise ValueError("objective.touch_path needs touch_radius > 0: it measures the touch "
                             "along the gripper's path")
        if max(self.push_clear, self.clear_weight) > 0 and self.push_offset <= 0:
            raise ValueError("objective.push_clear or clear_weight needs push_offset > 0: they "
                             "act on a pushed object")
        if not 0 < self.hold_scale <= 1:
            raise ValueError(f"{self.hold_scale=} must be in (0, 1]: it scales the planned "
                             "moves while a reached goal is held")
        if not 0 <= self.unstick_lift <= 1 or not 0 <= self.home_lift <= 1:
            raise ValueError(f"{self.unstick_lift=} and {self.home_lift=} must be in [0, 1]: "
                             "the first model step's dz (action units) when lifting; 0: off")
        if self.home_lift > 0 and self.push_offset <= 0:
            raise ValueError("objective.home_lift > 0 needs push_offset > 0: it acts on a "
                             "pushed object")
        if not 0 < self.push_scale <= 1 or self.push_near <= 0:
            raise ValueError(f"{self.push_scale=} must be in (0, 1] and {self.push_near=} > 0: "
                             "the planned moves are scaled near a pushed object's goal")
        if self.push_scale < 1 and self.push_offset <= 0:
            raise ValueError("objective.push_scale < 1 needs push_offset > 0: it acts on a "
                             "pushed object")
        if self.unstick_horizontal and self.unstick_lift <= 0:
            raise ValueError("objective.unstick_horizontal needs unstick_lift > 0: it says "
                             "when to lift")
        if 0 < self.hold_release < self.hold_radius:
            raise ValueError(f"{self.hold_release=} must be >= {self.hold_radius=}: it lets "
                             "a reached goal go farther off before it stops holding")
        if self.carry and not (self.keep_held and self.open_radius > 0):
            raise ValueError("objective.carry needs keep_held and open_radius > 0: it carries "
                             "what the fingers are kept closed on")

    @property
    def reads_goal_gripper(self) -> bool:
        """Whether the energy needs the goal's gripper, read by a proprio reader."""
        return max(self.proprio_weight, self.hold_proprio_weight, self.open_radius,
                   self.push_offset) > 0

    @property
    def reads_contact(self) -> bool:
        """Whether the energy needs contact points, read by a contact reader."""
        return max(self.contact_weight, self.object_weight, self.hold_radius,
                   self.open_radius, self.push_offset) > 0


class LatentObjective:
    """Energies of action sequences from one observation towards one goal.

    The observed context is run through the predictor once, at construction (its keys and
    values are cached); each call then rolls out all N sequences in one batched pass per
    step. `action_repeat` > 1 holds each planned action for that many control steps (the
    predictor's frameskip), so the planner searches H x A_env dims, not H x A_model."""

    def __init__(self, cfg: ObjectiveConfig, predictor: ACPredictor, *,
                 z: torch.Tensor, proprio: torch.Tensor, goal: torch.Tensor,
                 history: dict | None = None, action_repeat: int = 1,
                 goal_proprio: torch.Tensor | None = None,
                 contact: torch.Tensor | None = None,
                 goal_contact: torch.Tensor | None = None,
                 held_offset: torch.Tensor | None = None, was_reached: bool = False,
                 blocked: bool = False):
        """z: (P, D) current tokens; proprio: (S,); goal: (P, D) goal image tokens;
        history: earlier frames as {"z": (C, P, D), "proprio": (C, S), "actions": (C, A)};
        goal_proprio: (S,) the goal's proprio as read from the goal image (needed when
        cfg.proprio_weight > 0); contact: (3,) the task's contact point as read from the
        current image (needed when cfg.contact_weight > 0 and the predictor does not
        imagine it); goal_contact: (3,) the goal's, read from the goal image (needed when
        cfg.object_weight > 0); held_offset: (3,) where a held object's contact point sits
        from the gripper (used with cfg.carry while the fingers hold it); was_reached: the
        goal looked reached at the last plan (cfg.hold_release applies); blocked: the gripper
        moved much less than imagined over the last executed step (cfg.unstick_lift
        applies)."""
        P, D = z.shape
        assert goal.shape == (P, D), f"goal tokens {tuple(goal.shape)} != {(P, D)}"
        if cfg.reads_goal_gripper and goal_proprio is None:
            raise ValueError("objective.proprio_weight, hold_proprio_weight, open_radius or "
                             "push_offset > 0 needs the goal's proprio, read from the goal "
                             "image by a proprio reader")
        if cfg.contact_weight > 0 and contact is None and not predictor.object_state:
            raise ValueError("objective.contact_weight > 0 needs the contact point, read "
                             "from the current image by a contact reader")
        if cfg.object_weight > 0 and not (predictor.object_state and goal_contact is not None):
            raise ValueError("objective.object_weight > 0 needs a predictor that imagines the "
                             "object state (python -m worldmodel.train_ac object_state=true) "
                             "and the goal's contact point, read from the goal image by a "
                             "contact reader")
        if max(cfg.hold_radius, cfg.push_offset) > 0 and (contact is None or goal_contact is None):
            raise ValueError("objective.hold_radius or push_offset > 0 needs the contact points "
                             "of the current and the goal image, read by a contact reader")
        if max(cfg.touch_radius, cfg.clear_weight) > 0 and not predictor.object_state:
            raise ValueError("objective.touch_radius or clear_weight > 0 needs a predictor that "
                             "imagines the object state (python -m worldmodel.train_ac "
                             "object_state=true)")
        if cfg.open_radius > 0 and contact is None:
            raise ValueError("objective.open_radius > 0 needs the contact point, read from "
                             "the current image by a contact reader")
        self.cfg, self.predictor, self.action_repeat = cfg, predictor, action_repeat
        if history is None:
            empty = z.new_zeros((1, 0))
            self.cache = predictor.context(empty.view(1, 0, P, D),
                                           empty.view(1, 0, predictor.action_dim),
                                           empty.view(1, 0, predictor.proprio_dim))
        else:
            self.cache = predictor.context(history["z"][None], history["actions"][None],
                                           history["proprio"][None])
        self.z, self.proprio, self.goal = z[None], proprio[None], goal
        self.goal_proprio, self.contact, self.goal_contact = goal_proprio, contact, goal_contact
        # the goal shows the fingers around something: keep them open while the gripper is
        # far from the object, closed while they hold it (keep_held); None: the plan's grip
        self.grip, held = None, False
        if cfg.open_radius > 0 and float(goal_proprio[3]) > OPEN_GAP:
            far = float((proprio[:3] - contact.to(proprio)).norm()) > cfg.open_radius
            held = cfg.keep_held and holds_object(proprio)
            self.grip = 1.0 if held else -1.0 if far else None
        # where the contact term's target stands from the contact point, for a pushed object
        self.behind, self.pushed_home, near = None, False, False
        if (cfg.push_offset > 0 and float(goal_proprio[3]) <= OPEN_GAP
                and float(contact[2]) < PUSH_HEIGHT):
            way = (goal_contact - contact)[:2]
            self.pushed_home, near = float(way.norm()) < PUSHED, float(way.norm()) < cfg.push_near
            offset = cfg.push_offset
            if self.pushed_home:  # near its goal: keep clear on the gripper's side, and hold
                way = (contact - proprio[:3].to(contact))[:2]
                offset = cfg.push_clear or offset
            self.behind = F.pad(-offset * way / way.norm().clamp(min=1e-6), (0, 1))
        # a held object moves with the gripper, at the offset it is held at
        self.held_offset = held_offset if cfg.carry and held else None
        # the goal looks reached, a pushed object is near it, or a held object is carried
        # there: hold (score the whole imagined path, not only its end)
        radius = cfg.hold_release if was_reached and cfg.hold_release else cfg.hold_radius
        self.reached = cfg.hold_radius > 0 and float((contact - goal_contact).norm()) < radius
        self.holding = self.pushed_home or self.held_offset is not None or self.reached
        # the planned moves' scale: slower while a reached goal is held or a pushed object is
        # near its goal
        self.move_scale = cfg.hold_scale if self.reached else cfg.push_scale if near else 1.0
        # stuck on something the predictor did not foresee, or low over a pushed object at
        # its goal: the first model step lifts (off the object with the fingers kept at their
        # gap: opening or closing them beside a puck flicked it off its goal)
        self.lift, self.lift_grip = 0.0, None
        if blocked and not self.holding:
            self.lift = cfg.unstick_lift
        elif cfg.home_lift > 0 and self.pushed_home and float(proprio[2]) < CLEAR_HEIGHT and (
                float((proprio[:2] - contact[:2].to(proprio)).norm()) < CLEAR_RADIUS):
            self.lift = cfg.home_lift
            self.lift_grip = min(1.0, max(-1.0, 1 - 2 * float(proprio[3]) / FULL_GAP))

    def model_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Planned actions (N, H, A) -> the predictor's (N, H, A * action_repeat); the grip
        (every control action's last entry) set to `grip` where the objective sets it, the
        moves scaled by hold_scale while a reached goal is held (push_scale while a pushed
        object is near its goal), the first step's moves a lift
        (0, 0, unstick_lift) after a blocked step ((0, 0, home_lift) low over a pushed object
        at its goal, the grip kept)."""
        actions = repeat(actions, "n h a -> n h (r a)", r=self.action_repeat)
        grip = actions.new_zeros(actions.shape[-1], dtype=torch.bool)
        grip[3::4] = True  # dx, dy, dz, grip per control step
        if self.move_scale < 1:
            actions = torch.where(grip, actions, self.move_scale * actions)
        if self.lift > 0:
            lift = actions.new_zeros(actions.shape[-1])
            lift[2::4] = self.lift
            first = torch.where(grip, actions[:, :1], lift)
            if self.lift_grip is not None:
                first = first.masked_fill(grip, self.lift_grip)
            actions = torch.cat([first, actions[:, 1:]], 1)
        if self.grip is not None:
            actions = actions.masked_fill(grip, self.grip)
        return actions

    @torch.no_grad()
    def rollout(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Imagined tokens (N, H, P, D) and proprio (N, H, S) of planned actions (N, H, A)."""
        z, proprio = self.predictor.imagine(self.cache, self.z, self.proprio,
                                            self.model_actions(actions.to(self.z.device)))
        if self.cfg.touch_radius > 0:
            proprio = self.touched(proprio)
        return z, proprio

    def touched(self, proprio: torch.Tensor) -> torch.Tensor:
        """Imagined states (N, H, S) with the object's imagined moves kept only at steps
        that start or end with the imagined gripper within touch_radius of it (touch_path: whose
        gripper path passes that near, and no farther than the gripper moved)."""
        gripper, imagined = proprio[..., :3], proprio[..., 4:7]
        before, last = self.proprio[:, :3], self.proprio[:, 4:7]  # the current state
        position, kept = last.expand(len(proprio), 3), []
        for h in range(proprio.shape[1]):
            path, move = gripper[:, h] - before, imagined[:, h] - last
            if self.cfg.touch_path:  # the nearest point of the path; moves capped at its length
                gap = (nearest_on_path(before, gripper[:, h], position) - position).norm(dim=-1)
                move = move * (path.norm(dim=-1) / move.norm(dim=-1).clamp(min=1e-9)).clamp(
                    max=1)[:, None]
            else:
                gap = torch.minimum((gripper[:, h] - position).norm(dim=-1),
                                    (before - position).norm(dim=-1))
            position = position + (gap < self.cfg.touch_radius)[:, None] * move
            kept.append(position)
            before, last = gripper[:, h], imagined[:, h]
        return torch.cat([proprio[..., :4], torch.stack(kept, 1), proprio[..., 7:]], -1)

    def crossing(self, proprio: torch.Tensor) -> torch.Tensor:
        """How far (m) the imagined gripper's path runs below CLEAR_HEIGHT where it passes
        within CLEAR_RADIUS of the object, summed over the imagined steps: (N,)."""
        gripper, objects = proprio[..., :3], proprio[..., 4:7]
        before = torch.cat([self.proprio[:, None, :3].expand(len(proprio), 1, 3),
                            gripper[:, :-1]], 1)
        start = torch.cat([self.proprio[:, None, 4:7].expand(len(proprio), 1, 3),
                           objects[:, :-1]], 1)  # the object where each step starts
        nearest = nearest_on_path(before, gripper, start, dims=2)  # seen from above
        near = (nearest[..., :2] - start[..., :2]).norm(dim=-1) < CLEAR_RADIUS
        return ((CLEAR_HEIGHT - nearest[..., 2]).clamp(min=0) * near).sum(1)

    def imagine(self, actions: torch.Tensor) -> torch.Tensor:
        """Imagined tokens (N, H, P, D) of planned actions (N, H, A)."""
        return self.rollout(actions)[0]

    def distances(self, z: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Distance to the goal (N, H) of imagined tokens (N, H, P, D) and proprio (N, H, S)."""
        energy = self.cfg.latent_weight * token_distance(z, self.goal, self.cfg.distance,
                                                         self.cfg.scales)
        proprio_weight = self.cfg.hold_proprio_weight if self.holding else self.cfg.proprio_weight
        if proprio_weight > 0:
            gripper = (proprio[..., :3] - self.goal_proprio[:3].to(proprio)).norm(dim=-1)
            energy = energy + proprio_weight * gripper
        if self.cfg.contact_weight > 0:
            energy = energy + self.cfg.contact_weight * self.reach(proprio)
        if self.cfg.object_weight > 0:
            placed = (self.contact_point(proprio) - self.goal_contact.to(proprio)).norm(dim=-1)
            energy = energy + self.cfg.object_weight * placed
        return energy

    def contact_point(self, proprio: torch.Tensor) -> torch.Tensor | None:
        """The contact point (..., 3) of imagined states (..., S): the imagined gripper + the
        offset a held object sits at (carry), imagined at every step, or as read from the
        current image."""
        if self.held_offset is not None:
            return proprio[..., :3] + self.held_offset.to(proprio)
        if self.predictor.object_state:
            return proprio[..., 4:7]
        return None if self.contact is None else self.contact.to(proprio).expand(
            *proprio.shape[:-1], 3)

    def reach(self, proprio: torch.Tensor) -> torch.Tensor:
        """The contact term's distance (m), (...,), from the imagined gripper to the contact
        point (behind it for a pushed object), or to the point above on the approach cone."""
        contact = self.contact_point(proprio)
        target = contact if self.behind is None else contact + self.behind.to(contact)
        if self.cfg.approach_slope > 0:  # lifted until the gripper is above the point
            aside = (proprio[..., :2] - target[..., :2]).norm(dim=-1, keepdim=True)
            lift = (self.cfg.approach_slope * aside).clamp(max=self.cfg.approach_height)
            target = target + F.pad(lift, (2, 0))
        return (proprio[..., :3] - target).norm(dim=-1)

    def per_step(self, actions: torch.Tensor) -> torch.Tensor:
        """Distance of each imagined step to the goal: (N, H)."""
        return self.distances(*self.rollout(actions))

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """Energies (N,) of planned actions (N, H, A)."""
        z, proprio = self.rollout(actions)
        distances = self.distances(z, proprio)
        clear = (self.cfg.clear_weight * self.crossing(proprio)
                 if self.cfg.clear_weight > 0 and self.pushed_home else 0)
        if self.cfg.weighting == "uniform" or self.holding:
            return distances.mean(dim=1) + clear
        energy = distances[:, -1] + clear
        if self.cfg.contact_every_step and self.cfg.contact_weight > 0:
            reach = self.reach(proprio)  # the last step's reach -> the mean over the steps
            energy = energy + self.cfg.contact_weight * (reach.mean(dim=1) - reach[:, -1])
        return energy
