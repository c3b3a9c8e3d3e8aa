"""The support check: is each sentence of an answer backed by the passages it was made from?

Pure apart from ``embed``. An answer sentence is compared with every sentence of the passages:
cosine of the embeddings fused with coverage (the share of the answer sentence's content words
found in that passage sentence and the next one, so a sentence that joins two is still found).
The best match above ``SUPPORTED`` marks it supported, with that passage's number.

Code is checked exactly, since one changed character makes a different command: every code
span of the answer (```fenced```, `inline`, a ``$ command`` line, or a bare shell-like token such
as ``2>&1`` or ``>>`` in the prose) must appear in a passage (compared without whitespace, which
PDF extraction moves around); the rest are flagged, and a sentence holding one is not supported
however close its words are: a quote with ``<`` and ``>`` swapped reads almost the same to an
embedder but is another command.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.grounding.evidence import Embed, SourceText
from core.grounding.sentences import content_words, split_sentences

COVERAGE_WEIGHT = 0.5  # share of the match score from word coverage (the rest: cosine)
SUPPORTED = 0.6  # match score from which a sentence counts as supported
MIN_CHECKED_WORDS = 2  # sentences with fewer content words ("Yes.", "See [2].") are not judged
_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_TRAILING_CITATION = re.compile(r"(?:\s+\[\d+(?:\s*,\s*\d+)*\])+\s*$")
_FENCED = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.S)
_INLINE = re.compile(r"`([^`\n]+)`")
_DOLLAR = re.compile(r"^\s*\$\s+(.+)$", re.M)
_OPERATOR = re.compile(r"[<>|&$=;{}]")  # characters of shell syntax that prose rarely uses
_EDGES = "\"'.,:;!?()[]"  # sentence punctuation around a bare token, not part of it


@dataclasses.dataclass(frozen=True)
class SentenceSupport:
    text: str
    supported: bool
    source: int | None  # the passage [n] it matches best (None when nothing matched at all)
    score: float


@dataclasses.dataclass(frozen=True)
class Support:
    supported_fraction: float  # judged sentences that are supported (1.0 when none was judged)
    sentences: list[SentenceSupport]
    unsupported_code: list[str]  # code spans found in no passage

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def mostly_unsupported(self) -> bool:
        return self.supported_fraction < 0.5


NO_ANSWER = Support(1.0, [], [])


def code_spans(text: str) -> list[str]:
    """Fenced blocks, inline code, ``$ command`` lines, then bare shell-like tokens of the prose."""
    spans = [m.group(1).strip() for m in _FENCED.finditer(text)]
    rest = _FENCED.sub(" ", text)
    spans += [m.group(1).strip() for m in _INLINE.finditer(rest)]
    rest = _INLINE.sub(" ", rest)
    # a quoted command line ends where the answer cites it: "$ echo $var [1]" quotes "echo $var"
    spans += [_TRAILING_CITATION.sub("", m.group(1)).strip() for m in _DOLLAR.finditer(rest)]
    spans += bare_code(_DOLLAR.sub(" ", rest))
    return [s for s in spans if s]


def bare_code(prose: str) -> list[str]:
    """Tokens of at least two characters holding shell syntax (``2>&1``, ``>>``, ``a|b``, ``x=1``)
    written without code marks. A lone ``<`` or ``>`` is left out: it is also prose ("n > 0")."""
    tokens = (t.strip(_EDGES) for t in prose.split())
    return [t for t in tokens if len(t) >= 2 and _OPERATOR.search(t)]


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _not_found(spans: list[str], haystack: list[str]) -> list[str]:
    """The spans that occur in none of the (whitespace-squeezed) source texts."""
    return [c for c in spans if not any(_squeeze(c) in h for h in haystack)]


def check_support(
    answer: str,
    sources: Sequence[SourceText],
    embed: Embed,
    *,
    threshold: float = SUPPORTED,
    coverage_weight: float = COVERAGE_WEIGHT,
) -> Support:
    """Judge each sentence of ``answer`` against the sentences of ``sources``."""
    haystack = [_squeeze(s.text) for s in sources]  # code is looked up verbatim, whitespace aside
    plain = _FENCED.sub(" ", answer)  # code blocks are judged exactly, below, not as prose
    sentences = [s.text for s in split_sentences(plain, break_lines=False)]
    # contents and index pages list titles and page numbers: they back no claim
    units = [(s.n, span.text) for s in sources if s.kind == "body" for span in split_sentences(s.text)]
    windows = [
        f"{text} {units[k + 1][1]}" if k + 1 < len(units) and units[k + 1][0] == n else text
        for k, (n, text) in enumerate(units)
    ]
    judged = [
        (k, s)
        for k, s in enumerate(sentences)
        if len(content_words(_CITATION.sub("", s))) >= MIN_CHECKED_WORDS
    ]
    results: dict[int, SentenceSupport] = {}
    if judged and units:
        vectors = np.asarray(
            embed([_CITATION.sub("", s) for _, s in judged] + [t for _, t in units]), dtype=np.float32
        )
        cosine = vectors[: len(judged)] @ vectors[len(judged) :].T  # (answer sentences, units)
        window_words = [set(content_words(w)) for w in windows]
        for row, (k, s) in enumerate(judged):
            words = set(content_words(_CITATION.sub("", s)))
            coverage = np.array([len(words & w) / len(words) for w in window_words], dtype=np.float32)
            fused = (1 - coverage_weight) * cosine[row] + coverage_weight * coverage
            best = int(np.argmax(fused))
            score = float(fused[best])
            ok = score >= threshold and not _not_found(code_spans(s), haystack)
            results[k] = SentenceSupport(s, ok, units[best][0], score)
    elif judged:  # no passages at all: nothing can support the answer
        results = {k: SentenceSupport(s, False, None, 0.0) for k, s in judged}
    out = [results.get(k, SentenceSupport(s, True, None, 1.0)) for k, s in enumerate(sentences)]
    n_judged = len(results)
    fraction = sum(r.supported for r in results.values()) / n_judged if n_judged else 1.0
    return Support(fraction, out, _not_found(code_spans(answer), haystack))
