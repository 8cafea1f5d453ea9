"""What the machine can do, measured: matmul peaks and the precision to train in.

bf16 autocast is not always a speed-up on a CPU. ANCHORS.md records ~950 vs ~230 GFLOP/s
(bf16 vs fp32) on a CPU with AVX-512 BF16; on an AMD EPYC with AVX2 only, of the same
machine kind, we measured 1 vs 128 GFLOP/s: bf16 ~100x *slower*. So `precision="auto"`
measures both and picks the faster.
"""

from __future__ import annotations

import functools
import logging
import time

import torch

log = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={requested!r} but CUDA is not available; use device=cpu")
    return torch.device(requested)


@functools.cache
def matmul_peak(device_type: str, dtype: torch.dtype, size: int = 1024) -> float:
    """Measured dense matmul throughput (FLOP/s) for `dtype` on `device_type`."""
    device = torch.device(device_type)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b  # warm-up
    repeats, elapsed = 0, 0.0
    while elapsed < 0.2 and repeats < 200:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - start
        repeats += 1
    return 2 * size**3 * repeats / elapsed


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` ("auto", "bf16" or "fp32"); None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"{precision=} must be 'auto', 'bf16' or 'fp32'")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    bf16, fp32 = matmul_peak("cpu", torch.bfloat16), matmul_peak("cpu", torch.float32)
    log.info("matmul peak: bf16 %.0f GFLOP/s, fp32 %.0f GFLOP/s", bf16 / 1e9, fp32 / 1e9)
    return torch.bfloat16 if bf16 > 1.2 * fp32 else None
