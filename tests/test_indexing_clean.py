"""Clean page text: running headers, footers and page numbers removed; contents and index pages typed.

The pure rules are checked table-driven on raw page texts; the whole path (PDF -> pages ->
chunks -> index) on books the tests print themselves, with real headers and footers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from indexing.build import build_index
from indexing.chunking import chunk_pages
from indexing.clean import (
    CLEAN_VERSION,
    clean_pages,
    definition_entries,
    is_heading,
    is_heading_paragraph,
    mark_headings,
    page_kind,
)
from indexing.pdf import extract_file, normalize_text
from indexing.records import Chunk, Page, read_chunks
from tests.test_indexing_build import FakeEmbedder

PROSE = [
    "Redirection sends the output of a command to a file.",
    "The shell expands words before it runs a command.",
    "A pipeline connects the output of one command to the next.",
    "Functions group commands under one name.",
    "Arrays hold lists of strings indexed from zero.",
    "Quoting removes the special meaning of characters.",
]


NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo")


def body(i: int) -> str:
    """Page ``i``'s lines: no two pages share a line, even with digits masked (real pages don't)."""
    return "\n".join(f"{line} See {NAMES[i % len(NAMES)]}." for line in PROSE)


def book(header, footer, n: int = 8) -> list[str]:
    """Raw page texts: ``header(page)`` first and ``footer(page)`` last when not None."""
    pages = []
    for p in range(1, n + 1):
        lines = [header(p)] if header(p) is not None else []
        lines += [body(p)]
        lines += [footer(p)] if footer(p) is not None else []
        pages.append("\n".join(lines))
    return pages


FURNITURE_CASES = [
    # (name, raw pages, lines that must be gone from every page)
    ("bare page numbers at the foot", book(lambda p: None, lambda p: str(p)), r"^\d+$"),
    ("roman numerals at the foot", book(lambda p: None, lambda p: "iv" if p == 4 else str(p)), r"^(\d+|iv)$"),
    (
        "chapter head ending in the page number",  # per chapter: too rare for the 30% rule alone
        book(lambda p: f"Chapter {1 + p // 3}: Topic {p // 3} {p + 4}", lambda p: None, n=9),
        r"^Chapter",
    ),
    ("a book title on every page", book(lambda p: "The Shell Handbook", lambda p: None), r"Handbook"),
    (
        "odd/even section heads without numbers",  # "§2.1 Lists" on every other page
        book(lambda p: f"§{1 + p // 4}.1 Lists" if p % 2 else None, lambda p: f"- {p} -"),
        r"^§|^- \d+ -$",
    ),
]


@pytest.mark.parametrize(("name", "raw", "gone"), FURNITURE_CASES, ids=[c[0] for c in FURNITURE_CASES])
def test_furniture_removed_body_kept(name: str, raw: list[str], gone: str) -> None:
    cleaned = clean_pages(raw)
    assert len(cleaned) == len(raw)
    for i, page in enumerate(cleaned, start=1):
        lines = page.text.split("\n")
        assert not any(re.search(gone, line) for line in lines), (name, i, lines)
        assert lines == body(i).split("\n"), (name, i)  # every body line kept, in order
        assert page.kind == "body"


KEEP_CASES = [
    # (name, raw pages, a line that must survive on page 1 (index 0))
    (
        "a chapter title on page 1 that starts with 1",
        ["1 Introduction\n" + body(1) + "\n1", *book(lambda p: None, lambda p: str(p))[1:]],
        "1 Introduction",
    ),
    (
        "an index entry ending in a page number at the foot",
        [
            body(1) + "\nclear-screen (C-l) . . . . . . . . 1",
            *book(lambda p: f"Shells {p}", lambda p: None)[1:],
        ],
        "clear-screen (C-l) . . . . . . . . 1",
    ),
    ("no furniture at all: nothing removed", book(lambda p: None, lambda p: None), body(1).split("\n")[-1]),
    (
        "a first line repeated on pages far apart is text",
        [f"Examples follow.\n{body(p)}" if p in (1, 5, 9) else body(p) for p in range(1, 13)],
        "Examples follow.",
    ),
]


@pytest.mark.parametrize(("name", "raw", "kept"), KEEP_CASES, ids=[c[0] for c in KEEP_CASES])
def test_text_that_looks_like_furniture_is_kept(name: str, raw: list[str], kept: str) -> None:
    assert kept in clean_pages(raw)[0].text.split("\n")


CONTENTS_LEADERS = """Table of Contents
1 Introduction . . . . . . . . . . . . . 1
1.1 What is Bash? . . . . . . . . . . . . 1
2 Definitions . . . . . . . . . . . . . . 3
3 Basic Shell Features . . . . . . . . . 5
3.1 Shell Syntax . . . . . . . . . . . . . 5
3.2 Shell Commands . . . . . . . . . . . . 8"""
CONTENTS_COLUMNS = """Contents
1 Introduction 1
1.1 The Need for Efficiency 2
1.2 Interfaces 4
2 Array-Based Lists 29
2.1 ArrayStack: Fast Stack Operations 30
3 Linked Lists 63"""
INDEX_COMMAS = """Index
abstraction, 12, 40-42
accumulator, 103
alias, 55, 61
append method, 92, 110-111
argument, 19, 23
arithmetic expansion, 30"""
INDEX_LEADERS = """alias . . . . . . . . . . . . . . 55
bg . . . . . . . . . . . . . . . . 104
bind . . . . . . . . . . . . . . . 56
break . . . . . . . . . . . . . . . 46
builtin . . . . . . . . . . . . . . 57
caller . . . . . . . . . . . . . . 57"""
INDEX_WRAPPED = """Concept Index
A
argument . . . . . . . . . . . . . . . . . . . 4, 25
assignment . . 5, 11, 12, 20, 22
atomic . . . . . . . . . . . . . . . . . . . . . .
. . . . . . 7
attributes . . . . . . . . . . . . . . . . . . 7"""
NUMBERED_CODE = """x <- c(1, 2, 3)
y <- x * 2
z <- sum(y) + 10
print(z) # 22
for (i in 1:3) print(i)
n <- length(x) - 1"""

KIND_CASES = [
    # (name, page text, position in the file, kind)
    ("contents with dot leaders", CONTENTS_LEADERS, 0.02, "contents"),
    ("contents as title-number columns", CONTENTS_COLUMNS, 0.02, "contents"),
    ("index as term, page lists", INDEX_COMMAS, 0.97, "index"),
    ("index with dot leaders at the back", INDEX_LEADERS, 0.97, "index"),
    ("title-number columns at the back are not contents", CONTENTS_COLUMNS, 0.9, "body"),
    ("prose", body(0), 0.5, "body"),
    ("code whose lines end in numbers", NUMBERED_CODE, 0.5, "body"),
    ("index with page lists and wrapped leaders", INDEX_WRAPPED, 0.97, "index"),
    ("too few lines to tell", "Contents\n1 Intro . . . . 1", 0.01, "body"),
]


@pytest.mark.parametrize(("name", "text", "position", "kind"), KIND_CASES, ids=[c[0] for c in KIND_CASES])
def test_page_kind(name: str, text: str, position: float, kind: str) -> None:
    assert page_kind(text.split("\n"), position) == kind


CONTINUE_CASES = [
    # (name, page lines, kind of the page before, kind)
    (
        "the last lines of an index",
        ["cl:vector . . . . . 49", "W", "sb-thread:waitqueue . . . . 104"],
        "index",
        "index",
    ),
    ("a short page after the body", ["cl:vector . . . . . 49", "W"], "body", "body"),
    ("a colophon after the index", ["Colophon", "This manual is maintained in Texinfo."], "index", "body"),
    ("an empty page", [], "index", "body"),
]


@pytest.mark.parametrize(
    ("name", "lines", "previous", "kind"), CONTINUE_CASES, ids=[c[0] for c in CONTINUE_CASES]
)
def test_short_page_continues_a_listing(name: str, lines: list[str], previous: str, kind: str) -> None:
    assert page_kind(lines, 0.99, previous) == kind


# --- the whole path, from printed PDFs -------------------------------------------------------

TITLE = "The Quokka Shell Manual"


def print_book(path: Path) -> Path:
    """A 12-page book: title page, contents, 9 body pages with a running head ("Chapter N: Name
    <page>") and a centred page number at the foot, and an index page."""
    from fpdf import FPDF

    chapters = {3: "Getting Started", 6: "Redirection", 9: "Pipelines"}  # first page -> name

    class Book(FPDF):
        chapter = ""

        def header(self) -> None:
            if 3 <= self.page_no() <= 11:
                self.set_font("Helvetica", size=9)
                self.cell(0, 8, f"{self.chapter} {self.page_no()}", align="R")
                self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, str(self.page_no()), align="C")

    pdf = Book()
    pdf.set_auto_page_break(auto=False)

    def page(text: str) -> None:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 5, text)

    page(f"{TITLE}\n\nA manual for the quokka shell.")
    page(CONTENTS_LEADERS)
    for p in range(3, 12):
        n = max(k for k in chapters if k <= p)
        pdf.chapter = f"Chapter {list(chapters).index(n) + 1}: {chapters[n]}"
        page(f"Page {p} explains quokka features. " + " ".join(PROSE) * 3)
    page(INDEX_COMMAS)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


