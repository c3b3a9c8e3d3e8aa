"""The records that flow out of indexing, and the chunk file that training reads too.

The index folder's chunks file (``core.layout.IndexFiles.chunks``) holds one :class:`Chunk` per
line, in index order (row i of the FAISS index is line i). It is the only text source for
training: no stage reads the PDFs twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

from core.atomic import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Page:
    file: str  # path relative to the corpus folder, e.g. "bash/bashref.pdf"
    page: int  # 1-based physical page number
    text: str  # normalised text (NFKC, hyphenation rejoined, whitespace collapsed), no headers/footers
    kind: str = "body"  # "body", "contents" or "index" (indexing.clean.page_kind)


@dataclasses.dataclass(frozen=True)
class Chunk:
    chunk_id: str  # stable: same file content + settings -> same id
    file: str  # path relative to the corpus folder
    page_start: int  # first page (1-based) the chunk's text comes from
    page_end: int  # last page (inclusive)
    text: str
    n_tokens: int  # embedder word-pieces, always <= the embedder's limit
    # "body", "contents" or "index": contents/index chunks stay searchable but rank lower and are
    # not evidence or training text. Last, with a default, so chunks.jsonl from before still reads.
    kind: str = "body"
    # the numbered section heading in force where the chunk starts ("4.1 Bourne Shell Builtins"),
    # "" before the file's first one: the chunk is embedded under it (indexing.build.embed_body)
    section: str = ""

    @property
    def headed_text(self) -> str:
        """The text under its section heading, as search reads it (indexing.build.embed_texts)."""
        if self.section and not self.text.startswith(self.section):
            return f"{self.section}\n{self.text}"
        return self.text

    @property
    def pages(self) -> list[int]:
        return list(range(self.page_start, self.page_end + 1))


@dataclasses.dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # higher is better (cosine similarity for dense search)
    rank: int  # 1-based

    def as_json(self) -> dict:
        return {
            "file": self.chunk.file,
            "pages": self.chunk.pages,
            "score": round(float(self.score), 6),
            "text": self.chunk.text,
            "chunk_id": self.chunk.chunk_id,
            "section": self.chunk.section,
        }


def write_chunks(path: str | Path, chunks: Iterable[Chunk]) -> None:
    lines = (json.dumps(dataclasses.asdict(c), ensure_ascii=False) for c in chunks)
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_chunks(path: str | Path) -> list[Chunk]:
    with open(path, encoding="utf-8") as f:
        return [Chunk(**json.loads(line)) for line in f if line.strip()]
