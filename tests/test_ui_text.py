"""Pure UI helpers: question-word highlighting, markdown escaping, and the eval report parts."""

from __future__ import annotations

import pytest

from ui.eval_report import latest_report, split_report
from ui.highlight import answer_markdown, escape_markdown, highlight, mark_evidence, question_terms

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


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("# t\n\n| a |\n", [("md", "# t\n\n| a |")]),
        ("x\n![r](eval-1-r.png)\ny\n", [("md", "x"), ("image", "eval-1-r.png"), ("md", "y")]),
        ("![a](a.png)\n\n![b](b.png)", [("image", "a.png"), ("image", "b.png")]),
        ("see ![inline](i.png) here", [("md", "see ![inline](i.png) here")]),
    ],
)
def test_split_eval_report(text, parts):
    assert split_report(text) == parts


def test_latest_report(tmp_path):
    assert latest_report(tmp_path) is None
    for day in ("2026-01-02", "2026-01-10", "2025-12-31"):
        (tmp_path / f"eval-{day}.md").write_text(day)
    assert latest_report(tmp_path).name == "eval-2026-01-10.md"


@pytest.mark.parametrize(
    ("text", "spans", "expected"),
    [
        ("One two. Three four.", [(9, 20)], "One two\\. <Three four\\.>"),
        # a heading keeps its own line (a markdown hard break), the evidence under it is marked
        (
            "8.3 on.exit\nA call stores it. More.",
            [(12, 29)],
            "8\\.3 on\\.exit  \n<A call stores it\\.> More\\.",
        ),
        # a span over a line break is marked on each line
        ("Use this:\nrun it. Done.", [(0, 17)], "<Use this\\:>  \n<run it\\.> Done\\."),
        # a stale span (past the end) and an overlapping one leave the text as it is
        ("Short one.", [(0, 99), (0, 5), (2, 7)], "<Short> one\\."),
    ],
)
def test_mark_evidence(text: str, spans: list[tuple[int, int]], expected: str) -> None:
    assert mark_evidence(text, spans, "", style="<{}>") == expected
