"""`python -m planners.mpc` end to end on a tiny world model, the objective, and how bad
input is answered."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from hydra.errors import MissingConfigException

import planners.mpc  # noqa: F401  (registers the mpc config schemas)
from planners.agent import prepare_image
from planners.mpc import build_agent, run
from worldmodel.weights import PRETRAINED_DIR, load_pretrained


def mpc_config(weights, *overrides):
    return compose_config("mpc", f"weights_dir={weights}", "planning=plain", "max_steps=10",
                          "planner.num_samples=12", "planner.iterations=2", *overrides)


def test_mpc_smoke_writes_video_plot_and_summary(tiny_world_model, tmp_path, capsys):
    summary = run(mpc_config(tiny_world_model, "env=button"), tmp_path)
    assert summary["episodes"] == 1 and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["median_plan_ms"] > 0
    for name in ("mpc_button_seed0.mp4", "energy_button_seed0.png", "mpc.json"):
        assert (tmp_path / name).stat().st_size > 0
    episode = json.loads((tmp_path / "mpc.json").read_text())["episodes"][0]
    assert episode["steps"] == 10 and len(episode["task_distance"]) == 11
    out = capsys.readouterr().out
    assert "success" in out and "ms per step" in out


def test_the_shipped_world_models_plan_with_the_shipped_settings(tmp_path):
    """`python -m planners.mpc env=...` as a fresh install runs it: the shipped weights, the
    camera they were trained on, two frames of context and the goal-gripper term."""
    cfg = compose_config("mpc", "env=button", "max_steps=8", "planner.num_samples=8",
                         "planner.iterations=1", "video=false", "verbose=false")
    assert cfg.env.cameras == ["wide"] and cfg.history == 2 and cfg.objective.proprio_weight > 0
    assert run(cfg, tmp_path)["episodes"] == 1
    for weights in (PRETRAINED_DIR, PRETRAINED_DIR / "scratch"):  # evaluate's two world models
        model = load_pretrained(weights, predictor=True, reader=True)
        assert model.camera == "wide" and model.reader is not None


@pytest.mark.parametrize("planning", ["object", "object_hold", "object_path",
                                      "object_path_free", "object_grasp", "object_grasp_held",
                                      "object_carry", "object_push", "object_touch",
                                      "object_clear", "object_steady", "object_unstick",
                                      "object_unstick_xy", "object_push_slow",
                                      "object_home_lift"])
def test_the_object_variant_plans_with_its_shipped_weights(tmp_path, planning):
    """planning=object: the separately reported variant's weights (worldmodel/pretrained/
    object: the shipped encoder and proprio reader, a predictor that imagines the contact
    point, a contact reader) and energy, whatever the working directory; planning=
    object_hold: the same with reaching from above and holding (the proprio reader is
    loaded for the goal-gripper term used only while holding); object_path: that with the
    contact term at every imagined step; object_path_free: that with no goal-gripper term
    while holding (and so no proprio reader); object_grasp: object_path with the fingers
    kept open on the way to a cube (the proprio reader reads whether the goal's fingers
    hold one), run on pick-and-place; object_grasp_held: that never letting a held cube go;
    object_carry: that carrying a held cube with the gripper; object_push: that pushing a
    puck from behind, the imagined object moved only near the gripper, run on push;
    object_touch: that moving it only along the gripper's path, leaving it clear at its goal;
    object_clear: that keeping the gripper above it there, and holding a reached goal longer;
    object_steady: that with slower moves while a reached goal is held; object_unstick: that
    lifting the gripper after a blocked step; object_unstick_xy: that judging blocked steps
    from horizontal motion only; object_push_slow: that pushing slower near the goal;
    object_home_lift: object_unstick_xy lifting off a puck pushed to its goal."""
    unstick = planning in ("object_unstick", "object_unstick_xy", "object_push_slow",
                           "object_home_lift")
    steady = planning == "object_steady" or unstick
    pushing = planning in ("object_push", "object_touch", "object_clear") or steady
    grasp = pushing or planning.startswith(("object_grasp", "object_carry"))
    env = "push" if pushing else "pick_place" if grasp else "drawer"
    cfg = compose_config("mpc", f"planning={planning}", f"env={env}", "max_steps=8",
                         "planner.num_samples=8", "planner.iterations=1", "video=false",
                         "verbose=false")
    assert Path(cfg.weights_dir) == PRETRAINED_DIR / "object"
    assert cfg.objective.object_weight > 0 and cfg.objective.contact_weight > 0
    hold = planning != "object"
    assert (cfg.objective.hold_radius > 0) == hold and (cfg.objective.proprio_weight == 0) == hold
    assert cfg.objective.contact_every_step == (planning not in ("object", "object_hold"))
    assert (cfg.objective.open_radius > 0) == grasp
    carry = planning == "object_carry" or pushing
    assert cfg.objective.keep_held == (planning == "object_grasp_held" or carry)
    assert cfg.objective.carry == carry
    assert (cfg.objective.push_offset > 0) == pushing == (cfg.objective.touch_radius > 0)
    touch = planning in ("object_touch", "object_clear") or steady
    assert cfg.objective.touch_path == touch == (cfg.objective.push_clear > 0)
    assert (cfg.objective.clear_weight > 0) == (planning == "object_clear" or steady) == (
        cfg.objective.hold_release > 0)
    assert (cfg.objective.hold_scale < 1) == steady
    assert (cfg.objective.unstick_lift > 0) == unstick
    assert cfg.objective.unstick_horizontal == (unstick and planning != "object_unstick")
    assert (cfg.objective.push_scale < 1) == (planning == "object_push_slow")
    assert (cfg.objective.home_lift > 0) == (planning == "object_home_lift")
    assert (cfg.objective.hold_proprio_weight > 0) == (
        planning in ("object_hold", "object_path") or grasp)
    assert run(cfg, tmp_path)["episodes"] == 1
    model = load_pretrained(cfg.weights_dir, predictor=True, reader=True, contact_reader=True)
    assert model.predictor.object_state and model.camera == "wide"
    assert model.card == load_pretrained().card  # the shipped encoder


def test_the_object_variants_scratch_baseline_differs_only_in_its_encoder():
    """worldmodel/pretrained/scratch/object: the random-init encoder, the object variant's
    readers, and a predictor trained on that encoder by the object variant's recipe."""
    scratch = load_pretrained(PRETRAINED_DIR / "scratch" / "object", predictor=True,
                              reader=True, contact_reader=True)
    variant = load_pretrained(PRETRAINED_DIR / "object", predictor=True, reader=True,
                              contact_reader=True)
    assert scratch.card == load_pretrained(PRETRAINED_DIR / "scratch").card != variant.card
    assert scratch.predictor.object_state and scratch.camera == variant.camera == "wide"
    assert scratch.predictor.cfg == variant.predictor.cfg
    recipe = {k: v for k, v in variant.predictor_card["training"].items()
              if k not in ("encoder_dir", "out_dir", "export_dir", "report")}
    assert {k: scratch.predictor_card["training"][k] for k in recipe} == recipe
    for reader in ("reader", "contact_reader"):
        assert all(torch.equal(a, b) for a, b in zip(
            getattr(scratch, reader).state_dict().values(),
            getattr(variant, reader).state_dict().values()))


