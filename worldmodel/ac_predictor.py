"""The action-conditioned predictor: from the frozen encoder's per-frame patch tokens, the
actions and the proprio of frames 0..t, predict the tokens (and proprio) of frame t+1.

One pass over T frames predicts every step: attention is frame-causal (block-causal), as
in V-JEPA 2-AC and DINO-WM (without the mask DINO-WM's success collapses with history).
Actions and proprio condition the frame they follow, either by AdaLN modulation of every
block (JEPA-WMs found it better) or as two extra tokens per frame (V-JEPA 2-AC); the
config chooses, `reports/ac_conditioning.json` records the measured comparison.

Planning rolls out many action sequences from one context: `context()` runs the observed
frames once and keeps every layer's keys and values; `imagine()` then processes only the
new frame of each sample at each step, attending to that cache (a KV cache, preallocated
for all samples and appended to in place), so a rollout of H steps costs H frames per
sample, not H^2 / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldmodel.config import DictConfig
from worldmodel.transformer import Attention, sincos_1d, sincos_2d

CONDITIONINGS = ("adaln", "tokens")
ROBOT_PROPRIO_DIM = 4  # gripper xyz and finger gap
# blocked: the gripper moved less than this share of the motion its actions command (in play
# data, train_ac.blocked_steps) or the predictor imagined (while planning, objective.stuck)
BLOCKED_RATIO = 0.4
MIN_COMMANDED = 0.02  # m; only steps commanded (or imagined) to move at least this much count


@dataclass
class ACConfig(DictConfig):
    dim: int = 128  # predictor width
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / width
    conditioning: str = "adaln"  # "adaln" (JEPA-WMs) or "tokens" (V-JEPA 2-AC)
    frameskip: int = 4  # control steps grouped into one model step (DINO-WM, JEPA-WMs)
    max_frames: int = 8  # longest sequence (context + imagined frames) it can take

    def __post_init__(self):
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"{self.conditioning=} must be one of {CONDITIONINGS}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"{self.dim=} must be divisible by 2 * {self.heads=}")
        if self.dim % 4:
            raise ValueError(f"{self.dim=} must be divisible by 4")
        for name in ("depth", "frameskip", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")


def frame_causal_mask(frames: int, tokens_per_frame: int, device=None) -> torch.Tensor:
    """Bool (L, L), L = frames * tokens_per_frame: True where a token may attend, i.e. to
    every token of its own frame and of earlier frames."""
    frame = torch.arange(frames, device=device).repeat_interleave(tokens_per_frame)
    return frame[:, None] >= frame[None, :]


class KVBuffer:
    """One layer's keys and values for N imagined samples, preallocated: the observed
    context's written once (shared by every sample), each imagined frame's appended in
    place, so a step does not copy the whole past again as concatenation would."""

    def __init__(self, past: tuple[torch.Tensor, torch.Tensor] | None, n: int, heads: int,
                 length: int, head_dim: int, like: torch.Tensor):
        """past: keys and values (1, heads, L_past, head_dim) of the context, or None;
        room for `length` tokens in all."""
        self.k = like.new_empty(n, heads, length, head_dim)
        self.v = like.new_empty(n, heads, length, head_dim)
        self.start = 0 if past is None else past[0].shape[2]
        if past is not None:
            self.k[:, :, :self.start] = past[0]
            self.v[:, :, :self.start] = past[1]
        self.end = self.start

    def rewind(self) -> None:
        """Forget the imagined frames; keep the context."""
        self.end = self.start

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add keys and values (N, heads, L, head_dim); returns all so far (views)."""
        end = self.end + k.shape[2]
        self.k[:, :, self.end:end] = k
        self.v[:, :, self.end:end] = v
        self.end = end
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalAttention(Attention):
    """Multi-head attention that can also attend to cached keys/values of earlier frames."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                cache: KVBuffer | None = None):
        """x: (N, L, D). mask: bool (L, L) among x's tokens. cache: the keys and values of
        earlier frames, which every token of x may attend to (x's are appended to it).
        Returns the output (N, L, D) and x's own keys and values (the context's cache)."""
        q, k, v = rearrange(self.qkv(x), "n l (three h e) -> three n h l e", three=3,
                            h=self.heads)
        own = k, v
        if cache is not None:
            assert mask is None, "a KVBuffer is for imagined frames, attending to all the past"
            k, v = cache.append(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(rearrange(out, "n h l e -> n l (h e)")), own


class ACBlock(nn.Module):
    """Pre-norm block; with AdaLN, a per-frame condition sets each norm's scale and shift
    and gates each residual branch (adaLN-Zero, initialised to the identity)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, adaln: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not adaln)
        self.attn = CausalAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not adaln)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        # zero-initialised by ACPredictor (adaLN-Zero)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) if adaln else None

    def forward(self, x, cond=None, mask=None, cache=None):
        """x: (N, T * L, D), L tokens per frame; cond: (N, T, D) per-frame condition
        (AdaLN) or None. Returns the new x and its own keys and values."""
        if self.modulation is None:
            out, kv = self.attn(self.norm1(x), mask, cache)
            x = x + out
            return x + self.mlp(self.norm2(x)), kv
        # modulation per frame, broadcast over the frame's tokens (not computed per token)
        T = cond.shape[1]
        mods = rearrange(self.modulation(cond), "n t (six d) -> six n t 1 d", six=6)
        shift1, scale1, gate1, shift2, scale2, gate2 = mods

        def per_frame(h, scale, shift):  # (N, T * L, D) modulated frame by frame
            h = rearrange(h, "n (t l) d -> n t l d", t=T) * (1 + scale) + shift
            return rearrange(h, "n t l d -> n (t l) d")

        def gated(h, gate):
            return per_frame(h, gate - 1, 0.0)  # h * gate

        out, kv = self.attn(per_frame(self.norm1(x), scale1, shift1), mask, cache)
        x = x + gated(out, gate1)
        return x + gated(self.mlp(per_frame(self.norm2(x), scale2, shift2)), gate2), kv


