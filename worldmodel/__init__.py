"""The V-JEPA world model: a self-supervised video encoder and, on top of it, an
action-conditioned predictor.

    from worldmodel import VJEPAModel
    model = VJEPAModel(config)
    loss, metrics = model(video)   # video: float (B, C, T, H, W)

    world_model = load_pretrained()            # the shipped weights
    tokens = world_model.encode(frames)        # uint8 (B, T, H, W, C) -> (B, T, P, D)
"""

from worldmodel.config import PRESETS, VJEPAConfig, preset
from worldmodel.vjepa import VJEPAModel
from worldmodel.weights import load_pretrained

__all__ = ["PRESETS", "VJEPAConfig", "VJEPAModel", "load_pretrained", "preset"]
