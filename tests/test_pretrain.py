"""`python -m worldmodel.pretrain` on a tiny model and a tiny collection: the loop, exact
resume after kill -9, DDP with two CPU processes, and the exported weights."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY_TRAINING, compose_config

from worldmodel.checkpoint import load_checkpoint
from worldmodel.pretrain import train
from worldmodel.weights import load_pretrained


def load(*overrides):
    return compose_config("pretrain", *overrides)


def test_pretrain_runs_and_exports(tiny_play, tmp_path, capsys):
    cfg = load(f"data_dir={tiny_play}", f"out_dir={tmp_path / 'run'}", "steps=4",
               f"export_dir={tmp_path / 'export'}", *TINY_TRAINING)
    final = train(cfg)
    assert final["step"] == 4 and final["loss"] > 0
    assert 1.0 <= final["target_rank"] <= 32.0  # the content's effective rank, of 32 dims
    out = capsys.readouterr().out
    assert "clips/s" in out and "%peak" in out and "rank" in out
    model = load_pretrained(tmp_path / "export")
    assert model.card["steps"] == 4 and model.card["command"].startswith("python -m")
    frames = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)
    assert model.encode(frames).shape == (1, 2, 64, 32)
    with pytest.raises(ValueError, match="uint8"):
        model.encode(frames.float())


def test_killed_run_resumes_at_the_same_schedule_position(tiny_play, tmp_path):
    common = [f"data_dir={tiny_play}", "steps=40", "checkpoint_every=4", *TINY_TRAINING]
    reference = tmp_path / "reference"
    train(load(*common, f"out_dir={reference}"))

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "worldmodel.pretrain", *common,
                                f"out_dir={killed}"], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoint.pt").exists():
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    step = load_checkpoint(killed)["step"]
    assert 0 < step < 40, "the kill should land mid-run"

    train(load(*common, f"out_dir={killed}"))
    resumed, expected = load_checkpoint(killed), load_checkpoint(reference)
    assert resumed["step"] == expected["step"] == 40
    for key, value in expected["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-4, atol=1e-5,
                                   msg=f"{key} differs after resume")


def test_ddp_with_two_cpu_processes(tiny_play, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "worldmodel.pretrain", f"data_dir={tiny_play}",
         f"out_dir={out}", "steps=3", *TINY_TRAINING],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 process(es)" in result.stdout
    assert load_checkpoint(out)["step"] == 3


def test_bad_curriculum_is_rejected():
    with pytest.raises(ValueError, match="curriculum_frames"):
        load("curriculum_frames=[4,3]")
    with pytest.raises(ValueError, match="curriculum_starts"):
        load("curriculum_starts=[0.3,0.0]")
