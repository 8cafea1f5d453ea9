"""The proprio and contact readers, their trainer, and the objective's gripper and contact
terms."""

import shutil

import pytest
import torch
from conftest import TINY_PREDICTOR, compose_config

import planners.mpc  # noqa: F401  (registers the mpc config schemas)
from planners.mpc import build_agent, run
from planners.objective import LatentObjective, ObjectiveConfig
from worldmodel.ac_predictor import ACConfig, ACPredictor
from worldmodel.checkpoint import load_checkpoint
from worldmodel.reader import ProprioReader, ReaderConfig
from worldmodel.train_reader import train
from worldmodel.weights import load_pretrained, load_reader

TINY_READER = ["model.channels=8", "model.keypoints=8", "model.hidden=16", "batch_size=8",
               "warmup_steps=1", "log_every=1", "val_fraction=0.25", "frame_stride=4"]


@pytest.fixture(scope="module")
def tiny_reader(tiny_play, tmp_path_factory):
    """(run dir, weights dir with the reader exported after 3 steps)."""
    out = tmp_path_factory.mktemp("reader")
    train(compose_config("train_reader", f"data_dir={tiny_play}", f"out_dir={out / 'run'}",
                         f"export_dir={out / 'weights'}", "steps=3", *TINY_READER))
    return out / "run", out / "weights"


def test_reader_reads_in_the_data_units_and_rejects_bad_images():
    reader = ProprioReader(ReaderConfig(channels=8, keypoints=8, hidden=16)).eval()
    reader.proprio_mean.fill_(2.0)
    reader.proprio_std.fill_(3.0)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert torch.allclose(reader.read(images), reader(images) * 3.0 + 2.0)
    with pytest.raises(ValueError, match=r"\(B, 64, 64, 3\)"):
        reader(images[:, :32])
    with pytest.raises(ValueError, match="divisible by 4"):
        ReaderConfig(image_size=62)


def test_train_reader_exports_a_loadable_reader_and_resumes(tiny_play, tiny_reader):
    run_dir, weights = tiny_reader
    reader = load_reader(weights)
    card = (weights / "reader.json").read_text()
    for key in ("goal_images_per_task", "position_cm_median", "train_reader"):
        assert key in card
    assert reader(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).shape == (1, 4)
    train(compose_config("train_reader", f"data_dir={tiny_play}", f"out_dir={run_dir}",
                         "steps=5", *TINY_READER))
    assert load_checkpoint(run_dir)["step"] == 5


@pytest.mark.parametrize("term, read, message", [
    ("proprio_weight", {"goal_proprio": torch.tensor([0.3, 0.4, 0.0, 0.5])},
     "push_offset > 0 needs the goal's proprio"),
    ("contact_weight", {"contact": torch.tensor([0.3, 0.4, 0.0])},
     "contact_weight > 0 needs the contact point"),
])
def test_reader_terms_add_the_distance_to_the_read_point(term, read, message):
    """The gripper term (to the goal gripper read from the goal image) and the contact term
    (to the contact point read from the current image): weight x distance in metres."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z, goal = torch.randn(4, 8), torch.randn(4, 8)
    cfg = ObjectiveConfig(latent_weight=0.0, **{term: 2.0})
    with pytest.raises(ValueError, match=message):
        LatentObjective(cfg, predictor, z=z, proprio=torch.zeros(4), goal=goal)
    objective = LatentObjective(cfg, predictor, z=z, proprio=torch.zeros(4), goal=goal, **read)
    proprio = torch.zeros(1, 1, 4)  # 0.5 m from the read point
    energy = objective.distances(z[None, None], proprio)
    assert energy.shape == (1, 1) and energy.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        ObjectiveConfig(**{term: -1.0})


def mpc_needing_a_reader(tiny_world_model, tmp_path, env: str, term: str, reader: str):
    """(weights dir without the reader, a short mpc config with `objective.<term>=1`); checks
    that planning without the reader says how to make it."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_world_model, weights)
    cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", f"env={env}",
                         "max_steps=4", "planner.num_samples=8", "planner.iterations=1",
                         "video=false", f"objective.{term}=1.0")
    with pytest.raises(FileNotFoundError, match="worldmodel.train_reader"):
        build_agent(cfg)
    with pytest.raises(ValueError, match=f"needs a {reader}"):
        build_agent(cfg, load_pretrained(weights, predictor=True))
    return weights, cfg


