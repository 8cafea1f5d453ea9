"""The V-JEPA world model: a self-supervised video encoder and, on top of it, an
action-conditioned predictor.

    from worldmodel import VJEPAModel
    model = VJEPAModel(config)
    loss, metrics = model(video)   # video: float (B, C, T, H, W)
"""

from worldmodel.config import PRESETS, VJEPAConfig, preset
from worldmodel.vjepa import VJEPAModel

__all__ = ["PRESETS", "VJEPAConfig", "VJEPAModel", "preset"]
