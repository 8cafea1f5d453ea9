"""Shared fixtures: a tiny play collection and a tiny pretrained encoder."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from envs.collect import CollectConfig, collect

ROOT = Path(__file__).resolve().parents[1]
# a V-JEPA small enough to train in seconds: VJEPAConfig fields, and as Hydra overrides
SMALL_MODEL = dict(encoder_dim=32, num_heads=2, predictor_dim=16, predictor_heads=2,
                   num_spatial_layers=1, num_temporal_layers=1, num_predictor_layers=1)
TINY_MODEL = [f"model.{key}={value}" for key, value in SMALL_MODEL.items()]
TINY_TRAINING = [*TINY_MODEL, "batch_size=4", "warmup_steps=2", "log_every=1",
                 "precision=fp32", "val_fraction=0.25"]


def compose_config(name: str, *overrides: str):
    """An entry point's config, composed as Hydra would, as its dataclass."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return OmegaConf.to_object(compose(name, overrides=list(overrides)))


@pytest.fixture(scope="session")
def tiny_play(tmp_path_factory) -> Path:
    """Eight episodes of button and push play data (64x64)."""
    out = tmp_path_factory.mktemp("play")
    collect(CollectConfig(episodes=8, episodes_per_shard=4, workers=1,
                          tasks=["button", "push"], out_dir=str(out)))
    return out


@pytest.fixture(scope="session")
def tiny_encoder(tiny_play, tmp_path_factory) -> Path:
    """A directory with a tiny encoder pretrained for 3 steps on `tiny_play`."""
    from worldmodel.pretrain import train

    out = tmp_path_factory.mktemp("pretrain")
    train(compose_config("pretrain", f"data_dir={tiny_play}", f"out_dir={out / 'run'}",
                         "steps=3", f"export_dir={out / 'export'}", *TINY_TRAINING))
    return out / "export"


# an action-conditioned predictor small enough to train in seconds, as Hydra overrides
TINY_PREDICTOR = ["model.dim=32", "model.heads=2", "model.depth=1", "batch_size=4",
                  "warmup_steps=1", "log_every=1", "precision=fp32", "val_fraction=0.25",
                  "eval_windows=8"]


@pytest.fixture(scope="session")
def tiny_world_model(tiny_play, tiny_encoder, tmp_path_factory) -> Path:
    """A weights directory with the tiny encoder and a predictor trained for 3 steps."""
    import shutil

    from worldmodel.train_ac import train

    out = tmp_path_factory.mktemp("world_model")
    weights = out / "weights"
    shutil.copytree(tiny_encoder, weights)
    train(compose_config("train_ac", f"data_dir={tiny_play}", f"encoder_dir={weights}",
                         f"out_dir={out / 'run'}", "steps=3", f"export_dir={weights}",
                         *TINY_PREDICTOR))
    return weights
