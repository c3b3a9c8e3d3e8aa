"""The line under an answer says how it was made, in words that fit what happened."""

from __future__ import annotations

import pytest

from assistant.pipeline import Answer, Timings
from ui.message_view import _meta


def answer(lead: str, new_tokens: int) -> Answer:
    timings = Timings(10.0, 400, 200.0, 25.0, 1100.0, new_tokens, 190.0, 5.0, first_token_ms=1000.0)
    return Answer("a1", "q?", "text", [], "precise", {}, "models/finetuned", True, timings, lead=lead)


@pytest.mark.parametrize(
    ("lead", "new_tokens", "says", "not_said"),
    [
        ("Quote. [1]", 1, "opened on the best quote after 0.2 s; the model added nothing", "tok/s"),
        (
            "Quote. [1]",
            12,
            "12 tokens in 1.1 s (25.0 tok/s, first text after 0.2 s, the model's after 1.0 s)",
            "nothing",
        ),
        ("", 1, "1 token in 1.1 s", "the model's after"),
        ("", 30, "30 tokens in 1.1 s (25.0 tok/s, first text after 0.2 s)", "the model's after"),
    ],
)
def test_meta_line(lead: str, new_tokens: int, says: str, not_said: str) -> None:
    line = _meta(answer(lead, new_tokens), streamed=True)
    assert says in line and not_said not in line
    assert line.startswith("models/finetuned (fine-tuned) · precise · streamed")
