"""The shared scene: a table, a Cartesian two-finger gripper, lights and cameras.

Every task builds on `build_arena()` and adds its own objects. The world frame has its
origin at the centre of the table top, x to the right, y away from the front camera and
z up; all lengths are metres.

The gripper is a hand on three slide joints driven by position servos (gravity
compensated), with two fingers that close along x. Its tool-centre point (TCP, site
`tcp`) sits between the finger pads, `TCP_HEIGHT` above the fingertips, so a grasped 4 cm
cube has its centre at the TCP.

Rendering is fast on a CPU because shadows and multisampling are off
(`<quality shadowsize="0" offsamples="0"/>`, `castshadow="false"`; ANCHORS.md measured
about 60 frames/s with them at 64x64), and because the scene draws few, coarse geoms:
Mesa's llvmpipe costs about 15-25 us per drawn geom at 64x64 (an empty scene renders at
about 15,000 frames/s).
"""

from __future__ import annotations

from dm_control import mjcf

TIMESTEP = 0.005  # s, physics step (contact solref time constant 0.01 = 2 steps)
N_SUBSTEPS = 16  # physics steps per control step (0.08 s, 12.5 Hz control)
ACTION_SCALE = 0.03  # m, hand displacement commanded by a unit action per control step
TCP_HEIGHT = 0.015  # m, TCP above the fingertips
MAX_FINGER = 0.035  # m, travel of each finger; the gap opens to 2 * MAX_FINGER
# TCP workspace (m): the servos' targets are clipped to it
WORKSPACE_LOW = (-0.25, -0.28, TCP_HEIGHT + 0.002)
WORKSPACE_HIGH = (0.25, 0.25, 0.30)
TABLE_HALF = (0.34, 0.34)  # m, half extents of the table top
CAMERAS = ("front", "side", "top", "wide")  # "front" is the default camera

_FINGER_HALF = (0.006, 0.012, 0.025)  # m, finger box half sizes (x, y, z)
_HAND_KP = 1500.0  # N/m, hand servo stiffness
_HAND_FORCE = 30.0  # N, hand servo force limit per axis
_FINGER_KP = 400.0  # N/m, finger servo stiffness (squeeze ~ kp * gap error)
_FINGER_FORCE = 12.0  # N, finger force limit


def build_arena() -> mjcf.RootElement:
    """The scene every task shares, as a `dm_control.mjcf` model to add objects to."""
    arena = mjcf.RootElement(model="arena")
    arena.compiler.angle = "radian"
    arena.option.timestep = TIMESTEP
    arena.option.integrator = "implicitfast"
    arena.option.cone = "elliptic"
    arena.option.impratio = 10  # stiffer friction: grasped objects do not slip
    arena.visual.quality.shadowsize = 0
    arena.visual.quality.offsamples = 0
    arena.visual.quality.numquads = 1  # flat-coloured boxes need one quad per face
    arena.visual.quality.numslices = 16  # cylinders: smooth enough at 256 px
    arena.visual.quality.numstacks = 4
    arena.visual.map.znear = 0.01
    getattr(arena.visual, "global").offwidth = 512
    getattr(arena.visual, "global").offheight = 512
    arena.visual.headlight.ambient = (0.3, 0.3, 0.3)
    arena.visual.headlight.diffuse = (0.35, 0.35, 0.35)
    arena.visual.headlight.specular = (0.0, 0.0, 0.0)
    arena.default.geom.friction = (1.0, 0.005, 0.0001)
    arena.default.geom.solref = (0.01, 1)

    world = arena.worldbody
    world.add("light", name="key_light", pos=(0.3, -0.5, 1.5), dir=(-0.2, 0.4, -1),
              castshadow=False, diffuse=(0.45, 0.45, 0.45), directional=True)
    # Only what a camera needs: software GL pays ~20 us per drawn geom, so there is no
    # floor or table legs (the background is the clear colour).
    # the table top is a plane: analytic plane contacts make mj_step 2-3x faster than a box
    # (cylinder-box needs general convex collision); rendered as a finite rectangle
    world.add("geom", name="table", type="plane", size=(*TABLE_HALF, 1.0),
              rgba=(0.78, 0.74, 0.66, 1), friction=(0.5, 0.005, 0.0001))
    # front: 55 degrees down, framing the objects' region (the gripper leaves its view above
    # z ~ 0.15 m and near the front edge); side: from the right; top: straight down;
    # wide: front's angle from further back, with the gripper in view over most of the
    # workspace (objects 0.67x as large). A goal-image energy on `front` is lowest with the
    # gripper out of view; see README "Where the zero-shot loss is".
    world.add("camera", name="front", pos=(0, -0.45, 0.6), xyaxes=(1, 0, 0, 0, 0.82, 0.57),
              fovy=45)
    world.add("camera", name="side", pos=(0.62, -0.02, 0.45), xyaxes=(0, 1, 0, -0.57, 0, 0.82),
              fovy=50)
    world.add("camera", name="wide", pos=(0, -0.6, 0.8), xyaxes=(1, 0, 0, 0, 0.82, 0.57),
              fovy=50)
    world.add("camera", name="top", pos=(0, -0.02, 0.8), xyaxes=(1, 0, 0, 0, 1, 0), fovy=42)

    _add_gripper(world, arena)
    return arena


