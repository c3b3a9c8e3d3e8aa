"""Useful (non-pad) tokens per second: packed blocks vs one chunk per row padded to 512.

    python -m benchmarks.bench_train [--index DIR] [--steps N] [--device cpu|cuda] [--precision bf16]

Both recipes train the same randomly initialised GPT-2 124M (``GPT2Config()`` defaults) on
the same chunks, in the same process, for the same number of optimizer steps (batch 2,
AdamW, lr 5e-5), after one untimed warm-up step each:

- padded (the usual recipe, the baseline): one chunk per row, ``truncation=True,
  padding="max_length"``, 512 tokens, attention mask, pad labels ignored (-100);
- packed (training/): chunks joined with the document separator (``<|endoftext|>`` for
  SmolLM2, never its chat end-of-turn ``<|im_end|>``) and cut into full 512-token blocks,
  no mask.

The real GPT-2 tokenizer cannot be fetched offline, so the packaged SmolLM2 tokenizer (a
49k byte-level BPE like GPT-2's 50k) stands in unless ``--tokenizer`` names another.
The last line is ``ratio packed/padded useful tokens/s: X.XX``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from core.config import add_settings_args, settings_from_args
from core.errors import BookwormError, StoreError
from core.layout import IndexFiles
from indexing.records import read_chunks
from training.data import pack, pad_to_max_length, separator_id

# training's default block_size (and batch_size 2 below), so the ratio speaks for `make train`;
# padded rows and packed blocks of one length compare token for token
ROW_TOKENS = 512


def default_tokenizer_path(cache_dir: str | None) -> str:
    """The packaged SmolLM2 tokenizer folder (converted once into the cache)."""
    from core.sources import OFFLINE_LM, resolve_lm

    return resolve_lm(OFFLINE_LM, cache_dir=cache_dir).path


def batches(rows: list[list[int]], batch_size: int, n: int, seed: int) -> list[list[list[int]]]:
    """``n`` batches of rows drawn in a seeded shuffled order (as the Trainer's sampler would)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    order = (order * (1 + n * batch_size // max(1, len(order))))[: n * batch_size]
    return [[rows[i] for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


def run_recipe(
    name: str, rows: list[list[int]], pad_id: int | None, args: argparse.Namespace, device: Any
) -> dict[str, float]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(GPT2Config()).to(device)  # 124M, random init: speed, not quality
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler(enabled=args.precision == "fp16" and device.type == "cuda")
    plan = batches(rows, args.batch_size, args.steps + 1, args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    useful, started = 0, 0.0
    for step, batch in enumerate(plan):
        if step == 1:  # step 0 warms up (allocator, kernels) and is not timed
            _sync(device)
            started = time.perf_counter()
        ids = torch.tensor(batch, device=device)  # (B, T)
        labels, mask = ids, None
        if pad_id is not None:
            mask = (ids != pad_id).long()  # padded rows: chunk tokens then pads
            mask[:, 0] = 1
            labels = ids.masked_fill(mask == 0, -100)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if step >= 1:
            useful += int(mask.sum()) if mask is not None else ids.numel()
        print(f"  {name}: step {step}/{args.steps} loss {loss.item():.3f}", file=sys.stderr, flush=True)
    _sync(device)
    seconds = time.perf_counter() - started
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak so far (MiB)
    return {"tokens_per_s": useful / seconds, "seconds": seconds, "useful_tokens": useful, "peak_mib": peak}


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_train", description=(__doc__ or "").split("\n")[0]
    )
    add_settings_args(parser, "index_dir", "cache_dir")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per recipe (default 3)")
    parser.add_argument(
        "--batch-size", type=int, default=2, help="rows per step (training's default batch_size)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast dtype; auto = bf16 on CUDA and on bf16-capable CPUs, else fp32",
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: packaged SmolLM2's)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        path = IndexFiles(settings.index_dir).chunks
        if not path.exists():
            raise StoreError(f"no {IndexFiles.CHUNKS} in {settings.index_dir}: run `make index` first")
        device = choose_device(args)
        tok_path = args.tokenizer or default_tokenizer_path(settings.cache_dir or None)
        padded, packed, pad_id = build_rows(path, tok_path, args)
        results = {
            name: run_and_report(name, rows, pid, args, device)
            for name, rows, pid in (("padded", padded, pad_id), ("packed", packed, None))
        }
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ratio = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    print(f"ratio packed/padded useful tokens/s: {ratio:.2f}")
    return 0


def choose_device(args: argparse.Namespace) -> Any:
    """The torch device; settles ``--precision auto`` (bf16 where the device supports it)."""
    import torch

    from core.hardware import cpu_supports_bf16

    if args.device == "cuda" and not torch.cuda.is_available():
        raise BookwormError("--device cuda: no CUDA GPU is visible")
    if args.precision == "auto":
        bf16 = torch.cuda.is_bf16_supported() if args.device == "cuda" else cpu_supports_bf16()
        args.precision = "bf16" if bf16 else "fp32"
    return torch.device(args.device)


def build_rows(
    path: Path, tok_path: str, args: argparse.Namespace
) -> tuple[list[list[int]], list[list[int]], int]:
    """The chunks tokenised once, laid out both ways: (padded rows, packed blocks, pad id); prints
    what each holds."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    texts = [c.text for c in read_chunks(path)]
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    padded = pad_to_max_length(ids, ROW_TOKENS, pad_id)
    try:
        sep_id = separator_id(tokenizer)  # what training packs with, so the blocks match
    except ValueError as e:
        raise BookwormError(f"tokenizer {tok_path}: {e}") from e
    packed = pack(ids, ROW_TOKENS, sep_id)
    useful_share = sum(min(len(x), ROW_TOKENS) for x in ids) / (len(ids) * ROW_TOKENS)
    print(
        f"bench-train: {len(texts)} chunks from {path}; tokenizer {tok_path} (stands in for gpt2's); "
        f"GPT-2 124M random init; {args.device} {args.precision}; batch {args.batch_size} x 512; "
        f"{args.steps} timed steps each (+1 warm-up)\n"
        f"padded rows: {len(padded)} ({useful_share:.0%} of their tokens are text); "
        f"packed blocks: {len(packed)} (100% text)",
        flush=True,
    )
    if args.device == "cpu":
        print(f"CPU threads: {torch.get_num_threads()}", flush=True)
    return padded, packed, pad_id


def run_and_report(
    name: str, rows: list[list[int]], pad_id: int | None, args: argparse.Namespace, device: Any
) -> dict[str, float]:
    """:func:`run_recipe`, then its line: useful tokens/s and peak memory."""
    r = run_recipe(name, rows, pad_id, args, device)
    mem = "peak GPU memory" if args.device == "cuda" else "peak process RSS"
    print(
        f"{name:>7}: {r['tokens_per_s']:8.1f} useful tokens/s "
        f"({r['useful_tokens']} in {r['seconds']:.1f} s), "
        f"{mem} {r['peak_mib']:.0f} MiB",
        flush=True,
    )
    return r


if __name__ == "__main__":
    sys.exit(main())