@pytest.mark.parametrize("extractor", ["pypdf", "pypdfium2"])
def test_printed_book_pages_are_clean_and_typed(tmp_path: Path, extractor: str) -> None:
    ex = extract_file(print_book(tmp_path / "book.pdf"), "book.pdf", extractor)
    assert ex.ok, ex.reason
    kinds = {p.page: p.kind for p in ex.pages}
    assert kinds == {1: "body", 2: "contents", **dict.fromkeys(range(3, 12), "body"), 12: "index"}
    for p in ex.pages[2:11]:
        assert p.text.startswith(f"Page {p.page} explains"), p.text[:60]  # no "Chapter 2: Redirection 7"
        assert "Chapter" not in p.text
        assert not re.search(rf"\b{p.page}$", p.text)  # no page number at the end


def test_chunks_carry_one_kind_each(tmp_path: Path) -> None:
    ex = extract_file(print_book(tmp_path / "book.pdf"), "book.pdf")
    chunks = chunk_pages(ex.pages, FakeEmbedder().count_tokens_many, 60, 8)
    by_kind = {k: [c for c in chunks if c.kind == k] for k in ("body", "contents", "index")}
    assert {(c.page_start, c.page_end) for c in by_kind["contents"]} == {(2, 2)}
    assert {(c.page_start, c.page_end) for c in by_kind["index"]} == {(12, 12)}
    assert all(c.page_end < 2 or c.page_start > 2 for c in by_kind["body"])  # no body chunk spans a kind
    assert all(c.page_end < 12 for c in by_kind["body"])
    assert "Getting Started" not in " ".join(c.text for c in by_kind["body"])


