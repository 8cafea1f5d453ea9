"""The on-disk episode format: shards of memory-mapped `.npy` arrays with a JSON manifest,
its writer, and readers for video clips and action-conditioned windows.

Layout of a collection directory:

    manifest.json            config of the collection and the finished shards
    shard_00000/             one shard: `episodes_per_shard` episodes, all frames
        pixels.npy           uint8 (N, H, W, 3), every frame of every episode, in order
        pixels_<camera>.npy  the same for each further camera
        proprio.npy          float32 (N, 4)
        actions.npy          float32 (N, 4); row i is the action taken at frame i, the
                             last frame of each episode has zeros (no action taken)
        object_pose.npy      float32 (N, 7)
        distance.npy         float32 (N,)
        success.npy          bool (N,)
        goal_pixels*.npy     uint8 (E, H, W, 3), one goal image per episode
        goal_proprio.npy     float32 (E, 4)
        episodes.json        per episode: task, seed, policy, noise, start row, frames, ...

Why uncompressed memory-mapped `.npy`: training reads random windows of a few frames, and
an mmap serves a window as a slice without decoding anything (`python -m envs.benchmark`
measures it against compressed `.npz`). A shard is written into a temporary directory and
renamed into place, so a killed collection never leaves a half-written shard behind.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import envs

MANIFEST = "manifest.json"
_PER_FRAME = ("proprio", "actions", "object_pose", "distance", "success")


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def write_shard(root: Path, index: int, episodes: list[dict], meta: list[dict]) -> dict:
    """Write recorded episodes (from `envs.rollout.rollout`) as shard `index`, atomically.

    Returns the shard's summary for the manifest."""
    final = root / shard_name(index)
    tmp = root / f".{shard_name(index)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pixel_keys = sorted(k for k in episodes[0] if k.startswith("pixels"))
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in (*pixel_keys, *_PER_FRAME)}
    goals: dict[str, list[np.ndarray]] = {f"goal_{k}": [] for k in (*pixel_keys, "proprio")}
    start = 0
    for position, (episode, info) in enumerate(zip(episodes, meta)):
        frames = len(episode["pixels"])
        for k in pixel_keys:
            arrays[k].append(episode[k])
        arrays["proprio"].append(episode["proprio"])
        arrays["actions"].append(np.concatenate([episode["actions"],
                                                 np.zeros((1, 4), np.float32)]))
        arrays["object_pose"].append(episode["object_pose"])
        arrays["distance"].append(episode["distance"])
        arrays["success"].append(episode["success_flags"])
        for k in goals:
            goals[k].append(episode[k])
        info.update(index_in_shard=position, start=start, frames=frames,
                    success=episode["success"],
                    final_distance=episode["final_distance"],
                    goal_state=np.asarray(episode["goal_state"]).tolist())
        start += frames
    for k, parts in (*arrays.items(), *goals.items()):
        np.save(tmp / f"{k}.npy", np.concatenate(parts) if k in arrays else np.stack(parts))
    (tmp / "episodes.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)  # a stale shard not in the manifest
    os.replace(tmp, final)
    return {"episodes": len(episodes), "frames": start}


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives: its shard, first row and frame count, and its metadata."""

    shard: int
    start: int
    frames: int
    meta: dict


class EpisodeDataset:
    """Random access to the episodes of one collection directory (memory-mapped).

    `episodes` selects a subset by global episode index (e.g. a train/val split)."""

    def __init__(self, root: str | Path, *, episodes: list[int] | None = None):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.exists():
            raise FileNotFoundError(
                f"no {MANIFEST} in {self.root}: collect data first with "
                f"`python -m envs.collect out_dir={self.root}`")
        self.manifest = json.loads(manifest_path.read_text())
        self._shards: dict[int, dict[str, np.ndarray]] = {}
        refs = []
        for name in sorted(self.manifest["shards"]):
            shard = int(name.split("_")[1])
            for meta in json.loads((self.root / name / "episodes.json").read_text()):
                refs.append(EpisodeRef(shard, meta["start"], meta["frames"], meta))
        self.indices = list(range(len(refs))) if episodes is None else list(episodes)
        self.refs = [refs[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def cameras(self) -> list[str]:
        """The pixel arrays stored: `pixels` plus `pixels_<camera>` for extra cameras."""
        return ["pixels"] + [f"pixels_{c}" for c in self.manifest["config"]["cameras"][1:]]

    def arrays(self, shard: int) -> dict[str, np.ndarray]:
        """The memory-mapped arrays of one shard."""
        if shard not in self._shards:
            directory = self.root / shard_name(shard)
            self._shards[shard] = {p.stem: np.load(p, mmap_mode="r")
                                   for p in directory.glob("*.npy")}
        return self._shards[shard]

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Every per-frame array of episode `i` (of this subset), plus its goal."""
        ref = self.refs[i]
        arrays = self.arrays(ref.shard)
        rows = slice(ref.start, ref.start + ref.frames)
        out = {k: np.asarray(v[rows]) for k, v in arrays.items() if not k.startswith("goal_")}
        k = ref.meta["index_in_shard"]
        out.update({key: np.asarray(v[k]) for key, v in arrays.items() if key.startswith("goal_")})
        out["actions"] = out["actions"][:-1]
        return out

    def contact_points(self, ref: EpisodeRef, rows: slice) -> np.ndarray:
        """float32 (n, 3): the task's contact point (`envs.task.Task.contact_point`) at `rows`
        of episode `ref`, from the recorded object state. That is simulator state: whatever
        is trained on it is reported as a separate variant."""
        pose = np.asarray(self.arrays(ref.shard)["object_pose"][rows], dtype=np.float32)
        return envs.task_class(ref.meta["task"])().contact_point(pose)

    def split(self, val_fraction: float = 0.1,
              seed: int = 0) -> tuple[EpisodeDataset, EpisodeDataset]:
        """A random split of this subset into train and held-out episodes."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"{val_fraction=} must be in (0, 1)")
        order = np.random.default_rng(seed).permutation(len(self.indices))
        n_val = max(1, int(round(val_fraction * len(order))))
        val = sorted(self.indices[i] for i in order[:n_val])
        train = sorted(self.indices[i] for i in order[n_val:])
        return (EpisodeDataset(self.root, episodes=train), EpisodeDataset(self.root, episodes=val))


class VideoClips:
    """Map-style dataset of video clips: item -> uint8 (T, H, W, 3).

    A clip takes `num_frames` frames `frameskip` apart; clip starts are `stride` frames
    apart within each episode. Works with `torch.utils.data.DataLoader` as it is."""

    def __init__(self, dataset: EpisodeDataset, num_frames: int, *, frameskip: int = 1,
                 stride: int = 1, camera: str = "pixels"):
        if num_frames < 1 or frameskip < 1 or stride < 1:
            raise ValueError(f"{num_frames=}, {frameskip=} and {stride=} must be >= 1")
        if camera not in dataset.cameras:
            raise ValueError(f"{camera=} is not stored; stored cameras: {dataset.cameras}")
        self.dataset, self.num_frames, self.frameskip, self.camera = (
            dataset, num_frames, frameskip, camera)
        span = (num_frames - 1) * frameskip + 1
        self.index = [(e, s) for e, ref in enumerate(dataset.refs)
                      for s in range(0, ref.frames - span + 1, stride)]
        if not self.index:
            raise ValueError(f"no episode has the {span} frames a clip of {num_frames} frames "
                             f"with frameskip {frameskip} needs")

    def __len__(self) -> int:
        return len(self.index)

    def _rows(self, i: int) -> tuple[EpisodeRef, np.ndarray]:
        episode, start = self.index[i]
        ref = self.dataset.refs[episode]
        return ref, ref.start + start + self.frameskip * np.arange(self.num_frames)

    def __getitem__(self, i: int) -> np.ndarray:
        ref, rows = self._rows(i)
        return np.asarray(self.dataset.arrays(ref.shard)[self.camera][rows[0]:rows[-1] + 1:
                                                                       self.frameskip])


class ActionWindows(VideoClips):
    """Map-style dataset of windows for action-conditioned training: item -> dict with
    `frames` uint8 (T, H, W, 3), `proprio` float32 (T, 4), `actions` float32
    (T - 1, frameskip * 4): the control actions between consecutive frames, grouped, as
    DINO-WM and JEPA-WMs group `frameskip` control steps into one model step.

    With `object_state=True` the `proprio` of each frame is followed by the task's contact
    point (T, 7), from the recorded object state (`EpisodeDataset.contact_points`)."""

    frames_key = "frames"  # the name of the per-frame observation in an item

    def __init__(self, dataset: EpisodeDataset, num_frames: int, *, frameskip: int = 1,
                 stride: int = 1, camera: str = "pixels", object_state: bool = False):
        super().__init__(dataset, num_frames, frameskip=frameskip, stride=stride,
                         camera=camera)
        self.object_state = object_state

    def _frames(self, ref: EpisodeRef, first: int, last: int) -> np.ndarray:
        """The observations of rows first..last (inclusive), `frameskip` apart."""
        return np.asarray(self.dataset.arrays(ref.shard)[self.camera][first:last + 1:
                                                                      self.frameskip])

    def motion(self, i: int) -> dict[str, np.ndarray]:
        """Window `i` without its observations: `proprio` (T, 4, or 7 with the object
        state) and `actions` (T - 1, frameskip * 4)."""
        ref, rows = self._rows(i)
        arrays = self.dataset.arrays(ref.shard)
        first, last = int(rows[0]), int(rows[-1])
        frames = slice(first, last + 1, self.frameskip)
        proprio = np.asarray(arrays["proprio"][frames])
        if self.object_state:
            proprio = np.concatenate([proprio, self.dataset.contact_points(ref, frames)], -1)
        return {"proprio": proprio,
                "actions": np.asarray(arrays["actions"][first:last]).reshape(
                    self.num_frames - 1, self.frameskip * 4)}

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        ref, rows = self._rows(i)
        return {self.frames_key: self._frames(ref, int(rows[0]), int(rows[-1])),
                **self.motion(i)}
