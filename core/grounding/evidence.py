"""Evidence: the few sentences of the retrieved passages that best answer the question.

Pure apart from ``embed`` (texts -> normalised vectors; the index's own embedder at run time, a
fake in tests). Each sentence is scored by its cosine to the question fused with the share of
the question's content words it contains: the embedder finds paraphrases, the word overlap keeps
exact identifiers (``2>&1``, ``read.table``) that a small embedder blurs.

A chosen sentence may pull in a neighbour from its passage when it is incomplete alone: one
that ends in ":" (it introduces what follows) or one that opens with "This", "It", ... (it
refers back to the sentence before).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from core.grounding.answer_form import answer_forms, titled
from core.grounding.sentences import HEADING_WORDS, Span, content_words, split_sentences, term_overlap

Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, dim) unit vectors

OVERLAP_WEIGHT = 0.35  # share of the score from word overlap (the rest: cosine to the question)
MIN_WORDS = 5  # shorter sentences are headings or fragments, never evidence on their own
MAX_UNIT_WORDS = 90  # a sentence with its completing neighbours stays a quote, not a page
# Embedding costs ~5 ms a sentence on 2 cores: past this many candidates, only those sharing the
# most question words (then from the best-ranked passages) are embedded, which bounds the wait
# before the evidence shows whatever the passages' length. 24 would be faster (evidence p50 228 ->
# 151 ms on the 54 dev questions, same F1) but left out the answer to "What is the difference
# between $* and $@ in bash?" (no content words to shortlist by), so the assistant refused it.
MAX_CANDIDATES = 40
# Order of the evidence: each place down the retrieval ranking costs a sentence this much, so of two
# sentences that read alike the one from the better-ranked passage (whose whole text matched the
# question best) leads. The lead quote is the answer, so this is answer quality: on the 54 dev
# questions the lead's F1 went 0.212 -> 0.218 and its share from a gold page 0.63 -> 0.65; on the
# 24 questions over unseen books 0.271 -> 0.280 and 0.79 -> 0.83. It orders only: an item's
# ``score`` (what abstention reads) stays its own, or an answerable question came to be refused.
RANK_PRIOR = 0.02
# Order again: a sentence with the form of an answer to the question's kind (core.grounding.answer_form:
# names what to type for "How do I ...", says what X is for "What is X?") gains this much. On the 54
# dev questions the lead quote's F1 went 0.214 -> 0.242 (10 leads better, 1 worse; from a gold page
# 0.704 both); on the 24 over unseen books 0.295 -> 0.298 (one lead changed, for the better; gold
# 0.792 both). 0.05: dev 0.236; 0.12: 0.244 but fewer leads from a gold page (0.685). Order only, as
# the rank prior: ``score`` stays the sentence's own.
FORM_PRIOR = 0.10
# Order again: for "What is X?", the first sentence under a heading that is X gains this much (see
# core.grounding.answer_form.titled). It must outweigh the next section's opening that repeats the
# question's words: "What is a here document in bash?" led with here strings (0.694 against 0.537
# for "This type of redirection instructs the shell to read input ... until a line containing only
# word", under "3.6.6 Here Documents"); 0.10 left it second. On the 54 dev questions the lead's F1
# went 0.231 -> 0.239 (that lead: 0.128 -> 0.553); no other lead changed, nor any of the 24 over
# unseen books, nor an abstention. Order only, as the other priors.
TITLE_PRIOR = 0.20
# opening words that refer back to the previous sentence
_REFERS_BACK = re.compile(
    r"^(this|these|that|those|it|its|they|such|thus|therefore|hence|however|otherwise|also|"
    r"in this case|in that case|for example|for instance|here|then|so)\b",
    re.I,
)
_FURNITURE = re.compile(r"(\.\s?){4,}|^[\d\s.,ivxlc-]+$", re.I)  # dot leaders, bare numbers
# a sentence that only points elsewhere ("See Chapter 4 [Factors], page 17.", "(See Section 4.2 [Bash
# Builtins], page 55."): a manual's cross-reference answers nothing, yet it names the topic, so it
# scored high enough to be quoted "from your books" for "What does the shift builtin do in bash?"
_CROSS_REFERENCE = re.compile(
    r"^\(?see (?:also )?(?:section|chapter|appendix)\s+[\w.]+\s*\[[^\]]*\],?\s*page\s+\d+\)?[.;]?\)?$", re.I
)


@dataclasses.dataclass(frozen=True)
class SourceText:
    """A retrieved passage as evidence selection sees it; ``n`` is its citation number."""

    n: int
    file: str
    pages: Sequence[int]
    text: str
    kind: str = "body"  # "contents" and "index" pages are never evidence


@dataclasses.dataclass(frozen=True)
class Evidence:
    n: int  # the passage it comes from, cited [n]
    file: str
    pages: list[int]
    text: str  # the sentence(s), verbatim from the passage
    score: float  # fused cosine + word overlap, about 0..1
    start: int  # text == passage text[start:end]
    end: int

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "file": self.file, "pages": self.pages, "text": self.text, "score": self.score}


@dataclasses.dataclass(frozen=True)
class _Candidate:
    source: SourceText
    sentences: list[Span]  # all sentences of the passage
    i: int  # this sentence's index in ``sentences``
    headings: frozenset[int] = frozenset()  # indices of the passage's headings in ``sentences``
    gaps: frozenset[int] = frozenset()  # k: a gap " … " lies between sentences k and k + 1

    @property
    def heading(self) -> str:
        """The heading right above this sentence; "" when another sentence is."""
        return self.sentences[self.i - 1].text if self.i - 1 in self.headings else ""

    def next_to(self, a: int, b: int) -> bool:
        """This sentence is right before or after sentences [a, b), with no gap between."""
        return (self.i == a - 1 and self.i not in self.gaps) or (self.i == b and b - 1 not in self.gaps)

    @property
    def scored(self) -> str:
        """What is scored against the question: the sentence under its heading. The heading names
        the topic ("3.2.3 Saving a Core Image" / "SBCL has the ability to save its state") that the
        sentence goes on to explain without naming it; only the sentence is quoted."""
        text = self.sentences[self.i].text
        return f"{self.heading}\n{text}" if self.heading else text


class MemoEmbed:
    """``embed`` that computes each distinct text once: the support check reuses the evidence's
    sentence vectors, and training embeds all its examples' sentences in one batch first."""

    def __init__(self, embed: Callable[[list[str]], Any]):
        self.embed, self.cache = embed, {}

    def __call__(self, texts: list[str]) -> Any:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, np.asarray(self.embed(todo), dtype=np.float32), strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])

    def prefill(self, texts: list[str]) -> None:
        """Embed ``texts`` now, in one call (batched: faster than many small calls)."""
        self(texts)