def test_chunk_pages_breaks_at_a_change_of_kind() -> None:
    pages = [
        Page("b.pdf", 1, "One body sentence here. " * 3),
        Page("b.pdf", 2, "Alias, 55. Bind, 56.", "index"),
        Page("b.pdf", 3, "Another body sentence. " * 3),
    ]
    chunks = chunk_pages(pages, FakeEmbedder().count_tokens_many, 200, 20)
    assert [(c.page_start, c.page_end, c.kind) for c in chunks] == [
        (1, 1, "body"),
        (2, 2, "index"),
        (3, 3, "body"),
    ]
    assert chunks[2].text.startswith("Another")  # no overlap carried across a kind change


def test_index_records_kinds_and_the_cleaning_version(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    print_book(corpus / "book.pdf")
    index = tmp_path / "index"
    build_index(corpus, index, embedder=FakeEmbedder(), workers=1, chunk_tokens=60, chunk_overlap=8,
                progress=False, log=lambda m: None)  # fmt: skip
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["chunking"]["clean_version"] == CLEAN_VERSION
    kinds = {c.kind for c in read_chunks(index / "chunks.jsonl")}
    assert kinds == {"body", "contents", "index"}

    # an index made before cleaning (no clean_version) is rebuilt, not reused
    manifest["chunking"].pop("clean_version")
    (index / "manifest.json").write_text(json.dumps(manifest))
    embedder = FakeEmbedder()
    report = build_index(corpus, index, embedder=embedder, workers=1, chunk_tokens=60, chunk_overlap=8,
                         progress=False, log=lambda m: None)  # fmt: skip
    assert report.written and report.reused == 0 and embedder.encoded


def test_chunks_written_before_kinds_still_read(tmp_path: Path) -> None:
    old = {"chunk_id": "a1", "file": "b.pdf", "page_start": 1, "page_end": 1, "text": "t", "n_tokens": 1}
    (tmp_path / "chunks.jsonl").write_text(json.dumps(old) + "\n")
    assert read_chunks(tmp_path / "chunks.jsonl") == [Chunk("a1", "b.pdf", 1, 1, "t", 1, "body")]


# (line, the line before, the line after, is it a heading?); None = the page's top or bottom
HEADING_CASES = [
    ("8.3 on.exit", "control the handling of problems.", "A function can insert a call", True),
    ("3.2.3 Saving a Core Image", None, "SBCL has the ability to save", True),
    ("14.6. Databases", "or end the program gracefully.", "A database is a file", True),
    ("C.2 Editing actions", "this is best avoided.", "The R program keeps a history", True),
    ("Chapter 4 Functions", None, "Functions group commands.", True),
    # after a code line (no sentence end before it): a capitalised title over a capitalised line
    ("6.3.3 Interactive Shell Behavior", "fi", "When the shell is running", True),
    # a short title over a lower-case line ("flex provides ...") still is one
    ("10 Start Conditions", None, "flex provides a mechanism", True),
    # a wrapped sentence that goes on with a number
    ("2 arguments and returns the", "The function takes", "sum of them.", False),
    (
        "4.1.1. For lazy evaluation, however, we call apply with the operand",
        "in Section",
        "expressions",
        False,
    ),
    # numbered list items and exercises that wrap
    ("1. Design and implement a Treap implementation in which each node", "for.", "keeps track of it", False),
    # ends like a sentence or a clause
    ("3. Write a DLList method sort().", "above.", "Then test it.", False),
    ("2.1 The problem is as follows:", "above.", "Assume that", False),
    # code and numbers
    ("0 -c test.c’)", "cc -G", "Once the C code", False),
    ('3 :foo ")', '(input "1 2', "(let", False),
    ("2019 was the year", None, "It rained.", False),
    ("1 2 3 4", "x.", "Y", False),
    ("Redirections", "above.", "Before a command", False),  # no number: left alone
]


@pytest.mark.parametrize(("line", "before", "after", "heading"), HEADING_CASES)
def test_is_heading(line: str, before: str | None, after: str | None, heading: bool) -> None:
    assert is_heading(line, before, after) is heading


def test_mark_headings_sets_them_off_as_paragraphs() -> None:
    lines = [
        "8 Exception handling",
        "8.1 stop",
        "A call to stop halts it.",
        "It returns.",
        "8.2 warning",
        "Warn.",
    ]
    assert mark_headings(lines) == [
        "", "8 Exception handling", "", "", "8.1 stop", "", "A call to stop halts it.", "It returns.",
        "", "8.2 warning", "", "Warn.",
    ]  # fmt: skip


def test_headings_reach_the_chunks_as_line_breaks() -> None:
    """From raw page text to chunk text: the heading is a line of its own."""
    raw = [
        "The handling of problems is described here.\n8.3 on.exit\nA function can insert a call to on.exit.",
    ]
    pages = [Page("b.pdf", 1, normalize_text(c.text), c.kind) for c in clean_pages(raw)]
    chunks = chunk_pages(pages, lambda texts: [len(t.split()) for t in texts], 200, 0)
    assert chunks[0].text == (
        "The handling of problems is described here.\n8.3 on.exit\nA function can insert a call to on.exit."
    )


ENTRY_CASES = [
    # a builtin: term, synopsis, description
    (["source.", "shift", "shift [n]", "Shift the positional parameters."], [(1, 2, 3)]),
    # several synopsis lines, and one wrapped onto the next line
    (["fc", "fc [-e ename] [first]", "fc -s [pat=rep]", "The first form selects."], [(0, 1, 3)]),
    (["read", "read [-ers] [-a aname]", "[-N nchars] [name ...]", "One line is read."], [(0, 1, 3)]),
    (["source", "source filename", "A synonym for ."], [(0, 1, 2)]),
    # blank lines between are skipped over; the indices are the lines'
    (["cd", "", "cd [dir]", "", "Change the directory."], [(0, 2, 3)]),
    # two entries in a row
    (["pwd", "pwd [-LP]", "Print the name.", "exit", "exit [n]", "Exit the shell."], [(0, 1, 2), (3, 4, 5)]),
    # not an entry: a one-letter label over a formula, no synopsis, a description in lower case,
    # a synopsis wrapped into something that is not a description, a term of two words
    (["h", "h + 2", "Figure 9.10: Rebalancing."], []),
    (["shift", "Shift the positional parameters."], []),
    (["right-split", "right-split n", "right-split"], []),
    (["complete", "complete [-abc] [-", "G globpat] [-W wordlist]"], []),
    (["lazy evaluation", "lazy evaluation is", "Delaying it."], []),
    (["shift [n]", "Shift."], []),
]


@pytest.mark.parametrize(("lines", "entries"), ENTRY_CASES)
def test_definition_entries(lines: list[str], entries: list[tuple[int, int, int]]) -> None:
    assert definition_entries(lines) == entries


def test_definition_entry_reaches_the_chunks_as_its_own_paragraph() -> None:
    """The synopsis is a line of its own (evidence reads it as the heading of the description),
    and the term line it repeats is gone: extraction used to glue all three onto the entry before."""
    raw = [
        "The return status is non-zero if return is used outside a function.\nshift\nshift [n]\n"
        "Shift the positional parameters to the left by n. If n is zero, nothing changes.",
    ]
    pages = [Page("b.pdf", 1, normalize_text(c.text), c.kind) for c in clean_pages(raw)]
    chunks = chunk_pages(pages, lambda texts: [len(t.split()) for t in texts], 200, 0)
    assert chunks[0].text == (
        "The return status is non-zero if return is used outside a function.\nshift [n]\n"
        "Shift the positional parameters to the left by n. If n is zero, nothing changes."
    )


@pytest.mark.parametrize(
    ("paragraph", "heading"),
    [
        ("4.1 Bourne Shell Builtins", True),
        ("8.3 on.exit", True),
        ("Chapter 3 Basic Shell Features", True),
        ("A.1 Where to get it", True),
        ("2 arguments are given to it.", False),  # a sentence
        ("3 Shell Syntax:", False),
        ("Redirections", False),  # no number
        ("2019 was the year of the release that brought the new features here", False),
        ("", False),
    ],
)
def test_is_heading_paragraph(paragraph: str, heading: bool) -> None:
    assert is_heading_paragraph(paragraph) is heading
