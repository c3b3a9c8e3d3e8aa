"""A PDF's outline (bookmarks): section titles and the pages they start on.

Training turns these titles into questions (``training.questions``). The corpus holds real
broken PDFs, so reading an outline never raises: a bad file gives ``[]``, a bad entry is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OutlineEntry:
    title: str  # whitespace-collapsed, stripped
    page: int  # 1-based physical page number (same numbering as indexing.records.Chunk.page_start)


def read_outline(path: str | Path) -> list[OutlineEntry]:
    """The outline's entries in document order (nested levels flattened); [] when there is none."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(path)
        outline = reader.outline
    except Exception as e:  # unreadable, encrypted, truncated: no outline rather than a failed run
        log.debug("no outline for %s: %s", path, e)
        return []
    entries: list[OutlineEntry] = []
    _walk(reader, outline, entries, depth=0)
    return entries


_MAX_DEPTH = 32  # a malformed outline can nest (or loop) without end


def _walk(reader: Any, items: Any, out: list[OutlineEntry], depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    try:
        items = list(items)
    except Exception:
        return
    for item in items:
        if isinstance(item, list):  # pypdf gives an entry's children as a list right after it
            _walk(reader, item, out, depth + 1)
            continue
        try:
            title = " ".join(str(item.title).split())
            page = reader.get_destination_page_number(item)
        except Exception:  # a broken destination or title: skip this entry, keep the rest
            continue
        if title and isinstance(page, int) and page >= 0:
            out.append(OutlineEntry(title, page + 1))
