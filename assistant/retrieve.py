"""Question -> ranked passages: dense (FAISS), BM25 (bm25s), or both fused by reciprocal rank.

Then neighbouring chunks of the same file (consecutive rows, which overlap by construction,
or chunks sharing a page) are merged into one passage, so the model sees one readable
stretch of text instead of two overlapping fragments. Contents and index chunks (``Chunk.kind``)
stay searchable but are moved ``LISTING_DEMOTION`` places down before merging.

The BM25 index is built from ``chunks.jsonl`` at load time (0.3 s for the 3,305 sample chunks,
timed in ``Retriever.load_seconds``); no cache file to go stale.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from core.grounding.sentences import content_words
from indexing.records import Chunk, Hit

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")
RRF_K = 60  # reciprocal-rank constant (Cormack et al. 2009): damps the weight of the very top ranks
CANDIDATES = 30  # hits taken from each retriever before fusion and merging
MAX_MERGE = 3  # chunks at most in one merged passage (keeps one passage from eating the budget)
# places a contents/index chunk drops in the candidate ranking: still found when nothing else
# matches ("which chapter covers X"), but below the pages that explain X
LISTING_DEMOTION = 10

# (query vectors (q, dim)) -> per query [(row, score)], best first (indexing.store.Store.search)
DenseSearch = Callable[[np.ndarray, int], list[list[tuple[int, float]]]]
Encode = Callable[[list[str]], np.ndarray]

# --- BM25 ----------------------------------------------------------------------------

_STOPWORD_TEXT = """a an and are as at be but by can do does for from how i if in into is it its of on or s
so such t that the their then there these they this to use used using was what when where which while who why
will with you your"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def bm25_tokens(text: str) -> list[str]:
    """The words BM25 indexes: :func:`content_words` with a shorter stopword list (words like "file" or
    "only" still separate passages even where they say little about a question)."""
    return content_words(text, _STOPWORDS)


class BM25Index:
    def __init__(self, texts: Sequence[str]):
        import bm25s

        self._bm25 = bm25s.BM25()
        corpus = [bm25_tokens(t) or ["<empty>"] for t in texts]
        self._bm25.index(corpus, show_progress=False)
        self._vocab = set(self._bm25.vocab_dict)
        self.n = len(texts)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        tokens = [t for t in bm25_tokens(query) if t in self._vocab]
        if not tokens or self.n == 0:
            return []
        docs, scores = self._bm25.retrieve([tokens], k=min(k, self.n), show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


# --- fusion and merging --------------------------------------------------------------


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids: score(id) = sum over lists of 1 / (k + rank).

    Best first; ties broken by first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: i for i, item in enumerate(dict.fromkeys(x for r in rankings for x in r))}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def demote_listings(
    ranked: Sequence[tuple[int, float]], chunks: Sequence[Chunk], places: int = LISTING_DEMOTION
) -> list[tuple[int, float]]:
    """Move each non-body chunk (``kind`` contents or index) ``places`` positions down ``ranked``.

    Ranks, not scores, are shifted, so dense cosines, BM25 scores and fused scores are treated
    alike; scores are returned unchanged. Chunks from indexes built before kinds existed are body.
    """

    def key(item: tuple[int, tuple[int, float]]) -> tuple[int, bool, int]:
        position, (row, _) = item
        listing = getattr(chunks[row], "kind", "body") != "body"
        return (position + places * listing, listing, position)  # on a tie the body passage wins

    return [pair for _, pair in sorted(enumerate(ranked), key=key)]


def _overlap_words(a: str, b: str, max_words: int = 120) -> int:
    """Words at the end of ``a`` repeated at the start of ``b`` (neighbouring chunks overlap)."""
    wa, wb = a.split(), b.split()
    for n in range(min(len(wa), len(wb), max_words), 0, -1):
        if wa[-n:] == wb[:n]:
            return n
    return 0


def _rest(text: str, n: int) -> str:
    """``text`` after its first ``n`` words, led by the space or line break before the next word
    (a chunk's line breaks end headings and paragraphs: they must survive the merge)."""
    m = re.match(rf"\s*(?:\S+(\s+)){{{n}}}" if n else r"\s*", text)
    if m is None:  # every word was overlap
        return ""
    gap = m.group(1) if n else ""
    rest = text[m.end() :].rstrip()
    return ("\n" if "\n" in (gap or "") else " ") + rest if rest else ""


def merge_chunks(chunks: Sequence[Chunk], rows: Sequence[int]) -> Chunk:
    """One chunk from rows of the same file, in row order; overlap between neighbours removed."""
    rows = sorted(rows)
    parts = [chunks[rows[0]]]
    text = parts[0].text
    for prev, row in itertools.pairwise(rows):
        c = chunks[row]
        if row == prev + 1:
            text += _rest(c.text, _overlap_words(text, c.text))
        else:
            text = f"{text} … {c.text}"
        parts.append(c)
    return Chunk(
        chunk_id="+".join(p.chunk_id for p in parts),
        file=parts[0].file,
        page_start=min(p.page_start for p in parts),
        page_end=max(p.page_end for p in parts),
        text=text,
        n_tokens=sum(p.n_tokens for p in parts),
        kind=parts[0].kind,  # _near merges only chunks of one kind
        section=parts[0].section,
    )


