"""What the machine can do, measured: matmul peaks and the precision to train in.

bf16 autocast is not always a speed-up on a CPU. ANCHORS.md records ~950 vs ~230 GFLOP/s
(bf16 vs fp32) on a CPU with AVX-512 BF16; on an AMD EPYC with AVX2 only, of the same
machine kind, we measured 1 vs 128 GFLOP/s: bf16 ~100x *slower*. So `precision="auto"`
measures both and picks the faster.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the
    operating system; True if it took the settings.

    Planning allocates and frees the same large activations at every imagined step (one
    MLP hidden of 64 samples x 64 tokens is 4096 x 512 floats, 8 MB). By default glibc
    serves such blocks from fresh `mmap`s, or trims them off the heap's top once freed, so
    every step pays page faults on memory it had a moment ago. Raising the mmap threshold
    to its maximum (32 MB on 64-bit) and the trim threshold to 1 GB keeps them in the heap.
    Process-wide and cheap; a no-op (False) where the C library has no `mallopt`."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
