"""Chunking is pure: table-driven checks of limits, coverage, overlap, pages and ids."""

from __future__ import annotations

import itertools
import re

import pytest

from indexing.chunking import chunk_pages, split_sentences
from indexing.records import Page


def wordpieces(texts: list[str]) -> list[int]:
    """Stand-in for a WordPiece tokenizer: words and punctuation, long words in 6-char pieces."""
    return [sum(1 + len(w) // 6 for w in re.findall(r"\w+|[^\w\s]", t)) for t in texts]


def chars(texts: list[str]) -> list[int]:
    """A tokenizer whose counts don't add up across spaces (forces the halving path)."""
    return [len(t) // 3 + 1 for t in texts]


SENTENCES = " ".join(f"Sentence {i} says something about topic {i % 7}." for i in range(60))
LONG_SENTENCE = " ".join(f"word{i}" for i in range(700))  # no full stop: cut between words
GIANT_WORD = "x" * 3000  # a word longer than a chunk: cut inside
PARAGRAPHS = "\n\n".join(f"Paragraph {i}. " + "Short line here. " * 9 for i in range(12))

CASES = [
    ("sentences", [SENTENCES], 64, 16, wordpieces),
    ("multi-page", [SENTENCES, "Page two starts. " * 30, "Tiny.", SENTENCES], 50, 8, wordpieces),
    ("long sentence", [LONG_SENTENCE], 40, 8, wordpieces),
    ("giant word", ["before " + GIANT_WORD + " after"], 32, 4, wordpieces),
    ("paragraphs", [PARAGRAPHS], 60, 10, wordpieces),
    ("no overlap", [SENTENCES], 30, 0, wordpieces),
    ("short page", ["Just one sentence."], 200, 32, wordpieces),
    ("non-additive tokenizer", [SENTENCES, LONG_SENTENCE], 40, 8, chars),
    ("real defaults", [SENTENCES * 3, PARAGRAPHS], 200, 32, wordpieces),
]


def _pages(texts: list[str]) -> list[Page]:
    return [Page("book.pdf", i, t) for i, t in enumerate(texts, 1)]


def _covers(text: str, chunks) -> None:
    """Every character of the pages, in order, is in some chunk, and each chunk continues
    where the previous one ended (possibly repeating an overlap): no text lost or reordered.
    Whitespace is ignored, since a word longer than a chunk is cut inside."""
    full = "".join(text.split())
    end = 0
    for c in chunks:
        piece = "".join(c.text.split())
        starts = [s for s in range(max(0, end - len(piece)), end + 1) if full.startswith(piece, s)]
        assert starts, f"chunk not found where the previous one ended: {c.text[:80]!r}"
        end = max(end, starts[-1] + len(piece))
    assert end == len(full)


@pytest.mark.parametrize(("name", "texts", "limit", "overlap", "count"), CASES, ids=[c[0] for c in CASES])
def test_chunks_fit_and_lose_nothing(name, texts, limit, overlap, count) -> None:
    pages = _pages(texts)
    chunks = chunk_pages(pages, count, limit, overlap)
    assert chunks
    for c in chunks:
        assert c.n_tokens == count([c.text])[0] <= limit
        assert 1 <= c.page_start <= c.page_end <= len(texts)
        assert c.file == "book.pdf"
    _covers(" ".join(p.text for p in pages), chunks)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    chunks = chunk_pages(_pages([SENTENCES]), wordpieces, 64, 16)
    for a, b in itertools.pairwise(chunks):
        last_sentence = split_sentences(a.text)[-1]
        assert b.text.startswith(last_sentence)
        assert wordpieces([last_sentence])[0] <= 16


def test_pages_of_chunks() -> None:
    pages = _pages(["Alpha page one. " * 5, "Beta page two. " * 5, "Gamma page three. " * 5])
    chunks = chunk_pages(pages, wordpieces, 200, 0)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 3)]
    chunks = chunk_pages(pages, wordpieces, 20, 0)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        # a heading set off as its own paragraph by the cleaner: line breaks either side of it
        (
            ["Intro ends here.\n\n8.3 on.exit\n\nA function can call it."],
            "Intro ends here.\n8.3 on.exit\nA function can call it.",
        ),
        # a page break is not a paragraph break: the sentence runs on over it
        (
            ["A sentence that runs", "over the page. Next one."],
            "A sentence that runs over the page. Next one.",
        ),
        # a heading at the top of a page: the break after it only
        (["Last words.", "8 Exceptions\n\nStop halts it."], "Last words. 8 Exceptions\nStop halts it."),
    ],
)
def test_paragraph_breaks_inside_a_page_stay_line_breaks(texts: list[str], expected: str) -> None:
    """Answering splits sentences at them: a heading must not read as its section's first words."""
    chunks = chunk_pages(_pages(texts), wordpieces, 200, 0)
    assert [c.text for c in chunks] == [expected]


def test_ids_are_stable_and_depend_on_text() -> None:
    pages = _pages([SENTENCES])
    a = chunk_pages(pages, wordpieces, 64, 16)
    b = chunk_pages(pages, wordpieces, 64, 16)
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    changed = chunk_pages(_pages([SENTENCES.replace("topic 3", "topic X")]), wordpieces, 64, 16)
    assert [c.chunk_id for c in changed] != [c.chunk_id for c in a]


@pytest.mark.parametrize(
    ("paragraph", "sentences"),
    [
        ("One. Two! Three? four.", ["One.", "Two!", "Three? four."]),
        ("Use 2>&1. Then (a) works.", ["Use 2>&1.", "Then (a) works."]),
        ("no end", ["no end"]),
    ],
)
def test_split_sentences(paragraph: str, sentences: list[str]) -> None:
    assert split_sentences(paragraph) == sentences


@pytest.mark.parametrize(("limit", "overlap"), [(4, 0), (64, 32), (64, -1)])
def test_bad_settings_are_refused(limit: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_pages(_pages(["text"]), wordpieces, limit, overlap)


def test_no_pages_no_chunks() -> None:
    assert chunk_pages([], wordpieces, 64, 8) == []


def test_each_chunk_knows_the_section_it_starts_in() -> None:
    """A chunk's section is the numbered heading in force where it starts: the heading of the
    page before when a section runs over a page break, none before the first, none on a
    contents page (whose numbered lines are entries, not headings)."""
    filler = " ".join(f"Fact {i} about it." for i in range(12))
    pages = [
        Page("b.pdf", 1, "Preface text comes first. " + filler, "body"),
        Page("b.pdf", 2, "1 Introduction 4\n\n1.1 Scope 5", "contents"),
        Page("b.pdf", 3, f"1 Introduction\n\n{filler}\n\n1.1 Scope\n\n{filler}", "body"),
        Page("b.pdf", 4, f"{filler}", "body"),
    ]
    chunks = chunk_pages(pages, wordpieces, 40, 0)
    got = [(c.page_start, c.kind, c.text[:16], c.section) for c in chunks]
    assert got == [
        (1, "body", "Preface text com", ""),
        (1, "body", "Fact 6 about it.", ""),
        (2, "contents", "1 Introduction 4", ""),
        (3, "body", "1 Introduction\nF", "1 Introduction"),
        (3, "body", "Fact 7 about it.", "1 Introduction"),  # "1.1 Scope" starts inside it
        (3, "body", "Fact 2 about it.", "1.1 Scope"),
        (3, "body", "Fact 10 about it", "1.1 Scope"),
        (4, "body", "Fact 6 about it.", "1.1 Scope"),  # over the page break
    ]
