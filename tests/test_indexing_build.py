"""Build, store and search with a fake embedder (fast); one slow test with the real MiniLM."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.errors import StoreError
from indexing.__main__ import main
from indexing.build import build_index
from indexing.search import search
from indexing.store import Store, chunks_sha256
from tests.conftest import make_pdf


class FakeEmbedder:
    """Bag of hashed words: a query shares words with its passage. Counts encode calls."""

    def __init__(self, name: str = "fake-embedder", dim: int = 256, max_tokens: int = 128):
        self.name, self.dim, self.max_tokens = name, dim, max_tokens
        self.calls: list[list[str]] = []

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def filler(topic: str, n: int = 3) -> list[str]:
    return [f"Chapter about {topic}, page {i}. " + f"The {topic} manual explains {topic} options. " * 12
            for i in range(n)]  # fmt: skip


PLANTED = "The quokka compiler emits zygomorphic bytecode for every lambda."


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    make_pdf(root / "shell.pdf", filler("shell"))
    make_pdf(root / "lisp.pdf", [*filler("lisp", 2), PLANTED + " " + filler("lisp", 1)[0]])
    make_pdf(root / "sub" / "regex.pdf", filler("regex"))
    return root


def build(corpus: Path, index: Path, emb: FakeEmbedder, **kw) -> object:
    kw = {"workers": 1, "chunk_tokens": 60, "chunk_overlap": 8, "progress": False, "log": lambda m: None} | kw
    return build_index(corpus, index, embedder=emb, **kw)


def test_build_load_and_search(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    emb = FakeEmbedder()
    report = build(corpus, index, emb)
    assert report.written and sorted(report.indexed) == ["lisp.pdf", "shell.pdf", "sub/regex.pdf"]
    store = Store.load(index, embedder="fake-embedder")
    assert len(store) == report.chunks == store.manifest["counts"]["chunks"]
    assert store.manifest["counts"] == {"files": 3, "skipped": 0, "pages": 9, "chunks": report.chunks}
    assert all(c.n_tokens <= 60 for c in store.chunks)
    hits = search(store, emb, "zygomorphic bytecode quokka compiler", k=3)
    assert hits[0].chunk.file == "lisp.pdf" and 3 in hits[0].chunk.pages
    assert "quokka" in hits[0].chunk.text
    assert hits[0].as_json().keys() == {"file", "pages", "score", "text", "chunk_id", "section"}
    assert len(chunks_sha256(index)) == 64


def test_bad_files_are_reported_and_good_ones_indexed(corpus: Path, tmp_path: Path) -> None:
    (corpus / "empty.pdf").write_bytes(b"")
    (corpus / "notes.pdf").write_text("not a pdf")
    data = (corpus / "shell.pdf").read_bytes()
    (corpus / "cut.pdf").write_bytes(data[: len(data) // 2])
    report = build(corpus, tmp_path / "index", FakeEmbedder(), workers=2)
    assert set(report.skipped) == {"empty.pdf", "notes.pdf", "cut.pdf"}
    assert "empty" in report.skipped["empty.pdf"] and "truncated" in report.skipped["cut.pdf"]
    assert len(report.indexed) == 3
    summary = report.summary()
    assert "Files skipped: 3" in summary and "cut.pdf: truncated" in summary


def test_unchanged_corpus_encodes_nothing(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    before = (index / "manifest.json").read_text()
    emb = FakeEmbedder()
    report = build(corpus, index, emb)
    assert emb.calls == [] and not report.written and report.embedded == 0
    assert (index / "manifest.json").read_text() == before


def test_one_changed_file_reencodes_only_its_chunks(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    old = {c.chunk_id: c for c in Store.load(index).chunks}

    make_pdf(corpus / "shell.pdf", filler("bourne shell"))  # changed
    make_pdf(corpus / "new.pdf", filler("awk", 1))  # added
    (corpus / "sub" / "regex.pdf").unlink()  # removed
    emb = FakeEmbedder()
    report = build(corpus, index, emb)
    store = Store.load(index)
    by_file = {f: [c for c in store.chunks if c.file == f] for f in ("shell.pdf", "new.pdf", "lisp.pdf")}
    assert len(emb.calls) == 2  # one per extracted file: each is embedded as soon as it is read
    assert sorted(emb.encoded) == sorted(c.text for c in by_file["shell.pdf"] + by_file["new.pdf"])
    assert all(c.chunk_id in old for c in by_file["lisp.pdf"])  # kept as they were
    assert not any(c.file == "sub/regex.pdf" for c in store.chunks)
    assert report.reused == len(by_file["lisp.pdf"])
    # reused vectors still belong to their chunks
    hits = search(store, emb, "zygomorphic bytecode quokka compiler", k=1)
    assert "quokka" in hits[0].chunk.text


def test_renamed_file_reuses_its_vectors(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    (corpus / "lisp.pdf").rename(corpus / "scheme.pdf")
    emb = FakeEmbedder()
    build(corpus, index, emb)
    assert emb.calls == []
    assert {c.file for c in Store.load(index).chunks} == {"scheme.pdf", "shell.pdf", "sub/regex.pdf"}


def test_new_chunk_settings_rebuild_everything(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    first = build(corpus, index, FakeEmbedder())
    emb = FakeEmbedder()
    build(corpus, index, emb, chunk_tokens=40)
    assert len(emb.encoded) > first.chunks


def test_crash_between_writes_keeps_the_previous_index(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import faiss

    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    before = Store.load(index)
    make_pdf(corpus / "shell.pdf", filler("zsh"))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)  # chunks.jsonl and embeddings.npy already written
    with pytest.raises(OSError, match="disk full"):
        build(corpus, index, FakeEmbedder())
    after = Store.load(index)
    assert [c.chunk_id for c in after.chunks] == [c.chunk_id for c in before.chunks]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "index"]  # no temp folder left


def test_crash_between_the_two_renames_is_recovered(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    build(corpus, index, FakeEmbedder())
    n = len(Store.load(index))
    index.rename(tmp_path / ".index.old")  # the moment after the old folder was moved aside
    assert len(Store.load(index)) == n


def test_load_refuses_mismatches(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    with pytest.raises(StoreError, match="python -m indexing build"):
        Store.load(index)
    build(corpus, index, FakeEmbedder())
    with pytest.raises(StoreError, match=r"built with the embedder 'fake-embedder'.*indexing build"):
        Store.load(index, embedder="all-MiniLM-L6-v2")
    lines = (index / "chunks.jsonl").read_text().splitlines(keepends=True)
    (index / "chunks.jsonl").write_text("".join(lines[:-1]))
    with pytest.raises(StoreError, match="disagrees with itself"):
        Store.load(index)


def test_hnsw_above_the_threshold(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    emb = FakeEmbedder()
    report = build(corpus, index, emb, approx_threshold=5)
    store = Store.load(index)
    assert report.index_type == store.manifest["index_type"] == "hnsw"
    assert "quokka" in search(store, emb, "zygomorphic bytecode quokka", k=1)[0].chunk.text


def test_cli_build_search_stats(corpus: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import indexing.embed

    def fake(name: str, batch_size: int = 64) -> FakeEmbedder:
        return FakeEmbedder(name=name)

    monkeypatch.setattr(indexing.embed, "Embedder", fake)  # build and search load through indexing.embed
    index = str(tmp_path / "index")
    (corpus / "empty.pdf").write_bytes(b"")
    args = [
        "--corpus",
        str(corpus),
        "--index",
        index,
        "--embedder",
        "fake",
        "--workers",
        "1",
        "--embed-backend",
        "torch",
    ]
    assert main(["build", *args, "--chunk-tokens", "60", "--chunk-overlap", "8", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Files indexed: 3" in out and "empty.pdf: empty file" in out and "Seconds:" in out

    assert (
        main(["search", "quokka zygomorphic", "-k", "2", "--json", "--index", index, "--embedder", "fake"])
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["file"] == "lisp.pdf" and 3 in hits[0]["pages"]

    queries = tmp_path / "q.txt"
    queries.write_text("quokka compiler\n\nregex manual\n")
    assert main(["search", "--queries", str(queries), "--json", "--index", index, "--embedder", "fake"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and json.loads(lines[1])[0]["file"] == "sub/regex.pdf"

    assert main(["stats", "--index", index]) == 0
    assert "3 indexed, 1 skipped" in capsys.readouterr().out

    assert main(["search", "x", "--index", index]) == 2  # default embedder != fake
    assert "built with the embedder 'fake'" in capsys.readouterr().err


def test_cli_exits_nonzero_when_nothing_is_indexed(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.pdf").write_bytes(b"")
    assert main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--no-progress"]) == 1
    assert "Files indexed: 0" in capsys.readouterr().out
    assert not (tmp_path / "i").exists()
    args = ["--corpus", str(corpus), "--index", str(tmp_path / "i"), "--chunk-tokens", "60"]
    assert main(["build", *args]) == 2
    assert "chunk_overlap" in capsys.readouterr().err
    assert main(["build", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i")]) == 2
    assert "corpus folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_real_minilm_finds_the_planted_passage(corpus: Path, tmp_path: Path) -> None:
    from indexing.embed import Embedder

    emb = Embedder("all-MiniLM-L6-v2")
    assert emb.max_tokens == 254 and emb.dim == 384
    index = tmp_path / "index"
    build_index(corpus, index, embedder=emb, workers=1, progress=False, log=lambda m: None)
    store = Store.load(index, embedder="sentence-transformers/all-MiniLM-L6-v2")
    assert all(c.n_tokens == emb.count_tokens(c.text) <= 200 for c in store.chunks)
    hit = search(store, emb, "Which compiler emits zygomorphic bytecode?", k=1)[0]
    assert hit.chunk.file == "lisp.pdf" and "quokka" in hit.chunk.text
    assert store.manifest["embedder"]["precision"] == emb.precision


@pytest.mark.slow
def test_bf16_embeddings_match_fp32() -> None:
    from indexing.embed import Embedder

    texts = ["Redirect standard error with 2> file.", "A pipeline connects commands.", "lambda calculus"]
    fp32 = Embedder("all-MiniLM-L6-v2", bf16=False).encode(texts)
    bf16 = Embedder("all-MiniLM-L6-v2", bf16=True).encode(texts)
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() > 0.99


def test_skipped_files_are_retried_yet_unchanged_corpus_writes_nothing(corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    (corpus / "notes.pdf").write_text("version https://git-lfs.github.com/spec/v1\n")  # not a PDF
    first = build(corpus, index, FakeEmbedder())
    assert first.written and "notes.pdf" in json.loads((index / "manifest.json").read_text())["files"]
    logged: list[str] = []
    again = build(corpus, index, FakeEmbedder(), log=logged.append)  # the skip is retried, fails the same way
    assert any("Extracting 1 file" in m for m in logged), logged  # retried: its cause may be gone
    assert not again.written and again.embedded == 0
    make_pdf(corpus / "notes.pdf", ["Now a real page about pipelines and redirection."])
    fixed = build(corpus, index, FakeEmbedder())  # same name, now readable: indexed
    manifest = json.loads((index / "manifest.json").read_text())
    assert fixed.written and manifest["files"]["notes.pdf"]["status"] == "indexed"


@pytest.mark.parametrize(
    "kinds",
    [
        ["body", "contents", "body", "index"],
        ["contents", "index"],  # a listings-only file embeds nothing
        ["body"],
        [],
    ],
)
def test_only_body_chunks_are_embedded(kinds: list[str]) -> None:
    """Contents and index chunks get zero rows (dense search ranks them last), aligned with the chunks."""
    from indexing.build import embed_body
    from indexing.records import Chunk

    chunks = [Chunk(f"id{i}", "a.pdf", i + 1, i + 1, f"text {i} {k}", 3, kind=k) for i, k in enumerate(kinds)]
    emb = FakeEmbedder()
    vectors = embed_body(emb, chunks)
    assert vectors.shape == (len(kinds), emb.dim)
    assert emb.encoded == [c.text for c in chunks if c.kind == "body"]
    norms = np.linalg.norm(vectors, axis=1)
    assert [bool(n > 0.99) for n in norms] == [k == "body" for k in kinds]


@pytest.mark.parametrize(
    ("section", "text", "n_tokens", "embedded"),
    [
        ("4.1 Builtins", "shift [n]\nShift them.", 4, "4.1 Builtins\nshift [n]\nShift them."),
        ("", "Before any heading.", 3, "Before any heading."),
        ("4.1 Builtins", "4.1 Builtins\nThe builtins.", 4, "4.1 Builtins\nThe builtins."),  # opens with it
        (
            "4.1 Builtins",
            "Eight words that fill the embedder right up.",
            8,
            "Eight words that fill the embedder right up.",
        ),
        ("4.1 Builtins", "Six words that nearly fill it.", 6, "4.1 Builtins\nSix words that nearly fill it."),
    ],
)
def test_chunks_are_embedded_under_their_section(
    section: str, text: str, n_tokens: int, embedded: str
) -> None:
    """The heading goes before the text unless the text opens with it or the two no longer fit the
    embedder (8 word-pieces here, the heading 2): nothing is ever cut off silently."""
    from indexing.build import embed_texts
    from indexing.records import Chunk

    chunk = Chunk("id", "a.pdf", 1, 1, text, n_tokens, section=section)
    assert embed_texts([chunk], lambda texts: [len(t.split()) for t in texts], max_tokens=8) == [embedded]
