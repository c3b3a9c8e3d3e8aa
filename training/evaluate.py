"""Held-out perplexity: exp(mean next-token loss) over packed blocks of held-out text.

The training run scores the base model and the result through the Trainer on the same
blocks; :func:`perplexity` is the same measure for any model (the eval report calls it
for the base and the fine-tuned model).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

from training.data import pack, separator_id, spread


def eval_blocks(
    token_lists: Sequence[Sequence[int]], block_size: int, eos_id: int, max_blocks: int = 0
) -> list[list[int]]:
    """The held-out blocks that get scored: packed, then ``max_blocks`` spread evenly (0 = all)."""
    blocks = pack(token_lists, block_size, eos_id)
    return [blocks[i] for i in spread(len(blocks), max_blocks)]


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    block_size: int,
    *,
    max_blocks: int = 0,
    batch_size: int = 2,
    autocast_dtype: Any = None,
) -> float:
    """Perplexity of ``model`` on ``texts``, packed as training packs them.

    Args:
        texts: held-out texts (e.g. the eval chunks of the training split), joined with the
            document separator, as training joins them.
        block_size: tokens per block; use the training run's (its manifest's hyperparameters).
        max_blocks: score at most this many blocks, spread evenly over the text (0 = all).
        autocast_dtype: e.g. ``torch.bfloat16`` to score under autocast as a bf16 run trains.

    Returns:
        ``exp`` of the token-weighted mean cross-entropy of every predicted token.
    """
    import torch

    ids = [tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] for t in texts]
    blocks = eval_blocks(ids, block_size, separator_id(tokenizer), max_blocks)
    if not blocks or all(len(b) < 2 for b in blocks):
        raise ValueError("no held-out text to score (need at least 2 tokens)")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), autocast:
            for i in range(0, len(blocks), batch_size):
                batch = torch.tensor(blocks[i : i + batch_size], device=device)  # (B, T), equal lengths
                logits = model(input_ids=batch).logits[:, :-1].float()  # (B, T-1, V)
                nll = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
                )
                total_nll += nll.item()
                total_tokens += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)
