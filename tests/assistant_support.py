"""Helpers for the assistant tests: a fake word-hashing embedder and a tiny index written with it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from indexing.records import Chunk

DIM = 64

BOOK = {  # file -> list of (page, text); one chunk per entry
    "bash.pdf": [
        (1, "The shell reads commands from the terminal and runs them one by one."),
        (2, "Variables hold strings. Arrays hold lists of strings indexed from zero."),
        (3, "Functions group commands under a name and are called like commands."),
        (4, "Redirection opens files for commands. Use 2> to send standard error to a file."),
        (4, "to a file. Use &> to send both standard output and standard error to one file."),
        (5, "A pipeline connects the output of one command to the input of the next."),
    ],
    "r.pdf": [
        (1, "R is a language for statistics. Vectors are the basic data structure."),
        (2, "A data frame is a list of vectors of equal length, read with read.table."),
        (3, "Factors encode categorical data with a fixed set of levels."),
    ],
}


def fake_vector(text: str) -> np.ndarray:
    """Bag of hashed words, normalised: texts sharing words have a high inner product."""
    v = np.zeros(DIM, dtype=np.float32)
    for w in re.findall(r"\w+", text.lower()):
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % DIM] += 1.0
    n = np.linalg.norm(v)
    return v / n if n else v


class FakeEmbedder:
    name = "fake-words"
    dim = DIM
    max_tokens = 256

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.stack([fake_vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def book_chunks(book: dict[str, list[tuple[int, str]]] = BOOK) -> list[Chunk]:
    return [
        Chunk(f"{file}:{i}", file, page, page, text, len(text.split()))
        for file, entries in book.items()
        for i, (page, text) in enumerate(entries)
    ]


def write_tiny_index(index_dir: Path, chunks: list[Chunk] | None = None) -> Path:
    """An index folder (indexing's own writer) embedded with :class:`FakeEmbedder`."""
    from indexing.store import write_store

    chunks = chunks if chunks is not None else book_chunks()
    emb = FakeEmbedder().encode([c.text for c in chunks])
    files = sorted({c.file for c in chunks})
    manifest = {
        "embedder": {"name": FakeEmbedder.name, "dim": DIM, "max_tokens": 256},
        "chunking": {"chunk_tokens": 200, "chunk_overlap": 32},
        "files": {f: {"sha256": "0" * 64, "status": "indexed", "pages": 5, "chunks": 1} for f in files},
        "counts": {"files": len(files), "skipped": 0, "pages": 8, "chunks": len(chunks)},
        "built_at": "2026-01-01T00:00:00",
    }
    write_store(index_dir, chunks, emb, manifest, approx_threshold=10_000)
    return index_dir
