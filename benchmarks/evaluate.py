"""`make eval`: how good is bookworm on a question set? Writes reports/eval-<date>.md with charts.

- retrieval: hit@1/3/5 and MRR@5 for dense, BM25 and hybrid (gold = file + any gold page);
- held-out perplexity and held-out answer-from-sources scores of every model, on the training
  run's own held-out chunks (:mod:`benchmarks.eval_heldout`);
- answers, per setup: the landed behaviour (whole passages, 4-beam technical preset) as the
  baseline; the evidence alone (the books' best sentences, no model); the base and the
  fine-tuned model with the default pipeline (evidence prompt, default preset). For each:
  token-F1 against the reference answers (of the grounded answer: the answer's supported
  sentences, else the evidence quotes; and of its whole text), support fraction,
  unsupported code spans, citation accuracy (a cited [n] is from the gold file and a gold page),
  abstentions, TTFT and total p50/p95;
- follow-ups: retrieval of questions that lean on the one before ("How do I declare one?"),
  searched alone and as the assistant searches them;
- abstention: the best evidence score of answerable and unanswerable questions, the threshold
  that separates them best, and how often each kind is refused at the configured threshold.

The report itself is written by :mod:`benchmarks.eval_report`.

Questions: JSONL with ``question``, ``file``, ``pages`` and ``answer`` (other fields ignored);
unanswerable questions: JSONL with ``question``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.dev_set import DevQuestion
from benchmarks.eval_heldout import (
    MAX_EXAMPLES,
    UNSEEN_EXAMPLES,
    SplitChanged,
    eval_held_out,
    held_out_data,
    unseen_data,
)
from benchmarks.eval_report import Setup, write_report
from benchmarks.metrics import first_relevant_rank, token_f1
from core.config import add_settings_args, settings_from_args
from core.errors import BookwormError


def eval_retrieval(
    retriever: Any, questions: Sequence[DevQuestion], k: int = 5
) -> dict[str, dict[str, float]]:
    from assistant.retrieve import MODES
    from benchmarks.eval_retrieval import evaluate_retrieval

    out = {}
    for mode in MODES:
        metrics = evaluate_retrieval(retriever, questions, mode=mode, k=k)
        out[mode] = {key: v for key, v in metrics.items() if key != "per_question"}
    return out


def eval_followups(retriever: Any, path: str, k: int = 5) -> dict[str, Any] | None:
    """Follow-up questions ("How do I declare one?", with the question asked before): retrieval as
    the assistant searches them (with the question before, when they read as follow-ups) and alone.
    Only the questions about files in this index count; None when there are none."""
    from assistant.followup import is_follow_up, search_query
    from benchmarks.dev_set import read_dev_questions
    from benchmarks.eval_retrieval import evaluate_retrieval

    indexed = {c.file for c in retriever.chunks}
    questions = [q for q in read_dev_questions(path) if q.file in indexed]
    if not questions:  # another corpus (e.g. --questions over other books): nothing to score
        print(f"Follow-ups: none of {path}'s files are in this index; skipped.", flush=True)
        return None

    def joined(q: DevQuestion) -> str:
        return search_query(q.question, [q.previous] if q.previous else [])

    out: dict[str, Any] = {"file": path, "n": len(questions)}
    out["detected"] = sum(is_follow_up(q.question) for q in questions)
    for name, query in (("searched alone", lambda q: q.question), ("with the question before", joined)):
        metrics = evaluate_retrieval(retriever, questions, k=k, query=query)
        out[name] = {key: v for key, v in metrics.items() if key != "per_question"}
    return out


def citation_accuracy(
    cited: Sequence[int], places: dict[int, tuple[str, Sequence[int]]], q: DevQuestion
) -> float | None:
    """Share of the cited [n] whose (file, pages) in ``places`` is the gold file sharing a gold page."""
    cited = [n for n in cited if n in places]
    if not cited:
        return None
    good = [first_relevant_rank([places[n]], q.file, q.pages) == 1 for n in cited]
    return sum(good) / len(good)


def run_answers(
    assistant: Any,
    setup: Setup,
    questions: Sequence[DevQuestion],
    params: Any,
    preset: str,
    mode: str = "model",
) -> Setup:
    """Answer every question; ``mode`` "evidence" scores the evidence alone (no generation)."""
    from tqdm import tqdm

    from benchmarks.metrics import cited_numbers
    from core.grounding.scores import is_abstention

    for q in tqdm(questions, desc=f"answers: {setup.name}", unit="q"):
        if mode == "evidence":
            t0 = time.perf_counter()
            hits = assistant.search(q.question)
            evidence = assistant.evidence(q.question, hits)
            ms = (time.perf_counter() - t0) * 1000
            text = " ".join(e.text for e in evidence)
            setup.f1.append(token_f1(text, q.answer))
            setup.f1_model.append(float("nan"))
            setup.citation += [
                x for x in [citation_accuracy([e.n for e in evidence], _places(hits), q)] if x is not None
            ]
            setup.abstained.append(False)
            setup.retrieval_ms.append(ms)
            setup.ttft_ms.append(ms)
            setup.first_token_ms.append(float("nan"))
            setup.total_ms.append(ms)
            setup.prompt_tokens.append(0)
            if len(setup.examples) < 3:
                setup.examples.append((q.question, text))
            continue
        answer = assistant.ask(q.question, params, k=None if setup.retrieval else 0, preset=preset)
        setup.f1.append(token_f1(answer.grounded_text, q.answer))
        setup.f1_model.append(token_f1(answer.text, q.answer))
        # refused by the threshold, or the model itself said the sources do not cover it
        setup.abstained.append(answer.abstained or is_abstention(answer.model_text or answer.text))
        if answer.support is not None and not answer.abstained:
            setup.support.append(answer.support.supported_fraction)
            setup.unsupported_code.append(len(answer.support.unsupported_code))
        places = {s.n: (s.file, s.pages) for s in answer.sources}
        accuracy = citation_accuracy(cited_numbers(answer.text), places, q)
        if accuracy is not None:
            setup.citation.append(accuracy)
        setup.retrieval_ms.append(answer.timings.retrieval_ms)
        setup.ttft_ms.append(answer.timings.ttft_ms)
        setup.first_token_ms.append(answer.timings.first_token_ms)
        setup.total_ms.append(answer.timings.total_ms)
        setup.prompt_tokens.append(answer.timings.prompt_tokens)
        if len(setup.examples) < 3:
            setup.examples.append((q.question, answer.grounded_text.strip()))
    return setup


def _places(hits: Sequence[Any]) -> dict[int, tuple[str, Sequence[int]]]:
    """Citation number -> (file, pages) of each hit, as the assistant numbers them."""
    return {n: (h.chunk.file, h.chunk.pages) for n, h in enumerate(hits, start=1)}


def abstention_scores(assistant: Any, questions: Sequence[str]) -> list[float]:
    """The best evidence score per question (0 when no sentence qualifies): what abstention reads."""
    from core.grounding.evidence import best_score

    out = []
    for q in questions:
        evidence = assistant.evidence(q, assistant.search(q))
        out.append(best_score(evidence))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_args(
        parser,
        "index_dir",
        "model_dir",
        "base_model",
        "offline_fallback",
        "cache_dir",
        "eval_blocks",
        "preset",
        "passages",
        "context",
        "lead",
        "evidence_sentences",
        "prefill",
        "abstain_below",
    )
    parser.add_argument("--questions", default="data/dev_questions.jsonl", help="JSONL question set")
    parser.add_argument("--limit", type=int, default=0, help="answer only the first N questions (0 = all)")
    parser.add_argument(
        "--baseline-limit",
        type=int,
        default=0,
        help="answer only the first N questions with the slow landed baseline (0 = as --limit; -1 = skip it)",
    )
    parser.add_argument(
        "--also",
        default="",
        help="more answer setups on the --baseline-limit questions, as PRESET:CONTEXT pairs "
        "(e.g. technical:evidence,precise:passages): the comparison behind the defaults",
    )
    parser.add_argument(
        "--compare-lead",
        action="store_true",
        help="also answer with the base and the fine-tuned model under the other lead (quote <-> none): "
        "the comparison behind --lead auto",
    )
    parser.add_argument(
        "--followups",
        default="data/dev_followups.jsonl",
        help="follow-up questions with the question asked before each ('previous'), to score how "
        "retrieval searches them (skipped if missing)",
    )
    parser.add_argument(
        "--unanswerable",
        default="data/dev_unanswerable.jsonl",
        help="questions the books do not answer, to choose the abstention threshold (skipped if missing)",
    )
    parser.add_argument(
        "--also-model",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another model folder answered with the defaults, e.g. "
        "'raw-text fine-tune=models/finetuned-raw' (skipped with a note when it holds no model); repeatable",
    )
    parser.add_argument("--skip-answers", action="store_true", help="retrieval and perplexity only")
    parser.add_argument("--skip-perplexity", action="store_true")
    parser.add_argument(
        "--skip-held-out",
        action="store_true",
        help="skip answering the training run's held-out answer-from-sources examples with each model",
    )
    parser.add_argument(
        "--unseen-index",
        action="store_true",
        help="the index holds only books the model never trained on (e.g. your own books with the "
        "sample corpus's model): held-out perplexity and answer-from-sources examples come from all "
        "of its chunks instead of the training run's split",
    )
    parser.add_argument("--out", default="reports", help="report folder")
    args = parser.parse_args(argv)
    try:
        return _run(args, settings_from_args(args))
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def answer_setups(
    args: argparse.Namespace,
    settings: Any,
    questions: Sequence[DevQuestion],
    retriever: Any,
    info: Any,
    ft: Any,
    base_source: Any,
) -> list[Setup]:
    """The baseline (landed behaviour), the evidence alone, then base and fine-tuned with the defaults."""
    from assistant.presets import get_params

    asked = questions[: args.limit] if args.limit else questions
    baseline = questions[: args.baseline_limit] if args.baseline_limit else asked
    params = get_params(settings.preset)
    setups = base_model_setups(args, settings, asked, baseline, params, retriever, base_source)
    return setups + fine_tuned_setups(args, settings, asked, params, retriever, info, ft)


def base_model_setups(
    args: argparse.Namespace,
    settings: Any,
    asked: Sequence[DevQuestion],
    baseline: Sequence[DevQuestion],
    params: Any,
    retriever: Any,
    base_source: Any,
) -> list[Setup]:
    """The evidence alone, the landed baseline, the base model with the defaults and with each
    ``--also`` preset/context. The base model is freed on return, before a fine-tuned one loads."""
    from assistant.pipeline import Assistant
    from assistant.presets import PRESETS, get_params

    base = Assistant.from_settings(
        settings, model_dir=None, base_model=base_source.name, retriever=retriever, log_file=None
    )
    model_id = base.model_info.model_id
    setups = [run_answers(base, Setup("evidence only (no model)", "–", True), asked, params, "", "evidence")]
    # as landed: whole passages, never abstains, the model writes the whole answer
    lead = base.lead  # as settings.lead resolved for this model
    base.context, base.abstain_below, base.lead = "passages", 0.0, "none"
    if args.baseline_limit >= 0:
        landed = Setup("landed: passages + technical", model_id, True)
        setups.append(run_answers(base, landed, baseline, PRESETS["technical"], "technical"))
    base.context, base.abstain_below, base.lead = settings.context, settings.abstain_below, lead
    setups.append(
        run_answers(base, Setup("base + RAG (default)", model_id, True), asked, params, settings.preset)
    )
    if args.compare_lead:
        setups.append(_other_lead(base, "base + RAG", asked, params, settings.preset))
    for preset, context in _alternatives(args.also):  # how the default was chosen: other presets/contexts
        base.context = context
        name = f"base + RAG, {preset} preset, {context} context"
        setups.append(run_answers(base, Setup(name, model_id, True), baseline, get_params(preset), preset))
    base.context = settings.context
    return setups


def fine_tuned_setups(
    args: argparse.Namespace,
    settings: Any,
    asked: Sequence[DevQuestion],
    params: Any,
    retriever: Any,
    info: Any,
    ft: Any,
) -> list[Setup]:
    """The fine-tuned model with the defaults (if any), then each ``--also-model`` folder."""
    from assistant.pipeline import Assistant

    setups = []
    if info.fine_tuned:
        ft.load_model()
        name = "fine-tuned + RAG (default)"
        setups.append(run_answers(ft, Setup(name, info.model_id, True), asked, params, settings.preset))
        if args.compare_lead:
            setups.append(_other_lead(ft, "fine-tuned + RAG", asked, params, settings.preset))
    else:
        print("No fine-tuned model: run `make train` to compare it.", flush=True)
    for name, folder in _other_models(args.also_model):
        other = Assistant.from_settings(settings, model_dir=folder, retriever=retriever, log_file=None)
        if not other.model_info.fine_tuned:
            print(f"--also-model {name}: no model in {folder}; skipped", flush=True)
            continue
        setups.append(
            run_answers(other, Setup(f"{name} + RAG (default)", folder, True), asked, params, settings.preset)
        )
        del other
    return setups


def _other_lead(bot: Any, name: str, asked: Sequence[DevQuestion], params: Any, preset: str) -> Setup:
    """``bot`` answering with the other lead than its own (quote <-> none), then as it was."""
    lead = bot.lead
    bot.lead = "none" if lead == "quote" else "quote"
    label = f"{name}, {'no lead quote' if bot.lead == 'none' else 'opening on the lead quote'}"
    try:
        return run_answers(bot, Setup(label, bot.model_info.model_id, True), asked, params, preset)
    finally:
        bot.lead = lead


def _other_models(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``["raw-text fine-tune=models/finetuned-raw"]`` -> [(name, folder)]."""
    out = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise BookwormError(f"--also-model {spec!r}: want NAME=DIR")
        out.append((name.strip(), folder.strip()))
    return out


