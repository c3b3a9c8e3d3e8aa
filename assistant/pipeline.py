"""The assistant: question -> retrieve -> evidence -> prompt within the window -> generate
-> support check -> Answer.

One :class:`Assistant` is shared by every UI session: generation is serialised by a lock
(one model, one set of torch threads, and the seed must be set and used atomically).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant import monitor
from assistant.decoding import sentence_end_ids
from assistant.followup import search_query
from assistant.generate import Generation
from assistant.model import resolve_lead, resolve_model, resolve_prefill
from assistant.presets import GenerationParams, preset_name
from assistant.records import Answer, ModelInfo, Source, Timings, new_answer_id
from assistant.retrieve import Retriever
from assistant.support import NO_ANSWER, Support, check_support
from core.config import Settings
from core.errors import ConfigError
from core.grounding.cite import cite, drop_stray_number
from core.grounding.evidence import Evidence, MemoEmbed, SourceText, best_score, select_evidence
from core.grounding.prompt import (
    ABSTAIN_TEXT,
    Prompt,
    Turn,
    build_prompt,
    continue_text,
    excerpt_order_for,
    instructions_for,
    lead_quote,
    prompt_passages,
    renderer_for,
    stops_for,
    with_opening,
)
from indexing.records import Hit

__all__ = [
    "Answer",
    "AnswerStream",
    "Assistant",
    "Evidence",
    "ModelInfo",
    "Source",
    "Support",
    "Timings",
    "new_answer_id",
]

CONTEXTS = ("evidence", "passages")
# the answer opens with the best evidence quote, or the model writes it all; auto: quote for models
# trained to answer from sources (assistant.model.resolve_lead)
LEADS = ("auto", "quote", "none")
# the precision of the prompt's matmuls (generate.bf16_prompt_matmuls); auto: model.resolve_prefill
PREFILLS = ("auto", "fp32", "bf16")

History = Sequence[tuple[str, str]]  # (question, answer) pairs, oldest first


class AnswerStream:
    """Iterate for the answer's text pieces (one piece when beams); ``.answer`` when done.

    ``.evidence`` and ``.sources`` are there from the start, before the first piece, so a UI
    can show the books' own sentences while the model is still writing.
    Reading ``.answer`` before the end finishes the generation first. A stream dropped unread
    (a Streamlit rerun while the evidence renders) stops its generation, freeing the model.
    """

    def __init__(
        self,
        pieces: Iterator[str],
        finish: Callable[[], Answer],
        evidence: Sequence[Evidence] = (),
        sources: Sequence[Source] = (),
        abstained: bool = False,
        cancel: Callable[[], None] = lambda: None,
    ):
        self._pieces, self._finish, self._cancel = pieces, finish, cancel
        self.evidence, self.sources, self.abstained = list(evidence), list(sources), abstained
        self._answer: Answer | None = None
        # made at the first read: the generator refers back to the stream, and a stream never read
        # must hold no such cycle, so that dropping it runs __del__ (and cancels) at once
        self._gen: Iterator[str] | None = None

    def _run(self) -> Iterator[str]:
        yield from self._pieces
        self._answer = self._finish()

    def __iter__(self) -> Iterator[str]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer

    def cancel(self) -> None:
        """Stop generating at the next token (no effect once the answer is finished)."""
        if self._answer is None:
            self._cancel()

    def __del__(self) -> None:
        self.cancel()


class Assistant:
    """Answers questions from one index with one model; safe to share between threads.

    Args:
        index_dir: the folder written by ``python -m indexing build``.
        model_dir: the fine-tuned model folder; when it holds no model, ``base_model`` answers.
        base_model: hub id, folder or "smollm2-135m"; resolved like training does (offline fallback).
        retrieval: "dense", "bm25" or "hybrid".
        passages: passages retrieved per question (the prompt keeps what fits).
        history_turns: earlier turns offered to the prompt (the budget may keep fewer).
        context: what the prompt offers the model: "evidence" (the best sentences with one
            sentence of context either side) or "passages" (the retrieved passages whole).
        evidence_sentences: evidence items picked per question (2-4 read best).
        abstain_below: best evidence score under which the answer says the books do not cover
            the question instead of generating one (0 = never abstain).
        lead: "quote": the answer opens with the best evidence item, verbatim and cited, and the
            model continues it; "none": the model writes the whole answer; "auto": "quote" for a
            model trained to answer from sources, else "none".
        prefill: "bf16": the prompt is read with bf16 matmuls (first token ~0.2 s sooner on a CPU
            with native bf16, near-identical text); "fp32"; "auto": bf16 where the CPU has native
            bf16 and the weights are fp32, resolved when the model loads.
        prompt_lookup: tokens proposed from the prompt per greedy step (same text, faster; 0 = off).
        embedder: the embedder settings name; the index refuses a different one. None = the index's own.
        log_file: append every answer there (JSONL); None = no log (the UI logs itself).
        load_model: load the weights now (True) or at the first question.
        retriever: an already built :class:`Retriever` (tests, benchmarks).
    """

    def __init__(
        self,
        index_dir: str | Path,
        model_dir: str | Path | None = None,
        base_model: str = "gpt2",
        retrieval: str = "dense",
        passages: int = 5,
        history_turns: int = 0,
        context: str = "evidence",
        evidence_sentences: int = 3,
        abstain_below: float = 0.0,
        *,
        lead: str = "auto",
        prefill: str = "auto",
        prompt_lookup: int = 0,
        offline_fallback: bool = True,
        cache_dir: str | None = None,
        embedder: str | None = None,
        log_file: str | Path | None = None,
        load_model: bool = True,
        retriever: Retriever | None = None,
    ):
        self.retriever = retriever or Retriever.load(index_dir, embedder, retrieval)
        if context not in CONTEXTS:
            raise ConfigError(f"context must be one of {', '.join(CONTEXTS)}, got {context!r}")
        if evidence_sentences < 1:
            raise ConfigError("evidence_sentences must be >= 1")
        self.passages, self.history_turns, self.log_file = passages, history_turns, log_file
        self.context, self.evidence_sentences, self.abstain_below = context, evidence_sentences, abstain_below
        if lead not in LEADS:
            raise ConfigError(f"lead must be one of {', '.join(LEADS)}, got {lead!r}")
        if prefill not in PREFILLS:
            raise ConfigError(f"prefill must be one of {', '.join(PREFILLS)}, got {prefill!r}")
        self.prefill = prefill
        self.prompt_lookup = prompt_lookup
        self._model_info, self._source = resolve_model(
            model_dir, base_model, offline_fallback=offline_fallback, cache_dir=cache_dir
        )
        self.lead = resolve_lead(lead, self._model_info)  # "quote" or "none"
        self._lock = threading.Lock()  # one generate at a time (shared model, seeded RNG)
        self._load_lock = threading.Lock()
        # Fast (Rust) tokenizers raise "Already borrowed" when two threads use one at once: sessions
        # take turns for the cheap steps before generation (retrieval, evidence, prompt, support
        # check), and those use their own copy of the tokenizer, never the generating thread's.
        self._prep_lock = threading.RLock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._prep_tokenizer: Any = None
        self._sentence_ends: frozenset[int] = frozenset()  # copy_boost rests after these tokens
        self.window = 0
        if load_model:
            self.load_model()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Assistant:
        """The entry points' (CLI, app, eval) one way from settings to an Assistant; ``overrides`` win."""
        kwargs: dict[str, Any] = {
            "model_dir": settings.model_dir,
            "base_model": settings.base_model,
            "retrieval": settings.retrieval,
            "passages": settings.passages,
            "history_turns": settings.history_turns,
            "context": settings.context,
            "evidence_sentences": settings.evidence_sentences,
            "abstain_below": settings.abstain_below,
            "lead": settings.lead,
            "prefill": settings.prefill,
            "prompt_lookup": settings.prompt_lookup,
            "offline_fallback": settings.offline_fallback,
            "cache_dir": settings.cache_dir or None,
            "embedder": settings.embedder,
            "log_file": settings.log_file or None,
        }
        return cls(settings.index_dir, **(kwargs | overrides))

    # --- what the UI shows ---------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def index_info(self) -> dict:
        return self.retriever.index_info

    # --- the pipeline ---------------------------------------------------------------

    def load_model(self) -> None:
        from core.sources import context_window, load_lm

        with self._load_lock:
            if self._model is None:
                model, tokenizer = load_lm(self._source)
                self.window = context_window(model, tokenizer)
                self._prep_tokenizer = copy.deepcopy(tokenizer)
                self._sentence_ends = sentence_end_ids(tokenizer)
                self.prefill = resolve_prefill(self.prefill, model)
                self._tokenizer, self._model = tokenizer, model

    @property
    def uses_chat_template(self) -> bool:
        self.load_model()
        return bool(getattr(self._tokenizer, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        """Token ids the model sees; chat-template text already holds its special tokens."""
        special = not self.uses_chat_template  # loads the model (and the tokenizers) if needed
        with self._prep_lock:
            return self._prep_tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"]

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        """Top ``k`` passages (None = the configured number; 0 = none: answer without retrieval)."""
        with self._prep_lock:  # the embedder's tokenizer is shared too
            return self.retriever.search(question, self.passages if k is None else k)

    def retrieve(self, question: str, k: int | None = None) -> list[Source]:
        """The passages for ``question``, numbered as they would be cited (before the budget)."""
        return [_source(i, h, h.chunk.text) for i, h in enumerate(self.search(question, k), start=1)]

    def embed(self, texts: list[str]) -> Any:
        """The index's own embedder (unit vectors): evidence and the support check compare with it."""
        if self.retriever.encode is None:
            raise ConfigError("evidence needs the index's embedder")
        with self._prep_lock:
            return self.retriever.encode(texts)

    def evidence(self, question: str, hits: Sequence[Hit], embed: Any = None) -> list[Evidence]:
        """The best sentences of ``hits`` for ``question`` (none without an embedder or passages).

        ``embed``: a :class:`MemoEmbed` to share sentence vectors with the support check."""
        if not hits or self.retriever.encode is None:
            return []
        return select_evidence(
            question, _source_texts(hits), embed or self.embed, max_items=self.evidence_sentences
        )

    def check(self, text: str, hits: Sequence[Hit], embed: Any = None) -> Support:
        """Each sentence of ``text`` against the passages; code spans against their exact text."""
        if self.retriever.encode is None:
            return NO_ANSWER
        return check_support(text, _source_texts(hits), embed or self.embed)

    def build_prompt(
        self,
        question: str,
        hits: Sequence[Hit],
        history: History,
        max_new_tokens: int,
        evidence: Sequence[Evidence] | None = None,
        opening: str = "",
    ) -> Prompt:
        """The prompt: whole passages, or (``evidence`` given) each evidence passage's excerpt,
        cited by the passage's own number so [n] means the same source either way; ``opening``
        (the answer's first words, see :meth:`opening`) ends it for the model to continue."""
        self.load_model()
        turns = [Turn(q, a) for q, a in list(history)[-self.history_turns :]] if self.history_turns else []
        render = renderer_for(self._prep_tokenizer, instructions_for(self._model_info.manifest))
        order = excerpt_order_for(self._model_info.manifest)  # as the model was trained
        passages = prompt_passages(_source_texts(hits), evidence, order)
        with self._prep_lock:
            return build_prompt(
                question,
                passages,
                turns,
                count=lambda text: len(self.encode(text)),
                window=self.window,
                max_new_tokens=max_new_tokens,
                render=render,
                opening=opening,
            )

    def opening(self, evidence: Sequence[Evidence]) -> str:
        """The answer's first words, given to the model to continue: the lead quote, or ""."""
        return lead_quote(evidence) if self.lead == "quote" else ""

    def stream(
        self,
        question: str,
        params: GenerationParams,
        history: History = (),
        k: int | None = None,
        preset: str | None = None,
    ) -> AnswerStream:
        """Retrieve, pick the evidence, build the prompt and start generating; iterate the result
        for text pieces. Returns once the evidence is known (``.evidence``); a streaming answer is
        already being generated in the background by then (the first piece waits in a queue)."""
        clock = _Clock(time.perf_counter())
        question = question.strip()
        query = search_query(question, [q for q, _ in history])  # a follow-up keeps its subject
        hits = self.search(query, k)
        clock.retrieved = time.perf_counter()
        memo = MemoEmbed(self.embed)  # the support check reuses the evidence's sentence vectors
        evidence = self.evidence(query, hits, memo)
        clock.evidence = time.perf_counter()
        sources = [_source(n, h, h.chunk.text) for n, h in _numbered(hits)]
        if self._too_weak(hits, evidence):
            return self._abstain(question, query, params, preset, sources, evidence, clock)
        use_evidence = self.context == "evidence" and bool(evidence)
        opening = self.opening(evidence)
        prompt = self.build_prompt(
            question, hits, history, params.max_new_tokens, evidence if use_evidence else None, opening
        )
        gen = self._generation(prompt, params)
        gen.start()  # the model reads the prompt while the caller shows the evidence

        def finish() -> Answer:
            end = time.perf_counter()
            written = drop_stray_number(continue_text(opening, gen.text))
            text = cite(written, [(s.n, s.text) for s in _source_texts(hits) if s.kind == "body"])
            support = self.check(text, hits, memo) if hits else NO_ANSWER
            checked = time.perf_counter()
            return self._record(
                question,
                text,
                sources if use_evidence else _as_prompted(sources, prompt),
                params,
                preset,
                clock.timings(end, checked, prompt.n_tokens, gen.tokens_per_s, gen.new_tokens),
                notes=_follow_up_note(question, query) + prompt.notes,
                query=query,
                evidence=evidence,
                support=support,
                context="evidence" if use_evidence else "passages",
                model_text=gen.text,
                prefill=gen.prefill,
                lead=opening,
            )

        pieces = clock.timed(with_opening(opening, clock.timed(gen, "first_token")))
        return AnswerStream(pieces, finish, evidence, sources, cancel=gen.cancel)

    def _too_weak(self, hits: Sequence[Hit], evidence: Sequence[Evidence]) -> bool:
        """Abstain: passages were found but their best sentence scores under ``abstain_below``."""
        return bool(hits) and self.abstain_below > 0 and best_score(evidence) < self.abstain_below

    def _record(
        self,
        question: str,
        text: str,
        sources: list[Source],
        params: GenerationParams,
        preset: str | None,
        timings: Timings,
        **details: Any,
    ) -> Answer:
        """The finished answer's record, logged when a log file is set."""
        answer = Answer(
            answer_id=new_answer_id(),
            question=question,
            text=text,
            sources=sources,
            preset=preset or preset_name(params),
            params=params.as_dict(),
            model_id=self._model_info.model_id,
            fine_tuned=self._model_info.fine_tuned,
            timings=timings,
            **details,
        )
        if self.log_file:
            monitor.log_answer(self.log_file, answer)
        return answer

    def _generation(self, prompt: Prompt, params: GenerationParams) -> Generation:
        import torch

        input_ids = torch.tensor([self.encode(prompt.text)], dtype=torch.long)
        sources = [self.encode(p.text) for p in prompt.passages] if params.copy_boost > 0 else []
        return Generation(
            self._model,
            self._tokenizer,
            input_ids,
            params,
            stops_for(self._model_info.manifest),  # as the model was trained to end its answers
            self._lock,
            sources,
            prefill=self.prefill,
            prompt_lookup=self.prompt_lookup,
            sentence_ends=self._sentence_ends,
        )

    def _abstain(
        self,
        question: str,
        query: str,
        params: GenerationParams,
        preset: str | None,
        sources: list[Source],
        evidence: list[Evidence],
        clock: _Clock,
    ) -> AnswerStream:
        """No generation: the books do not seem to cover the question; the closest passages stay.
        ``query``: what was searched (the question, or a follow-up joined with the one before)."""

        def finish() -> Answer:
            end = time.perf_counter()
            return self._record(
                question,
                ABSTAIN_TEXT,
                sources,
                params,
                preset,
                Timings(
                    retrieval_ms=(clock.retrieved - clock.start) * 1000,
                    prompt_tokens=0,
                    ttft_ms=(end - clock.start) * 1000,
                    tokens_per_s=0.0,
                    total_ms=(end - clock.start) * 1000,
                    new_tokens=0,
                    evidence_ms=(clock.evidence - clock.retrieved) * 1000,
                ),
                evidence=evidence,
                support=NO_ANSWER,
                abstained=True,
                context="none",  # no prompt was built
                query=query,
                notes=_follow_up_note(question, query),
            )

        return AnswerStream(iter([ABSTAIN_TEXT]), finish, evidence, sources, abstained=True)

    def ask(
        self,
        question: str,
        params: GenerationParams,
        history: History = (),
        k: int | None = None,
        preset: str | None = None,
    ) -> Answer:
        """The whole answer (no streaming)."""
        return self.stream(question, params, history, k, preset).answer


def _follow_up_note(question: str, query: str) -> list[str]:
    """Say when the question was searched together with the one before it (a follow-up)."""
    return [f"searched as a follow-up of the question before: {query}"] if query != question else []


def _numbered(hits: Sequence[Hit]) -> list[tuple[int, Hit]]:
    """Hits with their citation numbers [1], [2], ... in rank order."""
    return list(enumerate(hits, start=1))


def _source_texts(hits: Sequence[Hit]) -> list[SourceText]:
    return [
        SourceText(n, h.chunk.file, h.chunk.pages, h.chunk.text, getattr(h.chunk, "kind", "body"))
        for n, h in _numbered(hits)
    ]


def _source(n: int, hit: Hit, text: str) -> Source:
    c = hit.chunk
    return Source(
        n=n,
        file=c.file,
        pages=c.pages,
        score=float(hit.score),
        text=text,
        chunk_id=c.chunk_id,
        section=c.section,
    )


def _as_prompted(sources: list[Source], prompt: Prompt) -> list[Source]:
    """Whole-passage prompts: the sources as the model saw them (the last one may be cut to fit)."""
    shown = {p.n: p.text for p in prompt.passages}
    return [dataclasses.replace(s, text=shown[s.n]) for s in sources if s.n in shown]


@dataclasses.dataclass
class _Clock:
    """``time.perf_counter()`` marks of one answer, from the question to the support check."""

    start: float
    retrieved: float = 0.0
    evidence: float = 0.0
    first_text: float | None = None
    first_token: float | None = None

    def timed(self, pieces: Iterable[str], mark: str = "first_text") -> Iterator[str]:
        """``pieces`` unchanged, noting in ``mark`` when the first one arrives: "first_text" for the
        answer's, "first_token" for the model's (an opening quote comes before it)."""
        for piece in pieces:
            if getattr(self, mark) is None:
                setattr(self, mark, time.perf_counter())
            yield piece

    def timings(
        self, end: float, checked: float, prompt_tokens: int, tokens_per_s: float, new_tokens: int
    ) -> Timings:
        """``end``: generation done; ``checked``: citations verified and the support check done."""
        token = self.first_token if self.first_token is not None else end
        # the outer mark is taken a moment after the inner one for the same piece: same instant
        first = min(self.first_text, token) if self.first_text is not None else token
        return Timings(
            retrieval_ms=(self.retrieved - self.start) * 1000,
            prompt_tokens=prompt_tokens,
            ttft_ms=(first - self.start) * 1000,
            first_token_ms=(token - self.start) * 1000,
            tokens_per_s=tokens_per_s,
            total_ms=(checked - self.start) * 1000,
            new_tokens=new_tokens,
            evidence_ms=(self.evidence - self.retrieved) * 1000,
            support_ms=(checked - end) * 1000,
        )
