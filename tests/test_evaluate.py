"""`python -m planners.evaluate` on a tiny budget: the protocol, the baselines, the Wilson
interval, resuming, and bad input."""

import json

import numpy as np
import pytest
import torch
from conftest import compose_config

import envs
import planners.evaluate  # noqa: F401  (registers the evaluate config schema)
from planners.evaluate import (
    SimulatorObjective,
    evaluate,
    fingerprints,
    load_episodes,
    wilson_interval,
)


def suite_config(weights, tmp_path, *overrides):
    return compose_config("evaluate", f"weights_dir={weights}", f"scratch_dir={weights}",
                          "planning=plain",
                          "episodes=2", "max_steps=8", "planner.num_samples=8",
                          "planner.iterations=1", "workers=1", f"out_dir={tmp_path / 'run'}",
                          f"report={tmp_path / 'report' / 'zero_shot'}", *overrides)


def test_tiny_suite_reports_every_method(tiny_world_model, tmp_path):
    report = evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button,push]",
                                   "videos_per_task=1"))
    assert report["seeds"] == [0, 1] and set(report["results"]) == {"button", "push"}
    for task in ("button", "push"):
        assert set(report["results"][task]) == {"world_model", "scratch", "oracle", "random"}
        for r in report["results"][task].values():
            assert r["episodes"] == 2
            low, high = r["wilson_95"]
            assert 0.0 <= low <= r["success_rate"] <= high <= 1.0
            assert r["mean_final_distance"] > 0 and r["mean_gripper_distance"] > 0
    planning = report["results"]["push"]["world_model"]
    assert 0 < planning["median_plan_ms"] <= planning["p90_plan_ms"]
    saved = json.loads((tmp_path / "report" / "zero_shot.json").read_text())
    assert saved["ranges"]["0-1"]["config"]["episodes"] == 2
    assert len(saved["ranges"]["0-1"]["episodes"]) == 16
    for record in saved["ranges"]["0-1"]["episodes"]:  # the offset's length is the distance
        assert abs(np.linalg.norm(record["gripper_offset"]) - record["gripper_distance"]) < 1e-4
        assert 0 < record["closest_contact"] < 1.0  # m, to the object in a 0.5 m workspace
    assert "| push |" in (tmp_path / "report" / "zero_shot.md").read_text()
    html = (tmp_path / "report" / "zero_shot.html").read_text()
    assert html.count("<video") == 6 and "data:image/png;base64" in html  # 3 planners x 2 tasks


def test_resume_runs_only_missing_episodes(tiny_world_model, tmp_path, capsys):
    evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button]", "episodes=1",
                          "methods=[random,oracle]", "video=false"))
    store = tmp_path / "run" / "episodes.jsonl"
    first = load_episodes(store)
    assert len(first) == 2
    with store.open("a") as f:
        f.write('{"method": "random", "task": "butt')  # a line cut short by a kill
    partial = evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button]", "episodes=2",
                                    "methods=[random,oracle]", "report_only=true"))
    assert partial["results"]["button"]["oracle"]["episodes"] == 1
    assert "still running" in (tmp_path / "report" / "zero_shot.md").read_text()
    capsys.readouterr()
    evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button]", "episodes=2",
                          "methods=[random,oracle]", "video=false", "workers=2"))
    assert "2 episodes on record" in capsys.readouterr().out
    records = load_episodes(store)
    assert len(records) == 4 and records[:2] == first  # seed 0 was not run again
    # another planner budget is another experiment: the oracle's episodes run again
    evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button]", "episodes=2",
                          "methods=[random,oracle]", "video=false", "planner.num_samples=9"))
    assert "2 episodes on record" in capsys.readouterr().out
    # so is another planner seed, while the default seed keeps the records made before it
    base, other = (fingerprints(suite_config(tiny_world_model, tmp_path, f"planner_seed={s}"))
                   for s in (0, 1))
    assert base == fingerprints(suite_config(tiny_world_model, tmp_path))
    assert all(base[m] != other[m] for m in base)


