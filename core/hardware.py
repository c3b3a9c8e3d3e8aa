"""What this machine can do, for choices several packages make (training precision, embedding speed)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 Linux); None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return flags_of(text)


def flags_of(cpuinfo: str) -> frozenset[str] | None:
    """The first "flags" line of a /proc/cpuinfo text as a set; None when it has none (not x86)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); Linux only.

    There, bf16 autocast about halves a training step and an embedding batch; elsewhere it is
    emulated and slower than fp32.
    """
    return bool((cpu_flags() or frozenset()) & {"avx512_bf16", "amx_bf16"})


def cpu_int8_dot() -> bool | None:
    """Whether the CPU multiplies int8 with dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX);
    None where its flags cannot be read.

    Without them int8 inference goes through 16-bit intermediate sums and is no faster than fp32:
    on 2 AVX2-only cores OpenVINO int8 embedded 16.2 chunks/s vs torch fp32's 16.6, and a full build
    of the sample corpus took 1.07x torch's; with AVX-512 VNNI it took 0.61-0.70x.
    """
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


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
