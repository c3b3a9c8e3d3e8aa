"""The dev question set (``data/dev_questions.jsonl``): questions with their gold file, pages and answer.

Read by `make eval`, `make bench-answer` and ``python -m benchmarks.retrieval``; answering never
needs it, so it lives here rather than in ``assistant``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DevQuestion:
    question: str
    file: str  # gold file name
    pages: list[int]  # gold 1-based physical pages
    answer: str = ""  # short reference answer (for answer F1 in the eval report)
    previous: str = ""  # the question asked just before it, when it is a follow-up ("How do I declare one?")


def read_dev_questions(path: str | Path) -> list[DevQuestion]:
    """``data/dev_questions.jsonl``: {"question", "file", "pages", "answer"} per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the dev questions: {e}") from e
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)  # other fields are ignored: any {question, file, pages, answer} set works
            out.append(
                DevQuestion(
                    str(row["question"]),
                    str(row["file"]),
                    [int(p) for p in row["pages"]],
                    str(row.get("answer", "")),
                    str(row.get("previous", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}:{n}: each line needs question, file, pages (and answer): {e!r}") from e
    if not out:
        raise ConfigError(f"{path}: no questions")
    return out