def test_mpc_plans_with_the_gripper_term(tiny_world_model, tiny_reader, tmp_path):
    weights, cfg = mpc_needing_a_reader(tiny_world_model, tmp_path, "button",
                                        "proprio_weight", "proprio reader")
    for name in ("reader.json", "reader.safetensors"):
        shutil.copy(tiny_reader[1] / name, weights / name)
    assert run(cfg, tmp_path / "run")["episodes"] == 1


def test_contact_reader_trains_loads_and_adds_the_contact_term(tiny_play, tiny_world_model,
                                                              tmp_path):
    weights, cfg = mpc_needing_a_reader(tiny_world_model, tmp_path, "drawer",
                                        "contact_weight", "contact reader")
    with pytest.raises(ValueError, match="target"):
        compose_config("train_reader", "target=object")
    evaluation = train(compose_config("train_reader", "target=contact", f"data_dir={tiny_play}",
                                      f"out_dir={tmp_path / 'run'}", f"export_dir={weights}",
                                      "steps=2", *TINY_READER))
    assert "goal_images" not in evaluation and "opening_median" not in evaluation["frames"]
    assert set(evaluation["frames_per_task"]) <= {"push", "pick_place", "drawer", "button"}
    model = load_pretrained(weights, predictor=True, contact_reader=True)
    assert model.reader is None and "contact reader" in (weights / "contact_reader.json"
                                                         ).read_text()
    assert model.contact_reader.read(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).shape == (1, 3)
    assert run(cfg, tmp_path / "mpc")["episodes"] == 1


def test_object_term_and_imagined_contact_point():
    """With a predictor that imagines the object state (proprio[4:7] = the contact point),
    the contact term uses the imagined point and the object term its distance to the goal's."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8,
                            proprio_dim=7)
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    assert predictor.object_state and not plain.object_state
    z, goal = torch.randn(4, 8), torch.randn(4, 8)
    cfg = ObjectiveConfig(latent_weight=0.0, contact_weight=2.0, object_weight=3.0)
    goal_contact = torch.tensor([0.3, 0.4, 1.0])
    for model, args in ((plain, {"contact": goal_contact}), (predictor, {})):
        with pytest.raises(ValueError, match="object_weight > 0 needs a predictor"):
            LatentObjective(cfg, model, z=z, proprio=torch.zeros(7), goal=goal, **args)
    objective = LatentObjective(cfg, predictor, z=z, proprio=torch.zeros(7), goal=goal,
                                goal_contact=goal_contact)
    state = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.3, 0.4, 0.0])[None, None]  # contact 0.5 m away
    energy = objective.distances(z[None, None], state)  # 2 x 0.5 + 3 x 1.0
    assert energy.item() == pytest.approx(4.0)


def test_approach_from_above_lifts_the_contact_target_beside_the_point():
    """approach_slope > 0: the contact term's target stands min(slope x horizontal distance,
    approach_height) above the contact point, so a gripper beside the point at its height
    scores worse than one above it, and the point itself still scores 0."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z = torch.randn(4, 8)
    contact = torch.tensor([0.1, 0.2, 0.05])

    def reach(gripper, **cone):
        cfg = ObjectiveConfig(latent_weight=0.0, contact_weight=1.0, **cone)
        objective = LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z,
                                    contact=contact)
        state = torch.tensor([*gripper, 0.0])[None, None]
        return objective.distances(z[None, None], state).item()

    beside, above = (0.13, 0.2, 0.05), (0.13, 0.2, 0.11)  # 3 cm aside, level / 6 cm up
    assert reach(beside) == pytest.approx(0.03) and reach(above) > reach(beside)
    cone = {"approach_slope": 2.0, "approach_height": 0.06}
    # the target stands 6 cm above the point: 3 cm from `above`, 6.7 cm from `beside`
    assert reach(above, **cone) == pytest.approx(0.03)
    assert reach(beside, **cone) == pytest.approx((0.03 ** 2 + 0.06 ** 2) ** 0.5)
    assert reach(tuple(contact.tolist()), **cone) == pytest.approx(0.0, abs=1e-6)
    far = (0.4, 0.2, 0.05)  # 30 cm aside: the lift is capped at 6 cm
    assert reach(far, **cone) == pytest.approx((0.3 ** 2 + 0.06 ** 2) ** 0.5)
    with pytest.raises(ValueError, match="approach_slope"):
        ObjectiveConfig(approach_slope=-1.0)


