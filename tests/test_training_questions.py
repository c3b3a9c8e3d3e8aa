"""Question rules for answer-from-sources examples: titles -> questions, headings and definitions
-> verbatim answers. Every answer must be a substring of its oracle chunk's text."""

from __future__ import annotations

import pytest

from indexing.outline import OutlineEntry
from indexing.records import Chunk
from training.answers import QA
from training.questions import definition_questions, on_topic, outline_questions
from training.titles import question_for_title, verb_of_gerund

NAMES = frozenset({"Bash"})


@pytest.mark.parametrize(
    ("title", "question"),
    [
        ("Using Pipelines", "How do I use pipelines?"),
        ("Invoking Bash", "How do I invoke Bash?"),
        ("Installing SBCL", "How do I install SBCL?"),
        ("3.2.1 Running Jobs", "How do I run jobs?"),
        ("Making data frames", "How do I make data frames?"),
        ("Getting and setting attributes", "How do I get and set attributes?"),
        ("10 Writing your own functions", "How do I write my own functions?"),
        ("How to Report Bugs Effectively", "How do I report bugs effectively?"),
        ("Shell Functions", "What are shell functions?"),
        ("The Set Builtin", "What is the set builtin?"),
        ("A.1 Shell Arithmetic", "What is shell arithmetic?"),
        ("Chapter 4: Brace Expansion", "What is brace expansion?"),
        ("PostScript diagrams for typeset documents", "What are PostScript diagrams for typeset documents?"),
        ("The read.table() function", "What is the read.table() function?"),
        ("Format of the Input File", "What is the format of the input file?"),
        ("Missing values", "What are missing values?"),
        ("Quoting", "What is quoting?"),
        ("What is Bash", "What is Bash?"),
        ("Is this Shell Interactive?", "Is this Shell Interactive?"),
        ("Index", None),
        ("Concept Index", None),
        ("Table of Contents", None),
        ("Preface", None),
        ("GNU Free Documentation License", None),
        ("Appendix B", None),
        ("Copying", None),
        ("X", None),
        ("4.2 --- 17", None),
        ("Memory leak - 16386 bytes allocated by malloc.", None),
        ("unnamed-faq-62", None),
        ("One two three four five six seven eight nine ten eleven", None),
        ("Forming partitioned matrices, cbind() and rbind()", None),
    ],
)
def test_question_for_title(title: str, question: str | None) -> None:
    assert question_for_title(title, NAMES) == question


@pytest.mark.parametrize(
    ("gerund", "verb"),
    [
        ("using", "use"),
        ("invoking", "invoke"),
        ("making", "make"),
        ("running", "run"),
        ("dropping", "drop"),
        ("installing", "install"),
        ("calling", "call"),
        ("reading", "read"),
        ("creating", "create"),
        ("handling", "handle"),
        ("coercing", "coerce"),
        ("defining", "define"),
        ("editing", "edit"),
        ("opening", "open"),
        ("copying", "copy"),
        ("adding", "add"),
        ("string", None),
        ("thing", None),
    ],
)
def test_verb_of_gerund(gerund: str, verb: str | None) -> None:
    assert verb_of_gerund(gerund) == verb


def _chunk(cid: str, text: str, page: int, file: str = "bash.pdf", kind: str = "body") -> Chunk:
    return Chunk(cid, file, page, page, text, len(text.split()), kind)


def _check_verbatim(qas: list[QA], chunks: list[Chunk]) -> None:
    by_id = {c.chunk_id: c for c in chunks}
    for qa in qas:
        assert qa.answer in by_id[qa.chunk_id].text
        assert qa.answer == qa.answer.strip() and qa.answer[-1] in ".!?"


CHUNKS = [
    _chunk(
        "c1",
        "See Section 3.3 [Shell Functions], page 5 for more. 3.2 Pipelines A pipeline is a sequence of "
        "one or more commands separated by a control operator. The output of each command is connected "
        "to the input of the next one. 3.3 Shell Functions",
        page=4,
    ),
    _chunk(
        "c2",
        "3.3 Shell Functions Shell functions are a way to group commands for later execution using a single "
        "name for the group. They are executed just like a regular command.",
        page=5,
    ),
    _chunk("c3", "3.4 Aliases x=1 y=2", page=6),
    _chunk(
        "c4", "Pipelines: A pipeline is a list of commands, shown again in the contents.", 4, kind="contents"
    ),
]


def test_outline_questions_boundary_missing_and_duplicate() -> None:
    outlines = {
        "bash.pdf": [
            OutlineEntry("3.2 Pipelines", 4),
            OutlineEntry("3.3 Shell Functions", 4),  # heading ends chunk c1; its text is in c2
            OutlineEntry("3.4 Aliases", 6),  # heading found, but no sentence follows
            OutlineEntry("3.5 Arrays", 6),  # heading not in the text
            OutlineEntry("3.6 Pipelines", 4),  # same question again
            OutlineEntry("Index", 4),
        ],
        "other.pdf": [OutlineEntry("Pipelines", 1)],  # no chunks for this file
    }
    qas = outline_questions(outlines, CHUNKS)
    assert qas == [
        QA(
            "outline",
            "What are pipelines?",
            "c1",
            "A pipeline is a sequence of one or more commands separated by a control operator. "
            "The output of each command is connected to the input of the next one.",
        ),
        QA(
            "outline",
            "What are shell functions?",
            "c2",
            "Shell functions are a way to group commands for later execution using a single name for "
            "the group. They are executed just like a regular command.",
        ),
    ]
    _check_verbatim(qas, CHUNKS)


