"""assistant.status.check_model on hand-written model folders (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import status


def model_folder(tmp_path: Path, manifest: dict) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "training_manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (1, [("warning", "make train")]),  # packed with <|im_end|>: retrain
        (2, []),  # packed with the document separator
        (3, []),
        (None, []),  # no "format" key: not bookworm's training, nothing to say about packing
        ("1", []),  # not a number: unknown, not a crash
    ],
)
def test_check_model_by_manifest_format(tmp_path: Path, fmt: object, expected: list) -> None:
    manifest = {"data": {"chunks_sha256": "abc"}} | ({} if fmt is None else {"format": fmt})
    problems = status.check_model(model_folder(tmp_path, manifest))
    assert [(p.level, p.make_target) for p in problems] == expected


def test_old_format_message_names_the_cause(tmp_path: Path) -> None:
    (problem,) = status.check_model(model_folder(tmp_path, {"format": 1}))
    assert "end-of-turn" in problem.message


def test_old_format_is_one_problem_even_on_an_older_index(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    (index / "chunks.jsonl").write_text('{"text": "new"}\n')
    model = model_folder(tmp_path, {"format": 1, "data": {"chunks_sha256": "old"}})
    problems = status.check_model(model, index)
    assert [(p.level, p.make_target) for p in problems] == [("warning", "make train")]
    # format 2 on the same older index: the usual info about new books
    (model / "training_manifest.json").write_text(json.dumps({"format": 2, "data": {"chunks_sha256": "old"}}))
    assert [p.level for p in status.check_model(model, index)] == ["info"]
