"""Verified citations: each answer sentence cites the passage it was found in, not the number the
model guessed.

A small model learns to quote long before it learns which [n] it quoted: after a 10-minute
answer-from-sources fine-tune it quoted the right sentence far more often than it cited the right
passage. A quote is checkable, so the citation is derived from it: a sentence whose content words
are mostly (``MIN_COVERAGE``) in one passage cites that passage; a run of sentences from one
passage cites it once, at the run's end; a sentence found in no passage cites nothing (a number
beside a claim the books do not make would lend it their authority). Pure: word overlap only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.grounding.sentences import content_words, split_sentences

MIN_COVERAGE = 0.6  # share of a sentence's content words one passage must hold to be its source
MIN_WORDS = 2  # sentences with fewer content words ("See below.") are neither cited nor uncited
# a citation marker: "[2]", "[1, 3]" after spaces (not newlines), a sentence end or the start; never
# code's x[1]. Code spans are set aside before markers are looked for (see _protect_code).
_N = r"\[\d+(?:\s*,\s*\d+)*\]"
_MARKER = re.compile(rf"[ \t]+{_N}|(?<=[.!?:;,)]){_N}|^{_N}[ \t]*", re.M)
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.S)  # fenced blocks (closed or not), inline code
_SLOT = "\x00{}\x00"


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def attribute(
    sentence: str, passages: Sequence[tuple[int, str]], min_coverage: float = MIN_COVERAGE
) -> int | None:
    """The number of the passage holding most of ``sentence``'s content words (the first on a tie),
    or None when none holds ``min_coverage`` of them or the sentence has too few to judge."""
    words = set(content_words(strip_markers(sentence)))
    if len(words) < MIN_WORDS:
        return None
    best, best_share = None, 0.0
    for n, text in passages:
        share = len(words & set(content_words(text))) / len(words)
        if share > best_share:
            best, best_share = n, share
    return best if best_share >= min_coverage else None


def cite(text: str, passages: Sequence[tuple[int, str]]) -> str:
    """``text`` with the model's markers replaced by verified ones (see the module's docstring).

    Code (fenced blocks, inline spans) is left exactly as written: ``nums = [1, 2]`` is no citation.
    A marker for a sentence that ends in a fenced block goes on its own line after the fence."""
    codes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        codes.append(m.group(0))
        return _SLOT.format(len(codes) - 1)

    clean = strip_markers(_CODE.sub(keep, text))
    spans = split_sentences(clean, break_lines=False)
    sources = [attribute(s.text, passages) for s in spans]
    out, pos = [], 0
    for i, span in enumerate(spans):
        out.append(clean[pos : span.end])
        pos = span.end
        n = sources[i]
        if n is not None and (i + 1 == len(spans) or sources[i + 1] != n):  # the end of a run from [n]
            out.append(f"\n[{n}]" if span.text.endswith("\x00") else f" [{n}]")
    out.append(clean[pos:])
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], "".join(out))
