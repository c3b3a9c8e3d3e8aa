"""What this machine can do, for choices several packages make (training precision, embedding speed)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); Linux only.

    There, bf16 autocast about halves a training step and an embedding batch; elsewhere it is
    emulated and slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch where no NVIDIA device node exists.

    Importing torch costs ~1.5 s; a no-op index rebuild that only needs to know which embed backend
    "auto" means must stay well under that.
    """
    nodes = ("/dev/nvidia0", "/dev/nvidiactl", "/proc/driver/nvidia")
    if sys.platform.startswith("linux") and not any(Path(p).exists() for p in nodes):
        return False  # elsewhere (Windows) CUDA has no such node: ask torch
    import torch

    return torch.cuda.is_available()
