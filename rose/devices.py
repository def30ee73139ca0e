"""What the hardware can do: the one bf16 check every stage uses (generation's dtype, training's autocast).

torch is imported inside the functions, so ``import rose`` stays light.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from ``/proc/cpuinfo``."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: str = "auto") -> bool:
    """Whether bf16 is native on ``device`` (``cuda``, ``cuda:N``, ``cpu`` or ``auto``: CUDA when present)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()