def _near(a: Chunk, row_a: int, b: Chunk, row_b: int) -> bool:
    if a.file != b.file or a.kind != b.kind:  # a contents page never joins the body after it
        return False
    return abs(row_a - row_b) == 1 or (a.page_start <= b.page_end and b.page_start <= a.page_end)


def merge_neighbours(
    ranked: Sequence[tuple[int, float]], chunks: Sequence[Chunk], k: int, max_merge: int = MAX_MERGE
) -> list[Hit]:
    """Walk ``ranked`` (row, score) best first; a row next to (or on the same page as) a kept
    passage joins it, otherwise it starts a new passage, until ``k`` passages exist."""
    groups: list[tuple[list[int], float]] = []
    for row, score in ranked:
        home = next(
            (
                g
                for g in groups
                if len(g[0]) < max_merge and any(_near(chunks[r], r, chunks[row], row) for r in g[0])
            ),
            None,
        )
        if home is not None:
            home[0].append(row)
        elif len(groups) < k:
            groups.append(([row], score))
        else:
            break
    return [
        Hit(merge_chunks(chunks, rows) if len(rows) > 1 else chunks[rows[0]], score, rank)
        for rank, (rows, score) in enumerate(groups, start=1)
    ]


# --- the retriever -------------------------------------------------------------------


@dataclasses.dataclass
class Retriever:
    """Ranked, merged passages for a question. ``load`` builds one from an index folder;
    tests build one from chunks and fakes."""

    chunks: list[Chunk]
    encode: Encode | None = None  # query -> normalised vectors; None = no dense search
    dense_search: DenseSearch | None = None
    mode: str = "dense"
    manifest: dict = dataclasses.field(default_factory=dict)
    load_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    bm25: BM25Index | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"retrieval must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.bm25 is None:
            t0 = time.perf_counter()
            # under their headings, as the chunks were embedded: BM25 MRR@5 on dev 0.703 -> 0.734,
            # over the books 0.823 -> 0.882
            self.bm25 = BM25Index([c.headed_text for c in self.chunks])
            self.load_seconds["bm25"] = time.perf_counter() - t0

    @classmethod
    def load(
        cls, index_dir: str | Path, embedder: str | None = None, mode: str = "dense", encoder: Any = None
    ) -> Retriever:
        """Load the store (refusing a mismatched embedder) and the embedder it was built with.

        ``encoder``: an already loaded ``indexing.embed.Embedder`` (or a test fake) to reuse.
        """
        from indexing.store import Store

        t0 = time.perf_counter()
        store = Store.load(index_dir, embedder or getattr(encoder, "name", None))
        t1 = time.perf_counter()
        model = encoder
        if model is None:
            from indexing.embed import encoder_for_index

            model = encoder_for_index(store.manifest)
        t2 = time.perf_counter()
        retriever = cls(
            list(store.chunks),
            encode=lambda texts: model.encode(texts),
            dense_search=store.search,
            mode=mode,
            manifest=store.manifest,
        )
        retriever.load_seconds.update(store=t1 - t0, embedder=t2 - t1)
        return retriever

    def dense(self, query: str, n: int = CANDIDATES) -> list[tuple[int, float]]:
        if self.encode is None or self.dense_search is None:
            raise ConfigError("dense retrieval needs an embedder and a vector index")
        vec = np.asarray(self.encode([query]), dtype=np.float32)
        return [(int(r), float(s)) for r, s in self.dense_search(vec, n)[0] if r >= 0]

    def sparse(self, query: str, n: int = CANDIDATES) -> list[tuple[int, float]]:
        assert self.bm25 is not None
        return self.bm25.search(query, n)

    def ranked(self, query: str, mode: str | None = None, n: int = CANDIDATES) -> list[tuple[int, float]]:
        """(row, score) best first, before merging."""
        mode = mode or self.mode
        if mode == "dense":
            return self.dense(query, n)
        if mode == "bm25":
            return self.sparse(query, n)
        if mode == "hybrid":
            lists = [[r for r, _ in self.dense(query, n)], [r for r, _ in self.sparse(query, n)]]
            return reciprocal_rank_fusion(lists)[:n]
        raise ConfigError(f"retrieval must be one of {', '.join(MODES)}, got {mode!r}")

    def search(self, query: str, k: int = 5, mode: str | None = None, merge: bool = True) -> list[Hit]:
        """The top ``k`` passages, neighbours merged (``merge=False``: raw chunks)."""
        if not self.chunks or k <= 0:
            return []
        ranked = demote_listings(self.ranked(query, mode, n=max(CANDIDATES, 3 * k)), self.chunks)
        if not merge:
            return [Hit(self.chunks[r], s, i) for i, (r, s) in enumerate(ranked[:k], start=1)]
        return merge_neighbours(ranked, self.chunks, k)

    @property
    def index_info(self) -> dict:
        counts = self.manifest.get("counts") or {}
        return {
            "files": counts.get("files", len({c.file for c in self.chunks})),
            "pages": counts.get("pages"),
            "chunks": counts.get("chunks", len(self.chunks)),
            "embedder": (self.manifest.get("embedder") or {}).get("name"),
            "built_at": self.manifest.get("built_at"),
            "build_seconds": self.manifest.get("build_seconds"),
        }