def _add_gripper(world, arena) -> None:
    hand = world.add("body", name="hand", pos=(0, 0, 0), gravcomp=1)
    for axis, name in zip(((1, 0, 0), (0, 1, 0), (0, 0, 1)), ("hand_x", "hand_y", "hand_z")):
        i = "xyz".index(name[-1])
        joint = hand.add("joint", name=name, type="slide", axis=axis, damping=2.0,
                         range=(WORKSPACE_LOW[i], WORKSPACE_HIGH[i]), limited=True)
        arena.actuator.add("position", name=name, joint=joint, kp=_HAND_KP, dampratio=1.0,
                           ctrlrange=(WORKSPACE_LOW[i], WORKSPACE_HIGH[i]), ctrllimited=True,
                           forcerange=(-_HAND_FORCE, _HAND_FORCE), forcelimited=True)
    # The slide joints' zero is the world origin, so qpos is the TCP position.
    hand.add("site", name="tcp", pos=(0, 0, 0), size=(0.004,), rgba=(1, 1, 1, 0), group=4)
    finger_z = _FINGER_HALF[2] - TCP_HEIGHT  # finger centre above the TCP
    palm_z = finger_z + _FINGER_HALF[2] + 0.01
    hand.add("geom", name="palm", type="box", size=(0.048, 0.012, 0.01), pos=(0, 0, palm_z),
             rgba=(0.95, 0.55, 0.1, 1), mass=0.3)
    hand.add("geom", name="wrist", type="cylinder", size=(0.012, 0.03),
             pos=(0, 0, palm_z + 0.04), rgba=(0.3, 0.3, 0.32, 1), mass=0.1, contype=0,
             conaffinity=0)
    for side, sign in (("left", -1), ("right", 1)):
        finger = hand.add("body", name=f"finger_{side}", pos=(sign * _FINGER_HALF[0], 0, 0),
                          gravcomp=1)
        joint = finger.add("joint", name=f"finger_{side}", type="slide", axis=(sign, 0, 0),
                           range=(0, MAX_FINGER), limited=True, damping=1.0)
        finger.add("geom", name=f"finger_{side}", type="box", size=_FINGER_HALF,
                   pos=(0, 0, finger_z), rgba=(0.25, 0.25, 0.28, 1), mass=0.05,
                   friction=(1.5, 0.005, 0.0001))
        arena.actuator.add("position", name=f"finger_{side}", joint=joint, kp=_FINGER_KP,
                           dampratio=1.0, ctrlrange=(0, MAX_FINGER), ctrllimited=True,
                           forcerange=(-_FINGER_FORCE, _FINGER_FORCE), forcelimited=True)
    arena.contact.add("exclude", body1="hand", body2="finger_left")
    arena.contact.add("exclude", body1="hand", body2="finger_right")
    arena.contact.add("exclude", body1="finger_left", body2="finger_right")
