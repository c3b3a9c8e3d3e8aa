"""`make eval`'s held-out sections score the training run's own held-out chunks (no models)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.eval_heldout import SplitChanged, held_out_data, held_out_section, unseen_data
from core.errors import BookwormError
from indexing.records import Chunk, write_chunks
from training.chunks import read_index
from training.prepare import read_data


def _index(tmp_path: Path) -> Path:
    # each book opens on contents pages: they are searchable but neither trained on nor held out
    chunks = []
    for book in ("a.pdf", "b.pdf"):
        for i in range(40):
            kind = "contents" if i < 6 else "body"
            text = f"{book} chunk {i} says something about topic {i}."
            chunks.append(Chunk(f"{book}-{i}", book, i + 1, i + 1, text, 10, kind))
    write_chunks(tmp_path / "chunks.jsonl", chunks)
    return tmp_path


def _info(index: Path, eval_fraction: float, sha: str | None = None) -> SimpleNamespace:
    manifest = {
        "hyperparameters": {"eval_fraction": eval_fraction},
        "data": {"chunks_sha256": sha or read_index(index)[1]},
    }
    return SimpleNamespace(manifest=manifest, fine_tuned=True, model_id="models/finetuned")


@pytest.mark.parametrize("eval_fraction", [0.05, 0.1, 0.25])
def test_held_out_chunks_are_the_runs_own_and_never_trained_on(tmp_path: Path, eval_fraction: float):
    index = _index(tmp_path)
    run = read_data(index, eval_fraction)  # what training held out
    held = held_out_data(str(index), _info(index, eval_fraction)).split.eval
    trained = {c.chunk_id for c in run.split.train}
    assert [c.chunk_id for c in held] == [c.chunk_id for c in run.split.eval]
    assert held and not trained & {c.chunk_id for c in held}
    assert all(c.kind == "body" for c in held)


def test_an_index_changed_since_training_is_refused(tmp_path: Path):
    index = _index(tmp_path)
    with pytest.raises(SplitChanged, match="make train"):
        held_out_data(str(index), _info(index, 0.05, sha="0" * 64))


def test_an_unseen_index_holds_out_every_body_chunk(tmp_path: Path):
    """--unseen-index: books the model never trained on (their chunks' hash is not the model's,
    which held_out_data refuses) give all their body chunks to the held-out examples."""
    index = _index(tmp_path)
    data = unseen_data(str(index), _info(index, 0.05, sha="0" * 64))
    assert data.split.train == []
    assert [c.chunk_id for c in data.split.eval] == [c.chunk_id for c in read_data(index, 0.05).body]
    assert len(data.split.eval) == 68 and all(c.kind == "body" for c in data.split.eval)
    with pytest.raises(BookwormError, match="drop --unseen-index"):  # the index it was trained on
        unseen_data(str(index), _info(index, 0.05))


def test_section_compares_each_model_with_the_base():
    scores = {
        "f1": 0.2,
        "citation_accuracy": 0.0,
        "verified_citation_accuracy": 0.2,
        "abstention_accuracy": 0.8,
        "abstained_when_answerable": 0.0,
        "abstained_when_unanswerable": 0.0,
        "median_words": 40.0,
    }
    tuned = {**scores, "f1": 0.5, "citation_accuracy": 0.7, "verified_citation_accuracy": 0.7}
    lines = held_out_section(
        {"examples": 33, "unanswerable": 6, "models": {"base": scores, "fine-tuned": tuned}}
    )
    text = "\n".join(lines)
    assert "33 examples" in text and "6 without their source" in text
    assert "| fine-tuned | 0.500 | 2.50× | 0.70 / 0.70 |" in text
    assert "the training run's held-out chunks" in text
    unseen = "\n".join(
        held_out_section({"examples": 80, "unanswerable": 13, "models": {"base": scores}}, unseen=True)
    )
    assert "80 examples built from every chunk of books the model never trained on" in unseen
    assert "Not measured" in "\n".join(held_out_section(None))
    # another index than the model's (the books with the sample corpus's model): the section says why
    assert "Not measured: data/index-books is not the index" in "\n".join(
        held_out_section(None, "data/index-books is not the index models/finetuned was trained on")
    )