def test_a_world_model_only_plans_from_the_camera_it_was_trained_on(tiny_world_model, tmp_path):
    assert load_pretrained(tiny_world_model, predictor=True).camera == "front"
    with pytest.raises(ValueError, match=r"trained on the 'front' camera.*env.cameras=\[front\]"):
        run(mpc_config(tiny_world_model, "env=push", "env.cameras=[wide]"), tmp_path)


def test_mpc_with_mppi_history_and_full_actions(tiny_world_model, tmp_path):
    cfg = mpc_config(tiny_world_model, "env=push", "planner=mppi", "history=2",
                     "action_repeat=false", "video=false")
    assert run(cfg, tmp_path)["planner"] == "mppi"


def test_same_seed_same_episode(tiny_world_model, tmp_path):
    cfg = mpc_config(tiny_world_model, "env=push", "video=false", "verbose=false")
    first = run(cfg, tmp_path / "a")
    second = run(cfg, tmp_path / "b")
    a = json.loads((tmp_path / "a" / "mpc.json").read_text())["episodes"][0]
    b = json.loads((tmp_path / "b" / "mpc.json").read_text())["episodes"][0]
    assert a["task_distance"] == b["task_distance"] and first["success_rate"] == second[
        "success_rate"]
    # another planner seed draws other samples on the same episode
    run(mpc_config(tiny_world_model, "env=push", "video=false", "verbose=false",
                   "planner_seed=1"), tmp_path / "c")
    c = json.loads((tmp_path / "c" / "mpc.json").read_text())["episodes"][0]
    assert c["task_distance"][0] == a["task_distance"][0] and c["gripper_offset"] != a[
        "gripper_offset"]