def test_hold_scores_the_whole_path_and_the_goal_gripper_once_the_goal_is_reached():
    """hold_radius > 0: a 'last' energy turns 'uniform' (and the goal-gripper term takes
    hold_proprio_weight) only when the contact point read now is within the radius of the
    goal's; before that, only the last imagined step counts and without the gripper term."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z = torch.randn(4, 8)
    goal_contact, goal_proprio = torch.tensor([0.1, 0.2, 0.0]), torch.tensor([0.5, 0.2, 0.0, 0])
    cfg = ObjectiveConfig(latent_weight=0.0, contact_weight=1.0, hold_radius=0.02,
                          hold_proprio_weight=2.0)
    with pytest.raises(ValueError, match="hold_radius or push_offset > 0 needs"):
        LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z, contact=goal_contact,
                        goal_proprio=goal_proprio)

    def energy(contact):
        objective = LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z,
                                    contact=contact, goal_contact=goal_contact,
                                    goal_proprio=goal_proprio)
        # imagine LatentObjective.rollout: the gripper 4 cm from the contact point, then on it
        grippers = torch.stack([contact + torch.tensor([0.04, 0, 0]), contact])
        proprio = torch.cat([grippers, torch.zeros(2, 1)], dim=1)[None]
        objective.rollout = lambda actions: (z[None, None].expand(1, 2, 4, 8), proprio)
        return objective.holding, objective(torch.zeros(1, 2, 4)).item()

    assert energy(torch.tensor([0.1, 0.3, 0.0])) == (False, pytest.approx(0.0))  # last step
    held, value = energy(torch.tensor([0.1, 0.21, 0.0]))  # held: the mean of both steps
    to_goal_gripper = [(torch.tensor(g) - goal_proprio[:3]).norm().item()
                       for g in ([0.14, 0.21, 0.0], [0.1, 0.21, 0.0])]
    expected = (0.04 + 2 * to_goal_gripper[0] + 0.0 + 2 * to_goal_gripper[1]) / 2
    assert held and value == pytest.approx(expected, rel=1e-5)


def test_hold_release_keeps_holding_a_reached_goal_until_it_is_that_far_off():
    """hold_release: a goal that looked reached at the last plan is held while the read
    contact point stays within hold_release of the goal's; a goal not reached before needs
    hold_radius."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z, goal_contact = torch.randn(4, 8), torch.tensor([0.1, 0.2, 0.0])

    def holding(off, was_reached, release=0.03):
        cfg = ObjectiveConfig(contact_weight=1.0, hold_radius=0.015, hold_release=release)
        return LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z,
                               contact=goal_contact + torch.tensor([off, 0, 0]),
                               goal_contact=goal_contact, was_reached=was_reached).holding

    assert holding(0.01, False) and not holding(0.02, False)  # first reach: hold_radius
    assert holding(0.02, True) and not holding(0.04, True)  # then released at 3 cm
    assert not holding(0.02, True, release=0.0)  # off: hold_radius throughout
    with pytest.raises(ValueError, match="hold_release"):
        ObjectiveConfig(hold_radius=0.015, hold_release=0.01)


def held_model_actions(actions, off, blocked=False, **cfg):
    """(reached, the model actions (1, H, 2, 4) of `actions` (1, H, 4) held for 2 control
    steps) with the read contact point `off` m from the goal's (hold_radius 1.5 cm)."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z, goal_contact = torch.randn(4, 8), torch.tensor([0.1, 0.2, 0.0])
    objective = LatentObjective(ObjectiveConfig(contact_weight=1.0, hold_radius=0.015, **cfg),
                                plain, z=z, proprio=torch.zeros(4), goal=z,
                                contact=goal_contact + torch.tensor([off, 0, 0]),
                                goal_contact=goal_contact, action_repeat=2, blocked=blocked)
    return objective.reached, objective.model_actions(actions).view(1, -1, 2, 4)


def test_hold_scale_slows_the_moves_only_while_a_reached_goal_is_held():
    """hold_scale: while the read contact point is within hold_radius of the goal's, the
    planned moves (dx, dy, dz of every control step) are scaled, the grip is not; elsewhere
    the actions are the planner's."""
    actions = torch.rand(1, 3, 4) * 2 - 1
    reached, held = held_model_actions(actions, 0.01, hold_scale=0.3)
    assert reached
    torch.testing.assert_close(held[..., :3], 0.3 * actions[:, :, None, :3].expand(1, 3, 2, 3))
    torch.testing.assert_close(held[..., 3], actions[:, :, None, 3].expand(1, 3, 2))
    reached, free = held_model_actions(actions, 0.05, hold_scale=0.3)
    assert not reached
    torch.testing.assert_close(free, actions[:, :, None].expand(1, 3, 2, 4))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="hold_scale"):
            ObjectiveConfig(hold_scale=bad)


