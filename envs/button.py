"""Button: press a spring-loaded button down and hold it.

Version history:
    v0: the button stands at x in [-0.15, 0.15], y in [-0.1, 0.12] m; its cap travels
        4 cm and springs back when released; an indicator lamp on its base turns green
        while the press is within 2 cm of full travel. Success: cap within 2 cm of full
        travel (Meta-World v3's threshold). Budget: 40 control steps.
"""

from __future__ import annotations

import numpy as np

from envs import task as T

TRAVEL = 0.04  # m, cap travel
_BASE_HALF = (0.045, 0.045, 0.02)  # m
_CAP_RADIUS = 0.024  # m
_CAP_HALF_HEIGHT = 0.025  # m
_CAP_TOP = 2 * _BASE_HALF[2] + 2 * _CAP_HALF_HEIGHT  # m, cap top at rest
_RANGE_LOW = np.array([-0.15, -0.1])
_RANGE_HIGH = np.array([0.15, 0.12])
_LAMP_OFF = np.array([0.35, 0.08, 0.08, 1.0])
_LAMP_ON = np.array([0.1, 1.0, 0.2, 1.0])


class Button(T.Task):
    name = "button"
    step_budget = 40
    success_threshold = 0.02
    expert_tolerance = 0.006
    object_body = "cap"
    # the TCP where the closed fingertips touch the cap's top (the cap body is its centre)
    contact_offset = (0.0, 0.0, _CAP_HALF_HEIGHT + T.scene.TCP_HEIGHT)

    def build(self, arena):
        bx, by, bz = _BASE_HALF
        base = arena.worldbody.add("body", name="button_base", pos=(0, 0, 0))
        base.add("geom", name="button_base", type="box", size=_BASE_HALF, pos=(0, 0, bz),
                 rgba=(0.35, 0.35, 0.4, 1))
        base.add("geom", name="lamp", type="sphere", size=(0.012,), pos=(0, -by, 2 * bz),
                 rgba=_LAMP_OFF, contype=0, conaffinity=0)
        cap = base.add("body", name="cap", pos=(0, 0, 2 * bz + _CAP_HALF_HEIGHT))
        cap.add("joint", name="cap", type="slide", axis=(0, 0, 1), range=(-TRAVEL, 0),
                limited=True, stiffness=150.0, springref=0.0, damping=2.0)
        cap.add("geom", name="cap", type="cylinder", size=(_CAP_RADIUS, _CAP_HALF_HEIGHT),
                rgba=(0.9, 0.15, 0.15, 1), mass=0.02)
        arena.contact.add("exclude", body1="button_base", body2="cap")

    def initialize_episode(self, model, data, rng):
        T.place_hand(model, data, rng)
        model.body("button_base").pos[:2] = rng.uniform(_RANGE_LOW, _RANGE_HIGH)
        data.joint("cap").qpos = 0.0
        return np.array([TRAVEL])

    def goal_state(self, data):
        return -data.joint("cap").qpos.copy()  # press depth (m)

    def distance(self, data, goal):
        # to full travel, as Meta-World measures it; the goal is always a full press
        # (the soft joint limit lets the cap overshoot by a millimetre: clamp at 0)
        return max(0.0, float(TRAVEL + data.joint("cap").qpos[0]))

    def update_visuals(self, model, data):
        pressed = self.distance(data, None) <= self.success_threshold
        model.geom("lamp").rgba = _LAMP_ON if pressed else _LAMP_OFF

    def expert_action(self, data, goal):
        """Close the gripper, hover over the cap, and press it down past full travel."""
        hand = T.tcp(data)
        cap = data.body("cap").xpos
        hover = _CAP_TOP + 0.05
        if np.linalg.norm(hand[:2] - cap[:2]) < 0.01:
            press = _CAP_TOP - TRAVEL + T.scene.TCP_HEIGHT - 0.015
            return T.move_toward(hand, (*cap[:2], press), 1.0)
        if hand[2] < hover - 0.03:
            return T.move_toward(hand, (*hand[:2], hover), 1.0)
        return T.move_toward(hand, (*cap[:2], hover), 1.0)
