"""Monitoring log: one JSON line per answer, and one per 👍/👎, so how relevant answers are (👍 share,
share found in the books) and how long they take can be followed over time (the UI's Model tab).

Lines are appended with a single ``write`` on a file opened with O_APPEND, so concurrent
UI sessions never interleave half lines (POSIX appends of one small write are atomic).
A process killed mid-append can still leave a partial last line: readers skip and count
such lines instead of failing, and the next append starts on a fresh line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import ConfigError

_LOCK = threading.Lock()  # one process, many Streamlit sessions


def _append(path: str | Path, record: dict[str, Any]) -> None:
    if not str(path):  # log_file = "" turns monitoring off
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _LOCK, open(path, "ab+") as f:
        # after a kill mid-append the file ends in a partial line; gluing onto it would lose this record too
        if f.seek(0, os.SEEK_END):
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)


def log_answer(path: str | Path, answer: Any) -> None:
    """Append an :class:`assistant.pipeline.Answer` (time, question, source ids, preset, latencies, model)."""
    t, support = answer.timings, answer.support
    _append(
        path,
        {
            "type": "answer",
            "time": answer.created_at,
            "answer_id": answer.answer_id,
            "question": answer.question,
            "query": answer.query or answer.question,  # a follow-up's joined search
            "sources": [s.chunk_id for s in answer.sources],
            "source_pages": [s.label for s in answer.sources],
            "preset": answer.preset,
            "params": answer.params,
            "model": answer.model_id,
            "fine_tuned": answer.fine_tuned,
            "retrieval_ms": round(t.retrieval_ms, 1),
            "ttft_ms": round(t.ttft_ms, 1),
            "first_token_ms": round(t.first_token_ms, 1),  # the model's; ttft_ms counts an opening quote
            "lead": bool(answer.lead),
            "total_ms": round(t.total_ms, 1),
            "tokens_per_s": round(t.tokens_per_s, 2),
            "prompt_tokens": t.prompt_tokens,
            "new_tokens": t.new_tokens,
            "evidence_ms": round(t.evidence_ms, 1),
            "context": answer.context,
            "prefill": answer.prefill,  # a TTFT change after switching precision shows up here
            "evidence": [{"n": e.n, "pages": e.pages, "score": round(e.score, 4)} for e in answer.evidence],
            "abstained": answer.abstained,
            # share of the answer's sentences found in the passages: a falling mean means answers drift
            "support_fraction": None if support is None else round(support.supported_fraction, 3),
            "unsupported_code": [] if support is None else support.unsupported_code,
        },
    )


_RATINGS = {"up": 1, "down": -1, "👍": 1, "👎": -1, 1: 1, -1: -1}


def log_feedback(path: str | Path, answer_id: str, rating: int | str, comment: str = "") -> None:
    """Append a rating of an earlier answer: +1/-1, "up"/"down" or 👍/👎."""
    if rating not in _RATINGS:
        raise ConfigError(f"rating must be one of up/down, 👍/👎 or +1/-1, got {rating!r}")
    record = {"type": "feedback", "time": time.time(), "answer_id": answer_id, "rating": _RATINGS[rating]}
    if comment:
        record["comment"] = comment
    _append(path, record)


@dataclasses.dataclass(frozen=True)
class LogContents:
    records: list[dict[str, Any]]  # answers and feedback, oldest first
    skipped: int  # unreadable lines (partial, not JSON, not an object) that were left out


def scan_log(path: str | Path) -> LogContents:
    """Every readable record, and how many lines were not; never raises on a damaged line."""
    path = Path(path)
    if not str(path) or not path.is_file():
        return LogContents([], 0)
    records: list[dict[str, Any]] = []
    skipped = 0
    with open(path, "rb") as f:  # bytes: a partial multi-byte character must cost one line, not the file
        for raw in f:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return LogContents(records, skipped)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All readable records (answers and feedback), oldest first; a missing (or "") log is empty."""
    return scan_log(path).records


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summary(path: str | Path) -> dict[str, Any]:
    """Counts, median latencies, the share of 👍 among rated answers, and unreadable lines skipped."""
    log = scan_log(path)
    answers = [r for r in log.records if r.get("type") == "answer"]
    ratings = {
        r.get("answer_id"): r["rating"]
        for r in log.records
        if r.get("type") == "feedback" and _number(r.get("rating"))
    }

    supports = [float(r["support_fraction"]) for r in answers if _number(r.get("support_fraction"))]

    def median(key: str) -> float | None:
        values = sorted(r[key] for r in answers if _number(r.get(key)))
        return values[len(values) // 2] if values else None

    return {
        "answers": len(answers),
        "rated": len(ratings),
        "thumbs_up_share": (sum(v > 0 for v in ratings.values()) / len(ratings)) if ratings else None,
        "median_retrieval_ms": median("retrieval_ms"),
        "median_ttft_ms": median("ttft_ms"),
        "median_total_ms": median("total_ms"),
        "mean_support_fraction": _mean(supports),
        "abstained": sum(bool(r.get("abstained")) for r in answers),
        "unreadable_lines": log.skipped,
    }
