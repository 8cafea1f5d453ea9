"""Play-data collection and the dataset readers, end to end on tiny collections."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import envs
from envs.collect import collect, episode_plan
from envs.dataset import ActionWindows, EpisodeDataset, VideoClips

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
ROOT = Path(__file__).resolve().parents[1]


def make_config(out_dir, *overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("collect", overrides=[f"out_dir={out_dir}", "episodes_per_shard=2",
                                            "tasks=[push,button]", *overrides])
    return OmegaConf.to_object(cfg)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("play")
    collect(make_config(out, "episodes=6", "workers=2", "cameras=[front,side]"))
    return out


def test_round_trip(small):
    data = EpisodeDataset(small)
    assert len(data) == 6
    assert [r.meta["task"] for r in data.refs] == ["push", "button"] * 3
    assert [r.meta["index"] for r in data.refs] == list(range(6))
    for i, ref in enumerate(data.refs):
        episode = data.episode(i)
        frames = envs.step_budget(ref.meta["task"]) + 1
        assert episode["pixels"].shape == (frames, 64, 64, 3)
        assert episode["pixels_side"].shape == (frames, 64, 64, 3)
        assert episode["proprio"].shape == (frames, 4)
        assert episode["actions"].shape == (frames - 1, 4)
        assert episode["object_pose"].shape == (frames, 7)
        assert episode["goal_pixels"].shape == (64, 64, 3)
        assert np.all(np.abs(episode["actions"]) <= 1)
        assert episode["success"][-1] == ref.meta["success"]


def test_collection_is_deterministic(small, tmp_path):
    collect(make_config(tmp_path, "episodes=2", "workers=1", "cameras=[front,side]"))
    a, b = EpisodeDataset(small).episode(1), EpisodeDataset(tmp_path).episode(1)
    for key in ("pixels", "actions", "proprio"):
        np.testing.assert_array_equal(a[key], b[key])


def test_clips_and_windows(small):
    data = EpisodeDataset(small)
    clips = VideoClips(data, num_frames=4, frameskip=3, stride=5)
    clip = clips[0]
    assert clip.shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(clip, data.episode(0)["pixels"][0:10:3])
    windows = ActionWindows(data, num_frames=3, frameskip=2)
    item = windows[1]  # episode 0, start frame 1
    episode = data.episode(0)
    np.testing.assert_array_equal(item["frames"], episode["pixels"][1:6:2])
    np.testing.assert_array_equal(item["proprio"], episode["proprio"][1:6:2])
    np.testing.assert_array_equal(item["actions"], episode["actions"][1:5].reshape(2, 8))
    side = VideoClips(data, num_frames=2, camera="pixels_side")
    assert side[0].shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="stored cameras"):
        VideoClips(data, num_frames=2, camera="pixels_top")
    with pytest.raises(ValueError, match="frames"):
        VideoClips(data, num_frames=500)


def test_split_is_disjoint(small):
    train, val = EpisodeDataset(small).split(val_fraction=0.34, seed=1)
    assert len(train) + len(val) == 6 and len(val) == 2
    assert not set(train.indices) & set(val.indices)
    assert val.episode(0)["pixels"].shape[1:] == (64, 64, 3)


def test_rerun_resumes_and_extends(small, tmp_path):
    out = tmp_path / "play"
    collect(make_config(out, "episodes=4", "workers=1"))
    first = (out / "shard_00000" / "pixels.npy").stat().st_mtime_ns
    collect(make_config(out, "episodes=4", "workers=1"))  # nothing to do
    collect(make_config(out, "episodes=6", "workers=1"))  # one more shard
    assert (out / "shard_00000" / "pixels.npy").stat().st_mtime_ns == first
    assert len(EpisodeDataset(out)) == 6
    with pytest.raises(ValueError, match="another config"):
        collect(make_config(out, "episodes=6", "workers=1", "seed=5"))


def test_killed_collection_resumes_without_duplicates(tmp_path):
    out = tmp_path / "play"
    args = [sys.executable, "-m", "envs.collect", f"out_dir={out}", "episodes=16",
            "episodes_per_shard=2", "workers=1", "tasks=[button]"]
    process = subprocess.Popen(args, cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["shards"]:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the collector and its worker, mid-shard
    process.wait()
    done = json.loads(manifest.read_text())["shards"]
    assert 0 < len(done) < 8, "the kill should land mid-collection"
    kept = {name: (out / name / "pixels.npy").stat().st_mtime_ns for name in done}
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    data = EpisodeDataset(out)
    assert [r.meta["index"] for r in data.refs] == list(range(16))
    assert not list(out.glob(".shard_*"))
    for name, mtime in kept.items():
        assert (out / name / "pixels.npy").stat().st_mtime_ns == mtime


def test_policy_mix_and_collections_from_before_reach(tmp_path):
    cfg = make_config(tmp_path, "episodes=400", "expert_fraction=0.5", "reach_fraction=0.3")
    plans = [episode_plan(cfg, k) for k in range(cfg.episodes)]
    shares = {p: np.mean([q["policy"] == p for q in plans]) for p in ("expert", "reach",
                                                                      "random")}
    assert abs(shares["expert"] - 0.5) < 0.08 and abs(shares["reach"] - 0.3) < 0.08
    assert all((q["noise"] is None) == (q["policy"] == "random") for q in plans)
    # without reach episodes, each episode's policy and noise are what they were before
    # reach_fraction existed (expert drawn first, noise only for the expert)
    old = make_config(tmp_path, "episodes=50")
    for k in range(50):
        rng = np.random.default_rng([old.seed, k])
        expert = rng.random() < old.expert_fraction
        noise = rng.uniform(old.noise_min, old.noise_max) if expert else None
        plan = episode_plan(old, k)
        assert (plan["policy"], plan["noise"]) == ("expert" if expert else "random", noise)
    # a collection whose manifest predates reach_fraction still resumes
    out = tmp_path / "old"
    collect(make_config(out, "episodes=2", "workers=1"))
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["config"]["reach_fraction"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    collect(make_config(out, "episodes=4", "workers=1"))
    assert len(EpisodeDataset(out)) == 4


def test_bad_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="reach_fraction"):
        make_config(tmp_path, "expert_fraction=0.9", "reach_fraction=0.2")
    with pytest.raises(ValueError, match="tasks"):
        make_config(tmp_path, "tasks=[push,fly]")
    with pytest.raises(ValueError, match="cameras"):
        make_config(tmp_path, "cameras=[front,back]")


def test_missing_dataset_says_how_to_collect(tmp_path):
    with pytest.raises(FileNotFoundError, match="envs.collect"):
        EpisodeDataset(tmp_path)
