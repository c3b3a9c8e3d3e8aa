"""Follow-up questions are searched together with the question before them; others as they are."""

from __future__ import annotations

import pytest

from assistant.followup import is_follow_up, search_query


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("How do I declare one?", True),
        ("How do they work?", True),
        ("How is its stub generator invoked?", True),
        ("And in R?", True),
        ("What about flex?", True),
        ("How do I apply a function to each group it defines?", True),  # 4 words of its own
        # questions that stand alone
        ("What is camlidl used for?", False),  # short, but names its subject
        ("What is yytext in flex?", False),
        ("How do I suspend a running command and continue it in the background in bash?", False),
        ("What does an option that takes a value do?", False),  # "that" is a relative pronoun here
        ("Anderson's algorithm?", False),  # "And" only as a whole word
    ],
)
def test_is_follow_up(question: str, follow_up: bool) -> None:
    assert is_follow_up(question) is follow_up


@pytest.mark.parametrize(
    ("question", "earlier", "query"),
    [
        ("How do I declare one?", [], "How do I declare one?"),  # nothing before it
        (
            "How do I declare one?",
            ["What is an associative array in bash?"],
            "What is an associative array in bash? How do I declare one?",
        ),
        ("What is yytext in flex?", ["What is an associative array in bash?"], "What is yytext in flex?"),
        (  # a chain of follow-ups keeps the subject
            "And delete it?",
            ["What is an associative array in bash?", "How do I declare one?"],
            "What is an associative array in bash? How do I declare one? And delete it?",
        ),
        (  # a new subject breaks the chain
            "How do I declare one?",
            ["What is an associative array in bash?", "What is a factor in R?"],
            "What is a factor in R? How do I declare one?",
        ),
    ],
)
def test_search_query(question: str, earlier: list[str], query: str) -> None:
    assert search_query(question, earlier) == query
