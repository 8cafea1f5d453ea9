"""Probes, the attention benchmark, README tables, gradient checkpointing, and the
shipped encoder against its committed reference output."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SMALL_MODEL, compose_config
from safetensors.torch import load_file, save_file

from worldmodel import VJEPAModel, benchmark, preset, probe, report
from worldmodel.weights import load_pretrained

REFERENCE = Path(__file__).parent / "reference" / "encoder_tokens.safetensors"


def test_probe_measures_all_rows(tiny_play, tiny_encoder, tmp_path):
    cfg = compose_config("probe", f"data_dir={tiny_play}", f"weights={tiny_encoder}",
                         f"also=[{tiny_encoder}]", "val_fraction=0.25", "pool=2",
                         "frame_stride=8", "attentive_steps=5", "random_init_seeds=[0,1]",
                         "attentive_seeds=[0,1]")
    rows = probe.run(cfg)
    features = ("V-JEPA (pretrained)", f"V-JEPA ({tiny_encoder})", "random init", "pixels")
    assert set(rows) == {f"{f}, {p}" for f in features for p in ("linear", "attentive")}
    same = [rows[f"{f}, linear"] for f in features[:2]]  # one encoder, probed twice
    assert same[0]["object_r2"] == pytest.approx(same[1]["object_r2"])
    for r in rows.values():
        assert all(math.isfinite(r[k]) for k in ("ee_r2", "ee_cm", "object_r2", "object_cm"))
        assert 0.0 <= r["task_acc"] <= 1.0
        assert 1.0 <= r["content_rank"] <= 32.0  # SMALL_MODEL tokens are 32 wide
    # each row is the mean over its runs: random init 2 encoders (x 2 probe seeds), others 1 (x 2)
    runs = {name: len(r.get("runs", [r])) for name, r in rows.items()}
    assert runs == {f"{f}, {p}": (2 if f == "random init" else 1) * (2 if p == "attentive" else 1)
                    for f in features for p in ("linear", "attentive")}
    inits = rows["random init, attentive"]["runs"]
    assert {(r["init_seed"], r["probe_seed"]) for r in inits} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    seed0, seed1 = rows["random init, linear"]["runs"]  # two encoders, two fits
    assert seed0["object_r2"] != pytest.approx(seed1["object_r2"])
    assert rows["pixels, attentive"]["object_cm"] == pytest.approx(
        sum(r["object_cm"] for r in rows["pixels, attentive"]["runs"]) / 2)


def test_probe_refuses_an_empty_seed_list():
    with pytest.raises(ValueError, match="at least one seed"):
        compose_config("probe", "attentive_seeds=[]")


def test_attention_benchmark_reports_both_layouts(tmp_path, capsys):
    out = tmp_path / "attention.json"
    cfg = compose_config("worldmodel_benchmark", "shapes=[tiny]", "tiny_batch=2",
                         "iterations=1", "precision=fp32", f"report={out}")
    results = benchmark.run(cfg)
    assert [r["attention"] for r in results] == ["factorized", "joint"]
    assert all(r["it_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in results)
    assert json.loads(out.read_text())["results"] == results
    assert "| tiny | joint |" in capsys.readouterr().out


def test_readme_tables_match_the_reports():
    readme = (ROOT / "README.md").read_text()
    assert report.render(readme) == readme, "run `python -m worldmodel.report`"
    for name in report.TABLES:
        assert f"<!-- {name}:start -->" in readme
        assert report.load_report(name) is not None, f"reports/{name}.json is missing"


def test_captions_name_the_weights_each_method_planned_with():
    cfg = {"weights_dir": "/a/worldmodel/pretrained/object", "methods": ["scratch"],
           "scratch_dir": "/a/worldmodel/pretrained/scratch/object"}
    scratch = ("scratch weights", "worldmodel/pretrained/scratch/object")
    assert report._weights_names(cfg) == [scratch]
    cfg |= {"methods": ["world_model", "scratch"],
            "scratch_dir": "/b/worldmodel/pretrained/scratch"}
    assert report._weights_names(cfg) == [("weights", "worldmodel/pretrained/object")]
    cfg["weights_dir"] = "/b/worldmodel/pretrained"  # the shipped defaults go unnamed
    assert report._weights_names(cfg) == []


def test_gradient_checkpointing_gives_the_same_gradients():
    video = torch.randn(2, 3, 8, 64, 64)
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = VJEPAModel(preset("tiny", **SMALL_MODEL, grad_checkpointing=checkpointed))
        loss, _ = model(video, generator=torch.Generator().manual_seed(1))
        loss.backward()
        grads.append(model.encoder.embed.proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def reference_frames() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, 256, (2, 3, 64, 64, 3), generator=generator, dtype=torch.uint8)


def test_shipped_encoder_reproduces_its_reference_output():
    model = load_pretrained()  # worldmodel/pretrained/, as shipped
    tokens = model.encode(reference_frames())
    if os.environ.get("UPDATE_REFERENCE") == "1":  # after retraining the shipped encoder
        save_file({"tokens": tokens.contiguous()}, REFERENCE)
    torch.testing.assert_close(tokens, load_file(REFERENCE)["tokens"], atol=1e-4, rtol=1e-4)
    assert model.card["steps"] >= 1000, "the shipped encoder should be the trained one"
    assert tokens.shape == (2, 3, 64, model.config.encoder_dim)


def test_missing_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="worldmodel.pretrain"):
        load_pretrained(tmp_path)
