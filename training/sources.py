"""The answer-from-sources part of a run: questions from the books, examples built against the
index (hard distractors, the assistant's own prompt), tokenised with completion-only labels.

Training examples come from training chunks only and never use a held-out chunk, even as a
distractor; the held-out examples (scored before and after, :mod:`training.sources_eval`) come
from held-out chunks. Examples are cached by everything they are made from, so a continued run
does not build them again.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from core.grounding.evidence import FORM_PRIOR, RANK_PRIOR, TITLE_PRIOR, MemoEmbed
from core.grounding.prompt import (
    ABSTAIN_TEXT,
    TRAINED_EXCERPT_ORDER,
    TRAINED_INSTRUCTIONS,
    Passage,
    cited_quote,
    format_passage,
    renderer_for,
)
from core.layout import IndexFiles
from core.sources import cache_root
from indexing.outline import read_outline
from indexing.pdf import file_sha256
from indexing.records import Chunk
from training.answers import QA
from training.examples import (
    ABSTAIN_SHARE,
    HELD_OUT_ABSTAIN_SHARE,
    MAX_NEW_TOKENS,
    N_SOURCES,
    NEAR_PAGES,
    Example,
    PromptMaker,
    build_examples,
    completion_ids,
)
from training.questions import definition_questions, outline_questions

EXAMPLES_VERSION = 12  # bump when the rules or the rendering change: cached examples are rebuilt
RETRIEVED = (
    6 * N_SOURCES
)  # chunks retrieved per question; the oracle's neighbours and held-out chunks are filtered out


@dataclasses.dataclass
class SourcesData:
    """One run's answer-from-sources examples."""

    train: list[Example] = dataclasses.field(default_factory=list)
    held_out: list[Example] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # training examples by rule
    questions: dict[str, int] = dataclasses.field(default_factory=dict)  # questions found, by rule
    items: list[tuple[list[int], list[int]]] = dataclasses.field(default_factory=list)  # (ids, labels)
    seconds: float = 0.0
    skipped: str = ""  # why there are none, when there are none

    def describe(self) -> dict[str, Any]:
        return {
            "questions_by_rule": self.questions,
            "examples_by_rule": self.counts,
            "train_examples": len(self.train),
            "held_out_examples": len(self.held_out),
            "build_seconds": round(self.seconds, 1),
            "skipped": self.skipped,
            "instructions": TRAINED_INSTRUCTIONS,  # the assistant asks the model with the same
            "excerpt_order": TRAINED_EXCERPT_ORDER,  # and shows it the excerpts in the same order
        }


def book_questions(index_manifest: dict[str, Any], chunks: Sequence[Chunk]) -> list[QA]:
    """Questions from the PDFs' outlines (files unchanged since indexing) and definition sentences."""
    corpus = Path(index_manifest.get("corpus_dir") or ".")
    outlines, gone = {}, []
    for rel, info in (index_manifest.get("files") or {}).items():
        if info.get("status") != "indexed":
            continue
        path = corpus / rel
        if path.is_file() and file_sha256(path) == info.get("sha256"):
            outlines[rel] = read_outline(path)
        else:
            gone.append(rel)
    if gone:
        # the outline gives most questions (678 of 814 on the sample corpus): losing it silently
        # would train on definitions alone
        warnings.warn(
            f"{len(gone)} indexed PDF(s) are not at {corpus}/ as indexed (moved, changed, or a run "
            f"from another folder), so their outlines give no questions: {', '.join(gone[:3])}"
            f"{' ...' if len(gone) > 3 else ''}. Run training from the folder you indexed in, "
            "or rebuild the index (make index).",
            stacklevel=2,
        )
    return outline_questions(outlines, chunks) + definition_questions(chunks)


