"""read_outline: a PDF's bookmarks, flattened in document order; never raises."""

from __future__ import annotations

from pathlib import Path

from indexing.outline import OutlineEntry, read_outline
from tests.conftest import make_pdf


def _with_outline(src: Path, dst: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(src))
    chapter = writer.add_outline_item(title="1  Shell   Functions", page_number=0)
    writer.add_outline_item(title="1.1 Using Pipelines", page_number=1, parent=chapter)
    sub = writer.add_outline_item(title="1.2 Nested", page_number=1, parent=chapter)
    writer.add_outline_item(title="1.2.1 Deepest", page_number=2, parent=sub)
    writer.add_outline_item(title="   ", page_number=2)  # an empty title is skipped
    writer.add_outline_item(title="Index", page_number=2)
    with open(dst, "wb") as f:
        writer.write(f)
    return dst


def test_reads_nested_outline_in_order(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", ["one", "two", "three"])
    entries = read_outline(_with_outline(plain, tmp_path / "outlined.pdf"))
    assert entries == [
        OutlineEntry("1 Shell Functions", 1),
        OutlineEntry("1.1 Using Pipelines", 2),
        OutlineEntry("1.2 Nested", 2),
        OutlineEntry("1.2.1 Deepest", 3),
        OutlineEntry("Index", 3),
    ]


def test_no_outline_or_broken_file_gives_empty(tmp_path: Path) -> None:
    assert read_outline(make_pdf(tmp_path / "plain.pdf", ["only text"])) == []
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4\n\x00\xff not really a pdf")
    assert read_outline(garbage) == []
    assert read_outline(tmp_path / "missing.pdf") == []
