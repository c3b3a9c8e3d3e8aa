"""Pure scoring functions for the evaluation report (no models)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> list[str]:
    """SQuAD normalisation: lower case, no punctuation, no articles, split on whitespace."""
    text = text.lower().translate(_PUNCT)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (SQuAD's answer F1), in [0, 1]."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); nan for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


_CITED = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in an answer, in order of first appearance: "[1]", "[2, 3]"."""
    seen: dict[int, None] = {}
    for m in _CITED.finditer(text):
        for n in m.group(1).split(","):
            seen[int(n)] = None
    return list(seen)


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