def _other_model_infos(specs: Sequence[str], settings: Any) -> list[tuple[str, Any]]:
    """(name, ModelInfo) per ``--also-model`` folder, resolved without loading weights."""
    from assistant.model import resolve_model

    return [
        (name, resolve_model(folder, settings.base_model, cache_dir=settings.cache_dir or None)[0])
        for name, folder in _other_models(specs)
    ]


def _alternatives(spec: str) -> list[tuple[str, str]]:
    """``"technical:evidence,precise:passages"`` -> [(preset, context), ...]."""
    from assistant.pipeline import CONTEXTS
    from assistant.presets import PRESETS

    out = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        preset, _, context = item.partition(":")
        if preset not in PRESETS or context not in CONTEXTS:
            raise BookwormError(f"--also {item!r}: want PRESET:CONTEXT, e.g. technical:evidence")
        out.append((preset, context))
    return out


def eval_abstention(
    assistant: Any, questions: Sequence[DevQuestion], unanswerable_path: str, threshold: float
) -> dict[str, Any]:
    import json

    from benchmarks.metrics import choose_threshold

    lines = Path(unanswerable_path).read_text(encoding="utf-8").splitlines()
    unanswerable = [str(json.loads(ln)["question"]) for ln in lines if ln.strip()]
    pos = abstention_scores(assistant, [q.question for q in questions])
    neg = abstention_scores(assistant, unanswerable)
    return {
        "file": unanswerable_path,
        "answerable": pos,
        "unanswerable": neg,
        "best": choose_threshold(pos, neg),
        "threshold": threshold,
        "refused_answerable": sum(s < threshold for s in pos),
        "refused_unanswerable": sum(s < threshold for s in neg),
    }


