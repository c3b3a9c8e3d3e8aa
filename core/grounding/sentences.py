"""Sentences and content words of book text and answers (pure: no model).

Evidence selection and the support check both work on sentences; they must cut text the same
way, or an evidence sentence quoted verbatim could fail its own support check.
"""

from __future__ import annotations

import dataclasses
import re

# A sentence ends at . ! ? (closing quotes/brackets may follow) before whitespace and a
# capital, digit, quote, bracket, backtick, $ or - (the start of a new sentence or a command).
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[`$-])")
# ... but not after these (e.g. "i.e. The", "Fig. 3", "Sec. 2"): they end abbreviations, not sentences.
_ABBREV = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|cf|vs|Fig|Figs|Sec|No|Vol|Ch|pp?|resp|approx|al|Mr|Dr|St)\.)$", re.I
)
MAX_WORDS = 60  # longer "sentences" (lists, code, contents runs) are cut at a clause or word boundary
# A heading line holds at most this many words: the cleaner sets such lines off (indexing.clean),
# and evidence tells them from sentences by it (core.grounding.evidence); both must agree.
HEADING_WORDS = 12

_WORD = re.compile(r"[a-z0-9_][a-z0-9_+#.\-]*[a-z0-9_+#]|[a-z0-9_]")
_STOP_TEXT = """a about an and are as at be been but by can could do does did for from had has have how i if
in into is it its me my not of on or s should so such t than that the their them then there these they this
to was we were what when where which who why will with would you your use using used way ways also
may one two more most some any each other only same just like"""
STOPWORDS = frozenset(_STOP_TEXT.split())


@dataclasses.dataclass(frozen=True)
class Span:
    """``text[start:end]`` of the text it was cut from (for highlighting it in place)."""

    start: int
    end: int
    text: str


_ANY_END = re.compile(r"[.!?][\"')\]]*(?=\s)")


def last_sentence_end(text: str) -> int | None:
    """Where the last sentence of ``text`` that is followed by more text ends (after its mark and
    any closing quotes), abbreviations ("e.g.", "Fig.") aside; None when there is none. Looser than
    :func:`split_sentences` about what follows ("• Next item" starts a new one too)."""
    ends = [
        m.end() for m in _ANY_END.finditer(text) if not _ABBREV.search(text[max(0, m.end() - 9) : m.end()])
    ]
    return ends[-1] if ends else None


# " … " marks a gap: retrieval joins two chunks of one page that are not neighbours with it
# (assistant.retrieve.merge_chunks), and excerpts mark left-out sentences with it. The text either
# side is apart, so no sentence runs across it: "we set p[j] = i. … way to think of depth-first-search
# is ..." was quoted as one.
_GAP = re.compile(r"(?:^|\s)…(?:\s+…)*(?:\s|$)", re.M)


def split_sentences(text: str, max_words: int = MAX_WORDS, break_lines: bool = True) -> list[Span]:
    """Sentence spans of ``text``, in order, whitespace trimmed; long runs cut at clauses.

    With ``break_lines`` (book text) a line break always ends a sentence: chunk texts keep one only
    where a paragraph or a heading ends (``indexing.chunking``), and a heading has no full stop to end
    it ("8.3 on.exit\nA function ..."). Answers are cut without it: a model's line breaks set out
    lists and code, whose sentence is the one that introduces them. A gap marker " … " ends a
    sentence in both, and belongs to neither side."""
    spans: list[Span] = []
    for start, stop in _pieces(text, break_lines):
        for m in _END.finditer(text, start, stop):
            if _ABBREV.search(text[max(start, m.start() - 8) : m.start()]):
                continue
            spans.extend(_cut_long(text, start, m.start(), max_words))
            start = m.end()
        spans.extend(_cut_long(text, start, stop, max_words))
    return [s for s in spans if s.text]


def _pieces(text: str, break_lines: bool) -> list[tuple[int, int]]:
    """(start, stop) of the runs of ``text`` that no sentence crosses: lines (``break_lines``),
    then the stretches between gap markers."""
    out = []
    for line in re.finditer(r"[^\n]+" if break_lines else r"(?s).+", text):
        start = line.start()
        for gap in _GAP.finditer(text, line.start(), line.end()):
            out.append((start, gap.start()))
            start = gap.end()
        out.append((start, line.end()))
    return out


def _cut_long(text: str, start: int, end: int, max_words: int) -> list[Span]:
    """The span ``text[start:end]``, trimmed; over ``max_words`` words, cut into runs of at most
    ``max_words`` words, preferring cuts after ; or : (clauses) over cuts between words."""
    words = [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", text[start:end])]
    if not words:
        return []
    out: list[Span] = []
    i = 0
    while i < len(words):
        j = min(i + max_words, len(words))  # words[i:j] is the next run
        if j < len(words):  # cut after the last clause end in the second half of the run, if any
            clause = [k for k in range(i + max_words // 2, j) if text[words[k][1] - 1] in ";:"]
            j = clause[-1] + 1 if clause else j
        a, b = words[i][0], words[j - 1][1]
        out.append(Span(a, b, text[a:b]))
        i = j
    return out


def content_words(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-case words without ``stopwords``, a light plural strip ("arrays" -> "array"), identifiers
    kept whole (``read.table``, ``c++``; ``2>&1`` gives ``2`` and ``1``). BM25 uses it too."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in stopwords:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def term_overlap(query_terms: set[str], text: str) -> float:
    """Share of ``query_terms`` found among ``text``'s content words (0..1; 0 when no terms)."""
    if not query_terms:
        return 0.0
    words = set(content_words(text))
    return len(query_terms & words) / len(query_terms)