def test_a_blocked_step_lifts_unless_a_reached_goal_is_held():
    """unstick_lift after a blocked step: the first model step's moves are a lift, the grip
    and later steps the planner's; while a reached goal is held (a pressed button) nothing
    is lifted."""
    actions = torch.rand(1, 3, 4) * 2 - 1
    _, lifted = held_model_actions(actions, 0.05, blocked=True, unstick_lift=0.5)
    torch.testing.assert_close(lifted[0, 0, :, :3], torch.tensor([[0.0, 0.0, 0.5]] * 2))
    torch.testing.assert_close(lifted[0, 0, :, 3], actions[0, 0, 3].expand(2))
    torch.testing.assert_close(lifted[:, 1:], actions[:, 1:, None].expand(1, 2, 2, 4))
    _, held = held_model_actions(actions, 0.01, blocked=True, unstick_lift=0.5)
    torch.testing.assert_close(held, actions[:, :, None].expand(1, 3, 2, 4))


def test_contact_every_step_scores_the_way_to_the_point_not_only_its_end():
    """contact_every_step: a 'last' energy takes the contact term's mean over the imagined
    steps, so of two plans ending on the point the one whose way stays nearer it wins."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z, contact = torch.randn(4, 8), torch.tensor([0.1, 0.2, 0.0])

    def energy(way, every):
        cfg = ObjectiveConfig(latent_weight=0.0, contact_weight=2.0, contact_every_step=every)
        objective = LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z,
                                    contact=contact)
        grippers = torch.stack([contact + torch.tensor([way, 0.0, 0.0]), contact])
        proprio = torch.cat([grippers, torch.zeros(2, 1)], dim=1)[None]
        objective.rollout = lambda actions: (z[None, None].expand(1, 2, 4, 8), proprio)
        return objective(torch.zeros(1, 2, 4)).item()

    assert energy(0.1, every=False) == energy(0.02, every=False) == pytest.approx(0.0)
    assert energy(0.1, every=True) == pytest.approx(2 * 0.1 / 2)
    assert energy(0.02, every=True) == pytest.approx(2 * 0.02 / 2)


def test_open_radius_keeps_the_fingers_open_until_the_gripper_is_near_the_object():
    """open_radius: where the goal image shows the fingers apart (around a cube) and the
    gripper stands farther than the radius from the contact point read now, every control
    step's grip is -1 in what is imagined and what is executed (the agent executes
    `model_actions`); nearer, or towards a goal with closed fingers, the plan is kept
    (keep_held: fingers holding something stay closed)."""
    plain = ACPredictor(ACConfig(dim=32, heads=2, depth=1, frameskip=2), num_patches=4,
                        feature_dim=8)
    z, contact = torch.randn(4, 8), torch.tensor([0.1, 0.2, 0.0])
    cfg = ObjectiveConfig(open_radius=0.03)
    holding_a_cube = torch.tensor([0.0, 0.0, 0.2, 0.04])  # the goal's gripper, gap 4 cm
    with pytest.raises(ValueError, match="open_radius > 0 needs the contact point"):
        LatentObjective(cfg, plain, z=z, proprio=torch.zeros(4), goal=z,
                        goal_proprio=holding_a_cube)
    actions = torch.full((1, 2, 4), 0.5)  # held for 2 control steps each

    def planned(gripper, goal_proprio=holding_a_cube, config=cfg, gap=0.0):
        proprio = torch.cat([contact + torch.tensor(gripper), torch.tensor([gap])])
        objective = LatentObjective(config, plain, z=z, proprio=proprio, goal=z,
                                    contact=contact, goal_proprio=goal_proprio,
                                    action_repeat=2)
        return objective.model_actions(actions).view(1, 2, 2, 4)

    far = planned([0.0, 0.0, 0.05])
    assert (far[..., 3] == -1).all() and (far[..., :3] == 0.5).all()
    assert (planned([0.0, 0.02, 0.0]) == 0.5).all()
    assert (planned([0.0, 0.0, 0.05], goal_proprio=torch.tensor([0.0, 0.0, 0.2, 0.002]))
            == 0.5).all()  # the goal's fingers closed: pushing, pulling or pressing
    assert (planned([0.0, 0.0, 0.05], config=ObjectiveConfig()) == 0.5).all()  # off
    keep = ObjectiveConfig(open_radius=0.03, keep_held=True)  # fingers around a cube, read far
    assert (planned([0.0, 0.0, 0.05], config=keep, gap=0.04)[..., 3] == 1).all()
    assert (planned([0.0, 0.0, 0.05], config=keep, gap=0.07)[..., 3] == -1).all()  # wide open
    with pytest.raises(ValueError, match="open_radius"):
        ObjectiveConfig(open_radius=-0.01)


def test_carry_moves_a_held_object_with_the_gripper():
    """carry: while the fingers hold something, the object term takes the object at the
    imagined gripper + the offset it is held at, not at the imagined contact point, and
    scores every imagined step wherever the object is (held: carried as held); with open
    fingers, or without carry, the imagined point and the last step count."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8,
                            proprio_dim=7)
    z, read = torch.randn(4, 8), torch.tensor([0.1, 0.2, 0.0])  # read 3 cm off (in the air)
    offset = torch.tensor([0.0, 0.0, -0.01])
    holding_a_cube = torch.tensor([0.0, 0.0, 0.2, 0.04])  # the goal's gripper, gap 4 cm

    def energy(gap, carry=True, goal_contact=(0.1, 0.2, 0.03)):
        cfg = ObjectiveConfig(latent_weight=0.0, object_weight=1.0, hold_radius=0.015,
                              open_radius=0.02, keep_held=True, carry=carry)
        proprio = torch.tensor([0.1, 0.2, 0.04, gap, *read])  # the gripper 1 cm above the goal
        objective = LatentObjective(cfg, predictor, z=z, proprio=proprio, goal=z,
                                    contact=read, goal_contact=torch.tensor(goal_contact),
                                    goal_proprio=holding_a_cube, held_offset=offset)
        grippers = torch.tensor([[0.1, 0.2, 0.04], [0.1, 0.25, 0.04]])  # stays, moves 5 cm
        imagined = torch.cat([grippers, torch.full((2, 1), gap), read.expand(2, 3)], dim=1)
        objective.rollout = lambda actions: (z[None, None].expand(1, 2, 4, 8), imagined[None])
        return objective.holding, objective(torch.zeros(1, 2, 4)).item()

    assert energy(0.04) == (True, pytest.approx(0.05 / 2))  # held: the mean of 0 and 5 cm
    assert energy(0.04, goal_contact=(0.1, 0.3, 0.03)) == (True, pytest.approx((0.1 + 0.05) / 2))
    assert energy(0.07) == (False, pytest.approx(0.03))  # wide open: the imagined point, last
    assert energy(0.04, carry=False) == (False, pytest.approx(0.03))
    with pytest.raises(ValueError, match="carry needs keep_held"):
        ObjectiveConfig(carry=True, open_radius=0.02)


