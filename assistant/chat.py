"""The assistant: question -> retrieve -> prompt within the window -> generate -> Answer.

One :class:`Assistant` is shared by every UI session: generation is serialised by a lock
(one model, one set of torch threads, and the seed must be set and used atomically).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant import monitor
from assistant.generate import Generation
from assistant.model import resolve_model
from assistant.presets import GenerationParams, preset_name
from assistant.prompt import (
    STOP_STRINGS_PLAIN,
    Passage,
    Prompt,
    Turn,
    build_prompt,
    chat_renderer,
    render_plain,
)
from assistant.records import Answer, ModelInfo, Source, Timings, new_answer_id
from assistant.retrieve import Retriever
from core.config import Settings
from indexing.records import Hit

__all__ = ["Answer", "AnswerStream", "Assistant", "ModelInfo", "Source", "Timings", "new_answer_id"]

History = Sequence[tuple[str, str]]  # (question, answer) pairs, oldest first


class AnswerStream:
    """Iterate for the answer's text pieces (one piece when beams); ``.answer`` when done.

    Reading ``.answer`` before the end finishes the generation first.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[], Answer]):
        self._pieces, self._finish = pieces, finish
        self._answer: Answer | None = None
        self._gen = self._run()

    def _run(self) -> Iterator[str]:
        yield from self._pieces
        self._answer = self._finish()

    def __iter__(self) -> Iterator[str]:
        return self._gen

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self._gen:
                pass
        assert self._answer is not None
        return self._answer


class Assistant:
    """Answers questions from one index with one model; safe to share between threads.

    Args:
        index_dir: the folder written by ``python -m indexing build``.
        model_dir: the fine-tuned model folder; when it holds no model, ``base_model`` answers.
        base_model: hub id, folder or "smollm2-135m"; resolved like training does (offline fallback).
        retrieval: "dense", "bm25" or "hybrid".
        passages: passages retrieved per question (the prompt keeps what fits).
        history_turns: earlier turns offered to the prompt (the budget may keep fewer).
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
        history_turns: int = 2,
        *,
        offline_fallback: bool = True,
        cache_dir: str | None = None,
        embedder: str | None = None,
        log_file: str | Path | None = None,
        load_model: bool = True,
        retriever: Retriever | None = None,
    ):
        self.retriever = retriever or Retriever.load(index_dir, embedder, retrieval)
        self.passages, self.history_turns, self.log_file = passages, history_turns, log_file
        self._model_info, self._source = resolve_model(
            model_dir, base_model, offline_fallback=offline_fallback, cache_dir=cache_dir
        )
        self._lock = threading.Lock()  # one generate at a time (shared model, seeded RNG)
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
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
                self._tokenizer, self._model = tokenizer, model

    @property
    def uses_chat_template(self) -> bool:
        self.load_model()
        return bool(getattr(self._tokenizer, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        """Token ids the model sees; chat-template text already holds its special tokens."""
        return self._tokenizer(text, add_special_tokens=not self.uses_chat_template, verbose=False)[
            "input_ids"
        ]

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        """Top ``k`` passages (None = the configured number; 0 = none: answer without retrieval)."""
        return self.retriever.search(question, self.passages if k is None else k)

    def retrieve(self, question: str, k: int | None = None) -> list[Source]:
        """The passages for ``question``, numbered as they would be cited (before the budget)."""
        return [_source(i, h, h.chunk.text) for i, h in enumerate(self.search(question, k), start=1)]

    def build_prompt(
        self, question: str, hits: Sequence[Hit], history: History, max_new_tokens: int
    ) -> Prompt:
        self.load_model()
        turns = [Turn(q, a) for q, a in list(history)[-self.history_turns :]] if self.history_turns else []
        chat = self.uses_chat_template
        render = chat_renderer(self._tokenizer.apply_chat_template) if chat else render_plain
        return build_prompt(
            question,
            [Passage(h.chunk.file, h.chunk.pages, h.chunk.text) for h in hits],
            turns,
            count=lambda text: len(self.encode(text)),
            window=self.window,
            max_new_tokens=max_new_tokens,
            render=render,
        )

    def stream(
        self,
        question: str,
        params: GenerationParams,
        history: History = (),
        k: int | None = None,
        preset: str | None = None,
    ) -> AnswerStream:
        """Retrieve, build the prompt, and start generating; iterate the result for text pieces."""
        import torch

        t0 = time.perf_counter()
        question = question.strip()
        hits = self.search(question, k)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        prompt = self.build_prompt(question, hits, history, params.max_new_tokens)
        input_ids = torch.tensor([self.encode(prompt.text)], dtype=torch.long)
        stops = () if self.uses_chat_template else STOP_STRINGS_PLAIN
        gen = Generation(self._model, self._tokenizer, input_ids, params, stops, lock=self._lock)
        first: list[float] = []

        def pieces() -> Iterator[str]:
            for piece in gen:
                if not first:
                    first.append(time.perf_counter())
                yield piece

        def finish() -> Answer:
            end = time.perf_counter()
            shown = zip(hits, prompt.passages, strict=False)  # the prompt keeps a prefix of the hits
            sources = [_source(i, h, p.text) for i, (h, p) in enumerate(shown, start=1)]
            answer = Answer(
                answer_id=new_answer_id(),
                question=question,
                text=gen.text,
                sources=sources,
                preset=preset or preset_name(params),
                params=params.as_dict(),
                model_id=self._model_info.model_id,
                fine_tuned=self._model_info.fine_tuned,
                timings=Timings(
                    retrieval_ms=retrieval_ms,
                    prompt_tokens=prompt.n_tokens,
                    ttft_ms=((first[0] if first else end) - t0) * 1000,
                    tokens_per_s=gen.tokens_per_s,
                    total_ms=(end - t0) * 1000,
                    new_tokens=gen.new_tokens,
                ),
                notes=prompt.notes,
            )
            if self.log_file:
                monitor.log_answer(self.log_file, answer)
            return answer

        return AnswerStream(pieces(), finish)

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


def _source(n: int, hit: Hit, text: str) -> Source:
    c = hit.chunk
    return Source(n=n, file=c.file, pages=c.pages, score=float(hit.score), text=text, chunk_id=c.chunk_id)