def _run(args: argparse.Namespace, settings: Any) -> int:
    import platform

    from assistant.pipeline import Assistant
    from assistant.retrieve import Retriever
    from benchmarks.dev_set import read_dev_questions
    from core.sources import resolve_lm

    questions = read_dev_questions(args.questions)
    t0 = time.time()
    retriever = Retriever.load(settings.index_dir)
    print(f"Retrieval over {len(questions)} questions...", flush=True)
    retrieval = eval_retrieval(retriever, questions)
    followups = eval_followups(retriever, args.followups) if Path(args.followups).is_file() else None

    ft = Assistant.from_settings(settings, retriever=retriever, load_model=False, log_file=None)
    info = ft.model_info
    base_name = (info.manifest or {}).get("base_model", {}).get("used") if info.fine_tuned else None
    base_source = resolve_lm(
        base_name or settings.base_model,
        offline_fallback=settings.offline_fallback,
        cache_dir=settings.cache_dir or None,
    )
    ppl: dict[str, float] = {}
    held_out, held_note = None, ""
    unseen = bool(args.unseen_index and info.fine_tuned)
    if not (args.skip_perplexity and args.skip_held_out):
        try:
            data = (unseen_data if unseen else held_out_data)(settings.index_dir, info)
        except SplitChanged as e:  # e.g. the books index with the sample corpus's model: answers still count
            held_note = str(e)
            print(f"Held-out sections skipped: {held_note}", flush=True)
        else:
            others = [
                (n, str(m.path)) for n, m in _other_model_infos(args.also_model, settings) if m.fine_tuned
            ]
            ppl, held_out = eval_held_out(
                settings.index_dir,
                data,
                info,
                base_source,
                others,
                max_blocks=settings.eval_blocks,
                perplexity=not args.skip_perplexity,
                answers=not args.skip_held_out,
                cache_dir=settings.cache_dir or None,
                max_examples=UNSEEN_EXAMPLES if unseen else MAX_EXAMPLES,
            )

    setups: list[Setup] = []
    if not args.skip_answers:
        setups = answer_setups(args, settings, questions, retriever, info, ft, base_source)
    abstention = None
    if Path(args.unanswerable).is_file():
        abstention = eval_abstention(ft, questions, args.unanswerable, settings.abstain_below)

    report = write_report(
        Path(args.out),
        args.questions,
        len(questions),
        retrieval,
        ppl,
        setups,
        {
            "index_dir": settings.index_dir,
            "index": retriever.index_info,
            "model_id": info.model_id,
            "fine_tuned": info.fine_tuned,
            "base_model": base_source.description,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
            "held_out_note": held_note,
            "held_out_unseen": unseen,
        },
        abstention,
        followups,
        held_out,
    )
    print(report.read_text(encoding="utf-8"))
    print(f"Report: {report} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