def test_subgoals_are_planned_to_in_turn(tiny_world_model, tmp_path):
    # max_steps=16: four plans of one 4-control-step model step; each of the two sub-goals
    # gets 16 // (4 * 3) = 1 plan (the tiny model has no reader to move on earlier)
    run(mpc_config(tiny_world_model, "env=drawer", "max_steps=16", "subgoals=2",
                   "verbose=false"), tmp_path)
    episode = json.loads((tmp_path / "mpc.json").read_text())["episodes"][0]
    assert episode["goal_index"] == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="subgoals"):
        mpc_config(tiny_world_model, "subgoals=-1")


@pytest.mark.parametrize("override, listed", [("env=shelf", "push"), ("planner=ilqr", "mppi")])
def test_unknown_env_or_planner_lists_the_choices(tiny_world_model, override, listed):
    with pytest.raises(MissingConfigException, match=listed):
        mpc_config(tiny_world_model, override)


def test_goal_images_are_resized_or_rejected():
    image = np.zeros((128, 96, 3), np.uint8)
    assert prepare_image(image, 64).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="uint8 RGB"):
        prepare_image(np.zeros((64, 64), np.uint8), 64)
    with pytest.raises(ValueError, match="uint8 RGB"):
        prepare_image(np.zeros((64, 64, 3), np.float32), 64)


def test_agent_rejects_inconsistent_settings(tiny_world_model):
    with pytest.raises(ValueError, match="execute"):
        build_agent(mpc_config(tiny_world_model, "execute=9"))
    with pytest.raises(ValueError, match="history"):
        build_agent(mpc_config(tiny_world_model, "history=2", "execute=2"))


