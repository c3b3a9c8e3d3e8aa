"""Verified citations (pure): each sentence cites the passage it was found in."""

from __future__ import annotations

import pytest

from core.grounding.cite import attribute, cite, strip_markers

PASSAGES = [
    (1, "Redirection opens files for commands. Use 2> to send standard error to a file."),
    (3, "A pipeline connects the output of one command to the input of the next command."),
]


@pytest.mark.parametrize(
    ("sentence", "source"),
    [
        ("A pipeline connects the output of one command to the input of the next.", 3),
        ("Use 2> to send standard error to a file. [3]", 1),  # the model's guess does not count
        ("Octopuses paint murals on weekends.", None),  # in no passage
        ("See below.", None),  # too few words to judge
        ("A pipeline sends standard error elsewhere quickly.", None),  # half here, half there: neither
    ],
)
def test_attribute(sentence: str, source: int | None) -> None:
    assert attribute(sentence, PASSAGES) == source


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        # a wrong guess is corrected
        (
            "A pipeline connects the output of one command to the input of the next command. [1]",
            "A pipeline connects the output of one command to the input of the next command. [3]",
        ),
        # two sentences from one passage cite it once, at the end; an uncited one gets its citation
        (
            "Redirection opens files for commands. Use 2> to send standard error to a file.",
            "Redirection opens files for commands. Use 2> to send standard error to a file. [1]",
        ),
        # a sentence found nowhere loses the model's citation; the others keep theirs
        (
            "Octopuses paint murals on weekends [2]. Use 2> to send standard error to a file. [1]",
            "Octopuses paint murals on weekends. Use 2> to send standard error to a file. [1]",
        ),
        # code's own brackets are not citations, and code is never touched
        ("Use x[1] to get the first element.", "Use x[1] to get the first element."),
        ("Write `nums = [1, 2]` first.", "Write `nums = [1, 2]` first."),
        (
            "Use 2> to send standard error to a file:\n```\ncmd 2> err.txt [1]\nnums = [1, 2]\n```",
            "Use 2> to send standard error to a file:\n```\ncmd 2> err.txt [1]\nnums = [1, 2]\n```\n[1]",
        ),
        # a newline before a marker stays
        ("Example:\n[2] Octopuses paint.", "Example:\nOctopuses paint."),
        ("", ""),
    ],
)
def test_cite(answer: str, cited: str) -> None:
    assert cite(answer, PASSAGES) == cited


def test_strip_markers_keeps_code_indexing() -> None:
    assert strip_markers("Read x[2] first [1], then [2, 3].") == "Read x[2] first, then."


@pytest.mark.parametrize(
    ("text", "abstains"),
    [
        (
            "The indexed books do not seem to cover this question. The closest passages are listed below.",
            True,
        ),
        ("The sources do not contain the answer.", True),
        ("This is not covered in the passages.", True),
        ("A set does not contain duplicates.", False),  # an answer, not a refusal
        ("It does not answer to signals.", False),
    ],
)
def test_is_abstention(text: str, abstains: bool) -> None:
    from core.grounding.scores import is_abstention

    assert is_abstention(text) == abstains
