"""`VJEPAConfig`: the seed document's model config, with presets.

The seed's keys (`encoder_dim`, `predictor_dim`, `num_frames`, `patch_size`, `tubelet_size`,
`mask_ratio`, `temporal_mask_ratio`, `factorized`, `num_spatial_layers`,
`num_temporal_layers`, `num_predictor_layers`, `ema_momentum`) keep their meaning; the
rest have defaults. Presets follow the seed's scaling table (base 86M, large 304M,
huge 632M encoder parameters) plus CPU-sized `tiny` and `small`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


class DictConfig:
    """A dataclass config that round-trips through a plain dict (model cards, checkpoints),
    rejecting unknown keys by name."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: "
                             f"{sorted(known)}")
        return cls(**values)


ARCHITECTURE = ("image_size", "num_frames", "patch_size", "tubelet_size", "in_channels",
                "encoder_dim", "num_heads", "factorized", "num_spatial_layers",
                "num_temporal_layers", "mlp_ratio")


@dataclass
class VJEPAConfig(DictConfig):
    image_size: int = 64  # H = W, pixels
    num_frames: int = 8  # T, frames per clip (the longest clip of the curriculum)
    patch_size: int = 8  # pixels per patch side
    tubelet_size: int = 2  # frames per tubelet (temporal patch)
    in_channels: int = 3  # C
    encoder_dim: int = 192  # D, encoder width
    num_heads: int = 3  # encoder attention heads
    factorized: bool = True  # spatial-then-temporal attention; False: joint space-time
    num_spatial_layers: int = 4  # factorized: blocks attending within a frame
    num_temporal_layers: int = 2  # factorized: blocks attending across time per location
    # (joint attention uses num_spatial_layers + num_temporal_layers joint blocks)
    mlp_ratio: float = 4.0  # MLP hidden width / model width
    predictor_dim: int = 96  # predictor width (narrower than the encoder)
    predictor_heads: int = 3  # predictor attention heads
    num_predictor_layers: int = 4  # predictor blocks
    mask_strategy: str = "future"  # "future": earlier frames predict later ones; "multiblock"
    mask_ratio: float = 0.5  # fraction of context patches hidden (tubes through all frames)
    temporal_mask_ratio: float = 0.5  # fraction of time steps (the latest) that are targets
    num_mask_blocks: int = 4  # multiblock: rectangles per mask
    loss: str = "l1"  # "l1" (V-JEPA 2) or "mse" (the seed)
    multiscale_loss: bool = False  # weight targets 1, 4, 8 frames ahead by 1, 0.5, 0.25
    spread_weight: float = 0.0  # > 0: a variance-covariance term (VICReg) against dimensional
    # collapse, on the context tokens' content (each position's batch mean removed)
    ema_momentum: float = 0.996  # target-encoder EMA momentum at step 0, cosine to 1.0
    grad_checkpointing: bool = False  # recompute block activations in backward

    def __post_init__(self):
        def need(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        need(self.image_size % self.patch_size == 0,
             f"{self.image_size=} must be divisible by {self.patch_size=}")
        need(self.num_frames % self.tubelet_size == 0,
             f"{self.num_frames=} must be divisible by {self.tubelet_size=}")
        need(self.encoder_dim % self.num_heads == 0,
             f"{self.encoder_dim=} must be divisible by {self.num_heads=}")
        need(self.predictor_dim % self.predictor_heads == 0,
             f"{self.predictor_dim=} must be divisible by {self.predictor_heads=}")
        need(self.mask_strategy in ("future", "multiblock"),
             f"{self.mask_strategy=} must be 'future' or 'multiblock'")
        need(self.loss in ("l1", "mse"), f"{self.loss=} must be 'l1' or 'mse'")
        need(0.0 <= self.mask_ratio < 1.0, f"{self.mask_ratio=} must be in [0, 1)")
        need(0.0 < self.temporal_mask_ratio < 1.0 or self.mask_strategy == "multiblock",
             f"{self.temporal_mask_ratio=} must be in (0, 1) for future-biased masking")
        need(self.num_frames // self.tubelet_size >= 2 or self.mask_strategy == "multiblock",
             f"future-biased masking needs >= 2 time steps: {self.num_frames=}, "
             f"{self.tubelet_size=}")
        need(self.spread_weight >= 0.0, f"{self.spread_weight=} must be >= 0")
        need(0.0 <= self.ema_momentum <= 1.0, f"{self.ema_momentum=} must be in [0, 1]")
        need(self.num_spatial_layers + self.num_temporal_layers >= 1,
             "the encoder needs at least one layer")

    @property
    def architecture(self) -> dict:
        """The fields that shape the encoder (not the pretraining objective): two encoders
        with equal architectures take the same input and give tokens of the same shape."""
        return {name: getattr(self, name) for name in ARCHITECTURE}

    @property
    def grid(self) -> int:
        """Patches per side of a frame."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """P, patches per time step."""
        return self.grid**2

    @property
    def time_steps(self) -> int:
        """Time steps (tubelets) of a full clip."""
        return self.num_frames // self.tubelet_size


PRESETS: dict[str, VJEPAConfig] = {
    # CPU presets: 64 px frames, 8 px patches (64 per frame), trained on this machine
    "tiny": VJEPAConfig(),
    "small": VJEPAConfig(encoder_dim=384, num_heads=6, num_spatial_layers=6,
                         num_temporal_layers=3, predictor_dim=192, predictor_heads=6),
    # the seed's scaling table: 224 px, 16 frames, 16 px patches
    "base": VJEPAConfig(image_size=224, num_frames=16, patch_size=16, encoder_dim=768,
                        num_heads=12, num_spatial_layers=8, num_temporal_layers=4,
                        predictor_dim=384, predictor_heads=12, num_predictor_layers=6),
    "large": VJEPAConfig(image_size=224, num_frames=16, patch_size=16, encoder_dim=1024,
                         num_heads=16, num_spatial_layers=16, num_temporal_layers=8,
                         predictor_dim=384, predictor_heads=12, num_predictor_layers=12),
    "huge": VJEPAConfig(image_size=224, num_frames=16, patch_size=16, encoder_dim=1280,
                        num_heads=16, num_spatial_layers=21, num_temporal_layers=11,
                        predictor_dim=384, predictor_heads=12, num_predictor_layers=12),
}


def preset(name: str, **overrides) -> VJEPAConfig:
    """A preset config, with field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)