def test_a_step_blocked_against_the_imagined_one_is_followed_by_a_lift(tiny_world_model):
    """unstick_lift: when the gripper moved less than 40 % of the motion the predictor imagined
    for the executed step, the next executed step lifts it (dz at unstick_lift, no horizontal
    move); a step that moved most of the way, or one imagined to stand still, is planned."""
    agent = build_agent(mpc_config(tiny_world_model, "objective.unstick_lift=0.5"))
    image = np.zeros((64, 64, 3), np.uint8)
    agent.reset(image)
    generator = torch.Generator().manual_seed(0)

    def act(observed, imagined):
        agent._expected = torch.zeros(3), torch.tensor(imagined)
        proprio = np.array([*observed, 0.0], np.float32)
        return agent.act({"pixels": image, "proprio": proprio}, generator)

    controls, info = act([0.01, 0, 0], [0.05, 0, 0])
    assert info["blocked"]
    np.testing.assert_allclose(controls[:, :3], np.tile([0.0, 0.0, 0.5], (len(controls), 1)))
    for observed, imagined in (([0.03, 0, 0], [0.05, 0, 0]), ([0, 0, 0], [0.01, 0, 0])):
        controls, info = act(observed, imagined)
        assert not info["blocked"] and not np.allclose(controls[:, :3], [0.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="unstick_lift"):
        mpc_config(tiny_world_model, "objective.unstick_lift=2")


@pytest.mark.parametrize("horizontal", [False, True])
def test_unstick_horizontal_judges_a_step_blocked_from_its_xy_motion(tiny_world_model,
                                                                     horizontal):
    """A gripper imagined to move 5 cm down that stayed put counts as blocked, unless
    objective.unstick_horizontal judges the horizontal motion only; one imagined 5 cm
    sideways that stayed put is blocked either way."""
    agent = build_agent(mpc_config(tiny_world_model, "objective.unstick_lift=0.5",
                                   f"objective.unstick_horizontal={horizontal}"))
    image = np.zeros((64, 64, 3), np.uint8)
    agent.reset(image)
    for imagined, blocked in (([0, 0, -0.05], not horizontal), ([0.05, 0, 0], True)):
        agent._expected = torch.zeros(3), torch.tensor(imagined)
        _, info = agent.act({"pixels": image, "proprio": np.zeros(4, np.float32)},
                            torch.Generator().manual_seed(0))
        assert info["blocked"] == blocked
    with pytest.raises(ValueError, match="unstick_horizontal needs unstick_lift"):
        mpc_config(tiny_world_model, "objective.unstick_horizontal=true")


def test_objective_prefers_the_goal(tiny_world_model):
    """With the goal equal to what the predictor imagines for one plan, that plan has the
    lowest energy."""
    from planners.objective import LatentObjective, ObjectiveConfig

    model = load_pretrained(tiny_world_model, predictor=True)
    z = model.encode(torch.zeros(1, 1, 64, 64, 3, dtype=torch.uint8))[0, 0]
    plans = torch.rand(5, 3, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    probe = LatentObjective(ObjectiveConfig(), model.predictor, z=z,
                            proprio=torch.zeros(4), goal=z, action_repeat=4)
    goal = probe.imagine(plans[2:3])[0, -1]
    objective = LatentObjective(ObjectiveConfig(distance="l1"), model.predictor, z=z,
                                proprio=torch.zeros(4), goal=goal, action_repeat=4)
    energies = objective(plans)
    assert energies.shape == (5,) and int(energies.argmin()) == 2


def test_planner_benchmark_prints_and_reports(tiny_world_model, tmp_path, capsys):
    from planners import benchmark

    report = tmp_path / "speed.json"
    cfg = compose_config("planner_benchmark", f"weights_dir={tiny_world_model}", "planning=plain",
                         "planner.num_samples=12", "planner.iterations=2", "repeats=2",
                         "profile=false", f"report={report}")
    result = benchmark.benchmark(cfg)
    assert result["median_ms_per_plan"] > 0 and 0 < result["peak_fraction"]
    assert json.loads(report.read_text())["results"][0]["planner"] == "cem"
    assert "ms per planning step" in capsys.readouterr().out


def _blob(row: int, col: int) -> torch.Tensor:
    """An 8 x 8 patch grid (64, 2) that is zero except one 'gripper' patch."""
    z = torch.zeros(8, 8, 2)
    z[row, col] = 1.0
    return z.reshape(64, 2)


def test_pooled_scales_widen_the_energy_basin():
    """Patch-wise, every non-overlapping place of a blob is equally far from its goal place;
    with pooled scales the distance falls as the blob approaches."""
    from worldmodel.features import token_distance

    goal = _blob(6, 6)
    path = torch.stack([_blob(c, c) for c in range(5)])  # along the diagonal, never at 6
    flat = token_distance(path, goal)
    assert torch.allclose(flat, flat[0].expand(5))
    pooled = token_distance(path, goal, "l2", (1, 2, 4, 8))
    assert (pooled.diff() <= 0).all() and pooled[-1] < pooled[0]
    assert torch.equal(token_distance(path, goal, "l1", (1,)), token_distance(path, goal, "l1"))


def test_pool_tokens_averages_cells_and_rejects_odd_grids():
    from planners.objective import ObjectiveConfig
    from worldmodel.features import pool_tokens

    z = torch.arange(64.0).view(1, 64, 1)
    assert pool_tokens(z, 2)[0, :2, 0].tolist() == [4.5, 6.5]  # (0 + 1 + 8 + 9) / 4, ...
    assert torch.allclose(pool_tokens(z, 8)[0, 0], z.mean(dim=1)[0])
    with pytest.raises(ValueError, match="cannot pool"):
        pool_tokens(z, 3)
    with pytest.raises(ValueError, match="scales"):
        ObjectiveConfig(scales=(0,))
