"""Shipped weights: safetensors files with JSON model cards in `worldmodel/pretrained/`.

Loading needs no training code and never unpickles anything: a card holds the config,
the safetensors file the tensors.

    import worldmodel.weights as weights
    model = weights.load_pretrained()          # the shipped world model
    tokens = model.encode(frames)              # uint8 (B, T, H, W, C) -> (B, T, P, D)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worldmodel.ac_predictor import ACConfig, ACPredictor
from worldmodel.config import VJEPAConfig
from worldmodel.encoder import VideoEncoder, frames_to_input
from worldmodel.prior import PolicyPrior, PriorConfig
from worldmodel.reader import ProprioReader, ReaderConfig

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
ENCODER = "encoder"  # file stem of the shipped encoder
PREDICTOR = "predictor"  # file stem of the shipped action-conditioned predictor
READER = "reader"  # file stem of the proprio reader (optional, worldmodel.reader)
# file stem of the contact reader (optional; worldmodel.train_reader target=contact)
CONTACT_READER = "contact_reader"
PRIOR = "prior"  # file stem of the policy prior (optional; worldmodel.train_prior)


def save_weights(directory: str | Path, name: str, module: torch.nn.Module,
                 card: dict) -> Path:
    """Write `module`'s tensors as `name.safetensors` and `card` as `name.json`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    path = directory / f"{name}.safetensors"
    save_file(tensors, path)
    (directory / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def encoder_id(encoder: torch.nn.Module) -> str:
    """A short hash of an encoder's weights: names its feature cache, and a predictor's card
    records the one it was trained on."""
    digest = hashlib.sha1()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:10]


def check_encoder(predictor_card: dict, encoder: torch.nn.Module, where: str | Path) -> None:
    """Refuse a predictor whose card names another encoder than `encoder`: its imagined
    tokens would live in another feature space. Older cards name none and pass."""
    trained_on = predictor_card.get("encoder_id")
    if trained_on and trained_on != (here := encoder_id(encoder)):
        raise ValueError(
            f"the predictor in {where} was trained on the features of encoder {trained_on}, "
            f"but the encoder is {here}: put the encoder it was trained with beside it, or "
            f"retrain it (python -m worldmodel.train_ac)")


def read_card(directory: str | Path, name: str, trainer: str = "worldmodel.pretrain") -> dict:
    """The model card `name.json` in `directory`; if missing, say which entry point
    (`trainer`) produces it."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no weights {name!r} in {directory}: train them with "
            f"`python -m {trainer} export_dir={directory}` (see the README)")
    return json.loads(path.read_text())


def load_encoder(directory: str | Path = PRETRAINED_DIR, name: str = ENCODER) -> VideoEncoder:
    """The encoder saved as `name` in `directory`, in eval mode."""
    card = read_card(directory, name)
    encoder = VideoEncoder(VJEPAConfig.from_dict(card["config"]))
    encoder.load_state_dict(load_file(Path(directory) / f"{name}.safetensors"))
    return encoder.eval().requires_grad_(False)


def load_predictor(directory: str | Path = PRETRAINED_DIR,
                   name: str = PREDICTOR) -> ACPredictor:
    """The action-conditioned predictor saved as `name` in `directory`, in eval mode."""
    card = read_card(directory, name, trainer="worldmodel.train_ac")
    predictor = ACPredictor(ACConfig.from_dict(card["config"]), **card["dims"])
    predictor.load_state_dict(load_file(Path(directory) / f"{name}.safetensors"))
    return predictor.eval().requires_grad_(False)


def load_reader(directory: str | Path = PRETRAINED_DIR,
                name: str = READER) -> ProprioReader:
    """The proprio (or contact) reader saved as `name` in `directory`, in eval mode."""
    card = read_card(directory, name, trainer="worldmodel.train_reader")
    out_dim = card.get("out_dim", card.get("proprio_dim"))  # older cards: proprio_dim
    reader = ProprioReader(ReaderConfig.from_dict(card["config"]), out_dim)
    reader.load_state_dict(load_file(Path(directory) / f"{name}.safetensors"))
    return reader.eval().requires_grad_(False)


def load_prior(directory: str | Path = PRETRAINED_DIR, name: str = PRIOR) -> PolicyPrior:
    """The policy prior saved as `name` in `directory`, in eval mode."""
    card = read_card(directory, name, trainer="worldmodel.train_prior")
    prior = PolicyPrior(PriorConfig.from_dict(card["config"]))
    prior.load_state_dict(load_file(Path(directory) / f"{name}.safetensors"))
    return prior.eval().requires_grad_(False)


class PretrainedWorldModel(torch.nn.Module):
    """The shipped world model: the frozen V-JEPA encoder and, once trained, the
    action-conditioned predictor (`predictor`, None without one)."""

    def __init__(self, encoder: VideoEncoder, card: dict,
                 predictor: ACPredictor | None = None, predictor_card: dict | None = None,
                 reader: ProprioReader | None = None,
                 contact_reader: ProprioReader | None = None,
                 prior: PolicyPrior | None = None):
        super().__init__()
        self.encoder = encoder
        self.card = card
        self.config = encoder.cfg
        self.predictor = predictor
        self.predictor_card = predictor_card or {}
        self.reader = reader  # the proprio reader, if loaded (worldmodel.reader)
        self.contact_reader = contact_reader  # image -> task contact point, if loaded
        self.prior = prior  # read state + goal -> proposed control actions, if loaded

    @property
    def camera(self) -> str | None:
        """The camera of the play data the predictor was trained on (None: not recorded)."""
        cameras = self.predictor_card.get("data", {}).get("collection", {}).get("cameras")
        return cameras[0] if cameras else None

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, C) -> layer-normalised patch tokens (B, T, P, D), each
        frame encoded alone."""
        frames = torch.as_tensor(frames)
        if frames.dim() != 5 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (B, T, H, W, C), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        size = self.config.image_size
        if frames.shape[2:] != (size, size, self.config.in_channels):
            raise ValueError(f"frames are {tuple(frames.shape[2:])}, the encoder takes "
                             f"({size}, {size}, {self.config.in_channels})")
        device = self.encoder.spatial_pos.device
        return self.encoder.encode_frames(frames_to_input(frames.to(device)))


def load_pretrained(directory: str | Path = PRETRAINED_DIR, *, predictor: bool = False,
                    reader: bool = False, contact_reader: bool = False, prior: bool = False
                    ) -> PretrainedWorldModel:
    """The world model shipped in `worldmodel/pretrained/` (or another directory); with
    `predictor=True` the action-conditioned predictor must be there too, with
    `reader=True` the proprio reader, with `contact_reader=True` the contact reader, with
    `prior=True` the policy prior."""
    encoder, card = load_encoder(directory), read_card(directory, ENCODER)
    parts = {"reader": load_reader(directory) if reader else None,
               "contact_reader": load_reader(directory, CONTACT_READER) if contact_reader
               else None, "prior": load_prior(directory) if prior else None}
    if not predictor:
        return PretrainedWorldModel(encoder, card, **parts)
    predictor_card = read_card(directory, PREDICTOR, trainer="worldmodel.train_ac")
    check_encoder(predictor_card, encoder, directory)
    return PretrainedWorldModel(encoder, card, load_predictor(directory), predictor_card,
                                **parts)