def is_heading(text: str, spans: Sequence[Span], i: int) -> bool:
    """Whether sentence ``i`` of ``text`` is a heading: a line of its own (chunk texts keep a line
    break after headings and paragraphs; ``indexing.chunking``) of at most HEADING_WORDS words that
    ends in no sentence mark. Never evidence: "3.2.3 Saving a Core Image" answers nothing."""
    span = spans[i]
    after = text[span.end : spans[i + 1].start] if i + 1 < len(spans) else ""
    return (
        "\n" in after
        and len(span.text.split()) <= HEADING_WORDS
        and not span.text.rstrip().endswith((".", "!", "?", ":", ";"))
    )


def is_evidence_text(sentence: str) -> bool:
    """Whether a body sentence may stand as evidence: long enough, not print furniture, not only a
    cross-reference."""
    text = sentence.strip()
    return len(text.split()) >= MIN_WORDS and not _FURNITURE.search(text) and not _CROSS_REFERENCE.match(text)


def candidates(sources: Sequence[SourceText]) -> list[_Candidate]:
    """Every sentence of the body passages that could stand as evidence, each with the heading
    right above it."""
    out = []
    for src in sources:
        if src.kind != "body":
            continue
        spans = split_sentences(src.text)
        headings = frozenset(k for k in range(len(spans)) if is_heading(src.text, spans, k))
        gaps = gaps_between(src.text, spans)
        for i, span in enumerate(spans):
            if i in headings:
                continue
            if is_evidence_text(span.text):
                out.append(_Candidate(src, spans, i, headings, gaps))
    return out


def shortlist(question: str, cands: list[_Candidate], limit: int = MAX_CANDIDATES) -> list[_Candidate]:
    """At most ``limit`` candidates: by question-word overlap, then passage rank; order kept."""
    if len(cands) <= limit:
        return cands
    terms = set(content_words(question))
    order = sorted(
        range(len(cands)),
        key=lambda j: (-term_overlap(terms, cands[j].scored), cands[j].source.n),
    )
    keep = set(order[:limit])
    return [c for j, c in enumerate(cands) if j in keep]


