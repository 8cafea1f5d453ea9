"""Push: slide a puck across the table to a goal position.

Version history:
    v0: puck (r 3 cm, 3 cm tall) starts in x in [-0.15, 0.15], y in [-0.1, 0.1] m; the goal is in
        the same range at least 15 cm away (Meta-World v3 push: 10 x 10 cm object range,
        goals >= 15 cm away). Success: puck centre within 5 cm of the goal (Meta-World
        v3's threshold). Budget: 60 control steps.
"""

from __future__ import annotations

import numpy as np

from envs import task as T

# low and wide with low friction, so a push below its top never tips it over
PUCK_RADIUS = 0.03  # m
PUCK_HALF_HEIGHT = 0.015  # m
_RANGE_LOW = np.array([-0.15, -0.1])
_RANGE_HIGH = np.array([0.15, 0.1])
_PUSH_OFFSET = PUCK_RADIUS + 0.012 + 0.006  # m, pusher centre behind the puck centre
_HOVER_Z = 0.075  # m, TCP height that clears the puck
_PUSH_Z = 0.02  # m, TCP height while pushing


class Push(T.Task):
    name = "push"
    step_budget = 60
    success_threshold = 0.05
    expert_tolerance = 0.015
    object_body = "puck"

    def build(self, arena):
        puck = arena.worldbody.add("body", name="puck", pos=(0, 0, PUCK_HALF_HEIGHT))
        puck.add("freejoint", name="puck")
        puck.add("geom", name="puck", type="cylinder", size=(PUCK_RADIUS, PUCK_HALF_HEIGHT),
                 rgba=(0.85, 0.12, 0.12, 1), mass=0.1, friction=(0.5, 0.005, 0.0001))

    def initialize_episode(self, model, data, rng):
        T.place_hand(model, data, rng)
        start = rng.uniform(_RANGE_LOW, _RANGE_HIGH)
        data.joint("puck").qpos = (*start, PUCK_HALF_HEIGHT, 1, 0, 0, 0)
        goal = T.sample_apart(rng, _RANGE_LOW, _RANGE_HIGH, 0.15, start)
        return np.array([*goal, PUCK_HALF_HEIGHT])

    def goal_state(self, data):
        return data.body("puck").xpos.copy()

    def distance(self, data, goal):
        # planar: the puck's height does not change the task
        return float(np.linalg.norm(data.body("puck").xpos[:2] - goal[:2]))

    def expert_action(self, data, goal):
        """Close the gripper into a paddle, go behind the puck on the line to the goal and
        push along it; stateless, so it re-approaches whenever the puck slips off."""
        hand = T.tcp(data)
        puck = data.body("puck").xpos[:2]
        to_goal = goal[:2] - puck
        remaining = np.linalg.norm(to_goal)
        if remaining < 0.005:
            return T.move_toward(hand, hand, 1.0)
        u = to_goal / remaining
        behind = puck - u * _PUSH_OFFSET
        rel = hand[:2] - puck
        along = rel @ u
        lateral = np.linalg.norm(rel - along * u)
        if along < -0.02 and lateral < 0.015 and hand[2] < 0.045:
            target = behind + u * min(remaining, 0.03)
            return T.move_toward(hand, (*target, _PUSH_Z), 1.0)
        if np.linalg.norm(hand[:2] - behind) < 0.008:
            return T.move_toward(hand, (*behind, _PUSH_Z), 1.0)
        if hand[2] < _HOVER_Z - 0.02:  # lift before moving sideways over the puck
            return T.move_toward(hand, (*hand[:2], _HOVER_Z), 1.0)
        return T.move_toward(hand, (*behind, _HOVER_Z), 1.0)
