"""`make bench-answer`: retrieval latency, time to first token, tokens/s, and the assistant's
overhead against a plain ``model.generate`` on the same prompt, measured in the same run.

The generation runs use the offline SmolLM2-135M on 2 threads (the project's target laptop)
with the default preset and context (greedy, so the assistant and the plain call make the
same tokens and their times compare). Evidence time is from the question to the evidence
being known (what the UI shows first); TTFT is from the question to the first answer text (the
lead quote, when the answer opens with one) and the model's first token is printed beside it.
The assistant's time is the whole question -> answer
path (retrieval, prompt budget, streaming thread, stop checks); plain is ``generate`` alone,
run in a fresh thread like the assistant's (see ``in_worker_thread``).
Runs alternate (assistant, plain, assistant, ...) so a noisy neighbour hits both; medians.

The last line reads ``ratio assistant/plain generate: X.XX`` (goal <= 1.10).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.config import Settings, add_settings_args, settings_from_args
from core.errors import BookwormError
from core.sources import OFFLINE_LM


def pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def plain_generate(
    model, tokenizer, ids, params, sources=(), prompt_lookup=0, sentence_ends=(), prefill="fp32"
):
    """The baseline: one ``model.generate`` call with the same arguments, seed and prompt precision.
    Returns (ids, seconds)."""
    import torch

    from assistant.generate import reading_prompt

    torch.manual_seed(params.seed)
    t = time.perf_counter()
    with torch.inference_mode(), reading_prompt(model, prefill):
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pad_token_id=tokenizer.pad_token_id,
            **params.generate_kwargs(
                prompt_len=ids.shape[1],
                sources=sources,
                prompt_lookup=prompt_lookup,
                sentence_ends=sentence_ends,
            ),
        )
    return out, time.perf_counter() - t


def in_worker_thread(fn, *args):
    """Run ``fn`` in a fresh thread, as the assistant runs generate: on a busy 2-core machine the
    main thread's torch/OpenMP threads ran generate ~3x slower than a fresh thread, which would
    flatter the assistant."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(value=fn(*args)))
    worker.start()
    worker.join()
    return result["value"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_answer", description=__doc__)
    add_settings_args(
        parser,
        "index_dir",
        "embedder",
        "retrieval",
        "passages",
        "cache_dir",
        "preset",
        "context",
        "lead",
        "abstain_below",
        "prompt_lookup",
    )
    parser.add_argument(
        "--questions", default="data/dev_questions.jsonl", help="questions to time retrieval on"
    )
    parser.add_argument("--lm", default=OFFLINE_LM, help="model that answers (default: the offline 135M)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the 2-core target)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5, help="timed question pairs (assistant + plain)")
    parser.add_argument(
        "--compare-questions",
        type=int,
        default=12,
        help="questions answered as configured and by each variant (bf16 prefill, no lookup); 0 = skip",
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    import torch
    import transformers

    from assistant.presets import get_params
    from benchmarks.dev_set import read_dev_questions

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    settings = settings_from_args(args)
    torch.set_num_threads(args.threads)
    questions = [q.question for q in read_dev_questions(args.questions)]
    retriever = time_retrieval(settings, questions)
    bot = load_assistant(settings, args, retriever)
    params = get_params(settings.preset).replace(max_new_tokens=args.max_new_tokens, seed=0)
    bot.ask(questions[0], params.replace(max_new_tokens=4))  # warm-up
    rows = [time_answer(bot, q, params, settings.context) for q in questions[1 : args.reps + 1]]
    if params.num_beams == 1 and args.compare_questions > 0:
        compare_variants(bot, questions[1 : args.compare_questions + 1], params)
    print_summary(rows)
    return 0


VARIANTS: dict[str, dict[str, Any]] = {
    # the other prompt precision than the configured one (bf16 matmuls on a CPU with native bf16)
    "bf16 prefill": {"prefill": "bf16"},
    "fp32 prefill": {"prefill": "fp32"},
    "no prompt lookup": {"prompt_lookup": 0},
    # the other lead than the configured one (the same one is left out): quote vs the model's own start
    "lead quote": {"lead": "quote"},
    "no lead quote": {"lead": "none"},
}


def compare_variants(bot: Any, questions: list[str], params: Any) -> None:
    """The same questions answered as configured and by each variant of :data:`VARIANTS`
    (alternating, so a noisy neighbour hits all): TTFT, tokens/s, and how much of the greedy text
    stays the same."""
    from core.hardware import cpu_supports_bf16

    variants = dict(VARIANTS)
    if bot._model.device.type == "cpu" and not cpu_supports_bf16():
        print("bf16 prefill: this CPU has no native bf16, so it would be slower; not compared")
        del variants["bf16 prefill"]
    variants = {k: v for k, v in variants.items() if any(getattr(bot, a) != x for a, x in v.items())}
    default = {a: getattr(bot, a) for v in variants.values() for a in v}
    runs: dict[str, list[Any]] = {"as configured": [], **{k: [] for k in variants}}
    for q in questions:
        for name in runs:
            for attr, value in (default | variants.get(name, {})).items():
                setattr(bot, attr, value)
            runs[name].append(bot.ask(q, params))
    for attr, value in default.items():
        setattr(bot, attr, value)
    base = runs["as configured"]
    for name, answers in runs.items():
        same, kept = _same_text(bot, base, answers)
        ttft = statistics.median(a.timings.ttft_ms for a in answers)
        token = statistics.median(a.timings.first_token_ms for a in answers)
        print(
            f"{name:>16} ({len(questions)} questions): TTFT p50 {ttft:.0f} ms (model's first token "
            f"{token:.0f} ms), tokens/s p50 "
            f"{statistics.median(a.timings.tokens_per_s for a in answers):.1f}, total p50 "
            f"{statistics.median(a.timings.total_ms for a in answers) / 1000:.2f} s; identical answers "
            f"{same}/{len(answers)}, {kept:.0%} of the configured answers' tokens before the first difference"
        )
    by_prefill = {bot.prefill: base} | {v["prefill"]: runs[k] for k, v in variants.items() if "prefill" in v}
    if {"bf16", "fp32"} <= by_prefill.keys():  # the measure: the model's first token, same questions
        bf16, fp32 = (
            statistics.median(a.timings.first_token_ms for a in by_prefill[p]) for p in ("bf16", "fp32")
        )
        print(f"ratio model's first token, bf16/fp32 prompt matmuls: {bf16 / fp32:.2f}")


def _same_text(bot: Any, base: list[Any], other: list[Any]) -> tuple[int, float]:
    """(answers identical to ``base``'s, share of ``base``'s tokens before the first difference)."""
    same = kept = total = 0
    for a, b in zip(base, other, strict=True):
        x, y = bot.encode(a.model_text), bot.encode(b.model_text)
        kept += next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
        total += len(x)
        same += x == y
    return same, kept / max(total, 1)


def time_retrieval(settings: Settings, questions: list[str]) -> Any:
    """Load the index and time ``retriever.search`` per question; prints load time and p50/p95."""
    from assistant.retrieve import Retriever

    t0 = time.perf_counter()
    retriever = Retriever.load(settings.index_dir, settings.embedder, settings.retrieval)
    load_s = time.perf_counter() - t0
    for q in questions[:2]:  # warm-up
        retriever.search(q, settings.passages)
    ms = []
    for q in questions:
        t = time.perf_counter()
        retriever.search(q, settings.passages)
        ms.append((time.perf_counter() - t) * 1000)
    parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in retriever.load_seconds.items())
    print(f"index: {len(retriever.chunks)} chunks; load {load_s:.2f} s ({parts})")
    print(
        f"retrieval ({settings.retrieval}, k={settings.passages}, {len(ms)} questions): "
        f"p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms"
    )
    return retriever


def load_assistant(settings: Settings, args: argparse.Namespace, retriever: Any) -> Any:
    """The assistant with the benchmark's model (``--lm``), reusing the loaded retriever."""
    from assistant.pipeline import Assistant

    folder = Path(args.lm).is_dir()  # a model folder: its training manifest decides --lead auto
    bot = Assistant(
        settings.index_dir,
        model_dir=args.lm if folder else None,
        base_model=OFFLINE_LM if folder else args.lm,
        passages=settings.passages,
        context=settings.context,
        lead=settings.lead,
        abstain_below=settings.abstain_below,
        prompt_lookup=settings.prompt_lookup,
        cache_dir=settings.cache_dir or None,
        retriever=retriever,
    )
    info = bot.model_info
    print(
        f"model: {info.model_id} ({bot.window}-token window), {args.threads} threads, "
        f"preset {settings.preset}, context {settings.context}, lead {bot.lead} ({settings.lead})"
    )
    return bot


def time_answer(bot: Any, question: str, params: Any, context: str) -> tuple[float, ...]:
    """One question through the assistant, then its prompt through a plain ``generate``; prints both.

    Returns (assistant s, plain s, TTFT ms, tokens/s, assistant tokens, plain tokens, evidence shown ms,
    model's first token ms).
    """
    import torch

    answer = bot.ask(question, params)
    hits = bot.search(question)
    evidence = bot.evidence(question, hits)
    shown = evidence if context == "evidence" else None
    prompt = bot.build_prompt(question, hits, (), params.max_new_tokens, shown, bot.opening(evidence))
    ids = torch.tensor([bot.encode(prompt.text)])
    sources = [bot.encode(p.text) for p in prompt.passages]
    out, plain_s = in_worker_thread(
        plain_generate,
        bot._model,
        bot._tokenizer,
        ids,
        params,
        sources,
        bot.prompt_lookup,
        bot._sentence_ends,
        bot.prefill,
    )
    plain_tokens = out.shape[1] - ids.shape[1]
    t_ = answer.timings
    shown_ms = t_.retrieval_ms + t_.evidence_ms
    print(
        f"  {t_.prompt_tokens} prompt tok · evidence after {shown_ms:.0f} ms · assistant "
        f"{t_.total_ms / 1000:.2f} s (ttft {t_.ttft_ms:.0f} ms, model's first token "
        f"{t_.first_token_ms:.0f} ms, {t_.new_tokens} tok, "
        f"{t_.tokens_per_s:.1f} tok/s, support check {t_.support_ms:.0f} ms) · "
        f"plain generate {plain_s:.2f} s ({plain_tokens} tok)"
    )
    return (
        t_.total_ms / 1000,
        plain_s,
        t_.ttft_ms,
        t_.tokens_per_s,
        t_.new_tokens,
        plain_tokens,
        shown_ms,
        t_.first_token_ms,
    )


def print_summary(rows: list[tuple[float, ...]]) -> None:
    """Medians over the timed questions, then the ratio line `make bench` collects."""
    same = all(r[4] == r[5] for r in rows)
    assistant_s = statistics.median(r[0] for r in rows)
    plain_s = statistics.median(r[1] for r in rows)
    print(
        f"evidence shown p50 {statistics.median(r[6] for r in rows):.0f} ms · "
        f"time to first text p50 {statistics.median(r[2] for r in rows):.0f} ms · "
        f"model's first token p50 {statistics.median(r[7] for r in rows):.0f} ms · "
        f"tokens/s p50 {statistics.median(r[3] for r in rows):.1f} · same tokens generated: {same}"
    )
    print(f"ratio assistant/plain generate: {assistant_s / plain_s:.2f}")


if __name__ == "__main__":
    sys.exit(main())