def score_candidates(
    question: str, cands: Sequence[_Candidate], embed: Embed, overlap_weight: float = OVERLAP_WEIGHT
) -> np.ndarray:
    """(len(cands),) fused scores: (1 - w) * cosine(question, sentence) + w * question-word overlap."""
    if not cands:
        return np.zeros(0, dtype=np.float32)
    vectors = np.asarray(embed([question, *(c.scored for c in cands)]), dtype=np.float32)
    cosine = vectors[1:] @ vectors[0]
    terms = set(content_words(question))
    overlap = np.array([term_overlap(terms, c.scored) for c in cands], dtype=np.float32)
    return (1 - overlap_weight) * cosine + overlap_weight * overlap


def gaps_between(text: str, spans: Sequence[Span]) -> frozenset[int]:
    """k where a gap marker " … " lies between sentences k and k + 1 of ``text``: retrieval joins two
    chunks of a page that are not neighbours with one, and the text either side is apart."""
    return frozenset(k for k in range(len(spans) - 1) if "…" in text[spans[k].end : spans[k + 1].start])


def complete(
    sentences: Sequence[Span], i: int, headings: Collection[int] = (), gaps: Collection[int] = ()
) -> tuple[int, int]:
    """Indices [a, b) of sentence ``i`` plus the neighbours it needs to be read alone; never a
    section heading (index in ``headings``): "It" under "3.2.3 Saving a Core Image" refers to its
    topic, and quoting the heading would glue it back onto the answer. A definition's synopsis
    above it ("pwd [-LP]" over "Print the absolute pathname of the current working directory.") is
    quoted with it: it names what to type, which the description never does. Section headings start
    with their number (indexing.clean), a synopsis with the command's name in lower case."""
    a, b = i, i + 1
    if a > 0 and a - 1 in headings and sentences[a - 1].text[:1].islower():
        return a - 1, b

    def words(lo: int, hi: int) -> int:
        return sum(len(s.text.split()) for s in sentences[lo:hi])

    back = a > 0 and a - 1 not in headings and a - 1 not in gaps and _REFERS_BACK.match(sentences[a].text)
    if back and words(a - 1, b) <= MAX_UNIT_WORDS:
        a -= 1
    while (
        b < len(sentences)
        and b not in headings
        and b - 1 not in gaps
        and sentences[b - 1].text.rstrip().endswith(":")
    ):
        if words(a, b + 1) > MAX_UNIT_WORDS:
            break
        b += 1
    return a, b


def select_evidence(
    question: str,
    sources: Sequence[SourceText],
    embed: Embed,
    *,
    max_items: int = 3,
    min_items: int = 2,
    keep_ratio: float = 0.8,
    overlap_weight: float = OVERLAP_WEIGHT,
    rank_prior: float = RANK_PRIOR,
    form_prior: float = FORM_PRIOR,
    title_prior: float = TITLE_PRIOR,
) -> list[Evidence]:
    """The best sentences for ``question``, best first (by score, less ``rank_prior`` per place
    the passage stands down the retrieval ranking, plus ``form_prior`` where a sentence has the
    form of an answer to the question's kind and ``title_prior`` where it opens the section that
    a "What is X?" question names).

    Up to ``max_items``; after the first, a sentence must score ``keep_ratio`` of the first's to
    join, except that ``min_items`` are always kept when there are that many. Sentences that
    repeat a chosen one (neighbouring chunks overlap) or fall inside a chosen unit are skipped.
    """
    cands = shortlist(question, candidates(sources))
    scores = score_candidates(question, cands, embed, overlap_weight)
    ranks = np.array([c.source.n for c in cands], dtype=np.float32)  # 1 = the best-ranked passage
    form = np.array(answer_forms(question, [c.sentences[c.i].text for c in cands]), dtype=np.float32)
    title = np.array(titled(question, [c.heading for c in cands]), dtype=np.float32)
    prior = -rank_prior * (ranks - 1) + form_prior * form + title_prior * title
    order = np.argsort(-(scores + prior), kind="stable")
    chosen: list[Evidence] = []
    units: list[tuple[int, int, int]] = []  # chosen[k] quotes sentences [a, b) of passage n: (n, a, b)
    for j in order:
        if len(chosen) >= max_items:
            break
        c, score = cands[j], float(scores[j])
        if len(chosen) >= min_items and score < keep_ratio * chosen[0].score:
            break
        mine = [k for k, (n, _, _) in enumerate(units) if n == c.source.n]
        if any(units[k][1] <= c.i < units[k][2] for k in mine):
            continue
        beside = next((k for k in mine if c.next_to(units[k][1], units[k][2])), None)
        if beside is not None:  # right next to a chosen quote: it continues that quote
            a, b = min(units[beside][1], c.i), max(units[beside][2], c.i + 1)
            if sum(len(s.text.split()) for s in c.sentences[a:b]) <= MAX_UNIT_WORDS:
                chosen[beside], units[beside] = _quote(c, a, b, chosen[beside].score), (c.source.n, a, b)
            continue
        words = set(content_words(c.sentences[c.i].text))
        if any(len(words & set(content_words(e.text))) >= 0.7 * max(1, len(words)) for e in chosen):
            continue  # said already by a chosen quote (overlapping chunks repeat sentences)
        a, b = complete(c.sentences, c.i, c.headings, c.gaps)
        chosen.append(_quote(c, a, b, score, bullet_item(c.sentences[c.i], question)))
        units.append((c.source.n, a, b))
    return chosen


