"""core.layout: the file names of an index folder and a model folder, and their readiness checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.atomic import atomic_dir
from core.errors import StoreError
from core.layout import IndexFiles, ModelFiles, index_ready, model_ready, rebuild_hint, train_hint
from tests.assistant_support import write_tiny_index

# The names on disk: existing index and model folders must keep loading, so these never change.
NAMES = [
    (IndexFiles("data/index").chunks, "data/index/chunks.jsonl"),
    (IndexFiles("data/index").embeddings, "data/index/embeddings.npy"),
    (IndexFiles("data/index").faiss, "data/index/index.faiss"),
    (IndexFiles("data/index").manifest, "data/index/manifest.json"),
    (ModelFiles("models/finetuned").config, "models/finetuned/config.json"),
    (ModelFiles("models/finetuned").manifest, "models/finetuned/training_manifest.json"),
    (ModelFiles("models/finetuned").loss_curve, "models/finetuned/loss_curve.png"),
]


@pytest.mark.parametrize(("path", "expected"), NAMES)
def test_file_names_on_disk(path: Path, expected: str) -> None:
    assert path == Path(expected)


def test_folders_are_values() -> None:
    assert IndexFiles("a/b") == IndexFiles(Path("a/b")) != IndexFiles("a/c")
    assert ModelFiles("m").folder == Path("m")
    with pytest.raises(AttributeError):
        IndexFiles("a").folder = Path("b")  # type: ignore[misc]


def test_store_writes_exactly_the_index_files(tmp_path: Path) -> None:
    from indexing.store import Store

    index = write_tiny_index(tmp_path / "index")
    files = IndexFiles(index)
    assert sorted(p.name for p in index.iterdir()) == sorted(p.name for p in (*files.data(), files.manifest))
    assert index_ready(index) is None
    assert len(Store.load(index)) == sum(1 for line in files.chunks.open() if line.strip())


# (files present in the folder; None = no folder at all) -> what index_ready says
READINESS = [
    (None, "no index at"),
    ([], "an unfinished index (no manifest.json) at"),
    (["chunks.jsonl", "embeddings.npy", "index.faiss"], "an unfinished index (no manifest.json) at"),
    (["manifest.json"], "an incomplete index (no chunks.jsonl, embeddings.npy, index.faiss) at"),
    (["manifest.json", "chunks.jsonl", "embeddings.npy"], "an incomplete index (no index.faiss) at"),
    (["manifest.json", "chunks.jsonl", "embeddings.npy", "index.faiss"], None),
]


@pytest.mark.parametrize(("present", "says"), READINESS)
def test_index_ready(tmp_path: Path, present: list[str] | None, says: str | None) -> None:
    folder = tmp_path / "index"
    if present is not None:
        folder.mkdir()
        for name in present:
            (folder / name).write_text("{}")
    reason = index_ready(folder)
    if says is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(says) and str(folder) in reason
        assert f"--index {folder}" in reason  # names the command that builds this very folder


@pytest.mark.parametrize(
    ("folder", "command"),
    [
        ("data/index", "run `make index`"),
        (Path("data/index"), "run `make index`"),
        (
            "elsewhere",
            "run `python -m indexing build --corpus DIR --index elsewhere` (or `make index INDEX=elsewhere`)",
        ),
    ],
)
def test_rebuild_hint(folder: str | Path, command: str) -> None:
    assert rebuild_hint(folder) == command


def test_store_refuses_what_index_ready_refuses(tmp_path: Path) -> None:
    from indexing.store import read_manifest

    for folder in (tmp_path / "none", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        with pytest.raises(StoreError) as e:
            read_manifest(folder)
        assert str(e.value) == index_ready(folder)


def test_stamp_names_one_build(tmp_path: Path) -> None:
    index = write_tiny_index(tmp_path / "index")
    files = IndexFiles(index)
    first = files.stamp()
    assert first is not None and first == files.stamp()
    with atomic_dir(index) as tmp:  # a new build swapped in: new folder, same manifest bytes
        for path in (*files.data(), files.manifest):
            os.link(path, tmp / path.name)
    assert files.stamp() not in (None, first)
    assert IndexFiles(tmp_path / "none").stamp() is None


@pytest.mark.parametrize(
    ("folder", "command"),
    [
        ("models/finetuned", "run `make train`"),
        (None, "run `make train`"),
        (
            "models/other",
            "run `python -m training --output models/other` (or `make train MODEL=models/other`)",
        ),
    ],
)
def test_train_hint(folder: str | None, command: str) -> None:
    assert train_hint(folder) == command


def test_model_ready_and_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    files = ModelFiles(folder)
    for missing in (None, "", folder):
        reason = model_ready(missing)
        assert reason is not None and reason.endswith(train_hint(missing))
    folder.mkdir()
    assert model_ready(folder) is not None and not files.holds_model()
    files.config.write_text("{}")
    assert model_ready(folder) is None and files.holds_model()
    assert files.read_manifest() is None  # a model not trained by bookworm
    for text in ("{not json", "[1, 2]"):
        files.manifest.write_text(text)
        assert files.read_manifest() is None
    files.manifest.write_text(json.dumps({"format": 2}))
    assert files.read_manifest() == {"format": 2}
