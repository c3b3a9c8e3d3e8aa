"""Pure scoring functions for the evaluation report (no models)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.grounding.scores import cited_numbers, normalize_answer, token_f1

__all__ = ["choose_threshold", "cited_numbers", "normalize_answer", "percentile", "token_f1"]


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
