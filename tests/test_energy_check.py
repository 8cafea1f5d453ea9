"""`python -m planners.energy_check`: rank statistics, the sampled sequences, a tiny run."""

import json

import numpy as np
import pytest
import torch
from conftest import compose_config

import envs
import planners.energy_check  # noqa: F401  (registers the config schema)
from planners.energy_check import elite_rank, run, sample_actions, spearman


def test_rank_statistics_known_values():
    x = torch.tensor([0.3, 0.1, 0.7, 0.5, 0.9])
    assert spearman(x, 2 * x + 1) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert elite_rank(x, x, 2) == pytest.approx((0 + 1) / 2 / 4)  # the two truly best
    assert elite_rank(-x, x, 2) == pytest.approx((3 + 4) / 2 / 4)  # the two truly worst


def test_expert_centred_sequences_make_progress():
    cfg = compose_config("energy_check", "samples=32", "expert_fraction=0.5")
    env = envs.make("button")
    env.reset(seed=0)
    base = env.unwrapped
    actions = sample_actions(cfg, env, torch.Generator().manual_seed(0), frameskip=4)
    assert actions.shape == (32, cfg.planner.horizon, 4) and actions.abs().max() <= 1
    goal = np.concatenate([base.goal, base.goal_proprio])
    final = np.array([base.simulate(base.copy_state(), a.repeat_interleave(4, 0).numpy())[-1]
                      for a in actions])
    distance = np.linalg.norm(final - goal, axis=-1)
    assert distance[:16].mean() < distance[16:].mean()  # the expert's half is nearer
    env.close()


def test_tiny_run_writes_a_report(tiny_world_model, tmp_path, capsys):
    path = tmp_path / "check.json"
    run(compose_config("energy_check", f"weights_dir={tiny_world_model}", "planning=plain",
                       "tasks=[button]", "states=2", "samples=8", f"report={path}"))
    assert "| button |" in capsys.readouterr().out
    result = json.loads(path.read_text())["tasks"]["button"]
    assert [s["seed"] for s in result["states"]] == [0, 1]
    for name, value in result["mean"].items():
        assert -1.0 <= value <= 1.0 or name == "gripper_r2"
    assert np.isfinite(result["mean"]["gripper_r2"])