@pytest.mark.parametrize(
    ("title", "answer", "kept"),
    [
        ("3.2 Pipelines", "A pipeline is a sequence of one or more commands.", True),  # plural
        ("Deterministic Profiler", "The package sb-profile provides a per-function-call profiler.", True),
        ("FASL Format", "SBCL fasl-format is binary compatible only with the exact SBCL version.", True),
        ("Using Pipelines", "Pipelines connect the output of one command to another.", True),
        # the section opens with a remark about the chapter, not about its title
        ("Scope", "The discussion in this section is somewhat more technical than in other parts.", False),
        ("Usage", "To start sb-aclrepl as your read-eval-print loop, put the form in your init file.", False),
        ("Lisp names for C names", "All symbols are in the SB-POSIX package.", False),
        ("How to Report Bugs", "Please send a message to the mailing list with a test case.", False),
        # an FAQ entry is answered whatever its words
        ("Can I include comments in the rules section?", "Yes, just about anywhere you want to.", True),
        ("How can I change the matching pattern at run time?", "You can’t, it’s compiled in.", True),
        # function words alone are no topic in common
        ("The Set Builtin", "The shell reads the input and the output.", False),
        ("", "Anything at all.", False),  # no title, no topic
    ],
)
def test_on_topic(title: str, answer: str, kept: bool) -> None:
    assert on_topic(title, answer) is kept


def test_outline_question_dropped_when_its_section_opens_off_topic() -> None:
    outline = {"bash.pdf": [OutlineEntry("4.1 Scope", 3)]}
    off = _chunk("s", "4.1 Scope The discussion in this section is somewhat more technical than the rest.", 3)
    on = _chunk("s", "4.1 Scope The scope of a variable is the part of the program where it is seen.", 3)
    assert outline_questions(outline, [off]) == []
    assert [qa.question for qa in outline_questions(outline, [on])] == ["What is scope?"]


def test_outline_answer_stops_at_word_limit() -> None:
    sentence = "This part of the manual says a great deal about arrays and their many uses. "
    chunk = _chunk("a", "6.7 Arrays " + sentence * 6, page=9)
    (qa,) = outline_questions({"bash.pdf": [OutlineEntry("6.7 Arrays", 9)]}, [chunk])
    assert len(qa.answer.split()) <= 60 and qa.answer.count(".") == 3
    _check_verbatim([qa], [chunk])


DEFINITIONS = [
    ("A shell function is a way to group commands under a single name.", "What is a shell function?"),
    ("Variables are places that hold named values for later use by the shell.", "What are variables?"),
    (
        "The set builtin is a command that changes the options of the running shell.",
        "What is the set builtin?",
    ),
    ("Bash is the shell, or command language interpreter, for the GNU system.", "What is Bash?"),
    ("The read.table() function reads a file in table format into a data frame.", None),  # no "is"
    (
        "The read.table() function is the usual way to read a file into a data frame.",
        "What is the read.table() function?",
    ),
    ("$PATH is a colon-separated list of directories searched for commands.", "What is $PATH?"),
    ("Globbing refers to the expansion of patterns into the names of matching files.", "What is globbing?"),
    ("This is a long sentence that would look like a definition of a term.", None),
    ("It is a good idea to quote every variable expansion in your scripts.", None),
    ("If the value is a number the shell treats it as an arithmetic expression.", None),
    ("There are many ways to redirect the output of a command to a file.", None),
    ("Arrays are passed by reference to the functions that use them here.", None),
    ("Pipes is a word.", None),  # too short
    ("Non-interactive shells exit if there is a syntax error in a script.", None),
    ("See [Shell Functions] which is a section about functions in this manual.", None),
    ("The second component is the distance from the axis to the tick labels.", None),
]


@pytest.mark.parametrize(("sentence", "question"), DEFINITIONS)
def test_definition_questions_table(sentence: str, question: str | None) -> None:
    # Names keep their capital when the text writes them capitalised mid-sentence ("run Bash").
    chunk = _chunk("d", "Users run Bash or call Bash daily. " + sentence, page=1)
    qas = definition_questions([chunk])
    assert [qa.question for qa in qas] == ([question] if question else [])
    _check_verbatim(qas, [chunk])


def test_definition_takes_next_sentence_and_dedupes() -> None:
    text = (
        "Intro words here. A subshell is a copy of the shell process that runs a command list. "
        "Changes made in it do not affect the parent shell. "
        "A subshell is a child process created for each command substitution in a script."
    )
    chunks = [_chunk("d1", text, 1), _chunk("d2", "Intro. " + text, 2), _chunk("i", text, 3, kind="index")]
    qas = definition_questions(chunks)
    assert qas == [
        QA(
            "definition",
            "What is a subshell?",
            "d1",
            "A subshell is a copy of the shell process that runs a command list. "
            "Changes made in it do not affect the parent shell.",
        )
    ]
    _check_verbatim(qas, chunks)
