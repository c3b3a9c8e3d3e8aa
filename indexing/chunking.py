"""Pages -> token-aware chunks (pure: the tokenizer comes in as a counting function).

Chunks are packed from sentences (paragraph breaks end a nearly full chunk early), so a
chunk rarely starts mid-sentence; a sentence longer than a whole chunk is cut between
words. Neighbours share up to ``overlap`` tokens so no fact is cut in two. A chunk never
spans pages of different kinds (body, contents, index): each chunk carries one kind. Every chunk is
checked against the limit with the real count of its own text: a chunk is never
truncated silently by the embedder.

A paragraph break inside a page (a heading is a paragraph of its own: ``indexing.clean``) stays
a line break in the chunk's text, where the sentence splitter of answering sees a sentence end;
everything else is joined by spaces. Page breaks are not kept: a sentence runs on over them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence

from indexing.clean import is_heading_paragraph
from indexing.records import Chunk, Page

CountTokens = Callable[[list[str]], list[int]]  # texts -> word-pieces of each (no special tokens)

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[\"'(\[A-Z0-9])")
PARAGRAPH_FILL = 0.75  # a paragraph break ends the chunk once it is this full


@dataclasses.dataclass(frozen=True)
class _Unit:
    text: str
    page: int
    n: int  # tokens
    para_start: bool  # first sentence of a paragraph or page
    kind: str = "body"  # the page's kind (indexing.clean)
    new_line: bool = False  # first sentence of a paragraph that is not the page's first
    section: str = ""  # the numbered heading in force here (the unit itself when it is one)


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s.strip()]


def chunk_id(file: str, ordinal: int, text: str) -> str:
    """Stable: the same file, position and text give the same id on every build."""
    return hashlib.blake2b(f"{file}\0{ordinal}\0{text}".encode(), digest_size=8).hexdigest()


def _split_long(unit: _Unit, count: CountTokens, limit: int) -> list[_Unit]:
    """Cut a sentence over ``limit`` tokens between words (or inside a giant word)."""
    words = unit.text.split()
    counts = count(words)
    pieces: list[_Unit] = []
    cur: list[str] = []
    cur_n = 0
    for word, n in zip(words, counts, strict=True):
        if n > limit:  # a "word" longer than a chunk (a URL, a hex dump): cut by characters
            step = max(1, len(word) * limit // (2 * n))
            for part in (word[i : i + step] for i in range(0, len(word), step)):
                words_n = count([part])[0]
                if cur and cur_n + words_n > limit:
                    pieces.append(_Unit(" ".join(cur), unit.page, cur_n, False))
                    cur, cur_n = [], 0
                cur.append(part)
                cur_n += words_n
            continue
        if cur and cur_n + n > limit:
            pieces.append(_Unit(" ".join(cur), unit.page, cur_n, False))
            cur, cur_n = [], 0
        cur.append(word)
        cur_n += n
    if cur:
        pieces.append(_Unit(" ".join(cur), unit.page, cur_n, False))
    pieces = [dataclasses.replace(p, kind=unit.kind, section=unit.section) for p in pieces]
    if pieces:
        pieces[0] = dataclasses.replace(pieces[0], para_start=unit.para_start, new_line=unit.new_line)
    return pieces


def _units(pages: Sequence[Page], count: CountTokens, limit: int) -> list[_Unit]:
    raw: list[tuple[str, int, bool, str, bool, str]] = []
    section = ""
    for page in pages:
        for p, paragraph in enumerate(page.text.split("\n\n")):
            if page.kind == "body" and is_heading_paragraph(paragraph):
                section = " ".join(paragraph.split())
            for i, sentence in enumerate(split_sentences(paragraph)):
                raw.append((sentence, page.page, i == 0, page.kind, i == 0 and p > 0, section))
    counts = count([r[0] for r in raw]) if raw else []
    units: list[_Unit] = []
    for (text, page, para_start, kind, new_line, section), n in zip(raw, counts, strict=True):
        unit = _Unit(text, page, n, para_start, kind, new_line, section)
        units.extend(_split_long(unit, count, limit) if n > limit else [unit])
    return units


def _tail(units: list[_Unit], budget: int, count: CountTokens) -> list[_Unit]:
    """The last units of a chunk worth at most ``budget`` tokens (words of the last unit if
    even it is too long), repeated at the start of the next chunk."""
    if budget <= 0 or not units:
        return []
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.n > budget:
            break
        tail.insert(0, unit)
        total += unit.n
    if tail:
        return tail
    words = units[-1].text.split()
    counts = count(words)
    keep, total = 0, 0
    for n in reversed(counts):
        if total + n > budget:
            break
        keep, total = keep + 1, total + n
    if keep == 0:
        return []
    last = units[-1]
    return [_Unit(" ".join(words[-keep:]), last.page, total, False, last.kind, section=last.section)]


def chunk_pages(pages: Sequence[Page], count: CountTokens, chunk_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks of one file's pages.

    Args:
        pages: one file's pages, in page order.
        count: word-pieces of each text, without special tokens (the embedder's tokenizer).
        chunk_tokens: most tokens in a chunk; must fit the embedder's limit.
        overlap: most tokens repeated from the end of one chunk at the start of the next.

    Returns:
        Chunks in reading order; each ``n_tokens`` (its own text, counted) <= ``chunk_tokens``.
    """
    if chunk_tokens < 8:
        raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap < chunk_tokens // 2:
        raise ValueError(f"chunk_overlap must be in [0, chunk_tokens/2), got {overlap}")
    if not pages:
        return []
    files = {p.file for p in pages}
    if len(files) != 1:
        raise ValueError(f"chunk_pages takes one file's pages, got {sorted(files)}")

    groups: list[list[_Unit]] = []
    cur: list[_Unit] = []
    cur_n = 0
    fresh = False  # cur holds more than the overlap carried from the previous chunk
    for unit in _units(pages, count, chunk_tokens):
        if cur and unit.kind != cur[-1].kind:  # a new kind of page: new chunk, no overlap carried
            if fresh:
                groups.append(cur)
            cur, cur_n, fresh = [], 0, False
        full = cur_n + unit.n > chunk_tokens
        para_break = unit.para_start and cur_n >= PARAGRAPH_FILL * chunk_tokens
        if fresh and (full or para_break):
            groups.append(cur)
            cur = _tail(cur, min(overlap, chunk_tokens - unit.n), count)
            cur_n = sum(u.n for u in cur)
            fresh = False
        cur.append(unit)
        cur_n += unit.n
        fresh = True
    if fresh:
        groups.append(cur)

    texts = [_join(group) for group in groups]
    chunks: list[Chunk] = []
    file = pages[0].file
    for group, text, n in zip(groups, texts, count(texts), strict=True):
        for piece, piece_n in _fit(text, n, count, chunk_tokens):
            kind = group[-1].kind
            section = group[0].section if kind == "body" else ""
            chunks.append(Chunk("", file, group[0].page, group[-1].page, piece, piece_n, kind, section))
    return [dataclasses.replace(c, chunk_id=chunk_id(file, i, c.text)) for i, c in enumerate(chunks)]


def _join(units: Sequence[_Unit]) -> str:
    """The units' text: a line break before a new paragraph of the same page, else a space."""
    return "".join(("\n" if u.new_line else " ") * (k > 0) + u.text for k, u in enumerate(units))


def _fit(text: str, n: int, count: CountTokens, limit: int) -> list[tuple[str, int]]:
    """Halve a chunk until it fits. Only for tokenizers whose counts don't add up across
    spaces (WordPiece counts do, so all-MiniLM chunks never get here)."""
    if n <= limit:
        return [(text, n)]
    words = text.split()
    if len(words) > 1:
        halves = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
    else:
        halves = [text[: len(text) // 2], text[len(text) // 2 :]]
    return [p for h, hn in zip(halves, count(halves), strict=True) for p in _fit(h, hn, count, limit)]
