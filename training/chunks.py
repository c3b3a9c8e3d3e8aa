"""The index's chunks as training reads them: parsed with line-numbered errors, body text only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import StoreError
from core.layout import IndexFiles
from indexing.records import Chunk

REBUILD = "rebuild the index with `make index`"


def read_index(index_dir: Path) -> tuple[list[Chunk], str, dict[str, Any]]:
    """(chunks, sha256 of chunks.jsonl, index manifest or {}).

    Raises:
        StoreError: no chunks file, no chunks, or a line or manifest that does not parse
        (a one-line message naming the line and the command that fixes it).
    """
    files = IndexFiles(index_dir)
    path = files.chunks
    if not path.exists():
        raise StoreError(f"no {IndexFiles.CHUNKS} in {index_dir}: run `make index` first")
    data = path.read_bytes()  # parsed and hashed from one read: the hash describes the text trained on
    digest = hashlib.sha256(data).hexdigest()
    chunks = parse_chunks(data, path)
    if not chunks:
        raise StoreError(f"{path} holds no chunks: index some PDFs with `make index`")
    return chunks, digest, _read_manifest(files.manifest)


def parse_chunks(data: bytes, path: Path) -> list[Chunk]:
    """One :class:`Chunk` per non-blank line of ``data`` (the bytes of ``path``)."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise StoreError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): {REBUILD}") from None
    chunks = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError("not a JSON object")
            chunks.append(Chunk(**record))
        except (json.JSONDecodeError, TypeError) as e:
            raise StoreError(f"{path} line {n} is not a chunk ({e}): {REBUILD}") from None
    return chunks


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path} is unreadable ({e}): {REBUILD}") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path} is not a JSON object: {REBUILD}")
    return manifest


def body_chunks(chunks: Sequence[Chunk]) -> list[Chunk]:
    """The chunks of running text: tables of contents and back-of-book index pages are left out.

    Their lines of titles and page numbers would teach the model to write lists of titles, and
    as held-out text they are the most predictable pages of a book (a flattering perplexity).
    Chunks from an index built before chunks had a ``kind`` are body text.
    """
    return [c for c in chunks if getattr(c, "kind", "body") == "body"]
