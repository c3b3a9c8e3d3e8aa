"""Regression tests for issue 11's defects: damaged logs, folder swaps, locks, config, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

from assistant import monitor


def _answer_line(answer_id: str, total_ms: float) -> str:
    return json.dumps({"type": "answer", "answer_id": answer_id, "total_ms": total_ms}) + "\n"


# --- a. a damaged answers log -------------------------------------------------------------


def test_read_log_skips_and_counts_damaged_lines(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_bytes(
        _answer_line("a1", 100).encode()
        + b'{"type": "answer", "answer_id": "a2", "tot\n'  # a kill during an append
        + b"[1, 2]\n"  # JSON, but not a record
        + b'{"type": "feedback", "answer_id": "a1", "rating": "x\xe2\x9c\n'  # cut inside a character
        + _answer_line("a3", 300).encode()
        + b'{"type": "feedback", "answer_id": "a1", "rating": 1}\n'
        + b'{"type": "answer", "answer_id": "a4", "total_'  # partial last line, no newline
    )
    contents = monitor.scan_log(log)
    assert [r["answer_id"] for r in contents.records] == ["a1", "a3", "a1"]
    assert contents.skipped == 4
    assert [r["answer_id"] for r in monitor.read_log(log)] == ["a1", "a3", "a1"]
    s = monitor.summary(log)
    assert (s["answers"], s["rated"], s["median_total_ms"], s["unreadable_lines"]) == (2, 1, 300, 4)


def test_summary_ignores_records_with_wrong_types(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_text(
        _answer_line("a1", 100)
        + json.dumps({"type": "answer", "answer_id": "a2", "total_ms": "slow"})
        + "\n"
        + json.dumps({"type": "feedback", "answer_id": "a1"})  # no rating
        + "\n"
    )
    s = monitor.summary(log)
    assert (s["answers"], s["rated"], s["median_total_ms"]) == (2, 0, 100)


def test_append_after_a_partial_line_starts_a_new_line(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_text('{"type": "answer", "answer_id": "cut')
    monitor.log_feedback(log, "a1", "up")
    contents = monitor.scan_log(log)
    assert [r["rating"] for r in contents.records] == [1]
    assert contents.skipped == 1
