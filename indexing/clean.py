"""One file's raw page texts -> page texts without print furniture, and each page's kind (pure).

Running headers, footers and page numbers are found per file from repetition, the way a
reader spots them: the first and last lines of pages are compared with their digits
masked ("Chapter 3: Basic Shell Features 39" -> "Chapter #: Basic Shell Features #").
A line at the top or bottom of a page is furniture when it is

* a bare page number ("39", "xiv");
* repeated (masked) at the same end of >= ``REPEAT_SHARE`` of the pages, and at least
  ``RUN_PAGES`` (a book title);
* repeated (masked) at the same end of >= ``RUN_PAGES`` pages that are at most
  ``RUN_GAP`` pages apart (a chapter's running head, on every page or every other page),
  if it holds a word;
* or it ends with a number that follows the page sequence (page - number is an
  offset shared by >= ``OFFSET_PAGES`` pages: "2.4. Script mode 11" on page 29).

A line with dot leaders is a contents or index entry, never furniture.

Pages are then typed from their lines: ``contents`` (dot leaders, or title-number columns
that start with section numbers) and ``index`` (term, page-list lines, or dot leaders in
the back half of the file). Everything else is ``body``.

On body pages, numbered section headings ("8.3 on.exit", "3.2.3 Saving a Core Image") get a
blank line either side: text extraction collapses line breaks, and without a break the heading
reads as the first words of the section's opening sentence ("8.3 on.exit A function can insert
a call ..."), which is then quoted as the answer's lead. So does a definition list's synopsis
("shift [n]", under which the builtin is described), whose term line above it is dropped.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from core.grounding.sentences import HEADING_WORDS

CLEAN_VERSION = 3  # bump when these rules change: indexes built before are then rebuilt
KINDS = ("body", "contents", "index")

REPEAT_SHARE = 0.3  # masked line at the same end of this share of pages = running title
RUN_PAGES = 3  # ... or on this many pages close together = a chapter's running head
RUN_GAP = 2  # "close together": every page or every other page (odd/even heads)
OFFSET_PAGES = 3  # pages agreeing on page - printed number before a number counts as a folio
MAX_FURNITURE_LINES = 2  # at most this many lines removed from each end of a page
MAX_FURNITURE_CHARS = 100  # a longer line is text, never a header
LISTING_MIN_LINES = 5  # fewer lines than this: too little to call a page contents or index
LISTING_SHARE = 0.5  # share of a page's lines that must be listing entries

_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]{3}")  # a run needs a word: figure labels ("E1", "1.1 1.2") repeat too
_ROMAN = r"[ivxlcdm]{1,7}"
_PAGE_NUMBER = re.compile(rf"^(?:\d{{1,4}}|{_ROMAN}|{_ROMAN.upper()})$")
_TRAILING_NUMBER = re.compile(r"\S\s+(\d{1,4})$")
_PAGES = r"\d{1,4}(?:\s*[-–]\s*\d{1,4})?"  # "12" or "12-15"
_PAGE_LIST = re.compile(rf"[A-Za-z].*?,\s*{_PAGES}(?:\s*,\s*{_PAGES})*$")  # "recursion, 12, 40-42"
# "Redirections . . . . 38", "coercion . . . 3, 4, 17", "assignment . . 5, 11", "Preface . . . ix",
# or a wrapped entry's leaders alone ("atomic . . . . . . .")
_LEADER = re.compile(
    rf"(?:(?:\.\s*){{2,}}\s*(?:{_PAGES}(?:\s*,\s*{_PAGES})*|[ivxlc]{{1,6}})|(?:\.\s*){{3,}})\s*$"
)
_TITLE_NUMBER = re.compile(r".*[A-Za-z].*\s(?:\d{1,4}|[ivxlc]{1,6})$")  # "8 Scapegoat Trees 173"
_SECTION_START = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s|(?:Chapter|Appendix|Part)\b|[A-Z]\.\d)")
# "8.3 on.exit", "C.2 Editing actions", "14.6. Databases", "Appendix B Reading", "1 Introduction": a
# section number (first part <= 2 digits: "2001 was" is a year) then a title that starts with a letter
# or a quote ("0 -c test.c’)" and "3 :foo")" are lines of code)
_HEADING = re.compile(
    r"^(?:\d{1,2}(?:\.\d{1,3})*\.?|[A-Z](?:\.\d{1,3})+\.?|(?:Chapter|Appendix|Part)\s+[\dA-Z]{1,3}[.:]?)"
    r"\s+[A-Za-z‘'\"`]"
)
HEADING_MAX_WORDS_WRAPPED = 6  # ... and at most this many when the next line goes on in lower case
# A manual's definition list (Texinfo's @deffn / @item, as GNU manuals print builtins and commands):
# the term alone on a line, then its synopsis lines, which start with the term, then the description
# ("shift" / "shift [n]" / "Shift the positional parameters ..."). Extraction joins the three into
# "... by . or source. shift shift [n] Shift the positional ...", one sentence with the entry
# before. The term is one word (2+ characters: "h" / "h + 2" is a figure's label); a wrapped
# synopsis goes on with "[" or "-"; the description opens with a capitalised word.
_TERM = re.compile(r"^[A-Za-z_][\w-]{1,39}$")
_SYNOPSIS_GOES_ON = ("[", "-")
_DESCRIPTION = re.compile(r"^(?:A|[A-Z][a-z]+)\b")


@dataclasses.dataclass(frozen=True)
class CleanPage:
    text: str  # the page's raw text without its furniture lines (line breaks kept; headings
    # of body pages set off by blank lines)
    kind: str  # one of KINDS
    removed: tuple[str, ...] = ()  # the furniture lines taken off, top first


def _lines(raw: str) -> list[str]:
    """Lines as extracted (blank ones too: normalisation reads them as paragraph breaks)."""
    return raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _text_lines(lines: Sequence[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def _mask(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.lower().split()))


def _printed_number(line: str) -> int | None:
    """A page number closing a line ("Chapter 3: Basic Shell Features 39"). A leading number is
    not read: "1 Introduction" is a chapter title that happens to sit on page 1 (a running
    head that starts with its page number repeats, and the run rule finds it)."""
    m = _TRAILING_NUMBER.search(line)
    return int(m.group(1)) if m else None


def _in_runs(pages: Sequence[int]) -> set[int]:
    """Pages that belong to a run of >= RUN_PAGES occurrences each <= RUN_GAP pages apart."""
    found: set[int] = set()
    run: list[int] = []
    for page in sorted(pages):
        if run and page - run[-1] > RUN_GAP:
            found.update(run if len(run) >= RUN_PAGES else ())
            run = []
        run.append(page)
    found.update(run if len(run) >= RUN_PAGES else ())
    return found


class _Furniture:
    """What counts as a header or footer line in one file (learned from all its pages)."""

    def __init__(self, pages: Sequence[list[str]]):
        n = len(pages)
        self.repeated: dict[str, set[str]] = {}  # end ("top"/"bottom") -> masked lines
        self.offsets: set[int] = set()
        offsets: Counter[int] = Counter()
        for end in ("top", "bottom"):
            where: dict[str, list[int]] = defaultdict(list)
            for i, page in enumerate(pages):
                lines = _text_lines(page)
                edge = lines[:MAX_FURNITURE_LINES] if end == "top" else lines[-MAX_FURNITURE_LINES:]
                for line in dict.fromkeys(edge):
                    if len(line) <= MAX_FURNITURE_CHARS:
                        where[_mask(line)].append(i)
                        number = _printed_number(line)
                        if number is not None:
                            offsets[i - number] += 1
            self.repeated[end] = {
                masked
                for masked, found in where.items()
                if len(found) >= max(RUN_PAGES, REPEAT_SHARE * n)
                or (_WORD.search(masked) and _in_runs(found))
            }
        self.offsets = {offset for offset, count in offsets.items() if count >= OFFSET_PAGES}

    def is_furniture(self, line: str, index: int, end: str) -> bool:
        if len(line) > MAX_FURNITURE_CHARS or _LEADER.search(line):  # a contents or index entry
            return False
        if _PAGE_NUMBER.match(line):
            return True
        if _mask(line) in self.repeated[end]:
            return True
        number = _printed_number(line)
        return number is not None and index - number in self.offsets


def _strip(lines: list[str], index: int, furniture: _Furniture) -> tuple[list[str], list[str]]:
    """``lines`` without up to MAX_FURNITURE_LINES furniture lines at each end, and those lines."""
    removed: dict[str, list[str]] = {"top": [], "bottom": []}
    for end, at in (("top", 0), ("bottom", -1)):
        while lines and not lines[at].strip():
            lines.pop(at)
        while (
            lines
            and len(removed[end]) < MAX_FURNITURE_LINES
            and furniture.is_furniture(lines[at].strip(), index, end)
        ):
            removed[end].append(lines.pop(at).strip())
            while lines and not lines[at].strip():
                lines.pop(at)
    return lines, removed["top"] + removed["bottom"][::-1]


def page_kind(lines: Sequence[str], position: float, previous: str = "body") -> str:
    """``contents``, ``index`` or ``body`` for one page's lines (furniture already removed).

    Args:
        lines: the page's non-empty lines.
        position: where the page sits in its file, 0.0 (first page) to 1.0 (last page).
        previous: the kind of the page before; a short page of entries continues it (the
            last few lines of an index).
    """
    share = LISTING_SHARE * len(lines)
    leaders = sum(bool(_LEADER.search(line)) for line in lines)
    page_lists = sum(bool(_PAGE_LIST.fullmatch(line)) and not _LEADER.search(line) for line in lines)
    if len(lines) < LISTING_MIN_LINES:
        return previous if lines and leaders + page_lists >= share else "body"
    titled = sum(bool(_TITLE_NUMBER.fullmatch(line)) for line in lines)
    sections = sum(bool(_SECTION_START.match(line)) for line in lines)
    if page_lists >= share:
        return "index"
    if leaders >= share:  # texinfo books use leaders for both; a back-of-book index sits at the end
        return "index" if position > 0.5 and sections < share else "contents"
    if titled >= share and sections >= share and position <= 0.5:
        return "contents"
    return "body"


def is_heading(line: str, previous: str | None, following: str | None) -> bool:
    """Whether ``line`` is a numbered section heading, from the line itself and its neighbours
    (None at the top or bottom of the page).

    A numbered line is also how a wrapped sentence can go on ("... takes\n2 arguments and") and
    how numbered list items start ("1. Design and implement a Treap in which each node\nkeeps
    ..."), so: it holds at most HEADING_WORDS words (longer: a numbered sentence or list item)
    and does not end in , ; : or . ; either
    the line before ended a sentence (or there is none), or the title is capitalised and the next
    line does not go on in lower case; and with a lower-case next line ("10 Start
    Conditions\nflex provides ...") it is short, as titles are and wrapped sentences are not.
    """
    line = line.strip()
    m = _HEADING.match(line)
    if m is None or line[-1] in ".,;:":
        return False
    words = len(line.split())
    wrapped = bool(following) and following.strip()[:1].islower()
    if words > (HEADING_MAX_WORDS_WRAPPED if wrapped else HEADING_WORDS):
        return False
    if previous is None or previous.rstrip()[-1:] in (".", "!", "?", ":"):
        return True
    return not wrapped and line[m.end() - 1].isupper()  # the title's first letter


def definition_entries(lines: Sequence[str]) -> list[tuple[int, int, int]]:
    """(term, first synopsis, end of synopsis) line indices of each definition-list entry in
    ``lines`` (blank lines skipped over): "shift" / "shift [n]" / "Shift the positional ..."."""
    text = [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]
    out = []
    for k, (i, term) in enumerate(text):
        if not _TERM.match(term):
            continue
        j = k + 1
        while j < len(text) and (
            text[j][1].startswith(term + " ") or (j > k + 1 and text[j][1].startswith(_SYNOPSIS_GOES_ON))
        ):
            j += 1
        if j > k + 1 and j < len(text) and _DESCRIPTION.match(text[j][1]):
            out.append((i, text[k + 1][0], text[j - 1][0] + 1))
    return out


def is_heading_paragraph(text: str) -> bool:
    """Whether a paragraph of a cleaned body page is one of the numbered headings that
    :func:`mark_headings` set off (read again where only the paragraphs are left: chunking). A
    paragraph stands alone, as a line at the top of a page does for :func:`is_heading`."""
    return is_heading(" ".join(text.split()), None, None)


def mark_headings(lines: Sequence[str]) -> list[str]:
    """``lines`` with a blank line before and after each heading, and around each definition
    entry's synopsis, whose term line is dropped: the synopsis starts with the term (paragraph
    breaks survive the whitespace collapse of normalisation; the other lines are unchanged)."""
    entries = definition_entries(lines)
    terms = {term for term, _, _ in entries}
    before = {start for _, start, _ in entries}
    after = {end - 1 for _, _, end in entries}
    text = [(i, line) for i, line in enumerate(lines) if line.strip()]
    heads: set[int] = set()
    for k, (i, line) in enumerate(text):
        previous = text[k - 1][1] if k > 0 else None
        following = text[k + 1][1] if k + 1 < len(text) else None
        if k > 0 and text[k - 1][0] in heads:
            previous = None  # a heading right under another ("8 Exceptions" / "8.1 stop") starts afresh
        if is_heading(line, previous, following):
            heads.add(i)
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in terms:
            continue
        out += ["", line, ""] if i in heads else [""] * (i in before) + [line] + [""] * (i in after)
    return out


def clean_pages(raw_pages: Sequence[str]) -> list[CleanPage]:
    """Remove running headers, footers and page numbers from one file's pages, and type each page.

    Args:
        raw_pages: the extractor's text of every physical page of one file, in order (empty
            strings for empty pages keep the numbering, which the page-number rule relies on).

    Returns:
        One :class:`CleanPage` per input page; ``text`` keeps the remaining lines, one per line.
    """
    pages = [_lines(raw) for raw in raw_pages]
    furniture = _Furniture(pages)
    last = max(1, len(pages) - 1)
    out: list[CleanPage] = []
    for i, lines in enumerate(pages):
        kept, removed = _strip(list(lines), i, furniture)
        kind = page_kind(_text_lines(kept), i / last, out[-1].kind if out else "body")
        if kind == "body":
            kept = mark_headings(kept)
        out.append(CleanPage("\n".join(kept), kind, tuple(removed)))
    return out
