"""Extraction: page numbers, normalisation, and a reason for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.pdf import extract_file, extract_files, find_pdfs, normalize_text
from tests.conftest import make_pdf


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ef\ufb01cient", "efficient"),  # NFKC: ligature fi
        ("no-\ntation is", "notation is"),  # hyphen at a line break rejoined
        ("no-\n  tation", "notation"),
        ("well-known", "well-known"),  # a real hyphen stays
        ("Section 3-\n4", "Section 3-\n4".replace("\n", " ")),  # digits: not a broken word
        ("a  b\t\tc\nd", "a b c d"),  # whitespace collapsed
        ("para one.\n\n\npara two.", "para one.\n\npara two."),  # paragraphs kept
        ("  \n \n ", ""),
        ("co\u00ad\nmmand", "command"),  # soft hyphen at a line break
        ("x\x02\ny", "xy"),  # pdfium's line-end hyphen marker
        ("data ab\ufffestraction enables", "data abstraction enables"),  # pdfium, line break already gone
        ("pro\ufffe gramming", "programming"),
        ("in\u00adformally", "informally"),  # a soft hyphen inside a line is never printed
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_words_hyphenated_at_line_ends_are_whole_and_page_numbers_gone(tmp_path: Path) -> None:
    """pdfium replaces a line-end hyphen and its line break with one marker: the word used to come out
    split ("manipula tions") and the page's last line ran into its footer ("abstrac 1")."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    words = ("one", "two", "three")  # pages that differ: lines repeated on every page are furniture
    for page_no, word in enumerate(words, start=1):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        text = f"Streams ({word}) allow sequence manipula-\ntions without lists. Last line {word} abstrac-"
        pdf.multi_cell(0, 5, text)
        pdf.set_y(-15)
        pdf.cell(0, 8, str(page_no), align="C")
    pdf.output(str(tmp_path / "hy.pdf"))
    for extractor in ("pypdf", "pypdfium2"):
        pages = extract_file(tmp_path / "hy.pdf", "hy.pdf", extractor).pages
        assert len(pages) == 3, extractor
        for page, word in zip(pages, words, strict=True):
            text = page.text.rstrip("-")  # pypdf keeps the hyphen
            whole = f"Streams ({word}) allow sequence manipulations without lists. Last line {word} abstrac"
            assert text == whole, extractor


def test_pages_come_back_with_their_numbers(tmp_path: Path) -> None:
    texts = [f"This is page number {word} of the book." for word in ("one", "two", "three", "four")]
    texts.insert(2, "")  # an empty page keeps the numbering
    pdf = make_pdf(tmp_path / "book.pdf", texts)
    for extractor in ("pypdf", "pypdfium2"):
        ex = extract_file(pdf, "book.pdf", extractor)
        assert ex.ok, ex.reason
        assert ex.n_pages == 5
        assert [(p.page, p.text) for p in ex.pages] == [
            (1, texts[0]),
            (2, texts[1]),
            (4, texts[3]),
            (5, texts[4]),
        ]


def _encrypted(path: Path, user_password: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 5, "Secret text about shells and redirection. " * 5)
    pdf.set_encryption(owner_password="owner", user_password=user_password)
    pdf.output(str(path))
    return path


def _scanned(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 50, style="F")  # drawing only, like a page image: no text layer
    pdf.output(str(path))
    return path


def _bad_files(root: Path) -> dict[str, str]:
    """name -> a word the skip reason must contain."""
    root.mkdir(parents=True, exist_ok=True)
    good = make_pdf(
        root / "good.pdf", ["Good text on the first page. " * 20, "And on the second page. " * 20]
    )
    (root / "empty.pdf").write_bytes(b"")
    (root / "notes.pdf").write_text("just some text, not a PDF at all\n")
    (root / "lfs.pdf").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    data = good.read_bytes()
    (root / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (root / "malformed.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\n"
                                         b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")  # fmt: skip
    _encrypted(root / "locked.pdf", user_password="secret")
    _scanned(root / "scan.pdf")
    return {
        "empty.pdf": "empty",
        "notes.pdf": "not a PDF",
        "lfs.pdf": "LFS",
        "truncated.pdf": "truncated",
        "malformed.pdf": "malformed",
        "locked.pdf": "password",
        "scan.pdf": "no text layer",
    }


@pytest.mark.parametrize("extractor", ["pypdf", "pypdfium2"])
def test_each_bad_file_has_its_reason(tmp_path: Path, extractor: str) -> None:
    expected = _bad_files(tmp_path)
    for name, word in expected.items():
        ex = extract_file(tmp_path / name, name, extractor)
        assert not ex.ok and ex.pages == [], name
        assert word.lower() in ex.reason.lower(), (name, ex.reason)
        assert "\n" not in ex.reason
    assert extract_file(tmp_path / "good.pdf", "good.pdf", extractor).ok


def test_empty_password_opens_normally(tmp_path: Path) -> None:
    pdf = _encrypted(tmp_path / "open.pdf", user_password="")
    ex = extract_file(pdf, "open.pdf")
    assert ex.ok, ex.reason
    assert "Secret text" in ex.pages[0].text


def test_parallel_extraction_matches_serial(tmp_path: Path) -> None:
    _bad_files(tmp_path)
    files = [(p, p.name) for p in find_pdfs(tmp_path)]
    serial = {e.file: (e.reason, e.pages) for e in extract_files(files, workers=1)}
    parallel = {e.file: (e.reason, e.pages) for e in extract_files(files, workers=2)}
    assert serial == parallel
    assert len(serial) == 8


def test_find_pdfs_recurses_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ("a.pdf", "sub/b.PDF", ".hidden/c.pdf", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_pdfs(tmp_path)] == ["a.pdf", "sub/b.PDF"]
