"""Whether a sentence has the form of an answer to the question's kind: pure, table-driven."""

from __future__ import annotations

import pytest

from core.grounding.answer_form import answer_forms, question_kind, titled
from core.grounding.evidence import SourceText, select_evidence
from tests.assistant_support import FakeEmbedder

EMBED = FakeEmbedder().encode


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How do I redirect stderr to a file in bash?", "how"),
        ("how can you declare an array?", "how"),
        ("How to read a file in R?", "how"),
        ("How does flex choose a rule when several patterns match?", ""),  # how it works: words
        ("How are IDL structs translated to Caml types?", ""),
        ("What is a here document in bash?", "what"),
        ("What are promise objects in R?", "what"),
        ("What does the pipefail option do?", "what"),
        ("Why doesn't my alias work in a script?", ""),
    ],
)
def test_question_kind(question: str, kind: str) -> None:
    assert question_kind(question) == kind


HOW = "How do I apply a function to each group of a vector in R?"
WHAT = "What are promise objects in R?"


@pytest.mark.parametrize(
    ("question", "sentence", "form"),
    [
        # "how": something to type that the question does not already name
        (HOW, "The function tapply() is used to apply a function to each group.", 1.0),
        (HOW, "The values in the vector are collected into groups.", 0.0),
        ("How do I run a script with SBCL?", "SBCL supports this via the --script command line option.", 1.0),
        ("How do I test for NA in R?", "The function is.na(x) gives a logical vector.", 1.0),
        ("How do I continue a job?", "Use the bg command to continue it in the background.", 1.0),
        ("How do I save a core?", "Call sb-ext:save-lisp-and-die with the file name.", 1.0),
        ("How do I count lines?", "Expand ${#array} or $(wc -l) in bash.", 1.0),
        ("How do I use --script?", "Give --script a file name to run.", 0.0),  # named by the question
        ("How do I ask about flex?", "Write to Alain.ISSARD@st.com about it.", 0.0),  # an address
        ("How does flex choose a rule?", "The function yyless() puts back text.", 0.0),  # not a "how do I"
        # "what": opens by saying what the question's subject is
        (WHAT, "Promise objects are part of R's lazy evaluation mechanism.", 1.0),
        (WHAT, "Within the R language, promise objects are almost only seen implicitly.", 0.0),
        ("What is a factor in R?", "A factor is a vector object used to specify a grouping.", 1.0),
        ("What is a B-tree?", "B-Trees are to external memory what search trees are to memory.", 0.0),
        ("What is camlidl used for?", "The camlidl stub generator is invoked as follows.", 0.0),
        ("What does IFS mean?", "IFS stands for the internal field separator.", 1.0),
        ("Why does my alias fail?", "The function alias() is a builtin.", 0.0),  # neither kind
    ],
)
def test_answer_form(question: str, sentence: str, form: float) -> None:
    assert answer_forms(question, [sentence]) == [form]


def test_form_prior_lets_the_answer_lead_over_a_sentence_that_introduces_the_topic() -> None:
    sources = [
        SourceText(
            1, "r.pdf", [40], "Groups of a vector are defined by a factor; each group of the vector is a set."
        ),
        SourceText(2, "r.pdf", [41], "The function tapply() applies a function to each group."),
    ]
    question = "How do I apply a function to each group of a vector?"
    plain = select_evidence(question, sources, EMBED, form_prior=0.0)
    formed = select_evidence(question, sources, EMBED, form_prior=1.0)
    assert "Groups of a vector" in plain[0].text
    assert "tapply()" in formed[0].text
    # the prior orders only: each item keeps its own score (what abstention reads)
    assert {e.text: e.score for e in formed} == {e.text: e.score for e in plain}


@pytest.mark.parametrize(
    ("question", "heading", "named"),
    [
        ("What is a here document in bash?", "3.6.6 Here Documents", 1.0),  # plural, section number
        ("What is a here document in bash?", "3.6.7 Here Strings", 0.0),  # a word the question lacks
        ("What is a here document in bash?", "", 0.0),  # no heading above the sentence
        ("What is a here document in bash?", "3.6.6", 0.0),  # a number names nothing
        ("What is a here document in bash?", "1.1 What is Bash?", 0.0),  # only where it is asked
        ("What is Bash?", "1.1 What is Bash?", 1.0),
        ("What are promise objects in R?", "2.1.8 Promise objects", 1.0),
        ("What does the pipefail option do?", "Pipefail", 1.0),
        ("How do start conditions work in flex?", "Start Conditions", 0.0),  # not a "What is X?"
        ("How do I save a core image?", "Saving a Core Image", 0.0),
        # a definition's synopsis names the command the question asks about
        ("What does the umask builtin do?", "umask [-p] [-S] [mode]", 1.0),
        ("What does the export builtin do in bash?", "export [-fn] [-p] [name[=value]]", 1.0),
        ("What does the export builtin do in bash?", "readonly [-aAf] [-p] [name[=value]] ...", 0.0),
        ("What is a factor in R?", "factor levels", 0.0),  # lower case, but no options: prose
        ("What does Export do?", "Export [-f]", 0.0),  # a synopsis starts in lower case
        ("How do I set the umask?", "umask [-p] [-S] [mode]", 0.0),  # not a "What is X?"
    ],
)
def test_titled(question: str, heading: str, named: float) -> None:
    assert titled(question, [heading]) == [named]


def test_title_prior_lets_the_section_that_a_what_question_names_lead() -> None:
    # the next section opens with the question's own words; the named one says what it is without them
    text = (
        "3.6.6 Here Documents\nThis type of redirection instructs the shell to read input until a line.\n"
        "3.6.7 Here Strings\nA variant of here documents in bash, the format is a word."
    )
    sources = [SourceText(1, "bashref.pdf", [46], text)]
    question = "What is a here document in bash?"
    plain = select_evidence(question, sources, EMBED, title_prior=0.0)
    titled_first = select_evidence(question, sources, EMBED, title_prior=1.0)  # a fake embedder: wide gap
    assert plain[0].text.startswith("A variant of here documents")
    assert titled_first[0].text.startswith("This type of redirection")
    assert {e.text: e.score for e in titled_first} == {e.text: e.score for e in plain}  # order only