def test_push_offset_targets_behind_the_object_on_its_line_to_the_goal():
    """push_offset: with the goal's fingers closed and the object low on the table, the
    contact term's target stands push_offset behind the read object, on the line from its
    goal through it; near its goal, that far from it on the gripper's side, holding (every
    imagined step scored), or push_clear from it where set; a high contact point (drawer,
    button) or a goal with the fingers apart (pick-and-place) keeps the point; push_scale
    slows the planned moves within push_near of the goal."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8,
                            proprio_dim=7)
    z, gripper = torch.randn(4, 8), torch.tensor([0.0, -0.1, 0.1])

    def reach_to(point, puck=(0.0, 0.0, 0.015), goal=(0.2, 0.0, 0.015), goal_gap=0.0,
                 clear=0.0):
        cfg = ObjectiveConfig(latent_weight=0.0, contact_weight=1.0, push_offset=0.05,
                              push_clear=clear)
        contact = torch.tensor(puck)
        objective = LatentObjective(cfg, predictor, z=z, goal=z,
                                    proprio=torch.cat([gripper, torch.zeros(1), contact]),
                                    contact=contact, goal_contact=torch.tensor(goal),
                                    goal_proprio=torch.tensor([0.0, 0.0, 0.1, goal_gap]))
        return objective.reach(torch.tensor([*point, 0.0, *puck])).item(), objective.holding

    at = pytest.approx(0.0, abs=1e-6)  # the gripper stands at the target
    assert reach_to((-0.05, 0.0, 0.015)) == (at, False)  # behind, away from the goal
    near = reach_to((0.0, -0.05, 0.015), goal=(0.03, 0.0, 0.015))
    assert near == (at, True)  # near the goal: on the gripper's side, holding
    assert reach_to((0.0, -0.1, 0.015), goal=(0.03, 0.0, 0.015), clear=0.1) == (at, True)
    assert reach_to((-0.05, 0.0, 0.015), clear=0.1) == (at, False)  # far: push_offset behind
    assert reach_to((0.0, 0.0, 0.06), puck=(0.0, 0.0, 0.06)) == (at, False)  # high: the point
    assert reach_to((0.0, 0.0, 0.015), goal_gap=0.04) == (at, False)  # a grasp: the point
    with pytest.raises(ValueError, match="push_clear or clear_weight needs push_offset"):
        ObjectiveConfig(push_clear=0.1)
    # push_scale: the planned moves (not the grip) scaled while the object is near its goal
    actions = torch.rand(1, 2, 4) * 2 - 1
    for goal, scale in (((0.05, 0.0, 0.015), 0.5), ((0.2, 0.0, 0.015), 1.0)):
        objective = LatentObjective(
            ObjectiveConfig(contact_weight=1.0, push_offset=0.05, push_scale=0.5), predictor,
            z=z, goal=z, proprio=torch.cat([gripper, torch.zeros(4)]),
            contact=torch.tensor([0.0, 0.0, 0.015]), goal_contact=torch.tensor(goal),
            goal_proprio=torch.zeros(4))
        moved = objective.model_actions(actions)
        torch.testing.assert_close(moved[..., :3], scale * actions[..., :3])
        torch.testing.assert_close(moved[..., 3], actions[..., 3])
    with pytest.raises(ValueError, match="push_scale < 1 needs push_offset"):
        ObjectiveConfig(push_scale=0.5)
    with pytest.raises(ValueError, match="push_scale"):
        ObjectiveConfig(push_offset=0.05, push_scale=0.0)
    with pytest.raises(ValueError, match="push_offset > 0 needs the contact points"):
        LatentObjective(ObjectiveConfig(push_offset=0.05), predictor, z=z, goal=z,
                        proprio=torch.zeros(7), goal_proprio=torch.zeros(4))


def test_home_lift_lifts_off_a_pushed_object_at_its_goal():
    """home_lift: with a pushed object read within PUSHED of its goal and the gripper low
    over it, the first model step is a lift with the fingers kept at their gap (later steps
    the planner's); a gripper high above it, beside it, or an object still to be pushed is
    left to the plan."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8)
    z, puck = torch.randn(4, 8), torch.tensor([0.0, 0.0, 0.015])
    actions = torch.rand(1, 2, 4) * 2 - 1

    def planned(gripper, goal):
        objective = LatentObjective(
            ObjectiveConfig(contact_weight=1.0, push_offset=0.05, home_lift=0.5), predictor,
            z=z, goal=z, proprio=torch.tensor([*gripper, 0.049]), contact=puck,
            goal_contact=torch.tensor(goal), goal_proprio=torch.zeros(4))
        return objective.model_actions(actions)

    lifted = planned((0.01, 0.0, 0.044), goal=(0.02, 0.0, 0.015))  # on the puck's top
    torch.testing.assert_close(lifted[0, 0, :3], torch.tensor([0.0, 0.0, 0.5]))
    assert lifted[0, 0, 3].item() == pytest.approx(1 - 2 * 0.049 / 0.07)  # a 4.9 cm gap kept
    torch.testing.assert_close(lifted[:, 1:], actions[:, 1:])
    for gripper, goal in (((0.01, 0.0, 0.1), (0.02, 0.0, 0.015)),  # high above it
                          ((0.1, 0.0, 0.044), (0.02, 0.0, 0.015)),  # 10 cm beside it
                          ((0.01, 0.0, 0.044), (0.2, 0.0, 0.015))):  # still to be pushed
        torch.testing.assert_close(planned(gripper, goal), actions)
    with pytest.raises(ValueError, match="home_lift > 0 needs push_offset"):
        ObjectiveConfig(home_lift=0.5)
    with pytest.raises(ValueError, match="home_lift"):
        ObjectiveConfig(push_offset=0.05, home_lift=1.5)


def kept_object(cfg, proprio, grippers, objects):
    """The object positions (H, 3) an objective keeps of a predictor imagining `grippers` and
    `objects` (H, 3) from the state `proprio` (7,)."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8,
                            proprio_dim=7)
    z = torch.randn(4, 8)
    imagined = torch.cat([grippers, torch.zeros(len(grippers), 1), objects], dim=1)[None]
    predictor.imagine = lambda cache, z, proprio, actions: (
        z[:, None].expand(1, len(grippers), 4, 8), imagined)
    objective = LatentObjective(cfg, predictor, z=z, goal=z, proprio=proprio)
    return objective.rollout(torch.zeros(1, len(grippers), 4))[1][0, :, 4:7]


def test_touch_radius_moves_the_imagined_object_only_near_the_gripper():
    """touch_radius: an imagined step moves the object only if the imagined gripper starts
    or ends it within the radius; farther moves are dropped, the position kept."""
    grippers = torch.tensor([[0.03, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.5, 0.0]])
    objects = torch.tensor([[0.06, 0.0, 0.0], [0.07, 0.0, 0.0], [0.17, 0.0, 0.0]])

    def moved(radius):
        return kept_object(ObjectiveConfig(touch_radius=radius),
                           torch.tensor([0, 0, 0, 0, 0.02, 0, 0]), grippers, objects)

    # step 1 starts 3 cm from the object, step 2 both ends 43 cm and more away
    assert torch.allclose(moved(0.08), objects[[0, 1, 1]])
    assert torch.equal(moved(0.0), objects)
    with pytest.raises(ValueError, match="touch_radius or clear_weight > 0 needs a predictor"):
        LatentObjective(ObjectiveConfig(touch_radius=0.08),
                        ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4,
                                    feature_dim=8, proprio_dim=4),
                        z=torch.randn(4, 8), goal=torch.randn(4, 8), proprio=torch.zeros(4))


def test_touch_path_moves_the_imagined_object_where_the_gripper_passes_and_no_farther():
    """touch_path: a step moves the object if the gripper's path passes within touch_radius
    of it (both ends may be far), by at most the length of that path."""
    # step 1 sweeps from x=-0.2 to x=0.2 past the object at the origin, 3 cm away, and the
    # predictor moves it 0.5 m: kept 0.4 m (the path); step 2 passes 20 cm from it: not
    # moved; step 3 ends 3 cm from it and moves it 1 cm: moved
    grippers = torch.tensor([[0.2, 0.03, 0.0], [0.2, 0.23, 0.0], [0.4, 0.03, 0.0]])
    objects = torch.tensor([[0.5, 0.0, 0.0], [0.6, 0.0, 0.0], [0.61, 0.0, 0.0]])

    def moved(touch_path):
        return kept_object(ObjectiveConfig(touch_radius=0.05, touch_path=touch_path),
                           torch.tensor([-0.2, 0.03, 0, 0, 0, 0, 0]), grippers, objects)

    assert torch.equal(moved(False)[:2], torch.zeros(2, 3))  # the ends are 20 cm away
    assert torch.allclose(moved(True), torch.tensor([[0.4, 0, 0], [0.4, 0, 0], [0.41, 0, 0]]))
    with pytest.raises(ValueError, match="touch_path needs touch_radius"):
        ObjectiveConfig(touch_path=True)


def test_object_state_windows_predictor_and_planning(tiny_play, tiny_world_model, tmp_path):
    """train_ac object_state=true: windows carry the contact point after the proprio, the
    exported predictor imagines it (reported against copy-last), and planning with it reads
    the contact point from each image (a contact reader is required)."""
    import numpy as np

    import envs
    from envs.dataset import ActionWindows, EpisodeDataset
    from planners.energy_check import run as energy_check
    from worldmodel.train_ac import train as train_ac

    data = EpisodeDataset(tiny_play)
    windows = ActionWindows(data, 3, frameskip=2, object_state=True)
    ref, rows = windows._rows(5)
    pose = data.arrays(ref.shard)["object_pose"][rows]
    offset = envs.task_class(ref.meta["task"])().contact_offset
    np.testing.assert_allclose(windows[5]["proprio"][:, 4:], pose[:, :3] + offset, atol=1e-6)
    assert windows[5]["proprio"].shape == (3, 7)

    weights = tmp_path / "weights"
    shutil.copytree(tiny_world_model, weights)
    evaluation = train_ac(compose_config(
        "train_ac", f"data_dir={tiny_play}", f"encoder_dir={weights}", "object_state=true",
        f"out_dir={tmp_path / 'ac'}", "steps=2", f"export_dir={weights}", *TINY_PREDICTOR))
    moved = evaluation["object_state"]["moved"]
    assert len(moved["predictor_median_cm"]) == len(evaluation["horizon"])
    cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", "env=push",
                         "max_steps=4", "planner.num_samples=8", "planner.iterations=1",
                         "video=false", "objective.object_weight=1.0")
    with pytest.raises(ValueError, match="imagines the object state"):
        build_agent(cfg, load_pretrained(weights, predictor=True))
    train(compose_config("train_reader", "target=contact", f"data_dir={tiny_play}",
                         f"out_dir={tmp_path / 'reader'}", f"export_dir={weights}",
                         "steps=1", *TINY_READER))
    assert run(cfg, tmp_path / "mpc")["episodes"] == 1
    # the energy check starts such a predictor from the contact point read from the image
    check = energy_check(compose_config(
        "energy_check", f"weights_dir={weights}", "planning=plain", "tasks=[push]", "states=1",
        "samples=8", "objective.object_weight=1.0"))["tasks"]["push"]["mean"]
    assert np.isfinite(check["rho_world_model_true"]) and np.isfinite(check["gripper_r2"])


def test_clear_weight_counts_low_paths_near_a_pushed_object_at_its_goal():
    """clear_weight: near its goal, a gripper path passing low (below CLEAR_HEIGHT) within
    CLEAR_RADIUS of a pushed object adds how far it runs below; high or far paths add
    nothing, and nothing is added while the object is still away from its goal."""
    predictor = ACPredictor(ACConfig(dim=32, heads=2, depth=1), num_patches=4, feature_dim=8,
                            proprio_dim=7)
    z, puck = torch.randn(4, 8), torch.tensor([0.0, 0.0, 0.015])

    def energy(start, end, goal=(0.03, 0.0, 0.015), weight=1.0):
        cfg = ObjectiveConfig(latent_weight=0.0, push_offset=0.05, touch_radius=0.06,
                              clear_weight=weight)
        imagined = torch.tensor([[*end, 0.0, *puck]])[None]
        predictor.imagine = lambda cache, z, proprio, actions: (z[:, None], imagined)
        objective = LatentObjective(cfg, predictor, z=z, goal=z,
                                    proprio=torch.tensor([*start, 0.0, *puck]),
                                    contact=puck, goal_contact=torch.tensor(goal),
                                    goal_proprio=torch.tensor([0.0, 0.0, 0.1, 0.0]))
        return objective(torch.zeros(1, 1, 4)).item()

    across = (0.03, -0.1, 0.02), (0.03, 0.1, 0.02)  # 3 cm from the puck's centre, 2 cm high
    assert energy(*across) == pytest.approx(0.04)
    assert energy(*across, weight=0.0) == 0
    assert energy((0.03, -0.1, 0.08), (0.03, 0.1, 0.08)) == 0  # over the top
    assert energy((0.1, -0.1, 0.02), (0.1, 0.1, 0.02)) == 0  # 10 cm away
    assert energy(*across, goal=(0.2, 0.0, 0.015)) == 0  # still to be pushed there
    with pytest.raises(ValueError, match="clear_weight needs push_offset"):
        ObjectiveConfig(clear_weight=1.0)
