"""Monitoring log: one JSON line per answer, and one per 👍/👎 (the guide's "track relevance and latency").

Lines are appended with a single ``write`` on a file opened with O_APPEND, so concurrent
UI sessions never interleave half lines (POSIX appends of one small write are atomic).
"""

from __future__ import annotations

import json
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
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(line)


def log_answer(path: str | Path, answer: Any) -> None:
    """Append an :class:`assistant.chat.Answer` (time, question, source ids, preset, latencies, model)."""
    t = answer.timings
    _append(
        path,
        {
            "type": "answer",
            "time": answer.created_at,
            "answer_id": answer.answer_id,
            "question": answer.question,
            "sources": [s.chunk_id for s in answer.sources],
            "source_pages": [s.label for s in answer.sources],
            "preset": answer.preset,
            "params": answer.params,
            "model": answer.model_id,
            "fine_tuned": answer.fine_tuned,
            "retrieval_ms": round(t.retrieval_ms, 1),
            "ttft_ms": round(t.ttft_ms, 1),
            "total_ms": round(t.total_ms, 1),
            "tokens_per_s": round(t.tokens_per_s, 2),
            "prompt_tokens": t.prompt_tokens,
            "new_tokens": t.new_tokens,
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


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records (answers and feedback), oldest first; a missing (or "") log is empty."""
    path = Path(path)
    if not str(path) or not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(path: str | Path) -> dict[str, Any]:
    """Counts, median latencies and the share of 👍 among rated answers."""
    records = read_log(path)
    answers = [r for r in records if r.get("type") == "answer"]
    ratings = {r["answer_id"]: r["rating"] for r in records if r.get("type") == "feedback"}

    def median(key: str) -> float | None:
        values = sorted(r[key] for r in answers if key in r)
        return values[len(values) // 2] if values else None

    return {
        "answers": len(answers),
        "rated": len(ratings),
        "thumbs_up_share": (sum(v > 0 for v in ratings.values()) / len(ratings)) if ratings else None,
        "median_retrieval_ms": median("retrieval_ms"),
        "median_ttft_ms": median("ttft_ms"),
        "median_total_ms": median("total_ms"),
    }
