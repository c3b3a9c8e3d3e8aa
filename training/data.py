"""Chunks -> held-out split -> token ids -> packed blocks.

The split and the packing are pure functions (tested table-driven); only
:func:`tokenize_texts` touches a tokenizer and the ``datasets`` cache.

Packing follows ``run_clm.py``'s ``group_texts``: every chunk's ids are followed by the
tokenizer's document separator (:func:`document_separator`), the stream is concatenated and
cut into ``block_size`` blocks, and labels are the input ids (the model shifts them).
Attention runs across the separators, as in GPT-2's own pre-training. **Remainder:** the
tail shorter than one block is dropped (at most ``block_size - 1`` tokens of the whole
stream) so no training batch holds padding; only when the stream is shorter than one block
is the stream kept whole as a single short block.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from indexing.records import Chunk

SPLIT_METHOD = "evenly spaced chunks of each file (eval_fraction of them, at least 1 of 2+), overlap trimmed"
MIN_OVERLAP_CHARS = 20  # a shorter shared prefix/suffix is a coincidence, not chunk overlap
# Tokens that end a document in pre-training (GPT-2, SmolLM2, Qwen, Phi: the first; Llama 3: the second).
DOCUMENT_END_TOKENS = ("<|endoftext|>", "<|end_of_text|>")


@dataclasses.dataclass(frozen=True)
class Split:
    train: list[Chunk]
    eval: list[Chunk]

    def describe(self, eval_fraction: float) -> dict[str, Any]:
        """What the manifest records: enough to rebuild and to check the held-out set."""
        ids = [c.chunk_id for c in self.eval]
        return {
            "method": SPLIT_METHOD,
            "eval_fraction": eval_fraction,
            "eval_chunk_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "eval_chunk_ids": ids,
        }


def split_chunks(chunks: Sequence[Chunk], eval_fraction: float) -> Split:
    """Hold out ``eval_fraction`` of each file's chunks, evenly spaced (deterministic, disjoint).

    Chunk ``i`` of ``n`` is held out when it is the centre of one of ``n_eval`` equal strides,
    so the held-out text samples the whole book — a file's tail alone would be its index and
    licence pages, the most predictable text in it. Neighbouring chunks share a few sentences;
    that shared text is trimmed from each held-out chunk (:func:`trim_overlap`), so no
    held-out token is also a training token. A file with one chunk trains only.
    Order within each part is the input order.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    by_file: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_file.setdefault(c.file, []).append(c)
    train: list[Chunk] = []
    held: list[Chunk] = []
    for file_chunks in by_file.values():
        n = len(file_chunks)
        n_eval = 0
        if eval_fraction > 0 and n >= 2:
            n_eval = min(n - 1, max(1, round(n * eval_fraction)))
        picked = {((2 * j + 1) * n) // (2 * n_eval) for j in range(n_eval)}
        for i, c in enumerate(file_chunks):
            if i not in picked:
                train.append(c)
                continue
            text = c.text
            if i > 0 and i - 1 not in picked:
                text = trim_overlap(file_chunks[i - 1].text, text)
            if i + 1 < n and i + 1 not in picked:
                text = trim_overlap(file_chunks[i + 1].text[::-1], text[::-1])[::-1]  # shared suffix
            held.append(c if text == c.text else dataclasses.replace(c, text=text))
    return Split(train, held)


def trim_overlap(previous: str, text: str) -> str:
    """``text`` without its longest prefix that ends ``previous`` (chunk overlap), if any."""
    for k in range(min(len(previous), len(text)), MIN_OVERLAP_CHARS - 1, -1):
        if previous.endswith(text[:k]):
            return text[k:].strip()
    return text


def pack(token_lists: Sequence[Sequence[int]], block_size: int, eos_id: int) -> list[list[int]]:
    """Concatenate ``ids + [eos_id]`` per text and cut into ``block_size`` blocks.

    ``eos_id`` is the document separator (:func:`separator_id`), not the chat end-of-turn.

    Returns full blocks only; the remainder is dropped, except that a stream shorter than
    one block comes back as one short block (so a tiny held-out set still scores).

    >>> pack([[1, 2], [3]], block_size=2, eos_id=0)
    [[1, 2], [0, 3]]
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
    if not token_lists:
        return []
    if len(stream) < block_size:
        return [stream]
    n_full = len(stream) // block_size
    return [stream[i * block_size : (i + 1) * block_size] for i in range(n_full)]


def document_separator(
    vocab: Mapping[str, int], bos: str | None, eos: str | None, chat_template: str | None
) -> tuple[str, int]:
    """(token, id) that separates packed chunks: the one the model saw between documents.

    Order: a named document-end token (:data:`DOCUMENT_END_TOKENS`), else BOS, else EOS —
    skipping any token the chat template writes literally, since that is a turn marker:
    SmolLM2-Instruct's EOS is ``<|im_end|>``, and packing with it teaches the model to end
    its turn after arbitrary book text. BOS before EOS because Llama-2-style models
    (``<s>``/``</s>``, no end-of-text token) start each pre-training document with BOS.

    >>> document_separator({"<|endoftext|>": 0, "<|im_end|>": 2}, None, "<|im_end|>", "<|im_end|>")
    ('<|endoftext|>', 0)

    Raises:
        ValueError: every candidate is a chat turn marker (nothing safe to separate with).
    """
    template = chat_template or ""
    candidates = [*DOCUMENT_END_TOKENS, bos, eos]
    for token in candidates:
        if token and token in vocab and (token not in template or token in DOCUMENT_END_TOKENS):
            return token, vocab[token]
    tried = ", ".join(repr(t) for t in candidates if t)
    raise ValueError(f"no document separator: {tried} are missing or chat turn markers")


def separator_id(tokenizer: Any) -> int:
    """The id :func:`pack` puts between chunks for this tokenizer (see :func:`document_separator`)."""
    template = getattr(tokenizer, "chat_template", None)
    template = template if isinstance(template, str) else None
    return document_separator(tokenizer.get_vocab(), tokenizer.bos_token, tokenizer.eos_token, template)[1]


@dataclasses.dataclass(frozen=True)
class Mix:
    """What one run trains on: (ids, labels) items, packed blocks and examples together."""

    items: list[tuple[list[int], list[int]]]
    blocks: int
    examples: int

    def describe(self) -> dict[str, int]:
        return {"blocks": self.blocks, "examples": self.examples}


def mix(
    blocks: Sequence[Sequence[int]], examples: Sequence[tuple[list[int], list[int]]], share: float
) -> Mix:
    """Packed blocks and answer-from-sources examples, ``share`` of the items being examples.

    The examples are all kept; blocks are kept (evenly spread over the books) up to the count that
    makes the share, so a time budget spends it in that proportion whatever the books' size. With
    no examples (``share`` 0, or none built) every block is kept: the raw-text fine-tune.
    """
    if share <= 0 or not examples:
        return Mix([(list(b), list(b)) for b in blocks], len(blocks), 0)
    keep = min(len(blocks), round(len(examples) * (1 - share) / share))
    kept = [(list(blocks[i]), list(blocks[i])) for i in spread(len(blocks), keep)] if keep else []
    return Mix([*kept, *[(list(i), list(lab)) for i, lab in examples]], len(kept), len(examples))


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when ``k <= 0`` or ``k >= n``).

    Caps the held-out blocks without favouring the first file.
    """
    if k <= 0 or k >= n:
        return list(range(n))
    return [(i * n) // k for i in range(k)]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the tokenizer's vocabulary and rules, for cache keys."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tokenize_texts(
    texts: Sequence[str], tokenizer: Any, cache_dir: str | Path | None = None
) -> list[list[int]]:
    """Token ids per text (no special tokens), through a batched, cached ``datasets.map``.

    With ``cache_dir`` the result is stored as an Arrow file keyed by the texts and the
    tokenizer, so a rerun on the same chunks skips tokenisation.
    """
    import datasets

    ds = datasets.Dataset.from_dict({"text": list(texts)})
    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        h = hashlib.sha256(tokenizer_fingerprint(tokenizer).encode())
        for t in texts:
            h.update(t.encode())
            h.update(b"\0")
        key = h.hexdigest()[:24]
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        kwargs = {"cache_file_name": str(Path(cache_dir) / f"tok-{key}.arrow"), "new_fingerprint": key}
        kwargs["load_from_cache_file"] = True

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return {"input_ids": tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]}

    with _quiet_datasets():
        out = ds.map(encode, batched=True, batch_size=1000, remove_columns=["text"], **kwargs)
    return out["input_ids"]


class _quiet_datasets:
    """Hide the map progress bar: tokenising takes seconds; the Trainer's bar is the one to watch."""

    def __enter__(self) -> None:
        import datasets

        self.was_enabled = datasets.utils.logging.is_progress_bar_enabled()
        datasets.utils.logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        import datasets

        if self.was_enabled:
            datasets.utils.logging.enable_progress_bar()


def pad_to_max_length(token_lists: Sequence[Sequence[int]], max_length: int, pad_id: int) -> list[list[int]]:
    """The usual recipe (``truncation=True, padding="max_length"``): one row per chunk, cut or padded.

    Kept for the benchmark only: it is the baseline that packing beats (on the sample corpus 34% of
    such rows' tokens are text, the rest padding the model computes for nothing). Training never pads.
    """
    return [
        list(ids[:max_length]) + [pad_id] * (max_length - min(len(ids), max_length)) for ids in token_lists
    ]
