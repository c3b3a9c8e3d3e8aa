"""Dense search: query text -> the best chunks of a loaded store."""

from __future__ import annotations

from collections.abc import Sequence

from indexing.embed import TextEncoder
from indexing.records import Hit
from indexing.store import Store


def search_many(store: Store, embedder: TextEncoder, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
    """One list of hits per query, best first; queries are encoded in one batch."""
    if not queries:
        return []
    vecs = embedder.encode(list(queries))
    return [
        [Hit(store.chunks[row], score, rank) for rank, (row, score) in enumerate(found, 1)]
        for found in store.search(vecs, k)
    ]


def search(store: Store, embedder: TextEncoder, query: str, k: int = 5) -> list[Hit]:
    return search_many(store, embedder, [query], k)[0]
