"""Pure scoring functions for the evaluation report (no models)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from core.grounding.scores import cited_numbers, normalize_answer, token_f1

__all__ = [
    "choose_threshold",
    "cited_numbers",
    "first_relevant_rank",
    "normalize_answer",
    "percentile",
    "retrieval_metrics",
    "token_f1",
]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); nan for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def choose_threshold(answerable: Sequence[float], unanswerable: Sequence[float]) -> tuple[float, float]:
    """The score under which to abstain that best separates the two sets: maximises balanced
    accuracy (answerable kept, unanswerable refused, each weighted 1/2); ties go to the lowest
    threshold, which refuses the fewest answerable questions. Returns (threshold, balanced accuracy)."""
    if not answerable or not unanswerable:
        return 0.0, math.nan
    best = (0.0, -1.0)
    for t in sorted({0.0, *answerable, *unanswerable}):
        kept = sum(s >= t for s in answerable) / len(answerable)
        refused = sum(s < t for s in unanswerable) / len(unanswerable)
        acc = (kept + refused) / 2
        if acc > best[1] + 1e-12:
            best = (t, acc)
    return best


# --- retrieval against the dev set's gold (file, pages) --------------------------------


def first_relevant_rank(
    ranked_pages: Sequence[tuple[str, Sequence[int]]], gold_file: str, gold_pages: Sequence[int]
) -> int | None:
    """1-based rank of the first hit from the gold file (compared by name) sharing a gold page."""
    name = Path(gold_file).name
    gold = set(gold_pages)
    for rank, (file, pages) in enumerate(ranked_pages, start=1):
        if Path(file).name == name and gold.intersection(pages):
            return rank
    return None


def retrieval_metrics(
    ranked_pages: Sequence[Sequence[tuple[str, Sequence[int]]]],
    gold: Sequence[tuple[str, Sequence[int]]],
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """hit@k for each k and MRR@max(k) over questions.

    Args:
        ranked_pages: per question, the hits' (file, pages) best first.
        gold: per question, (gold file, gold pages).
    """
    if len(ranked_pages) != len(gold):
        raise ValueError("one ranking per gold answer")
    n = len(gold)
    if n == 0:
        return {}
    ranks = [first_relevant_rank(r, f, p) for r, (f, p) in zip(ranked_pages, gold, strict=True)]
    out = {f"hit@{k}": sum(r is not None and r <= k for r in ranks) / n for k in ks}
    k_max = max(ks)
    out[f"mrr@{k_max}"] = sum(1 / r for r in ranks if r is not None and r <= k_max) / n
    return out
