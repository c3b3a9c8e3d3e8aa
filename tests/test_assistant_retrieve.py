"""Retrieval: RRF fusion, neighbour merging, BM25, a planted passage found first."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.retrieve import (
    Retriever,
    bm25_tokens,
    demote_listings,
    merge_chunks,
    merge_neighbours,
    reciprocal_rank_fusion,
)
from core.errors import StoreError
from indexing.records import Chunk
from tests.assistant_support import FakeEmbedder, book_chunks, write_tiny_index


def test_rrf_fusion() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    ids = [i for i, _ in fused]
    assert ids[0] == 1  # ranks 1 and 2 beat ranks 3 and 1
    assert ids[1] == 3
    assert set(ids) == {1, 2, 3, 4}
    score = dict(fused)
    assert score[1] == pytest.approx(1 / 61 + 1 / 62)
    assert score[4] == pytest.approx(1 / 63)
    # an item only one list found still ranks by its position there
    assert reciprocal_rank_fusion([[5], []]) == [(5, pytest.approx(1 / 61))]


def _chunk(i: int, file: str, page: int, text: str) -> Chunk:
    return Chunk(f"c{i}", file, page, page, text, len(text.split()))


def test_merge_removes_overlap_and_unions_pages() -> None:
    chunks = [
        _chunk(0, "a.pdf", 3, "one two three four five"),
        Chunk("c1", "a.pdf", 3, 4, "four five six seven", 4),
    ]
    merged = merge_chunks(chunks, [1, 0])
    assert merged.text == "one two three four five six seven"
    assert merged.pages == [3, 4] and merged.chunk_id == "c0+c1"


@pytest.mark.parametrize(
    ("first", "second", "merged"),
    [
        ("one two three", "two three\n4.1 Heading\nfive", "one two three\n4.1 Heading\nfive"),
        ("one two heading", "heading\nfive six", "one two heading\nfive six"),  # the break after the overlap
        ("one two", "one two", "one two"),  # all overlap
        ("one two", "three\nfour", "one two three\nfour"),  # no overlap
    ],
)
def test_merge_keeps_line_breaks(first: str, second: str, merged: str) -> None:
    """A chunk's line breaks end its headings and paragraphs; sentence splitting reads them."""
    chunks = [_chunk(0, "a.pdf", 3, first), _chunk(1, "a.pdf", 4, second)]
    assert merge_chunks(chunks, [0, 1]).text == merged


def test_merge_neighbours() -> None:
    chunks = [
        _chunk(0, "a.pdf", 1, "alpha beta"),
        _chunk(1, "a.pdf", 2, "gamma delta"),
        _chunk(2, "b.pdf", 2, "other book"),
        _chunk(3, "a.pdf", 9, "far away"),
    ]
    hits = merge_neighbours([(1, 0.9), (2, 0.8), (0, 0.7), (3, 0.6)], chunks, k=3)
    assert [h.chunk.chunk_id for h in hits] == ["c0+c1", "c2", "c3"]
    assert hits[0].chunk.pages == [1, 2] and hits[0].score == 0.9 and hits[0].rank == 1
    assert [h.rank for h in hits] == [1, 2, 3]
    # k caps the passages; another book's page 2 is not a neighbour
    assert len(merge_neighbours([(1, 0.9), (2, 0.8), (3, 0.6)], chunks, k=2)) == 2


DEMOTE_CASES = [
    # (name, kinds of rows 0..n-1, ranked rows, places, rows after demotion)
    ("body only: unchanged", "bbbb", [0, 1, 2, 3], 10, [0, 1, 2, 3]),
    ("contents first drops below the body", "cbbb", [0, 1, 2, 3], 10, [1, 2, 3, 0]),
    ("drops exactly `places` positions", "bbibbb", [2, 0, 1, 3, 4, 5], 2, [0, 1, 2, 3, 4, 5]),
    ("two listings keep their order", "cibb", [0, 1, 2, 3], 2, [2, 0, 3, 1]),
    ("listings alone still come back", "ci", [1, 0], 10, [1, 0]),
    ("places=0 turns it off", "cb", [0, 1], 0, [0, 1]),
]


