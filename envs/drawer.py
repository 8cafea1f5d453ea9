"""Drawer: pull a drawer open to a goal opening by hooking its handle.

Version history:
    v0: the cabinet stands at x in [-0.12, 0.12], y in [0.1, 0.16] m, its drawer closed;
        the goal opening is in [0.15, 0.2] m (Meta-World v3 drawer-open pulls 20 cm).
        Success: opening within 3 cm of the goal opening (Meta-World v3's threshold).
        Budget: 50 control steps.
"""

from __future__ import annotations

import numpy as np

from envs import task as T

_CABINET_HALF = (0.09, 0.09, 0.06)  # m
_CABINET_LOW = np.array([-0.12, 0.1])
_CABINET_HIGH = np.array([0.12, 0.16])
_OPENING_RANGE = (0.15, 0.2)  # m, goal openings
_MAX_OPENING = 0.22  # m, drawer travel
_HANDLE_OFFSET = 0.06  # m, handle bar axis in front of the cabinet face
_HANDLE_RADIUS = 0.008  # m
_HANDLE_Z = 0.06  # m, handle height above the table
_FRONT_THICKNESS = 0.012  # m, the drawer's front panel, in front of the cabinet face
# hook point: the middle of the 4 cm gap between the bar and the front panel
_HOOK = 0.5 * (_HANDLE_OFFSET - _FRONT_THICKNESS + _HANDLE_RADIUS)
_HOVER_Z = _HANDLE_Z + 0.08  # m


class Drawer(T.Task):
    name = "drawer"
    step_budget = 50
    success_threshold = 0.03
    expert_tolerance = 0.008
    object_body = "drawer"
    # the hook point (the drawer body's origin is the bottom of the cabinet face)
    contact_offset = (0.0, _HOOK - _HANDLE_OFFSET, _HANDLE_Z)

    def build(self, arena):
        cx, cy, cz = _CABINET_HALF
        cabinet = arena.worldbody.add("body", name="cabinet", pos=(0, 0.13, 0))
        cabinet.add("geom", name="cabinet", type="box", size=_CABINET_HALF, pos=(0, 0, cz),
                    rgba=(0.2, 0.55, 0.3, 1))
        drawer = cabinet.add("body", name="drawer", pos=(0, -cy, 0))
        drawer.add("joint", name="drawer", type="slide", axis=(0, -1, 0),
                   range=(0, _MAX_OPENING), limited=True, damping=10.0, frictionloss=0.3)
        # the drawer's box hides inside the cabinet while closed
        drawer.add("geom", name="drawer_box", type="box",
                   size=(cx - 0.01, cy - 0.005, cz - 0.015), pos=(0, cy, cz - 0.005),
                   rgba=(0.85, 0.8, 0.55, 1), mass=0.5)
        drawer.add("geom", name="drawer_front", type="box",
                   size=(cx - 0.005, _FRONT_THICKNESS / 2, cz - 0.008),
                   pos=(0, -_FRONT_THICKNESS / 2, cz), rgba=(0.6, 0.85, 0.6, 1), mass=0.1)
        handle_y = -_HANDLE_OFFSET
        drawer.add("geom", name="handle", type="capsule", fromto=(-0.045, handle_y, _HANDLE_Z,
                   0.045, handle_y, _HANDLE_Z), size=(_HANDLE_RADIUS,),
                   rgba=(0.95, 0.85, 0.1, 1), mass=0.02)
        for x in (-0.045, 0.045):
            drawer.add("geom", type="capsule", fromto=(x, handle_y, _HANDLE_Z, x, 0, _HANDLE_Z),
                       size=(0.006,), rgba=(0.95, 0.85, 0.1, 1), mass=0.01)
        drawer.add("site", name="handle", pos=(0, handle_y, _HANDLE_Z), size=(0.005,),
                   group=4)
        arena.contact.add("exclude", body1="cabinet", body2="drawer")

    def initialize_episode(self, model, data, rng):
        T.place_hand(model, data, rng)
        model.body("cabinet").pos[:2] = rng.uniform(_CABINET_LOW, _CABINET_HIGH)
        data.joint("drawer").qpos = 0.0
        return np.array([rng.uniform(*_OPENING_RANGE)])

    def goal_state(self, data):
        return data.joint("drawer").qpos.copy()

    def expert_action(self, data, goal):
        """Lower the closed gripper between the handle bar and the drawer face, then pull
        until the drawer is at the goal opening."""
        hand = T.tcp(data)
        handle = data.site("handle").xpos
        hook = handle + np.array([0.0, _HOOK, 0.0])
        in_hook = (abs(hand[0] - handle[0]) < 0.035 and handle[1] < hand[1] < handle[1] + 0.06
                   and hand[2] < _HANDLE_Z + 0.025)
        if in_hook:
            still_to_pull = goal[0] - data.joint("drawer").qpos[0]
            return T.move_toward(hand, hook - np.array([0.0, still_to_pull, 0.0]), 1.0)
        if np.linalg.norm(hand[:2] - hook[:2]) < 0.008:
            return T.move_toward(hand, hook, 1.0)
        if hand[2] < _HOVER_Z - 0.03:
            return T.move_toward(hand, (*hand[:2], _HOVER_Z), 1.0)
        return T.move_toward(hand, (*hook[:2], _HOVER_Z), 1.0)
