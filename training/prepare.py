"""The data one run trains on and scores: body chunks, split, tokenised, packed, capped."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.sources import cache_root
from indexing.records import Chunk
from training.budget import EVAL_SHARE
from training.chunks import body_chunks, read_index
from training.data import Split, pack, separator_id, split_chunks, spread, tokenize_texts
from training.evaluate import eval_blocks
from training.ranks import min_across_ranks
from training.trainer import BlockDataset, seconds_per_block


@dataclasses.dataclass
class Data:
    """What one run trains on and scores."""

    chunks_sha256: str
    index_manifest: dict[str, Any]
    non_body: int  # chunks left out: tables of contents, index pages
    split: Split
    body: list[Chunk] = dataclasses.field(default_factory=list)  # every body chunk, in index order
    separator: int = 0
    train_blocks: list[list[int]] = dataclasses.field(default_factory=list)
    held_out: list[list[int]] = dataclasses.field(default_factory=list)


def read_data(index_dir: Path, eval_fraction: float) -> Data:
    """The body chunks, split into training and held-out text."""
    all_chunks, chunks_sha, index_manifest = read_index(index_dir)
    chunks = body_chunks(all_chunks)  # contents and index pages: neither training nor held-out text
    split = split_chunks(chunks, eval_fraction)
    if not split.train or not split.eval:
        raise ConfigError(
            f"cannot hold out {eval_fraction:.0%} of {len(chunks)} body chunks: every file needs 2+ chunks"
        )
    return Data(chunks_sha, index_manifest, len(all_chunks) - len(chunks), split, chunks)


def tokenize_and_pack(
    data: Data,
    tokenizer: Any,
    block_size: int,
    max_eval_blocks: int,
    args: Any,
    cache_dir: str | Path | None,
    log: Any,
) -> None:
    with args.main_process_first(desc="tokenise"):  # rank 0 fills the cache, the others read it
        tok_cache = cache_root(cache_dir) / "tokenized"
        train_ids = tokenize_texts([c.text for c in data.split.train], tokenizer, tok_cache)
        eval_ids = tokenize_texts([c.text for c in data.split.eval], tokenizer, tok_cache)
    data.separator = separator_id(tokenizer)  # the document separator, never the chat end-of-turn
    data.train_blocks = pack(train_ids, block_size, data.separator)
    data.held_out = eval_blocks(eval_ids, block_size, data.separator, max_eval_blocks)
    log(
        f"Data: {len(data.split.train)} training chunks -> {len(data.train_blocks)} blocks "
        f"of {len(data.train_blocks[0])} tokens; "
        f"{len(data.split.eval)} held-out chunks -> {len(data.held_out)} blocks scored"
        + (f"; {data.non_body} contents/index chunks left out" if data.non_body else "")
    )


def fit_held_out(
    data: Data, trainer: Any, run_state: dict[str, Any], time_budget: float, precision: str, log: Any
) -> None:
    """Score only as many held-out blocks as fit EVAL_SHARE of the budget (a continued run: as before)."""
    held_out, args = data.held_out, trainer.args
    if run_state.get("eval_blocks_used"):
        held_out = [held_out[i] for i in spread(len(held_out), run_state["eval_blocks_used"])]
    elif time_budget > 0:
        per_block = seconds_per_block(trainer.model, held_out[0], args.device, precision)
        # every rank scores the same blocks, as many as the slowest rank fits
        fit = min_across_ranks(max(2, int(EVAL_SHARE * time_budget * 60 / per_block)), args)
        if fit < len(held_out):
            log(
                f"Scoring {fit} of {len(held_out)} held-out blocks (~{per_block:.1f} s each) "
                "to fit the time budget"
            )
            held_out = [held_out[i] for i in spread(len(held_out), fit)]
    data.held_out = held_out
    trainer.eval_dataset = BlockDataset(held_out)