@dataclasses.dataclass(frozen=True)
class Request:
    """What one run's examples are made from (and cached by)."""

    train_chunks: Sequence[Chunk]
    held_chunks: Sequence[Chunk]  # trimmed of the text they share with training neighbours
    order: Sequence[str]  # every body chunk's id in index order: a section's text runs on in the next chunk
    tokenizer: Any
    window: int  # the model's context window: prompts are built within it, as at answer time
    limit: int  # training examples
    held_out_limit: int
    seed: int

    def cache_key(self, questions: Sequence[QA], vectors: str = "") -> str:
        """``vectors``: the index's embeddings (their hash), which rank every distractor."""
        parts = {
            "version": EXAMPLES_VERSION,
            # the same chunks embedded otherwise (another backend, or each under its section heading)
            # retrieve other distractors: the held-out examples must be the run's own
            "vectors": vectors,
            # how a passage and a quote are written, so a change there rebuilds the examples even
            # where a version number was bumped elsewhere (a stale cache once trained the old layout)
            "rendering": [format_passage(1, Passage("a.pdf", [1], "One. Two … x.")), cited_quote("a. b.", 1)],
            # every prompt holds the instructions and abstaining targets say ABSTAIN_TEXT: a reworded
            # instruction would have trained on examples cached with the old one
            "instructions": TRAINED_INSTRUCTIONS,
            "excerpt_order": TRAINED_EXCERPT_ORDER,
            "abstain_text": ABSTAIN_TEXT,
            "chunks": sorted(c.chunk_id for c in self.train_chunks),
            "held": sorted(c.chunk_id for c in self.held_chunks),
            "questions": [dataclasses.astuple(q) for q in questions],
            "tokenizer": getattr(self.tokenizer, "name_or_path", ""),
            "template": getattr(self.tokenizer, "chat_template", None) or "",
            "window": self.window,
            "limit": self.limit,
            "held_out_limit": self.held_out_limit,
            "seed": self.seed,
            # the rules' constants: changing one in the code rebuilds the examples without a version bump
            # (a run meant to try another abstain share once trained on the cached examples)
            "rules": {
                "abstain_share": ABSTAIN_SHARE,
                "held_out_abstain_share": HELD_OUT_ABSTAIN_SHARE,
                "sources": N_SOURCES,
                "near_pages": NEAR_PAGES,
                "max_new_tokens": MAX_NEW_TOKENS,
                "retrieved": RETRIEVED,
                # the evidence order picks the sentences a target quotes
                "rank_prior": RANK_PRIOR,
                "form_prior": FORM_PRIOR,
                "title_prior": TITLE_PRIOR,
            },
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def build_sources(
    index_dir: Path,
    index_manifest: dict[str, Any],
    request: Request,
    cache_dir: str | Path | None,
    encoder: Any = None,
    log: Any = print,
) -> SourcesData:
    """Training and held-out examples (cached); none, with the reason, when the index has no vectors."""
    t0 = time.time()
    if not IndexFiles(index_dir).faiss.is_file():
        return SourcesData(skipped="the index has no vectors to retrieve distractors with")
    by_id = {c.chunk_id: c for c in [*request.train_chunks, *request.held_chunks]}
    questions = book_questions(index_manifest, [by_id[i] for i in request.order if i in by_id])
    vectors = file_sha256(IndexFiles(index_dir).embeddings)
    path = cache_root(cache_dir) / "sources" / f"{request.cache_key(questions, vectors)}.json"
    if path.is_file():
        data = _read_cached(path)
        n_train, n_held = len(data.train), len(data.held_out)
        log(f"Answer-from-sources examples (cached): {n_train} to train on, {n_held} held out")
    else:
        data = _build(index_dir, questions, request, encoder)
        atomic_write_json(path, _as_json(data))
        log(
            f"Answer-from-sources examples: {len(data.train)} for training "
            f"({_counts(data.counts)}), "
            f"{len(data.held_out)} held out, from {sum(data.questions.values())} questions "
            f"({_counts(data.questions)}) in {time.time() - t0:.0f} s"
        )
    data.items = [i for i in tokenize_examples(data.train, request.tokenizer) if len(i[0]) <= request.window]
    data.seconds = time.time() - t0
    return data


def _build(index_dir: Path, questions: list[QA], request: Request, encoder: Any) -> SourcesData:
    from indexing.store import Store

    store = Store.load(index_dir, getattr(encoder, "name", None))
    if encoder is None:
        from indexing.embed import encoder_for_index

        encoder = encoder_for_index(store.manifest)
    memo = MemoEmbed(encoder.encode)

    def ranked(texts: list[str]) -> list[list[Chunk]]:
        found = store.search(encoder.encode(texts), RETRIEVED)
        return [[store.chunks[r] for r, _ in rows if r >= 0] for rows in found]

    tokenizer = request.tokenizer
    chat = bool(getattr(tokenizer, "chat_template", None))
    maker = PromptMaker(
        renderer_for(tokenizer, TRAINED_INSTRUCTIONS),
        lambda text: len(tokenizer(text, add_special_tokens=not chat, verbose=False)["input_ids"]),
        request.window,
    )
    held = {c.chunk_id: c for c in request.held_chunks}

    def examples(
        chunks: Sequence[Chunk], limit: int, seed: int, allowed: Any, abstain_share: float
    ) -> tuple[list[Example], dict]:
        by_id = {c.chunk_id: c for c in chunks}  # build_examples keeps the questions about these chunks
        return build_examples(
            questions,
            by_id,
            ranked,
            memo,
            maker,
            limit=limit,
            seed=seed,
            allowed=allowed,
            abstain_share=abstain_share,
            prefetch=memo.prefill,
        )

    # a held-out chunk is never trained on, not even as a distractor
    train, counts = examples(
        request.train_chunks, request.limit, request.seed, lambda c: c.chunk_id not in held, ABSTAIN_SHARE
    )
    held_out, _ = examples(
        request.held_chunks, request.held_out_limit, request.seed + 1, lambda c: True, HELD_OUT_ABSTAIN_SHARE
    )
    by_rule = dict(collections.Counter(q.rule for q in questions))
    return SourcesData(train, held_out, counts, by_rule)


def tokenize_examples(examples: Sequence[Example], tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per example: the prompt as the assistant encodes it, then the target and the
    end-of-turn token (``eos``: SmolLM2's ``<|im_end|>``, GPT-2's ``<|endoftext|>``) — the loss
    teaches the model to stop after its answer too."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    out = []
    for ex in examples:
        prompt = tokenizer(ex.prompt, add_special_tokens=not chat, verbose=False)["input_ids"]
        # the plain template ends "Answer:", and the answer follows after a space
        answer = tokenizer(("" if chat else " ") + ex.target, add_special_tokens=False)["input_ids"]
        out.append(completion_ids(prompt, [*answer, tokenizer.eos_token_id]))
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _as_json(data: SourcesData) -> dict[str, Any]:
    return {
        "train": [e.as_json() for e in data.train],
        "held_out": [e.as_json() for e in data.held_out],
        "counts": data.counts,
        "questions": data.questions,
    }


def _read_cached(path: Path) -> SourcesData:
    raw = json.loads(path.read_text())
    return SourcesData(
        [_example(e) for e in raw["train"]],
        [_example(e) for e in raw["held_out"]],
        raw["counts"],
        raw["questions"],
    )


def _example(raw: dict[str, Any]) -> Example:
    return Example(**(raw | {"passages": [(n, text) for n, text in raw.get("passages", [])]}))
