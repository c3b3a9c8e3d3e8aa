"""`make eval`'s question reading and report writing (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.dev_set import read_dev_questions
from benchmarks.evaluate import Setup, write_report
from core.errors import ConfigError


def test_questions_ignore_other_fields_and_name_the_bad_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"question": "What is a pipe?", "file": "bash.pdf", "pages": [3], "answer": "a |", "topic": "x"},
        {"question": "No answer given", "file": "r.pdf", "pages": ["7"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    qs = read_dev_questions(path)
    assert [(q.file, q.pages, q.answer) for q in qs] == [("bash.pdf", [3], "a |"), ("r.pdf", [7], "")]
    assert [q.previous for q in qs] == ["", ""]  # only follow-up sets say what was asked before
    path.write_text(json.dumps({"question": "lost", "pages": [1]}) + "\n")
    with pytest.raises(ConfigError, match=r"q\.jsonl:1: .*file"):
        read_dev_questions(path)


def test_report_says_plainly_when_fine_tuning_did_worse(tmp_path: Path):
    retrieval = {
        m: {"hit@1": 0.5, "hit@3": 0.7, "hit@5": 0.9, "mrr@5": 0.6} for m in ("dense", "bm25", "hybrid")
    }
    setups = [
        Setup(
            "landed: passages + technical", "base", True, f1=[0.2, 0.2], ttft_ms=[90, 99], total_ms=[90, 99]
        ),
        Setup("base + RAG (default)", "base", True, f1=[0.4, 0.2], ttft_ms=[10, 20], total_ms=[30, 40]),
        Setup(
            "fine-tuned + RAG (default)",
            "ft",
            True,
            f1=[0.1, 0.1],
            support=[1.0, 0.5],
            unsupported_code=[0, 2],
            citation=[1.0],
            abstained=[False, True],
            ttft_ms=[10, 20],
            total_ms=[30, 40],
        ),
    ]
    abstention = {
        "file": "u.jsonl",
        "answerable": [0.6, 0.7],
        "unanswerable": [0.2, 0.3],
        "best": (0.6, 1.0),
        "threshold": 0.5,
        "refused_answerable": 0,
        "refused_unanswerable": 2,
    }
    info = {
        "index_dir": "idx",
        "index": {"files": 1, "chunks": 2},
        "model_id": "ft",
        "fine_tuned": True,
        "base_model": "base",
        "machine": "test",
    }
    ppl = {"base": 10.0, "fine-tuned": 12.0}
    followups = {
        "file": "f.jsonl",
        "n": 4,
        "detected": 3,
        "searched alone": {"hit@1": 0.25, "hit@3": 0.25, "hit@5": 0.5, "mrr@5": 0.3},
        "with the question before": {"hit@1": 0.75, "hit@3": 1.0, "hit@5": 1.0, "mrr@5": 0.85},
    }
    report = write_report(tmp_path, "q.jsonl", 2, retrieval, ppl, setups, info, abstention, followups)
    text = report.read_text()
    assert "3 of 4 read as follow-ups" in text
    assert "| with the question before | 0.750 | 1.000 | 0.850 |" in text
    assert "fine-tuned model is worse than the base on held-out text" in text
    assert "fine-tuned model answers worse than the base model with retrieval" in text
    assert "| hybrid | 0.500 | 0.700 | 0.900 | 0.600 |" in text
    assert "| 0.750 | 2 in 1 answers | 1.000 (1) | 1/2 |" in text  # support, code, citations, abstained
    assert "base + RAG (default): F1 1.50x the landed baseline, total time p50 0.37x" in text
    assert "Best separating threshold: 0.600 (balanced accuracy 1.000)" in text
    assert "0 of 2 answerable and 2 of 2 unanswerable questions are refused" in text
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".md", ".png", ".png"]


def test_followups_score_only_questions_about_indexed_files(tmp_path: Path):
    from types import SimpleNamespace

    from benchmarks.evaluate import eval_followups

    path = tmp_path / "f.jsonl"
    row = {"previous": "What is a pipe?", "question": "How do I use one?", "file": "bash.pdf", "pages": [3]}
    path.write_text(json.dumps(row) + "\n")
    other_books = SimpleNamespace(chunks=[SimpleNamespace(file="sicp.pdf")])
    assert eval_followups(other_books, str(path)) is None  # a follow-up set about other books: skipped
    searched: list[str] = []
    manuals = SimpleNamespace(
        chunks=[SimpleNamespace(file="bash.pdf")],
        search=lambda query, k, mode=None: searched.append(query) or [],
    )
    result = eval_followups(manuals, str(path))
    assert result is not None and result["n"] == 1 and result["detected"] == 1
    assert searched == ["How do I use one?", "What is a pipe? How do I use one?"]
