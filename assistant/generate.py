"""Run ``model.generate`` with a preset: seed, stop strings, streaming or whole answer.

``num_beams == 1``: generation runs in a thread and ``TextIteratorStreamer`` hands text
pieces to the caller as they are made. Beams keep several candidates until the end, so the
whole answer comes as one piece.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from assistant.presets import GenerationParams


class StopOnStrings(StoppingCriteria):
    """Stop a row once its generated text contains one of ``stops`` (e.g. a new "Question:" line).

    Decodes only the last few tokens of each row, so the cost per step stays constant.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int, tail_tokens: int = 12):
        self.tokenizer, self.stops = tokenizer, tuple(stops)
        self.prompt_len, self.tail = prompt_len, tail_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.tail) :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class StopOnEvent(StoppingCriteria):
    """Stop every row once ``event`` is set: an abandoned answer frees the shared model at the next token."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = self.event.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that a stop string starts with (it may be forming).

    Streaming holds back only these characters: holding a stop string's length minus one, always,
    delayed the first text by ~3 tokens ("<sources>": 9 characters)."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class TokenStreamer(TextIteratorStreamer):
    """Hands out the text as each token is decoded, where ``TextIteratorStreamer`` waits for the
    word's end (a space or a newline): the first words show one or two tokens (~0.1 s) sooner.

    Held back: an incomplete UTF-8 character (decoded as U+FFFD until its last byte comes) and
    trailing spaces (a tokenizer that cleans up spaces may drop one before punctuation)."""

    first_token_at: float | None = None  # perf_counter when the first new token came

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError("TokenStreamer streams one sequence, not a batch")
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        stable = len(text.rstrip()) if not text.endswith("\ufffd") else 0
        if stable > self.print_len:
            self.on_finalized_text(text[self.print_len : stable])
            self.print_len = stable


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _set_fp32_matmuls(precision: str) -> str:
    """Set how oneDNN runs fp32 matmuls on the CPU ("bf16" or "none" = full fp32); returns the old
    value. torch >= 2.9 has a switch for oneDNN alone; older versions only the global one."""
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    if mkldnn is not None and hasattr(mkldnn, "fp32_precision"):
        old, mkldnn.fp32_precision = mkldnn.fp32_precision, precision
        return old
    old = "bf16" if torch.get_float32_matmul_precision() == "medium" else "none"
    torch.set_float32_matmul_precision("medium" if precision == "bf16" else "highest")
    return old


@contextlib.contextmanager
def bf16_prompt_matmuls(model: Any) -> Iterator[None]:
    """Within this block the model's first forward call, the one that reads the prompt, runs its
    fp32 matmuls in bf16 (fp32 weights, activations and outputs; AMX/AVX-512-BF16 on the CPU);
    every later call, the decoding, runs in full fp32.

    Reading the prompt is compute-bound and most of the time to the first token; decoding one
    token at a time is bound by reading the weights, so bf16 would only add a conversion there
    (measured: 8.7 instead of 14.5 tokens/s). Weights and KV cache stay fp32, so ``generate``
    runs as usual (prompt lookup included) and the text matches fp32's: all 54 dev questions, 2 cores,
    the model's first token 1,033 -> 833 ms for the base model (51 of 54 answers identical, 95.9% of
    tokens before the first difference), 1,014 -> 760 ms for the answer-from-sources one (91.8%).
    bf16 weights were faster still but changed the answers (57% of tokens); bf16 autocast for the
    prompt matched 95% but needed its own cache, which turned prompt lookup off.

    The switch is process-wide for the few hundred ms of the prompt: another thread's fp32
    matmuls meanwhile (an embedder's query) also run in bf16, which is harmless there.
    """
    calls, saved = 0, []

    def before(module: Any, args: Any, kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            saved.append(_set_fp32_matmuls("bf16"))

    def after(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if saved:
            _set_fp32_matmuls(saved.pop())

    handles = [
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        if saved:  # the prompt's forward raised
            _set_fp32_matmuls(saved.pop())


def reading_prompt(model: Any, prefill: str) -> contextlib.AbstractContextManager[None]:
    """The block a ``generate`` call runs in for ``prefill``: "bf16" reads the prompt with bf16
    matmuls (:func:`bf16_prompt_matmuls`), "fp32" changes nothing."""
    return bf16_prompt_matmuls(model) if prefill == "bf16" else contextlib.nullcontext()


class Generation:
    """One answer being generated. Iterate for text pieces; then read ``text`` and the timings.

    Args:
        model, tokenizer: loaded with ``core.sources.load_lm``.
        input_ids: (1, T) prompt token ids.
        params: the preset (or custom values).
        stop_strings: text that ends the answer (held back while streaming, never shown).
        lock: held for the whole ``generate`` call (one shared model; the seed must be
            set and used atomically).
        sources: token ids of each source text in the prompt, for ``params.copy_boost``.
        prefill: "fp32" or "bf16": the prompt's matmuls in bf16 (:func:`bf16_prompt_matmuls`).
        prompt_lookup: tokens proposed from the prompt per greedy step (0 = off).
        sentence_ends: token ids after which the copy boost rests (``decoding.sentence_end_ids``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        input_ids: torch.Tensor,
        params: GenerationParams,
        stop_strings: Sequence[str] = (),
        lock: threading.Lock | None = None,
        sources: Sequence[Sequence[int]] = (),
        prefill: str = "fp32",
        prompt_lookup: int = 0,
        sentence_ends: Collection[int] = (),
    ):
        self.model, self.tokenizer, self.input_ids, self.params = model, tokenizer, input_ids, params
        self.prefill = prefill
        self.sources = sources  # token ids of the source texts in the prompt (for copy_boost)
        self.sentence_ends = sentence_ends
        self.prompt_lookup = prompt_lookup  # greedy only: see GenerationParams.generate_kwargs
        self.stops = tuple(stop_strings)
        self.lock = lock or threading.Lock()
        self.text = ""
        self.new_tokens = 0
        self.ttft_s = 0.0  # from start of generate to the first text piece
        self.seconds = 0.0  # whole generate call
        self.stopped_at_string = False
        self.cancelled = threading.Event()  # set by cancel() or by abandoning the iterator
        self._started = 0.0
        self._first_token_at: float | None = None  # when streaming: the first new token's time
        self._worker: tuple[threading.Thread, TokenStreamer, dict[str, Any]] | None = None  # start()

    def cancel(self) -> None:
        """Stop generating at the next token (the reader went away: a rerun, a new question)."""
        self.cancelled.set()

    def _kwargs(self) -> dict[str, Any]:
        kwargs = self.params.generate_kwargs(
            prompt_len=self.input_ids.shape[1],
            sources=self.sources,
            prompt_lookup=self.prompt_lookup,
            sentence_ends=self.sentence_ends,
        )
        attention_mask = torch.ones_like(self.input_ids)
        kwargs.update(input_ids=self.input_ids, attention_mask=attention_mask)
        if self.tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        criteria: list[StoppingCriteria] = [StopOnEvent(self.cancelled)]
        if self.stops:
            # prompt lookup may add up to prompt_lookup + 1 tokens in one step: the decoded tail must
            # still reach back to where a stop string could have begun
            tail = 12 + self.prompt_lookup
            criteria.append(StopOnStrings(self.tokenizer, self.stops, self.input_ids.shape[1], tail))
        kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
        return kwargs

    def _run(self, **extra: Any) -> torch.Tensor:
        with self.lock:
            if self.params.seed is not None:
                torch.manual_seed(self.params.seed)
            self._started = time.perf_counter()
            with torch.inference_mode(), reading_prompt(self.model, self.prefill):
                out = self.model.generate(**self._kwargs(), **extra)
            self.seconds = time.perf_counter() - self._started
        sequences = out.sequences if hasattr(out, "sequences") else out
        return sequences[0, self.input_ids.shape[1] :]

    def _finish(self, new_ids: torch.Tensor) -> None:
        self.new_tokens = int(new_ids.shape[0])
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, self.stopped_at_string = cut_at_stop(text, self.stops)
        self.text = text.strip()

    @property
    def tokens_per_s(self) -> float:
        """Decoding speed: the tokens after the first, per second after the first came. Reading the
        prompt is the time to the first token, reported on its own (as llama.cpp's "eval" rate
        leaves out "prompt eval"). Beams hand nothing out early: new tokens over the whole call."""
        if self._first_token_at is not None and self.new_tokens > 1:
            decoding = self._started + self.seconds - self._first_token_at
            if decoding > 0:
                return (self.new_tokens - 1) / decoding
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def __iter__(self) -> Iterator[str]:
        finished = False
        try:
            yield from self._pieces()
            finished = True
        finally:
            if not finished:  # closed early (GeneratorExit) or failed: free the model for the others
                self.cancel()

    def _pieces(self) -> Iterator[str]:
        if not self.params.streams:
            # a worker thread too, like streaming: same torch threading either way (measured: on a
            # busy 2-core box the main thread's OpenMP team ran generate 3x slower than a fresh thread)
            result: dict[str, Any] = {}

            def work() -> None:
                try:
                    result["ids"] = self._run()
                except BaseException as e:  # re-raised in the caller's thread
                    result["error"] = e

            worker = threading.Thread(target=work, name="bookworm-generate", daemon=True)
            worker.start()
            worker.join()
            if "error" in result:
                raise result["error"]
            self._finish(result["ids"])
            self.ttft_s = self.seconds
            if self.text:
                yield self.text
            return
        yield from self._stream()

    def start(self) -> None:
        """Start generating now, before anyone reads the pieces (streaming only; idempotent): the
        model reads the prompt while the caller shows the evidence. Pieces wait in the streamer's
        queue; an answer nobody reads still ends at ``max_new_tokens`` or at :meth:`cancel`."""
        if self._worker is not None or not self.params.streams:
            return
        streamer = TokenStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["ids"] = self._run(streamer=streamer)
            except BaseException as e:  # re-raised in the caller's thread
                result["error"] = e
                streamer.end()

        thread = threading.Thread(target=work, name="bookworm-generate", daemon=True)
        self._worker = (thread, streamer, result)
        thread.start()

    def _stream(self) -> Iterator[str]:
        self.start()
        assert self._worker is not None
        thread, streamer, result = self._worker
        seen, start, shown = "", None, 0  # text so far; where the answer starts; how much was handed out
        for piece in streamer:
            seen += piece
            text, stopped = cut_at_stop(seen, self.stops)
            end = len(text) if stopped else len(text) - partial_stop(text, self.stops)
            if start is None:
                lead = len(text) - len(text.lstrip())
                if lead >= end:  # nothing visible yet
                    if stopped:
                        break
                    continue
                start = shown = lead
                self.ttft_s = time.perf_counter() - self._started
            if end > shown:
                yield text[shown:end]
                shown = end
            if stopped:
                break
        thread.join()
        self._first_token_at = streamer.first_token_at
        if "error" in result:
            raise result["error"]
        self._finish(result["ids"])
        emitted = seen[start:shown] if start is not None else ""
        if self.text.startswith(emitted) and len(self.text) > len(emitted):
            if start is None:
                self.ttft_s = self.seconds
            yield self.text[len(emitted) :]  # what was held back, minus a stop string and trailing space

    def run(self) -> str:
        """Generate the whole answer (no streaming to the caller)."""
        for _ in self:
            pass
        return self.text