class ACPredictor(nn.Module):
    """Predicts frame t+1's patch tokens and proprio from frames <= t.

    Dimensions come from the encoder and the env: `num_patches` P and `feature_dim` D of
    the encoder's tokens, `action_dim` and `proprio_dim` of one control step."""

    def __init__(self, cfg: ACConfig, *, num_patches: int, feature_dim: int,
                 action_dim: int = 4, proprio_dim: int = 4):
        super().__init__()
        self.cfg = cfg
        self.num_patches, self.feature_dim = num_patches, feature_dim
        self.action_dim = action_dim * cfg.frameskip  # A, per model step
        self.proprio_dim = proprio_dim
        grid = int(round(num_patches**0.5))
        assert grid * grid == num_patches, f"{num_patches=} must be a square grid"
        D = cfg.dim
        self.embed = nn.Linear(feature_dim, D)
        self.action_embed = nn.Sequential(nn.Linear(self.action_dim, D), nn.SiLU(),
                                          nn.Linear(D, D))
        self.proprio_embed = nn.Sequential(nn.Linear(proprio_dim, D), nn.SiLU(),
                                           nn.Linear(D, D))
        self.register_buffer("spatial_pos", sincos_2d(grid, D), persistent=False)
        self.register_buffer("temporal_pos", sincos_1d(cfg.max_frames, D), persistent=False)
        adaln = cfg.conditioning == "adaln"
        self.blocks = nn.ModuleList(ACBlock(D, cfg.heads, cfg.mlp_ratio, adaln)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, feature_dim)
        self.proprio_head = nn.Linear(D, proprio_dim)
        # proprio is standardised with the training data's statistics (set by train_ac)
        self.register_buffer("proprio_mean", torch.zeros(proprio_dim))
        self.register_buffer("proprio_std", torch.ones(proprio_dim))
        self.apply(_init)
        for layer in (self.head, self.proprio_head):
            nn.init.zeros_(layer.weight)
        for block in self.blocks:
            if block.modulation is not None:
                nn.init.zeros_(block.modulation[1].weight)
                nn.init.zeros_(block.modulation[1].bias)

    @property
    def object_state(self) -> bool:
        """Whether the state after the robot's proprio holds the task's contact point (xyz),
        which the predictor then imagines too (`train_ac object_state=true`, a variant
        trained on recorded object state)."""
        return self.proprio_dim == ROBOT_PROPRIO_DIM + 3

    @property
    def extra_tokens(self) -> int:
        """Tokens per frame besides the patches (the action and proprio tokens)."""
        return 2 if self.cfg.conditioning == "tokens" else 0

    def _frame_tokens(self, z, actions, proprio, first_frame: int):
        """Embed frames: z (N, T, P, D_feat), actions (N, T, A), proprio (N, T, S) ->
        tokens (N, T * (P + extra), D) and the AdaLN condition (N, T, D) (or None)."""
        N, T, P, _ = z.shape
        assert P == self.num_patches, f"{P=} patches, the predictor takes {self.num_patches}"
        assert T + first_frame <= self.cfg.max_frames, (
            f"frames {first_frame}..{first_frame + T - 1} exceed max_frames="
            f"{self.cfg.max_frames}")
        assert actions.shape == (N, T, self.action_dim), (
            f"actions {tuple(actions.shape)} should be {(N, T, self.action_dim)}")
        assert proprio.shape == (N, T, self.proprio_dim), (
            f"proprio {tuple(proprio.shape)} should be {(N, T, self.proprio_dim)}")
        time = self.temporal_pos[first_frame:first_frame + T]  # (T, D)
        x = self.embed(z) + self.spatial_pos + time[:, None]  # (N, T, P, D)
        a = self.action_embed(actions)  # (N, T, D)
        s = self.proprio_embed((proprio - self.proprio_mean) / self.proprio_std)
        if self.cfg.conditioning == "tokens":
            extra = torch.stack([a, s], dim=2) + time[:, None]  # (N, T, 2, D)
            return rearrange(torch.cat([extra, x], dim=2), "n t l d -> n (t l) d"), None
        return rearrange(x, "n t p d -> n (t p) d"), a + s  # condition (N, T, D)

    def _readout(self, x: torch.Tensor, z: torch.Tensor, proprio: torch.Tensor):
        """Final tokens (N, T * (P + extra), D) and the input frames z (N, T, P, D_feat),
        proprio (N, T, S) -> the next frames' features (N, T, P, D_feat) and proprio.

        Both are predicted as a change of the input (heads initialised to zero: an
        untrained model predicts "nothing moves"), since consecutive frames differ little."""
        x = rearrange(self.norm(x), "n (t l) d -> n t l d", t=z.shape[1])
        x = x[:, :, self.extra_tokens:]
        z = F.layer_norm(z + self.head(x), (self.feature_dim,))  # targets are layer-normed
        proprio = proprio + self.proprio_head(x.mean(dim=2)) * self.proprio_std
        return z, proprio

    def forward(self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor):
        """Teacher-forced one-pass prediction. z: (B, T, P, D) tokens of frames 0..T-1;
        actions: (B, T, A), the action after each frame; proprio: (B, T, S).
        Returns predictions of frames 1..T: tokens (B, T, P, D) and proprio (B, T, S)."""
        x, cond = self._frame_tokens(z, actions, proprio, 0)
        T = z.shape[1]
        mask = frame_causal_mask(T, self.num_patches + self.extra_tokens, z.device)
        for block in self.blocks:
            x, _ = block(x, cond, mask)
        return self._readout(x, z, proprio)

    def context(self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor):
        """Run the observed frames before the current one once and cache them.

        z: (1, C, P, D) with actions (1, C, A) and proprio (1, C, S) of those frames
        (C may be 0). Returns the per-layer key/value cache for `imagine`."""
        C = z.shape[1]
        if C == 0:
            return {"frames": 0, "kv": None}
        x, cond = self._frame_tokens(z, actions, proprio, 0)
        mask = frame_causal_mask(C, self.num_patches + self.extra_tokens, z.device)
        kv = []
        for block in self.blocks:
            x, own = block(x, cond, mask)
            kv.append(own)
        return {"frames": C, "kv": kv}

    def imagine(self, cache: dict, z: torch.Tensor, proprio: torch.Tensor,
                actions: torch.Tensor):
        """Roll out from the current frame under N action sequences.

        cache: from `context`; z: (1, P, D) current tokens; proprio: (1, S);
        actions: (N, H, A). Returns imagined tokens (N, H, P, D) of the next H frames and
        their proprio (N, H, S)."""
        N, H, A = actions.shape
        assert A == self.action_dim, f"actions have {A=}, the predictor takes {self.action_dim}"
        buffers = self._kv_buffers(cache, z, N, H)
        z = z.expand(N, -1, -1)
        proprio = proprio.expand(N, -1)
        out_z, out_s = [], []
        for h in range(H):
            x, cond = self._frame_tokens(z[:, None], actions[:, h:h + 1], proprio[:, None],
                                         cache["frames"] + h)
            for block, buffer in zip(self.blocks, buffers):
                x, _ = block(x, cond, None, buffer)  # this frame's keys appended to the past
            z_next, s_next = self._readout(x, z[:, None], proprio[:, None])
            z, proprio = z_next[:, 0], s_next[:, 0]
            out_z.append(z)
            out_s.append(proprio)
        return torch.stack(out_z, dim=1), torch.stack(out_s, dim=1)

    def _kv_buffers(self, cache: dict, z: torch.Tensor, n: int, horizon: int) -> list[KVBuffer]:
        """Each block's KVBuffer for n samples and `horizon` imagined frames after the
        cached context, kept in `cache` and reused (rewound) by later calls: planning
        imagines the same number of samples from one context at every iteration."""
        tokens = self.num_patches + self.extra_tokens
        length = (cache["frames"] + horizon) * tokens
        buffers = cache.setdefault("buffers", {}).get(n)
        if buffers is None or buffers[0].k.shape[2] < length:
            heads = self.cfg.heads
            past = cache["kv"] or [None] * len(self.blocks)
            buffers = [KVBuffer(kv, n, heads, length, self.cfg.dim // heads, z)
                       for kv in past]
            cache["buffers"][n] = buffers
        for buffer in buffers:
            buffer.rewind()
        return buffers


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
