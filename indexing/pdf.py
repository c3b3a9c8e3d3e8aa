"""PDF files -> pages of normalised text, or a one-line reason why a file was skipped.

Print furniture (running headers, footers, page numbers) is removed and each page typed
(body, contents, index) by :mod:`indexing.clean` before normalisation, which joins lines.

Every file ends as an :class:`Extraction`: ``reason is None`` means indexed. Nothing here
raises for a bad file, so one broken PDF never stops the others. Files can be extracted
in parallel worker processes (:func:`extract_files`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

from core.errors import ConfigError
from indexing.clean import clean_pages
from indexing.records import Page

EXTRACTORS = ("pypdf", "pypdfium2")
# the default everywhere in indexing; core.config's `extractor` says why pypdfium2
DEFAULT_EXTRACTOR = "pypdfium2"
NORMALIZE_VERSION = 2  # bump when normalize_text changes: old chunks are then re-extracted
MIN_TEXT_CHARS = 20  # fewer letters/digits than this in a whole file = no text layer


@dataclasses.dataclass(frozen=True)
class Extraction:
    file: str  # path relative to the corpus folder
    pages: list[Page]  # pages with text (empty pages are left out)
    n_pages: int  # physical pages in the file (0 when it could not be opened)
    reason: str | None = None  # why the file was skipped; None = indexed
    warning: str | None = None  # indexed, but something was lost (e.g. unreadable pages)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None


# --- normalisation (pure) ----------------------------------------------------------

_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])[-\u00ad\u2010]\s*\n\s*(?=[a-z])")  # "no-\ntation" -> "notation"
# A soft hyphen is never printed text, and pdfium marks each hyphen it found at a line's end with \x02
# or \ufffe, the line break itself often already removed ("ab\ufffestraction" in SICP). Turning them
# into spaces split a word in two on every hyphenated line, which cost dense retrieval over pdfium's text
_SOFT_BREAK = re.compile(r"[\u00ad\x02\ufffe]\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")


def normalize_text(raw: str) -> str:
    """NFKC (ligatures -> letters), words hyphenated across line breaks rejoined,
    whitespace collapsed to single spaces; blank lines kept as paragraph breaks ("\\n\\n")."""
    text = unicodedata.normalize("NFKC", raw).replace("\r\n", "\n").replace("\r", "\n")
    text = _SOFT_BREAK.sub("", text)
    text = _HYPHEN_BREAK.sub("", text)
    text = _CONTROL.sub(" ", text)
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH.split(text))
    return "\n\n".join(p for p in paragraphs if p)


# --- files ---------------------------------------------------------------------------


def find_pdfs(corpus_dir: str | Path) -> list[Path]:
    """PDFs under ``corpus_dir`` (recursive, sorted, hidden folders skipped)."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise ConfigError(
            f"corpus folder not found: {root}. Put your PDFs there, or run `make sample-corpus`."
        )
    found = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() == ".pdf"
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def precheck(path: Path) -> str | None:
    """Reasons that need no PDF parser: empty file, not a PDF at all."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(1024)
    if head.startswith(b"version https://git-lfs"):
        return "not a PDF: a Git LFS pointer file (run `git lfs pull` to fetch the real file)"
    if b"%PDF-" not in head:
        return "not a PDF (no %PDF- header)"
    return None


def has_eof_marker(path: Path) -> bool:
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 4096))
        return b"%%EOF" in f.read()


def _one_line(e: BaseException, limit: int = 100) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    msg = msg if len(msg) <= limit else msg[: limit - 3] + "..."
    return f"{type(e).__name__}: {msg}"


_ENDED = ("ended unexpectedly", "unexpected end", "eof marker not found", "truncat")


def _open_failure(path: Path, e: BaseException) -> str:
    """Truncated or malformed? pypdf names the difference; pdfium says "Data format error"
    for both, so its failures are diagnosed again with pypdf."""
    if type(e).__module__.startswith("pypdfium2"):
        try:
            _pages_pypdf(path)
        except Exception as diagnosis:
            e = diagnosis
    if any(s in str(e).lower() for s in _ENDED) and not has_eof_marker(path):
        return f"truncated: the file ends before its %%EOF marker ({_one_line(e, 60)})"
    return f"malformed PDF ({_one_line(e)})"


_PASSWORD = "encrypted with a password (not supported: save an unencrypted copy)"


def _pages_pypdf(path: Path) -> tuple[int, Callable[[int], str]]:
    import pypdf
    from pypdf.errors import DependencyError

    reader = pypdf.PdfReader(path)
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):  # an empty user password opens normally
                raise _Skip(_PASSWORD)
        except DependencyError as e:
            raise _Skip("encrypted with AES: reading it needs `pip install cryptography`") from e
    return len(reader.pages), lambda i: reader.pages[i].extract_text() or ""


# pdfium replaces a hyphen and the line break after it with one marker, so a page's last line ran
# into its footer ("no\ufffe113") where the cleaner looks for page numbers on lines of their own
_PDFIUM_HYPHEN = re.compile(r"[\x02\ufffe]\r?\n?")


def _pages_pypdfium2(path: Path) -> tuple[int, Callable[[int], str]]:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise _Skip(_PASSWORD) from e
        raise

    def text(i: int) -> str:
        page = doc[i]
        textpage = page.get_textpage()
        try:
            return _PDFIUM_HYPHEN.sub("\u00ad\n", textpage.get_text_range())
        finally:
            textpage.close()
            page.close()

    return len(doc), text


class _Skip(Exception):
    """A file-level reason found while opening it."""


_READERS: dict[str, Callable[[Path], tuple[int, Callable[[int], str]]]] = {
    "pypdf": _pages_pypdf,
    "pypdfium2": _pages_pypdfium2,
}


def extract_file(path: str | Path, relpath: str, extractor: str = DEFAULT_EXTRACTOR) -> Extraction:
    """Pages of one PDF, or the reason it was skipped. Never raises for a bad file."""
    if extractor not in _READERS:
        raise ConfigError(f"unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}")
    t0 = time.perf_counter()
    path = Path(path)

    def done(pages: list[Page], n: int, reason: str | None = None, warning: str | None = None):
        return Extraction(relpath, pages, n, reason, warning, time.perf_counter() - t0)

    reason = precheck(path)
    if reason:
        return done([], 0, reason)
    try:
        n, page_text = _READERS[extractor](path)
    except _Skip as e:
        return done([], 0, str(e))
    except Exception as e:  # any parser failure is this file's problem only
        return done([], 0, _open_failure(path, e))

    raw_pages: list[str] = []
    failed: list[int] = []
    for page_no in range(1, n + 1):
        try:
            raw_pages.append(page_text(page_no - 1))
        except Exception:  # one broken page costs that page only
            failed.append(page_no)
            raw_pages.append("")  # keeps the numbering the page-number rule reads
    pages: list[Page] = []
    for page_no, cleaned in enumerate(clean_pages(raw_pages), start=1):
        text = normalize_text(cleaned.text)
        if text:
            pages.append(Page(relpath, page_no, text, cleaned.kind))
    if n and len(failed) == n:
        return done([], n, _open_failure(path, RuntimeError("no page could be read")))
    letters = sum(ch.isalnum() for p in pages for ch in p.text)
    if letters < MIN_TEXT_CHARS:
        return done([], n, f"no text layer ({n} page(s) of images, scanned?); OCR is not supported")
    warning = None
    if failed:
        warning = f"{len(failed)} of {n} page(s) unreadable: {', '.join(map(str, failed[:10]))}"
    elif not has_eof_marker(path):
        warning = "no %%EOF marker (truncated?); the pages that could be read were indexed"
    return done(pages, n, None, warning)


def _extract_quietly(path: str, relpath: str, extractor: str) -> Extraction:
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # "wrong pointing object" chatter
    return extract_file(path, relpath, extractor)


def extract_files(
    files: Sequence[tuple[Path, str]], extractor: str = DEFAULT_EXTRACTOR, workers: int = 1
) -> Iterator[Extraction]:
    """Extract ``(path, relpath)`` pairs, in ``workers`` processes; yields in completion order."""
    if workers <= 1 or len(files) <= 1:
        for path, rel in files:
            yield _extract_quietly(str(path), rel, extractor)
        return
    # fork where there is one: spawn re-imports the caller's __main__ (scripts without a
    # main guard break). Children only run the PDF parser, never torch's thread pools.
    ctx = get_context("fork" if "fork" in get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(files)), mp_context=ctx) as pool:
        futures = [pool.submit(_extract_quietly, str(p), rel, extractor) for p, rel in files]
        for fut in as_completed(futures):
            yield fut.result()
