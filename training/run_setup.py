"""A fine-tuning run made ready to train: data read, split, tokenised and packed; the base model
loaded (with LoRA adapters when asked); device, precision and the Trainer's arguments chosen; the
work folder's checkpoint continued or emptied.

Cheap checks come first, so a missing or malformed index fails before any model loads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from core.sources import LMSource, context_window, load_lm, resolve_lm
from training.hyperparameters import Hyperparameters
from training.lora import with_lora
from training.prepare import Data, read_data, tokenize_and_pack
from training.runs import resume_key, resume_or_start_over, run_key, start_work_dir
from training.trainer import choose_device_precision, training_arguments


@dataclasses.dataclass
class Setup:
    """A run ready to train: its data (split, tokenised, packed), the base model, the Trainer's
    arguments, and the work folder's decision (the checkpoint to continue from, or None)."""

    data: Data
    source: LMSource
    model: Any
    tokenizer: Any
    device: str
    precision: str
    args: Any  # transformers.TrainingArguments
    want: dict[str, Any]  # what the checkpoints are made from (run.json's key)
    checkpoint: str | None


def set_up(
    index_dir: Path,
    work: Path,
    base_model: str,
    hp: Hyperparameters,
    resume: bool,
    offline_fallback: bool,
    cache_dir: str | Path | None,
    log: Any,
) -> Setup:
    """Read and split the chunks, load the base, choose device and precision, continue or start
    over in the work folder, then tokenise and pack (cheap checks first: a bad index fails fast)."""
    data = read_data(index_dir, hp.eval_fraction)
    source, model, tokenizer = load_base(base_model, offline_fallback, cache_dir, log)
    model = with_lora(model, hp.lora_rank, log)
    device, precision = choose_device_precision(hp.precision)
    args = training_arguments(hp, work, device, precision)
    want = resume_key(run_key(data.chunks_sha256, base_model, hp), source.name)
    checkpoint = open_work_dir(work, resume, want, args, log)
    block_size = min(hp.block_size, context_window(model, tokenizer))
    tokenize_and_pack(data, tokenizer, block_size, hp.eval_blocks, args, cache_dir, log)
    return Setup(data, source, model, tokenizer, device, precision, args, want, checkpoint)


def load_base(
    base_model: str, offline_fallback: bool, cache_dir: str | Path | None, log: Any
) -> tuple[LMSource, Any, Any]:
    import torch  # heavy imports after the cheap checks, so a missing index fails fast

    source = resolve_lm(base_model, offline_fallback=offline_fallback, cache_dir=cache_dir)
    note = f" (instead of {base_model!r}: {source.fallback_reason})" if source.fallback_reason else ""
    log(f"Base model: {source.description}{note}")
    model, tokenizer = load_lm(source, dtype=torch.float32)  # fp32 master weights; autocast does bf16
    return source, model, tokenizer


def open_work_dir(work: Path, resume: bool, want: dict[str, Any], args: Any, log: Any) -> str | None:
    """The checkpoint to continue from, or None after emptying the work folder; says which."""
    with args.main_process_first(desc="work folder"):  # rank 0 empties it first: the others then agree
        decision = resume_or_start_over(work, resume, want)
        if args.process_index == 0:
            start_work_dir(work, decision)
    log(decision.message)
    return decision.checkpoint
