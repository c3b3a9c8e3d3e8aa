"""Verified citations (pure): each sentence cites the passage it was found in."""

from __future__ import annotations

import pytest

from core.grounding.cite import attribute, cite, drop_stray_number, strip_markers

PASSAGES = [
    (1, "Redirection opens files for commands. Use 2> to send standard error to a file."),
    (3, "A pipeline connects the output of one command to the input of the next command."),
]
# neighbouring chunks overlap: the same sentence in two passages
OVERLAPPING = [
    (1, "Redirection opens files for commands. Use 2> to send standard error to a file."),
    (2, "Use 2> to send standard error to a file. A pipeline connects commands."),
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
    ("claimed", "source"),
    [
        ((), 1),  # a tie without a claim: the first passage
        ((2,), 2),  # a tie: the passage the model named
        ((3,), 1),  # a claim on neither tied passage does not count
    ],
)
def test_attribute_tie_goes_to_the_claim(claimed: tuple[int, ...], source: int) -> None:
    assert attribute("Use 2> to send standard error to a file.", OVERLAPPING, claimed=claimed) == source


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        # the sentence is in both passages: the model's [2] stands
        ("Use 2> to send standard error to a file. [2]", "Use 2> to send standard error to a file. [2]"),
        ("Use 2> to send standard error to a file [2].", "Use 2> to send standard error to a file. [2]"),
        ("Use 2> to send standard error to a file.", "Use 2> to send standard error to a file. [1]"),
        # a run's closing marker claims the run: the shared sentence follows the one only [1] holds
        (
            "Redirection opens files for commands. Use 2> to send standard error to a file. [2]",
            "Redirection opens files for commands. [1] Use 2> to send standard error to a file. [2]",
        ),
        # a claim on the wrong passage is still corrected when one passage alone holds the sentence
        ("Redirection opens files for commands. [2]", "Redirection opens files for commands. [1]"),
    ],
)
def test_cite_keeps_the_models_number_on_a_tie(answer: str, cited: str) -> None:
    assert cite(answer, OVERLAPPING) == cited


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
        # markers and nothing else (a fine-tune answered an unseen-book example so): no sentence, no citation
        ("[3]", ""),
        ("[1, 2]", ""),
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


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        ("pwd prints the working directory. [2] 51.", "pwd prints the working directory. [2]"),
        ("Allegro CL is a mark. [4] 17.2 ", "Allegro CL is a mark. [4]"),
        ("It takes two. [1, 3] 4, 5", "It takes two. [1, 3]"),
        ("It costs 5 [2]", "It costs 5 [2]"),  # a number before the citation is the claim's
        ("See page 48. [2] Then 51 more words.", "See page 48. [2] Then 51 more words."),  # not bare
        ("No citation at all 51.", "No citation at all 51."),  # nothing says it is stray
        ("Print x[1] 2", "Print x[1] 2"),  # code's indexing is no citation
    ],
)
def test_drop_stray_number(answer: str, kept: str) -> None:
    assert drop_stray_number(answer) == kept
