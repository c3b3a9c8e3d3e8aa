"""Retrieval on the dev set: hit@1/3/k and MRR@k of dense, BM25 and hybrid, with the time per query.

    python -m benchmarks.eval_retrieval [--questions data/dev_questions.jsonl] [--k 5] [--json]

(``python -m assistant eval-retrieval`` runs this too.) It scores the whole retrieval pipeline
(fusion, listing demotion, neighbour merging) as the assistant runs it; a hit counts when it
comes from the gold file and shares a gold page. `make eval` reuses :func:`evaluate_retrieval`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from assistant.retrieve import MODES, Retriever
from benchmarks.dev_set import DevQuestion, read_dev_questions
from benchmarks.metrics import first_relevant_rank, retrieval_metrics
from core.config import Settings, add_settings_args, settings_from_args, settings_in
from core.errors import BookwormError
from core.quiet import quiet_libraries

K_ALIAS = {"passages": ("--k",)}  # the assistant CLI's name for the passages setting


def evaluate_retrieval(
    retriever: Retriever,
    questions: Sequence[DevQuestion],
    mode: str | None = None,
    k: int = 5,
    query: Callable[[DevQuestion], str] = lambda q: q.question,
) -> dict:
    """retrieval_metrics of the whole pipeline (fusion + merging) for one mode, plus each question's
    rank. ``query``: what is searched for each question (follow-ups: with the question before)."""
    ranked = []
    for q in questions:
        hits = retriever.search(query(q), k, mode=mode)
        ranked.append([(h.chunk.file, h.chunk.pages) for h in hits])
    gold = [(q.file, q.pages) for q in questions]
    metrics: dict = retrieval_metrics(ranked, gold, ks=(1, 3, k))
    metrics["per_question"] = [
        {"question": q.question, "rank": first_relevant_rank(r, q.file, q.pages)}
        for q, r in zip(questions, ranked, strict=True)
    ]
    return metrics


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.eval_retrieval",
        description="hit@1/3/5 and MRR@5 of dense, BM25 and hybrid on a dev set",
    )
    parser.add_argument("--questions", default="data/dev_questions.jsonl")
    parser.add_argument("--json", action="store_true")
    add_settings_args(parser, *settings_in("retrieval"), aliases=K_ALIAS)
    return parser


def score_modes(settings: Settings, questions: Sequence[DevQuestion]) -> tuple[Retriever, dict[str, Any]]:
    """Every retrieval mode's metrics on ``questions`` and its mean milliseconds per query."""
    retriever = Retriever.load(settings.index_dir, settings.embedder, settings.retrieval)
    results = {}
    for mode in MODES:
        t0 = time.perf_counter()
        results[mode] = evaluate_retrieval(retriever, questions, mode, k=settings.passages)
        results[mode]["ms_per_query"] = (time.perf_counter() - t0) * 1000 / len(questions)
    return retriever, results


def print_table(results: dict[str, Any], n_questions: int, k: int, bm25_seconds: float) -> None:
    """One markdown row per mode (``per_question`` is left to ``--json``)."""
    keys = [key for key in next(iter(results.values())) if key != "per_question"]
    print(f"{n_questions} questions, k={k}, BM25 built in {bm25_seconds * 1000:.0f} ms\n")
    print("| mode | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for mode, r in results.items():
        cells = [f"{r[key]:.0f}" if key == "ms_per_query" else f"{r[key]:.3f}" for key in keys]
        print(f"| {mode} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_libraries()
    try:
        settings = settings_from_args(args)
        questions = read_dev_questions(args.questions)
        retriever, results = score_modes(settings, questions)
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results, len(questions), settings.passages, retriever.load_seconds.get("bm25", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
