"""training.chunks: a bad chunks.jsonl is a one-line message; only body chunks are trained on. Fast."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.errors import StoreError
from indexing.records import Chunk, write_chunks
from training.chunks import body_chunks, read_index

GOOD = json.dumps(
    {"chunk_id": "a-0", "file": "a.pdf", "page_start": 1, "page_end": 1, "text": "x", "n_tokens": 1}
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + "\n{half a line", "line 2 is not a chunk"),  # a kill during a write
        (GOOD + "\n[1, 2]\n", "line 2 is not a chunk \\(not a JSON object\\)"),
        ('{"chunk_id": "a-0"}\n', "line 1 is not a chunk"),  # missing fields
        (GOOD[:-1] + ', "colour": "red"}\n', "line 1 is not a chunk .*colour"),  # unknown field
        ("\n\n", "holds no chunks"),
    ],
)
def test_malformed_chunks_are_a_message_naming_make_index(tmp_path, content, message):
    (tmp_path / "chunks.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(StoreError, match=message) as e:
        read_index(tmp_path)
    assert "make index" in str(e.value) and "\n" not in str(e.value)


def test_binary_chunks_file_and_bad_manifest_are_messages(tmp_path):
    (tmp_path / "chunks.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(StoreError, match=r"not UTF-8 text.*make index"):
        read_index(tmp_path)
    (tmp_path / "chunks.jsonl").write_text(GOOD + "\n", encoding="utf-8")
    (tmp_path / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(StoreError, match=r"manifest.json is unreadable.*make index"):
        read_index(tmp_path)


def test_cli_malformed_chunks_is_one_line_not_a_traceback(tmp_path, capsys):
    from training.__main__ import main

    (tmp_path / "chunks.jsonl").write_text(GOOD + "\nnot json\n", encoding="utf-8")
    rc = main(["--index", str(tmp_path), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "line 2" in err and "make index" in err


@dataclasses.dataclass(frozen=True)
class KindChunk(Chunk):
    kind: str = "body"  # as indexing.records.Chunk will have it


def test_body_chunks_leave_out_contents_and_index_pages():
    body = KindChunk("a-1", "a.pdf", 5, 5, "The shell reads commands.", 5)
    toc = KindChunk("a-0", "a.pdf", 1, 1, "1 Intro ..... 3", 5, kind="contents")
    index = KindChunk("a-9", "a.pdf", 99, 99, "redirection, 12, 40", 5, kind="index")
    old = Chunk("b-0", "b.pdf", 1, 1, "An index built before chunks had a kind.", 8)
    assert body_chunks([toc, body, index, old]) == [body, old]


def test_finetune_splits_body_chunks_only(tmp_path, monkeypatch):
    """Held-out and training text both come from body chunks (the split sees no other)."""
    from training import finetune as ft
    from training import prepare

    chunks = [
        KindChunk(f"a-{i}", "a.pdf", i, i, f"text {i}", 2, kind="index" if i < 3 else "body")
        for i in range(8)
    ]
    monkeypatch.setattr(prepare, "read_index", lambda index_dir: (chunks, "sha", {}))
    seen = {}

    def fake_split(cs, fraction):
        seen["ids"] = [c.chunk_id for c in cs]
        raise StoreError("stop here")

    monkeypatch.setattr(prepare, "split_chunks", fake_split)
    with pytest.raises(StoreError, match="stop here"):
        ft.finetune(tmp_path, tmp_path / "out", "gpt2", _hp(), log=lambda *a: None)
    assert seen["ids"] == [f"a-{i}" for i in range(3, 8)]


def _hp():
    from core.config import Settings
    from training.finetune import Hyperparameters

    return Hyperparameters.from_settings(Settings())


def test_write_chunks_roundtrip_reads_back(tmp_path):
    chunks = [Chunk("a-0", "a.pdf", 1, 1, "x", 1)]
    write_chunks(Path(tmp_path) / "chunks.jsonl", chunks)
    assert read_index(Path(tmp_path))[0] == chunks