# A bullet that follows a sentence end: extracted lists run on as one "sentence" ("... fails. • Bash
# has the time reserved word ..."). The splitter does not break there: doing so changed which
# sentences scored, and the dev lead F1 went 0.242 -> 0.237 ("What does set -e do?" 0.33 -> 0.04).
_BULLET = re.compile(r"(?<=[.!?;])[\"')\]]*\s+•\s*")


def bullet_item(sentence: Span, question: str) -> Span:
    """The list item of ``sentence`` that holds the most question words; the whole sentence when it
    has no bullet after a sentence end or no item holds one. Cuts only the quote: the sentence was
    scored and chosen whole. An item of fewer than MIN_WORDS words is a fragment, never the quote:
    a passage that starts mid-sentence opens with the tail of one ("[Bash Builtins], page 55). •
    The Bash exec builtin ...")."""
    text, marks = sentence.text, list(_BULLET.finditer(sentence.text))
    if not marks:
        return sentence
    starts, stops = [0, *(m.end() for m in marks)], [*(m.start() for m in marks), len(text)]
    at = sentence.start
    items = [Span(at + a, at + b, text[a:b]) for a, b in zip(starts, stops, strict=True)]
    terms = set(content_words(question))
    overlap = [term_overlap(terms, it.text) if len(it.text.split()) >= MIN_WORDS else 0.0 for it in items]
    best = max(range(len(items)), key=lambda k: (overlap[k], -k))
    return items[best] if overlap[best] > 0 else sentence


def best_score(evidence: Sequence[Evidence]) -> float:
    """The highest score among ``evidence`` (0 without any): how well the passages answer at all."""
    return max((e.score for e in evidence), default=0.0)


def _quote(c: _Candidate, a: int, b: int, score: float, item: Span | None = None) -> Evidence:
    """Sentences [a, b) of ``c``'s passage, verbatim, as one evidence item; where the chosen
    sentence opens or closes the unit, only its list ``item`` of it (:func:`bullet_item`)."""
    start, end = c.sentences[a].start, c.sentences[b - 1].end
    if item is not None:
        start = item.start if a == c.i else start
        end = item.end if b - 1 == c.i else end
    src = c.source
    return Evidence(src.n, src.file, list(src.pages), src.text[start:end], score, start, end)


def excerpts(sources: Sequence[SourceText], evidence: Sequence[Evidence], context: int = 1) -> dict[int, str]:
    """Per passage n with evidence: its evidence sentences with ``context`` sentences either side,
    in the passage's order, gaps marked "…" (what the model reads instead of whole passages)."""
    by_n = {s.n: s for s in sources}
    out: dict[int, str] = {}
    for n in sorted({e.n for e in evidence}):
        src = by_n[n]
        spans = split_sentences(src.text)
        gaps = gaps_between(src.text, spans)
        keep: set[int] = set()
        for e in evidence:
            if e.n != n:
                continue
            inside = [k for k, s in enumerate(spans) if s.start < e.end and s.end > e.start]
            if inside:
                lo, hi = max(0, inside[0] - context), min(len(spans), inside[-1] + 1 + context)
                keep.update(range(lo, hi))
        parts, prev = [], None
        for k in sorted(keep):
            if prev is not None and (k != prev + 1 or prev in gaps):  # left out here, or apart in the book
                parts.append("…")
            parts.append(spans[k].text)
            prev = k
        if parts and min(keep) > 0:
            parts.insert(0, "…")
        if parts and max(keep) < len(spans) - 1:
            parts.append("…")
        out[n] = " ".join(parts)
    return out
