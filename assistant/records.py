"""The records the assistant hands out (re-exported by :mod:`assistant.pipeline`, which the UI imports)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from assistant.support import Support
from core.grounding.evidence import Evidence
from core.grounding.prompt import page_label


@dataclasses.dataclass(frozen=True)
class Source:
    """A passage the model was shown; ``n`` is its citation number ``[n]`` in the prompt."""

    n: int
    file: str  # path relative to the corpus folder
    pages: list[int]  # 1-based physical pages
    score: float  # retrieval score (cosine for dense, reciprocal-rank sum for hybrid)
    text: str  # the text as shown to the model (merged neighbours, last one maybe cut)
    chunk_id: str  # "id" or "id1+id2" for merged neighbouring chunks
    section: str = ""  # the section heading the passage starts under ("4.1 Bourne Shell Builtins")

    @property
    def label(self) -> str:
        return page_label(self.file, self.pages)


@dataclasses.dataclass(frozen=True)
class Timings:
    retrieval_ms: float  # embed the query + dense/BM25 search + fusion + merging
    prompt_tokens: int  # tokens fed to the model
    ttft_ms: float  # from the question to the first answer text (an opening quote, or the model's)
    tokens_per_s: float  # decoding speed: tokens after the first, per second after it (beams: whole call)
    total_ms: float  # from the question to the finished answer
    new_tokens: int  # tokens generated
    evidence_ms: float = 0.0  # picking the evidence sentences (shown before generation starts)
    support_ms: float = 0.0  # checking the answer's sentences against the passages
    # from the question to the model's first text (whole answer when beams); = ttft_ms without an
    # opening quote; 0 in records made before it was kept
    first_token_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    model_id: str  # what is really loaded: folder, hub id or "smollm2-135m"
    base_model: str  # the base the fine-tuned model came from, or the base model itself
    fine_tuned: bool
    perplexity_base: float | None  # held-out perplexity before fine-tuning (training manifest)
    perplexity_finetuned: float | None  # ... and after
    manifest: dict[str, Any] | None  # training_manifest.json, when fine-tuned
    path: str = ""  # what from_pretrained receives
    note: str = ""  # why this model (e.g. "no fine-tuned model yet; using the base model")


@dataclasses.dataclass(frozen=True)
class Answer:
    answer_id: str
    question: str
    text: str
    sources: list[Source]  # exactly the passages in the prompt, citation order
    preset: str  # technical, balanced, creative or custom
    params: dict[str, Any]  # GenerationParams.as_dict() used
    model_id: str
    fine_tuned: bool
    timings: Timings
    created_at: float = dataclasses.field(default_factory=time.time)  # unix time
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. passages cut, history dropped
    evidence: list[Evidence] = dataclasses.field(default_factory=list)  # best sentences, best first
    support: Support | None = None  # each answer sentence checked against the passages
    abstained: bool = False  # the evidence was too weak: the text says the books do not cover it
    context: str = "passages"  # prompt held "evidence" excerpts or whole "passages"; "none" = abstained
    # what the model wrote; ``text`` is it with verified citations (core.grounding.cite): each sentence
    # cites the passage it was found in, not the number the model guessed
    model_text: str = ""
    prefill: str = "fp32"  # the prompt read with "bf16" matmuls (fp32 weights) or "fp32"; decoding: fp32
    # the answer's opening quote (the best evidence item, cited), given to the model to continue;
    # ``text`` starts with it and ``model_text`` is what followed. "" = the model wrote it all
    lead: str = ""
    # what retrieval and evidence selection read: the question, or for a follow-up ("How do I declare
    # one?") the question before it and this one (assistant.followup); "" in records made before
    query: str = ""

    @property
    def grounded_text(self) -> str:
        """The answer as it reads with its unsupported sentences set aside (the UI marks them): its
        sentences that the passages back (the opening quote and the model's), or the evidence quotes
        when none is backed. So a grounded answer is never worse than quoting the books."""
        if self.abstained or self.support is None:
            return self.text
        kept = [s.text for s in self.support.sentences if s.supported]
        return " ".join(kept) if kept else " ".join(" ".join(e.text.split()) for e in self.evidence)

    def as_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["evidence"] = [e.as_json() for e in self.evidence]
        return record


def new_answer_id() -> str:
    return uuid.uuid4().hex[:12]