@pytest.mark.parametrize("successes, n, low, high", [
    (0, 50, 0.0, 0.0714), (5, 10, 0.2366, 0.7634), (50, 50, 0.9286, 1.0),
    (43, 50, 0.7381, 0.9305)])
def test_wilson_interval_known_values(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-4)


def test_oracle_model_is_the_simulator():
    """The oracle's rollouts from a copied state end where the env itself goes."""
    env = envs.make("push")
    obs, info = env.reset(seed=3)
    start = env.unwrapped.copy_state()
    controls = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    states = env.unwrapped.simulate(start, controls, every=4)
    for action in controls:
        obs, *_ = env.step(action)
    assert states.shape == (2, 3 + 4)
    np.testing.assert_allclose(states[-1, 3:], obs["proprio"], atol=1e-5)
    np.testing.assert_allclose(states[-1, :3], env.unwrapped.task.goal_state(env.unwrapped.data),
                               atol=1e-6)
    goal = np.concatenate([info["goal_state"], info["goal_proprio"]])
    assert goal.shape == states[-1].shape
    with_object = env.unwrapped.simulate(start, controls, every=4, object_position=True)
    np.testing.assert_allclose(with_object[:, :7], states)
    np.testing.assert_allclose(with_object[-1, 7:], env.unwrapped.task.object_pose(
        env.unwrapped.data)[:3], atol=1e-6)
    # the contact-first oracle energy adds w x |gripper - object| at the scored step
    plans = torch.from_numpy(controls[None, ::4])  # (1, 2, 4), each held for 4 steps
    energy = {w: float(SimulatorObjective(env.unwrapped, start, goal, action_repeat=4,
                                          frameskip=4, weighting="last",
                                          contact_weight=w)(plans)[0]) for w in (0.0, 2.0)}
    held = env.unwrapped.simulate(start, np.repeat(controls[::4], 4, axis=0), every=4,
                                  object_position=True)[-1]
    assert energy[2.0] - energy[0.0] == pytest.approx(
        2.0 * np.linalg.norm(held[3:6] - held[7:]), abs=1e-5)


@pytest.mark.parametrize("override, message", [("tasks=[shelf]", "valid tasks are push"),
                                               ("methods=[dreamer]", "world_model, scratch"),
                                               ("workers=0", "must be >= 1"),
                                               ("oracle_contact_weight=-1", "must be >= 0"),
                                               ("subgoals=2", "world-model variant")])
def test_bad_overrides_are_answered_clearly(tiny_world_model, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        suite_config(tiny_world_model, tmp_path, override)


def test_missing_scratch_weights_say_how_to_train_them(tiny_world_model, tmp_path):
    cfg = suite_config(tiny_world_model, tmp_path, f"scratch_dir={tmp_path / 'none'}")
    with pytest.raises(FileNotFoundError, match="worldmodel.pretrain"):
        evaluate(cfg)


def test_the_object_variants_scratch_baseline_is_named_when_the_default_one_cannot_plan(
        tmp_path):
    """planning=object_* reads contact points: the label-free scratch folder has no contact
    reader, and the error names the object variant's own scratch baseline."""
    cfg = compose_config("evaluate", "planning=object_home_lift", "methods=[scratch]",
                         f"out_dir={tmp_path / 'run'}", "report=null")
    with pytest.raises(FileNotFoundError, match=r"scratch_dir=.*pretrained/scratch/object"):
        evaluate(cfg)


def test_simulator_with_latent_energy_diagnostic(tiny_world_model, tmp_path):
    report = evaluate(suite_config(tiny_world_model, tmp_path, "tasks=[button]", "episodes=1",
                                   "max_steps=4", "methods=[sim_latent]", "video=false"))
    result = report["results"]["button"]["sim_latent"]
    assert result["episodes"] == 1 and result["median_plan_ms"] > 0
