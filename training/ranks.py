"""Agreeing on one value across DDP ranks (``torchrun``/``accelerate launch``); a no-op in one process.

Each rank measures for itself (step times, held-out scoring speed); where every rank must then act
alike (stop on the same step, score the same held-out blocks) they settle on the largest or the
smallest of their values.
"""

from __future__ import annotations

from typing import Any


def max_across_ranks(value: int, args: Any) -> int:
    """The largest ``value`` of all ranks (``args``: the TrainingArguments, for the device)."""
    return _all_reduce(value, args, "MAX")


def min_across_ranks(value: int, args: Any) -> int:
    """The smallest ``value`` of all ranks (``args``: the TrainingArguments, for the device)."""
    return _all_reduce(value, args, "MIN")


def _all_reduce(value: int, args: Any, op: str) -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], device=args.device)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return int(t.item())
