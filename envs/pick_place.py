"""Pick-and-place: grasp a cube and hold it at a goal position, possibly in the air.

Version history:
    v0: cube (4 cm) starts in x in [-0.15, 0.15], y in [-0.12, 0.08] m; the goal centre is
        in x in [-0.15, 0.15], y in [-0.12, 0.1], z in [0.02, 0.2] m, at least 15 cm from
        the cube (Meta-World v3 pick-place: goal z up to 0.3 m, goals >= 15 cm away).
        Success: cube centre within 7 cm of the goal (Meta-World v3's threshold).
        Budget: 60 control steps.
"""

from __future__ import annotations

import numpy as np

from envs import task as T

CUBE_HALF = 0.02  # m
_START_LOW = np.array([-0.15, -0.12])
_START_HIGH = np.array([0.15, 0.08])
_GOAL_LOW = np.array([-0.15, -0.12, CUBE_HALF])
_GOAL_HIGH = np.array([0.15, 0.1, 0.2])
_HOVER = 0.07  # m, TCP height above the cube centre while aligning


class PickPlace(T.Task):
    name = "pick_place"
    step_budget = 60
    success_threshold = 0.07
    expert_tolerance = 0.015
    object_body = "cube"

    def build(self, arena):
        cube = arena.worldbody.add("body", name="cube", pos=(0, 0, CUBE_HALF))
        cube.add("freejoint", name="cube")
        cube.add("geom", name="cube", type="box", size=(CUBE_HALF,) * 3,
                 rgba=(0.15, 0.35, 0.9, 1), mass=0.05)

    def initialize_episode(self, model, data, rng):
        T.place_hand(model, data, rng)
        start = np.array([*rng.uniform(_START_LOW, _START_HIGH), CUBE_HALF])
        data.joint("cube").qpos = (*start, 1, 0, 0, 0)
        return T.sample_apart(rng, _GOAL_LOW, _GOAL_HIGH, 0.15, start)

    def goal_state(self, data):
        return data.body("cube").xpos.copy()

    def expert_action(self, data, goal):
        """Hover over the cube, descend open, close, then carry it to the goal; stateless,
        so a dropped cube is picked up again."""
        hand = T.tcp(data)
        cube = data.body("cube").xpos.copy()
        xy_error = np.linalg.norm(hand[:2] - cube[:2])
        holding = (xy_error < 0.02 and abs(hand[2] - cube[2]) < 0.02
                   and T.gripper_gap(data) < 2 * CUBE_HALF + 0.006)
        if holding:
            target = np.array(goal, dtype=float)
            if hand[2] < 0.06 and np.linalg.norm(hand[:2] - goal[:2]) > 0.05:
                target[2] = max(target[2], 0.08)  # lift before carrying
            return T.move_toward(hand, target, 1.0)
        if xy_error < 0.01:
            if hand[2] - cube[2] < 0.006:
                return T.move_toward(hand, cube, 1.0)  # close on it
            return T.move_toward(hand, cube, -1.0)  # descend open
        if hand[2] < cube[2] + _HOVER - 0.03:
            return T.move_toward(hand, (*hand[:2], cube[2] + _HOVER), -1.0)
        return T.move_toward(hand, (*cube[:2], cube[2] + _HOVER), -1.0)
