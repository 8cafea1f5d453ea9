"""CPU smoke tests of the entry points through Hydra's compose API (seconds each)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from envs import benchmark, demo

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")


def load(name, *overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose(name, overrides=list(overrides)))


def test_demo_writes_a_video(tmp_path):
    cfg = load("demo", "env=button", "video_size=64")
    episodes = demo.run(cfg, tmp_path)
    assert episodes[0]["success"]
    video = tmp_path / "expert_button_seed0.mp4"
    assert video.exists() and video.stat().st_size > 1000


def test_demo_rejects_unknown_env():
    with pytest.raises(MissingConfigException, match="button"):
        load("demo", "env=buton")


def test_benchmark_runs(tmp_path, capsys):
    cfg = load("benchmark", "seeds=1", "steps=20", "collect_episodes=4", "workers=1",
               "reads=10")
    benchmark.run(cfg)
    out = capsys.readouterr().out
    for name in ("push", "pick_place", "drawer", "button", "collection", "windows/s"):
        assert name in out