@pytest.mark.parametrize(
    ("name", "kinds", "ranked", "places", "expected"), DEMOTE_CASES, ids=[c[0] for c in DEMOTE_CASES]
)
def test_demote_listings(name: str, kinds: str, ranked: list[int], places: int, expected: list[int]) -> None:
    full = {"b": "body", "c": "contents", "i": "index"}
    chunks = [Chunk(f"c{i}", "a.pdf", i + 1, i + 1, "t", 1, full[k]) for i, k in enumerate(kinds)]
    scores = {row: 1.0 - row / 10 for row in ranked}
    out = demote_listings([(row, scores[row]) for row in ranked], chunks, places)
    assert [row for row, _ in out] == expected
    assert all(score == scores[row] for row, score in out)  # scores are not rewritten


def test_contents_chunk_ranks_below_the_page_it_points_to() -> None:
    chunks = [
        *book_chunks(),
        Chunk("toc", "bash.pdf", 2, 2, "Redirection standard error to a file . . . 4", 9, "contents"),
    ]
    r = Retriever(chunks, mode="bm25")
    hits = r.search("redirection standard error file", k=3)
    assert hits[0].chunk.kind == "body" and 4 in hits[0].chunk.pages
    assert "toc" in [h.chunk.chunk_id for h in r.search("redirection standard error file", k=len(chunks))]


def test_merge_keeps_kinds_apart() -> None:
    chunks = [
        Chunk("c0", "a.pdf", 1, 1, "Contents intro . . . 2", 4, "contents"),
        Chunk("c1", "a.pdf", 2, 2, "Intro text here.", 3),
        Chunk("c2", "a.pdf", 3, 3, "More intro text.", 3),
    ]
    hits = merge_neighbours([(1, 0.9), (0, 0.8), (2, 0.7)], chunks, k=3)
    assert [(h.chunk.chunk_id, h.chunk.kind) for h in hits] == [("c1+c2", "body"), ("c0", "contents")]


def test_bm25_tokens() -> None:
    assert bm25_tokens("How do I use read.table for Arrays?") == ["read.table", "array"]


def _retriever(mode: str) -> Retriever:
    emb = FakeEmbedder()
    chunks = book_chunks()
    vecs = emb.encode([c.text for c in chunks])

    def dense_search(q: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        scores = vecs @ q[0]
        order = np.argsort(-scores)[:k]
        return [[(int(i), float(scores[i])) for i in order]]

    return Retriever(chunks, encode=emb.encode, dense_search=dense_search, mode=mode)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_planted_passage_first(mode: str) -> None:
    r = _retriever(mode)
    hits = r.search("how to send standard error to a file with redirection", k=3)
    assert hits[0].chunk.file == "bash.pdf" and 4 in hits[0].chunk.pages
    hits = r.search("factors categorical levels", k=2)
    assert hits[0].chunk.file == "r.pdf" and hits[0].chunk.pages == [3]


def test_real_store_round_trip(tmp_path) -> None:
    index = write_tiny_index(tmp_path / "index")
    r = Retriever.load(index, mode="hybrid", encoder=FakeEmbedder())
    hits = r.search("standard error redirection 2>", k=2)
    assert hits[0].chunk.file == "bash.pdf" and 4 in hits[0].chunk.pages
    # the two page-4 chunks (consecutive rows, overlapping text) became one passage
    assert "+" in hits[0].chunk.chunk_id and hits[0].chunk.text.count("to a file.") == 1
    assert r.index_info["chunks"] == len(book_chunks()) and r.load_seconds["bm25"] >= 0


def test_mismatched_embedder_refused(tmp_path) -> None:
    index = write_tiny_index(tmp_path / "index")
    with pytest.raises(StoreError, match="embedder"):
        Retriever.load(index, embedder="all-MiniLM-L6-v2", encoder=FakeEmbedder())
    with pytest.raises(StoreError):
        Retriever.load(tmp_path / "missing", encoder=FakeEmbedder())


def test_bm25_reads_a_chunk_under_its_section() -> None:
    """A builtin's entry never says "builtin"; its section heading does."""
    chunks = [
        Chunk("a", "bash.pdf", 58, 58, "shift [n]\nShift the positional parameters to the left by n.", 12,
              section="4.1 Bourne Shell Builtins"),
        Chunk("b", "bash.pdf", 20, 20, "Positional parameters are assigned from the shell's arguments.", 9),
    ]  # fmt: skip
    hits = Retriever(chunks, mode="bm25").search("shift builtin", k=2)
    assert hits[0].chunk.chunk_id == "a" and hits[0].chunk.section == "4.1 Bourne Shell Builtins"
    assert Retriever(chunks, mode="bm25").search("Bourne builtins", k=1)[0].chunk.chunk_id == "a"
