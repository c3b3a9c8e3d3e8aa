"""Highlighting of question words in passages and markdown escaping (pure)."""

from __future__ import annotations

import pytest

from ui.highlight import answer_markdown, escape_markdown, highlight, question_terms

MARK = "<{}>"


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        ("How do I redirect stderr to a file in bash?", ["redire", "bash", "file", "stde"]),
        ("What is a pipeline?", ["pipeli"]),
        ("how to do it", []),
    ],
)
def test_question_terms(question, terms):
    assert question_terms(question) == terms


@pytest.mark.parametrize(
    ("text", "question", "expected"),
    [
        ("Redirection sends output", "redirect stderr", "<Redirection> sends output"),
        ("use 2> file", "file", "use 2\\> <file>"),
        ("echo $HOME  and\n  more", "echo", "<echo> \\$HOME and more"),
        ("the *files* [1]", "files", "the \\*<files>\\* \\[1\\]"),
        ("nothing here", "how to", "nothing here"),
    ],
)
def test_highlight(text, question, expected):
    assert highlight(text, question, style=MARK) == expected


def test_escape_markdown_keeps_letters():
    assert escape_markdown("a_b :smile: # x") == "a\\_b \\:smile\\: \\# x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("costs $5 and $6", "costs \\$5 and \\$6"),
        ("`echo $HOME` then $x", "`echo $HOME` then \\$x"),
        ("```\nls $d\n```\n$y", "```\nls $d\n```\n\\$y"),
    ],
)
def test_answer_markdown_escapes_dollars_outside_code(text, expected):
    assert answer_markdown(text) == expected
