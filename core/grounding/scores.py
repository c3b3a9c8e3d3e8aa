"""Pure answer scores shared by training's held-out evaluation and ``make eval`` (no models)."""

from __future__ import annotations

import re
import string
from collections import Counter

from core.grounding.prompt import ABSTAIN_TEXT

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


_CITED = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in an answer, in order of first appearance: "[1]", "[2, 3]"."""
    seen: dict[int, None] = {}
    for m in _CITED.finditer(text):
        for n in m.group(1).split(","):
            seen[int(n)] = None
    return list(seen)


def strip_citations(text: str) -> str:
    """The answer without its "[n]" markers: a citation is scored as a citation, not as answer words."""
    return _CITED.sub("", text)


# "the sources do not cover ...", with its subject: "A set does not contain duplicates." is an answer
_ABSTAINS = re.compile(
    r"\b(?:sources?|passages?|books?|context|documents?|texts?|they)\s+do(?:es)?\s+not\s+(?:seem\s+to\s+)?"
    r"(?:cover|contain|answer|mention|say|discuss)|\bnot\s+covered\b|\bcannot\s+be\s+answered\b",
    re.I,
)


def is_abstention(text: str) -> bool:
    """The answer says the sources do not cover the question (the assistant's own sentence or a
    paraphrase of it), instead of answering."""
    return text.strip().startswith(ABSTAIN_TEXT[:40]) or bool(_ABSTAINS.search(text))
